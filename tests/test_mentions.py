"""Who is alerted: the ``mention`` setting (config key, MATTERMOST_NOTIFY_MENTION, wakeup,
progress bars, magics) puts ``@name`` in front of the library's own completion and failure
messages in channels, over real HTTP against the sandbox."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mattermost_notify as notify
from mattermost_notify import api
from mattermost_notify.config import load_settings, parse_mentions
from mattermost_notify.errors import ConfigurationError
from mattermost_notify.progress_bar import tqdm
from mattermost_notify.sandbox import Sandbox


def _thread_replies(sb: Sandbox, **where: str) -> list[Any]:
    roots = [p for p in sb.view.posts(**where) if not p.root_id]
    return [sb.view.post(r) for root in roots for r in root.reply_ids]


def _flush() -> None:
    assert notify.flush(timeout=30)


def test_progress_bar_in_a_channel_mentions_the_setting(
    mattermost_env: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MATTERMOST_NOTIFY_MENTION", "alice")
    notify.wakeup()
    for _ in tqdm(range(3), desc="train", channel="alerts", local=False):
        pass
    _flush()
    [reply] = _thread_replies(mattermost_env, channel="alerts")
    assert reply.message.startswith("@alice ✅ train done: 3/3")


def test_no_mention_in_a_direct_message(
    mattermost_env: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MATTERMOST_NOTIFY_MENTION", "alice")
    notify.wakeup()
    for _ in tqdm(range(2), desc="dm", user="bob", local=False):
        pass
    _flush()
    [reply] = _thread_replies(mattermost_env, dm_with="bob")
    assert reply.message.startswith("✅ dm done")  # the recipient of a DM is alerted anyway


def test_bar_argument_wins_and_empty_means_nobody(mattermost_env: Sandbox) -> None:
    notify.wakeup(mention="alice")
    assert notify.get_client().mention == ("alice",)
    for _ in tqdm(range(1), desc="two", channel="alerts", local=False, mention=["bob", "@carol"]):
        pass
    for _ in tqdm(range(1), desc="none", channel="alerts", local=False, mention=""):
        pass
    _flush()
    two, none = _thread_replies(mattermost_env, channel="alerts")
    assert two.message.startswith("@bob @carol ✅ two done")
    assert none.message.startswith("✅ none done")


def test_mention_from_a_config_file_and_bad_names(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        'url = "https://chat.example.org"\ntoken = "t0k3n"\nmention = ["alice", "@Bob"]\n'
    )
    path.chmod(0o600)
    assert load_settings(configfile=path).mention == ("alice", "bob")
    assert parse_mentions("alice, bob  carol,alice", "x") == ("alice", "bob", "carol")
    assert parse_mentions(None, "x") == () == parse_mentions("", "x")
    with pytest.raises(ConfigurationError, match=r"mention 'al ice!' .*MATTERMOST_NOTIFY"):
        parse_mentions(["al ice!"], "MATTERMOST_NOTIFY_MENTION")
    with pytest.raises(ConfigurationError, match="mention from the arguments"):
        load_settings(url="https://chat.example.org", token="t", mention=42)


# ---------------------------------------------------------------- the magics

IPython = pytest.importorskip("IPython")


@pytest.fixture
def ip(mattermost_env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("MATTERMOST_NOTIFY_MENTION", "alice")
    cfg = Config()
    cfg.HistoryManager.hist_file = ":memory:"
    InteractiveShell.clear_instance()
    shell = InteractiveShell.instance(config=cfg)
    shell.run_line_magic("load_ext", "mattermost_notify")
    shell.run_line_magic("config", 'NotifyMagics.notebook_key = "tests/mentions.ipynb"')
    yield shell
    with contextlib.suppress(Exception):
        shell.run_line_magic("unload_ext", "mattermost_notify")
    InteractiveShell.clear_instance()
    api._reset()


def _run(shell: Any, cell: str) -> Any:
    from IPython.utils.capture import capture_output

    with capture_output():
        return shell.run_cell(cell, store_history=True)


def test_notify_on_done_reply_in_a_channel_mentions(ip: Any, mattermost_env: Sandbox) -> None:
    _run(ip, "%%notify_on_done -c alerts\n1/0")
    _run(ip, "%%notify_on_done -c alerts --mention bob,carol\nx = 1")
    _run(ip, "%%notify_on_done -u bob\nx = 2")
    _flush()
    failed, done = _thread_replies(mattermost_env, channel="alerts")
    assert failed.message.startswith("@alice :x: **Failed**")
    assert done.message.startswith("@bob @carol :white_check_mark: **Done**")
    [dm] = _thread_replies(mattermost_env, dm_with="bob")
    assert dm.message.startswith(":white_check_mark: **Done**")


def test_autonotify_messages_in_a_channel_mention(ip: Any, mattermost_env: Sandbox) -> None:
    ip.run_line_magic("autonotify", "--after 0 -c alerts")
    _run(ip, "1/0")
    ip.run_line_magic("autonotify", "--after 0 -c alerts --mention bob")
    _run(ip, "y = 3")
    ip.run_line_magic("autonotify", "--off")
    _flush()
    messages = [p.message for p in mattermost_env.view.posts(channel="alerts")]
    assert messages[0].startswith("@alice :x: **Failed**")
    assert messages[1].startswith("@bob :white_check_mark: **Done**")


def test_a_bad_mention_name_in_a_magic_stops_it_before_the_cell_runs(
    ip: Any, mattermost_env: Sandbox
) -> None:
    """As on_done(mention=...) and ``run --mention``: the typo is said at once, nothing runs."""
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match=r"%%notify_on_done: mention 'name!'"):
        ip.run_cell_magic("notify_on_done", "-c alerts --mention 'not a name!'", "ran = True")
    assert "ran" not in ip.user_ns
    with pytest.raises(UsageError, match=r"%autonotify: mention 'b\$d'"):
        ip.run_line_magic("autonotify", "-c alerts --mention b$d")
    _flush()
    assert mattermost_env.view.posts(channel="alerts") == []
