"""The error cases on the real server: the library's exception, and nothing posted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

import mattermost_notify as notify
from mattermost_notify.errors import (
    AuthenticationError,
    FileError,
    NotFoundError,
    PermissionDeniedError,
)


def new_client(server: Any, token: str | None = None) -> notify.Notify:
    return notify.Notify(token=token or server.bot_token, url=server.url, team_name=server.team)


def test_wrong_token(real_server: Any) -> None:
    wrong = "x" * 26
    with new_client(real_server, wrong) as client, pytest.raises(AuthenticationError) as caught:
        client.send_to_user("hello", "alice")
    assert caught.value.status_code == 401
    assert caught.value.error_id == "api.context.session_expired.app_error"
    assert wrong not in str(caught.value)
    with new_client(real_server, wrong) as client:
        report = client.test_connection()
    assert not report.ok


def test_unknown_user(client: Any) -> None:
    with pytest.raises(NotFoundError) as caught:
        client.send_to_user("hello", "nosuchuser")
    assert caught.value.error_id == "app.user.get_by_username.app_error"
    assert "nosuchuser" in str(caught.value)


def test_unknown_channel(client: Any) -> None:
    with pytest.raises(NotFoundError) as caught:
        client.send_to_channel("hello", "no-such-channel")
    assert caught.value.error_id == "app.channel.get_by_name.missing.app_error"
    assert "no-such-channel" in str(caught.value)


def test_private_channel_the_bot_is_not_in_looks_missing(client: Any, admin: Any) -> None:
    channel = admin.server.channels["private-no-bot"]
    before = len(admin.channel_posts(channel))
    with pytest.raises(NotFoundError) as caught:
        client.send_to_channel("hello", "private-no-bot")
    # the real server hides a private channel from non-members: the same 404 as a missing one
    assert caught.value.status_code == 404
    assert caught.value.error_id == "app.channel.get_by_name.missing.app_error"
    assert "private-no-bot" in str(caught.value)
    assert len(admin.channel_posts(channel)) == before


def test_private_channel_error_says_it_may_be_private(client: Any) -> None:
    with pytest.raises(NotFoundError) as caught:
        client.send_to_channel("hello", "private-no-bot")
    assert "private" in str(caught.value).lower().replace("private-no-bot", "")


def test_public_channel_the_bot_is_not_in_is_refused(client: Any, admin: Any) -> None:
    channel = admin.server.channels["public-no-bot"]
    before = len(admin.channel_posts(channel))
    with pytest.raises(PermissionDeniedError) as caught:
        client.send_to_channel("hello", "public-no-bot")
    # the lookup succeeds (any team member may read a public channel); the post is refused
    assert caught.value.status_code == 403
    assert caught.value.error_id == "api.context.permissions.app_error"
    assert "public-no-bot" in str(caught.value)
    assert len(admin.channel_posts(channel)) == before


def test_public_channel_error_says_to_add_the_bot(client: Any) -> None:
    with pytest.raises(PermissionDeniedError) as caught:
        client.send_to_channel("hello", "public-no-bot")
    assert "/invite @notifybot" in str(caught.value) or "add the bot" in str(caught.value)


def test_channel_member_route_answers_for_a_channel_the_bot_is_not_in(
    real_server: Any, client: Any
) -> None:
    """What ``mattermost-notify test`` relies on: a member gets 200, a non-member of a public
    channel gets 403 or 404 (both read as "not a member")."""
    headers = {"Authorization": f"Bearer {real_server.bot_token}"}
    bot = client.bot_user_id
    member = requests.get(
        f"{real_server.url}/api/v4/channels/{real_server.channels['bot-public']}/members/{bot}",
        headers=headers,
        timeout=30,
    )
    assert member.status_code == 200 and member.json()["user_id"] == bot
    outside = requests.get(
        f"{real_server.url}/api/v4/channels/{real_server.channels['public-no-bot']}/members/{bot}",
        headers=headers,
        timeout=30,
    )
    assert outside.status_code in (403, 404), outside.text


def test_connection_test_says_the_bot_is_not_in_the_default_channel(real_server: Any) -> None:
    with notify.Notify(
        token=real_server.bot_token,
        url=real_server.url,
        team_name=real_server.team,
        default_channel="public-no-bot",
    ) as client:
        report = client.test_connection()
    [check] = [c for c in report.checks if c.name == "default channel"]
    assert check.ok is False and "/invite @" in check.detail
    with notify.Notify(
        token=real_server.bot_token,
        url=real_server.url,
        team_name=real_server.team,
        default_channel="bot-public",
    ) as client:
        report = client.test_connection()
    [check] = [c for c in report.checks if c.name == "default channel"]
    assert check.ok is True


def test_file_over_the_servers_max_file_size(
    real_server: Any, admin: Any, server_settings: Any, tmp_path: Path
) -> None:
    server_settings({"FileSettings": {"MaxFileSize": 1000}})
    small, big = tmp_path / "small.txt", tmp_path / "big.bin"
    small.write_bytes(b"s" * 10)
    big.write_bytes(b"b" * 1001)
    channel = real_server.channels["bot-public"]
    before = len(admin.channel_posts(channel))
    with new_client(real_server) as client:
        with pytest.raises(FileError) as caught:
            client.send_to_channel("two files", "bot-public", files=[str(small), str(big)])
        assert "big.bin" in str(caught.value)
        assert "1000" in str(caught.value)
        assert len(admin.channel_posts(channel)) == before  # nothing half-sent
        # the same file fits once the limit is back up (a new client reads it again)
    server_settings({"FileSettings": {"MaxFileSize": 104857600}})
    with new_client(real_server) as client:
        sent = client.send_to_channel("two files", "bot-public", files=[str(small), str(big)])
    assert admin.file_names(admin.post(sent.post_id)) == ["big.bin", "small.txt"]
