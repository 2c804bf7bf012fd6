"""Texts of the job messages: plain functions, no IPython needed.

One set of texts for every kind of job: a ``%%notify_on_done`` cell, a function or
block under :func:`mattermost_notify.on_done`, a command under ``mattermost-notify
run``, and a kernel that died while running one of them.

A job notification is a *start* post (``running``), a *reply* in its thread when the
job ends (a new post, so Mattermost alerts the reader: edits alert nobody) and an
*edit* of the start post to its final state.
"""

from __future__ import annotations

import getpass
import re
import reprlib
import signal
import socket
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

__all__ = [
    "CellContext",
    "Outcome",
    "describe_exit",
    "final_edit_message",
    "first_line",
    "format_elapsed",
    "format_traceback",
    "kernel_died_message",
    "outcome_of",
    "output_tail",
    "reply_message",
    "running_message",
    "short_repr",
    "standalone_message",
    "strip_ansi",
    "traceback_tail",
]

Status = Literal["ok", "failed", "interrupted", "died"]

#: characters of the traceback tail put in the message; longer tracebacks are attached
TAIL_CHARS = 1500
TAIL_LINES = 15
REPR_CHARS = 200

_ICON: dict[str, str] = {
    "running": ":hourglass_flowing_sand:",
    "ok": ":white_check_mark:",
    "failed": ":x:",
    "interrupted": ":warning:",
    "died": ":skull:",
}
_WORD: dict[str, str] = {
    "ok": "Done",
    "failed": "Failed",
    "interrupted": "Interrupted",
    "died": "Died",
}
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
# frames of these modules are machinery, not the user's code
_MACHINERY = ("IPython.", "ipykernel.", "mattermost_notify.", "traitlets.")


@dataclass(frozen=True)
class CellContext:
    """What the start message says about the job (a cell, a function, a command)."""

    first_line: str
    title: str | None = None
    notebook: str | None = None
    host: str = field(default_factory=lambda: _user_at_host())
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    what: str = "a cell"  # the label when there is neither a title nor a first line
    cell_number: int | None = None

    @property
    def label(self) -> str:
        """The title given with ``-m``; else the notebook's name and the cell's number
        (``analysis.ipynb`` cell [12]); else the cell's number and first line."""
        if self.title:
            return self.title
        number = f"cell [{self.cell_number}]" if self.cell_number else None
        if self.notebook and number:
            return f"{_inline_code(Path(self.notebook).name)} {number}"
        line = _inline_code(self.first_line) if self.first_line else None
        if number and line:
            return f"{number} {line}"
        return number or line or self.what

    @property
    def where(self) -> str:
        parts = []
        if self.first_line and self.cell_number and not self.title and self.notebook:
            parts.append(f"{_inline_code(self.first_line)},")  # the label has no code
        if self.notebook and (self.title or not self.cell_number):
            parts.append(f"notebook {_inline_code(Path(self.notebook).name)}")
        parts.append(f"on {_inline_code(self.host)}")
        return " ".join(parts)


@dataclass(frozen=True)
class Outcome:
    """How a cell ended."""

    status: Status
    elapsed: float
    value_repr: str | None = None
    error: str | None = None  # "ZeroDivisionError: division by zero"
    traceback: str | None = None  # the full traceback, plain text
    finished_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    output: str | None = None  # the last lines of a command's output (``run``)
    output_label: str = "Last lines of output"

    @property
    def traceback_is_long(self) -> bool:
        if self.traceback is None:
            return False
        return traceback_tail(self.traceback) != self.traceback.rstrip("\n")


def _user_at_host() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no user name (containers): the host alone
        return socket.gethostname()
    return f"{user}@{socket.gethostname()}"


def _inline_code(text: str) -> str:
    text = text.replace("`", "'")
    return f"`{text}`"


def _fence(text: str) -> str:
    """A fenced code block that cannot be closed early by backticks in ``text``."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}\n{text.rstrip()}\n{ticks}"


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def first_line(cell: str, limit: int = 80) -> str:
    """The first line of the cell that is neither blank nor a comment, shortened."""
    for line in cell.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return stripped if len(stripped) <= limit else stripped[: limit - 1] + "…"
    return ""


def format_elapsed(seconds: float) -> str:
    """``0.42 s``, ``12.3 s``, ``3 min 04 s``, ``2 h 05 min``."""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    hours, rest = divmod(whole, 3600)
    if hours < 48:
        return f"{hours} h {rest // 60:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


_repr = reprlib.Repr()
_repr.maxstring = REPR_CHARS
_repr.maxother = REPR_CHARS
_repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxdict = 10


def short_repr(value: object, limit: int = REPR_CHARS) -> str:
    """A repr that is short, single-line-ish, and never raises."""
    try:
        text = _repr.repr(value)
    except Exception as exc:  # a broken __repr__ must not lose the notification
        text = f"<{type(value).__name__} (repr failed: {type(exc).__name__})>"
    text = strip_ansi(text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def format_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` from the first frame of user code (IPython's frames cut)."""
    tb = exc.__traceback__
    while tb is not None and str(tb.tb_frame.f_globals.get("__name__", "")).startswith(_MACHINERY):
        tb = tb.tb_next
    if tb is None:  # e.g. a SyntaxError raised before the cell ran
        tb = exc.__traceback__
    try:
        text = "".join(traceback.format_exception(type(exc), exc, tb))
    except Exception:
        text = f"{type(exc).__name__}: (traceback could not be formatted)\n"
    return strip_ansi(text)


