"""The disk spool behind :class:`~mattermost_notify.sender.BackgroundSender` (storage only).

Every message handed to the background sender is written here first, as one
small JSON file, and removed once the server has taken it. A crash, a
``kill`` or an interpreter exit in the middle of an outage therefore loses
nothing: the next process that wakes up (or ``mattermost-notify outbox
flush``) delivers what was left, in the original order.

Layout (``<user_data_dir>/outbox``, mode 0700)::

    outbox/
      spool-<random>/          one per live BackgroundSender (one per client)
        .lock                  held (flock) by the owning process while it lives
        <seq>-<rand>.json      one entry per queued message, mode 0600

A spool whose ``.lock`` can be taken belongs to nobody (its process exited or
died): it is an *orphan*, and its entries may be adopted by another process.
Adoption moves each entry file (an atomic rename) into the adopter's own
spool, so two processes never deliver the same entry.

Entries are plain JSON checked against an explicit schema on every read
(never pickle, never eval). They hold the server URL, the target names, the
text, file paths and the ``pending_post_id``, never the token.

Exactly once
------------
A new post carries a ``pending_post_id`` chosen when it was first queued and
stored in its entry, so every retry, in this process or in the next one,
sends the same value. The server remembers that value for 30 seconds after a
post was created and answers a repeat with the existing post instead of
creating a second one. Outside that window (a replay more than 30 s after
an attempt that the server applied but whose answer was lost, or after the
server restarted and forgot its cache) a replay can create the post a second
time. A replay of an entry whose earlier attempts all failed before reaching
the server (connection refused, server down) cannot double anything. Updates
are PATCHes and therefore idempotent at any time.

Entries are written without ``fsync``: they survive a crash of the Python
process, not a power cut of the machine in the same second.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._checks import check_fields
from ._files import ensure_private_dir, read_private, write_private
from .config import user_data_dir
from .errors import warn

__all__ = [
    "ENTRY_VERSION",
    "InvalidEntry",
    "OutboxEntry",
    "Spool",
    "drop_entries",
    "entry_from_json",
    "has_entries",
    "list_entries",
    "outbox_dir",
    "validate_entry",
]

log = logging.getLogger("mattermost_notify.outbox")

ENTRY_VERSION = 1
KINDS = ("post", "update", "reply")
_SPOOL_PREFIX = "spool-"
_LOCK_NAME = ".lock"
_SUFFIX = ".json"
_INVALID_SUFFIX = ".invalid"
MAX_ENTRY_BYTES = 2_000_000  # a 16383-rune message and 10 paths are far below this

# ---------------------------------------------------------------- the record

# field -> (allowed types, required)
_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "version": ((int,), True),
    "kind": ((str,), True),
    "server_url": ((str,), True),
    "created_at": ((float, int), True),
    "message": ((str, type(None)), True),
    "user": ((str, type(None)), False),
    "channel": ((str, type(None)), False),
    "id": ((str, type(None)), False),
    "reply_to": ((str, type(None)), False),
    "files": ((list, type(None)), False),
    "props": ((dict, type(None)), False),
    "pending_post_id": ((str, type(None)), False),
    "attempts": ((int,), False),
    "refusals": ((int,), False),
    "hook": ((dict, type(None)), False),
}


class InvalidEntry(ValueError):
    """An outbox file that is not a valid entry (corrupt, truncated, foreign, too new)."""


@dataclass
class OutboxEntry:
    """One queued message: a new post, an update of message ``id``, or a reply to
    message ``reply_to``. What the sender queues and what ``outbox list`` shows.

    ``path`` (the file, once written) and ``active`` (owned by a live process) are
    not stored in the file.
    """

    kind: str
    server_url: str
    message: str | None
    user: str | None = None
    channel: str | None = None
    id: str | None = None
    reply_to: str | None = None
    files: list[str] | None = None
    props: dict[str, Any] | None = None
    pending_post_id: str | None = None
    attempts: int = 0
    refusals: int = 0  # answers that may be permanent (500, an HTML page...): bounded
    hook: dict[str, Any] | None = None  # where the message of an update/reply lives
    created_at: float = field(default_factory=time.time)
    version: int = ENTRY_VERSION
    path: Path | None = field(default=None, compare=False)
    active: bool = field(default=False, compare=False)

    @property
    def entry_id(self) -> str:
        return self.path.stem if self.path is not None else ""

    @property
    def target(self) -> str:
        if self.kind == "update":
            return f"update of {self.id!r}"
        if self.kind == "reply":
            return f"reply to {self.reply_to!r}"
        if self.user:
            return f"@{self.user}"
        if self.channel:
            return f"~{self.channel}"
        return "default target"

    def describe(self) -> str:
        """For warnings and logs: "update of message 'x'", "message 'y' to user 'z'"."""
        if self.kind == "update":
            return f"update of message {self.id!r}"
        if self.kind == "reply":
            return f"reply to message {self.reply_to!r}"
        target = f"user {self.user!r}" if self.user else None
        target = target or (f"channel {self.channel!r}" if self.channel else "the default target")
        mid = f" {self.id!r}" if self.id else ""
        return f"message{mid} to {target}"

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in _FIELDS}
        return {k: v for k, v in data.items() if v is not None or k == "message"}

    def to_json(self) -> bytes:
        data = validate_entry(self.to_dict())
        # ASCII: a file name that is not UTF-8 (lone surrogates) survives the round trip
        return json.dumps(data, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def validate_entry(data: object) -> dict[str, Any]:
    """Check one decoded entry against the schema; return it or raise InvalidEntry.

    The check is explicit and strict: unknown keys, wrong types, a future
    version, an unknown kind or a kind without the fields it needs are all
    refused, with a message naming the field.
    """
    if not isinstance(data, dict):
        raise InvalidEntry(f"an outbox entry must be a JSON object, not {type(data).__name__}")
    check_fields(data, _FIELDS, InvalidEntry, "outbox entry")
    if data["version"] != ENTRY_VERSION:
        raise InvalidEntry(
            f"outbox entry version {data['version']} is not supported "
            f"(this mattermost-notify reads version {ENTRY_VERSION})"
        )
    kind = data["kind"]
    if kind not in KINDS:
        raise InvalidEntry(f"outbox entry kind {kind!r} is not one of {', '.join(KINDS)}")
    if not data["server_url"].startswith(("http://", "https://")):
        raise InvalidEntry("outbox entry field 'server_url' is not an http(s) URL")
    files = data.get("files")
    if files is not None and not all(isinstance(f, str) for f in files):
        raise InvalidEntry("outbox entry field 'files' must be a list of paths")
    if kind == "update" and not data.get("id"):
        raise InvalidEntry("an outbox 'update' entry needs the field 'id'")
    if kind == "reply" and not data.get("reply_to"):
        raise InvalidEntry("an outbox 'reply' entry needs the field 'reply_to'")
    if kind == "post" and not data.get("pending_post_id"):
        raise InvalidEntry("an outbox 'post' entry needs the field 'pending_post_id'")
    if data.get("user") and data.get("channel"):
        raise InvalidEntry("an outbox entry names both a user and a channel")
    return data


def entry_from_json(
    text: str | bytes, path: Path | None = None, *, active: bool = False
) -> OutboxEntry:
    """Decode and validate one entry (JSON only)."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidEntry(f"outbox entry is not valid JSON ({exc.__class__.__name__})") from None
    return OutboxEntry(**validate_entry(data), path=path, active=active)


