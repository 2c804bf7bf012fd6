"""The watcher process: a kernel started without a Jupyter server (as ``jupyter console``
and VS Code start theirs) is killed mid-cell; its watcher replies in the thread."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from jupyter_client import KernelManager
from polling import wait_until

pytestmark = pytest.mark.slow


def _posts(sb, user):
    try:
        return sb.view.posts(dm_with=user)
    except KeyError:
        return []


def _records() -> list[dict]:
    folder = Path(os.environ["MATTERMOST_NOTIFY_DATA_DIR"], "kernels")
    out = []
    for path in folder.glob("watch-*.json"):
        with contextlib.suppress(OSError, ValueError):
            out.append(json.loads(path.read_text()))
    return out


@pytest.fixture
def console_kernel(mattermost_env, tmp_path, monkeypatch):
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    km = KernelManager(connection_file=str(tmp_path / "kernel-console.json"))
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    reply = kc.execute_interactive("%load_ext mattermost_notify", timeout=60)
    assert reply["content"]["status"] == "ok"
    try:
        yield km, kc
    finally:
        kc.stop_channels()
        if km.is_alive():
            km.shutdown_kernel(now=True)


def _start_cell(sb, kc, user):
    kc.execute(f"%%notify_on_done -u {user}\nimport time\ntime.sleep(300)")
    [running] = wait_until(lambda: _posts(sb, user), 30, "the running post")
    record = wait_until(
        lambda: next((r for r in _records() if r["jobs"] and r["jobs"][0]["hook"]), None),
        30,
        "the job record",
    )
    return running, record


def test_sigkill_of_a_console_kernel_is_reported_by_its_watcher(console_kernel, mattermost_env):
    sb = mattermost_env
    _km, kc = console_kernel
    running, record = _start_cell(sb, kc, "alice")
    assert record["jobs"][0]["cell_number"] == 2
    os.kill(record["pid"], signal.SIGKILL)
    reply = wait_until(
        lambda: next((p for p in _posts(sb, "alice") if p.root_id == running.id), None),
        10,
        "the watcher's reply",
    )
    assert "The kernel died" in reply.message
    assert "cell [2]" in reply.message
    assert "without a clean exit" in reply.message


def test_a_clean_shutdown_is_not_reported(console_kernel, mattermost_env):
    sb = mattermost_env
    km, kc = console_kernel
    running, _record = _start_cell(sb, kc, "bob")
    km.shutdown_kernel(now=False)
    time.sleep(4)
    replies = [p for p in _posts(sb, "bob") if p.root_id == running.id]
    assert not any("kernel died" in p.message for p in replies), [p.message for p in replies]
    assert _records() == []


# ------------------------------------------------------------------ %autonotify
_SLEEPING_CELL = """\
import time
for epoch in range(1, 13):
    print(f"epoch {epoch}")
print("saving checkpoint...", flush=True)
time.sleep(300)
"""


def _start_autonotify_cell(kc, options):
    """``%autonotify OPTIONS`` (it starts the watcher), then a cell that prints and
    sleeps; returns its record once its output reached the clients."""
    reply = kc.execute_interactive(f"%autonotify {options}", timeout=60)
    assert reply["content"]["status"] == "ok"
    # the watcher it started subscribes to the kernel's output within a second or so
    # (its imports); what a cell prints before that is not in its report
    time.sleep(3)
    kc.execute(_SLEEPING_CELL)
    seen = ""
    deadline = time.monotonic() + 30
    while "saving checkpoint" not in seen and time.monotonic() < deadline:
        with contextlib.suppress(queue.Empty):
            msg = kc.get_iopub_msg(timeout=1)
            if msg["msg_type"] == "stream":
                seen += msg["content"]["text"]
    assert "saving checkpoint" in seen, seen
    time.sleep(2)  # the kernel sends to each subscriber in turn (the watcher is one)
    return wait_until(
        lambda: next((r for r in _records() if r["jobs"]), None),
        30,
        "the job record of the cell under %autonotify",
    )


def test_sigkill_of_a_console_kernel_under_autonotify_is_reported(console_kernel, mattermost_env):
    """No post while the cell runs; its watcher sends the death as a new message in the
    channel, with the mention, though the cell ran less than --after."""
    sb = mattermost_env
    _km, kc = console_kernel
    record = _start_autonotify_cell(kc, "-c alerts --mention bob --after 600")
    [job] = record["jobs"]
    assert (job["kind"], job["cell_number"], job["channel"]) == ("autonotify", 3, "alerts")
    assert sb.token not in json.dumps(record)
    assert sb.view.posts(channel="alerts") == []
    os.kill(record["pid"], signal.SIGKILL)
    killed = time.monotonic()
    [message] = wait_until(
        lambda: sb.view.posts(channel="alerts"), 10, "the watcher's message in the channel"
    )
    print(f"message {time.monotonic() - killed:.1f} s after the kill")
    assert message.message.startswith("@bob ")
    assert "The kernel died** while running cell [3] `import time`" in message.message
    assert "without a clean exit" in message.message
    assert "The cell's last output:" in message.message  # from the kernel's IOPub
    assert "epoch 4\nepoch 5\n" in message.message and "epoch 3\n" not in message.message
    assert "epoch 12\nsaving checkpoint..." in message.message
    assert _records() == []


def test_a_clean_shutdown_under_autonotify_is_not_reported(console_kernel, mattermost_env):
    sb = mattermost_env
    km, kc = console_kernel
    _start_autonotify_cell(kc, "-u bob --after 600")
    km.shutdown_kernel(now=False)
    time.sleep(4)
    assert _posts(sb, "bob") == []
    assert _records() == []


# ------------------------------------------------------------- a progress bar, no IPython
_BAR_SCRIPT = """
import time
from mattermost_notify import tqdm

