"""Cells under ``%autonotify`` keep a job record while they run, so that a kernel killed
mid-cell is reported (tests/test_jupyter_server.py and tests/test_watcher.py kill real
kernels); here, in-process: what the record holds, when it goes, and which deaths
``report_kernel_death`` reports for it, over real HTTP to the sandbox."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("IPython")
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from traitlets.config import Config

import mattermost_notify as notify
from mattermost_notify import process_record
from mattermost_notify.client import Notify
from mattermost_notify.job_records import JobRecord, KernelRecord
from mattermost_notify.kernel_death import report_kernel_death

KERNEL_ID = "0f0e0d0c-0b0a-4909-8807-060504030201"

_READ_RECORD = (
    "import json, os, pathlib\n"
    "record = json.loads(pathlib.Path(os.environ['MATTERMOST_NOTIFY_DATA_DIR'], 'kernels', "
    f"'{KERNEL_ID}.json').read_text())"
)


def _record_path() -> Path:
    return Path(os.environ["MATTERMOST_NOTIFY_DATA_DIR"], "kernels", f"{KERNEL_ID}.json")


@pytest.fixture
def ip(mattermost_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A shell whose process looks like a kernel a Jupyter server started."""
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setattr(process_record, "server_kernel_id", lambda: KERNEL_ID)
    monkeypatch.setattr(
        "mattermost_notify.ipython.kernel_record.server_kernel_id", lambda: KERNEL_ID
    )
    monkeypatch.setattr(process_record, "_current", None)
    cfg = Config()
    cfg.HistoryManager.hist_file = ":memory:"
    InteractiveShell.clear_instance()
    shell = InteractiveShell.instance(config=cfg)
    shell.run_line_magic("load_ext", "mattermost_notify")
    shell.run_line_magic("config", 'NotifyMagics.notebook_key = "/work/analysis.ipynb"')
    yield shell
    with contextlib.suppress(Exception):
        shell.run_line_magic("unload_ext", "mattermost_notify")
    InteractiveShell.clear_instance()


def _run(ip: Any, cell: str) -> Any:
    with capture_output():
        result = ip.run_cell(cell, store_history=True)
    assert result.success, result.error_in_exec
    return result


def test_a_cell_under_autonotify_is_recorded_while_it_runs(ip: Any) -> None:
    _run(ip, "%autonotify -c alerts --mention bob --after 600 --on done")
    assert not _record_path().exists()  # the cell that turned it on is no job
    result = _run(ip, _READ_RECORD)
    [job] = ip.user_ns["record"]["jobs"]
    assert job["kind"] == "autonotify"
    assert job["cell_number"] == result.execution_count
    assert (job["channel"], job["user"], job["mention"]) == ("alerts", None, "bob")
    assert (job["after"], job["on"], job["hook"]) == (600, "done", None)
    assert job["notebook"] == "/work/analysis.ipynb"
    assert job["first_line"] == "import json, os, pathlib"
    assert abs(job["started_at"] - time.time()) < 60
    assert not _record_path().exists(), "the record outlived its cell"


def test_the_default_target_is_named_in_the_record(ip: Any) -> None:
    notify.wakeup(always_send_to_user="alice")
    _run(ip, "%autonotify")
    _run(ip, _READ_RECORD)
    [job] = ip.user_ns["record"]["jobs"]
    assert (job["user"], job["channel"], job["after"], job["on"]) == ("alice", None, 60, "all")


def test_a_notify_on_done_cell_under_autonotify_is_recorded_once(ip: Any) -> None:
    _run(ip, "%autonotify -c alerts")
    _run(ip, f"%%notify_on_done -u alice\n{_READ_RECORD}")
    assert [j["kind"] for j in ip.user_ns["record"]["jobs"]] == ["cell"]


def test_no_record_once_autonotify_is_off(ip: Any) -> None:
    _run(ip, "%autonotify -c alerts")
    _run(ip, "%autonotify --off")
    _run(ip, f"exists = __import__('pathlib').Path({str(_record_path())!r}).exists()")
    assert ip.user_ns["exists"] is False
    assert not _record_path().exists()


# ------------------------------------------------------------------ which deaths are sent
def _job(name: str, *, on: str, after: float, ran: float, channel: str = "alerts") -> JobRecord:
    return JobRecord(
        message_id=f"auto-{name}",
        kind="autonotify",
        started_at=time.time() - ran,
        channel=channel,
        cell_number=7,
        notebook="/work/analysis.ipynb",
        first_line=f"train_{name}()",
        mention="bob",
        after=after,
        on=on,
    )


def test_deaths_follow_autonotifys_rule(mattermost_env: Any) -> None:
    """A death is a failure: --on all/error report it however short the cell ran;
    --on done only after --after seconds."""
    sb = mattermost_env
    record = KernelRecord(key=KERNEL_ID, pid=os.getpid())
    for job in (
        _job("all_short", on="all", after=600, ran=5),
        _job("error_short", on="error", after=600, ran=5),
        _job("done_short", on="done", after=600, ran=5),
        _job("done_long", on="done", after=600, ran=700),
    ):
        record.jobs[job.message_id] = job
    with Notify(sb.token, sb.url, sb.team) as client:
        report_kernel_death(client, record, returncode=-9)
        assert client.sender.flush(30)
    messages = [p.message for p in sb.view.posts(channel="alerts")]
    sent = sorted(
        name
        for name in ("all_short", "error_short", "done_short", "done_long")
        if any(f"train_{name}()" in m for m in messages)
    )
    assert sent == ["all_short", "done_long", "error_short"]
    for message in messages:
        assert message.startswith("@bob :skull: **The kernel died** while running")
        assert "`analysis.ipynb` cell [7]" in message
        assert "killed by SIGKILL: probably out of memory" in message
    assert all(not p.root_id for p in sb.view.posts(channel="alerts"))
