"""One notified job: a "running" post, then a reply in its thread and a final edit.

The flow shared by ``%%notify_on_done`` (the IPython extension), :func:`on_done`
(:mod:`mattermost_notify.on_done`) and ``mattermost-notify run``; the texts come
from :mod:`mattermost_notify.report`. Everything goes through the client's
background sender, so nothing here waits for the network, and a send that fails
is a warning, never an exception in the user's code.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import report
from ._threads import start_thread
from .errors import MattermostNotifyError, warn

__all__ = ["Job", "mention_text", "queue_on_sender", "warn"]

log = logging.getLogger("mattermost_notify.jobs")


def mention_text(
    get_client: Callable[[], Any],
    target: dict[str, str | None],
    mention: str | Sequence[str] | None,
) -> str:
    """``"@alice "`` from ``mention``, or from the client's ``mention`` setting when the
    target is a channel (see ``Notify.mention_text``); a problem is a warning and ``""``."""
    try:
        client = get_client()
    except Exception:  # no client: the message itself cannot go either, and says why
        return ""
    try:
        return str(client.mention_text(target.get("user"), target.get("channel"), mention=mention))
    except Exception as exc:
        warn(f"mattermost_notify: no mention ({exc})")
        return ""


def queue_on_sender(
    get_client: Callable[[], Any],
    tickets: list[Any],
    kind: str,
    message: str,
    **kwargs: Any,
) -> Any:
    """Queue a post or an update on the client's background sender; never raises."""
    try:
        sender = get_client().sender
        if kind == "update":
            ticket = sender.update(kwargs.pop("id"), message, **kwargs)
        else:
            ticket = sender.post(message, **{k: v for k, v in kwargs.items() if v is not None})
        tickets.append(ticket)
        return ticket
    except MattermostNotifyError as exc:
        warn(f"mattermost_notify: notification not sent: {exc}")
    except Exception as exc:  # a bug of ours must not break the user's work
        warn(f"mattermost_notify: notification not sent ({type(exc).__name__}: {exc})")
    return None


@dataclass
class Job:
    """The notification of one job, queued on the sender of ``client()``.

    ``on_ticket(ticket, state)`` is told of each queued message (a status widget).
    ``announce``: post "running" at the start (after ``after`` seconds when given);
    without it only the end is reported. ``report_short_failures``: a failure is
    reported even when the job ran less than ``after``. A client that cannot edit
    (webhook mode) gets the reply as the final state: no edits, files named instead
    of attached.
    """

    client: Callable[[], Any]
    ctx: report.CellContext
    target: dict[str, str | None]
    message_id: str
    after: float | None = None
    mention: str | Sequence[str] | None = None  # None: the client's mention setting
    announce: bool = True
    report_short_failures: bool = False
    on_ticket: Callable[[Any, str], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    posted: bool = False
    unsent: bool = False  # the start could not be queued (the send warned why): nothing more
    finished: bool = False
    timer: threading.Timer | None = None
    tickets: list[Any] = field(default_factory=list)

    def _send(self, state: str, kind: str, message: str, **kwargs: Any) -> Any:
        ticket = queue_on_sender(self.client, self.tickets, kind, message, **kwargs)
        if ticket is not None and self.on_ticket is not None:
            try:
                self.on_ticket(ticket, state)
            except Exception as exc:
                log.warning("on_ticket failed: %s", exc)
        return ticket

    def start(self) -> None:
        if not self.announce:
            return
        if self.after is None:
            self._post_start()
            return
        # after: say "running" only once the job has run that long
        self.timer = threading.Timer(self.after, self._post_start)
        self.timer.daemon = True
        self.timer.name = "mattermost_notify-after"
        start_thread(self.timer)

    def _post_start(self) -> None:
        with self.lock:
            if self.finished or self.posted:
                return
            self.posted = True
            message = report.running_message(self.ctx)
            if self._send("running", "post", message, id=self.message_id, **self.target) is None:
                self.posted, self.unsent = False, True  # the reply and edit would fail alike

    def _edits(self) -> bool:
        try:
            return bool(getattr(self.client(), "can_edit", True))
        except Exception:
            return True

    def update(self, message: str) -> None:
        """Edit the "running" post (a progress line); nothing when it was not posted."""
        if not self._edits():
            return
        with self.lock:
            if self.posted and not self.finished:
                self._send("running", "update", message, id=self.message_id)

    def will_report(self, outcome: report.Outcome) -> bool:
        if self.posted or self.after is None:
            return True
        if self.report_short_failures and outcome.status != "ok":
            return True
        return outcome.elapsed >= self.after

    def finish(
        self, outcome: report.Outcome, files: Iterable[str] = (), notes: Iterable[str] = ()
    ) -> None:
        if self.unsent:
            with self.lock:
                self.finished = True
            return
        files = list(files)
        notes = list(notes)
        edits = self._edits()
        if not edits and files:  # webhook mode: no uploads, the message still goes
            notes.append(f"{len(files)} file(s) not attached (webhook mode)")
            files = []
        reports = self.posted or self.will_report(outcome)
        alert = mention_text(self.client, self.target, self.mention) if reports else ""
        with self.lock:
            self.finished = True
            if self.timer is not None:
                self.timer.cancel()
            if self.posted:  # a reply in the thread, then (with edits) the final state
                where: dict[str, Any] = {"reply_to": self.message_id}
                text = report.reply_message(self.ctx, outcome, notes)
            elif self.will_report(outcome):
                where = {"id": self.message_id, **self.target}
                text = report.standalone_message(self.ctx, outcome, notes)
            else:
                return
            self._send(outcome.status, "post", alert + text, files=files or None, **where)
            if self.posted and edits:
                final = report.final_edit_message(self.ctx, outcome)
                self._send(outcome.status, "update", final, id=self.message_id)
