"""The example notebooks and the extension in real kernels, checked on the sandbox.

nbval (``notebooks/`` in testpaths) runs every notebook as documentation; here the same
notebooks run with nbclient like "Run All" does, and the test reads what the sandbox
received. Kernels inherit the environment ``mattermost_env`` sets (URL, token, team,
private data dir), as a kernel started by Jupyter inherits the user's.
"""

from __future__ import annotations

import copy
import json
import queue
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbclient
import nbformat
import pytest
from jupyter_client.manager import start_new_kernel

from mattermost_notify.hooks import HookStore
from mattermost_notify.ipython import autoload

pytestmark = pytest.mark.timeout(180)

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture
def sb(mattermost_server: Any, mattermost_env: Any, tmp_path: Path, monkeypatch: Any) -> Any:
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    for var in ("JPY_SESSION_NAME", "MATTERMOST_NOTIFY_NOTEBOOK"):
        monkeypatch.delenv(var, raising=False)
    return mattermost_server


def load(name: str) -> Any:
    return nbformat.read(NOTEBOOKS / name, as_version=4)


def execute(nb: Any, **kwargs: Any) -> Any:
    client = nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    for key, value in kwargs.items():
        setattr(client, key, value)
    return client.execute()


def wait_for(predicate: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def roots(sb: Any, channel: str = "alerts") -> list[Any]:
    return [p for p in sb.view.posts(channel=channel) if not p.root_id]


def replies(sb: Any, root: Any) -> list[Any]:
    return [sb.view.post(pid) for pid in sb.view.post(root.id).reply_ids]


def errors(nb: Any) -> list[dict[str, Any]]:
    return [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]


def assert_no_token(sb: Any, nb: Any) -> None:
    assert sb.token not in json.dumps(nb)


# ------------------------------------------------------------------ the notebooks


def test_quickstart(sb: Any) -> None:
    nb = execute(load("01-quickstart.ipynb"))
    assert errors(nb) == []
    messages = {p.message: p for p in roots(sb)}
    assert "Data loaded: 1200 samples, it's time for coffee" in messages
    status = messages["Step 2 of 2: done"]
    assert status.edits[0].message == "Step 1 of 2: preprocessing"
    assert [f.name for f in messages["Summary of the run"].files] == ["summary.csv"]
    assert_no_token(sb, nb)


@pytest.mark.slow
def test_long_loop(sb: Any) -> None:
    pytest.importorskip("matplotlib")
    nb = execute(load("02-long-loop.ipynb"))
    assert errors(nb) == []
    posts = roots(sb)
    assert len(posts) == 3, [p.message for p in posts]  # the --after 600 cell sent nothing
    training, curve, auto = posts
    [done] = replies(sb, training)
    assert done.message.startswith(":white_check_mark: **Done** in ")
    assert "training (toy model)" in done.message and "Result: `0.2`" in done.message
    assert training.message.startswith(":white_check_mark: **Done**")
    [figure] = replies(sb, curve)[0].files
    assert figure.name == "figure-1.png" and figure.read_bytes().startswith(b"\x89PNG")
    assert "time.sleep(0.6)" in auto.message
    assert_no_token(sb, nb)


def test_long_loop_runs_without_matplotlib(sb: Any) -> None:
    """The documented install (``.[jupyter]``) has no matplotlib: the notebook runs on."""
    nb = load("02-long-loop.ipynb")
    assert "pip install matplotlib" in nb.cells[1].source  # said before the first code cell
    hide = nbformat.v4.new_code_cell(
        "import sys\nsys.modules['matplotlib'] = sys.modules['matplotlib.pyplot'] = None"
    )
    nb.cells.insert(0, hide)
    nb = execute(nb)
    assert errors(nb) == []
    assert "pip install matplotlib" in json.dumps(nb.cells[8].outputs)


def test_failing_cell_stops_run_all_with_one_traceback(sb: Any) -> None:
    nb = load("03-failing-cell.ipynb")
    # as saved: JupyterLab's Run All (and nbclient's) carries on past a cell tagged
    # "raises-exception"; the notebook tags it for nbval only, so Run All stops
    assert all("raises-exception" not in c.metadata.get("tags", []) for c in nb.cells)
    with pytest.raises(nbclient.exceptions.CellExecutionError) as info:
        execute(nb)  # Run All: stops at the failing cell
    assert info.value.ename == "KeyError"
    failing = next(c for c in nb.cells if c.source.startswith("%%notify_on_done"))
    index = nb.cells.index(failing)
    assert [o.output_type for o in failing.outputs] == ["error"], failing.outputs
    assert all(c.get("execution_count") is None for c in nb.cells[index + 1 :])  # not run
    # the kernel's exit flush delivers what was queued
    reply = wait_for(lambda: roots(sb) and replies(sb, roots(sb)[0]))
    assert reply, "no reply arrived"
    assert reply[0].message.startswith(":x: **Failed** after ")
    assert "**KeyError: 2**" in reply[0].message and "load_batch" in reply[0].message
    assert_no_token(sb, nb)


def test_update_after_a_kernel_restart(sb: Any) -> None:
    nb = load("04-update-after-restart.ipynb")
    cut = next(i for i, c in enumerate(nb.cells) if "restart-here" in c.metadata.get("tags", []))
    before, after = copy.deepcopy(nb), copy.deepcopy(nb)
    before.cells, after.cells = nb.cells[:cut], nb.cells[cut + 1 :]
    execute(before)  # kernel 1, then shut down
    [post] = roots(sb)
    assert post.message == "Experiment 42: running"
    after = execute(after)  # kernel 2: nothing in memory, the store on disk
    assert errors(after) == []
    [post] = roots(sb)
    assert post.message == "Experiment 42: finished"
    assert "experiment-42" in json.dumps(after.cells[-1].outputs)


# ------------------------------------------------------------------ kernels by hand


class Kernel:
    def __init__(self) -> None:
        self.km, self.kc = start_new_kernel(kernel_name="python3", startup_timeout=60)

    def send(self, code: str, *, stop_on_error: bool = True) -> str:
        return str(self.kc.execute(code, store_history=True, stop_on_error=stop_on_error))

    def reply(self, msg_id: str, timeout: float = 60) -> dict[str, Any]:
        while True:
            msg = self.kc.get_shell_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") == msg_id:
                return dict(msg["content"])

    def run(self, code: str, timeout: float = 60) -> dict[str, Any]:
        return self.reply(self.send(code), timeout)

    def value(self, expr: str) -> Any:
        msg_id = self.send(expr)
        result = None
        while True:
            try:
                msg = self.kc.get_iopub_msg(timeout=30)
            except queue.Empty:
                break
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "execute_result":
                result = msg["content"]["data"]["text/plain"]
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        self.reply(msg_id)
        return result

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=False)


