"""The disk spool behind :class:`~mattermost_notify.sender.BackgroundSender`.

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
import errno
import itertools
import json
import logging
import os
import secrets
import stat
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import MattermostNotifyWarning

if TYPE_CHECKING:  # pragma: no cover
    from .client import Notify

__all__ = [
    "ENTRY_VERSION",
    "OutboxEntry",
    "Spool",
    "drop_entries",
    "entry_from_json",
    "flush_outbox",
    "list_entries",
    "outbox_dir",
    "resume_pending",
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

# ---------------------------------------------------------------- the schema

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
}


class InvalidEntry(ValueError):
    """An outbox file that is not a valid entry (corrupt, truncated, foreign, too new)."""


def validate_entry(data: object) -> dict[str, Any]:
    """Check one decoded entry against the schema; return it or raise InvalidEntry.

    The check is explicit and strict: unknown keys, wrong types, a future
    version, an unknown kind or a kind without the fields it needs are all
    refused, with a message naming the field.
    """
    if not isinstance(data, dict):
        raise InvalidEntry(f"an outbox entry must be a JSON object, not {type(data).__name__}")
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise InvalidEntry(f"unknown field(s) in outbox entry: {', '.join(unknown)}")
    for name, (types, required) in _FIELDS.items():
        if name not in data:
            if required:
                raise InvalidEntry(f"outbox entry lacks the field {name!r}")
            continue
        value = data[name]
        # bool is an int subclass: refuse it where a number is expected
        if isinstance(value, bool) or not isinstance(value, types):
            raise InvalidEntry(
                f"outbox entry field {name!r} has type {type(value).__name__}, "
                f"expected {' or '.join(t.__name__ for t in types)}"
            )
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


def entry_from_json(text: str | bytes) -> dict[str, Any]:
    """Decode and validate one entry (JSON only)."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidEntry(f"outbox entry is not valid JSON ({exc.__class__.__name__})") from None
    return validate_entry(data)


def _entry_to_json(entry: Mapping[str, Any]) -> bytes:
    validate_entry(dict(entry))
    return json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# ---------------------------------------------------------------- the public record


@dataclass(frozen=True)
class OutboxEntry:
    """One message waiting in the outbox (what ``mattermost-notify outbox list`` shows)."""

    entry_id: str
    kind: str
    server_url: str
    created_at: float
    message: str | None
    user: str | None
    channel: str | None
    id: str | None
    reply_to: str | None
    files: tuple[str, ...]
    pending_post_id: str | None
    attempts: int
    active: bool  # owned by a live process (which is delivering it)
    path: Path

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

    @classmethod
    def _from(cls, path: Path, data: Mapping[str, Any], *, active: bool) -> OutboxEntry:
        return cls(
            entry_id=path.stem,
            kind=data["kind"],
            server_url=data["server_url"],
            created_at=float(data["created_at"]),
            message=data.get("message"),
            user=data.get("user"),
            channel=data.get("channel"),
            id=data.get("id"),
            reply_to=data.get("reply_to"),
            files=tuple(data.get("files") or ()),
            pending_post_id=data.get("pending_post_id"),
            attempts=int(data.get("attempts", 0)),
            active=active,
            path=path,
        )


# ---------------------------------------------------------------- file helpers


def outbox_dir() -> Path:
    """``<user_data_dir()>/outbox`` (honours ``MATTERMOST_NOTIFY_DATA_DIR``)."""
    from .config import user_data_dir

    return Path(user_data_dir()) / "outbox"


def _ensure_private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise OSError(errno.ENOTDIR, "outbox path is not a directory", str(path))
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise OSError(errno.EPERM, "outbox directory belongs to another user", str(path))
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically with mode 0600 (temp file + rename)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


_warned_modes: set[str] = set()


def _read_entry(path: Path) -> dict[str, Any]:
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise InvalidEntry("outbox entry is not a regular file")
        if st.st_mode & 0o077 and str(path) not in _warned_modes:
            _warned_modes.add(str(path))
            _warn(
                f"outbox entry {path} is readable by other users"
                f" (mode {stat.S_IMODE(st.st_mode):o}); it should be 0600"
            )
        data = fh.read(MAX_ENTRY_BYTES + 1)
    if len(data) > MAX_ENTRY_BYTES:
        raise InvalidEntry(f"outbox entry is larger than {MAX_ENTRY_BYTES} bytes")
    return entry_from_json(data)


def _quarantine(path: Path, exc: Exception) -> None:
    """Rename an invalid entry aside so it never blocks the queue; `drop` removes it."""
    log.warning("outbox entry %s is invalid and was set aside: %s", path.name, exc)
    with contextlib.suppress(OSError):
        os.replace(path, path.with_name(path.name + _INVALID_SUFFIX))


def _warn(text: str) -> None:
    try:
        warnings.warn(text, MattermostNotifyWarning, stacklevel=3)
    except Exception:  # a user's "-W error" must not break a background thread
        log.warning("%s", text)


def _normalize_url(url: str | None) -> str:
    return (url or "").rstrip("/")


class _OrphanLock:
    """Non-blocking probe of a spool's lock: taken only when its owner is gone."""

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


