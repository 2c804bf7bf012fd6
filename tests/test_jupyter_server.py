"""The Jupyter server extension, in a real ``jupyter server`` process.

The extension is enabled by the config file the package installs
(``{sys.prefix}/etc/jupyter/jupyter_server_config.d/mattermost_notify.json``); the
kernels are started through the server's REST API, run ``%%notify_on_done`` cells, and
are killed with SIGKILL, as the out-of-memory killer does. The replies are read back
from the sandbox.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from polling import wait_until

pytest.importorskip("jupyter_server")
from jupyter_client import BlockingKernelClient

from mattermost_notify.hooks import HookStore, MessageHook

pytestmark = pytest.mark.slow

TOKEN = "jupyter-test-token"
CONFIG_FILE = Path(
    sys.prefix, "etc", "jupyter", "jupyter_server_config.d", "mattermost_notify.json"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class JupyterServer:
    def __init__(self, root: Path, runtime: Path, env: dict[str, str], log: Path) -> None:
        self.root = root
        self.runtime = runtime
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_server",
                "--no-browser",
                f"--port={self.port}",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.root_dir={root}",
                f"--IdentityProvider.token={TOKEN}",
                "--ServerApp.port_retries=0",
                "--allow-root",
            ],
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        wait_until(self._up, 60, "the Jupyter server")

    def _up(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text()
        try:
            return self.api("GET", "/api/status").ok
        except requests.ConnectionError:
            return False

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"token {TOKEN}"}
        return requests.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def start_session(self, path: str) -> str:
        r = self.api(
            "POST",
            "/api/sessions",
            json={"path": path, "name": path, "type": "notebook", "kernel": {"name": "python3"}},
        )
        assert r.ok, f"{r.status_code} {r.text}\n{self.log.read_text()[-4000:]}"
        return str(r.json()["kernel"]["id"])

    def client(self, kernel_id: str) -> BlockingKernelClient:
        path = self.runtime / f"kernel-{kernel_id}.json"
        wait_until(path.exists, 30, "the connection file")
        kc = BlockingKernelClient(connection_file=str(path))
        kc.load_connection_file()
        # no heartbeat: on a loaded machine a late beat reads as "kernel died" to
        # wait_for_ready; the server's restarter is what watches the process here
        kc.start_channels(hb=False)
        kc.wait_for_ready(timeout=60)
        return kc

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def jupyter(mattermost_env, tmp_path):
    root = tmp_path / "notebooks"
    root.mkdir()
    runtime = tmp_path / "runtime"
    env = dict(os.environ)
    env.update(
        JUPYTER_RUNTIME_DIR=str(runtime),
        JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"),
        IPYTHONDIR=str(tmp_path / "ipython"),
        PYTHONUNBUFFERED="1",
    )
    server = JupyterServer(root, runtime, env, tmp_path / "server.log")
    try:
        yield server
    finally:
        server.stop()


def _execute(kc: BlockingKernelClient, code: str) -> None:
    reply = kc.execute_interactive(code, timeout=60, output_hook=lambda msg: None)
    assert reply["content"]["status"] == "ok", reply["content"]


def _record(kernel_id: str) -> dict | None:
    path = Path(os.environ["MATTERMOST_NOTIFY_DATA_DIR"], "kernels", f"{kernel_id}.json")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _posts(sb, user: str):
    try:
        return sb.view.posts(dm_with=user)
    except KeyError:
        return []


def _start_notified_cell(jupyter, sb, kernel_id: str, user: str) -> tuple[dict, object]:
    kc = jupyter.client(kernel_id)
    _execute(kc, "%load_ext mattermost_notify")
    kc.execute(f"%%notify_on_done -u {user}\nimport time\ntime.sleep(300)")
    [running] = wait_until(lambda: _posts(sb, user), 30, "the running post")
    record = wait_until(
        lambda: (r := _record(kernel_id)) and r["jobs"] and r["jobs"][0]["hook"] and r,
        30,
        "the job record with the message's hook",
    )
    kc.stop_channels()
    return record, running


def test_installed_config_file_enables_the_extension():
    assert CONFIG_FILE.is_file(), "pip install did not install the server config file"
    data = json.loads(CONFIG_FILE.read_text())
    assert data["ServerApp"]["jpserver_extensions"]["mattermost_notify.jupyter_server"] is True


def test_sigkill_mid_cell_replies_in_the_thread_within_10_s(jupyter, mattermost_env):
    sb = mattermost_env
    kernel_id = jupyter.start_session("analysis.ipynb")
    record, running = _start_notified_cell(jupyter, sb, kernel_id, "alice")
    assert record["jobs"][0]["cell_number"] == 2
    assert (
        os.stat(
            Path(os.environ["MATTERMOST_NOTIFY_DATA_DIR"], "kernels", f"{kernel_id}.json")
        ).st_mode
        & 0o777
        == 0o600
    )
    assert sb.token not in json.dumps(record)

    os.kill(record["pid"], signal.SIGKILL)
    killed = time.monotonic()
    reply = wait_until(
        lambda: next((p for p in _posts(sb, "alice") if p.root_id == running.id), None),
        10,
        "the reply saying the kernel died",
    )
    took = time.monotonic() - killed
    assert "The kernel died" in reply.message
    assert "cell [2]" in reply.message
    assert "killed by SIGKILL: probably out of memory" in reply.message
    assert "analysis.ipynb" in reply.message
    print(f"reply {took:.1f} s after the kill")
    # the running post is edited to its final state
    root = wait_until(
        lambda: (p := sb.view.post(running.id)) and "Died" in p.message and p,
        10,
        "the final edit",
    )
    assert "killed by SIGKILL" in root.message
    assert "watching kernels" in jupyter.log.read_text()


_BAR_CELL = """\
from mattermost_notify import tqdm
import time
bar = tqdm(total=100, desc="train", user="alice", min_interval=0.05, mininterval=0)
for _ in range(60):
    bar.update(1)
