"""The magics in a fresh InteractiveShell per test, over real HTTP to the sandbox."""

from __future__ import annotations

import contextlib
import json
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("IPython")

from IPython.core.interactiveshell import ExecutionInfo, ExecutionResult, InteractiveShell
from IPython.utils.capture import capture_output
from traitlets.config import Config

import mattermost_notify as notify
from mattermost_notify import api
from mattermost_notify.report import strip_ansi

pytestmark = pytest.mark.timeout(120)

CHANNEL = "alerts"


def make_shell(tmp_path: Path, config: Config | None = None) -> InteractiveShell:
    cfg = config or Config()
    cfg.HistoryManager.hist_file = ":memory:"
    InteractiveShell.clear_instance()
    return InteractiveShell.instance(config=cfg)


@pytest.fixture
def shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    for var in ("JPY_SESSION_NAME", "MATTERMOST_NOTIFY_NOTEBOOK"):
        monkeypatch.delenv(var, raising=False)
    sh = make_shell(tmp_path)
    yield sh
    with contextlib.suppress(Exception):
        sh.run_line_magic("unload_ext", "mattermost_notify")
    InteractiveShell.clear_instance()


@pytest.fixture
def sb(mattermost_server: Any, mattermost_env: Any) -> Any:
    return mattermost_server


@pytest.fixture
def ip(shell: InteractiveShell, sb: Any) -> InteractiveShell:
    shell.run_line_magic("load_ext", "mattermost_notify")
    shell.run_line_magic("config", f'NotifyMagics.default_channel = "{CHANNEL}"')
    shell.run_line_magic("config", 'NotifyMagics.notebook_key = "tests/notebook.ipynb"')
    return shell


def flush() -> None:
    assert notify.flush(timeout=30), "the background sender did not deliver in 30 s"


def roots(sb: Any, channel: str = CHANNEL) -> list[Any]:
    return [p for p in sb.view.posts(channel=channel) if not p.root_id]


def replies(sb: Any, root: Any) -> list[Any]:
    return [sb.view.post(pid) for pid in sb.view.post(root.id).reply_ids]


def run(ip: InteractiveShell, cell: str) -> tuple[ExecutionResult, Any]:
    with capture_output() as out:
        result = ip.run_cell(cell, store_history=True)
    return result, out


def assert_no_token(sb: Any, *texts: str) -> None:
    for text in texts:
        assert sb.token not in text


# ------------------------------------------------------------------ load / unload / config


def _ours(ip: InteractiveShell, event: str) -> list[Any]:
    return [
        cb
        for cb in ip.events.callbacks[event]
        if type(getattr(cb, "__self__", None)).__name__ == "NotifyMagics"
    ]


def test_load_twice_and_unload(shell: InteractiveShell) -> None:
    shell.run_line_magic("load_ext", "mattermost_notify")
    with capture_output() as out:
        shell.run_line_magic("load_ext", "mattermost_notify")
    assert "already loaded" in out.stdout
    notify.load_ipython_extension(shell)  # a direct second call (startup file + %load_ext)
    assert len(_ours(shell, "pre_run_cell")) == 1
    assert len(_ours(shell, "post_run_cell")) == 1
    magics = shell.magics_manager.registry["NotifyMagics"]
    assert shell.configurables.count(magics) == 1
    assert magics.parent is shell
    for name in ("notify", "autonotify", "notify_hooks", "notify_setup"):
        assert name in shell.magics_manager.magics["line"]
    assert "notify_on_done" in shell.magics_manager.magics["cell"]

    shell.run_line_magic("unload_ext", "mattermost_notify")
    assert "NotifyMagics" not in shell.magics_manager.registry
    assert not _ours(shell, "pre_run_cell") and not _ours(shell, "post_run_cell")
    assert magics not in shell.configurables
    assert "notify" not in shell.magics_manager.magics["line"]
    assert "notify_on_done" not in shell.magics_manager.magics["cell"]
    notify.unload_ipython_extension(shell)  # unloading twice is harmless

    shell.run_line_magic("load_ext", "mattermost_notify")
    shell.run_line_magic("reload_ext", "mattermost_notify")
    assert len(_ours(shell, "post_run_cell")) == 1