def traceback_tail(text: str, lines: int = TAIL_LINES, chars: int = TAIL_CHARS) -> str:
    """The last ``lines`` lines of a traceback, at most ``chars`` characters."""
    kept = text.rstrip("\n").splitlines()[-lines:]
    tail = "\n".join(kept)
    if len(tail) > chars:
        tail = "…" + tail[-(chars - 1) :]
    full = text.rstrip("\n")
    return full if tail == full else tail


def _error_line(exc: BaseException) -> str:
    text = str(exc)
    name = type(exc).__name__
    line = f"{name}: {text}" if text else name
    line = strip_ansi(line).replace("\n", " ")
    return line if len(line) <= 300 else line[:299] + "…"


def outcome_of(
    exc: BaseException | None,
    elapsed: float,
    value: object = None,
    *,
    include_result: bool = True,
) -> Outcome:
    """Build the :class:`Outcome` of a cell from its exception (or its value)."""
    if exc is None:
        value_repr = short_repr(value) if include_result and value is not None else None
        return Outcome("ok", elapsed, value_repr=value_repr)
    status: Status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
    tb = None if status == "interrupted" else format_traceback(exc)
    return Outcome(status, elapsed, error=_error_line(exc), traceback=tb)


def describe_exit(returncode: int) -> str:
    """``exit status 3``, ``killed by SIGKILL: probably out of memory``, ... .

    ``returncode`` as :class:`subprocess.Popen` gives it: negative for a signal.
    """
    if returncode >= 0:
        return f"exit status {returncode}"
    number = -returncode
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    if number == signal.SIGKILL:
        return f"killed by {name}: probably out of memory"
    if number in (signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGABRT):
        return f"killed by {name}: it crashed"
    return f"killed by {name}"


def output_tail(text: str, lines: int) -> str | None:
    """The last ``lines`` lines of ``text`` (ANSI codes removed), or None when empty."""
    if lines <= 0:
        return None
    text = strip_ansi(text.replace("\r\n", "\n")).rstrip()
    if not text:
        return None
    # a progress bar redraws its line with \r: keep what the line showed last
    kept = [line.rsplit("\r", 1)[-1] for line in text.split("\n")[-lines:]]
    return traceback_tail("\n".join(kept), lines=lines, chars=TAIL_CHARS * 2)


def _when(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _started(ctx: CellContext) -> str:
    """``notebook `x.ipynb` on `alice@host`, started 2026-...``"""
    return f"{ctx.where}, started {_when(ctx.started_at)}"


def running_message(ctx: CellContext) -> str:
    return f"{_ICON['running']} **Running** {ctx.label}\n{_started(ctx)}"


def _details(outcome: Outcome) -> list[str]:
    lines: list[str] = []
    if outcome.status == "ok" and outcome.value_repr is not None:
        lines.append(f"Result: {_inline_code(outcome.value_repr)}")
    if outcome.status in ("failed", "died") and outcome.error:
        lines.append(f"**{outcome.error}**")
    if outcome.status == "failed" and outcome.traceback:
        lines.append(_fence(traceback_tail(outcome.traceback)))
        if outcome.traceback_is_long:
            lines.append("The full traceback is attached.")
    if outcome.output:
        lines.append(f"{outcome.output_label}:")
        lines.append(_fence(outcome.output))
    return lines


def _headline(ctx: CellContext, outcome: Outcome) -> str:
    word = _WORD[outcome.status]
    prep = "in" if outcome.status == "ok" else "after"
    return (
        f"{_ICON[outcome.status]} **{word}** {prep} {format_elapsed(outcome.elapsed)}: {ctx.label}"
    )


def reply_message(ctx: CellContext, outcome: Outcome, notes: list[str] | None = None) -> str:
    """The thread reply posted when the cell ends."""
    return "\n".join([_headline(ctx, outcome), *_details(outcome), *(notes or [])])


def standalone_message(ctx: CellContext, outcome: Outcome, notes: list[str] | None = None) -> str:
    """One message when there was no start post (``--after``, ``%autonotify``)."""
    return "\n".join([_headline(ctx, outcome), _started(ctx), *_details(outcome), *(notes or [])])


def final_edit_message(ctx: CellContext, outcome: Outcome) -> str:
    """The start post, edited to its final state (short: the details are in the reply)."""
    extra = ""
    if outcome.status in ("failed", "died") and outcome.error:
        extra = f"\n**{outcome.error}**"
    return (
        f"{_headline(ctx, outcome)}\n{_started(ctx)}, finished {_when(outcome.finished_at)}{extra}"
    )


def kernel_died_message(
    ctx: CellContext,
    *,
    elapsed: float,
    cell_number: int | None,
    exit_detail: str | None,
    cell_output: str | None = None,
    late_note: str | None = None,
) -> str:
    """The reply (or message) when the kernel running a notified cell died."""
    if ctx.cell_number:  # the label names the cell, as the "running" post did
        what = ctx.label
    else:
        what = f"cell [{cell_number}] {ctx.label}" if cell_number is not None else ctx.label
    lines = [
        f"{_ICON['died']} **The kernel died** while running {what}",
        f"{_started(ctx)}, running for {format_elapsed(elapsed)}",
    ]
    if exit_detail:
        lines.append(f"**{exit_detail}**")
    if cell_output:
        lines.append("The cell's last output:")
        lines.append(_fence(cell_output))
    if late_note:
        lines.append(late_note)
    return "\n".join(lines)