@pytest.fixture
def kernels() -> Iterator[list[Kernel]]:
    started: list[Kernel] = []
    yield started
    for k in started:
        k.close()


def test_interrupt_in_a_real_kernel(sb: Any, kernels: list[Kernel]) -> None:
    k = Kernel()
    kernels.append(k)
    k.run('%load_ext mattermost_notify\n%config NotifyMagics.default_channel = "alerts"')
    # stop_on_error=False: after an error ipykernel 7 aborts every request that reaches it
    # before its own "stop aborting" marker, so the "1 + 1" below could be aborted by a race
    # in the kernel's queue, not by anything of ours.
    msg_id = k.send("%%notify_on_done -m long\nimport time\ntime.sleep(30)", stop_on_error=False)
    time.sleep(1.0)
    started = time.monotonic()
    k.km.interrupt_kernel()
    reply = k.reply(msg_id, timeout=30)
    assert time.monotonic() - started < 5
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"
    assert k.run("1 + 1")["status"] == "ok"  # the kernel lives on
    assert k.value("import mattermost_notify as notify; notify.flush(timeout=30)") == "True"
    [root] = roots(sb)
    [answer] = replies(sb, root)
    assert answer.message.startswith(":warning: **Interrupted** after ")
    assert root.message.startswith(":warning: **Interrupted**")


def test_interrupting_a_plain_tqdm_loop_in_a_real_kernel(sb: Any, kernels: list[Kernel]) -> None:
    """The kernel's interrupt (SIGINT) in ``for x in tqdm(...)``: interrupted, no alerting
    reply, and the user's traceback shows no frame of ours (Python 3.11 too)."""
    k = Kernel()
    kernels.append(k)
    loop = (
        "import time\nfrom mattermost_notify import tqdm\n"
        "for i in tqdm(range(100_000), desc='job', channel='alerts'):\n"
        "    time.sleep(0.01)"
    )
    msg_id = k.send(loop, stop_on_error=False)
    assert wait_for(lambda: roots(sb), timeout=60)  # the bar's message is there: it runs
    k.km.interrupt_kernel()
    reply = k.reply(msg_id, timeout=30)
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"
    assert "_note_sigint" not in "\n".join(reply["traceback"])
    assert k.value("import mattermost_notify as notify; notify.flush(timeout=30)") == "True"
    [root] = roots(sb)
    assert "⏹️ **job** interrupted at " in root.message, root.message
    assert not replies(sb, root)