def test_unload_keeps_a_magic_someone_else_redefined(shell: InteractiveShell) -> None:
    shell.run_line_magic("load_ext", "mattermost_notify")
    shell.register_magic_function(lambda line: "mine", "line", "notify_hooks")
    shell.run_line_magic("unload_ext", "mattermost_notify")
    assert shell.run_line_magic("notify_hooks", "") == "mine"


def test_config_traits_from_config_and_percent_config(
    shell: InteractiveShell, tmp_path: Path
) -> None:
    cfg = Config()
    cfg.NotifyMagics.default_user = "alice"
    cfg.NotifyMagics.auto_after = 7.5
    cfg.NotifyMagics.include_result = False
    sh = make_shell(tmp_path, cfg)  # as if read from ipython_kernel_config.py
    sh.run_line_magic("load_ext", "mattermost_notify")
    magics = sh.magics_manager.registry["NotifyMagics"]
    assert (magics.default_user, magics.auto_after, magics.include_result) == ("alice", 7.5, False)
    sh.run_line_magic("config", "NotifyMagics.auto_after = 3")
    assert magics.auto_after == 3.0
    with capture_output() as out:
        sh.run_line_magic("config", "NotifyMagics")
    for trait in ("default_user", "default_channel", "auto_after", "notebook_key", "enabled"):
        assert trait in out.stdout
    assert not [t for t in magics.traits(config=True) if "token" in t.lower()]


def test_enabled_false_runs_cells_and_sends_nothing(ip: InteractiveShell, sb: Any) -> None:
    ip.run_line_magic("config", "NotifyMagics.enabled = False")
    result, _ = run(ip, "%%notify_on_done\n6 * 7")
    assert result.result == 42
    ip.run_line_magic("notify", "not sent")
    flush()
    assert sb.view.posts(channel=CHANNEL) == []


# ------------------------------------------------------------------ %notify


def test_notify_line_magic_is_thin_over_notify(ip: InteractiveShell, sb: Any) -> None:
    ip.user_ns["loss"] = 0.125
    ip.run_line_magic("notify", "it's done, loss {loss}")  # expanded by IPython's var_expand
    ip.run_cell("%notify -u alice --id status step 1", store_history=True)
    flush()
    ip.run_cell("%notify --id status step 2", store_history=True)  # same id: an edit
    flush()
    [post] = sb.view.posts(channel=CHANNEL)
    assert post.message == "it's done, loss 0.125"
    [dm] = sb.view.posts(dm_with="alice")
    assert dm.message == "step 2" and dm.edited


def test_notify_with_file_and_bad_usage(ip: InteractiveShell, sb: Any, tmp_path: Path) -> None:
    f = tmp_path / "result.csv"
    f.write_text("a,b\n1,2\n")
    ip.run_cell(f"%notify -f {f} results", store_history=True)
    flush()
    [post] = sb.view.posts(channel=CHANNEL)
    assert [x.name for x in post.files] == ["result.csv"]
    result, out = run(ip, "%notify --bogus x")
    assert "unknown option --bogus" in out.stderr + out.stdout
    # a missing file is a warning, never an error in the cell
    with pytest.warns(notify.MattermostNotifyWarning):
        result, _ = run(ip, f"%notify -f {tmp_path / 'missing.txt'} results")
    assert result.success


# ------------------------------------------------------------------ %%notify_on_done


def test_success_posts_start_reply_and_edit(ip: InteractiveShell, sb: Any) -> None:
    result, out = run(ip, "%%notify_on_done -m 'training'\nx = 6 * 7\nprint('working')\nx")
    assert result.success and result.result == 42
    assert "working" in out.stdout
    flush()
    [root] = roots(sb)
    [reply] = replies(sb, root)
    assert reply.message.startswith(":white_check_mark: **Done** in ")
    assert "training" in reply.message and "Result: `42`" in reply.message
    assert root.edited
    assert root.edits[0].message.startswith(":hourglass_flowing_sand: **Running** training")
    assert "notebook `notebook.ipynb`" in root.edits[0].message
    assert root.message.startswith(":white_check_mark: **Done** in ")
    assert_no_token(sb, root.message, reply.message, out.stdout, out.stderr)