# ---------------------------------------------------------------- files


def outbox_dir() -> Path:
    """``<user_data_dir()>/outbox`` (honours ``MATTERMOST_NOTIFY_DATA_DIR``)."""
    return user_data_dir() / "outbox"


_warned_modes: set[str] = set()


def _read_entry(path: Path, *, active: bool = False) -> OutboxEntry:
    try:
        data, mode = read_private(path, MAX_ENTRY_BYTES)
    except ValueError as exc:
        raise InvalidEntry(f"outbox entry is {exc}") from None
    if mode & 0o077 and str(path) not in _warned_modes:
        _warned_modes.add(str(path))
        warn(f"outbox entry {path} is readable by other users (mode {mode:o}); it should be 0600")
    return entry_from_json(data, path, active=active)


def _quarantine(path: Path, exc: Exception) -> None:
    """Rename an invalid entry aside so it never blocks the queue; `drop` removes it."""
    log.warning("outbox entry %s is invalid and was set aside: %s", path.name, exc)
    with contextlib.suppress(OSError):
        os.replace(path, path.with_name(path.name + _INVALID_SUFFIX))


def _normalize_url(url: str | None) -> str:
    return (url or "").rstrip("/")


class _SpoolLock:
    """The lock of a spool: held by its live owner; taken by a probe only when it is gone."""

    def __init__(self, spool_dir: Path) -> None:
        from filelock import FileLock

        self.lock = FileLock(str(spool_dir / _LOCK_NAME), thread_local=False, mode=0o600)

    def try_acquire(self) -> bool:
        from filelock import Timeout

        try:
            self.lock.acquire(timeout=0, blocking=False)
        except Timeout:
            return False
        except OSError as exc:
            log.debug("cannot probe outbox lock in %s: %s", self.lock.lock_file, exc)
            return False
        return True

    def release(self) -> None:
        with contextlib.suppress(Exception):
            self.lock.release(force=True)


