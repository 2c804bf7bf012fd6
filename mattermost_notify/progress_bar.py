"""Progress messages: a tqdm bar that also keeps one Mattermost message up to date.

>>> from mattermost_notify import tqdm
>>> for batch in tqdm(loader, desc="train", channel="alerts"):  # doctest: +SKIP
...     step(batch)

How it works
------------
* :class:`tqdm` is a subclass of ``tqdm.auto.tqdm``: same arguments, formatting and
  context-manager use; the local bar (an ipywidgets bar in a notebook, text in a
  terminal) still shows unless ``local=False``.
* One message per bar. It is posted when the bar is created (with ``id`` when given,
  so its hook exists and, in a notebook with the extension loaded, lands in the
  notebook-keyed store), then edited at most once per ``min_interval`` seconds.
  The newest state wins: an edit that has not reached the server yet is replaced,
  never queued behind.
* The final state always goes out on close: *done* (count, elapsed time, rate),
  *failed* (with the exception), *interrupted* (KeyboardInterrupt) or *stopped*
  (the loop was left early without an exception, e.g. ``break``). On done, stopped
  and failed a thread reply is posted so the user is alerted (an edit alerts
  nobody); ``reply=False`` turns it off.
* The loop never waits for the network, and not even for the disk: the bar hands its
  states to the client's :class:`~mattermost_notify.sender.BackgroundSender`, whose
  ``update`` only replaces the waiting edit in memory (newest wins); posting, editing
  and the outbox writes happen on the sender's threads. The client is found (the
  configuration read) once, when the bar is created, before the loop starts. A failure
  is a :class:`~mattermost_notify.errors.MattermostNotifyWarning`, never an exception in
  the loop.
* If the process dies under an open bar (SIGKILL from the out-of-memory killer), the
  bar's message is told so: the bar writes what it is, where its message is and (from
  the sender's thread, when an edit was delivered) how far it got into this process's
  job record (:mod:`mattermost_notify.process_record`) when it opens, and removes it
  when it closes. The Jupyter server extension (a kernel of a Jupyter server) or a
  watcher process (anywhere else) then replies in the bar's thread and edits the
  message to say the process died.

Exceptions in the loop body
---------------------------
tqdm's ``__iter__`` is a generator; when the loop *body* raises, Python closes that
generator with ``GeneratorExit`` while unwinding, and (on Python 3.11) the exception
itself is not visible from there: ``sys.exc_info()`` in ``close()`` shows the
``GeneratorExit``, not the user's exception. So:

* ``with tqdm(...) as bar: for x in bar: ...`` (the context-manager form) reports
  the exception exactly (type and message) from ``__exit__``; so does an exception
  raised by the iterable itself, and a ``KeyboardInterrupt`` landing inside tqdm's
  code, and ``try: ... finally: bar.close()``.
* For a plain ``for x in tqdm(...)`` loop whose body raises, ``close()`` looks at the
  frame that was running the loop: when a traceback object for that frame at its
  current instruction exists, the loop was left by an exception and the bar is
  reported *failed* with where it was raised (file, line, function, source line).
  From Python 3.12 on the exception object is attached to that traceback. On 3.11 it
  is not: it is learnt a moment later, when it is caught or reaches ``sys.excepthook``
  (:mod:`mattermost_notify.loop_exception`, which watches the frames above the loop
  with a trace function until then). With a debugger or coverage tool tracing, that
  cannot be done: a Ctrl-C is then recognised by a SIGINT handler, installed while a
  bar is open in the main thread, that notes what the previous handler raised (and
  chains to it); any other exception is reported failed and where, without its name.
  A ``SystemExit`` leaving a loop at the top of a script reaches no hook on 3.11: it is
  recognised when the exception that left the outermost frame vanishes unseen, its exit
  status read from the statement that raised it. Exit status 0 reads *stopped
  (SystemExit)*, any other *failed*, on every version.
* A ``break`` or ``return`` reads as *stopped*.

Nested bars and distributed runs
--------------------------------
Every bar has its own message. tqdm's ``leave`` keeps its meaning: a bar that is not
left (``leave=False``, or ``leave=None`` at a position other than 0) gives its message
back when it closes, and the next such bar at the same position and target edits that
message instead of posting a new one, the way a terminal reuses the line. Only the
outermost bar (position 0) posts the thread reply unless ``reply=True``.

Only rank 0 sends (``RANK``; ``LOCAL_RANK`` with ``NODE_RANK``; ``SLURM_PROCID``;
``OMPI_COMM_WORLD_RANK``; ``PMI_RANK``); ``rank_zero_only=False`` makes every rank send.
"""