def test_failure_reaches_the_user_once_and_unchanged(ip: InteractiveShell, sb: Any) -> None:
    result, out = run(
        ip, "%%notify_on_done\nerr = ZeroDivisionError('no luck')\nprint('before')\nraise err"
    )
    assert not result.success
    assert result.error_in_exec is ip.user_ns["err"]  # the very exception, not a wrapper
    text = strip_ansi(out.stdout + out.stderr)
    assert text.count("Traceback (most recent call last)") == 1, text  # one traceback
    assert text.count("ZeroDivisionError: no luck") == 1, text
    assert "raise err" in text  # the user's source is shown
    flush()
    [root] = roots(sb)
    [reply] = replies(sb, root)
    assert reply.message.startswith(":x: **Failed** after ")
    assert "**ZeroDivisionError: no luck**" in reply.message
    assert "```\n" in reply.message and "raise err" in reply.message
    assert reply.files == ()  # short traceback: no attachment
    assert root.message.startswith(":x: **Failed**")


def test_long_traceback_is_attached(ip: InteractiveShell, sb: Any) -> None:
    cell = (
        "%%notify_on_done\n"
        "def f(n):\n"
        "    if n == 0:\n"
        "        raise ValueError('deep')\n"
        "    return g(n)\n"
        "def g(n):\n"
        "    return f(n - 1)\n"
        "f(12)"
    )
    result, _ = run(ip, cell)
    assert isinstance(result.error_in_exec, ValueError)
    flush()
    [root] = roots(sb)
    [reply] = replies(sb, root)
    assert "The full traceback is attached." in reply.message
    [file] = reply.files
    assert file.name == "traceback.txt"
    full = file.read_bytes().decode()
    assert full.count("return g(n)") >= 12 and full.rstrip().endswith("ValueError: deep")


def test_keyboard_interrupt_is_reported_and_reraised(ip: InteractiveShell, sb: Any) -> None:
    result, _ = run(ip, "%%notify_on_done\nimport time\ntime.sleep(0.1)\nraise KeyboardInterrupt")
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    flush()
    [root] = roots(sb)
    [reply] = replies(sb, root)
    assert reply.message.startswith(":warning: **Interrupted** after ")
    assert root.message.startswith(":warning: **Interrupted**")


def test_syntax_error_in_body(ip: InteractiveShell, sb: Any) -> None:
    result, out = run(ip, "%%notify_on_done\nx = (")
    assert isinstance(result.error_in_exec, SyntaxError)
    assert strip_ansi(out.stdout + out.stderr).count("SyntaxError: ") == 1
    flush()
    [root] = roots(sb)
    assert root.message.startswith(":x: **Failed**")


def test_magics_in_body_and_semicolon(ip: InteractiveShell, sb: Any) -> None:
    result, _out = run(ip, "%%notify_on_done\n%config NotifyMagics.include_result = False\n5")
    assert result.result == 5
    result, _ = run(ip, "%%notify_on_done\n5;")
    assert result.result is None
    flush()
    for root in roots(sb):
        assert "Result:" not in replies(sb, root)[0].message


def test_server_down_changes_nothing_and_delivers_later(ip: InteractiveShell, sb: Any) -> None:
    ip.run_line_magic("notify", "warm up")  # the client has its caches
    flush()
    sender = notify.get_client().sender
    posts_before = len(sb.view.posts(channel=CHANNEL))
    sb.stop()
    try:
        result, _ = run(ip, "%%notify_on_done\n'value'")
        assert result.success and result.result == "value"
        # the cell did not wait for the server: its messages are still queued, not given up
        queued = sender.pending()
        assert queued > 0
        result, _ = run(ip, "%%notify_on_done\n1/0")
        assert isinstance(result.error_in_exec, ZeroDivisionError)
        assert sender.pending() > queued
        assert len(sb.view.posts(channel=CHANNEL)) == posts_before
    finally:
        sb.start()
    flush()  # queued while the server was away: delivered once it is back
    messages = [p.message for p in roots(sb)]
    assert len([m for m in messages if m.startswith(":white_check_mark: **Done**")]) == 1
    assert len([m for m in messages if m.startswith(":x: **Failed**")]) == 1
    assert sender.pending() == 0


