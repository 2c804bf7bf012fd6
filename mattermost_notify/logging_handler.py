"""``MattermostHandler``: Python's :mod:`logging` into Mattermost messages.

* ``emit`` (the caller's thread) only formats the record and updates a small batch in
  memory under a lock: no I/O, no network, never an exception.
* One daemon thread per handler turns batches into posts: the first record after a quiet
  spell goes out at once; records that arrive within ``interval`` seconds of the last
  post wait and go out together as one post: the first record in full, then
  "… and 37 more records (ERROR 37) …" and the last one, so every record is counted.
  Memory stays bounded whatever the rate: a batch keeps two texts and counters.
* Posts go through the client's :class:`~mattermost_notify.sender.BackgroundSender`
  (order, retries, the disk outbox). At interpreter exit the pending batch is handed
  to the sender before the sender's own bounded flush runs.
* Records of the library's own loggers (``mattermost_notify.*``), of its threads, and
  its own warnings captured by :func:`logging.captureWarnings` are never sent, so a
  failing send cannot feed itself.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import logging
import threading
import time
import weakref
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import sender as _sender  # noqa: F401 - its atexit flush must run after ours
from ._threads import start_thread
from .errors import ConfigurationError, MattermostNotifyError, warn

if TYPE_CHECKING:  # pragma: no cover
    from .client import Notify

__all__ = ["DEFAULT_FORMAT", "MattermostHandler"]

DEFAULT_FORMAT = "%(levelname)s %(name)s: %(message)s"
DEFAULT_INTERVAL = 10.0
DEFAULT_MAX_CHARS = 4000
_OWN_LOGGER = "mattermost_notify"
_OWN_THREAD = "mattermost-notify"

_handlers: weakref.WeakSet[MattermostHandler] = weakref.WeakSet()
_handlers_lock = threading.RLock()  # (reentrant: a signal handler may log)
_local = threading.local()  # .sending: this thread is inside a handler's delivery


def _own_record(record: logging.LogRecord) -> bool:
    """A record the library itself caused: sending it could loop."""
    if getattr(_local, "sending", False):
        return True  # logged while handing a post over (filelock, a wake-up, ...)
    name = record.name
    if name == _OWN_LOGGER or name.startswith(_OWN_LOGGER + "."):
        return True
    if threading.current_thread().name.startswith(_OWN_THREAD):
        return True
    if name == "py.warnings":
        try:
            return "MattermostNotifyWarning" in str(record.args[0] if record.args else record.msg)
        except Exception:
            return False
    return False


def _fence(text: str) -> str:
    """``text`` in a Markdown code block whose fence no backtick run inside can close."""
    longest = run = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text}\n{fence}"


def _shorten(text: str, limit: int, *, keep_tail: bool = False) -> str:
    """``text`` cut to about ``limit`` characters with a visible marker."""
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    if keep_tail:  # a traceback: the last lines name the error
        return f"… ({cut} characters cut)\n" + text[-limit:]
    half = limit // 2
    return text[:half] + f"\n… ({cut} characters cut) …\n" + text[-half:]


class _Batch:
    """Records waiting for the next post: two texts and counters, whatever the rate."""

    __slots__ = ("count", "first", "first_at", "last", "last_at", "levels")

    def __init__(self, text: str, record: logging.LogRecord) -> None:
        self.first = text
        self.first_at = record.created
        self.last: str | None = None
        self.last_at = record.created
        self.count = 1
        self.levels: Counter[str] = Counter()

    def add(self, text: str, record: logging.LogRecord) -> None:
        self.count += 1
        self.last = text
        self.last_at = record.created
        self.levels[record.levelname] += 1

    def message(self) -> str:
        if self.count == 1 or self.last is None:
            return self.first
        more = self.count - 1
        levels = ", ".join(f"{name} {n}" for name, n in self.levels.most_common())
        until = time.strftime("%H:%M:%S", time.localtime(self.last_at))
        noun = "record" if more == 1 else "records"
        tail = f"… and {more} more {noun} ({levels}) until {until}"
        if more == 1:
            return f"{self.first}\n\n{tail}:\n\n{self.last}"
        return f"{self.first}\n\n{tail}; the last one:\n\n{self.last}"


class MattermostHandler(logging.Handler):
    """A :class:`logging.Handler` that posts records to a Mattermost user or channel.

    ``level``: the threshold (default ``WARNING``). ``user`` / ``channel``: the target
    (default: the client's default target). ``interval``: at most one post per this
    many seconds; records in between are counted into the next post. ``client``: a
    :class:`~mattermost_notify.client.Notify` (or webhook client) to send with; without
    one, the settings given as keywords (``url=``, ``token=``, ``team_name=``,
    ``webhook_url=``, ... or ``config={...}``) build one, and without those the default
    client of :func:`mattermost_notify.wakeup` is used (woken up when first needed).
    ``max_chars``: longer record texts are cut (tracebacks keep their end).

    ``emit`` never blocks and never raises; delivery failures become
    :class:`~mattermost_notify.errors.MattermostNotifyWarning` warnings.
    """

    def __init__(
        self,
        level: int | str = logging.WARNING,
        *,
        user: str | None = None,
        channel: str | None = None,
        interval: float = DEFAULT_INTERVAL,
        client: Notify | None = None,
        config: Mapping[str, Any] | None = None,
        max_chars: int = DEFAULT_MAX_CHARS,
        flush_timeout: float = 5.0,
        **settings: Any,
    ) -> None:
        # everything that can fail comes before Handler.__init__ registers the handler
        # for logging.shutdown()
        if user is not None and channel is not None:
            raise ConfigurationError(
                f"MattermostHandler: give a user ({user!r}) or a channel ({channel!r}), not both"
            )
        for what, value in (("user", user), ("channel", channel)):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigurationError(
                    f"MattermostHandler: {what} must be a non-empty name, got {value!r}"
                )
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval < 0:
            raise ConfigurationError(
                f"MattermostHandler: interval must be a number of seconds >= 0, got {interval!r}"
            )
        if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 200:
            raise ConfigurationError(
                f"MattermostHandler: max_chars must be an integer >= 200, got {max_chars!r}"
            )
        if client is None and (config is not None or settings):
            # Built now, so that a wrong setting fails in dictConfig(), not later in a thread.
            from .api import make_client

            client = make_client(config, **settings)
        super().__init__(level)
        self.user = user
        self.channel = channel
        self.interval = float(interval)
        self.max_chars = max_chars
        self.flush_timeout = float(flush_timeout)
        self._client = client
        self._default_formatter = logging.Formatter(DEFAULT_FORMAT)
        # Reentrant: a signal handler that logs runs on the thread it interrupted, maybe in
        # emit(). Taken as `with self._lock` (see BackgroundSender._setup for why not _cond).
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._batch: _Batch | None = None
        self._last_post = float("-inf")
        self._closed = False
        self._busy = False  # the worker is handing a batch to the sender
        self._worker: threading.Thread | None = None
        self._warned = False
        self.posted = 0
        """Posts handed to the sender so far."""
        self.records = 0
        """Records accepted so far (each counted in exactly one post)."""
        with _handlers_lock:
            _handlers.add(self)

    def __repr__(self) -> str:
        target = f"user={self.user!r}" if self.user else "default target"
        target = f"channel={self.channel!r}" if self.channel else target
        return (
            f"<MattermostHandler {logging.getLevelName(self.level)} {target} "
            f"interval={self.interval:g}s>"
        )

    # ------------------------------------------------------------ the caller's side

    def emit(self, record: logging.LogRecord) -> None:
        if _own_record(record):
            return
        try:
            text = self._text(record)
        except Exception:
            self.handleError(record)
            return
        with self._lock:
            if self._closed:
                return
            self.records += 1
            if self._batch is None:
                self._batch = _Batch(text, record)
            else:
                self._batch.add(text, record)
            if self._worker is None:
                self._start_worker()
            self._cond.notify()

    def _text(self, record: logging.LogRecord) -> str:
        """The record as Markdown: the formatted line, a traceback in a code block."""
        fmt = self.formatter or self._default_formatter
        if type(fmt).format is not logging.Formatter.format:
            # a formatter of its own (JSON, ...): its output as it is
            return _shorten(fmt.format(record), self.max_chars)
        if not record.exc_info and not record.exc_text and not record.stack_info:
            return _shorten(fmt.format(record), self.max_chars)
        head_record = copy.copy(record)
        head_record.exc_info = None
        head_record.exc_text = None
        head_record.stack_info = None
        head = fmt.format(head_record)
        parts = [_shorten(head, self.max_chars // 4)]
        detail = []
        if record.exc_info and not record.exc_text:
            record.exc_text = fmt.formatException(record.exc_info)
        if record.exc_text:
            detail.append(record.exc_text)
        if record.stack_info:
            detail.append(fmt.formatStack(record.stack_info))
        if detail:
            parts.append(_fence(_shorten("\n".join(detail), self.max_chars, keep_tail=True)))
        return "\n".join(parts)

    # ------------------------------------------------------------ the worker

    def _start_worker(self) -> None:
        # caller holds the lock
        self._worker = threading.Thread(
            target=self._run, name="mattermost-notify-logging", daemon=True
        )
        start_thread(self._worker)

    def _run(self) -> None:
        while True:
            with self._lock:
                while True:
                    if self._batch is not None:
                        wait = self._last_post + self.interval - time.monotonic()
                        if wait <= 0 or self._closed:
                            break
                        self._cond.wait(wait)
                    elif self._closed:
                        self._worker = None
                        return
                    else:
                        self._cond.wait()
                batch, self._batch = self._batch, None
                self._last_post = time.monotonic()
                self._busy = True
            try:
                self._deliver(batch)
            finally:
                with self._lock:
                    self._busy = False
                    self._cond.notify_all()

    def _deliver(self, batch: _Batch | None) -> None:
        """Hand one post to the client's background sender (never raises)."""
        if batch is None:
            return
        _local.sending = True
        try:
            client = self._client
            if client is None:
                from .api import get_client

                client = self._client = get_client()
            client.sender.post(batch.message(), user=self.user, channel=self.channel)
            self.posted += 1
        except Exception as exc:
            self._warn_once(exc, batch.count)
        finally:
            _local.sending = False

    def _warn_once(self, exc: BaseException, count: int) -> None:
        if self._warned:
            return
        self._warned = True
        reason = str(exc) if isinstance(exc, MattermostNotifyError) else repr(exc)
        warn(
            f"mattermost_notify: MattermostHandler cannot send ({reason}); "
            f"{count} log record(s) not posted (warned once)"
        )

    # ------------------------------------------------------------ flush and close

    def _drain(self) -> None:
        """Hand the waiting batch to the sender now, whatever the interval says."""
        with self._lock:
            batch, self._batch = self._batch, None
            if batch is not None:
                self._last_post = time.monotonic()
        self._deliver(batch)

    def flush(self, timeout: float | None = None) -> None:
        """Post what is waiting now and wait (at most ``timeout``, default 5 s) for it."""
        self._drain()
        limit = self.flush_timeout if timeout is None else timeout
        with self._lock:  # a batch the worker took just now must reach the sender first
            self._cond.wait_for(lambda: not self._busy, limit)
        client = self._client
        sender = getattr(client, "_sender", None) if client is not None else None
        if sender is not None:
            sender.flush(limit)

    def close(self) -> None:
        """Post what is waiting, stop the worker thread (called by ``logging.shutdown``)."""
        with self._lock:
            if self._closed:
                super().close()
                return
        with contextlib.suppress(Exception):  # never break interpreter exit
            self.flush()
        with self._lock:
            self._closed = True
            self._cond.notify_all()
        with _handlers_lock:
            _handlers.discard(self)
        super().close()


def _drain_all_at_exit() -> None:
    """Registered after the sender's exit flush, so it runs first (atexit is LIFO)."""
    with _handlers_lock:
        handlers = list(_handlers)
    for handler in handlers:
        with contextlib.suppress(Exception):  # never break interpreter exit
            handler._drain()


atexit.register(_drain_all_at_exit)