from __future__ import annotations

import atexit
import dis
import gc
import getpass
import linecache
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm as _tqdm_auto
from tqdm.std import tqdm as _tqdm_std

from ._threads import signals_to_main_thread
from .errors import MessageError, warn
from .job_records import JobRecord
from .loop_exception import ExitStatusUnknown, catch_later
from .process_record import ProcessRecord, this_process
from .ranks import process_rank
from .sender import flush_all

if TYPE_CHECKING:
    from .client import Notify
    from .sender import Ticket

__all__ = ["flush", "process_rank", "progress", "tqdm", "trange"]

log = logging.getLogger("mattermost_notify.progress")

DEFAULT_MIN_INTERVAL = 5.0
_MAX_EXCEPTION_TEXT = 1500
try:  # once, at import: nothing on a bar's path makes a system call for it
    _HOST = socket.gethostname()
except OSError:  # pragma: no cover
    _HOST = "unknown host"
# Instructions at which a for loop's iterator is dropped without an exception:
# `break`/`return` inside the loop (POP_TOP), an exhausted outer iterator (FOR_ITER,
# END_FOR), a return.
_NORMAL_EXIT_OPS = frozenset(
    {"POP_TOP", "FOR_ITER", "END_FOR", "RETURN_VALUE", "RETURN_CONST", "JUMP_BACKWARD"}
)


# --------------------------------------------------------------------------- the message
# leave=False bars give their message back on close; the next transient bar at the
# same (client, target, position) edits it instead of posting a new one:
# client -> {(user, channel, position): (message id, post ticket)}.
_free_slots: weakref.WeakKeyDictionary[Any, dict[tuple[str | None, str | None, int], Any]] = (
    weakref.WeakKeyDictionary()
)
_slots_lock = threading.Lock()


def _in_tqdm_words(text: str) -> str:
    """The API's advice (``user_name=``) in tqdm's keyword arguments (``user=``)."""
    return (
        text.replace("pass user_name= or channel_name=", "pass user= or channel= to tqdm()")
        .replace("user_name=", "user=")
        .replace("channel_name=", "channel=")
    )


class _Remote:
    """The message side of one bar: its states go to the client's background sender."""

    def __init__(
        self,
        client: Notify,
        user: str | None,
        channel: str | None,
        msg_id: str,
        transient_pos: int | None,  # a leave=False bar without an id: slot user
        min_interval: float,
        mention: str | Sequence[str] | None = None,
    ) -> None:
        self.client = client
        self.mention = mention
        self.sender = client.sender
        self.user = user
        self.channel = channel
        self.msg_id = msg_id
        self.transient_pos = transient_pos
        self.post_ticket: Ticket | None = None
        self.min_interval = min_interval
        self.last_text: str | None = None
        self.last_edit = time.monotonic()

    def _can_edit(self) -> bool:
        """False in webhook mode: the start and the final state are two posts, no edits."""
        return bool(getattr(self.client, "can_edit", True))

    def start(self, text: str) -> None:
        if not self._can_edit():
            self.post_ticket = self.sender.post(text, user=self.user, channel=self.channel)
            return
        free = self._take_slot()
        if free is not None:
            self.msg_id, self.post_ticket = free
            self.sender.update(self.msg_id, text)
        else:
            self.post_ticket = self.sender.post(
                text, user=self.user, channel=self.channel, id=self.msg_id
            )

    def edit(self, text: str) -> Ticket | None:
        if self._can_edit() and not self._post_failed():
            return self.sender.update(self.msg_id, text)
        return None

    def final(self, text: str, reply: str | None) -> None:
        if not self._can_edit():
            # webhook mode: the final state is a post of its own, with the reply above it
            post = f"{reply}\n\n{text}" if reply else text
            self.sender.post(self._mention_text() + post, user=self.user, channel=self.channel)
            return
        # after a failed post the sender already warned; its edits would each fail again
        if not self._post_failed():
            self.sender.update(self.msg_id, text)
            if reply:
                self.sender.post(self._mention_text() + reply, reply_to=self.msg_id)
            self._give_slot_back()

    def _mention_text(self) -> str:
        """``"@alice "`` for the closing reply (``mention=``, else the client's setting for a
        channel); a bad name is a warning, the reply goes out without it."""
        try:
            return str(self.client.mention_text(self.user, self.channel, mention=self.mention))
        except Exception as exc:
            warn(f"progress message: no mention in the reply ({exc})")
            return ""

    def _post_failed(self) -> bool:
        ticket = self.post_ticket
        return ticket is not None and ticket.done() and ticket.exception(0) is not None

    def _slot_key(self) -> tuple[str | None, str | None, int] | None:
        if self.transient_pos is None:
            return None
        return (self.user, self.channel, self.transient_pos)

    def _take_slot(self) -> tuple[str, Ticket | None] | None:
        key = self._slot_key()
        if key is None:
            return None
        with _slots_lock:
            free = _free_slots.get(self.client, {}).pop(key, None)
        if free is None:
            return None
        ticket = free[1]
        if ticket is not None and ticket.done() and ticket.exception(0) is not None:
            return None  # that message never existed: post a new one
        return free  # type: ignore[no-any-return]

    def _give_slot_back(self) -> None:
        key = self._slot_key()
        if key is not None:
            with _slots_lock:
                _free_slots.setdefault(self.client, {})[key] = (self.msg_id, self.post_ticket)


