"""The watcher process: reports a kernel's death when no Jupyter server watches it.

VS Code, ``jupyter console`` and plain IPython start kernels without a Jupyter server,
so no server extension hears of their death. For them the IPython extension starts,
on the first notified cell, this small process in its own session. It holds the read
end of a pipe whose write end only the kernel has: the operating system closes that
end however the kernel ends, so the watcher reads end-of-file at once (5 ms after a
SIGKILL). A kernel that exits normally first writes ``bye`` (from ``atexit``); a
kernel that was killed or crashed cannot, and then the watcher takes the kernel's job
record and replies in the running message's thread, like the server extension does.
It then exits: it lives as long as its kernel. In an ipykernel kernel it also listens
to the kernel's IOPub channel (from the connection file), so that the reply ends with
the running cell's last lines of output.

Limits: the watcher cannot learn the exit status (only the kernel's parent can), so the
reply says the kernel ended without a clean exit rather than naming the signal; a child
made by ``fork`` without ``exec`` (multiprocessing's ``fork`` start method) keeps the
pipe open, and the report then waits for that child to end.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from typing import Any

from ._threads import start_thread, unblock_signals

__all__ = ["BYE", "Watcher", "main", "start_watcher"]

log = logging.getLogger("mattermost_notify.watcher")

BYE = b"bye"
REPORT_TIMEOUT = 120.0


class Watcher:
    """The kernel's handle on its watcher: the pipe's write end and the process."""

    def __init__(self, key: str, write_fd: int, proc: subprocess.Popen[bytes]) -> None:
        self.key = key
        self.write_fd = write_fd
        self.proc = proc
        atexit.register(self.say_bye)

    def say_bye(self) -> None:
        """A normal exit: tell the watcher, so it does not report a death."""
        if self.write_fd < 0:
            return
        with contextlib.suppress(OSError):
            os.write(self.write_fd, BYE)
        with contextlib.suppress(OSError):
            os.close(self.write_fd)
        self.write_fd = -1


def start_watcher(client: Any, key: str, connection_file: str | None = None) -> Watcher | None:
    """Start the watcher of this process (record ``key``); None when it cannot start.

    ``connection_file``: the kernel's, whose IOPub channel the watcher listens to."""
    from .handover import client_settings

    settings = client_settings(client)
    if settings is None:
        return None  # not a client the watcher can make again (webhook mode)
    try:
        read_fd, write_fd = os.pipe()  # not inherited by other children (PEP 446)
        payload = json.dumps(
            {"settings": settings, "key": key, "connection_file": connection_file}
        ).encode()
        proc = subprocess.Popen(
            [sys.executable, "-m", "mattermost_notify.watcher", str(read_fd), str(os.getpid())],
            pass_fds=(read_fd,),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # an interrupt of the kernel's group does not reach it
        )
        os.close(read_fd)
        assert proc.stdin is not None
        proc.stdin.write(payload)  # the token goes through the pipe, not argv or env
        proc.stdin.close()
        proc.returncode = 0  # it outlives us on purpose: no ResourceWarning
        return Watcher(key, write_fd, proc)
    except Exception as exc:
        log.warning("cannot start the watcher process: %s", exc)
        return None


class CellOutput:
    """The running cell's last output, from the kernel's IOPub channel (a thread).

    An ipykernel kernel (VS Code, ``jupyter console``) publishes what its cells write
    to stdout and stderr; the watcher subscribes as any front end does (see
    :class:`~mattermost_notify.kernel_death.CellOutputTail`). Terminal IPython has no
    such channel: then there is no output.
    """

    def __init__(self, path: str) -> None:
        from .kernel_death import CellOutputTail

        self.tail = CellOutputTail()
        self._path = path
        start_thread(threading.Thread(target=self._run, name="iopub", daemon=True))

    def _run(self) -> None:
        try:
            import zmq
            from jupyter_client.session import Session

            with open(self._path, encoding="utf-8") as f:
                info = json.load(f)
            session = Session(
                key=str(info.get("key", "")).encode(),
                signature_scheme=info.get("signature_scheme", "hmac-sha256"),
            )
            socket = zmq.Context.instance().socket(zmq.SUB)
            socket.setsockopt(zmq.SUBSCRIBE, b"")
            socket.setsockopt(zmq.LINGER, 0)
            host = info["ip"]
            if info.get("transport", "tcp") == "tcp":
                socket.connect(f"tcp://{host}:{info['iopub_port']}")
            else:
                socket.connect(f"ipc://{host}-{info['iopub_port']}")
            while True:
                self.tail.feed(session, socket.recv_multipart())
        except Exception as exc:  # no output in the report
            log.debug("no output of the kernel: %s", exc)


def _wait_for_end(read_fd: int) -> bytes:
    data = b""
    while True:
        try:
            chunk = os.read(read_fd, 64)
        except InterruptedError:
            continue
        except OSError:
            return data
        if not chunk:
            return data
        data += chunk


def main(argv: list[str] | None = None) -> int:
    """``python -m mattermost_notify.watcher READ_FD KERNEL_PID`` (settings on stdin)."""
    unblock_signals()  # started from a thread of ours: SIGTERM must work
    args = sys.argv[1:] if argv is None else argv
    read_fd, kernel_pid = int(args[0]), int(args[1])
    payload = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    sys.stdin.close()
    output = CellOutput(payload["connection_file"]) if payload.get("connection_file") else None
    said = _wait_for_end(read_fd)
    died_at = time.time()
    from .job_records import claim

    if said.endswith(BYE):
        claim(payload["key"])  # a normal exit: drop what may be left
        return 0
    record = claim(payload["key"])
    if record is None or not record.jobs or record.pid != kernel_pid:
        return 0
    import warnings

    warnings.simplefilter("ignore")
    from .client import Notify
    from .kernel_death import report_kernel_death

    with Notify(**payload["settings"]) as client:
        report_kernel_death(
            client,
            record,
            returncode=None,
            died_at=died_at,
            exit_detail="it ended without a clean exit: killed (for example by the "
            "out-of-memory killer) or crashed",
            cell_output=output.tail.take() if output is not None else None,
        )
        client.sender.flush(REPORT_TIMEOUT)
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a separate process
    sys.exit(main())
