"""Message hooks: the record of a sent message, so it can be updated later.

A hook holds the user's message id, the server URL, the bot's user id, the channel and
post ids, the thread root and when it was created: never the token. It is stored as
versioned JSON, checked field by field when read (never pickle or eval), and written
atomically (temporary file + ``os.replace``) with mode 0600.

:func:`read_hook` also reads the original package's 4-line text files::

    [Mattermost-Notify Message Hook]
    <id>
    <channel_id>
    <post_id>

:class:`HookStore` keeps many hooks in one JSON file, guarded by a :mod:`filelock` lock,
so several processes (kernels, scripts) can share it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ._checks import check_fields
from ._files import read_text_file, write_private
from .config import user_data_dir
from .errors import HookError

__all__ = [
    "HOOK_SCHEMA",
    "HOOK_VERSION",
    "LEGACY_HEADER",
    "HookStore",
    "MessageHook",
    "read_hook",
    "write_hook",
]

HOOK_SCHEMA = "mattermost-notify/message-hook"
STORE_SCHEMA = "mattermost-notify/hook-store"
HOOK_VERSION = 1
LEGACY_HEADER = "[Mattermost-Notify Message Hook]"
MAX_HOOK_FILE = 1 << 20  # a hook is a few hundred bytes; a store of 1 MiB+ hooks is refused
MAX_STORE_FILE = 64 << 20

_MM_ID = re.compile(r"^[a-z0-9]{26}$")

# field -> (type(s), required)
_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "id": ((str,), True),
    "server_url": ((str, type(None)), True),
    "bot_user_id": ((str, type(None)), True),
    "channel_id": ((str,), True),
    "post_id": ((str,), True),
    "root_id": ((str, type(None)), False),
    "created_at": ((str, type(None)), False),
}


@dataclass(frozen=True)
class MessageHook:
    """Where a sent message lives. ``server_url``/``bot_user_id`` are ``None`` for hooks
    read from the original package's text files (they did not record them)."""

    id: str
    server_url: str | None
    bot_user_id: str | None
    channel_id: str
    post_id: str
    root_id: str | None = None
    created_at: str | None = None
    version: int = HOOK_VERSION

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("version")
        return {"schema": HOOK_SCHEMA, "version": self.version, **data}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "hook") -> MessageHook:
        """Build from a parsed JSON object, checking every field (HookError otherwise)."""
        if not isinstance(data, Mapping):
            raise HookError(f"{source} is not a message hook (expected a JSON object)")
        schema = data.get("schema")
        if schema != HOOK_SCHEMA:
            raise HookError(f"{source} is not a message hook (schema {schema!r})")
        version = _version(data, source)
        values = {k: v for k, v in data.items() if k not in ("schema", "version")}
        check_fields(values, _FIELDS, HookError, source)
        values = {name: values.get(name) for name in _FIELDS}
        if not values["id"]:
            raise HookError(f"{source}: the message id is empty")
        for name in ("channel_id", "post_id", "bot_user_id"):
            value = values[name]
            if value is not None and not _MM_ID.match(value):
                raise HookError(f"{source}: {name} {value[:40]!r} is not a Mattermost id")
        if values["root_id"] and not _MM_ID.match(values["root_id"]):
            raise HookError(f"{source}: root_id is not a Mattermost id")
        values["root_id"] = values["root_id"] or None
        return cls(version=version, **values)

    @classmethod
    def from_json(cls, text: str, *, source: str = "hook") -> MessageHook:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise HookError(f"{source} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
        return cls.from_dict(data, source=source)

    def check_matches(self, server_url: str, bot_user_id: str | None, *, source: str) -> None:
        """Raise HookError when the hook belongs to another server or bot."""
        if self.server_url is not None and _norm(self.server_url) != _norm(server_url):
            raise HookError(
                f"{source} (message {self.id!r}) belongs to the server {self.server_url}, "
                f"but this client talks to {server_url}"
            )
        if (
            self.bot_user_id is not None
            and bot_user_id is not None
            and self.bot_user_id != bot_user_id
        ):
            raise HookError(
                f"{source} (message {self.id!r}) was sent by the bot user {self.bot_user_id}, "
                f"but this client's token belongs to the user {bot_user_id}"
            )


def _version(data: Mapping[str, Any], source: str) -> int:
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise HookError(f"{source} has an invalid version {version!r}")
    if version > HOOK_VERSION:
        raise HookError(
            f"{source} has format version {version}; this mattermost-notify reads "
            f"version {HOOK_VERSION}: upgrade mattermost-notify"
        )
    return version


def _norm(url: str) -> str:
    return url.rstrip("/").lower()


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def write_hook(path: str | os.PathLike[str], hook: MessageHook) -> Path:
    """Write ``hook`` as JSON to ``path``: atomically, mode 0600."""
    p = Path(path).expanduser()
    try:
        write_private(p, hook.to_json())
    except IsADirectoryError:
        raise HookError(f"cannot write the hook to {p}: it is a directory") from None
    except OSError as exc:
        raise HookError(f"cannot write the hook to {p}: {exc.strerror}") from None
    return p


def _read_legacy(text: str, source: str) -> MessageHook:
    lines = [line.strip() for line in text.strip().splitlines()]
    if len(lines) < 4 or not all(lines[1:4]):
        raise HookError(
            f"{source} is a truncated hook file of the original format "
            f"(expected 4 lines: header, id, channel_id, post_id; found {len(lines)})"
        )
    if len(lines) > 4:
        raise HookError(f"{source} has {len(lines)} lines; the original hook format has 4")
    _, msg_id, channel_id, post_id = lines
    for name, value in (("channel_id", channel_id), ("post_id", post_id)):
        if not _MM_ID.match(value):
            raise HookError(
                f"{source}: {name} on line {lines.index(value) + 1} is not a Mattermost id"
            )
    return MessageHook(
        id=msg_id, server_url=None, bot_user_id=None, channel_id=channel_id, post_id=post_id
    )


def read_hook(path: str | os.PathLike[str]) -> MessageHook:
    """Read a hook file (JSON, or the original package's 4-line text format)."""
    p = Path(path).expanduser()
    source = f"hook file {p}"
    text = read_text_file(p, source, HookError, max_size=MAX_HOOK_FILE)
    if not text.strip():
        raise HookError(f"{source} is empty")
    if text.lstrip().startswith(LEGACY_HEADER):
        return _read_legacy(text, source)
    if not text.lstrip().startswith("{"):
        raise HookError(f"{source} is not a message hook (neither JSON nor the original format)")
    return MessageHook.from_json(text, source=source)


class HookStore:
    """Many hooks in one JSON file, shared safely between processes.

    Every change takes the file lock (``<path>.lock``), reads the current file, applies
    the change and replaces the file atomically; reads need no lock because the file is
    only ever replaced whole.
    """

    def __init__(self, path: str | os.PathLike[str], *, lock_timeout: float = 30.0) -> None:
        self.path = Path(path).expanduser()
        self.lock_timeout = lock_timeout
        self._lock: Any = None

    def __repr__(self) -> str:
        return f"HookStore({str(self.path)!r})"

    @classmethod
    def for_key(cls, key: str) -> HookStore:
        """The store for ``key`` (for example a notebook path) under the user data dir."""
        if not isinstance(key, str) or not key:
            raise HookError("a hook store key must be a non-empty string")
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
        return cls(user_data_dir() / "hooks" / f"{digest}.json")

    def _filelock(self) -> Any:
        if self._lock is None:
            from filelock import FileLock

            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock = FileLock(str(self.path) + ".lock", timeout=self.lock_timeout)
        return self._lock

    def _load(self) -> dict[str, MessageHook]:
        source = f"hook store {self.path}"
        if not self.path.exists():
            return {}
        text = read_text_file(self.path, source, HookError, max_size=MAX_STORE_FILE)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise HookError(f"{source} is corrupt ({exc.msg}, line {exc.lineno})") from None
        if not isinstance(data, dict) or data.get("schema") != STORE_SCHEMA:
            raise HookError(f"{source} is not a mattermost-notify hook store")
        _version(data, source)
        hooks = data.get("hooks")
        if not isinstance(hooks, dict):
            raise HookError(f"{source} is corrupt (no 'hooks' object)")
        out: dict[str, MessageHook] = {}
        for key, value in hooks.items():
            hook = MessageHook.from_dict(value, source=f"{source}, hook {key!r}")
            if hook.id != key:
                raise HookError(f"{source} is corrupt (hook {key!r} holds the id {hook.id!r})")
            out[key] = hook
        return out

    def _save(self, hooks: Mapping[str, MessageHook]) -> None:
        data = {
            "schema": STORE_SCHEMA,
            "version": HOOK_VERSION,
            "hooks": {key: hook.to_dict() for key, hook in hooks.items()},
        }
        try:
            write_private(self.path, json.dumps(data, indent=1) + "\n")
        except OSError as exc:
            raise HookError(f"cannot write hook store {self.path}: {exc.strerror}") from None

    def get(self, id: str) -> MessageHook | None:
        return self._load().get(id)

    def put(self, hook: MessageHook) -> None:
        with self._filelock():
            hooks = self._load()
            hooks[hook.id] = hook
            self._save(hooks)

    def remove(self, id: str) -> bool:
        with self._filelock():
            hooks = self._load()
            if id not in hooks:
                return False
            del hooks[id]
            self._save(hooks)
            return True

    def list(self) -> list[MessageHook]:
        return list(self._load().values())

    def __contains__(self, id: object) -> bool:
        return isinstance(id, str) and id in self._load()


def move_store(old_key: str, new_key: str) -> int:
    """Move the hooks of store ``old_key`` into store ``new_key`` (a renamed notebook).

    Hooks already in the new store win; the old store is removed. Returns the number
    of hooks moved (0 when the old store does not exist).
    """
    if old_key == new_key:
        return 0
    old = HookStore.for_key(old_key)
    if not old.path.exists():
        return 0
    new = HookStore.for_key(new_key)
    with old._filelock(), new._filelock():
        moving = old._load()
        if not moving:
            return 0
        hooks = {**moving, **new._load()}
        new._save(hooks)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(old.path)
    return len(moving)