class _BarRecord:
    """The bar's entry in this process's job record: a death report needs it.

    Written when the bar opens and removed when it closes (on the loop's thread); its
    hook and its state are written from the sender's thread when the post and an edit
    were delivered, so no iteration of the loop touches the disk.
    """

    def __init__(self, record: ProcessRecord, remote: _Remote) -> None:
        self.record = record
        self.remote = remote
        self.msg_id = remote.msg_id
        self.loop_thread = threading.get_ident()
        self._seq = 0
        self._written = 0
        self._seq_lock = threading.Lock()

    @classmethod
    def open(cls, remote: _Remote, name: str, state: str, meter: str) -> _BarRecord | None:
        """Record the bar (None when no one would report this process's death)."""
        if not remote._can_edit():
            return None  # webhook mode: no thread to reply in
        record = this_process()
        if record is None:
            return None
        mention = remote.mention
        if mention is not None and not isinstance(mention, str):
            mention = ",".join(mention)
        job = JobRecord(
            message_id=remote.msg_id,
            kind="progress",
            started_at=time.time(),
            user=remote.user,
            channel=remote.channel,
            cell_number=_cell_number(),
            notebook=_notebook(),
            title=name,
            host=_user_at_host(),
            mention=mention or "",
            state=state,
            meter=meter,
        )
        self = cls(record, remote)
        record.add(job, remote.client)
        ticket = remote.post_ticket
        if ticket is not None:
            ticket.add_done_callback(self._posted)
        return self

    def _posted(self, ticket: Ticket) -> None:
        try:
            if ticket.exception(0) is None:
                hook = self.remote.client.hooks.get(self.msg_id)
                if hook is not None:
                    self.record.set_hook(self.msg_id, hook.to_dict())
        except Exception as exc:  # pragma: no cover - defensive
            log.debug("progress message: hook not recorded: %s", exc)

    def watch_edit(self, ticket: Ticket | None, state: str, meter: str) -> None:
        """Write ``state`` to the record once the edit showing it was delivered."""
        if ticket is None:
            return
        with self._seq_lock:
            self._seq += 1
            seq = self._seq
        ticket.add_done_callback(lambda t: self._edited(t, seq, state, meter))

    def _edited(self, ticket: Ticket, seq: int, state: str, meter: str) -> None:
        if threading.get_ident() == self.loop_thread or ticket.exception(0) is not None:
            return  # not from the loop (the next delivered edit writes it)
        with self._seq_lock:
            if seq <= self._written:
                return
            self._written = seq
        self.record.set_state(self.msg_id, state, meter)

    def close(self) -> None:
        self.record.remove(self.msg_id)


def _cell_number() -> int | None:
    """The number of the running IPython cell (None outside IPython); no IPython import."""
    ipython = sys.modules.get("IPython")
    try:
        shell = ipython.get_ipython() if ipython is not None else None
        return max(int(shell.execution_count) - 1, 1) if shell is not None else None
    except Exception:
        return None


def _notebook() -> str | None:
    return os.environ.get("JPY_SESSION_NAME") or None


def _user_at_host() -> str:
    try:
        return f"{getpass.getuser()}@{_HOST}"
    except Exception:  # no user name (containers): the host alone
        return _HOST


