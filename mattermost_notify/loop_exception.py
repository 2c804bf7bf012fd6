"""The exception that left a ``for`` loop, learnt a moment after the loop's iterator closed.

On Python 3.11 a generator closed while an exception unwinds the frame that iterates it
sees only ``GeneratorExit``: the interpreter holds the exception itself until something
catches it. :func:`catch_later` learns it then. Until the exception is caught (or reaches
``sys.excepthook``), a trace function watches the frames from the loop's frame up, the
way a debugger does, and hands the exception to a callback. It is switched off as soon as
the exception is known or gone, and nothing is done while another trace function (a
debugger, a coverage tool) is set.

One exception never reaches a frame or hook that could show it: a ``SystemExit`` leaving
the outermost frame of the main thread (a loop at the top of a script), which Python
handles without calling ``sys.excepthook``. When that frame is seen returning by an
exception that then vanishes unseen, it was a ``SystemExit``; its code is read from the
statement that raised it (``sys.exit()``, ``sys.exit(1)``, ``raise SystemExit(code)``,
``exit("message")``: a literal or a name), else it is an :class:`ExitStatusUnknown`.
"""

from __future__ import annotations

import ast
import atexit
import dis
import linecache
import sys
import threading
from collections.abc import Callable
from contextlib import suppress
from types import FrameType, TracebackType
from typing import Any

__all__ = ["ExitStatusUnknown", "catch_later"]

Done = Callable[[BaseException | None], None]
# trace events without an answer before giving up (the exception is usually caught
# within a few events: the frames between the loop and the handler)
_MAX_EVENTS = 10_000


class ExitStatusUnknown(SystemExit):
    """A ``SystemExit`` left the program; the statement that raised it does not tell its
    code (Python 3.11 keeps it out of sight)."""


class _Catch:
    __slots__ = ("done", "tb", "thread")

    def __init__(self, tb: TracebackType, done: Done) -> None:
        self.tb = tb  # the loop frame's traceback entry: in the exception's chain
        self.done = done
        self.thread = threading.get_ident()


_lock = threading.RLock()
_catches: list[_Catch] = []
_traced: dict[int, list[FrameType]] = {}  # thread -> frames given our f_trace
_events: dict[int, int] = {}
_leaving: set[int] = set()  # threads whose outermost frame an exception unwound
_previous_excepthook: Any = None
_at_exit_registered = False


def catch_later(tb: TracebackType, done: Done) -> bool:
    """Call ``done(exception)`` once the exception whose traceback holds ``tb`` is caught,
    or ``done(None)`` when it is gone unseen. False (``done`` never called) when it cannot
    watch: another trace function is set."""
    global _previous_excepthook, _at_exit_registered
    if sys.gettrace() not in (None, _on_call):
        return False
    me = threading.get_ident()
    with _lock:
        _catches.append(_Catch(tb, done))
        frames = _traced.setdefault(me, [])
        frame: FrameType | None = tb.tb_frame
        while frame is not None:
            if frame.f_trace is None:
                frame.f_trace = _on_event
                frames.append(frame)
            frame = frame.f_back
        _events[me] = 0
        if _previous_excepthook is None:
            _previous_excepthook = sys.excepthook
            sys.excepthook = _excepthook
        if not _at_exit_registered:  # after the sender's exit flush, so it runs first
            atexit.register(_settle_all_at_exit)
            _at_exit_registered = True
    sys.settrace(_on_call)
    return True


def _holds(head: TracebackType | None, tb: TracebackType) -> bool:
    while head is not None:
        if head is tb:
            return True
        head = head.tb_next
    return False


def _check(head: TracebackType | None = None, exc: BaseException | None = None) -> None:
    """Settle this thread's catches with what is known now: the exception on its way
    (``head``, ``exc``) or the one being handled (``sys.exc_info()``)."""
    me = threading.get_ident()
    _, handled, handled_tb = sys.exc_info()
    settled: list[tuple[_Catch, BaseException | None]] = []
    with _lock:
        _events[me] = count = _events.get(me, 0) + 1
        for catch in [c for c in _catches if c.thread == me]:
            if exc is not None and _holds(head, catch.tb):
                settled.append((catch, exc))
            elif handled is not None and _holds(handled_tb, catch.tb):
                settled.append((catch, handled))
            elif sys.getrefcount(catch.tb) <= 2 or count > _MAX_EVENTS:
                # nothing holds it any more: gone unseen; after leaving the main thread's
                # outermost frame only a SystemExit ends so (the others reach excepthook)
                gone = me in _leaving and threading.current_thread() is threading.main_thread()
                settled.append((catch, _system_exit(catch.tb) if gone else None))
        for catch, _ in settled:
            _catches.remove(catch)
        if not any(c.thread == me for c in _catches):
            _stop_watching(me)
    for catch, found in settled:
        with suppress(Exception):  # the callback never breaks the user's code
            catch.done(found)


