"""Records of running jobs, so that someone else can report a job whose process died.

While a notified cell (``%%notify_on_done``, or any cell while ``%autonotify`` is on)
or a progress bar runs in a Jupyter kernel, the IPython extension keeps a small record
of it here: what runs, where its message is (the message's hook, once posted; a cell
under ``%autonotify`` has none), the target, the start time, the cell number, the
notebook. A kernel killed by SIGKILL cannot say anything; the Jupyter server
extension (or the watcher process) reads the record of that kernel and replies in the
message's thread.

Layout: ``<user_data_dir>/kernels/<key>.json`` (directory 0700, files 0600), one file
per kernel, ``key`` being the Jupyter kernel id (or a watcher's own key). Plain JSON
checked on read, never the token.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ._files import ensure_private_dir, read_private, write_private

__all__ = [
    "RECORD_VERSION",
    "JobRecord",
    "KernelRecord",
    "claim",
    "record_path",
    "records_dir",
]

log = logging.getLogger("mattermost_notify.job_records")

RECORD_VERSION = 1
MAX_RECORD_BYTES = 256 * 1024
_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


def records_dir() -> Path:
    """``<user_data_dir()>/kernels``."""
    from .config import user_data_dir

    return Path(user_data_dir()) / "kernels"


def record_path(key: str) -> Path:
    if not _KEY.match(key) or key.startswith("."):
        raise ValueError(f"not a kernel key: {key[:60]!r}")
    return records_dir() / f"{key}.json"


@dataclass
class JobRecord:
    """One running job of a kernel."""

    message_id: str
    kind: str  # "cell" (%%notify_on_done), "autonotify" (a cell under %autonotify), "progress"
    started_at: float  # time.time()
    user: str | None = None
    channel: str | None = None
    hook: dict[str, Any] | None = None  # MessageHook.to_dict() once the post is delivered
    cell_number: int | None = None
    notebook: str | None = None
    first_line: str = ""
    title: str | None = None
    host: str | None = None
    mention: str = ""
    state: str | None = None  # progress bars: the last state shown ("60 % (60/100)")
    meter: str | None = None  # progress bars: the meter line of that state
    after: float | None = None  # autonotify: its threshold (seconds)
    on: str | None = None  # autonotify: what it reports ("done", "error" or "all")


@dataclass
class KernelRecord:
    """What one kernel is running (its record file)."""

    key: str
    pid: int
    server_url: str | None = None
    jobs: dict[str, JobRecord] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": RECORD_VERSION,
                "key": self.key,
                "pid": self.pid,
                "server_url": self.server_url,
                "jobs": [asdict(j) for j in self.jobs.values()],
            }
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> KernelRecord:
        data = json.loads(text)
        if not isinstance(data, Mapping) or data.get("version") != RECORD_VERSION:
            raise ValueError("not a kernel record of this version")
        jobs: dict[str, JobRecord] = {}
        names = set(JobRecord.__dataclass_fields__)
        for item in data.get("jobs") or []:
            if not isinstance(item, Mapping):
                raise ValueError("a job of the record is not an object")
            job = JobRecord(**{k: v for k, v in item.items() if k in names})
            if not isinstance(job.message_id, str) or not isinstance(job.started_at, int | float):
                raise ValueError("a job of the record lacks its message id or start time")
            jobs[job.message_id] = job
        key, pid = data.get("key"), data.get("pid")
        if not isinstance(key, str) or not isinstance(pid, int):
            raise ValueError("the record lacks its key or pid")
        server_url = data.get("server_url")
        return cls(key=key, pid=pid, server_url=server_url, jobs=jobs)


class KernelRecorder:
    """The kernel side: keeps this process's record file up to date (thread-safe).

    Every call is cheap (one small atomic file write, no fsync) and never raises: a
    record that cannot be written only means the death of the kernel goes unreported.
    """

    def __init__(self, key: str, server_url: str | None = None) -> None:
        self.record = KernelRecord(key=key, pid=os.getpid(), server_url=server_url)
        self._lock = threading.Lock()
        self.path = record_path(key)
        self._exit_registered = False

    def add(self, job: JobRecord) -> None:
        with self._lock:
            self.record.jobs[job.message_id] = job
            self._save()
            if not self._exit_registered:
                # a clean exit (a restart or shutdown the user asked for) is no death
                atexit.register(self.clear)
                self._exit_registered = True

    def clear(self) -> None:
        """Forget every job (the process is exiting normally)."""
        with self._lock:
            self.record.jobs.clear()
            self._save()

    def set_hook(self, message_id: str, hook: Mapping[str, Any]) -> None:
        with self._lock:
            job = self.record.jobs.get(message_id)
            if job is None:
                return
            job.hook = dict(hook)
            self._save()

    def set_state(self, message_id: str, state: str, meter: str | None = None) -> None:
        with self._lock:
            job = self.record.jobs.get(message_id)
            if job is None or (job.state, job.meter) == (state, meter):
                return
            job.state, job.meter = state, meter
            self._save()

    def remove(self, message_id: str) -> None:
        with self._lock:
            if self.record.jobs.pop(message_id, None) is None:
                return
            self._save()

    def _save(self) -> None:
        try:
            if os.getpid() != self.record.pid:
                return  # a forked child is not the kernel
            if not self.record.jobs:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
                return
            ensure_private_dir(self.path.parent)
            write_private(self.path, self.record.to_json(), fsync=False)
        except Exception as exc:
            log.warning("cannot write the job record %s: %s", self.path, exc)


def claim(key: str) -> KernelRecord | None:
    """Take the record of kernel ``key`` (it is removed): None when there is none.

    The rename first makes the claim atomic: of two reporters (a restart event and a
    dead event, a server and a watcher) only one gets the record.
    """
    path = record_path(key)
    claimed = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.claimed")
    try:
        os.replace(path, claimed)
    except FileNotFoundError:
        return None
    try:
        data, _mode = read_private(claimed, MAX_RECORD_BYTES)
        return KernelRecord.from_json(data)
    except (OSError, ValueError, TypeError) as exc:
        log.warning("the job record of kernel %s is unreadable: %s", key, exc)
        return None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(claimed)


def read(key: str) -> KernelRecord | None:
    """The record of kernel ``key`` without taking it (None when absent or unreadable)."""
    try:
        data, _mode = read_private(record_path(key), MAX_RECORD_BYTES)
        return KernelRecord.from_json(data)
    except (OSError, ValueError, TypeError):
        return None
