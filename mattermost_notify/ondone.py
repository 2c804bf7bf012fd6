"""``notify.on_done``: be told when a function or a block of code ends.

>>> import mattermost_notify as notify
>>> @notify.on_done(user="alice")  # doctest: +SKIP
... def train(): ...
>>> with notify.on_done(channel="alerts", title="nightly ETL"):  # doctest: +SKIP
...     run_etl()

The same messages as ``%%notify_on_done``: a "running" post when the job starts, and
when it ends a reply in its thread (done with the return value's repr, failed with the
exception and the end of its traceback, or interrupted) plus an edit of the start post
to its final state. Plain Python: no IPython needed.
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, overload

from . import report
from .errors import MessageError
from .jobs import Job, mention_text, queue_on_sender, warn

__all__ = ["OnDone", "on_done"]

F = TypeVar("F", bound=Callable[..., Any])
_ID_PREFIX = "job-"


class _Running:
    """One run of the job (one call, or one ``with`` block); ends with its ``with``."""

    value: Any = None

    def __init__(self, owner: OnDone, label: str | None) -> None:
        self.owner = owner
        self.started = time.perf_counter()
        self.job: Job | None = None
        self.rank_only_failures = not owner._sends_here()
        if self.rank_only_failures:
            return
        try:
            self.job = owner._new_job(label)
            self.job.start()
        except Exception as exc:
            warn(f"mattermost_notify: on_done not started ({type(exc).__name__}: {exc})")
            self.job = None

    def __enter__(self) -> _Running:
        return self

    def __exit__(self, _type: object, exc: BaseException | None, _tb: object) -> None:
        """Queue the end messages. Never raises: the job's own outcome must win."""
        elapsed = time.perf_counter() - self.started
        try:
            outcome = report.outcome_of(
                exc, elapsed, self.value, include_result=self.owner.include_result
            )
            if self.rank_only_failures:
                self.owner._report_rank_failure(outcome, elapsed)
            elif self.job is not None:
                self.job.finish(outcome)
        except Exception as err:
            warn(f"mattermost_notify: on_done not finished ({type(err).__name__}: {err})")


@dataclass(repr=False, eq=False)
class OnDone:
    """Decorator and context manager returned by :func:`on_done` (which checks the options)."""

    title: str | None
    target: dict[str, str | None]
    after: float | None
    mention: str | Sequence[str] | None
    include_result: bool
    rank_zero_only: bool
    _local: threading.local = field(default_factory=threading.local)

    def __repr__(self) -> str:
        user, channel = self.target["user"], self.target["channel"]
        target = f"user={user!r}" if user else f"channel={channel!r}"
        return f"<on_done {self.title or ''!s} {target} after={self.after}>"

    # ------------------------------------------------------------ plumbing
    def _sends_here(self) -> bool:
        if not self.rank_zero_only:
            return True
        from .ranks import process_rank

        return process_rank() in (None, 0)

    def _new_job(self, label: str | None) -> Job:
        ctx = report.CellContext(
            first_line=label or "", title=self.title, notebook=None, what="a job"
        )
        return Job(
            client=_default_client,
            ctx=ctx,
            target=self.target,
            message_id=f"{_ID_PREFIX}{uuid.uuid4().hex[:12]}",
            after=self.after,
            mention=self.mention,
        )

    def _report_rank_failure(self, outcome: report.Outcome, elapsed: float) -> None:
        """A rank other than 0 failed: one message per host and run."""
        if outcome.status == "ok":
            return
        from .ranks import claim_host_report, process_rank

        if not claim_host_report(f"on_done:{self.title or 'job'}"):
            return
        ctx = report.CellContext(
            first_line="",
            title=f"{self.title or 'a job'} (rank {process_rank()})",
            started_at=datetime.now(UTC) - timedelta(seconds=elapsed),
            what="a job",
        )
        alert = mention_text(_default_client, self.target, self.mention)
        message = alert + report.standalone_message(ctx, outcome)
        queue_on_sender(_default_client, [], "post", message, **self.target)

    def _stack(self) -> list[_Running]:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    # ------------------------------------------------------------ context manager
    def __enter__(self) -> OnDone:
        self._stack().append(_Running(self, _caller_label()))
        return self

    def __exit__(self, *exc_info: Any) -> None:
        stack = self._stack()
        if stack:
            stack.pop().__exit__(*exc_info)

    # ------------------------------------------------------------ decorator
    @overload
    def __call__(self, func: F) -> F: ...
    @overload
    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]: ...
    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(func):
            raise MessageError(f"on_done decorates a function, not {type(func).__name__}")
        name = str(getattr(func, "__qualname__", getattr(func, "__name__", "function")))
        label = f"{name.rsplit('<locals>.', 1)[-1]}()"

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                __tracebackhide__ = True
                with _Running(self, label) as running:
                    running.value = await func(*args, **kwargs)
                return running.value

            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            with _Running(self, label) as running:
                running.value = func(*args, **kwargs)
            return running.value

        return wrapper


def _default_client() -> Any:
    from . import api

    return api.get_client()


def _caller_label() -> str:
    """``file.py:12`` of the ``with`` statement (two frames up)."""
    try:
        frame = sys._getframe(2)
        return f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno}"
    except Exception:
        return ""


def on_done(
    title: str | Callable[..., Any] | None = None,
    *,
    user: str | None = None,
    channel: str | None = None,
    after: float | None = None,
    mention: str | Sequence[str] | None = None,
    include_result: bool = True,
    rank_zero_only: bool = True,
) -> OnDone:
    """Be told when a function, or a ``with`` block, is done, failed or was interrupted.

    Posts "running" when it starts (with ``after``, only once it has run that long; a
    job shorter than ``after`` sends nothing), then a reply in that message's thread:
    done (with a short repr of the return value), failed (the exception and the end of
    its traceback) or interrupted (``KeyboardInterrupt``). The exception is re-raised
    and the return value passed on unchanged; a failed send is a warning, never an
    error in your code. ``mention`` names users to alert in the reply (useful in
    channels). In a distributed run only rank 0 sends, except that a failure on another
    rank is reported once per host.

    Usable as ``@on_done(...)`` on a function (or ``async def``) and as
    ``with on_done(...):``; a bare ``@on_done`` uses the defaults.
    """
    if callable(title):  # @on_done without parentheses
        return on_done()(title)  # type: ignore[return-value]
    if user is not None and channel is not None:
        raise MessageError(
            f"on_done: give user or channel, not both (user {user!r}, channel {channel!r})"
        )
    for name, value in (("user", user), ("channel", channel), ("title", title)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise MessageError(f"on_done: {name} must be a non-empty string, not {value!r}")
    if after is not None:
        if isinstance(after, bool) or not isinstance(after, int | float) or after < 0:
            raise MessageError(f"on_done: after must be seconds >= 0, not {after!r}")
        after = float(after)
    from .config import parse_mentions

    parse_mentions(mention, "on_done(mention=...)")  # a bad name fails now, not at the end
    target = {"user": user, "channel": channel}
    return OnDone(title, target, after, mention, include_result, rank_zero_only)