def flush(timeout: float | None = 10.0) -> bool:
    """Wait until every background message (progress states included) was delivered.

    Returns False on timeout. The same as :func:`mattermost_notify.flush`.
    """
    return flush_all(timeout)


# --------------------------------------------------------------------------- formatting
def _code(text: str) -> str:
    return "`" + text.replace("`", "'").replace("\r", "").replace("\n", " ").strip() + "`"


def _rate_text(n: float, elapsed: float, unit: str, unit_scale: bool | float) -> str:
    if not elapsed or n <= 0:
        return ""
    scale = 1 if unit_scale is True else (unit_scale or 1)
    rate = n * scale / elapsed
    if rate >= 1 or rate == 0:
        value = _tqdm_std.format_sizeof(rate) if unit_scale else f"{rate:.3g}"
        return f"{value} {unit}/s"
    return f"{1 / rate:.3g} s/{unit}"


def _count_text(n: float, total: float | None, unit_scale: bool | float) -> str:
    scale = 1 if unit_scale is True else (unit_scale or 1)

    def fmt(x: float) -> str:
        x = x * scale
        if unit_scale:
            return _tqdm_std.format_sizeof(x)
        return f"{x:g}" if isinstance(x, float) else str(x)

    return f"{fmt(n)}/{fmt(total)}" if total else fmt(n)


def _exception_text(exc: BaseException | None, where: str | None, text: str = "") -> str:
    if exc is not None:
        text = f"{type(exc).__qualname__}: {exc}" if str(exc) else type(exc).__qualname__
    elif not text:
        text = "an exception was raised in the loop body"
    if where:
        text += f"\n{where}"
    if len(text) > _MAX_EXCEPTION_TEXT:
        text = text[: _MAX_EXCEPTION_TEXT - 3] + "..."
    return text.replace("```", "'''")


def _where(tb: TracebackType | None) -> str | None:
    """`file:line in func: source` of the innermost frame of a traceback whose source
    is known (``exit()`` raises in a frozen module: its caller is shown)."""
    if tb is None:
        return None
    shown = tb
    while True:
        if linecache.getline(tb.tb_frame.f_code.co_filename, tb.tb_lineno).strip():
            shown = tb
        if tb.tb_next is None:
            break
        tb = tb.tb_next
    if not linecache.getline(shown.tb_frame.f_code.co_filename, shown.tb_lineno).strip():
        shown = tb  # no source anywhere: the innermost frame
    tb = shown
    code = tb.tb_frame.f_code
    line = tb.tb_lineno
    source = linecache.getline(code.co_filename, line).strip()
    where = f"at {Path(code.co_filename).name}:{line} in {code.co_name}()"
    return f"{where}: {source}" if source else where


# --------------------------------------------------------------------------- exceptions
def _user_frame(frame: FrameType | None) -> FrameType | None:
    """The first frame above ``frame`` that is neither tqdm's nor ours (told by module
    name: a file path may reach the same file through a symbolic link)."""
    while frame is not None:
        module = frame.f_globals.get("__name__")
        if not (isinstance(module, str) and (module == __name__ or module.split(".")[0] == "tqdm")):
            return frame
        frame = frame.f_back
    return None


def _loop_left_by_exception(
    frame: FrameType | None,
) -> tuple[bool, BaseException | None, TracebackType | None]:
    """Was the loop in ``frame`` left by an exception (rather than ``break``/``return``)?

    Returns (raised, exception if known, traceback). While an exception unwinds a
    frame, a traceback object for that frame at its current instruction exists; on
    Python 3.12+ the exception object refers to it (on 3.11 it is kept apart, so only
    the traceback is found).
    """
    if frame is None:
        return False, None, None
    try:
        op = dis.opname[frame.f_code.co_code[frame.f_lasti]]
    except (IndexError, ValueError):
        op = ""
    if op in _NORMAL_EXIT_OPS:
        return False, None, None
    lasti = frame.f_lasti
    found: TracebackType | None = None
    for ref in gc.get_referrers(frame):
        if isinstance(ref, TracebackType) and ref.tb_frame is frame and ref.tb_lasti == lasti:
            found = ref
            break
    if found is None:
        return False, None, None
    for ref in gc.get_referrers(found):
        if isinstance(ref, BaseException) and ref.__traceback__ is found:
            return True, ref, found
    return True, None, found


