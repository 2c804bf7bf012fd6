"""The kernel side of death reports: record what notified cell is running, and where.

While a ``%%notify_on_done`` cell runs (or any cell while ``%autonotify`` is on), its
job is kept in this process's record file
(:mod:`mattermost_notify.process_record`: keyed by the Jupyter kernel id, or read by a
watcher process elsewhere; progress bars write to the same file): the message id, its
hook once the "running" post is delivered, the target, the start time, the cell number
and the notebook. If the kernel is killed, the Jupyter server extension (or the watcher
process) reads it and replies in that message's thread (a cell under ``%autonotify``
has no message yet: it gets a new one). No IPython import.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from ..job_records import JobRecord
from ..process_record import ProcessRecord, connection_file, server_kernel_id, this_process
from ..report import _user_at_host

__all__ = ["CellRecorder", "server_kernel_id"]

log = logging.getLogger("mattermost_notify.ipython")


def _mention_names(mention: Any) -> str:
    if mention is None:
        return ""
    return mention if isinstance(mention, str) else ",".join(mention)


class CellRecorder:
    """Keeps the notified cells of this kernel in its record file.

    Under a Jupyter server the record is keyed by the kernel id and the server
    extension reports a death; elsewhere a watcher process is started at the first
    notified cell (:mod:`mattermost_notify.watcher`).
    """

    def __init__(self, record: ProcessRecord) -> None:
        self.record = record
        self.key = record.key

    @classmethod
    def for_this_kernel(cls, shell: Any = None, *, watcher: bool = True) -> CellRecorder | None:
        """The recorder for this process: a Jupyter server's kernel, another kernel (VS
        Code, ``jupyter console``) or terminal IPython; None for other shells (tests)."""
        if server_kernel_id() is None:
            in_kernel = "ipykernel" in sys.modules and connection_file() is not None
            terminal = type(shell).__name__ == "TerminalInteractiveShell"
            if not (watcher and (in_kernel or terminal)):
                return None
        record = this_process(watcher=watcher)
        return cls(record) if record is not None else None

    def start(
        self,
        job: Any,
        cell_number: int | None,
        get_client: Callable[[], Any],
    ) -> None:
        """Record ``job`` (a :class:`~mattermost_notify.jobs.Job`); never raises.

        ``get_client()`` gives the client: its hooks are read when the "running" post is
        delivered, its settings go to the watcher process.
        """
        hooks = lambda: get_client().hooks  # noqa: E731
        try:
            ctx = job.ctx
            self.record.add(
                JobRecord(
                    message_id=job.message_id,
                    kind="cell",
                    started_at=time.time(),
                    user=job.target.get("user"),
                    channel=job.target.get("channel"),
                    cell_number=cell_number,
                    notebook=ctx.notebook,
                    first_line=ctx.first_line,
                    title=ctx.title,
                    host=ctx.host,
                    mention=_mention_names(job.mention),
                ),
                get_client() if self.record.with_watcher else None,
            )
            previous = job.on_ticket

            def on_ticket(ticket: Any, state: str) -> None:
                if previous is not None:
                    previous(ticket, state)
                if state == "running" and ticket.kind == "post":
                    ticket.add_done_callback(lambda t: self._delivered(job.message_id, hooks))

            job.on_ticket = on_ticket
        except Exception as exc:
            log.warning("cannot record the running cell: %s", exc)

    def _delivered(self, message_id: str, hooks: Callable[[], Any]) -> None:
        with contextlib.suppress(Exception):
            hook = hooks().get(message_id)
            if hook is not None:
                self.record.set_hook(message_id, hook.to_dict())

    def start_auto(
        self,
        *,
        cell_number: int | None,
        first_line: str,
        notebook: str | None,
        target: dict[str, str | None],
        mention: Any,
        after: float,
        on: str,
        client: Any,
    ) -> str | None:
        """Record a cell that runs under ``%autonotify``; returns its record id (None when
        not recorded). Never raises, sends nothing: one small file write.

        ``client`` (None when there is none yet) names the target when the magic left it
        to the defaults, and gives the watcher process its settings; without a client no
        watcher can start, and the cell is recorded only for a Jupyter server.
        """
        try:
            user, channel = target.get("user"), target.get("channel")
            names = _mention_names(mention)
            if client is not None:
                with contextlib.suppress(Exception):  # no default: the reporter's defaults
                    kind, name = client.resolve_target(user, channel)
                    user, channel = (name, None) if kind == "user" else (None, name)
                if mention is None and channel is not None:
                    names = ",".join(getattr(client, "mention", ()) or ())
            elif self.record.with_watcher:
                return None  # nobody would read it
            message_id = f"auto-{uuid.uuid4().hex[:12]}"
            self.record.add(
                JobRecord(
                    message_id=message_id,
                    kind="autonotify",
                    started_at=time.time(),
                    user=user,
                    channel=channel,
                    cell_number=cell_number,
                    notebook=notebook,
                    first_line=first_line,
                    host=_user_at_host(),
                    mention=names,
                    after=after,
                    on=on,
                ),
                client,
            )
            return message_id
        except Exception as exc:
            log.warning("cannot record the running cell: %s", exc)
            return None

    def finish_auto(self, message_id: str) -> None:
        with contextlib.suppress(Exception):
            self.record.remove(message_id)

    def finish(self, job: Any) -> None:
        with contextlib.suppress(Exception):
            self.record.remove(job.message_id)
