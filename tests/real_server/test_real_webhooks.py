"""Webhook mode against the real server: targets, the server's refusals, the probe of
``test`` (which posts nothing), a server with incoming webhooks off, and no key in logs."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import mattermost_notify as notify

pytestmark = pytest.mark.real_server


def unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex[:8]}"


def make_webhook(admin: Any, server: Any, channel: str, *, locked: bool = False) -> str:
    hook = admin.call(
        "POST",
        "/hooks/incoming",
        {
            "channel_id": server.channels[channel],
            "display_name": "mattermost-notify test",
            "channel_locked": locked,
        },
        expect=201,
    )
    return str(hook["id"])


@pytest.fixture
def webhook_url(admin: Any, real_server: Any) -> Iterator[str]:
    key = make_webhook(admin, real_server, "bot-public")
    yield f"{real_server.url}/hooks/{key}"
    admin.call("DELETE", f"/hooks/incoming/{key}")


def messages(admin: Any, server: Any, channel: str) -> list[str]:
    return [p["message"] for p in admin.channel_posts(server.channels[channel])]


def test_targets_and_refusals(admin: Any, real_server: Any, webhook_url: str) -> None:
    own, other = unique("to the webhook's channel"), unique("to another channel")
    with notify.WebhookClient(webhook_url) as client:
        client.send(own)
        client.send(other, channel="public-no-bot")
        with pytest.raises(notify.NotFoundError, match="no such channel"):
            client.send("x", channel=f"no-such-channel-{uuid.uuid4().hex[:8]}")
        with pytest.raises(notify.APIError, match="no such user") as err:
            client.send("x", user=f"nobody{uuid.uuid4().hex[:8]}")
        assert err.value.status_code == 400
        with pytest.raises(notify.WebhookModeError, match="webhook mode"):
            client.send_update("x", "anything")
    assert own in messages(admin, real_server, "bot-public")
    assert other in messages(admin, real_server, "public-no-bot")


def test_a_locked_webhook_refuses_other_channels(admin: Any, real_server: Any) -> None:
    key = make_webhook(admin, real_server, "bot-public", locked=True)
    try:
        with notify.WebhookClient(f"{real_server.url}/hooks/{key}") as client:
            with pytest.raises(notify.PermissionDeniedError, match="locked to its own channel"):
                client.send("x", channel="public-no-bot")
            client.send(unique("locked, own channel"))
    finally:
        admin.call("DELETE", f"/hooks/incoming/{key}")


def test_the_probe_posts_nothing_and_knows_unknown_webhooks(
    admin: Any, real_server: Any, webhook_url: str
) -> None:
    before = messages(admin, real_server, "bot-public")
    with notify.WebhookClient(webhook_url) as client:
        report = client.test_connection()
    assert report.ok, report.lines()
    assert "exists (checked without posting)" in str(report)
    with notify.WebhookClient(f"{real_server.url}/hooks/{'q' * 26}") as unknown:
        report = unknown.test_connection()
    assert not report.ok
    assert "does not know this webhook" in str(report)
    assert messages(admin, real_server, "bot-public") == before


def test_incoming_webhooks_turned_off(webhook_url: str, server_settings: Any) -> None:
    server_settings({"ServiceSettings": {"EnableIncomingWebhooks": False}})
    with notify.WebhookClient(webhook_url) as client:
        with pytest.raises(notify.APIError, match="disabled") as err:
            client.send("x")
        assert err.value.status_code == 501
        assert not client.test_connection().ok


def test_the_key_is_in_no_log_line(webhook_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with notify.WebhookClient(webhook_url) as client:
        client.send(unique("logged"))
        with pytest.raises(notify.NotFoundError) as err:
            client.send("x", channel="no-such-channel-at-all")
    key = webhook_url.rsplit("/", 1)[1]
    assert "POST /hooks/*** 200" in caplog.text
    assert key not in caplog.text
    assert key not in str(err.value)