# ------------------------------------------------------------------ Ctrl-C watch
# On Python 3.11 the exception that leaves a plain ``for x in bar`` loop is not visible
# when the bar closes; loop_exception learns it later, except under another trace
# function (a debugger, coverage). Then, while a bar with a message is open, a SIGINT
# handler in the main thread notes what the handler that was there before (Python's
# KeyboardInterrupt, IPython's, the user's own) raised, and hands the signal on to it.
_sigint_lock = threading.Lock()
_sigint_users = 0
_sigint_previous: Any = None
_sigint_raised: tuple[type[BaseException], str] | None = None


def _note_sigint(signum: int, frame: FrameType | None) -> None:
    global _sigint_raised
    __tracebackhide__ = True  # IPython and pytest leave this frame out of tracebacks
    previous = _sigint_previous
    try:
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            raise KeyboardInterrupt
        # SIG_IGN: ignored, as before
    except BaseException as exc:
        _sigint_raised = (type(exc), str(exc))
        raise


def _raised_by_sigint(tb: TracebackType | None) -> tuple[type[BaseException], str] | None:
    """What a Ctrl-C raised, when the exception of ``tb`` came out of our SIGINT handler."""
    while tb is not None:
        if tb.tb_frame.f_code is _note_sigint.__code__:
            return _sigint_raised
        tb = tb.tb_next
    return None


def _watch_sigint() -> bool:
    """Install the Ctrl-C note-taker (main thread only); True when it is installed."""
    global _sigint_users, _sigint_previous
    if threading.current_thread() is not threading.main_thread():
        return False
    with _sigint_lock:
        try:
            if _sigint_users == 0:
                current = signal.getsignal(signal.SIGINT)
                if current is None or current == signal.SIG_IGN:
                    return False  # not installed from Python, or ignored: leave it alone
                signal.signal(signal.SIGINT, _note_sigint)
                _sigint_previous = current
            _sigint_users += 1
            return True
        except (ValueError, OSError):  # pragma: no cover - no signals here
            return False


def _unwatch_sigint() -> None:
    global _sigint_users, _sigint_previous
    with _sigint_lock:
        _sigint_users -= 1
        if _sigint_users > 0:
            return
        _sigint_users = 0
        try:
            # restore only when nobody replaced our handler in the meantime
            if signal.getsignal(signal.SIGINT) is _note_sigint:
                signal.signal(signal.SIGINT, _sigint_previous)
        except (ValueError, OSError):  # pragma: no cover
            pass
        _sigint_previous = None


# ------------------------------------------------------------------ bars open at exit
_exit_lock = threading.Lock()
_exit_registered = False


def _close_at_exit() -> None:
    global _exit_registered
    with _exit_lock:
        if not _exit_registered:
            # registered after the sender's own handler, so it runs before it
            atexit.register(_close_open_bars_at_exit)
            _exit_registered = True


def _close_open_bars_at_exit() -> None:
    """A program that exits with a bar still open: the bar's message gets its final
    state (stopped) now, while the background sender can still deliver it."""
    for bar in list(getattr(tqdm, "_instances", ())):
        if isinstance(bar, tqdm) and bar._mm is not None:
            try:
                bar.close()
            except Exception as exc:  # pragma: no cover - never break the exit
                log.debug("progress message: not closed at exit: %s", exc)


