"""The kernel side of death reports: record what notified job is running, and where.

While a ``%%notify_on_done`` cell runs, its job is kept in this kernel's record file
(:mod:`mattermost_notify.job_records`, keyed by the Jupyter kernel id): the message id,
its hook once the "running" post is delivered, the target, the start time, the cell
number and the notebook. If the kernel is killed, the Jupyter server extension (or the
watcher process) reads it and replies in that message's thread. No IPython import.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import re
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..job_records import JobRecord, KernelRecorder

__all__ = ["CellRecorder", "server_kernel_id"]

log = logging.getLogger("mattermost_notify.ipython")

_SERVER_KERNEL = re.compile(
    r"^kernel-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.json$"
)


def server_kernel_id() -> str | None:
    """The Jupyter server's id of this kernel, or None (not a kernel a server started).

    A kernel started by jupyter_server uses the connection file ``kernel-<id>.json``;
    ``jupyter console`` and VS Code use other names.
    """
    if "ipykernel" not in sys.modules:
        return None
    try:
        from ipykernel.connect import get_connection_file

        name = Path(get_connection_file()).name
    except Exception:
        return None
    m = _SERVER_KERNEL.match(name)
    return m.group(1) if m else None


def _mention_names(mention: Any) -> str:
    if mention is None:
        return ""
    return mention if isinstance(mention, str) else ",".join(mention)


def _host() -> str:
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except Exception:
        return socket.gethostname()


class CellRecorder:
    """Keeps the notified cells of this kernel in its record file."""

    def __init__(self, key: str) -> None:
        self.recorder = KernelRecorder(key)

    @classmethod
    def for_this_kernel(cls) -> CellRecorder | None:
        key = server_kernel_id()
        return cls(key) if key is not None else None

    def start(
        self,
        job: Any,
        cell_number: int | None,
        hooks: Callable[[], Any],
    ) -> None:
        """Record ``job`` (a :class:`~mattermost_notify.jobs.Job`); never raises.

        ``hooks()`` gives the client's hooks, read when the "running" post is delivered.
        """
        try:
            ctx = job.ctx
            self.recorder.add(
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
                    host=_host(),
                    mention=_mention_names(job.mention),
                )
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
                self.recorder.set_hook(message_id, hook.to_dict())

    def finish(self, job: Any) -> None:
        with contextlib.suppress(Exception):
            self.recorder.remove(job.message_id)
