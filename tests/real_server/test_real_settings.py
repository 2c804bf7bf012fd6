"""Server settings that change what a notification does, set on the real server at run
time (``PUT /api/v4/config/patch``, restored after each test), and rate limiting on a
second server started with it (that setting applies only at start)."""

from __future__ import annotations

import time
import warnings
from typing import Any

import pytest
import requests

import mattermost_notify as notify
from mattermost_notify import progress_bar
from mattermost_notify.errors import APIError, PermissionDeniedError
from mattermost_notify.progress_bar import tqdm

# ---------------------------------------------------------------- PostEditTimeLimit


def test_notify_by_id_after_the_edit_time_limit_delivers_the_text(
    admin: Any, server_settings: Any, real_env: Any
) -> None:
    server_settings({"ServiceSettings": {"PostEditTimeLimit": 1}})
    first = notify.notify("job: running", user_name="alice", id="job")
    time.sleep(1.5)
    notify.notify("job: done", id="job")  # must not raise
    thread = admin.thread(first.post_id)
    assert thread[-1]["message"] == "job: done"


def test_progress_bar_past_the_edit_time_limit_shows_its_final_state(
    admin: Any, server_settings: Any, real_env: Any
) -> None:
    server_settings({"ServiceSettings": {"PostEditTimeLimit": 1}})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in tqdm(range(30), desc="slow", user="alice", id="slow-bar", min_interval=0.2):
            time.sleep(0.1)
        assert progress_bar.flush(30)
    hook = notify.get_client().hooks["slow-bar"]
    thread = admin.thread(hook.post_id)
    assert any("✅ **slow** done: 30/30" in post["message"] for post in thread)
    assert sum(str(w.message).count("\n") + 1 for w in caught) <= 4


def test_a_refused_edit_goes_on_in_a_new_post_once_with_one_warning(
    admin: Any, real_server: Any, server_settings: Any
) -> None:
    """The limit is set after the client read the server's settings (so it cannot avoid the
    refusal): one refused edit, one warning, the text in a new post of the thread, and the
    next update past the limit is not refused again."""
    with notify.Notify(
        token=real_server.bot_token, url=real_server.url, team_name=real_server.team
    ) as client:
        first = client.send_to_user("v1", "alice", id="blind")
        client.send_update("v2", id="blind")  # reads the settings: no limit yet
        server_settings({"ServiceSettings": {"PostEditTimeLimit": 1}})
        time.sleep(1.5)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            second = client.send_update("v3", id="blind")
            time.sleep(1.5)
            third = client.send_update("v4", id="blind")
    assert len(caught) == 1 and "PostEditTimeLimit" in str(caught[0].message)
    thread = admin.thread(first.post_id)
    assert [p["message"] for p in thread] == ["v2", "v3", "v4"]
    assert second.post_id == thread[1]["id"] and third.post_id == thread[2]["id"]


def test_the_edit_time_limit_refuses_even_an_unchanged_text(
    client: Any, real_server: Any, server_settings: Any
) -> None:
    """What the library meets past the limit (11.4): any patch carrying ``message`` is a
    400, the same text included; a patch without ``message`` still passes."""
    server_settings({"ServiceSettings": {"PostEditTimeLimit": 1}})
    sent = client.send_to_user("v1", "alice", id="limited")
    time.sleep(1.5)
    refused = requests.put(
        f"{real_server.url}/api/v4/posts/{sent.post_id}/patch",
        json={"message": "v1"},
        headers={"Authorization": f"Bearer {real_server.bot_token}"},
        timeout=30,
    )
    assert refused.status_code == 400
    assert refused.json()["id"] == "api.post.update_post.permissions_time_limit.app_error"
    answer = requests.put(
        f"{real_server.url}/api/v4/posts/{sent.post_id}/patch",
        json={"props": {"state": "done"}},
        headers={"Authorization": f"Bearer {real_server.bot_token}"},
        timeout=30,
    )
    assert answer.status_code == 200


# ---------------------------------------------------------------- CollapsedThreads


def test_a_dm_reply_alerts_the_user_under_collapsed_threads(
    admin: Any, server_settings: Any, real_env: Any
) -> None:
    server_settings({"ServiceSettings": {"CollapsedThreads": "always_on"}})
    for _ in tqdm(range(3), desc="dm-crt", user="alice", id="dm-crt"):
        pass
    assert progress_bar.flush(30)
    channel = admin.dm_channel("alice")
    before = admin.unread("alice", channel)["mention_count"]
    notify.get_client().reply("dm-crt", "evaluation finished")
    assert admin.unread("alice", channel)["mention_count"] == before + 1


def test_a_channel_reply_without_a_mention_alerts_nobody_under_collapsed_threads(
    admin: Any, client: Any, server_settings: Any
) -> None:
    """Why the library needs mentions in channels: the server counts a thread reply as
    no mention for the channel's members."""
    server_settings({"ServiceSettings": {"CollapsedThreads": "always_on"}})
    channel = admin.server.channels["bot-public"]
    client.send_to_channel("run: started", "bot-public", id="crt-root")
    before = admin.unread("alice", channel)["mention_count"]
    client.reply("crt-root", "run: done")
    assert admin.unread("alice", channel)["mention_count"] == before
    client.reply("crt-root", "run: done @alice")
    assert admin.unread("alice", channel)["mention_count"] == before + 1