def _stop_watching(me: int) -> None:
    global _previous_excepthook
    _leaving.discard(me)
    for frame in _traced.pop(me, []):
        if frame.f_trace is _on_event:
            frame.f_trace = None
    _events.pop(me, None)
    if sys.gettrace() is _on_call:
        sys.settrace(None)
    if not _catches and _previous_excepthook is not None and sys.excepthook is _excepthook:
        sys.excepthook = _previous_excepthook
        _previous_excepthook = None


def _on_call(frame: FrameType, event: str, arg: Any) -> None:
    """The global trace function: a new frame (``__exit__`` sees the exception)."""
    with suppress(Exception):  # a trace function must never raise
        _check()


def _on_event(frame: FrameType, event: str, arg: Any) -> Any:
    """The trace function of the frames from the loop up."""
    with suppress(Exception):
        if event == "return" and frame.f_back is None and _unwinding(frame):
            _leaving.add(threading.get_ident())
        _check(*((arg[2], arg[1]) if event == "exception" else ()))
    return _on_event if frame.f_trace is _on_event else None


def _unwinding(frame: FrameType) -> bool:
    """Is ``frame`` returning because an exception leaves it (not at a return)?"""
    return dis.opname[frame.f_code.co_code[frame.f_lasti]] not in ("RETURN_VALUE", "RETURN_CONST")


def _system_exit(tb: TracebackType) -> SystemExit:
    """The ``SystemExit`` raised at the innermost entry of ``tb``, rebuilt from the
    statement that raised it; :class:`ExitStatusUnknown` when it does not tell."""
    entries = [tb]
    while tb.tb_next is not None:
        tb = tb.tb_next
        entries.append(tb)
    if len(entries) > 1 and tb.tb_frame.f_globals.get("__name__") == "_sitebuiltins":
        tb = entries[-2]  # exit(code) or quit(code), whose source may be frozen: the call
    frame = tb.tb_frame
    try:
        node = _raising_node(frame, tb.tb_lasti)
        if isinstance(node, ast.Raise) and node.exc is not None:
            node = node.exc  # raise SystemExit / raise SystemExit(code) / raise exc
            if not isinstance(node, ast.Call):
                found = _value(node, frame)
                if isinstance(found, SystemExit):
                    return found
                if found is SystemExit:
                    return SystemExit()
                raise LookupError(node)
        if isinstance(node, ast.Call) and not node.keywords:
            # sys.exit(code) / SystemExit(code) / exit(code): one argument at most
            if not node.args:
                return SystemExit()
            if len(node.args) == 1 and not isinstance(node.args[0], ast.Starred):
                code = _value(node.args[0], frame)
                if code is None or isinstance(code, (int, str)):
                    return SystemExit(code)
    except (LookupError, ValueError, TypeError, SyntaxError, IndexError):
        pass
    return ExitStatusUnknown()


def _raising_node(frame: FrameType, lasti: int) -> ast.AST:
    """The expression or statement whose instruction at ``lasti`` raised."""
    code = frame.f_code
    line, end_line, col, end_col = list(code.co_positions())[lasti // 2]
    if line is None or end_line is None or col is None or end_col is None:
        raise LookupError
    lines = [
        text.encode("utf-8") for text in linecache.getlines(code.co_filename)[line - 1 : end_line]
    ]
    if not lines:
        raise LookupError
    lines[-1] = lines[-1][:end_col]  # columns count UTF-8 bytes
    lines[0] = lines[0][col:]
    source = b"".join(lines).decode("utf-8")
    tree = ast.parse(source if source.startswith("raise") else f"({source})")
    statement = tree.body[0]
    return statement.value if isinstance(statement, ast.Expr) else statement


def _value(node: ast.expr, frame: FrameType) -> Any:
    """A literal, or a plain name read from ``frame`` (no code of the user's is run)."""
    if isinstance(node, ast.Name):
        for scope in (frame.f_locals, frame.f_globals, frame.f_builtins):
            if node.id in scope:
                return scope[node.id]
        raise LookupError(node.id)
    return ast.literal_eval(node)


def _excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> Any:
    """Uncaught: the exception reaches the top of the program."""
    previous = _previous_excepthook or sys.__excepthook__
    with suppress(Exception):
        _check(tb, exc)
    return previous(kind, exc, tb)


def _settle_all_at_exit() -> None:
    """At exit, what was not caught yet is reported without its name."""
    with _lock:
        left = list(_catches)
        _catches.clear()
    for catch in left:
        with suppress(Exception):
            catch.done(None)