# --------------------------------------------------------------------------- the bar
class tqdm(_tqdm_auto):  # type: ignore[misc,valid-type]
    """``tqdm.auto.tqdm`` that also keeps one Mattermost message up to date.

    Takes tqdm's own arguments, which all keep their meaning, and these:

    :param user: send the message to this user (default: the client's default target).
    :param channel: post the message in this channel.
    :param id: the message id, so ``send_update`` and hooks can reach it (default: a
        new random id).
    :param min_interval: seconds between two edits of the message (default 5).
    :param reply: post a thread reply at the end (done, stopped, failed); ``None``
        (default): only for the outermost bar (position 0).
    :param mention: users to mention in the closing reply: a name (``"alice"`` or
        ``"@alice"``) or a list. Default: the ``mention`` setting, in a channel only (a thread
        reply in a channel alerts only the thread's followers and those it mentions; in a
        direct message the recipient is alerted anyway). ``""``: nobody.
    :param local: show the local bar (default True); ``False`` sends the message only.
    :param client: the :class:`~mattermost_notify.client.Notify` to use (default:
        ``get_client()``, found when the bar is created).
    :param rank_zero_only: send only from rank 0 in a distributed run (default True).
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> tqdm:
        # tqdm starts its monitor thread here: it leaves Ctrl-C to the main thread
        with signals_to_main_thread():
            return super().__new__(cls, *args, **kwargs)  # type: ignore[no-any-return]

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        *args: Any,
        user: str | None = None,
        channel: str | None = None,
        id: str | None = None,
        min_interval: float = DEFAULT_MIN_INTERVAL,
        reply: bool | None = None,
        mention: str | Sequence[str] | None = None,
        local: bool = True,
        client: Notify | None = None,
        rank_zero_only: bool = True,
        **kwargs: Any,
    ) -> None:
        self._mm: _Remote | None = None
        self._mm_record: _BarRecord | None = None
        self._mm_state = "running"
        self._mm_closing = False
        self._mm_watching_sigint = False
        self._mm_unseen: TracebackType | None = None
        self._mm_in_with = False
        self._mm_deferred: tuple[str, str, str | None] | None = None
        self._mm_reply = reply
        self._mm_mention = mention
        if not local:
            kwargs["file"] = _NullFile()
            if _tqdm_auto.__module__ == "tqdm.auto":  # the tqdm.notebook flavour
                kwargs.setdefault("display", False)  # tqdm.notebook: no widget shown
        self._mm_local = local
        super().__init__(iterable, *args, **kwargs)
        if self.disable:
            return
        if user is not None and channel is not None:
            warn("progress message: give a user or a channel, not both; nothing is sent")
            return
        if rank_zero_only:
            rank = process_rank()
            if rank not in (None, 0):
                return
        if not (min_interval > 0):
            min_interval = DEFAULT_MIN_INTERVAL
        try:
            self._mm_start(client, user, channel, id, float(min_interval))
        except Exception as exc:  # never break the user's loop
            warn(f"progress message not started: {exc}")
            self._mm = None
        if self._mm is not None and sys.version_info < (3, 12) and sys.gettrace() is not None:
            # a debugger or coverage tracing: close() cannot learn the exception later
            self._mm_watching_sigint = _watch_sigint()
        if self._mm is not None:
            _close_at_exit()
            try:
                self._mm_record = _BarRecord.open(
                    self._mm, self._mm_name(), self._mm_state_text(), self._mm_meter_code()
                )
            except Exception as exc:  # a death would go unreported; the bar works
                log.warning("progress message: no job record: %s", exc)

    # ---- set-up ----
    def _mm_leaves(self) -> bool:
        return (abs(self.pos) == 0) if self.leave is None else bool(self.leave)

    def _mm_start(
        self,
        client: Notify | None,
        user: str | None,
        channel: str | None,
        msg_id: str | None,
        min_interval: float,
    ) -> None:
        transient_pos = None
        if msg_id is None:
            if not self._mm_leaves():
                transient_pos = abs(self.pos)
            msg_id = f"progress-{uuid.uuid4().hex[:16]}"
        if client is None:
            from .api import get_client

            try:
                client = get_client()
            except Exception as exc:
                warn(f"progress messages are off for this bar ({type(exc).__name__}: {exc})")
                return
        remote = _Remote(
            client, user, channel, msg_id, transient_pos, min_interval, self._mm_mention
        )
        text = self._mm_running_text()
        remote.last_text = text
        try:
            remote.start(text)
        except MessageError as exc:
            # no target (or a bad name): say it once, in tqdm's words; the bar's edits and
            # final state would only fail again
            warn(f"progress message not sent: {_in_tqdm_words(str(exc))}")
            return
        self._mm = remote

    @property
    def message_id(self) -> str | None:
        """The id of this bar's message (None when nothing is sent)."""
        return self._mm.msg_id if self._mm is not None else None

    # ---- formatting ----
    def _mm_meter(self, final: bool = False) -> str:
        fd = dict(self.format_dict)
        if final:
            fd["rate"] = None  # overall rate, not the smoothed one
        bar_format = fd.get("bar_format")
        if bar_format:
            fd["bar_format"] = bar_format.replace("<bar/>", "{bar:20u}").replace(
                "{bar}", "{bar:20u}"
            )
        else:
            fd["bar_format"] = "{l_bar}{bar:20u}{r_bar}" if fd.get("total") else None
        fd["ncols"] = None
        fd["ascii"] = False
        return self.format_meter(**fd)

    def _mm_meter_code(self) -> str:
        return _code(self._mm_meter())

    def _mm_running_text(self, meter: str | None = None) -> str:
        return f"⏳ {meter or self._mm_meter_code()}"

    def _mm_name(self) -> str:
        return (self.desc or "").rstrip(": ") or "progress"

    def _mm_state_text(self) -> str:
        """``60 % (60/100)``, or ``60 it`` without a total."""
        count = _count_text(self.n, self.total, self.unit_scale or False)
        if self.total:
            return f"{100 * self.n / self.total:.0f} % ({count})"
        return f"{count} {self.unit or 'it'}"

    def _mm_summary(self) -> tuple[str, float, str, str]:
        fd = self.format_dict
        n = fd["n"]
        elapsed = float(fd.get("elapsed") or 0.0)
        count = _count_text(n, fd.get("total"), fd.get("unit_scale") or False)
        rate = _rate_text(
            n - (fd.get("initial") or 0), elapsed, fd.get("unit") or "it", fd.get("unit_scale")
        )
        return count, elapsed, rate, self._mm_name()

    # ---- tqdm hooks ----
    def display(self, *args: Any, **kwargs: Any) -> Any:
        result = None
        if self._mm_local or not hasattr(self, "sp"):
            result = super().display(*args, **kwargs)
        remote = self._mm
        if remote is None or self._mm_closing or args or kwargs.get("msg") is not None:
            return result
        try:
            now = time.monotonic()
            if now - remote.last_edit < remote.min_interval:
                return result
            meter = self._mm_meter_code()
            text = self._mm_running_text(meter)
            if text != remote.last_text:
                remote.last_text = text
                remote.last_edit = now
                ticket = remote.edit(text)
                if self._mm_record is not None:
                    self._mm_record.watch_edit(ticket, self._mm_state_text(), meter)
        except Exception as exc:  # pragma: no cover - formatting bug; keep the loop alive
            log.debug("progress message: display failed: %s", exc)
        return result

    def __enter__(self) -> tqdm:
        self._mm_in_with = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            # close() (now, or earlier when a for loop over the bar was left) leaves
            # the final state to us while _mm_in_with is set: we know the exception.
            super().__exit__(exc_type, exc, tb)
        finally:
            self._mm_in_with = False
            outcome, self._mm_deferred = self._mm_deferred, None
            if outcome is not None:
                if exc is not None:
                    outcome = self._mm_classify_exception(exc, _where(tb))
                self._mm_finish(*outcome)

    def close(self) -> None:
        remote = getattr(self, "_mm", None)
        if remote is None or getattr(self, "_mm_closing", True) or sys.is_finalizing():
            # (at interpreter shutdown no thread can start: sending would hang the exit;
            # the bars still open at exit were closed by _close_open_bars_at_exit)
            super().close()
            return
        self._mm_closing = True
        try:
            outcome = self._mm_classify_close(sys._getframe(1))
        except Exception:  # pragma: no cover - defensive
            outcome = ("stopped", "", None)
        if self._mm_watching_sigint:
            self._mm_watching_sigint = False
            _unwatch_sigint()
        unseen, self._mm_unseen = self._mm_unseen, None
        try:
            super().close()
        finally:
            if self._mm_in_with:
                # `with` form: __exit__ knows the exception exactly; it sends the final.
                self._mm_deferred = outcome
            elif unseen is None or not self._mm_finish_when_caught(unseen, outcome):
                self._mm_finish(*outcome)

    def _mm_finish_when_caught(
        self, tb: TracebackType, outcome: tuple[str, str, str | None]
    ) -> bool:
        """Send the final state once the exception that left the loop is caught (Python
        3.11 hides it from close()); ``outcome`` if it is gone unseen."""
        where = _where(tb)

        def settle(exc: BaseException | None) -> None:
            self._mm_finish(*(outcome if exc is None else self._mm_classify_exception(exc, where)))

        return catch_later(tb, settle)

    # ---- the final state ----
    def _mm_classify_close(self, caller: FrameType | None) -> tuple[str, str, str | None]:
        """(state, detail, exception text) for a close() called from ``caller``."""
        exc = sys.exc_info()[1]
        if (
            exc is not None
            and exc.__traceback__ is not None
            and exc.__traceback__.tb_frame is caller
        ):
            if isinstance(exc, GeneratorExit):
                # the for loop over this bar was left before the end: break or exception?
                user = _user_frame(caller)
                raised, found, tb = _loop_left_by_exception(user)
                if not raised:
                    return self._mm_normal_end()
                if found is None:  # Python 3.11 hides the exception
                    by_sigint = _raised_by_sigint(tb)
                    if by_sigint is not None:  # a Ctrl-C: we noted what it raised
                        kind, text = by_sigint
                        if issubclass(kind, KeyboardInterrupt):
                            return "interrupted", "KeyboardInterrupt", None
                        error = f"{kind.__qualname__}: {text}" if text else kind.__qualname__
                        return "failed", "", _exception_text(None, _where(tb), error)
                    self._mm_unseen = tb  # close() learns it when it is caught
                return self._mm_classify_exception(found, _where(tb))
            return self._mm_classify_exception(exc, _where(exc.__traceback__))
        return self._mm_normal_end()

    def _mm_normal_end(self) -> tuple[str, str, str | None]:
        if self.total is not None and self.n < self.total:
            return "stopped", "", None
        return "done", "", None

    def _mm_classify_exception(
        self, exc: BaseException | None, where: str | None
    ) -> tuple[str, str, str | None]:
        """The final state for a loop left by ``exc`` (None: an exception not known)."""
        if isinstance(exc, KeyboardInterrupt):
            return "interrupted", "KeyboardInterrupt", None
        if isinstance(exc, ExitStatusUnknown):  # Python 3.11: a failure unless shown otherwise
            return "failed", "", _exception_text(None, where, "SystemExit (exit status not known)")
        if isinstance(exc, SystemExit) and exc.code in (None, 0):
            return "stopped", "SystemExit", None
        if isinstance(exc, (GeneratorExit, StopIteration, StopAsyncIteration)):
            return self._mm_normal_end()
        return "failed", "", _exception_text(exc, where)

    def _mm_finish(self, state: str, detail: str, error: str | None) -> None:
        remote = self._mm
        if remote is None:
            return
        try:
            self._mm_state = state
            meter = _code(self._mm_meter(final=True))
            count, elapsed, rate, name = self._mm_summary()
            took = f"{elapsed:.1f} s" if elapsed < 60 else _tqdm_std.format_interval(elapsed)
            rate_part = f" ({rate})" if rate else ""

            def headline(who: str) -> str:
                if state == "done":
                    return f"✅ {who} done: {count} in {took}{rate_part}"
                if state == "failed":
                    return f"❌ {who} failed at {count} after {took}"
                if state == "interrupted":
                    return f"⏹️ {who} interrupted at {count} after {took}"
                why = f" ({detail})" if detail else ""
                return f"⏹️ {who} stopped at {count} after {took}{why}"

            block = f":\n```\n{error}\n```" if error else ""
            text = f"{meter}\n{headline(f'**{name}**')}{block}"
            reply = None
            wants_reply = self._mm_reply if self._mm_reply is not None else abs(self.pos) == 0
            if wants_reply and state in ("done", "stopped", "failed"):
                reply = f"{headline(name)} (on {_HOST}){block}"
            remote.final(text, reply)
        except Exception as exc:  # pragma: no cover - never break the user's code
            warn(f"progress message: final state not sent ({exc})")
        finally:
            self._mm = None
            record, self._mm_record = self._mm_record, None
            if record is not None:
                record.close()

    @property
    def state(self) -> str:
        """running, done, stopped, failed or interrupted (the final state once closed)."""
        return self._mm_state


class _NullFile:
    """A file that swallows the local bar (``local=False``)."""

    def write(self, s: str) -> int:
        return len(s)

    def flush(self) -> None:
        return None

    def isatty(self) -> bool:
        return False


def trange(*args: Any, **kwargs: Any) -> tqdm:
    """``tqdm(range(*args), **kwargs)`` with a Mattermost message."""
    return tqdm(range(*args), **kwargs)


def progress(
    iterable: Iterable[Any] | None = None,
    total: float | None = None,
    desc: str | None = None,
    **kwargs: Any,
) -> tqdm:
    """A progress bar whose state is kept in one Mattermost message.

    ``tqdm(iterable, total=total, desc=desc, **kwargs)``: the keywords of :class:`tqdm`
    (``user``, ``channel``, ``id``, ``min_interval``, ``reply``, ...) and tqdm's own.
    """
    return tqdm(iterable, total=total, desc=desc, **kwargs)