time.sleep(0.1)
bar.refresh()  # the edit showing 60 %
time.sleep(300)
"""


def test_sigkill_under_a_progress_bar_replies_in_the_bars_thread(jupyter, mattermost_env):
    """No %%notify_on_done, no extension loaded: the bar's own record is enough."""
    sb = mattermost_env
    kernel_id = jupyter.start_session("training.ipynb")
    kc = jupyter.client(kernel_id)
    kc.execute(_BAR_CELL)
    record = wait_until(
        lambda: (
            (r := _record(kernel_id))
            and r["jobs"]
            and r["jobs"][0]["hook"]
            and r["jobs"][0]["state"] == "60 % (60/100)"
            and r
        ),
        30,
        "the bar's job record at 60 %",
    )
    kc.stop_channels()
    [job] = record["jobs"]
    assert (job["kind"], job["title"], job["cell_number"]) == ("progress", "train", 1)
    assert sb.token not in json.dumps(record)
    [bar_post] = _posts(sb, "alice")

    os.kill(record["pid"], signal.SIGKILL)
    killed = time.monotonic()
    reply = wait_until(
        lambda: next((p for p in _posts(sb, "alice") if p.root_id == bar_post.id), None),
        10,
        "the reply in the bar's thread",
    )
    print(f"reply {time.monotonic() - killed:.1f} s after the kill")
    assert "The kernel died** while the progress bar **train** was at 60 % (60/100)" in (
        reply.message
    )
    assert "in cell [1]" in reply.message
    assert "training.ipynb" in reply.message
    assert "killed by SIGKILL: probably out of memory" in reply.message
    edited = wait_until(
        lambda: (p := sb.view.post(bar_post.id)) and "died" in p.message and p,
        10,
        "the bar's message edited",
    )
    assert "60/100" in edited.message.splitlines()[0]  # its last meter stays
    assert "**train** died at 60 % (60/100)" in edited.message
    assert "killed by SIGKILL" in edited.message


def test_a_restart_from_the_api_gives_no_death_message(jupyter, mattermost_env):
    sb = mattermost_env
    kernel_id = jupyter.start_session("restart.ipynb")
    _, running = _start_notified_cell(jupyter, sb, kernel_id, "bob")
    r = jupyter.api("POST", f"/api/kernels/{kernel_id}/restart")
    assert r.ok, r.text
    time.sleep(8)  # longer than the restarter's 3 s poll and the 10 s deadline's share
    messages = [p.message for p in _posts(sb, "bob")]
    assert not any("kernel died" in m for m in messages), messages
    assert "died" not in sb.view.post(running.id).message


# ------------------------------------------------------------------ %autonotify
_SLEEPING_CELL = """\
import time
print("an earlier line")
for epoch in range(1, 13):
    print(f"epoch {epoch}: loss {1 / epoch:.3f}")
print("saving checkpoint...", flush=True)
time.sleep(300)
"""


def _start_autonotify_cell(
    jupyter, kernel_id: str, options: str, cell: str = _SLEEPING_CELL
) -> dict:
    """``%autonotify OPTIONS``, a quick cell with output (its record is gone when it
    ends), then a cell that prints and sleeps: returns its job record once the cell's
    output reached the clients (the server's extension among them)."""
    kc = jupyter.client(kernel_id)
    _execute(kc, "%load_ext mattermost_notify")
    _execute(kc, f"%autonotify {options}")
    _execute(kc, "print('output of the cell before')")
    assert _record(kernel_id) is None, "a finished cell left its record behind"
    kc.execute(cell)
    last = cell.splitlines()[-2].split('"')[1]  # what its last print says
    seen = ""
    deadline = time.monotonic() + 30
    while last not in seen and time.monotonic() < deadline:
        with contextlib.suppress(queue.Empty):
            msg = kc.get_iopub_msg(timeout=1)
            if msg["msg_type"] == "stream":
                seen += msg["content"]["text"]
    assert last in seen, seen
    # the kernel sends its output to each subscriber in turn: on a loaded machine a kill
    # right now can come before the server's copy left (a real kill comes much later)
    time.sleep(2)
    record = wait_until(
        lambda: (r := _record(kernel_id)) and r["jobs"] and r,
        30,
        "the job record of the cell under %autonotify",
    )
    kc.stop_channels()
    return record


