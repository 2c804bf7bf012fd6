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
import os
import re
import secrets
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
    path = _connection_file()
    if path is None:
        return None
    m = _SERVER_KERNEL.match(Path(path).name)
    return m.group(1) if m else None


def _connection_file() -> str | None:
    try:
        from ipykernel.connect import get_connection_file

        return str(get_connection_file())
    except Exception:
        return None


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
    """Keeps the notified cells of this kernel in its record file.

    Under a Jupyter server the record is keyed by the kernel id and the server
    extension reports a death; elsewhere (``with_watcher``) a watcher process is started
    at the first notified cell (:mod:`mattermost_notify.watcher`).
    """

    def __init__(self, key: str, *, with_watcher: bool = False) -> None:
        self.recorder = KernelRecorder(key)
        self.key = key
        self.with_watcher = with_watcher
        self.watcher: Any = None

    @classmethod
    def for_this_kernel(cls, shell: Any = None, *, watcher: bool = True) -> CellRecorder | None:
        """The recorder for this process: a Jupyter server's kernel, another kernel (VS
        Code, ``jupyter console``) or terminal IPython; None for other shells (tests)."""
        key = server_kernel_id()
        if key is not None:
            return cls(key)
        if not watcher:
            return None
        in_kernel = "ipykernel" in sys.modules and _connection_file() is not None
        terminal = type(shell).__name__ == "TerminalInteractiveShell"
        if not (in_kernel or terminal):
            return None
        return cls(f"watch-{os.getpid()}-{secrets.token_hex(4)}", with_watcher=True)

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
        if self.with_watcher and self.watcher is None:
            with contextlib.suppress(Exception):
                from ..watcher import start_watcher

                self.watcher = start_watcher(get_client(), self.key) or False
        hooks = lambda: get_client().hooks  # noqa: E731
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
