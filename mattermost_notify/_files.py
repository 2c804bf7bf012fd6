"""Small files written atomically and read defensively: config, hooks, outbox, autoload.

A write goes to a temporary file in the same directory (created with ``O_EXCL`` and the
final mode, never following a link) and replaces the target with ``os.replace``, so a
reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

__all__ = ["ensure_private_dir", "read_text_file", "write_private"]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def write_private(path: Path, data: str | bytes, *, mode: int = 0o600, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` atomically with ``mode`` (0600: the owner only).

    ``fsync=False`` skips the flush to the disk (the file then survives a crash of the
    process, not a power cut in the same second).
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            if hasattr(os, "fchmod"):
                os.fchmod(fh.fileno(), mode)  # the umask may have taken bits away
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


MAX_TEXT_FILE = 1024 * 1024
"""Largest config or hook file read unless the caller says otherwise."""


def _file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_regular(path: Path, max_size: int, *, follow: bool = True) -> tuple[bytes, int]:
    """``(content, mode)`` of a regular file of at most ``max_size`` bytes.

    Opened with ``O_NONBLOCK`` (a FIFO never stalls the caller) and checked with
    ``fstat`` before reading: a directory raises :class:`IsADirectoryError`; a FIFO,
    device (``/dev/zero``) or socket, or a file larger than ``max_size``, raises
    :class:`ValueError` saying which. ``follow=False`` refuses a symbolic link.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags if follow else flags | _NOFOLLOW)
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(_file_kind(st.st_mode))
        chunks: list[bytes] = []
        size = 0
        while size <= max_size and (chunk := os.read(fd, min(65536, max_size + 1 - size))):
            size += len(chunk)
            chunks.append(chunk)
        if size > max_size:
            raise ValueError(f"larger than {max_size} bytes")
        return b"".join(chunks), stat.S_IMODE(st.st_mode)
    finally:
        os.close(fd)


def read_text_file(
    p: Path,
    source: str,
    error: type[Exception],
    *,
    encoding: str = "utf-8",
    max_size: int | None = None,
) -> str:
    """The text of a small regular file, or ``error`` naming ``source`` (missing, a
    directory, a FIFO or device, unreadable, too large, not text)."""
    limit = MAX_TEXT_FILE if max_size is None else max_size
    try:
        raw, _ = read_regular(p, limit)
    except FileNotFoundError:
        raise error(f"{source} does not exist") from None
    except IsADirectoryError:
        raise error(f"{source} is a directory") from None
    except ValueError as exc:
        raise error(f"{source} is {exc}") from None
    except OSError as exc:
        raise error(f"cannot read {source}: {exc.strerror}") from None
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError:
        raise error(f"{source} is not UTF-8 text (corrupt?)") from None


def read_private(path: Path, max_size: int) -> tuple[bytes, int]:
    """``(content, mode)`` of a regular file (not followed through a link), at most
    ``max_size`` bytes; ValueError when it is not a regular file or is larger."""
    try:
        return read_regular(path, max_size, follow=False)
    except IsADirectoryError:
        raise ValueError("a directory") from None


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (mode 0700) or check that it is our own real directory."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise OSError(errno.ENOTDIR, "not a directory", str(path))
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise OSError(errno.EPERM, "the directory belongs to another user", str(path))
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)
