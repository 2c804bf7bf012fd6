"""The watcher process: a kernel started without a Jupyter server (as ``jupyter console``
and VS Code start theirs) is killed mid-cell; its watcher replies in the thread."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

import pytest
from jupyter_client import KernelManager

pytestmark = pytest.mark.slow


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


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
    [running] = _wait(lambda: _posts(sb, user), 30, "the running post")
    record = _wait(
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
    reply = _wait(
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