# slow: two kernels at once, 15 messages each
@pytest.mark.slow
def test_two_kernels_write_one_store(sb: Any, kernels: list[Kernel]) -> None:
    kernels.extend([Kernel(), Kernel()])
    setup = (
        '%load_ext mattermost_notify\n%config NotifyMagics.notebook_key = "/shared/nb.ipynb"\n'
        '%config NotifyMagics.default_channel = "alerts"'
    )
    for k in kernels:
        assert k.run(setup)["status"] == "ok"
    loop = (
        "import mattermost_notify as notify\n"
        "for i in range(15):\n"
        "    get_ipython().run_line_magic('notify', f'--id k{n}-{{i}} message {{i}}')\n"
        "assert notify.flush(timeout=60)"
    )
    ids = [k.send(loop.format(n=n)) for n, k in enumerate(kernels)]  # both at once
    for k, msg_id in zip(kernels, ids, strict=True):
        assert k.reply(msg_id)["status"] == "ok"
    hooks = HookStore.for_key("/shared/nb.ipynb").list()
    assert sorted(h.id for h in hooks) == sorted(f"k{n}-{i}" for n in range(2) for i in range(15))
    assert len(roots(sb)) == 30


# slow: two kernels; test_ipython_units checks the configuration file it writes
@pytest.mark.slow
def test_autoload_enable_and_disable_in_real_kernels(sb: Any, kernels: list[Kernel]) -> None:
    cfg = autoload.config_file()  # under the test's IPYTHONDIR
    autoload.enable(cfg)
    k = Kernel()
    kernels.append(k)
    assert k.value("'NotifyMagics' in get_ipython().magics_manager.registry") == "True"
    assert k.value("'mattermost_notify' in get_ipython().extension_manager.loaded") == "True"
    autoload.disable(cfg)
    k2 = Kernel()
    kernels.append(k2)
    assert k2.value("'NotifyMagics' in get_ipython().magics_manager.registry") == "False"


def test_default_title_is_the_notebook_and_the_cell_number(sb: Any, kernels: list[Kernel]) -> None:
    k = Kernel()
    kernels.append(k)
    setup = (
        '%load_ext mattermost_notify\n%config NotifyMagics.notebook_key = "/work/analysis.ipynb"'
        '\n%config NotifyMagics.default_channel = "alerts"'
    )
    assert k.run(setup)["status"] == "ok"
    assert k.run("%%notify_on_done\nimport time\ntime.sleep(0.1)")["status"] == "ok"
    assert k.value("import mattermost_notify as notify; notify.flush(timeout=30)") == "True"
    [root] = roots(sb)
    [done] = replies(sb, root)
    assert "`analysis.ipynb` cell [2]" in done.message, done.message
    assert "import time" not in root.message.splitlines()[0]


# ------------------------------------------------------------------ ids across restarts
# The rule (docs/jupyter.rst): send_update always finds a stored id; notify(..., id=...)
# edits a message of the previous kernel only if that kernel was active within
# NotifyMagics.reuse_ids_within seconds, else it posts a new message; ids the extension
# made up are pruned after that time.


NOTEBOOK = "/work/project/analysis.ipynb"
SETUP = '%load_ext mattermost_notify\n%config NotifyMagics.default_channel = "alerts"'


def _kernel(started: list[Kernel], *extra: str) -> Kernel:
    k = Kernel()
    started.append(k)
    reply = k.run("\n".join([SETUP, *extra]))
    assert reply["status"] == "ok", reply
    return k


def _ok(k: Kernel, code: str) -> None:
    reply = k.run(code)
    assert reply["status"] == "ok", reply


def _restart(started: list[Kernel], k: Kernel) -> None:
    assert k.value("import mattermost_notify as notify; notify.flush(timeout=30)") == "True"
    k.close()
    started.remove(k)


def _error(k: Kernel, code: str) -> str:
    # stop_on_error=False: else ipykernel 7 may abort the next request (a race in its queue)
    reply = k.reply(k.send(code, stop_on_error=False))
    assert reply["status"] == "error", reply
    return f"{reply['ename']}: {reply['evalue']}"