def test_after_below_and_above_threshold(ip: InteractiveShell, sb: Any) -> None:
    result, _ = run(ip, "%%notify_on_done --after 5\n1 + 1")
    assert result.result == 2
    flush()
    assert sb.view.posts(channel=CHANNEL) == []

    result, _ = run(ip, "%%notify_on_done --after 0.2 -m slow\nimport time\ntime.sleep(0.8)")
    assert result.success
    flush()
    [root] = roots(sb)
    assert root.edits and root.edits[0].message.startswith(":hourglass_flowing_sand: **Running**")
    [reply] = replies(sb, root)
    assert reply.message.startswith(":white_check_mark: **Done** in ")


def test_figures_and_attachments(ip: InteractiveShell, sb: Any, tmp_path: Path) -> None:
    png = _tiny_png()
    ip.user_ns["png"] = png
    f = tmp_path / "metrics.json"
    f.write_text("{}")
    cell = (
        f"%%notify_on_done --figures --attach {f} {tmp_path / 'nope.txt'}\n"
        "from IPython.display import Image, display\n"
        "display(Image(data=png, format='png'))\n"
    )
    result, _ = run(ip, cell)
    assert result.success
    flush()
    [root] = roots(sb)
    [reply] = replies(sb, root)
    names = sorted(x.name for x in reply.files)
    assert names == ["figure-1.png", "metrics.json"]
    [fig] = [x for x in reply.files if x.name == "figure-1.png"]
    assert fig.read_bytes() == png
    assert "`" + str(tmp_path / "nope.txt") + "` not found" in reply.message


def test_matplotlib_figures(ip: InteractiveShell, sb: Any) -> None:
    pytest.importorskip("matplotlib")
    ip.run_cell("import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt")
    result, _ = run(ip, "%%notify_on_done --figures\nplt.plot([1, 2, 3])\nNone")
    assert result.success
    flush()
    [root] = roots(sb)
    [reply] = replies(sb, root)
    [fig] = reply.files
    assert fig.read_bytes().startswith(b"\x89PNG")


def test_user_id_for_the_start_message(ip: InteractiveShell, sb: Any) -> None:
    run(ip, "%%notify_on_done --id train-run\n1")
    flush()
    notify.send_update("edited from Python", id="train-run")
    [root] = roots(sb)
    assert root.message == "edited from Python"


# ------------------------------------------------------------------ %autonotify


# "Quick" and "long" without racing the clock on a busy machine: a quick cell runs under
# a threshold of 60 s, a long one under a threshold of 0 s (every cell lasts >= 0 s).
QUICK, LONG = "--after 60", "--after 0"


def test_autonotify_on_and_off(ip: InteractiveShell, sb: Any) -> None:
    with capture_output() as out:
        ip.run_line_magic("autonotify", QUICK)
    assert "autonotify: on" in out.stdout
    run(ip, "1 + 1")  # quick: nothing
    ip.run_line_magic("autonotify", LONG)
    run(ip, "'slow'")  # long: one message
    ip.run_line_magic("autonotify", QUICK)
    run(ip, "1/0")  # failed: one message
    run(ip, "")  # an empty cell: post_run_cell without pre_run_cell
    ip.run_line_magic("autonotify", LONG)
    run(ip, "get_ipython().run_cell('1 + 1')")  # nested: one message
    run(ip, "%%notify_on_done\n1 + 1")  # its own message, not two
    flush()
    messages = [p.message for p in roots(sb)]
    assert len(messages) == 4, messages
    assert messages[0].startswith(":white_check_mark: **Done** in ")
    assert "Result: `'slow'`" in messages[0]
    assert messages[1].startswith(":x: **Failed** after ") and "1/0" in messages[1]
    assert "get_ipython().run_cell" in messages[2]
    assert len(replies(sb, roots(sb)[3])) == 1

    ip.run_line_magic("autonotify", "--off")
    run(ip, "1 + 1")
    run(ip, "1/0")
    flush()
    assert len(roots(sb)) == 4


