"""This process's job record, shared by notified cells and progress bars.

One record file per process (:mod:`mattermost_notify.job_records`), so that a cell and
the progress bars inside it are reported together when the process dies:

* in a kernel started by a Jupyter server the record is keyed by the kernel id, and the
  server extension (:mod:`mattermost_notify.jupyter_server`) reports the death;
* anywhere else (VS Code, ``jupyter console``, terminal IPython, a plain script) it has
  a key of its own, and a watcher process (:mod:`mattermost_notify.watcher`), started
  when the first job is recorded, reports it. ``MATTERMOST_NOTIFY_DEATH_WATCHER=0``
  starts none.

Nothing here imports IPython; nothing raises.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import sys
import threading
from pathlib import Path
from typing import Any

from .job_records import JobRecord, KernelRecorder

__all__ = ["ENV_WATCHER", "ProcessRecord", "server_kernel_id", "this_process"]

log = logging.getLogger("mattermost_notify.job_records")

#: ``0`` (or ``false``, ``no``, ``off``): start no watcher process
ENV_WATCHER = "MATTERMOST_NOTIFY_DEATH_WATCHER"

_SERVER_KERNEL = re.compile(
    r"^kernel-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.json$"
)


def connection_file() -> str | None:
    """The connection file of this kernel (None outside an ipykernel kernel)."""
    if "ipykernel" not in sys.modules:
        return None
    try:
        from ipykernel.connect import get_connection_file

        return str(get_connection_file())
    except Exception:
        return None


def server_kernel_id() -> str | None:
    """The Jupyter server's id of this kernel, or None (not a kernel a server started).

    A kernel started by jupyter_server uses the connection file ``kernel-<id>.json``;
    ``jupyter console`` and VS Code use other names.
    """
    path = connection_file()
    if path is None:
        return None
    m = _SERVER_KERNEL.match(Path(path).name)
    return m.group(1) if m else None


def watchers_allowed() -> bool:
    value = os.environ.get(ENV_WATCHER, "").strip().lower()
    return value not in ("0", "false", "no", "off")


class ProcessRecord:
    """The record file of this process and, outside a Jupyter server, its watcher."""

    def __init__(self, key: str, *, with_watcher: bool) -> None:
        self.key = key
        self.recorder = KernelRecorder(key)
        self.with_watcher = with_watcher
        self.watcher: Any = None  # a watcher.Watcher, or False once it could not start
        self._lock = threading.Lock()

    def start_watcher(self, client: Any) -> bool:
        """Start the watcher (with ``client``'s settings) unless it runs or could not
        start; True when there is one. Without a watcher, nobody reads the record."""
        with self._lock:
            if self.watcher is None:
                try:
                    from .watcher import start_watcher

                    self.watcher = start_watcher(client, self.key, connection_file()) or False
                except Exception as exc:
                    log.warning("cannot start the watcher process: %s", exc)
                    self.watcher = False
            return self.watcher is not False

    def add(self, job: JobRecord, client: Any) -> None:
        """Record ``job``; first start the watcher (with ``client``'s settings) if needed."""
        if self.with_watcher and not self.start_watcher(client):
            return  # nobody would read the record
        self.recorder.add(job)

    def set_hook(self, message_id: str, hook: Any) -> None:
        self.recorder.set_hook(message_id, hook)

    def set_state(self, message_id: str, state: str, meter: str | None = None) -> None:
        self.recorder.set_state(message_id, state, meter)

    def remove(self, message_id: str) -> None:
        self.recorder.remove(message_id)


_lock = threading.Lock()
_current: ProcessRecord | None = None
_current_pid = 0


def this_process(*, watcher: bool = True) -> ProcessRecord | None:
    """The record of this process, made at the first call (one per process).

    None when nobody would report its death: not a Jupyter server's kernel, and
    ``watcher`` is False or watchers are turned off by ``MATTERMOST_NOTIFY_DEATH_WATCHER``.
    """
    global _current, _current_pid
    with _lock:
        if _current is not None and _current_pid == os.getpid():
            if _current.with_watcher and not watcher:
                return None
            return _current
        try:
            key = server_kernel_id()
            if key is not None:
                record = ProcessRecord(key, with_watcher=False)
            elif watcher and watchers_allowed():
                key = f"watch-{os.getpid()}-{secrets.token_hex(4)}"
                record = ProcessRecord(key, with_watcher=True)
            else:
                return None
        except Exception as exc:
            log.warning("no job record for this process: %s", exc)
            return None
        _current, _current_pid = record, os.getpid()
        return record