@pytest.fixture
def notebook(sb: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    # the kernels know their notebook from the start, as under Jupyter Server
    monkeypatch.setenv("MATTERMOST_NOTIFY_NOTEBOOK", NOTEBOOK)
    return NOTEBOOK


def test_first_message_of_the_plain_api_survives_a_restart(
    sb: Any,
    notebook: str,
    kernels: list[Kernel],
) -> None:
    k = _kernel(kernels)
    _ok(
        k,
        "import mattermost_notify as notify\n"
        'notify.notify_channel("run 1: started", "alerts", id="run1")',
    )
    assert "run1" in {h.id for h in HookStore.for_key(notebook).list()}
    _ok(
        k,
        "import contextlib, io\n_listing = io.StringIO()\n"
        "with contextlib.redirect_stdout(_listing):\n"
        "    get_ipython().run_line_magic('notify_hooks', 'list')",
    )
    listing = k.value("_listing.getvalue()") or ""
    assert "run1" in listing and "memory only" not in listing, listing
    _restart(kernels, k)
    # load_ext and send_update in one cell, after the restart
    k = Kernel()
    kernels.append(k)
    _ok(
        k,
        "%load_ext mattermost_notify\nimport mattermost_notify as notify\n"
        'notify.send_update("run 1: done", id="run1")',
    )
    [post] = roots(sb)
    assert post.message == "run 1: done"


@pytest.mark.slow
def test_restart_in_the_middle_edits_a_fresh_run_the_next_day_posts(
    sb: Any,
    notebook: str,
    kernels: list[Kernel],
) -> None:
    send = (
        "import mattermost_notify as notify\n"
        'notify.notify("{text}", channel_name="alerts", id="daily")'
    )
    # a restart in the middle of a job (default window: an hour): the same post
    k = _kernel(kernels)
    _ok(k, send.format(text="epoch 1"))
    _restart(kernels, k)
    k = _kernel(kernels)
    _ok(k, send.format(text="epoch 2"))
    _restart(kernels, k)
    [post] = roots(sb)
    assert post.message == "epoch 2"
    # "the next day": the previous kernel was last active longer ago than the window
    time.sleep(2.5)
    k = _kernel(kernels, "%config NotifyMagics.reuse_ids_within = 2")
    _ok(k, send.format(text="day 2"))
    # send_update always continues the stored message (here: the new one)
    _ok(k, 'notify.send_update("day 2: done", id="daily")')
    _restart(kernels, k)
    first, second = roots(sb)
    assert (first.message, second.message) == ("epoch 2", "day 2: done")


@pytest.mark.slow
def test_send_update_finds_an_old_id_and_made_up_ids_are_pruned(
    sb: Any,
    notebook: str,
    kernels: list[Kernel],
) -> None:
    k = _kernel(kernels)
    _ok(
        k,
        "import mattermost_notify as notify\n"
        'notify.notify("long job: running", channel_name="alerts", id="job")',
    )
    _ok(k, "%%notify_on_done\n1 + 1")
    _restart(kernels, k)
    ids = {h.id for h in HookStore.for_key(notebook).list()}
    assert "job" in ids and any(i.startswith("cell-") for i in ids), ids
    time.sleep(2.5)
    k = _kernel(kernels, "%config NotifyMagics.reuse_ids_within = 2")
    _ok(k, 'import mattermost_notify as notify\nnotify.send_update("long job: done", id="job")')
    _restart(kernels, k)
    assert {h.id for h in HookStore.for_key(notebook).list()} == {"job"}
    posts = {p.message for p in roots(sb)}
    assert "long job: done" in posts


def test_a_renamed_notebook_names_its_old_path(
    sb: Any,
    kernels: list[Kernel],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MATTERMOST_NOTIFY_NOTEBOOK", "/work/project/old-name.ipynb")
    k = _kernel(kernels)
    _ok(
        k,
        "import mattermost_notify as notify\n"
        'notify.notify("exp 7: running", channel_name="alerts", id="exp7")',
    )
    _restart(kernels, k)
    monkeypatch.setenv("MATTERMOST_NOTIFY_NOTEBOOK", "/work/project/new-name.ipynb")
    k = _kernel(kernels)
    error = _error(k, 'import mattermost_notify as notify\nnotify.send_update("x", id="exp7")')
    assert "unknown message id 'exp7'" in error
    assert "/work/project/old-name.ipynb" in error and "notebook_key" in error
    # the advice works
    _ok(k, "%config NotifyMagics.notebook_key = '/work/project/old-name.ipynb'")
    _ok(k, 'notify.send_update("exp 7: done", id="exp7")')
    [post] = roots(sb)
    assert post.message == "exp 7: done"
    assert sb.token not in json.dumps(error)