def test_autonotify_modes(ip: InteractiveShell, sb: Any) -> None:
    ip.run_line_magic("autonotify", f"{QUICK} --on done")
    run(ip, "1/0")  # quick failure: not in "done" mode
    ip.run_line_magic("autonotify", f"{LONG} --on done")
    run(ip, "1 + 1")  # long success: reported
    ip.run_line_magic("autonotify", f"{LONG} --on error")
    run(ip, "1 + 1")  # long success: not in "error" mode
    run(ip, "raise KeyboardInterrupt")  # you pressed it: no message
    ip.run_line_magic("autonotify", f"{QUICK} --on error")
    run(ip, "[][0]")  # quick failure: reported
    flush()
    messages = [p.message for p in roots(sb)]
    assert len(messages) == 2, messages
    assert messages[0].startswith(":white_check_mark:") and "IndexError" in messages[1]


def test_autonotify_cell_that_turns_it_on_is_not_reported(ip: InteractiveShell, sb: Any) -> None:
    run(ip, f"%autonotify {LONG}\n1 + 1")  # long, but it turned autonotify on
    run(ip, "'reported'")
    flush()
    messages = [p.message for p in roots(sb)]
    assert len(messages) == 1 and "'reported'" in messages[0], messages
    result, _ = run(ip, "%autonotify -u alice -c alerts")
    assert not result.success and "not both" in str(result.error_in_exec)


def test_events_are_safe_without_pre_and_with_none(ip: InteractiveShell) -> None:
    magics = ip.magics_manager.registry["NotifyMagics"]
    ip.run_line_magic("autonotify", "--after 0")
    info = ExecutionInfo("x", False, False, True, None)
    magics.post_run_cell(ExecutionResult(info))  # no pre event for it
    magics.post_run_cell(None)  # run_cell may pass None when _run_cell itself failed
    magics.pre_run_cell(info)
    magics.pre_run_cell(ExecutionInfo("y", False, False, True, None))  # a lost post
    magics.post_run_cell(ExecutionResult(info))
    assert magics._stack == []


# ------------------------------------------------------------------ hooks by notebook


def test_hooks_survive_a_kernel_restart(shell: InteractiveShell, sb: Any, tmp_path: Path) -> None:
    shell.run_line_magic("load_ext", "mattermost_notify")
    shell.run_line_magic("config", 'NotifyMagics.notebook_key = "/work/exp.ipynb"')
    shell.run_cell("%notify -c alerts --id status epoch 1", store_history=True)
    flush()
    # "restart": a new shell and a new default client, nothing in memory
    shell.run_line_magic("unload_ext", "mattermost_notify")
    api._reset()
    sh2 = make_shell(tmp_path)
    cfg = Config()
    cfg.NotifyMagics.notebook_key = "/work/exp.ipynb"
    sh2.update_config(cfg)
    sh2.run_line_magic("load_ext", "mattermost_notify")
    result = sh2.run_cell(
        "import mattermost_notify as notify\nnotify.send_update('epoch 2', id='status')",
        store_history=True,
    )
    assert result.success, result.error_in_exec
    [post] = sb.view.posts(channel=CHANNEL)
    assert post.message == "epoch 2"
    with capture_output() as out:
        sh2.run_line_magic("notify_hooks", "list")
    assert "status" in out.stdout and post.id in out.stdout
    sh2.run_line_magic("unload_ext", "mattermost_notify")


