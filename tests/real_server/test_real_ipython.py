"""The magics in a real IPython kernel (nbclient, like Jupyter's "Run All"), posting to the
real server. The kernel inherits the environment ``real_env`` points at the server."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import nbclient
import nbformat
import pytest

pytestmark = pytest.mark.timeout(240)


def wait_for(predicate: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def run_notebook(cells: list[str], tmp_path: Path) -> Any:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    client = nbclient.NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    return client.execute()


def test_magics_in_a_kernel_with_a_failing_cell(
    real_env: Any, admin: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    dm_before = len(admin.dm_posts("alice"))
    channel = admin.server.channels["bot-public"]
    channel_before = len(admin.channel_posts(channel))
    nb = run_notebook(
        [
            "%load_ext mattermost_notify",
            "%notify -u alice Kernel says hello, it's on its way",
            '%%notify_on_done -u alice -m "sum of squares"\nsum(i * i for i in range(1000))',
            '%%notify_on_done -c bot-public -m "loading"\n'
            "def load_batch(n):\n    return {}[n]\nload_batch(2)",
        ],
        tmp_path,
    )
    errors = [
        (index, output.ename)
        for index, cell in enumerate(nb.cells)
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert errors == [(3, "KeyError")]  # the cell's own error, unchanged, and only that

    dm = wait_for(lambda: len(admin.dm_posts("alice")) >= dm_before + 3 and admin.dm_posts("alice"))
    assert dm, "the DM posts did not arrive"
    new = dm[dm_before:]
    assert new[0]["message"] == "Kernel says hello, it's on its way"
    running, done = new[1], new[2]
    assert "sum of squares" in running["message"]
    assert done["root_id"] == running["id"]  # the reply that notifies
    assert "332833500" in done["message"]  # the cell's value

    def channel_thread() -> list[dict[str, Any]]:
        roots = [p for p in admin.channel_posts(channel)[channel_before:] if not p["root_id"]]
        return admin.thread(roots[0]["id"]) if roots else []

    thread = wait_for(lambda: len(channel_thread()) >= 2 and channel_thread())
    assert thread, "the failing cell's reply did not arrive"
    root, reply = thread[0], thread[-1]
    assert "loading" in root["message"]
    assert "KeyError" in reply["message"] and "load_batch" in reply["message"]
    assert admin.server.bot_token not in nbformat.writes(nb)