def test_sigkill_mid_cell_under_autonotify_sends_a_new_alerting_message(jupyter, mattermost_env):
    """%autonotify posts nothing while a cell runs: the death is a new message (a DM
    here, so it alerts), naming the cell, even though the cell ran less than --after."""
    sb = mattermost_env
    kernel_id = jupyter.start_session("autonotified.ipynb")
    record = _start_autonotify_cell(jupyter, kernel_id, "-u alice --after 600")
    [job] = record["jobs"]
    assert (job["kind"], job["cell_number"], job["user"]) == ("autonotify", 4, "alice")
    assert (job["after"], job["on"], job["first_line"]) == (600, "all", "import time")
    path = Path(os.environ["MATTERMOST_NOTIFY_DATA_DIR"], "kernels", f"{kernel_id}.json")
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert sb.token not in path.read_text()
    assert _posts(sb, "alice") == []  # nothing is posted when a cell starts

    os.kill(record["pid"], signal.SIGKILL)
    killed = time.monotonic()
    [message] = wait_until(lambda: _posts(sb, "alice"), 10, "the message saying the kernel died")
    print(f"message {time.monotonic() - killed:.1f} s after the kill")
    assert message.root_id in ("", None)
    assert "The kernel died** while running `autonotified.ipynb` cell [4]" in message.message
    assert "`import time`" in message.message
    assert "killed by SIGKILL: probably out of memory" in message.message
    assert "running for" in message.message
    # the cell's last 10 lines of output, as the server saw them; not the cell before
    assert "The cell's last output:" in message.message
    assert "epoch 4: loss 0.250\n" in message.message
    assert "epoch 12: loss 0.083\nsaving checkpoint..." in message.message
    assert "epoch 3:" not in message.message and "before" not in message.message
    time.sleep(1)
    assert len(_posts(sb, "alice")) == 1  # one message, no second report


def test_autonotify_death_in_a_channel_mentions(jupyter, mattermost_env):
    sb = mattermost_env
    kernel_id = jupyter.start_session("channel.ipynb")
    record = _start_autonotify_cell(jupyter, kernel_id, "-c alerts --mention bob")
    os.kill(record["pid"], signal.SIGKILL)
    [message] = wait_until(
        lambda: sb.view.posts(channel="alerts"), 10, "the death message in the channel"
    )
    assert message.message.startswith("@bob ")
    assert "The kernel died" in message.message and "cell [4]" in message.message
    assert "saving checkpoint..." in message.message

    # the restarted kernel's next death: its report has the new cell's output
    cell = 'import time\nprint("second run", flush=True)\ntime.sleep(300)\n'
    record = _start_autonotify_cell(jupyter, kernel_id, "-c alerts --mention bob", cell)
    os.kill(record["pid"], signal.SIGKILL)
    second = wait_until(
        lambda: sb.view.posts(channel="alerts")[1:], 10, "the second death message"
    )[0]
    assert "The kernel died" in second.message and "second run" in second.message


def test_a_restart_from_the_api_under_autonotify_gives_no_message(jupyter, mattermost_env):
    sb = mattermost_env
    kernel_id = jupyter.start_session("restart-auto.ipynb")
    _start_autonotify_cell(jupyter, kernel_id, "-u bob --after 600")
    r = jupyter.api("POST", f"/api/kernels/{kernel_id}/restart")
    assert r.ok, r.text
    time.sleep(8)  # longer than the restarter's 3 s poll
    assert _posts(sb, "bob") == []
    assert _record(kernel_id) is None


def _hook(hook_id: str, sb) -> MessageHook:
    return MessageHook(
        id=hook_id,
        server_url=sb.url,
        bot_user_id=None,
        channel_id="a" * 26,
        post_id="b" * 26,
    )


def test_renames_move_the_notebooks_hooks(jupyter, mattermost_env):
    root = jupyter.root
    (root / "old.ipynb").write_text(
        json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    )
    (root / "projA").mkdir()
    (root / "projA" / "inner.ipynb").write_text((root / "old.ipynb").read_text())
    HookStore.for_key(os.path.realpath(root / "old.ipynb")).put(_hook("loss", mattermost_env))
    HookStore.for_key(os.path.realpath(root / "projA" / "inner.ipynb")).put(
        _hook("acc", mattermost_env)
    )

    r = jupyter.api("PATCH", "/api/contents/old.ipynb", json={"path": "new.ipynb"})
    assert r.ok, r.text
    r = jupyter.api("PATCH", "/api/contents/projA", json={"path": "projB"})
    assert r.ok, r.text

    new_store = HookStore.for_key(os.path.realpath(root / "new.ipynb"))
    wait_until(lambda: new_store.get("loss"), 10, "the hooks of the renamed notebook")
    assert not HookStore.for_key(os.path.realpath(root / "old.ipynb")).path.exists()
    inner = HookStore.for_key(os.path.realpath(root / "projB" / "inner.ipynb"))
    wait_until(lambda: inner.get("acc"), 10, "the hooks of the notebook in the moved folder")