def _entry_files(spool_dir: Path, suffix: str = _SUFFIX) -> list[Path]:
    try:
        names = [
            e.name
            for e in os.scandir(spool_dir)
            if e.name.endswith(suffix) and not e.name.startswith(".")
        ]
    except FileNotFoundError:
        return []
    return [spool_dir / n for n in sorted(names)]


def _spool_dirs(root: Path) -> list[Path]:
    try:
        return sorted(
            Path(e.path)
            for e in os.scandir(root)
            if e.name.startswith(_SPOOL_PREFIX) and e.is_dir(follow_symlinks=False)
        )
    except FileNotFoundError:
        return []


def _spools(root: Path, *, orphans_only: bool) -> Iterator[tuple[Path, bool]]:
    """``(spool_dir, orphan)`` for each spool under ``root``; an orphan's lock is held
    while the caller works on it, and the spool is removed afterwards when empty."""
    for spool_dir in _spool_dirs(root):
        probe = _SpoolLock(spool_dir)
        orphan = probe.try_acquire()
        if not orphan and orphans_only:
            continue  # a live process owns it
        try:
            yield spool_dir, orphan
            if orphan and orphans_only:
                _remove_spool_dir(spool_dir)
        finally:
            if orphan:
                probe.release()


def _remove_spool_dir(spool_dir: Path) -> None:
    """Remove an empty spool (its lock file last); leaves it when anything remains."""
    if _entry_files(spool_dir):
        return
    with contextlib.suppress(OSError):
        for e in os.scandir(spool_dir):
            if e.name.startswith(".") and e.name.endswith(".tmp"):
                os.unlink(e.path)
    with contextlib.suppress(OSError):
        os.unlink(spool_dir / _LOCK_NAME)
    with contextlib.suppress(OSError):
        os.rmdir(spool_dir)


# ---------------------------------------------------------------- the spool of one sender

# reentrant: a signal handler that sends runs on the thread it interrupted, maybe inside it
_seq_lock = threading.RLock()
_last_seq = 0


def _next_name() -> str:
    """A file name that sorts in creation order, across threads and processes."""
    global _last_seq
    with _seq_lock:
        seq = max(time.time_ns(), _last_seq + 1)
        _last_seq = seq
    return f"{seq:020d}-{os.getpid():07d}-{secrets.token_hex(3)}{_SUFFIX}"