def _entry_files(spool_dir: Path) -> list[Path]:
    try:
        names = [
            e.name
            for e in os.scandir(spool_dir)
            if e.name.endswith(_SUFFIX) and not e.name.startswith(".")
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

_seq_lock = threading.Lock()
_last_seq = 0
_counter = itertools.count()


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
        _ensure_private_dir(self.root)
        for _ in range(5):
            path = self.root / f"{_SPOOL_PREFIX}{secrets.token_hex(8)}"
            try:
                path.mkdir(mode=0o700)
            except FileExistsError:
                continue
            break
        else:  # pragma: no cover - 2**64 names
            raise OSError(errno.EEXIST, "cannot create an outbox spool", str(self.root))
        self.dir = path
        self._lock = _OrphanLock(path)
        if not self._lock.try_acquire():  # pragma: no cover - a fresh directory
            raise OSError(errno.EBUSY, "cannot lock the new outbox spool", str(path))
        self._pid = os.getpid()
        self.closed = False

    # entries ----------------------------------------------------------
    def add(self, entry: Mapping[str, Any]) -> Path:
        path = self.dir / _next_name()
        _write_private(path, _entry_to_json(entry))
        return path

    def rewrite(self, path: Path, entry: Mapping[str, Any]) -> None:
        _write_private(path, _entry_to_json(entry))

    def remove(self, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    def pending(self) -> list[Path]:
        return _entry_files(self.dir)

    # adoption ---------------------------------------------------------
    def adopt_orphans(self, server_url: str | None) -> list[tuple[Path, dict[str, Any]]]:
        """Move the entries of dead processes' spools for ``server_url`` into this spool.

        Returns ``(path, entry)`` pairs in creation order. Entries for another
        server stay where they are; invalid entries are set aside.
        """
        want = _normalize_url(server_url)
        adopted: list[tuple[Path, dict[str, Any]]] = []
        for spool_dir in _spool_dirs(self.root):
            if spool_dir == self.dir:
                continue
            probe = _OrphanLock(spool_dir)
            if not probe.try_acquire():
                continue  # a live process owns it
            try:
                for path in _entry_files(spool_dir):
                    try:
                        entry = _read_entry(path)
                    except FileNotFoundError:
                        continue
                    except (InvalidEntry, OSError) as exc:
                        _quarantine(path, exc)
                        continue
                    if _normalize_url(entry["server_url"]) != want:
                        continue
                    target = self.dir / path.name
                    try:
                        os.replace(path, target)
                    except OSError as exc:
                        log.warning("cannot adopt outbox entry %s: %s", path.name, exc)
                        continue
                    adopted.append((target, entry))
                _remove_spool_dir(spool_dir)
            finally:
                probe.release()
        adopted.sort(key=lambda pe: pe[0].name)
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


# ---------------------------------------------------------------- CLI functions


def _iter_entries(
    root: Path,
) -> Iterator[tuple[Path, dict[str, Any] | None, bool, Exception | None]]:
    for spool_dir in _spool_dirs(root):
        probe = _OrphanLock(spool_dir)
        orphan = probe.try_acquire()
        try:
            for path in _entry_files(spool_dir):
                try:
                    yield path, _read_entry(path), not orphan, None
                except FileNotFoundError:
                    continue
                except (InvalidEntry, OSError) as exc:
                    yield path, None, not orphan, exc
        finally:
            if orphan:
                probe.release()


def list_entries() -> list[OutboxEntry]:
    """Every valid entry in the outbox, oldest first.

    ``active`` entries belong to a live process that is delivering them;
    the others were left by processes that exited. Invalid files are
    reported in the log and skipped.
    """
    out: list[OutboxEntry] = []
    for path, data, active, exc in _iter_entries(outbox_dir()):
        if data is None:
            log.warning("outbox entry %s is invalid: %s", path.name, exc)
            continue
        out.append(OutboxEntry._from(path, data, active=active))
    out.sort(key=lambda e: e.entry_id)
    return out


def drop_entries(ids: Iterable[str] | None = None) -> int:
    """Delete entries left by exited processes; all of them when ``ids`` is None.

    ``ids`` are entry ids as shown by :func:`list_entries` (a unique prefix
    is enough). Entries of a live process are never dropped (it is sending
    them). Returns the number of entry files removed (invalid ones included
    when ``ids`` is None).
    """
    wanted = None if ids is None else [str(i) for i in ids]
    root = outbox_dir()
    removed = 0
    for spool_dir in _spool_dirs(root):
        probe = _OrphanLock(spool_dir)
        if not probe.try_acquire():
            continue
        try:
            candidates = _entry_files(spool_dir)
            if wanted is None:
                candidates += [
                    spool_dir / e.name
                    for e in os.scandir(spool_dir)
                    if e.name.endswith(_INVALID_SUFFIX)
                ]
            for path in candidates:
                stem = path.name.split(".", 1)[0]
                if wanted is not None and not any(stem.startswith(w) for w in wanted if w):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                    removed += 1
            _remove_spool_dir(spool_dir)
        finally:
            probe.release()
    return removed


def flush_outbox(client: Notify, timeout: float | None = 30.0) -> tuple[int, int]:
    """Deliver what exited processes left for ``client``'s server; wait up to ``timeout``.

    Returns ``(delivered, remaining)``: entries delivered now, and entries
    still in the outbox afterwards (for any server, those of live processes
    included). Entries that failed for good (say, a user that no longer
    exists) are reported as warnings and removed.
    """
    sender = client.sender
    tickets = sender.resume_outbox()
    sender.flush(timeout)
    delivered = sum(1 for t in tickets if t.done() and t.exception(timeout=0) is None)
    return delivered, len(list_entries())


def resume_pending(client: Notify) -> int:
    """Hand what exited processes left for ``client``'s server to its background sender.

    Meant for ``api.wakeup()``: cheap when the outbox is empty (one directory
    listing, no thread started). Returns the number of entries adopted; they
    are delivered in the background, before anything queued later.
    """
    try:
        root = outbox_dir()
        if not any(_entry_files(d) for d in _spool_dirs(root)):
            return 0
        return len(client.sender.resume_outbox())
    except Exception as exc:  # never break wakeup()
        log.warning("cannot resume the outbox: %s", exc)
        return 0
