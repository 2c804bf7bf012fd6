"""Jupyter server extension: tell the user when a kernel dies in the middle of a job.

Enabled by the file ``etc/jupyter/jupyter_server_config.d/mattermost_notify.json`` that
the package installs (and by ``mattermost-notify jupyter enable``)::

    {"ServerApp": {"jpserver_extensions": {"mattermost_notify.jupyter_server": true}}}

What it does:

* It watches every kernel's restarter. When a kernel *process* dies (SIGKILL from the
  out-of-memory killer, a crash, ``os._exit``), jupyter_client fires the "restart"
  callbacks before it restarts the kernel; a restart or shutdown asked for by the user
  fires none, so those are never reported.
* It then takes the kernel's job record (written by the IPython extension while a
  ``%%notify_on_done`` cell or a progress bar runs; see
  :mod:`mattermost_notify.job_records`) and replies in that job's thread: the kernel
  died while running cell N, started at T, running for D, killed by SIGKILL (probably
  out of memory), with the cell's last lines of output. What the dead kernel left in
  the outbox is delivered at once, marked as late.
* For that last output it listens to each kernel's IOPub channel, as the server does
  for its activity tracking, and keeps the text the running cell wrote to stdout and
  stderr (the last 8 KiB since the cell started: ``execute_input``).
* Renames and moves of notebooks made through Jupyter (the contents service's
  ``rename`` events) move the notebook's message hooks with it.

It reads the same configuration as the library (environment, config files) and never
blocks the server's event loop: the restart callback only notes the facts and hands
the work to a thread; HTTP goes through the library's background sender.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

__all__ = ["KernelDeathWatcher"]

KERNEL_ACTIONS = "https://events.jupyter.org/jupyter_server/kernel_actions/v1"
CONTENTS = "https://events.jupyter.org/jupyter_server/contents_service/v1"
SCAN_INTERVAL_MS = 1000
MAX_MOVED_NOTEBOOKS = 10_000

log = logging.getLogger("mattermost_notify.jupyter_server")


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "mattermost_notify.jupyter_server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    watcher = KernelDeathWatcher(serverapp)
    watcher.start()
    serverapp.web_app.settings["mattermost_notify_watcher"] = watcher


# the older name, for jupyter_server < 2 and notebook-style loaders
load_jupyter_server_extension = _load_jupyter_server_extension


def _iopub_address(km: Any) -> tuple[str, str, int]:
    return (str(km.transport), str(km.ip), int(km.iopub_port))


class CellOutput:
    """What a kernel's running cell wrote to stdout/stderr, from its IOPub channel (see
    :class:`~mattermost_notify.kernel_death.CellOutputTail`)."""

    def __init__(self, km: Any) -> None:
        from jupyter_client.session import Session

        from .kernel_death import CellOutputTail

        self.address = _iopub_address(km)
        self.tail = CellOutputTail()
        session = Session(config=km.session.config, key=km.session.key)
        self._stream = km.connect_iopub()
        self._stream.on_recv(lambda frames: self.tail.feed(session, frames))

    def take(self) -> str | None:
        """The last lines written since the cell started (then forgotten), or None."""
        return self.tail.take()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if not self._stream.socket.closed:
                self._stream.close()


class KernelDeathWatcher:
    """Registers restart callbacks on every kernel; reports deaths from a worker thread."""

    def __init__(self, serverapp: Any) -> None:
        self.serverapp = serverapp
        self.log = getattr(serverapp, "log", log)
        self.kernel_manager = serverapp.kernel_manager
        self.root_dir = Path(str(getattr(serverapp, "root_dir", os.getcwd()))).expanduser()
        self._watched: set[str] = set()
        self._outputs: dict[str, CellOutput] = {}
        self._tasks: set[asyncio.Future[None]] = set()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mattermost-notify")
        self._client: Any = None
        self._client_error: str | None = None
        self._scan: Any = None
        self.reported: list[dict[str, Any]] = []  # what was reported (for tests, logs)

    # ------------------------------------------------------------------ set-up
    def start(self) -> None:
        logger = getattr(self.serverapp, "event_logger", None)
        if logger is not None:
            with contextlib.suppress(Exception):
                logger.add_listener(schema_id=KERNEL_ACTIONS, listener=self._on_kernel_action)
            with contextlib.suppress(Exception):
                logger.add_listener(schema_id=CONTENTS, listener=self._on_contents)
        # a kernel may start without an event (an older server): scan as well
        from tornado.ioloop import PeriodicCallback

        self._scan = PeriodicCallback(self._watch_all, SCAN_INTERVAL_MS)
        self._scan.start()
        self._watch_all()
        self.log.info("mattermost_notify: watching kernels for deaths")

    def _watch_all(self) -> None:
        try:
            for kernel_id in list(self.kernel_manager.list_kernel_ids()):
                self.watch(kernel_id)
                self._listen(kernel_id)
        except Exception as exc:  # never break the server
            self.log.debug("mattermost_notify: kernel scan failed: %s", exc)

    def watch(self, kernel_id: str) -> None:
        if kernel_id in self._watched:
            return
        try:
            self.kernel_manager.add_restart_callback(
                kernel_id, lambda: self._on_restart(kernel_id), "restart"
            )
        except Exception as exc:
            self.log.debug("mattermost_notify: cannot watch kernel %s: %s", kernel_id, exc)
            return
        self._watched.add(kernel_id)
        self._listen(kernel_id)

    def _listen(self, kernel_id: str) -> None:
        """Listen to the kernel's IOPub; again when its address changed (a restart may
        give a kernel new ports) or when the first try failed."""
        try:
            km = self.kernel_manager.get_kernel(kernel_id)
            output = self._outputs.get(kernel_id)
            address = _iopub_address(km)
            if (output is not None and output.address == address) or not address[2]:
                return
            if output is not None:
                output.close()
            self._outputs[kernel_id] = CellOutput(km)
        except Exception as exc:  # the report then has no output
            self.log.debug("mattermost_notify: no output of kernel %s: %s", kernel_id, exc)

    def unwatch(self, kernel_id: str) -> None:
        self._watched.discard(kernel_id)
        output = self._outputs.pop(kernel_id, None)
        if output is not None:
            output.close()

    # jupyter_events calls listeners as listener(logger=..., schema_id=..., data=...), and an
    # exception in one would fail the server's own action: catch everything
    async def _on_kernel_action(
        self, logger: Any = None, schema_id: Any = None, data: Any = None
    ) -> None:
        try:
            if data.get("action") == "start" and data.get("kernel_id"):
                self.watch(str(data["kernel_id"]))
            elif data.get("action") == "shutdown" and data.get("kernel_id"):
                self.unwatch(str(data["kernel_id"]))
        except Exception as exc:
            self.log.debug("mattermost_notify: kernel event not handled: %s", exc)

    # ------------------------------------------------------------------ a death
    def _on_restart(self, kernel_id: str) -> None:
        """Restarter callback, on the event loop: note the facts, hand the work over."""
        died_at = time.time()
        returncode: int | None = None
        pid: int | None = None
        try:
            km = self.kernel_manager.get_kernel(kernel_id)
            process = getattr(getattr(km, "provisioner", None), "process", None)
            if process is not None:
                pid = process.pid
                returncode = process.poll()
        except Exception as exc:
            self.log.debug("mattermost_notify: no process facts for %s: %s", kernel_id, exc)
        output = self._outputs.get(kernel_id)
        cell_output = output.take() if output is not None else None
        task = asyncio.ensure_future(self._report(kernel_id, died_at, returncode, pid, cell_output))
        self._tasks.add(task)  # keep a reference until it is done
        task.add_done_callback(self._tasks.discard)

    async def _report(
        self,
        kernel_id: str,
        died_at: float,
        returncode: int | None,
        pid: int | None,
        cell_output: str | None = None,
    ) -> None:
        notebook = None
        with contextlib.suppress(Exception):  # no Jupyter session: POST /api/kernels
            session = await self.serverapp.session_manager.get_session(kernel_id=kernel_id)
            path = session.get("path") or (session.get("notebook") or {}).get("path")
            if path:
                notebook = str(self.root_dir / path)
        loop = asyncio.get_running_loop()
        loop.run_in_executor(
            self._executor,
            self._report_in_thread,
            kernel_id,
            died_at,
            returncode,
            pid,
            notebook,
            cell_output,
        )

    def _get_client(self) -> Any:
        if self._client is None and self._client_error is None:
            try:
                from .api import new_client
                from .config import load_settings

                self._client = new_client(**load_settings().client_kwargs())
            except Exception as exc:
                self._client_error = str(exc)
                self.log.warning(
                    "mattermost_notify: kernel deaths cannot be reported: %s", self._client_error
                )
        return self._client

    def _report_in_thread(
        self,
        kernel_id: str,
        died_at: float,
        returncode: int | None,
        pid: int | None,
        notebook: str | None,
        cell_output: str | None = None,
    ) -> None:
        from .job_records import claim
        from .kernel_death import report_kernel_death

        try:
            record = claim(kernel_id)
            if record is None:
                self.log.info("mattermost_notify: kernel %s died, no notified job", kernel_id)
                self._resume_outbox()
                return
            if pid is not None and record.pid != pid:
                self.log.info("mattermost_notify: stale job record of kernel %s dropped", kernel_id)
                return
            client = self._get_client()
            if client is None:
                return
            tickets = report_kernel_death(
                client,
                record,
                returncode=returncode,
                died_at=died_at,
                notebook=notebook,
                cell_output=cell_output,
            )
            self.reported.append(
                {"kernel_id": kernel_id, "jobs": list(record.jobs), "tickets": tickets}
            )
            self.log.warning(
                "mattermost_notify: kernel %s died (%s) while running %d notified job(s); reported",
                kernel_id,
                returncode,
                len(record.jobs),
            )
        except Exception:
            self.log.exception("mattermost_notify: reporting the death of %s failed", kernel_id)

    def _resume_outbox(self) -> None:
        """Deliver what the dead kernel left in the outbox now, marked as late."""
        from .kernel_death import late_note
        from .outbox import has_entries

        if has_entries():
            client = self._get_client()
            if client is not None:
                client.sender.resume_outbox(mark_late=late_note)

    # ------------------------------------------------------------------ renames
    async def _on_contents(
        self, logger: Any = None, schema_id: Any = None, data: Any = None
    ) -> None:
        try:
            if data.get("action") != "rename":
                return
            old, new = data.get("source_path"), data.get("path")
            if not old or not new:
                return
            loop = asyncio.get_running_loop()
            loop.run_in_executor(self._executor, self._move_hooks, str(old), str(new))
        except Exception as exc:
            self.log.debug("mattermost_notify: contents event not handled: %s", exc)

    def _move_hooks(self, old: str, new: str) -> None:
        from .hooks import move_store

        try:
            old_path = self.root_dir / old.lstrip("/")
            new_path = self.root_dir / new.lstrip("/")
            pairs: list[tuple[Path, Path]] = []
            if new_path.is_dir():  # a folder: one event for everything inside it
                for i, nb in enumerate(new_path.rglob("*.ipynb")):
                    if i >= MAX_MOVED_NOTEBOOKS:
                        break
                    pairs.append((old_path / nb.relative_to(new_path), nb))
            else:
                pairs.append((old_path, new_path))
            for before, after in pairs:
                moved = move_store(_notebook_key(before), _notebook_key(after))
                if moved:
                    self.log.info(
                        "mattermost_notify: %d message hook(s) moved from %s to %s",
                        moved,
                        before,
                        after,
                    )
        except Exception:
            self.log.exception("mattermost_notify: moving the message hooks of %s failed", old)

    def stop(self) -> None:
        if self._scan is not None:
            self._scan.stop()
        for kernel_id in list(self._outputs):
            self.unwatch(kernel_id)
        self._executor.shutdown(wait=False)


def _notebook_key(path: Path) -> str:
    """The key the IPython extension uses for the notebook at ``path``."""
    return os.path.realpath(path)