def test_notify_hooks_list_forget_export(ip: InteractiveShell, sb: Any, tmp_path: Path) -> None:
    ip.run_cell("%notify --id a first", store_history=True)
    ip.run_cell("%notify --id b second", store_history=True)
    flush()
    with capture_output() as out:
        ip.run_line_magic("notify_hooks", "")
    assert "2 message id(s)" in out.stdout and "notebook.ipynb" in out.stdout
    target = tmp_path / "a.hook.json"
    with capture_output():
        ip.run_line_magic("notify_hooks", f"export a {target}")
    data = json.loads(target.read_text())
    assert data["post_id"] == sb.view.posts(channel=CHANNEL)[0].id
    assert target.stat().st_mode & 0o777 == 0o600
    assert sb.token not in target.read_text()
    with capture_output() as out:
        ip.run_line_magic("notify_hooks", "forget b")
    assert "forgot b" in out.stdout
    store = ip.magics_manager.registry["NotifyMagics"].hook_store()
    assert [h.id for h in store.list()] == ["a"]
    _result, out = run(ip, "%notify_hooks export nope x.json")
    assert "no message with id 'nope'" in out.stderr + out.stdout


def test_unknown_notebook_warns_once_and_keeps_hooks_in_memory(
    shell: InteractiveShell, sb: Any
) -> None:
    shell.run_line_magic("load_ext", "mattermost_notify")
    shell.run_line_magic("config", "NotifyMagics.query_jupyter_server = False")
    with pytest.warns(notify.MattermostNotifyWarning, match="kept in memory only") as rec:
        shell.run_cell("%notify -c alerts --id m one", store_history=True)
        shell.run_cell("%notify -c alerts --id m two", store_history=True)
    assert len([w for w in rec if "memory only" in str(w.message)]) == 1
    flush()
    assert sb.view.posts(channel=CHANNEL)[0].message == "two"
    data_dir = Path(os.environ["MATTERMOST_NOTIFY_DATA_DIR"])
    assert not list((data_dir / "hooks").glob("*.json")) if (data_dir / "hooks").exists() else True


def test_vscode_variable_is_the_key(shell: InteractiveShell, sb: Any, tmp_path: Path) -> None:
    shell.run_line_magic("load_ext", "mattermost_notify")
    nb = tmp_path / "analysis.ipynb"
    shell.user_ns["__vsc_ipynb_file__"] = str(nb)  # set by VS Code after the kernel started
    shell.run_cell("%notify -c alerts --id v hi", store_history=True)
    flush()
    from mattermost_notify.hooks import HookStore

    assert HookStore.for_key(os.path.realpath(nb)).get("v") is not None


# ------------------------------------------------------------------ helpers


def _tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"\x00\xff\x00\x00"  # one red pixel
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def test_notify_without_target_advises_the_magic_options(shell: InteractiveShell, sb: Any) -> None:
    """%notify with no -u/-c and no default: the advice is -u/-c, not Python keywords."""
    shell.run_line_magic("load_ext", "mattermost_notify")
    with pytest.warns(notify.MattermostNotifyWarning) as record:
        result, _ = run(shell, "%notify hello")
    assert result.success
    [warning] = [str(w.message) for w in record]
    assert "-u USER or -c CHANNEL" in warning
    assert "user_name=" not in warning


def test_plain_tqdm_loop_in_a_cell_names_the_exception(ip: InteractiveShell, sb: Any) -> None:
    """``for x in tqdm(...)`` in a cell whose body raises: the message names the exception
    (on Python 3.11 it is learnt when IPython catches it)."""
    cell = (
        "from mattermost_notify import tqdm\n"
        f"for i in tqdm(range(5), desc='fit', channel='{CHANNEL}', local=False):\n"
        "    if i == 2:\n"
        "        raise ValueError('loss is nan')\n"
    )
    result, _ = run(ip, cell)
    assert isinstance(result.error_in_exec, ValueError)
    flush()
    [post] = [p for p in roots(sb) if "**fit**" in p.message]
    assert "❌ **fit** failed at 2/5" in post.message, post.message
    assert "ValueError: loss is nan" in post.message, post.message
    [reply] = replies(sb, post)
    assert "ValueError: loss is nan" in reply.message
