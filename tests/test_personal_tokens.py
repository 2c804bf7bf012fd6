"""Personal access tokens (a user's token, not a bot's), over real HTTP against the sandbox.

Everything works as with a bot token; a message to the token's own user (which
Mattermost never alerts about) is sent but warned about once, and ``test`` says so.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import mattermost_notify as notify
from mattermost_notify import api, client
from mattermost_notify.sandbox import Sandbox

CLI = [sys.executable, "-m", "mattermost_notify.cli"]


@pytest.fixture(autouse=True)
def _fresh_warnings() -> None:
    client._warned_own_user.clear()


def _own_user_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [
        str(w.message)
        for w in caught
        if issubclass(w.category, notify.MattermostNotifyWarning)
        and "the token's own user" in str(w.message)
    ]


def test_everything_works_with_a_user_token(mattermost_server: Sandbox, tmp_path: Path) -> None:
    sb = mattermost_server
    token = sb.user_token("alice")
    (tmp_path / "plot.txt").write_text("a plot\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with notify.Notify(token=token, url=sb.url, team_name=sb.team) as alice:
            report = alice.test_connection()
            assert report.ok, report.lines()
            assert report.is_bot is False
            assert "@alice (a personal access token of a user account, not a bot" in str(report)

            dm = alice.send_to_user("to bob", "bob", id="dm")
            alice.send_update("to bob (edited)", "dm")
            sent = alice.send_to_channel("to alerts", "alerts", files=[tmp_path / "plot.txt"])
            alice.reply("dm", "a reply in the thread")
            alice.write_message_hook_to_file("dm", tmp_path / "dm.msg")
            alice.sender.post("in the background", channel="alerts")
            assert alice.sender.flush(10)
        with notify.Notify(token=token, url=sb.url, team_name=sb.team) as again:
            again.read_message_hook_from_file(tmp_path / "dm.msg")
            again.send_update("to bob (edited from another client)", "dm")
    assert _own_user_warnings(caught) == []
    [post, reply] = sb.view.posts(channel_id=dm.channel_id)
    assert (post.username, post.message) == ("alice", "to bob (edited from another client)")
    assert reply.root_id == post.id
    posts = sb.view.posts(channel="alerts")
    assert [(p.username, p.message) for p in posts] == [
        ("alice", "to alerts"),
        ("alice", "in the background"),
    ]
    assert posts[0].id == sent.post_id and [f.name for f in posts[0].files] == ["plot.txt"]


def test_a_message_to_the_tokens_own_user_is_sent_and_warned_about_once(
    mattermost_env: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = mattermost_env
    monkeypatch.setenv("MATTERMOST_NOTIFY_TOKEN", sb.user_token("alice"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        notify.wakeup(always_send_to_user="alice")
        first = notify.notify("job done")
        notify.notify("second job done")
        notify.notify_user("to bob: no warning", "bob")
        ticket = notify.notify("from the background", block=False)
        assert notify.flush(10)
    texts = _own_user_warnings(caught)
    assert len(texts) == 1
    assert "@alice is the token's own user" in texts[0]
    assert "Use a bot account's token, or post to a channel and mention @alice" in texts[0]
    assert sb.user_token("alice") not in texts[0]
    own = sb.view.posts(channel_id=first.channel_id)
    assert [p.message for p in own] == ["job done", "second job done", "from the background"]
    assert ticket.exception() is None


def test_the_background_sender_warns_once_too(mattermost_server: Sandbox) -> None:
    sb = mattermost_server
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with notify.Notify(token=sb.user_token("bob"), url=sb.url, team_name=sb.team) as bob:
            for i in range(3):
                bob.sender.post(f"note {i}", user="bob")
            assert bob.sender.flush(10)
    assert len(_own_user_warnings(caught)) == 1


def test_the_cli_test_command_warns_about_the_own_user(
    mattermost_server: Sandbox, tmp_path: Path
) -> None:
    sb = mattermost_server
    conf = tmp_path / "config.toml"
    conf.write_text(
        f'url = "{sb.url}"\ntoken = "{sb.user_token("alice")}"\nteam_name = "{sb.team}"\n'
        'default_user = "alice"\n'
    )
    conf.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATTERMOST_NOTIFY_")}
    env.update(MATTERMOST_NOTIFY_CONFIG=str(conf), MATTERMOST_NOTIFY_DATA_DIR=str(tmp_path))
    proc = subprocess.run(
        [*CLI, "test"], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "ok   bot: @alice (a personal access token of a user account" in proc.stdout
    assert "warn default user: @alice is the token's own user" in proc.stdout
    assert sb.user_token("alice") not in proc.stdout + proc.stderr


def test_a_bot_token_to_a_user_gets_no_warning(mattermost_env: Sandbox) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        notify.notify_user("from the bot", "alice")
        report = api.get_client().test_connection()
    assert _own_user_warnings(caught) == []
    assert "ok   bot: @notify-bot (a bot account)" in str(report)
