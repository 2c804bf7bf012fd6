"""One validator per kind of input, and how a message becomes posts.

The client, the background sender, the functional API and the command line all check
their arguments here, so a bad argument gets the same exception and wording whichever
way it came in. Nothing here talks to a server.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .errors import FileError, MessageError

__all__ = [
    "CONTINUED",
    "CUT_MARKER",
    "MAX_FILES_PER_POST",
    "MAX_MESSAGE_RUNES",
    "FileSpec",
    "check_fields",
    "check_files",
    "check_id",
    "check_message",
    "check_name",
    "check_props",
    "check_target",
    "clean_text",
    "cut_message",
    "plan_posts",
    "split_message",
]

MAX_MESSAGE_RUNES = 16383
MAX_FILES_PER_POST = 10
CUT_MARKER = "\n\n… (message cut: {n} more characters not shown)"
CONTINUED = "(continued {i}/{n})\n"

_NAME = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")

E = TypeVar("E", bound=Exception)


@dataclass(frozen=True)
class FileSpec:
    """A file checked for sending: its path, the name it is sent under, its size."""

    path: Path
    name: str
    size: int


def check_message(message: Any, *, has_files: bool) -> str:
    """``message`` if it can be sent (a str, not blank unless files go with it, no NUL)."""
    if not isinstance(message, str):
        raise MessageError(
            f"the message must be a str, got {type(message).__name__}"
            + (" (decode bytes first)" if isinstance(message, bytes) else "")
        )
    if not message.strip() and not has_files:
        raise MessageError("the message is empty (and no files are attached)")
    if "\x00" in message:
        raise MessageError("the message contains a NUL character")
    return clean_text(message)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """``text`` with every lone surrogate (what ``os.fsdecode`` makes of a file name that
    is not UTF-8) replaced by U+FFFD, as the server itself would: the same text then goes
    out whether it is sent at once, in the background or from the outbox."""
    return _LONE_SURROGATE.sub("\ufffd", text) if _LONE_SURROGATE.search(text) else text


def check_id(id: Any, what: str = "message id") -> str:
    """``id`` if it is a usable message id (a non-blank str of at most 256 characters)."""
    if not isinstance(id, str) or not id.strip():
        raise MessageError(f"the {what} must be a non-empty string, got {id!r}")
    if len(id) > 256:
        raise MessageError(f"the {what} {id[:40]!r}... is longer than 256 characters")
    return id


def check_name(name: Any, kind: str) -> str:
    """A user or channel name (``kind``: "user name" or "channel name"), normalised:
    no leading ``@``/``~``, lower case."""
    if not isinstance(name, str):
        raise MessageError(f"the {kind} must be a string, got {type(name).__name__}")
    clean = name.strip().lstrip("@~" if kind == "user name" else "~#").lower()
    if not _NAME.match(clean) or clean.strip(".") == "":
        # ("." and ".." would be dot segments of the request path); a display name
        # ("Town Square") instead of the name from the URL ("town-square") gets a guess
        guess = "-".join(clean.split())
        hint = f"; did you mean {guess!r}?" if guess != clean and _NAME.match(guess) else ""
        raise MessageError(
            f"invalid {kind} {name[:80]!r}: use the name (handle) as in its URL, not the "
            f"display name: letters, digits, '.', '_' and '-' only{hint}"
        )
    return clean


def check_target(user: str | None, channel: str | None) -> None:
    """A message goes to a user or to a channel, never both."""
    if user is not None and channel is not None:
        raise MessageError(f"give either a user ({user!r}) or a channel ({channel!r}), not both")


def check_props(props: Any) -> dict[str, Any] | None:
    """A copy of ``props`` (a mapping) or None."""
    if props is None:
        return None
    if not isinstance(props, Mapping):
        raise MessageError(f"props must be a mapping, got {type(props).__name__}")
    return dict(props)


def check_files(files: Any) -> list[FileSpec]:
    """Every file exists, is a regular, readable, non-empty file; no server involved."""
    if files is None:
        return []
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    if not isinstance(files, Iterable) or isinstance(files, (bytes, Mapping)):
        raise FileError(f"files must be a list of paths, got {type(files).__name__}")
    specs: list[FileSpec] = []
    for item in files:
        if not isinstance(item, (str, os.PathLike)):
            raise FileError(f"a file must be given by its path, got {type(item).__name__}")
        path = Path(item).expanduser()
        shown = str(path)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise FileError(f"file {shown!r} does not exist", shown) from None
        except OSError as exc:
            raise FileError(f"cannot access file {shown!r}: {exc.strerror}", shown) from None
        if stat.S_ISDIR(st.st_mode):
            raise FileError(f"{shown!r} is a directory, not a file", shown)
        if not stat.S_ISREG(st.st_mode):
            raise FileError(f"{shown!r} is not a regular file", shown)
        try:
            with open(path, "rb") as fh:
                fh.read(1)
        except OSError as exc:
            raise FileError(f"file {shown!r} is not readable: {exc.strerror}", shown) from None
        if st.st_size == 0:
            raise FileError(f"file {shown!r} is empty (the server refuses empty uploads)", shown)
        specs.append(FileSpec(path, path.name, st.st_size))
    return specs


def check_fields(
    data: Mapping[str, Any],
    fields: Mapping[str, tuple[tuple[type, ...], bool]],
    error: type[E],
    source: str,
) -> None:
    """Check a decoded JSON object against ``fields`` (name -> (types, required)).

    Unknown keys, missing required ones and wrong types (a bool is never a number)
    raise ``error`` naming ``source`` and the field.
    """
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise error(f"{source} has unknown fields: {', '.join(unknown)}")
    for name, (types, required) in fields.items():
        if name not in data:
            if required:
                raise error(f"{source} is missing the field {name!r}")
            continue
        value = data[name]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            raise error(
                f"{source}: field {name!r} has the wrong type ({type(value).__name__}, "
                f"expected {' or '.join(t.__name__ for t in types)})"
            )


def split_message(text: str, limit: int) -> list[str]:
    """Split ``text`` into chunks of at most ``limit`` runes, at line ends where possible.

    A rune is a code point, as a Python ``str`` counts them (and the server too).
    """
    chunks: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = rest.rfind("\n", 0, limit + 1)
        if cut < limit // 2:
            cut = rest.rfind(" ", 0, limit + 1)
        if cut < limit // 2:
            cut = limit
        chunk, rest = rest[:cut], rest[cut:]
        if rest[:1] in ("\n", " "):
            rest = rest[1:]
        chunks.append(chunk)
    if rest or not chunks:
        chunks.append(rest)
    return chunks


def cut_message(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` runes with a visible marker when it is longer."""
    total = len(text)
    if total <= limit:
        return text
    keep = limit - len(CUT_MARKER.format(n=total))
    while len(CUT_MARKER.format(n=total - keep)) + keep < limit:
        keep += 1  # fewer hidden characters may need fewer digits
    return text[:keep] + CUT_MARKER.format(n=total - keep)


def plan_posts(
    message: str, specs: Sequence[FileSpec], limit: int
) -> list[tuple[str, list[FileSpec]]]:
    """The posts of one message: ``(text, files)`` each.

    A message longer than ``limit`` runes becomes several posts marked "(continued i/n)";
    the first post carries the first 10 files, the files beyond go in extra posts after
    the text.
    """
    if len(message) <= limit:
        chunks = [message]
    else:
        guess = split_message(message, limit - len(CONTINUED.format(i=999, n=999)))
        chunks = [
            (CONTINUED.format(i=i + 1, n=len(guess)) if i else "") + chunk
            for i, chunk in enumerate(guess)
        ]
    batches = [
        list(specs[i : i + MAX_FILES_PER_POST]) for i in range(0, len(specs), MAX_FILES_PER_POST)
    ]
    plan: list[tuple[str, list[FileSpec]]] = [
        (chunk, batches[0] if i == 0 and batches else []) for i, chunk in enumerate(chunks)
    ]
    plan += [("", batch) for batch in batches[1:]]
    return plan