class Spool:
    """The outbox directory of one live :class:`BackgroundSender`.

    Holds the spool's lock for as long as it is open, so no other process
    adopts its entries while this one is delivering them.
    """

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else outbox_dir()
        ensure_private_dir(self.root)
        while True:  # 2**64 names: a clash is not worth a limit
            path = self.root / f"{_SPOOL_PREFIX}{secrets.token_hex(8)}"
            with contextlib.suppress(FileExistsError):
                path.mkdir(mode=0o700)
                break
        self.dir = path
        self._lock = _SpoolLock(path)
        self._lock.try_acquire()  # a fresh directory: nobody else holds it
        self._pid = os.getpid()
        self.closed = False

    def write(self, entry: OutboxEntry) -> None:
        """Write ``entry`` (a new file the first time, then in place)."""
        if entry.path is None:
            entry.path = self.dir / _next_name()
        write_private(entry.path, entry.to_json(), fsync=False)

    def remove(self, entry: OutboxEntry) -> None:
        if entry.path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)

    def adopt_orphans(self, server_url: str | None) -> list[OutboxEntry]:
        """Move the entries of dead processes' spools for ``server_url`` into this spool.

        Returns them in creation order. Entries for another server stay where they
        are; invalid entries are set aside.
        """
        want = _normalize_url(server_url)
        adopted: list[OutboxEntry] = []
        for spool_dir, _ in _spools(self.root, orphans_only=True):
            if spool_dir == self.dir:
                continue
            for path in _entry_files(spool_dir):
                try:
                    entry = _read_entry(path)
                except FileNotFoundError:
                    continue
                except (InvalidEntry, OSError) as exc:
                    _quarantine(path, exc)
                    continue
                if _normalize_url(entry.server_url) != want:
                    continue
                entry.path = self.dir / path.name
                try:
                    os.replace(path, entry.path)
                except OSError as exc:
                    log.warning("cannot adopt outbox entry %s: %s", path.name, exc)
                    continue
                adopted.append(entry)
        adopted.sort(key=lambda e: e.entry_id)
        if adopted:
            log.info("adopted %d message(s) left in the outbox by an earlier process", len(adopted))
        return adopted

    def close(self) -> None:
        """Release the spool; an empty one is removed, a non-empty one becomes an orphan."""
        if self.closed:
            return
        self.closed = True
        if os.getpid() != self._pid:  # a forked child does not own its parent's spool
            return
        _remove_spool_dir(self.dir)
        self._lock.release()


# ---------------------------------------------------------------- the whole outbox


def has_entries() -> bool:
    """Whether any entry waits (one directory listing per spool; cheap when empty)."""
    return any(_entry_files(d) for d in _spool_dirs(outbox_dir()))


def list_entries() -> list[OutboxEntry]:
    """Every valid entry in the outbox, oldest first.

    ``active`` entries belong to a live process that is delivering them;
    the others were left by processes that exited. Invalid files are
    reported in the log and skipped.
    """
    out: list[OutboxEntry] = []
    for spool_dir, orphan in _spools(outbox_dir(), orphans_only=False):
        for path in _entry_files(spool_dir):
            try:
                out.append(_read_entry(path, active=not orphan))
            except FileNotFoundError:
                continue
            except (InvalidEntry, OSError) as exc:
                log.warning("outbox entry %s is invalid: %s", path.name, exc)
    out.sort(key=lambda e: e.entry_id)
    return out


def drop_entries(ids: Iterable[str] | None = None) -> int:
    """Delete entries left by exited processes; all of them when ``ids`` is None.

    ``ids`` are entry ids as shown by :func:`list_entries` (a unique prefix
    is enough). Entries of a live process are never dropped (it is sending
    them). Returns the number of entry files removed (invalid ones included
    when ``ids`` is None).
    """
    wanted = None if ids is None else [str(i) for i in ids if i]
    removed = 0
    for spool_dir, _ in _spools(outbox_dir(), orphans_only=True):
        candidates = _entry_files(spool_dir)
        if wanted is None:
            candidates += _entry_files(spool_dir, _INVALID_SUFFIX)
        for path in candidates:
            stem = path.name.split(".", 1)[0]
            if wanted is not None and not any(stem.startswith(w) for w in wanted):
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                removed += 1
    return removed