bar = tqdm(total=100, desc="train", user="alice", min_interval=0.05, mininterval=0)
for _ in range(60):
    bar.update(1)
time.sleep(0.1)
bar.refresh()  # the edit showing 60 %
time.sleep(300)
"""


def test_sigkill_of_a_script_under_a_progress_bar_is_reported_in_its_thread(
    mattermost_env, tmp_path
):
    """A plain script (no IPython, no Jupyter) dies under a bar at 60 %: the watcher the
    bar started replies in the bar's thread and edits the message to say so."""
    sb = mattermost_env
    proc = subprocess.Popen(
        [sys.executable, "-c", _BAR_SCRIPT],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    try:
        record = wait_until(
            lambda: next(
                (
                    r
                    for r in _records()
                    if r["pid"] == proc.pid
                    and r["jobs"]
                    and r["jobs"][0]["hook"]
                    and r["jobs"][0]["state"] == "60 % (60/100)"
                ),
                None,
            ),
            30,
            "the bar's record at 60 %",
        )
        [job] = record["jobs"]
        assert job["kind"] == "progress" and job["title"] == "train"
        assert sb.token not in json.dumps(record)
        [bar_post] = _posts(sb, "alice")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    reply = wait_until(
        lambda: next((p for p in _posts(sb, "alice") if p.root_id == bar_post.id), None),
        10,
        "the watcher's reply in the bar's thread",
    )
    assert "The process died" in reply.message
    assert "**train** was at 60 % (60/100)" in reply.message
    assert "without a clean exit" in reply.message
    edited = wait_until(
        lambda: (p := sb.view.post(bar_post.id)) and "died" in p.message and p,
        10,
        "the bar's message edited",
    )
    assert "60/100" in edited.message.splitlines()[0]  # the last meter stays
    assert "**train** died at 60 % (60/100)" in edited.message
    assert _records() == []


_CLEAN_BAR_SCRIPT = """
from mattermost_notify import tqdm

bar = tqdm(total=10, desc="short", user="bob", min_interval=0.05)
bar.update(5)
raise SystemExit(0)  # exits with the bar open: a clean exit, no death
"""


def test_a_script_that_exits_with_an_open_bar_is_not_reported(mattermost_env, tmp_path):
    """A clean exit with a bar still open is no death; the bar's final state arrives."""
    sb = mattermost_env
    done = subprocess.run(
        [sys.executable, "-c", _CLEAN_BAR_SCRIPT], capture_output=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    time.sleep(3)
    messages = [p.message for p in _posts(sb, "bob")]
    assert not any("died" in m for m in messages), messages
    # closed at exit (it did not hang in the interpreter's shutdown): stopped at 5/10
    [post] = [p.message for p in _posts(sb, "bob") if not p.root_id]
    assert "stopped at 5/10" in post, post
    assert _records() == []


def test_no_watcher_and_no_record_when_turned_off(mattermost_env, tmp_path):
    """``MATTERMOST_NOTIFY_DEATH_WATCHER=0``: a plain script's bar starts no watcher."""
    script = (
        "from mattermost_notify import tqdm\n"
        "from mattermost_notify.process_record import this_process\n"
        "bar = tqdm(total=3, user='bob')\n"
        "print(this_process())\n"
        "bar.close()\n"
    )
    env = dict(os.environ, MATTERMOST_NOTIFY_DEATH_WATCHER="0")
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "None"
    assert not Path(os.environ["MATTERMOST_NOTIFY_DATA_DIR"], "kernels").exists()
