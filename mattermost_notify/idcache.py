"""An id cache on disk: what does not change for one (server URL, token) pair.

A fresh process (every CLI call, every short script) would otherwise look up the bot's
user id, the user and channel ids and the server's limits again before its first post.
:class:`IdCache` keeps them in one small JSON file per (server URL, token) pair:

* the file name is a hash of the URL and the token (never the token itself); the file
  is mode 0600 in a 0700 directory under the user cache dir (``platformdirs``), or
  ``$MATTERMOST_NOTIFY_CACHE_DIR``;
* reads need no lock (files are replaced atomically); a change takes a file lock,
  re-reads the file, applies the change and replaces the file, so concurrent processes
  keep each other's entries;
* bounded: at most :data:`MAX_ENTRIES` entries (the oldest go first), a file larger
  than :data:`MAX_FILE_SIZE` or not readable as a cache is ignored (and rewritten);
* ids never change, but names can be given to something else (a user renamed, a
  channel archived and re-created): entries found by name are trusted for
  :data:`NAME_MAX_AGE` seconds, and the client drops an entry that the server refuses
  (403/404, archived channel) and looks it up again once;
* nothing here ever raises: a cache that cannot be read or written is just empty.

Keys used by the client: ``bot`` (the bot's user id), ``user:<name>`` (a user id),
``dm:<user id>`` (the direct channel with that user), ``channel:<team>/<name>``,
``limits`` (the server's client config) and ``version`` (its ``X-Version-Id``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from ._files import read_private, write_private

__all__ = [
    "ENV_CACHE_DIR",
    "MAX_ENTRIES",
    "MAX_FILE_SIZE",
    "NAME_MAX_AGE",
    "IdCache",
    "cache_dir",
    "channel_key",
    "dm_key",
    "stale_answer",
    "user_key",
]

ENV_CACHE_DIR = "MATTERMOST_NOTIFY_CACHE_DIR"
FORMAT = 1
MAX_ENTRIES = 2000
MAX_FILE_SIZE = 1024 * 1024
NAME_MAX_AGE = 24 * 3600.0
"""Seconds an entry found by a name (user, channel, limits) is trusted."""
_NEVER_EXPIRE = ("bot", "dm:")
LOCK_TIMEOUT = 2.0

logger = logging.getLogger("mattermost_notify")


STALE_ERROR_IDS = frozenset({"api.post.create_post.can_not_post_to_deleted.error"})


def stale_answer(status_code: int | None, error_id: str | None) -> bool:
    """Whether the server's refusal of a post means "this channel id is no longer the one":
    403, 404, or 400 for an archived channel."""
    return status_code in (403, 404) or (status_code == 400 and error_id in STALE_ERROR_IDS)


def user_key(name: str) -> str:
    return f"user:{name}"


def dm_key(user_id: str) -> str:
    return f"dm:{user_id}"


def channel_key(team: str | None, name: str) -> str:
    return f"channel:{team}/{name}"


def cache_dir() -> Path:
    """The directory of the id cache files; ``MATTERMOST_NOTIFY_CACHE_DIR`` wins."""
    env = os.environ.get(ENV_CACHE_DIR)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("mattermost-notify", appauthor=False)) / "ids"


def cache_key(url: str, token: str) -> str:
    """The file name stem for (url, token): a hash, so the token never shows."""
    digest = hashlib.sha256(f"mattermost-notify id cache\n{url}\n{token}".encode())
    return digest.hexdigest()[:32]


class IdCache:
    """The id cache of one (server URL, token) pair; ``enabled=False`` keeps nothing."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        directory: str | os.PathLike[str] | None = None,
        enabled: bool = True,
        max_age: float = NAME_MAX_AGE,
    ) -> None:
        self.url = url
        self.enabled = enabled
        self.max_age = max_age
        self._key = cache_key(url, token)
        self._directory = Path(directory).expanduser() if directory is not None else None
        self._entries: dict[str, list[Any]] | None = None  # key -> [value, unix time]
        self._lock = threading.RLock()  # a signal handler's send may come in put()
        self._filelock: Any = None

    def __repr__(self) -> str:
        state = "on" if self.enabled else "off"
        return f"IdCache(url={self.url!r}, {state})"

    @property
    def path(self) -> Path:
        """The cache file (it may not exist yet)."""
        directory = self._directory if self._directory is not None else cache_dir()
        return directory / f"{self._key}.json"

    # ------------------------------------------------------------ reading

    def _read_file(self) -> dict[str, list[Any]]:
        try:  # a regular file only, never through a link (a FIFO would block)
            data = json.loads(read_private(self.path, MAX_FILE_SIZE)[0])
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return {}
        entries = data.get("entries")
        if data.get("url") != self.url or not isinstance(entries, dict):
            return {}  # a hash collision or a hand-copied file: not ours
        return {
            key: item
            for key, item in entries.items()
            if isinstance(item, list) and len(item) == 2 and isinstance(item[1], (int, float))
        }

    def _loaded(self) -> dict[str, list[Any]]:
        if self._entries is None:
            self._entries = self._read_file() if self.enabled else {}
        return self._entries

    def _fresh(self, key: str, stamp: float) -> bool:
        if key.startswith(_NEVER_EXPIRE):
            return True
        age = time.time() - stamp
        return -60.0 <= age <= self.max_age

    def get(self, key: str) -> Any:
        """The value cached for ``key``, or None (also when it is too old)."""
        if not self.enabled:
            return None
        with self._lock:
            item = self._loaded().get(key)
        if item is None or not self._fresh(key, item[1]):
            return None
        return item[0]

    # ------------------------------------------------------------ changing

    def put(self, key: str, value: Any) -> None:
        """Remember ``value`` for ``key`` (in memory and on disk)."""
        if not self.enabled or value is None:
            return
        with self._lock:
            entries = self._loaded()
            old = entries.get(key)
            if old is not None and old[0] == value and self._fresh(key, old[1]):
                return
            entries[key] = [value, time.time()]
        self._write({key: [value, time.time()]}, ())

    def drop(self, *keys: str) -> None:
        """Forget ``keys`` (a stale entry), in memory and on disk."""
        if not self.enabled:
            return
        with self._lock:
            entries = self._loaded()
            present = [k for k in keys if k in entries]
            for k in present:
                del entries[k]
        if present:
            self._write({}, present)

    def forget_target(
        self, kind: str, name: str, team: str | None, user_id: str | None = None
    ) -> None:
        """Drop what is kept for a target the server refused: a user's id and direct
        channel (``kind`` "user"), or a channel's id in ``team``."""
        if kind == "user":
            user_id = user_id or self.get(user_key(name))
            self.drop(user_key(name), *([dm_key(user_id)] if user_id else []))
        else:
            self.drop(channel_key(team, name))

    def clear(self) -> None:
        """Delete the cache file of this (server URL, token) pair."""
        with self._lock:
            self._entries = {}
        with contextlib.suppress(OSError):
            self.path.unlink()

    def _lockfile(self) -> Any:
        if self._filelock is None:
            from filelock import FileLock

            self._filelock = FileLock(str(self.path) + ".lock", timeout=LOCK_TIMEOUT)
        return self._filelock

    def _write(self, changes: dict[str, list[Any]], removed: Any) -> None:
        """Merge ``changes`` into the file under its lock; never raises."""
        path = self.path
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with self._lockfile():
                current = self._read_file()
                current.update(changes)
                for key in removed:
                    current.pop(key, None)
                if len(current) > MAX_ENTRIES:
                    newest = sorted(current.items(), key=lambda kv: kv[1][1])[-MAX_ENTRIES:]
                    current = dict(newest)
                text = json.dumps(
                    {"format": FORMAT, "url": self.url, "entries": current},
                    separators=(",", ":"),
                    ensure_ascii=False,
                )
                if len(text.encode()) > MAX_FILE_SIZE:
                    return
                write_private(path, text, fsync=False)
            with self._lock:
                # what other processes wrote meanwhile is good for this one too
                merged = dict(current)
                if self._entries is not None:
                    for key, item in self._entries.items():
                        merged.setdefault(key, item)
                    for key in removed:
                        merged.pop(key, None)
                self._entries = merged
        except Exception as exc:  # a full disk, a read-only home, a lock timeout
            logger.debug("id cache %s not written: %s", path, exc)
