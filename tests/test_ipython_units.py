"""The extension's plain functions: message texts, option parsing, notebook key, autoload.

No server needed; the magics themselves are tested over HTTP in test_ipython.py.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mattermost_notify import report
from mattermost_notify.ipython import autoload
from mattermost_notify.ipython.notebook import detect_notebook_key

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ report


def test_format_elapsed() -> None:
    assert report.format_elapsed(0.421) == "0.42 s"
    assert report.format_elapsed(12.34) == "12.3 s"
    assert report.format_elapsed(184) == "3 min 04 s"
    assert report.format_elapsed(2 * 3600 + 5 * 60) == "2 h 05 min"
    assert report.format_elapsed(3 * 86400 + 3600) == "3 d 1 h"


def test_first_line_skips_blank_and_comments() -> None:
    assert report.first_line("\n# NBVAL_SKIP\n  train(model)  \nx") == "train(model)"
    assert report.first_line("") == ""
    assert report.first_line("x" * 200).endswith("…")
    assert len(report.first_line("x" * 200)) == 80


def test_short_repr_is_short_and_never_raises() -> None:
    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert report.short_repr(42) == "42"
    assert len(report.short_repr("a" * 10_000)) <= report.REPR_CHARS
    assert "Broken" in report.short_repr(Broken())  # reprlib's fallback, no exception
    assert report.short_repr(list(range(1000))).endswith("...]")


def _raise_deep(n: int) -> None:
    if n == 0:
        try:
            {}["missing"]
        except KeyError as exc:
            raise ValueError("deep down") from exc  # a chained, long traceback
    _raise_deep(n - 1)


def test_outcome_of_failure_has_tail_and_full_traceback() -> None:
    try:
        _raise_deep(3)
    except ValueError as exc:
        outcome = report.outcome_of(exc, 1.5)
    assert outcome.status == "failed"
    assert outcome.error == "ValueError: deep down"
    assert outcome.traceback is not None
    assert len(outcome.traceback.splitlines()) > report.TAIL_LINES
    assert outcome.traceback_is_long
    ctx = report.CellContext(first_line="train()", notebook="/x/nb.ipynb", host="me@box")
    text = report.reply_message(ctx, outcome)
    assert text.startswith(":x: **Failed** after 1.50 s: `train()`")
    assert "```\n" in text and text.rstrip().endswith("The full traceback is attached.")
    tail = report.traceback_tail(outcome.traceback)
    assert tail in text and len(tail) <= report.TAIL_CHARS
    assert "ValueError: deep down" in tail


def test_interrupt_and_success_texts() -> None:
    ctx = report.CellContext(first_line="loop()", title="training", host="me@box")
    assert report.outcome_of(KeyboardInterrupt(), 3.0).status == "interrupted"
    text = report.reply_message(ctx, report.outcome_of(KeyboardInterrupt(), 3.0))
    assert text.startswith(":warning: **Interrupted** after 3.00 s: training")
    ok = report.outcome_of(None, 0.5, {"loss": 0.1})
    assert "Result: `{'loss': 0.1}`" in report.reply_message(ctx, ok)
    assert report.outcome_of(None, 0.5, 42, include_result=False).value_repr is None
    assert "**Running** training" in report.running_message(ctx)
    assert "on `me@box`" in report.running_message(ctx)


def test_fence_survives_backticks_in_traceback() -> None:
    try:
        raise RuntimeError("```oops```")
    except RuntimeError as exc:
        outcome = report.outcome_of(exc, 1.0)
    text = report.reply_message(report.CellContext(first_line="x"), outcome)
    assert "````\n" in text  # a longer fence than the backticks inside


# ------------------------------------------------------------------ %notify parsing


def test_split_notify_line() -> None:
    from mattermost_notify.ipython.magics import split_notify_line

    opts, msg = split_notify_line("-c alerts --id=run1 -f a.txt -f 'b c.txt' it's done: 50%")
    assert opts == {"user": None, "channel": "alerts", "files": ["a.txt", "b c.txt"], "id": "run1"}
    assert msg == "it's done: 50%"
    assert split_notify_line("-- -5 degrees")[1] == "-5 degrees"
    assert split_notify_line('  "quoted"  stays ')[1] == '"quoted"  stays'
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="unknown option --bogus"):
        split_notify_line("--bogus hi")
    with pytest.raises(UsageError, match="not both"):
        split_notify_line("-u alice -c alerts hi")
    with pytest.raises(UsageError, match="needs a value"):
        split_notify_line("-u")


# ------------------------------------------------------------------ notebook key


def test_notebook_key_order(tmp_path: Path) -> None:
    env = {"JPY_SESSION_NAME": str(tmp_path / "lab.ipynb")}
    ns = {"__vsc_ipynb_file__": str(tmp_path / "vs.ipynb")}
    key = detect_notebook_key(ns, "explicit", environ=env)
    assert key is not None and (key.key, key.source) == ("explicit", "notebook_key")
    key = detect_notebook_key(ns, None, environ={**env, "MATTERMOST_NOTIFY_NOTEBOOK": "e"})
    assert key is not None and key.source == "env"
    key = detect_notebook_key(ns, None, environ=env)
    assert key is not None and key.source == "vscode"
    assert key.key == os.path.realpath(tmp_path / "vs.ipynb")
    key = detect_notebook_key({}, None, environ=env)
    assert key is not None and key.source == "JPY_SESSION_NAME"
    assert detect_notebook_key({}, None, environ={}) is None


def test_notebook_key_normalisation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    uuid = "0b7f1e2a-1c3d-4e5f-8a9b-0c1d2e3f4a5b"
    assert detect_notebook_key({}, None, environ={"JPY_SESSION_NAME": uuid}) is None
    key = detect_notebook_key({}, None, environ={"JPY_SESSION_NAME": "sub/nb.ipynb"})
    assert key is not None and key.key == os.path.realpath(tmp_path / "nb.ipynb")
    key = detect_notebook_key({}, None, environ={"JPY_SESSION_NAME": "RTC:sub/nb.ipynb"})
    assert key is not None and key.key == os.path.realpath(tmp_path / "nb.ipynb")
    key = detect_notebook_key({"__session__": str(tmp_path / "s.ipynb")}, None, environ={})
    assert key is not None and key.key.endswith("s.ipynb")


def test_server_query_outside_a_kernel_is_none() -> None:
    from mattermost_notify.ipython.notebook import query_jupyter_server

    assert query_jupyter_server() is None


# ------------------------------------------------------------------ autoload


def _run(action: str, ipdir: Path) -> int:
    args = argparse.Namespace(action=action, profile="default", ipython_dir=str(ipdir))
    return autoload.run(args)


def test_autoload_enable_disable_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = autoload.config_file("default", tmp_path)
    assert _run("status", tmp_path) == 0
    assert "disabled" in capsys.readouterr().out
    assert _run("enable", tmp_path) == 0
    assert "enabled" in capsys.readouterr().out
    text = cfg.read_text()
    assert text.count('c.InteractiveShellApp.extensions.append("mattermost_notify")') == 1
    assert _run("enable", tmp_path) == 0  # twice: still one block
    assert "already enabled" in capsys.readouterr().out
    assert cfg.read_text() == text
    _run("status", tmp_path)
    assert capsys.readouterr().out.startswith("enabled")
    # the file stays valid Python with the block
    compile(cfg.read_text(), str(cfg), "exec")
    assert _run("disable", tmp_path) == 0
    assert "mattermost_notify" not in cfg.read_text()
    _run("status", tmp_path)
    assert "disabled" in capsys.readouterr().out


def test_autoload_keeps_the_users_file(tmp_path: Path) -> None:
    cfg = autoload.config_file("default", tmp_path)
    cfg.parent.mkdir(parents=True)
    mine = 'c = get_config()\nc.InteractiveShellApp.exec_lines = ["x = 1"]\n'
    cfg.write_text(mine)
    cfg.chmod(0o640)
    assert autoload.enable(cfg)
    assert cfg.read_text().startswith(mine)
    assert cfg.stat().st_mode & 0o777 == 0o640
    assert autoload.disable(cfg)
    assert cfg.read_text() == mine
    assert not autoload.disable(cfg)


def test_jupyter_config_snippet_is_what_enable_writes() -> None:
    snippet = (ROOT / "jupyter-config" / "ipython_kernel_config.py").read_text()
    assert autoload.BLOCK in snippet


def test_cli_parser_wiring() -> None:
    parser = argparse.ArgumentParser()
    autoload.add_arguments(parser)
    args = parser.parse_args(["status", "--profile", "x", "--ipython-dir", "/tmp/d"])
    assert (args.action, args.profile, args.ipython_dir) == ("status", "x", "/tmp/d")
    with pytest.raises(SystemExit):
        parser.parse_args(["bogus"])


def test_import_is_lazy() -> None:
    code = (
        "import sys, mattermost_notify, mattermost_notify.ipython, "
        "mattermost_notify.ipython.autoload\n"
        "bad = [m for m in ('IPython', 'ipywidgets', 'traitlets', 'ipykernel') "
        "if m in sys.modules]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_default_label_is_notebook_and_cell_number() -> None:
    ctx = report.CellContext(
        first_line="import time", notebook="/x/analysis.ipynb", host="me@box", cell_number=12
    )
    assert ctx.label == "`analysis.ipynb` cell [12]"
    assert "**Running** `analysis.ipynb` cell [12]" in report.running_message(ctx)
    assert report.CellContext(first_line="import time", cell_number=3).label == (
        "cell [3] `import time`"
    )
    titled = report.CellContext(first_line="x", title="training", notebook="/x/a.ipynb")
    assert titled.label == "training" and "notebook `a.ipynb`" in titled.where
