"""The client on servers with settings that refuse what a naive client sends, over real
HTTP against the sandbox with each setting on: MaxPostSize 4000, restricted DMs, a public
channel the bot is not in, a private channel it cannot see."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from mattermost_notify import errors
from mattermost_notify._checks import CONTINUED
from mattermost_notify.client import Notify
from mattermost_notify.sandbox import Sandbox


def _client(sb: Sandbox) -> Notify:
    return Notify(token=sb.token, url=sb.url, team_name=sb.team, timeout=(2.0, 5.0))


def _routes(sb: Sandbox) -> list[str]:
    time.sleep(0.05)  # the sandbox logs a request just after answering it
    return [f"{r.method} {r.route}" for r in sb.view.requests()]


# ---------------------------------------------------------------- MaxPostSize


@pytest.fixture(scope="module")
def old_server() -> Iterator[Sandbox]:
    with Sandbox(max_post_size=4000) as sb:
        yield sb


def _unsplit(messages: list[str]) -> str:
    """The text again: each continuation starts with '(continued i/n)' and a line break, and
    the line break at each cut is dropped."""
    body = [messages[0]] + [m.split("\n", 1)[1] for m in messages[1:]]
    return "\n".join(body)


def test_9000_characters_arrive_whole_in_posts_within_4000(old_server: Sandbox) -> None:
    text = "\n".join(f"row {i:04d} " + "é" * 80 for i in range(100)) + "!"
    assert len(text) == 9000
    with _client(old_server) as client:
        sent = client.send_to_channel(text, "alerts")
    posts = [old_server.view.post(p) for p in sent.post_ids]
    assert len(posts) == 3
    assert all(len(p.message) <= 4000 for p in posts)
    assert posts[1].message.startswith(CONTINUED.format(i=2, n=3))
    assert all(p.root_id == posts[0].id for p in posts[1:])
    assert _unsplit([p.message for p in posts]) == text


def test_limit_read_once_and_only_for_long_messages(old_server: Sandbox) -> None:
    old_server.view.clear_requests()
    with _client(old_server) as client:
        client.send_to_channel("x" * 4000, "alerts")  # fits every server: no look-up
        assert "GET /api/v4/config/client" not in _routes(old_server)
        client.send_to_channel("y" * 4500, "alerts")
        client.send_to_channel("z" * 4500, "alerts")
    assert _routes(old_server).count("GET /api/v4/config/client") == 1


def test_update_cut_at_the_servers_limit(old_server: Sandbox) -> None:
    with _client(old_server) as client:
        sent = client.send_to_channel("short", "alerts", id="cut")
        client.send_update("u" * 5000, id="cut")
    message = old_server.view.post(sent.post_id).message
    assert len(message) == 4000
    assert "message cut: " in message


def test_a_server_that_publishes_no_limit_gets_posts_of_4000_at_most() -> None:
    with Sandbox() as sb:
        sb.faults.fail_next(100, status=404, path_prefix="/api/v4/config/client")
        with _client(sb) as client:
            sent = client.send_to_channel("v" * 9000, "alerts")
        assert next(len(sb.view.post(p).message) for p in sent.post_ids) <= 4000
        assert len(sent.post_ids) == 3


def test_the_server_limit_is_used_above_16383() -> None:
    with Sandbox(max_post_size=65535) as sb, _client(sb) as client:
        sent = client.send_to_channel("w" * 30000, "alerts")
        assert len(sent.post_ids) == 1
        assert len(sb.view.post(sent.post_id).message) == 30000


# ---------------------------------------------------------------- restricted DMs


@pytest.fixture
def restricted() -> Iterator[Sandbox]:
    with Sandbox(restrict_direct_message="team", version="11.1.0") as sb:
        sb.remove_from_team("alice")
        yield sb


def _says_restricted(exc: BaseException) -> None:
    text = str(exc)
    assert isinstance(exc, errors.PermissionDeniedError), repr(exc)
    assert "@alice" in text
    assert "share a team" in text and "RestrictDirectMessage" in text
    assert "Add the bot to a team @alice is in, or send to a channel" in text


def test_restricted_dm_names_the_user_and_the_restriction(restricted: Sandbox) -> None:
    with _client(restricted) as client:
        with pytest.raises(errors.PermissionDeniedError) as info:
            client.send_to_user("hello", "alice")
        _says_restricted(info.value)
        assert info.value.error_id == (
            "api.channel.create_channel.direct_channel.team_restricted_error"
        )
        assert restricted.token not in str(info.value)
        client.send_to_user("bob shares the team", "bob")  # others are not affected
    with pytest.raises(KeyError):  # not even the DM channel was created
        restricted.view.posts(dm_with="alice")


def test_existing_dm_restricted_from_11_1_posts_edits_and_files(tmp_path) -> None:
    attachment = tmp_path / "a.txt"
    attachment.write_text("a")
    with Sandbox(restrict_direct_message="team", version="11.1.0") as sb, _client(sb) as client:
        client.send_to_user("before", "alice", id="dm")
        sb.remove_from_team("alice")
        for call in (
            lambda: client.send_to_user("after", "alice"),
            lambda: client.send_update("edited", id="dm"),
            lambda: client.send_to_user("file", "alice", files=[str(attachment)]),
        ):
            with pytest.raises(errors.PermissionDeniedError) as info:
                call()
            _says_restricted(info.value)
        # a client that did not open the DM itself (a hook from a file) names the user too
        hook = tmp_path / "dm.msg"
        client.write_message_hook_to_file("dm", hook)
        with _client(sb) as other:
            other.read_message_hook_from_file(hook)
            with pytest.raises(errors.PermissionDeniedError) as info:
                other.send_update("edited elsewhere", id="dm")
            _says_restricted(info.value)
        assert [p.message for p in sb.view.posts(dm_with="alice")] == ["before"]


def test_restricted_dm_on_the_command_line_one_line_exit_1(restricted: Sandbox, tmp_path) -> None:
    env = {
        "MATTERMOST_NOTIFY_URL": restricted.url,
        "MATTERMOST_NOTIFY_TOKEN": restricted.token,
        "MATTERMOST_NOTIFY_TEAM": restricted.team,
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "MATTERMOST_NOTIFY_DATA_DIR": str(tmp_path / "data"),
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, "-m", "mattermost_notify.cli", "send", "hello", "--user", "alice"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 1, done
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "@alice" in lines[0] and "share a team" in lines[0]
    assert "Traceback" not in done.stderr and restricted.token not in done.stderr + done.stdout


# ---------------------------------------------------------------- channel membership


def test_public_channel_not_joined_says_add_the_bot(mattermost_server: Sandbox) -> None:
    with _client(mattermost_server) as client, pytest.raises(errors.PermissionDeniedError) as info:
        client.send_to_channel("hello", "lobby")
    text = str(info.value)
    assert "'lobby'" in text and "@notify-bot is not a member" in text
    assert "`/invite @notify-bot` in ~lobby" in text
    assert mattermost_server.view.posts(channel="lobby") == []


def test_upload_to_a_channel_not_joined_says_add_the_bot(
    mattermost_server: Sandbox, tmp_path
) -> None:
    attachment = tmp_path / "plot.png"
    attachment.write_bytes(b"png")
    with (
        _client(mattermost_server) as client,
        pytest.raises(errors.PermissionDeniedError, match="/invite @notify-bot"),
    ):
        client.send_to_channel("hello", "lobby", files=[str(attachment)])


def test_private_channel_not_found_may_be_private(mattermost_server: Sandbox) -> None:
    with _client(mattermost_server) as client, pytest.raises(errors.NotFoundError) as info:
        client.send_to_channel("hello", "secret")
    text = str(info.value)
    assert "'secret'" in text and "private" in text and "the bot not be in it" in text
    assert "/invite @notify-bot" in text


def test_connection_test_checks_membership_of_the_default_channel(
    mattermost_server: Sandbox,
) -> None:
    sb = mattermost_server
    with Notify(token=sb.token, url=sb.url, team_name=sb.team, default_channel="lobby") as c:
        report = c.test_connection()
    [check] = [ch for ch in report.checks if ch.name == "default channel"]
    assert check.ok is False and "/invite @notify-bot" in check.detail
    assert not report.ok
    sb.view.clear_requests()
    with Notify(token=sb.token, url=sb.url, team_name=sb.team, default_channel="alerts") as c:
        report = c.test_connection()
    [check] = [ch for ch in report.checks if ch.name == "default channel"]
    assert check.ok is True and "member" in check.detail
    assert "GET /api/v4/channels/{channel_id}/members/{user_id}" in _routes(sb)


def test_connection_test_reports_edit_limit_and_dm_restriction() -> None:
    with (
        Sandbox(post_edit_time_limit=300, restrict_direct_message="team") as sb,
        _client(sb) as client,
    ):
        report = client.test_connection()
    lines = "\n".join(report.lines())
    assert "300 s" in lines and "RestrictDirectMessage = team" in lines
    assert report.ok


def test_connection_test_says_who_is_alerted_in_the_default_channel() -> None:
    with Sandbox() as sb:
        with Notify(token=sb.token, url=sb.url, team_name=sb.team, default_channel="alerts") as c:
            lines = "\n".join(c.test_connection().lines())
        assert "mentions: none set: messages in ~alerts alert only people they mention" in lines
        assert "CollapsedThreads = always_on" in lines
        with Notify(
            token=sb.token, url=sb.url, team_name=sb.team, default_channel="alerts", mention="bob"
        ) as c:
            report = c.test_connection()
        assert "channels mention @bob" in "\n".join(report.lines()) and report.ok


def test_connection_test_finds_a_mention_that_names_no_user(mattermost_server: Sandbox) -> None:
    sb = mattermost_server
    with Notify(
        token=sb.token, url=sb.url, team_name=sb.team, mention=["alice", "al", "here"]
    ) as client:
        report = client.test_connection()
    [check] = [c for c in report.checks if c.name == "mentions"]
    assert check.ok is False and "'al'" in check.detail and "'alice'" not in check.detail
    assert not report.ok
