"""Background delivery: the one mechanism for sends that must not block user code.

``client.sender`` is a :class:`BackgroundSender`: a small pool of worker
threads per client (at most :data:`DEFAULT_WORKERS`, one connection each)
that delivers what ``post``/``update`` queued. The magics, the progress
messages and ``notify(..., block=False)`` are built on it.

* **Order.** Per target, in parallel across targets. Each queued message
  has its *lanes*: its target as named (``("user", name)`` or
  ``("channel", name)``) and, for a message with an id, that id; an update
  or a reply is in the lane of the message id it edits or answers (and of
  that message's target, when this sender posted it). A message is sent
  only when every message queued before it in one of its lanes is done, so
  each target's messages, and each id's post, updates and replies, reach
  the server in the order they were queued, while different targets are
  delivered at the same time. A message that meets a temporary failure
  (server away, 5xx, 429, timeout) stays first in its lanes and is retried
  with capped exponential backoff and jitter, with the *same*
  ``pending_post_id``; nothing behind it in its lanes overtakes it, while
  the other targets go on.
* **Coalescing.** An ``update`` of a message id that already has an update
  waiting (not yet on the wire) replaces that waiting update in place: the
  newest text wins and intermediate states are never queued (the idea of
  tqdm's ``MonoWorker``: one running, one waiting). Files and props given
  to an older update and not to the newer one are kept, so the end state
  equals applying both.
* **Replies.** ``post(..., reply_to=id)`` is resolved when it is sent, so
  it may name a message that is itself still queued.
* **Failures** never raise in user code: a message that fails for good
  (unknown user, missing file, ...) resolves its :class:`Ticket` with the
  exception and emits a :class:`~mattermost_notify.errors.MattermostNotifyWarning`
  plus a log line on ``mattermost_notify.sender``. Invalid *calls* (a
  message that is not a string, a missing file, a user and a channel at
  once) raise at once, before anything is queued: they are bugs in the
  caller, not delivery failures.
* **No I/O in the caller.** ``post`` and ``update`` only check their
  arguments and append to the queue in memory; the disk and the network
  are touched by the sender's two threads (a progress bar's loop never
  waits for either).
* **Durability.** Each queued message is also written, by the sender's
  outbox thread within moments, as an entry in the disk outbox
  (:mod:`mattermost_notify.outbox`), removed once delivered. A process
  killed (SIGKILL) in the instant between ``post`` and that write loses
  that message.
* **Exit.** At interpreter exit the sender waits at most ``EXIT_GRACE``
  (0.3 s); what is still queued then is written to disk and handed to a
  short-lived detached sender process (:mod:`mattermost_notify.detached_sender`)
  that delivers it with the same exactly-once rules and exits when done or
  after 10 minutes, so the program itself exits at once.
  ``MATTERMOST_NOTIFY_DETACH_AT_EXIT=0`` (or ``sender.hand_over_at_exit = False``)
  waits up to ``exit_timeout`` (5 s) instead; whatever is left then stays on
  disk for the next process that wakes up, or ``mattermost-notify outbox flush``.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import heapq
import logging
import os
import random
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, InvalidStateError
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ._checks import check_files, check_id, check_message, check_props, check_target, clean_text
from ._threads import start_thread
from .errors import (
    MattermostNotifyError,
    MessageError,
    NetworkError,
    RateLimitedError,
    ServerError,
    warn,
)
from .outbox import OutboxEntry, Spool, list_entries

if TYPE_CHECKING:  # pragma: no cover
    from .client import Notify, SentMessage

__all__ = ["BackgroundSender", "Ticket", "flush_all"]

log = logging.getLogger("mattermost_notify.sender")

DEFAULT_EXIT_TIMEOUT = 5.0
DEFAULT_WORKERS = 8
"""Worker threads of a sender (each with its own connection): targets delivered at once."""

Lane = tuple[str, str]
#: at interpreter exit, how long to wait before handing what is left to a detached sender
EXIT_GRACE = 0.3

FileArg = str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | None


# ---------------------------------------------------------------- Ticket


class _AfterFailedPost(MessageError):
    """An edit or reply not sent because its message failed (which was warned about)."""


class Ticket:
    """The handle of one queued message.

    ``result()`` gives the :class:`~mattermost_notify.client.SentMessage` once
    delivered, or ``None`` when it failed or is not done within ``timeout``;
    ``exception()`` gives the failure. Neither ever raises, so waiting on a
    ticket cannot break the caller. A coalesced update's ticket resolves with
    the update that replaced it. ``add_done_callback(fn)`` calls ``fn(ticket)``
    when done (at once if it already is); an error in ``fn`` is logged.
    """

    __slots__ = ("_future", "kind", "message_id")

    def __init__(self, kind: str, message_id: str | None = None) -> None:
        self.kind = kind
        self.message_id = message_id
        self._future: Future[SentMessage | None] = Future()

    def done(self) -> bool:
        return self._future.done()

    def result(self, timeout: float | None = None) -> SentMessage | None:
        try:
            return self._future.result(timeout)
        except Exception:  # failed, or not done in time
            return None

    def exception(self, timeout: float | None = None) -> BaseException | None:
        try:
            return self._future.exception(timeout)
        except TimeoutError:
            return None

    def add_done_callback(self, fn: Callable[[Ticket], None]) -> None:
        self._future.add_done_callback(lambda _: fn(self))

    def _resolve(self, result: SentMessage | None, exc: BaseException | None) -> None:
        with contextlib.suppress(InvalidStateError):  # resolved already
            if exc is None:
                self._future.set_result(result)
            else:
                self._future.set_exception(exc)

    def __repr__(self) -> str:
        state = "pending"
        if self.done():
            state = "failed" if self._future.exception() is not None else "delivered"
        mid = f" id={self.message_id!r}" if self.message_id else ""
        return f"<Ticket {self.kind}{mid} {state}>"


# ---------------------------------------------------------------- queue items


class _Item:
    """A queued entry with its tickets; ``version`` counts changes, ``saved`` the one on disk.

    ``rank`` orders the items (adopted ones first), ``lanes`` are what it must stay in
    order with, ``blockers`` counts the earlier items of its lanes not done yet and
    ``after`` lists the later ones waiting for it; ``not_before`` is a backoff's end.
    """

    __slots__ = (
        "after",
        "blockers",
        "done",
        "entry",
        "inflight",
        "lanes",
        "not_before",
        "rank",
        "ready",
        "saved",
        "seq",
        "tickets",
        "version",
    )

    def __init__(self, entry: OutboxEntry, seq: int, ticket: Ticket | None) -> None:
        self.entry = entry
        self.seq = seq
        self.rank = seq
        self.lanes: tuple[Lane, ...] = ()
        self.tickets: list[Ticket] = [ticket] if ticket is not None else []
        self.version = 1
        self.saved = 1 if entry.path is not None else 0
        self.done = False
        self.inflight = False
        self.ready = False  # in the ready heap
        self.blockers = 0
        self.after: list[_Item] = []
        self.not_before = 0.0

    @property
    def kind(self) -> str:
        return self.entry.kind


MAX_REFUSALS = 4
"""Tries of a message the server keeps refusing with an answer that may be permanent
(a 500, an answer that is not Mattermost's): then it is given up, with one warning."""


def _is_transient(exc: BaseException, entry: OutboxEntry | None = None) -> bool:
    """Worth retrying later: the server is away, overloaded, or rate limiting.

    A 501 is never retried (the server lacks the feature, say file storage); a 500 or
    an answer that is not Mattermost's only :data:`MAX_REFUSALS` times in all (counted
    in the outbox entry, so also across processes); 502/503/504, network errors and 429
    as long as it takes (the server is away: every message waits alike).
    """
    from .transport import DEDUP_PENDING_ID  # (only on a failure: requests is heavy)

    if isinstance(exc, ServerError) and not (
        exc.status_code in (502, 503, 504) or exc.error_id == DEDUP_PENDING_ID
    ):
        if exc.status_code == 501:
            return False
        refusals = (entry.refusals if entry is not None else 0) + 1
        if entry is not None:
            entry.refusals = refusals
        return refusals < MAX_REFUSALS
    if isinstance(exc, NetworkError | ServerError | RateLimitedError):
        return True
    if isinstance(exc, MattermostNotifyError):
        return False
    # A requests/urllib3/socket error that escaped the transport's wrapping.
    return isinstance(exc, OSError)


def _normalize_files(files: FileArg) -> list[str] | None:
    """Absolute paths of the files, checked now with the client's own rules."""
    return [os.path.abspath(spec.path) for spec in check_files(files)] or None


# ---------------------------------------------------------------- the sender

_senders: weakref.WeakSet[BackgroundSender] = weakref.WeakSet()
_senders_lock = threading.RLock()  # (reentrant: a signal handler may flush)
_exiting = False
_exit_deadline = 0.0


def _close_all_at_exit() -> None:
    global _exiting, _exit_deadline
    _exiting = True
    with _senders_lock:
        senders = list(_senders)
    if not senders:
        return
    # A short grace, then what is left goes to a detached sender process: the program
    # exits at once even when the server is slow or away (see detached_sender.py).
    grace = time.monotonic() + min(EXIT_GRACE, max(s.exit_timeout for s in senders))
    deadline = time.monotonic() + max(s.exit_timeout for s in senders)
    _exit_deadline = deadline
    for s in senders:
        try:
            if s.flush(max(0.0, grace - time.monotonic())) or not s._hand_over():
                s.close(timeout=max(0.0, deadline - time.monotonic()))
        except Exception:  # pragma: no cover - never break interpreter exit
            log.exception("closing the background sender at exit failed")


atexit.register(_close_all_at_exit)


def flush_all(timeout: float | None = None) -> bool:
    """Wait until every open sender of this process delivered what was queued so far.

    True when all of it went out (or failed for good) within ``timeout`` seconds.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    with _senders_lock:
        senders = [s for s in _senders if not s._closed]
    ok = True
    for s in senders:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        ok = s.flush(left) and ok
    return ok


class BackgroundSender:
    """One worker thread per client that delivers queued messages in order.

    Created by ``client.sender``; use that rather than building one. ``spool``
    turns the disk outbox on (default) or off; ``outbox_root`` overrides its
    directory (default ``<user_data_dir>/outbox``).
    """

    def __init__(
        self,
        client: Notify,
        *,
        spool: bool = True,
        outbox_root: str | os.PathLike[str] | None = None,
        exit_timeout: float = DEFAULT_EXIT_TIMEOUT,
        max_backoff: float = 10.0,
        initial_backoff: float = 0.25,
        idle_timeout: float = 30.0,
        workers: int = DEFAULT_WORKERS,
    ) -> None:
        self._client = client
        #: worker threads (connections) at most: targets delivered at the same time
        self.max_workers = max(1, int(workers))
        self.server_url = client.url.rstrip("/")
        self.exit_timeout = float(exit_timeout)
        #: at exit, hand what is left to a detached sender (MATTERMOST_NOTIFY_DETACH_AT_EXIT=0:
        #: wait up to exit_timeout instead and leave the rest to the next process)
        self.hand_over_at_exit = os.environ.get("MATTERMOST_NOTIFY_DETACH_AT_EXIT", "1") != "0"
        self.max_backoff = float(max_backoff)
        self.initial_backoff = float(initial_backoff)
        self.idle_timeout = float(idle_timeout)
        self._use_spool = spool
        self._outbox_root = Path(outbox_root) if outbox_root is not None else None
        self._setup()
        with _senders_lock:
            _senders.add(self)

    # state that a forked child must rebuild
    def _setup(self) -> None:
        self._pid = os.getpid()
        # Reentrant: a signal handler that sends runs on the thread it interrupted, maybe
        # inside this very lock. Taken as `with self._lock`, never `with self._cond`:
        # Condition.__enter__ is Python code, and a handler that raises (Ctrl-C, sys.exit)
        # between its acquire and the with block leaves the lock held for good.
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        # the spool and entry files; never taken under _lock; reentrant: a handler that
        # sends at exit may hand over while the interrupted exit writes the outbox
        self._disk = threading.RLock()
        self._queue: deque[_Item] = deque()
        self._deferred: deque[tuple[OutboxEntry, Ticket]] = deque()  # from signal handlers
        self._waiting_updates: dict[str, _Item] = {}  # id -> queued update not on the wire
        self._inflight: set[_Item] = set()  # on the wire now
        self._ready: list[tuple[int, int, _Item]] = []  # heap: items free to go, by rank
        self._backing_off: set[_Item] = set()  # free to go once their not_before passed
        self._last: dict[Lane, _Item] = {}  # the last queued item of each lane
        self._lane_of: dict[str, Lane] = {}  # message id -> the target of its post
        self._front = 0  # rank of the oldest adopted item (adopted items go first)
        self._idle = 0  # workers waiting for work
        self._failed_ids: set[str] = set()
        self._unclaimed: list[Ticket] = []  # adopted from the outbox, not yet returned
        self._previous_clients: list[Notify] = []  # replaced by adopt_client()
        self._seq = 0
        self._closed = False
        self._workers: set[threading.Thread] = set()
        self._outbox_thread: threading.Thread | None = None
        self._spool: Spool | None = None
        # set when close() or the exit hand-over let go of the spool: no thread opens a new
        # one (its entries would stay locked by this live process) until the sender is used
        # again
        self._spool_released = False
        # with an outbox, nothing is sent before what exited processes left was adopted
        self._prepared = not self._use_spool
        self._no_threads = False  # Python refused to start one (3.12, at exit)
        self._unsaved = False
        self.delivered = 0
        self.failed = 0
        if self._use_spool:
            with self._lock:
                self._start_outbox_thread()

    def _open_spool(self) -> Spool | None:
        try:
            return Spool(self._outbox_root)
        except Exception as exc:
            warn(
                f"mattermost_notify: the outbox cannot be used ({exc}); background messages are"
                " kept in memory only and are lost if the process exits before they are sent"
            )
            return None

    def _check_fork(self) -> None:
        if os.getpid() != self._pid:
            # A forked child: the parent's worker, queue and spool are not ours.
            self._setup()

    # ------------------------------------------------------------ public API
    def post(
        self,
        message: str,
        *,
        user: str | None = None,
        channel: str | None = None,
        id: str | None = None,
        reply_to: str | None = None,
        files: FileArg = None,
        props: Mapping[str, Any] | None = None,
        only: Literal["user", "channel"] | None = None,
    ) -> Ticket:
        """Queue a new message (or, with ``reply_to``, a reply in that message's thread).

        Without ``user`` and ``channel`` it goes to the client's default target as
        :meth:`Notify.resolve_target` decides it now (with ``only``, the default of that
        kind), so a later change of the default does not move it.
        """
        paths = _normalize_files(files)
        message = check_message(message, has_files=bool(paths))
        check_target(user, channel)
        self._refused_by_client("reply" if reply_to is not None else "post", paths)
        if id is not None:
            check_id(id)
        props = check_props(props)
        if reply_to is not None:
            check_id(reply_to, "reply_to id")
            if user is not None or channel is not None:
                raise MessageError(
                    f"a reply goes to the thread of {reply_to!r}: give no user or channel"
                )
            if id is not None:
                raise MessageError("a reply cannot carry its own id (it cannot be updated later)")
            entry = self._entry("reply", message, reply_to=reply_to, files=paths)
            return self._enqueue(entry, Ticket("reply", reply_to))
        kind, name = self._client.resolve_target(user, channel, only=only)
        entry = self._entry("post", message, id=id, files=paths, props=props, **{kind: name})
        return self._enqueue(entry, Ticket("post", id))

    def update(
        self,
        id: str,
        message: str,
        *,
        files: FileArg = None,
        props: Mapping[str, Any] | None = None,
    ) -> Ticket:
        """Queue an edit of message ``id``; a waiting edit of the same id is replaced."""
        check_id(id)
        paths = _normalize_files(files)
        self._refused_by_client("update", paths)
        if not isinstance(message, str):
            check_message(message, has_files=bool(paths))  # names the wrong type
        message = clean_text(message)
        entry = self._entry("update", message, id=id, files=paths, props=check_props(props))
        return self._enqueue(entry, Ticket("update", id))

    def _refused_by_client(self, kind: str, paths: list[str] | None) -> None:
        """A client that cannot do ``kind`` (a webhook: no edits, no files) says so now."""
        refuse = getattr(self._client, "refuse_in_background", None)
        if refuse is not None and kind != "reply":
            refuse(kind, files=paths)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far was delivered or failed; False on timeout.

        What exited processes left in the outbox (adopted when the sender starts) counts
        as queued before anything else.
        """
        self._check_fork()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            if not self._cond.wait_for(lambda: self._prepared or self._no_threads, timeout):
                return False
            self._queue_deferred()
            target = self._seq
            if self._queue:
                self._start_worker()
                if self._no_threads and not any(w.is_alive() for w in self._workers):
                    return False  # nothing can deliver it from this process
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            # (a snapshot: a signal handler that sends may append while this iterates)
            return self._cond.wait_for(
                lambda: all(item.seq > target for item in tuple(self._queue)), left
            )

    def close(self, timeout: float | None = DEFAULT_EXIT_TIMEOUT) -> bool:
        """Flush for at most ``timeout`` s, then stop the worker.

        What was not delivered stays in the outbox for the next process.
        Returns True when everything was delivered (or failed for good).
        """
        if os.getpid() != self._pid:
            return True
        ok = self.flush(timeout)
        with self._lock:
            self._closed = True
            self._cond.notify_all()
            workers = [w for w in self._workers if w is not threading.current_thread()]
        for worker in workers:
            worker.join(0.5 if ok else 0.05)
        self._save()  # what the outbox thread has not written yet
        if not any(w.is_alive() for w in workers):
            self._close_spool()
        if not ok:
            with self._lock:
                left = len(self._queue)
            where = "kept in the outbox" if self._spool is not None else "lost (no outbox)"
            log.warning("%d background message(s) not delivered on close: %s", left, where)
        return ok

    def adopt_client(self, client: Notify) -> None:
        """Deliver what is queued, and what comes next, through ``client`` (same server):
        a second ``wakeup()`` hands the queue on instead of stranding it."""
        with self._lock:
            if client is not self._client:
                self._previous_clients.append(self._client)
                self._client = client

    def _hand_over(self) -> bool:
        """At exit: stop, leave the queue in the outbox, start a detached sender for it.

        False when there is nothing to hand over to (no outbox, a forked child, or this
        process is itself the detached sender): the caller then waits as before.
        """
        from .handover import ENV_DETACHED, client_settings, spawn_detached_sender

        if not self.hand_over_at_exit or not self._use_spool or os.getpid() != self._pid:
            return False
        settings = client_settings(self._client)
        if settings is None or os.environ.get(ENV_DETACHED):
            return False
        with self._disk:  # the outbox thread writes nothing meanwhile
            if self._spool_now() is None:
                return False
            with self._lock:
                self._closed = True
                self._cond.notify_all()
                left = len(self._queue)
            # writes what the outbox thread has not (it may run late), then releases the
            # spool's lock: the entries can now be adopted
            self._close_spool()
        if spawn_detached_sender(settings, self._outbox_root):
            log.info("%d background message(s) handed to a detached sender", left)
        else:
            log.warning("%d background message(s) not delivered at exit: kept in the outbox", left)
        return True

    def pending(self) -> int:
        """Messages queued and not yet delivered or failed."""
        with self._lock:
            return len(self._queue) + len(self._deferred)

    def knows(self, id: str) -> bool:
        """True while a new message with ``id`` is queued or on the wire (not yet sent)."""
        with self._lock:
            # messages on the wire are still in the queue
            entries = [i.entry for i in tuple(self._queue)] + [e for e, _ in tuple(self._deferred)]
        return any(e.kind == "post" and e.id == id for e in entries)

    def resume_outbox(
        self, *, mark_late: Callable[[OutboxEntry], str | None] | None = None
    ) -> list[Ticket]:
        """Adopt what exited processes left in the outbox for this server; deliver it first.

        Returns a ticket per entry adopted now or when the sender was created (each
        ticket is returned once), so :meth:`deliver_outbox` can count what it delivered.
        ``mark_late(entry)`` may give a line to add to an adopted message (a note that it
        is late).
        """
        self._adopt(mark_late)
        with self._lock:
            tickets, self._unclaimed = self._unclaimed, []
        return tickets

    def deliver_outbox(self, timeout: float | None = 30.0) -> tuple[int, int]:
        """Deliver what exited processes left for this server; wait up to ``timeout``.

        Returns ``(delivered, remaining)``: entries delivered now, and entries still in
        the outbox afterwards (for any server, those of live processes included).
        Entries that failed for good (say, a user that no longer exists) are warnings.
        """
        tickets = self.resume_outbox()
        self.flush(timeout)
        delivered = sum(1 for t in tickets if t.done() and t.exception(timeout=0) is None)
        return delivered, len(list_entries())

    def _adopt(self, mark_late: Callable[[OutboxEntry], str | None] | None = None) -> None:
        self._check_fork()
        with self._disk:  # held until the entries are queued: a second adopter waits
            spool = self._spool_now()
            try:
                adopted = spool.adopt_orphans(self.server_url) if spool is not None else []
            except Exception as exc:
                log.warning("cannot read the outbox: %s", exc)
                adopted = []
            with self._lock:
                # Older than anything queued now: they go first in their lanes, behind the
                # messages on the wire.
                self._front -= len(adopted)
                for pos, entry in enumerate(adopted):
                    note = _call_or_none(mark_late, entry)
                    if note and entry.message:
                        entry.message = f"{entry.message}\n{note}"
                    ticket = Ticket(entry.kind, entry.id or entry.reply_to)
                    self._seq += 1
                    item = _Item(entry, self._seq, ticket)
                    item.rank = self._front + pos
                    self._queue.append(item)
                    self._unclaimed.append(ticket)
                    if entry.kind == "update" and entry.id is not None:
                        self._waiting_updates.setdefault(entry.id, item)
                if adopted:
                    self._relink()
                self._prepared = True
                if self._queue:
                    self._start_worker()
                self._cond.notify_all()

    # ------------------------------------------------------------ internals
    def _entry(self, kind: str, message: str, **fields: Any) -> OutboxEntry:
        entry = OutboxEntry(kind=kind, server_url=self.server_url, message=message, **fields)
        if kind != "update":
            # One value per logical message, kept on every retry and in the outbox,
            # so the server's 30 s de-duplication makes a repeat harmless.
            entry.pending_post_id = uuid.uuid4().hex
        return entry

    def _enqueue(self, entry: OutboxEntry, ticket: Ticket) -> Ticket:
        """Queue ``entry`` in memory; the outbox thread writes it to disk."""
        self._check_fork()
        if self._lock._is_owned():  # type: ignore[attr-defined]
            # This thread is inside the sender already: a signal handler (or a callback)
            # interrupted it, maybe half-way through linking an item into its lanes.
            # Set this one aside (deque.append is atomic); it is queued as soon as the
            # interrupted code is done, or by a worker.
            self._deferred.append((entry, ticket))
            self._cond.notify_all()
            return ticket
        with self._lock:
            self._queue_deferred()
            late = self._add(entry, ticket)
            self._queue_deferred()  # what a signal handler set aside meanwhile
        if late and (self.flush(EXIT_GRACE) or not self._hand_over()):
            self.close(timeout=max(0.5, _exit_deadline - time.monotonic()))
        return ticket

    def _queue_deferred(self) -> None:
        """Queue what signal handlers set aside (caller holds the lock)."""
        while self._deferred:
            entry, ticket = self._deferred.popleft()
            self._add(entry, ticket)

    def _add(self, entry: OutboxEntry, ticket: Ticket) -> bool:
        """Queue ``entry`` (caller holds the lock); True when it came after close at exit."""
        if entry.kind == "update" and self._coalesce(entry, ticket):
            return False
        self._seq += 1
        item = _Item(entry, self._seq, ticket)
        self._fill_hook(entry)
        late = False
        if self._closed:
            # After close. At exit (an atexit handler that runs after ours): deliver it
            # within what is left of the exit budget, the rest stays in the outbox.
            # Without a spool: keep it for the next process instead of losing it.
            if not self._use_spool and not _exiting:
                self._spill_after_close(item)
                return False
            late = _exiting
            self._closed = False  # reopened by use
            self._spool_released = False
        try:
            self._queue.append(item)
            self._link(item)
        except BaseException:
            # Interrupted half-way (Ctrl-C, a signal handler's exception): the item is
            # queued but maybe not linked, and its lanes would wait for it forever.
            self._relink()
            raise
        if entry.kind == "update" and entry.id is not None:
            self._waiting_updates[entry.id] = item
        self._changed()
        self._start_worker()
        self._cond.notify_all()
        return late

    # ------------------------------------------------------------ lanes
    def _lanes_of(self, entry: OutboxEntry) -> tuple[Lane, ...]:
        """The lanes of ``entry``: its target and id, or the id (and its post's target)
        of the message it edits or answers (caller holds the lock)."""
        if entry.kind == "post":
            target: Lane = ("user", entry.user) if entry.user else ("channel", entry.channel or "")
            if entry.id is None:
                return (target,)
            self._lane_of[entry.id] = target
            return (target, ("id", entry.id))
        mid = (entry.id if entry.kind == "update" else entry.reply_to) or ""
        known = self._lane_of.get(mid)
        return (("id", mid), known) if known is not None else (("id", mid),)

    def _link(self, item: _Item) -> None:
        """Queue ``item`` behind the last item of each of its lanes (caller holds the lock)."""
        item.lanes = self._lanes_of(item.entry)
        item.blockers = 0
        for lane in item.lanes:
            before = self._last.get(lane)
            if before is not None and before is not item and not before.done:
                before.after.append(item)
                item.blockers += 1
            self._last[lane] = item
        if item.blockers == 0:
            self._make_ready(item)

    def _relink(self) -> None:
        """Order the queue by rank again (adopted items joined it) and link it anew;
        the messages on the wire stay first (caller holds the lock)."""
        items = sorted(self._queue, key=lambda i: (not i.inflight, i.rank, i.seq))
        self._queue = deque(items)
        self._last = {}
        self._ready = []
        for item in items:
            item.after = []
            item.ready = False
        for item in items:
            self._link(item)

    def _make_ready(self, item: _Item) -> None:
        if not item.ready and not item.inflight and not item.done:
            item.ready = True
            heapq.heappush(self._ready, (item.rank, item.seq, item))

    def _next_ready(self, now: float) -> tuple[_Item | None, float | None]:
        """The first item free to go, or None and how long until a backoff ends
        (caller holds the lock)."""
        due = [i for i in self._backing_off if i.not_before <= now]
        for item in due:
            self._backing_off.discard(item)
            self._make_ready(item)
        while self._ready:
            _, _, item = heapq.heappop(self._ready)
            item.ready = False
            if item.done or item.inflight or item.blockers:
                continue
            if item.not_before > now:
                self._backing_off.add(item)
                continue
            return item, None
        if self._backing_off:
            return None, max(0.0, min(i.not_before for i in self._backing_off) - now)
        return None, None

    def _coalesce(self, entry: OutboxEntry, ticket: Ticket) -> bool:
        """Merge into a waiting update of the same id (caller holds the lock)."""
        waiting = self._waiting_updates.get(entry.id or "")
        if waiting is None or waiting.inflight or self._closed:
            return False
        old = waiting.entry
        old.message = entry.message
        # None means "unchanged": keep the older value
        if entry.files is not None:
            old.files = entry.files
        if entry.props is not None:
            old.props = entry.props
        waiting.tickets.append(ticket)
        waiting.version += 1
        self._changed()
        return True

    def _carry_hook(self, id: str) -> None:
        """A post sent through a client that adopt_client() replaced: its hook goes to
        the current client too (caller holds the lock)."""
        if self._client.has_message(id):
            return
        for previous in self._previous_clients:
            hook = previous.hooks.get(id)
            if hook is not None:
                self._client._remember(hook)
                return

    def _fill_hook(self, entry: OutboxEntry) -> bool:
        """Record in an update or reply where its message lives (post and channel), so
        that another process can still deliver it from the outbox. True when filled."""
        if entry.kind == "post" or entry.hook is not None:
            return False
        mid = entry.id if entry.kind == "update" else entry.reply_to
        hooks = getattr(self._client, "hooks", None)  # (a stand-in client may have none)
        hook = hooks.get(mid or "") if hooks is not None else None
        if hook is None:
            return False
        entry.hook = hook.to_dict()
        return True

    def _changed(self) -> None:
        """An item is new or changed: wake the outbox thread (caller holds the lock)."""
        if self._use_spool:
            self._unsaved = True
            self._start_outbox_thread()
            self._cond.notify_all()

    # ------------------------------------------------------------ the outbox thread
    def _start_outbox_thread(self) -> None:
        # caller holds the lock
        if self._outbox_thread is None or not self._outbox_thread.is_alive():
            self._outbox_thread = threading.Thread(
                target=self._outbox_run, name="mattermost-notify-outbox", daemon=True
            )
            if not self._start(self._outbox_thread):
                self._outbox_thread = None

    def _outbox_run(self) -> None:
        try:
            if not self._prepared:
                self._adopt()
            while True:
                self._save()
                with self._lock:
                    if not self._cond.wait_for(
                        lambda: self._unsaved or self._closed, self.idle_timeout
                    ) or (self._closed and not self._unsaved):
                        if self._outbox_thread is threading.current_thread():
                            self._outbox_thread = None
                        return
        except BaseException:  # pragma: no cover - a bug; keep the user's program alive
            log.exception("the background sender's outbox thread stopped after an internal error")
            with self._lock:
                self._prepared = True
                self._cond.notify_all()

    def _spool_now(self) -> Spool | None:
        """The spool, opened on first use; None once close() or the exit hand-over let go
        of it (caller holds ``_disk``)."""
        if self._use_spool and (self._spool is None or self._spool.closed):
            if self._spool_released:
                return None
            self._spool = self._open_spool()
        return self._spool

    def _save(self) -> None:
        """Write every queued entry that is new or changed since it was last written."""
        with self._lock:
            self._unsaved = False
            todo = [
                (i, replace(i.entry), i.version) for i in tuple(self._queue) if i.saved < i.version
            ]
        if not todo:
            return
        with self._disk:
            spool = self._spool_now()
            if spool is None:
                return
            for item, snapshot, version in todo:
                if item.done or item.saved >= version:
                    continue  # delivered, or written by another _save (close()'s) meanwhile
                # written meanwhile at an older version: rewrite that file, never a second one
                snapshot.path = item.entry.path
                try:
                    spool.write(snapshot)
                except OSError as exc:
                    log.warning(
                        "cannot write to the outbox (%s); %s kept in memory only",
                        exc,
                        snapshot.describe(),
                    )
                    continue
                with self._lock:
                    item.entry.path = snapshot.path
                    item.saved = max(item.saved, version)

    def _spill_after_close(self, item: _Item) -> None:
        try:
            spool = Spool(self._outbox_root)
            spool.write(item.entry)
            spool.close()  # an orphan now: the next process delivers it
            log.info("%s queued after close: kept in the outbox", item.entry.describe())
        except Exception as exc:
            log.warning("%s queued after close is lost: %s", item.entry.describe(), exc)

    def _close_spool(self) -> None:
        """After close: write what is queued and not yet written, then let go of the spool
        (another process may adopt it from now on); nothing is written to it afterwards."""
        with self._disk:
            self._save()
            with self._lock:
                if not self._closed:
                    return  # used again meanwhile: it keeps its spool
                self._spool_released = True
            spool = self._spool
            if spool is not None:
                with contextlib.suppress(Exception):
                    spool.close()

    # ------------------------------------------------------------ the worker
    def _start_worker(self) -> None:
        """One more worker when none is idle, up to ``max_workers`` (caller holds the lock)."""
        if self._closed or self._idle:
            return
        self._workers = {w for w in self._workers if w.is_alive()}
        if len(self._workers) >= self.max_workers:
            return
        worker = threading.Thread(target=self._run, name="mattermost-notify-sender", daemon=True)
        self._workers.add(worker)
        if not self._start(worker):
            self._workers.discard(worker)

    def _start(self, thread: threading.Thread) -> bool:
        """Start a thread of the sender; False when Python refuses: Python 3.12 starts no
        thread in an atexit handler (the exit hand-over then delivers what is left)."""
        try:
            start_thread(thread)
        except RuntimeError as exc:
            log.debug("no thread for the background sender: %s", exc)
            self._no_threads = True
            return False
        return True

    def _take(self, me: threading.Thread) -> _Item | None:
        """Wait for an item free to go and mark it on the wire; None: this worker stops
        (closed, or idle for ``idle_timeout``) (caller holds the lock)."""
        idle_since = time.monotonic()
        while not self._closed:
            self._queue_deferred()
            now = time.monotonic()
            item, wait = self._next_ready(now) if self._prepared else (None, None)
            if item is not None:
                item.inflight = True
                self._inflight.add(item)
                mid = item.entry.id or ""
                if item.kind == "update" and self._waiting_updates.get(mid) is item:
                    del self._waiting_updates[mid]
                if self._ready:
                    self._start_worker()  # another target is waiting
                return item
            left = self.idle_timeout - (now - idle_since)
            if left <= 0 and (not self._queue or len(self._workers) > 1):
                break  # idle: the next message starts a new worker
            timeout = left if left > 0 else self.idle_timeout
            self._idle += 1
            try:
                self._cond.wait(timeout if wait is None else min(wait, timeout))
            finally:
                self._idle -= 1
        self._workers.discard(me)
        return None

    def _run(self) -> None:
        me = threading.current_thread()
        item: _Item | None = None
        try:
            while True:
                with self._lock:
                    item = self._take(me)
                    if item is None:
                        return
                    entry = replace(item.entry)  # a snapshot: updates may coalesce into it
                result, exc = self._attempt(entry)
                if exc is not None and _is_transient(exc, item.entry):
                    self._after_transient(item, exc)
                else:
                    self._finish(item, result, exc)
                item = None
        except BaseException:  # pragma: no cover - a bug; keep the user's program alive
            log.exception("the background sender stopped after an internal error")
        finally:
            with self._lock:
                if item is not None:  # pragma: no cover - after an internal error
                    item.inflight = False
                    self._inflight.discard(item)
                    self._make_ready(item)  # tried again by the next worker
                self._workers.discard(me)
                closed = self._closed
                last = not any(w.is_alive() and w is not me for w in self._workers)
                self._cond.notify_all()
            if closed and last:
                self._close_spool()

    def _attempt(self, entry: OutboxEntry) -> tuple[SentMessage | None, BaseException | None]:
        try:
            if entry.kind == "update" and entry.id in self._failed_ids:
                raise _AfterFailedPost(
                    f"update of message {entry.id!r} not sent: the message itself failed"
                )
            if entry.kind == "reply" and entry.reply_to in self._failed_ids:
                raise _AfterFailedPost(
                    f"reply to message {entry.reply_to!r} not sent: that message failed"
                )
            return self._call_client(entry), None
        except BaseException as exc:
            if not isinstance(exc, Exception):
                raise
            return None, exc

    def _call_client(self, entry: OutboxEntry) -> SentMessage:
        client = self._client
        mid = entry.id if entry.kind == "update" else entry.reply_to
        if entry.hook is not None and mid and not client.has_message(mid):
            # left by another process: its message is known from the entry itself
            from .hooks import MessageHook

            client.add_hook(MessageHook.from_dict(entry.hook, source="outbox entry"))
        if entry.kind == "post":
            # no name: the webhook's own channel, as resolved when it was queued
            own = entry.user is None and entry.channel is None
            send = client.send
            if own and getattr(client, "has_own_channel", False):
                send = functools.partial(client._send_to, "channel")
            return send(
                entry.message or "",
                user=entry.user,
                channel=entry.channel,
                files=entry.files,
                id=entry.id,
                props=entry.props,
                pending_post_id=entry.pending_post_id,
            )
        if entry.kind == "update":
            kwargs: dict[str, Any] = {} if entry.props is None else {"props": entry.props}
            return client.send_update(
                entry.message or "", entry.id or "", files=entry.files, **kwargs
            )
        return client.reply(
            entry.reply_to or "",
            entry.message or "",
            entry.files,
            pending_post_id=entry.pending_post_id,
        )

    def _after_transient(self, item: _Item, exc: BaseException) -> None:
        entry = item.entry
        entry.attempts += 1
        delay = min(self.max_backoff, self.initial_backoff * 2 ** min(entry.attempts - 1, 16))
        delay = random.uniform(delay / 2, delay)
        if isinstance(exc, RateLimitedError) and exc.retry_after:
            delay = max(delay, min(float(exc.retry_after), 60.0))
        log.info(
            "%s: attempt %d failed (%s); retrying in %.1f s",
            entry.describe(),
            entry.attempts,
            exc,
            delay,
        )
        with self._lock:
            item.inflight = False
            self._inflight.discard(item)
            # its lanes wait; the workers go on with the other lanes
            item.not_before = time.monotonic() + delay
            self._backing_off.add(item)
            if item.kind == "update" and entry.id is not None:
                # Not on the wire while it waits: a newer update may replace its text.
                self._waiting_updates.setdefault(entry.id, item)
            self._fill_hook(entry)
            item.version += 1  # the attempt count changed
            self._changed()
            self._cond.notify_all()

    def _finish(self, item: _Item, result: SentMessage | None, exc: BaseException | None) -> None:
        entry = item.entry
        # Warned before it leaves the queue: a flush() that returns has shown every failure
        # (another worker may finish what waited for this item before this one goes on).
        if isinstance(exc, _AfterFailedPost):
            log.info("background %s skipped: %s", entry.describe(), exc)  # warned once already
        elif exc is not None:
            text = f"mattermost_notify: background {entry.describe()} failed: {exc}"
            # shown once, as the warning; the log keeps it (and a traceback for a bug)
            log.info("%s", text, exc_info=not isinstance(exc, MattermostNotifyError))
            warn(text)
        # Off the disk first, so that a flush() that returns sees no stale entry.
        with self._disk:
            item.done = True
            if self._spool is not None:
                self._spool.remove(entry)
        with self._lock:
            if self._queue and self._queue[0] is item:
                self._queue.popleft()
            else:
                with contextlib.suppress(ValueError):
                    self._queue.remove(item)
            if item.kind == "update" and self._waiting_updates.get(entry.id or "") is item:
                del self._waiting_updates[entry.id or ""]
            item.inflight = False
            self._inflight.discard(item)
            if exc is not None:
                self.failed += 1
                if item.kind == "post" and entry.id:
                    self._failed_ids.add(entry.id)
            else:
                self.delivered += 1
                if self._previous_clients and entry.id and item.kind == "post":
                    self._carry_hook(entry.id)
                if item.kind == "post" and entry.id:
                    for waiting in self._queue:  # now they can say where their message lives
                        if self._fill_hook(waiting.entry):
                            waiting.version += 1
                            self._changed()
            # after _failed_ids: what waited for it may go now (and knows if it failed)
            for lane in item.lanes:
                if self._last.get(lane) is item:
                    del self._last[lane]
            for waiting in item.after:
                waiting.blockers -= 1
                if waiting.blockers == 0:
                    self._make_ready(waiting)
            item.after = []
            if self._ready:
                self._start_worker()
            tickets = list(item.tickets)
            self._cond.notify_all()
        for t in tickets:
            t._resolve(result, exc)

    def __repr__(self) -> str:
        return f"<BackgroundSender {self.server_url} pending={len(self._queue)}>"


def _call_or_none(fn: Callable[[OutboxEntry], str | None] | None, entry: OutboxEntry) -> Any:
    if fn is None:
        return None
    try:
        return fn(entry)
    except Exception:
        log.exception("mark_late failed")
        return None
