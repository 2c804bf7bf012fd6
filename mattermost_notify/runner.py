"""``mattermost-notify run -- COMMAND``: run a command, post when it ends.

The command's output passes through unchanged (through a pseudo-terminal when ours is
a terminal, so programs keep their colours and line buffering) while the last lines
are kept for the message. When the command ends a message says how: exit status, or
the signal that killed it (SIGKILL: probably out of memory), how long it ran, on which
host, and the last lines of its output. ``run`` exits with the command's own status
(128 + the signal's number for a signal), whatever happened to the notification.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
import warnings
from datetime import UTC, datetime
from typing import Any

from . import report
from ._threads import start_thread
from .jobs import Job

__all__ = ["add_arguments", "run", "run_command"]

DEFAULT_TAIL = 10
PROGRESS_INTERVAL = 5.0
FLUSH_TIMEOUT = 10.0
_KEEP_BYTES = 256 * 1024  # of output, for the tail
EXIT_NOT_FOUND = 127
EXIT_NOT_EXECUTABLE = 126


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``mattermost-notify run``."""
    parser.usage = (
        "mattermost-notify run [-u USER | -c CHANNEL] [--after SECONDS] [--mention NAME] "
        "[--tail N] [--progress] [-m TITLE] -- COMMAND [ARGS...]"
    )
    dest = parser.add_mutually_exclusive_group()
    dest.add_argument("-u", "--user", help="user to send a direct message to")
    dest.add_argument("-c", "--channel", help="channel to post in")
    parser.add_argument(
        "--after",
        type=float,
        metavar="SECONDS",
        help="post only if the command ran longer than this, or failed",
    )
    parser.add_argument(
        "--mention", action="append", metavar="NAME", help="user to mention in the message"
    )
    parser.add_argument(
        "--tail",
        type=int,
        default=DEFAULT_TAIL,
        metavar="N",
        help=f"last lines of output put in the message (default {DEFAULT_TAIL}; 0: none)",
    )
    parser.add_argument(
        "--progress",
        action="store_true",
        help="post at the start and keep the message updated (elapsed time, last output line)",
    )
    parser.add_argument("-m", "--title", help="name of the job (default: the command)")
    parser.add_argument("--configfile", help="configuration file to use")
    parser.add_argument(
        "command", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]", help="the command"
    )


