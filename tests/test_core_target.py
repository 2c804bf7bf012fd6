"""Where a message without a target goes, through every way of sending one.

With both a default user and a default channel configured, ``Notify.resolve_target``
decides (the default user wins), and every call that names no target follows it:
``Notify.send``, ``notify.notify`` (blocking and not), the background sender,
``%notify`` and ``mattermost-notify send``. ``notify_user``/``notify_channel`` without a
name keep their own kind. Over real HTTP to the sandbox.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import mattermost_notify as notify
from mattermost_notify import errors
from mattermost_notify.cli import main
from mattermost_notify.sandbox import Sandbox

USER, CHANNEL = "alice", "alerts"


def both_defaults(sb: Sandbox) -> dict[str, Any]:
    return {
        "url": sb.url,
        "token": sb.token,
        "team_name": sb.team,
        "default_user": USER,
        "default_channel": CHANNEL,
    }


def dm_texts(sb: Sandbox) -> list[str]:
    return [p.message for p in sb.view.posts(dm_with=USER)]


def channel_texts(sb: Sandbox) -> list[str]:
    return [p.message for p in sb.view.posts(channel=CHANNEL)]


def test_resolve_target_precedence(mattermost_env: Sandbox) -> None:
    sb = mattermost_env
    with notify.Notify(sb.token, sb.url, sb.team) as client:
        with pytest.raises(errors.MessageError, match="no user or channel given"):
            client.resolve_target()
        client.set_default_channel("~Alerts")
        assert client.resolve_target() == ("channel", "alerts")
        client.set_default_user("@Alice")
        assert client.resolve_target() == ("user", "alice")  # the default user wins
        assert client.resolve_target(channel="town-square") == ("channel", "town-square")
        assert client.resolve_target(user="bob") == ("user", "bob")
        with pytest.raises(errors.MessageError, match="not both"):
            client.resolve_target("bob", "town-square")
    assert sb.view.requests() == []  # deciding the target sends nothing


def test_notify_send_with_both_defaults(mattermost_env: Sandbox) -> None:
    sb = mattermost_env
    with notify.Notify(
        sb.token, sb.url, sb.team, default_user=USER, default_channel=CHANNEL
    ) as client:
        client.send("from Notify.send")
    assert dm_texts(sb) == ["from Notify.send"]
    assert channel_texts(sb) == []


@pytest.mark.parametrize("block", [True, False])
def test_functional_notify_with_both_defaults(mattermost_env: Sandbox, block: bool) -> None:
    sb = mattermost_env
    notify.wakeup(config=both_defaults(sb))
    notify.notify(f"from notify(block={block})", block=block)
    assert notify.flush(30)
    assert dm_texts(sb) == [f"from notify(block={block})"]
    assert channel_texts(sb) == []


def test_background_sender_with_both_defaults(mattermost_env: Sandbox) -> None:
    sb = mattermost_env
    with notify.Notify(
        sb.token, sb.url, sb.team, default_user=USER, default_channel=CHANNEL
    ) as client:
        ticket = client.sender.post("from the sender")
        assert client.sender.flush(30)
        assert ticket.exception(0) is None
    assert dm_texts(sb) == ["from the sender"]
    assert channel_texts(sb) == []


def test_notify_magic_with_both_defaults(
    mattermost_env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("IPython")
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    sb = mattermost_env
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    notify.wakeup(config=both_defaults(sb))
    cfg = Config()
    cfg.HistoryManager.hist_file = ":memory:"
    InteractiveShell.clear_instance()
    shell = InteractiveShell.instance(config=cfg)
    try:
        shell.run_line_magic("load_ext", "mattermost_notify")
        shell.run_line_magic("notify", "from the magic")
        assert notify.flush(30)
        shell.run_line_magic("unload_ext", "mattermost_notify")
    finally:
        InteractiveShell.clear_instance()
    assert dm_texts(sb) == ["from the magic"]
    assert channel_texts(sb) == []


def test_cli_send_with_both_defaults(
    mattermost_env: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sb = mattermost_env
    conf = tmp_path / "both.toml"
    conf.write_text(
        "\n".join(f'{key} = "{value}"' for key, value in both_defaults(sb).items()) + "\n"
    )
    conf.chmod(0o600)
    assert main(["send", "from the command line", "--configfile", str(conf)]) == 0
    assert "Sent to @alice" in capsys.readouterr().out
    assert dm_texts(sb) == ["from the command line"]
    assert channel_texts(sb) == []


@pytest.mark.parametrize("block", [True, False])
def test_notify_user_and_channel_keep_their_kind(mattermost_env: Sandbox, block: bool) -> None:
    sb = mattermost_env
    notify.wakeup(config=both_defaults(sb))
    notify.notify_channel("to the default channel", block=block)
    notify.notify_user("to the default user", block=block)
    assert notify.flush(30)
    assert channel_texts(sb) == ["to the default channel"]
    assert dm_texts(sb) == ["to the default user"]