def test_progress_bar_in_a_channel_mentions_the_configured_user(
    admin: Any, server_settings: Any, real_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server_settings({"ServiceSettings": {"CollapsedThreads": "always_on"}})
    monkeypatch.setenv("MATTERMOST_NOTIFY_MENTION", "alice")
    channel = admin.server.channels["bot-public"]
    before = admin.unread("alice", channel)["mention_count"]
    for _ in tqdm(range(3), desc="mentioned", channel="bot-public", id="mention-bar"):
        pass
    assert progress_bar.flush(30)
    thread = admin.thread(notify.get_client().hooks["mention-bar"].post_id)
    assert "@alice" in thread[-1]["message"]
    assert admin.unread("alice", channel)["mention_count"] == before + 1


# ---------------------------------------------------------------- RestrictDirectMessage


def test_restricted_dm_to_a_user_outside_the_team_is_refused(
    admin: Any, client: Any, server_settings: Any
) -> None:
    outsider = admin.create_user("outsider", join_team=False)
    server_settings({"TeamSettings": {"RestrictDirectMessage": "team"}})
    with pytest.raises(PermissionDeniedError) as caught:
        client.send_to_user("hello", outsider)
    assert caught.value.status_code == 403
    restricted = "api.channel.create_channel.direct_channel.team_restricted_error"
    assert caught.value.error_id == restricted
    assert outsider in str(caught.value)
    # a user of the bot's team is not affected
    assert client.send_to_user("hello", "alice").post_id


def test_restricted_existing_dm_is_a_permission_error_naming_the_restriction(
    admin: Any, client: Any, server_settings: Any
) -> None:
    outsider = admin.create_user("formerdm", join_team=False)
    client.send_to_user("hello while DMs are open", outsider)  # the DM channel now exists
    server_settings({"TeamSettings": {"RestrictDirectMessage": "team"}})
    with pytest.raises(PermissionDeniedError) as caught:
        client.send_to_user("hello again", outsider)
    assert outsider in str(caught.value)
    assert "team" in str(caught.value).replace("team 'research'", "")


def test_restricted_existing_dm_is_refused_at_post_time(
    admin: Any, client: Any, server_settings: Any
) -> None:
    """11.1+: the DM channel lookup still answers 201, the post is refused (400)."""
    outsider = admin.create_user("olddm", join_team=False)
    first = client.send_to_user("hello while DMs are open", outsider)
    server_settings({"TeamSettings": {"RestrictDirectMessage": "team"}})
    with pytest.raises(APIError) as caught:
        client.send_to_user("hello again", outsider)
    assert caught.value.error_id == "api.post.create_post.can_not_post_in_restricted_dm.error"
    assert [p["message"] for p in admin.channel_posts(first.channel_id)] == [
        "hello while DMs are open"
    ]


# ---------------------------------------------------------------- rate limiting


def test_rate_limited_server_refuses_a_burst_with_429(rate_limited_server: Any) -> None:
    """The limiter is on: a raw burst beyond MaxBurst gets the plain-text 429."""
    headers = {"Authorization": f"Bearer {rate_limited_server.admin_token}"}
    time.sleep(3)  # the bootstrap emptied the admin's bucket: 5 requests at 2/s refill it
    answers = [
        requests.get(f"{rate_limited_server.url}/api/v4/users/me", headers=headers, timeout=30)
        for _ in range(12)
    ]
    refused = [a for a in answers if a.status_code == 429]
    assert refused, [a.status_code for a in answers]
    assert refused[0].text.strip() == "limit exceeded"
    assert refused[0].headers["Retry-After"]
    assert refused[0].headers["X-RateLimit-Limit"] == "5"  # MaxBurst + 1
    # with VaryByUser the API handler's per-user limiter adds a second copy of each header
    passed = [a.headers["X-RateLimit-Limit"] for a in answers if a.status_code == 200]
    assert set(passed) <= {"5", "5, 5"} and "5, 5" in passed, passed


def test_messages_through_the_rate_limit_all_arrive_once_in_order(
    rate_limited_server: Any, rate_limited_admin: Any
) -> None:
    server = rate_limited_server
    texts = [f"rate-limited {n}" for n in range(12)]
    with notify.Notify(token=server.bot_token, url=server.url, team_name=server.team) as bot:
        for text in texts:
            bot.send_to_channel(text, "bot-public")
        bot.send_to_user("rate-limited DM", "alice")
    view = rate_limited_admin
    posts = view.channel_posts(server.channels["bot-public"])
    assert [p["message"] for p in posts if p["message"].startswith("rate-limited")] == texts
    assert [p["message"] for p in view.dm_posts("alice")] == ["rate-limited DM"]