class _Output:
    """Copies a child's stream to ours, keeping the end of it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buf = bytearray()
        self.last_line = ""

    def copy(self, src_fd: int, dst_fd: int) -> None:
        while True:
            try:
                chunk = os.read(src_fd, 65536)
            except OSError:  # EIO: the pseudo-terminal's other side is closed
                break
            if not chunk:
                break
            with contextlib.suppress(OSError):
                _write_all(dst_fd, chunk)
            with self._lock:
                self._buf += chunk
                if len(self._buf) > 2 * _KEEP_BYTES:
                    del self._buf[: len(self._buf) - _KEEP_BYTES]
        with contextlib.suppress(OSError):
            os.close(src_fd)

    def text(self) -> str:
        with self._lock:
            return bytes(self._buf[-_KEEP_BYTES:]).decode("utf-8", "replace")

    def last(self) -> str:
        return report.output_tail(self.text(), 1) or ""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _pipe_for(stream_fd: int) -> tuple[int, int]:
    """(our read end, the child's write end): a pseudo-terminal when ``stream_fd`` is one."""
    try:
        if os.isatty(stream_fd):
            import pty

            master, slave = pty.openpty()
            with contextlib.suppress(Exception):
                import fcntl
                import termios

                size = fcntl.ioctl(stream_fd, termios.TIOCGWINSZ, b"\0" * 8)
                fcntl.ioctl(slave, termios.TIOCSWINSZ, size)
            return master, slave
    except OSError:
        pass
    return os.pipe()


def run_command(
    command: list[str],
    *,
    job: Job,
    tail: int = DEFAULT_TAIL,
    progress_interval: float | None = None,
) -> int:
    """Run ``command`` with its output passing through; report through ``job``.

    Returns the exit status to exit with: the command's, or 128 + signal.
    """
    output = _Output()
    started = time.perf_counter()
    fds = [_pipe_for(1), _pipe_for(2)]
    proc: subprocess.Popen[bytes] | None = None
    error: str | None = None
    returncode = 0
    forward = _Forwarder()
    # like time(1): Ctrl-C and Ctrl-\ reach the command (same process group) and we
    # stay to report; a SIGTERM or SIGHUP sent to us is passed on to it
    old_handlers = {sig: signal.signal(sig, signal.SIG_IGN) for sig in _IGNORED}
    old_handlers.update({sig: signal.signal(sig, forward) for sig in _FORWARDED})
    try:
        try:
            proc = subprocess.Popen(command, stdout=fds[0][1], stderr=fds[1][1], close_fds=True)
        except FileNotFoundError:
            error = f"command not found: {command[0]}"
            returncode = EXIT_NOT_FOUND
        except PermissionError:
            error = f"permission denied: {command[0]}"
            returncode = EXIT_NOT_EXECUTABLE
        except OSError as exc:
            error = f"cannot run {command[0]}: {exc.strerror or exc}"
            returncode = EXIT_NOT_EXECUTABLE
        for _, child_end in fds:
            os.close(child_end)
        readers = [
            threading.Thread(target=output.copy, args=(ours, fd), daemon=True)
            for fd, (ours, _child_end) in enumerate(fds, start=1)
        ]
        for t in readers:
            start_thread(t)
        job.start()
        if proc is not None:
            forward.attach(proc)
            returncode = _wait(proc, job, output, started, progress_interval)
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
    for t in readers:
        t.join(1.0)  # a background child may keep the pipe open: do not wait for it
    elapsed = time.perf_counter() - started
    if error is not None:
        print(f"mattermost-notify: run: {error}", file=sys.stderr, flush=True)
    job.finish(_outcome(returncode, elapsed, output.text(), tail, error))
    return returncode if returncode >= 0 else 128 - returncode


_IGNORED = (signal.SIGINT, signal.SIGQUIT)
_FORWARDED = (signal.SIGTERM, signal.SIGHUP)


class _Forwarder:
    """Signal handler passing SIGTERM/SIGHUP on to the command (also one that came early)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.early: list[int] = []

    def attach(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        for signum in self.early:
            self(signum, None)

    def __call__(self, signum: int, _frame: Any) -> None:
        if self.proc is None:
            self.early.append(signum)
            return
        with contextlib.suppress(OSError):
            self.proc.send_signal(signum)


def _wait(
    proc: subprocess.Popen[bytes],
    job: Job,
    output: _Output,
    started: float,
    interval: float | None,
) -> int:
    if interval is None:
        return proc.wait()
    while True:
        try:
            return proc.wait(timeout=interval)
        except subprocess.TimeoutExpired:
            elapsed = time.perf_counter() - started
            job.update(_progress_text(job.ctx, elapsed, output.last()))


def _progress_text(ctx: report.CellContext, elapsed: float, last_line: str) -> str:
    text = f"{report.running_message(ctx)}, running for {report.format_elapsed(elapsed)}"
    if last_line:
        text += f"\nLast output: {report._inline_code(last_line[:300])}"
    return text


def _outcome(
    returncode: int, elapsed: float, text: str, tail: int, error: str | None
) -> report.Outcome:
    lines = report.output_tail(text, tail)
    if returncode == 0:
        return report.Outcome("ok", elapsed, output=lines)
    if returncode == -signal.SIGINT:
        return report.Outcome("interrupted", elapsed, output=lines)
    return report.Outcome(
        "failed", elapsed, error=error or report.describe_exit(returncode), output=lines
    )


def run(args: argparse.Namespace) -> int:
    """``mattermost-notify run``: the CLI entry point."""
    from .api import new_client
    from .cli import UsageError, _load_settings, resolve_target
    from .errors import MattermostNotifyWarning

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UsageError("run needs a command: mattermost-notify run -u USER -- COMMAND [ARGS...]")
    if args.after is not None and args.after < 0:
        raise UsageError(f"--after must be >= 0 seconds, not {args.after:g}")
    if args.tail < 0:
        raise UsageError(f"--tail must be >= 0 lines, not {args.tail}")
    from .config import parse_mentions

    mention = list(args.mention) if args.mention else None
    parse_mentions(mention, "--mention")  # a bad name fails before the command runs
    settings = _load_settings(args)  # a broken configuration stops us before the command
    client = new_client(**settings.client_kwargs())
    kind, name = resolve_target(client, args.user, args.channel, "run")
    target = {"user": None, "channel": None, kind: name}
    ctx = report.CellContext(
        first_line=report.first_line(shlex.join(command), 120),
        title=args.title,
        started_at=datetime.now(UTC),
        what="a command",
    )
    job = Job(
        client=lambda: client,
        ctx=ctx,
        target=target,
        message_id=f"run-{uuid.uuid4().hex[:12]}",
        after=args.after,
        mention=mention,
        announce=bool(args.progress),
        report_short_failures=True,
    )
    # failures are reported once, by _deliver, in one line each (no log lines, no warnings)
    logging.getLogger("mattermost_notify").addHandler(logging.NullHandler())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MattermostNotifyWarning)
        status = run_command(
            command,
            job=job,
            tail=args.tail,
            progress_interval=PROGRESS_INTERVAL if args.progress else None,
        )
        _deliver(client, job)
    return status


def _deliver(client: Any, job: Job) -> None:
    """Wait a little for the messages; say in one line what did not go out."""
    if not job.tickets:
        return
    delivered = client.sender.flush(FLUSH_TIMEOUT)
    said: set[str] = set()
    for ticket in job.tickets:
        # flush() returns just before the tickets are resolved: give them a moment
        exc = ticket.exception(timeout=1.0 if delivered else 0)
        # an edit or reply skipped because its message failed: that failure was said
        if exc is None or type(exc).__name__ == "_AfterFailedPost" or str(exc) in said:
            continue
        said.add(str(exc))
        print(f"mattermost-notify: run: notification not sent: {exc}", file=sys.stderr)
    if not delivered:
        # at exit a detached sender process takes them over (it keeps trying, up to 10 min)
        print(
            "mattermost-notify: run: the server did not answer in time; the notification "
            "stays in the outbox and a background process keeps trying to deliver it "
            "(see: mattermost-notify outbox list)",
            file=sys.stderr,
        )
        return
    client.close(timeout=0.5)
