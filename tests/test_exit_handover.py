"""At exit nothing waits and nothing is left behind: a detached sender takes over.

A script queues messages in the background and exits while the server delays every
request; the script must not wait for them, and every message must arrive exactly once
(delivered by the short-lived detached sender process it starts).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from polling import wait_until

from mattermost_notify.sender import DEFAULT_EXIT_TIMEOUT

SCRIPT = """
import mattermost_notify as notify
for i in range(3):
    notify.notify_user(f"message {i}", "alice", block=False)
"""


def _run_script(code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``code`` in a child Python with this environment (the sandbox's settings)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _dm(sb, user="alice"):
    try:
        return [p.message for p in sb.view.posts(dm_with=user)]
    except KeyError:
        return []


@pytest.mark.slow
def test_exit_under_a_slow_server_hands_over_and_delivers_once(mattermost_env):
    sb = mattermost_env
    sb.faults.delay(2.0)
    started = time.monotonic()
    proc = _run_script(SCRIPT)
    took = time.monotonic() - started
    at_exit = len(_dm(sb))
    assert proc.returncode == 0, proc.stderr
    assert sb.token not in proc.stdout + proc.stderr
    # it did not wait for the server: 3 messages take 6 s there, and the exit did not
    # wait for the bounded flush either (5 s); the time itself is measured in
    # bench/bench_exit.py (a loaded test machine makes timings unreliable)
    assert at_exit < 3
    assert took < DEFAULT_EXIT_TIMEOUT, f"the script took {took:.2f} s to exit"
    wait_until(lambda: len(_dm(sb)) >= 3, 60, "the 3 messages")
    time.sleep(3)  # a late duplicate would show up now
    assert sorted(_dm(sb)) == ["message 0", "message 1", "message 2"]
    from mattermost_notify.outbox import list_entries

    wait_until(lambda: not list_entries(), 30, "the outbox to be empty")


@pytest.mark.slow
def test_exit_with_the_server_down_leaves_the_messages_to_the_detached_sender(mattermost_env):
    sb = mattermost_env
    sb.stop()
    started = time.monotonic()
    proc = _run_script(SCRIPT)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < DEFAULT_EXIT_TIMEOUT
    time.sleep(1)
    sb.start()  # the server comes back while the detached sender retries
    wait_until(lambda: len(_dm(sb)) >= 3, 60, "the 3 messages")
    time.sleep(2)
    assert sorted(_dm(sb)) == ["message 0", "message 1", "message 2"]


def test_a_healthy_server_gets_everything_once(mattermost_env):
    proc = _run_script(SCRIPT)
    assert proc.returncode == 0, proc.stderr
    wait_until(lambda: len(_dm(mattermost_env)) >= 3, 30, "the 3 messages")
    time.sleep(1)
    assert sorted(_dm(mattermost_env)) == ["message 0", "message 1", "message 2"]


# The outbox thread runs late, as on a loaded machine: it writes nothing for the 2 s after
# the message is queued (by then this process has exited). The message must still reach
# the detached sender: the hand-over writes what is queued before it lets go of the outbox.
LATE_OUTBOX_THREAD = """
import threading, time
import mattermost_notify as notify
from mattermost_notify.sender import BackgroundSender

sender = notify.wakeup().sender
assert sender.flush(30)  # the outbox thread has opened this process's outbox

save = BackgroundSender._save

def late_save(self):
    if threading.current_thread().name == "mattermost-notify-outbox":
        time.sleep(2)
    save(self)

BackgroundSender._save = late_save
notify.notify_user("queued at exit", "alice", block=False)
"""


@pytest.mark.slow
def test_a_message_the_outbox_thread_has_not_written_goes_to_the_detached_sender(
    mattermost_env,
):
    from mattermost_notify.outbox import list_entries

    sb = mattermost_env
    # the posts are refused (503: not applied) until the script has exited, so the
    # script itself cannot deliver it: only the detached sender can
    sb.faults.fail_next(10_000, status=503, path_prefix="/api/v4/posts")
    proc = _run_script(LATE_OUTBOX_THREAD)
    assert proc.returncode == 0, proc.stderr
    assert _dm(sb) == []
    sb.faults.clear()
    wait_until(lambda: _dm(sb), 60, "the message queued at exit")
    wait_until(lambda: not list_entries(), 60, "the outbox to be empty")
    assert _dm(sb) == ["queued at exit"]


NO_THREADS_AT_EXIT = """
import atexit, threading
import mattermost_notify as notify
from mattermost_notify import tqdm

def send_at_exit():
    notify.notify_user("sent at exit", "alice", block=False)

def refuse_threads():  # what Python 3.12 does once atexit handlers run
    def start(self):
        raise RuntimeError("can't create new thread at interpreter shutdown")
    threading.Thread.start = start

atexit.register(send_at_exit)
atexit.register(refuse_threads)  # runs first
for _ in tqdm(range(5), desc="job", user="alice"):
    pass
"""


def test_no_thread_can_start_at_exit(mattermost_env):
    """Python 3.12 starts no thread in atexit handlers (3.11 and 3.13 do): a message sent
    from one, and the final state of a bar that closed just before, still arrive (through
    the detached sender when no thread of the sender is running)."""
    sb = mattermost_env
    proc = _run_script(NO_THREADS_AT_EXIT, timeout=90)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    wait_until(lambda: "sent at exit" in _dm(sb), 60, "the message sent at exit")
    wait_until(lambda: any("✅ **job** done: 5/5" in m for m in _dm(sb)), 60, "the bar's end")
