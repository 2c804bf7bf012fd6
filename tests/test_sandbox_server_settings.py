"""The sandbox with the server settings that change what a client must do, over real HTTP:
PostEditTimeLimit, MaxPostSize, RestrictDirectMessage (before and from 11.1),
CollapsedThreads, and the channel-member look-up."""

from __future__ import annotations

import time
from typing import Any

import requests

from mattermost_notify.sandbox import Sandbox


class Api:
    def __init__(self, sb: Sandbox, token: str | None = None) -> None:
        self.sb = sb
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token or sb.token}"

    def __call__(self, method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 10)
        return self.session.request(method, self.sb.url + "/api/v4" + path, **kw)

    def config(self) -> dict[str, str]:
        return dict(self("GET", "/config/client", params={"format": "old"}).json())

    def user_id(self, name: str) -> str:
        return str(self("GET", f"/users/username/{name}").json()["id"])

    def dm(self, name: str) -> requests.Response:
        me = self("GET", "/users/me").json()["id"]
        return self("POST", "/channels/direct", json=[me, self.user_id(name)])


def error_id(r: requests.Response) -> str:
    return str(r.json()["id"])


def test_edit_time_limit_refuses_any_message_even_unchanged() -> None:
    with Sandbox(post_edit_time_limit=1) as sb:
        api = Api(sb)
        assert api.config()["PostEditTimeLimit"] == "1"
        channel = sb.view.channel_id("alerts")
        post = api("POST", "/posts", json={"channel_id": channel, "message": "v1"}).json()
        assert api("PUT", f"/posts/{post['id']}/patch", json={"message": "v2"}).status_code == 200
        time.sleep(1.1)
        for body in ({"message": "v3"}, {"message": "v2"}):  # the same text is refused too
            late = api("PUT", f"/posts/{post['id']}/patch", json=body)
            assert late.status_code == 400, body
            assert error_id(late) == "api.post.update_post.permissions_time_limit.app_error"
            assert "1 seconds" in late.json()["message"]
        # without a message the patch goes through; the full update refuses only a change
        assert api("PUT", f"/posts/{post['id']}/patch", json={"is_pinned": True}).status_code == 200
        same = {"id": post["id"], "channel_id": channel, "message": "v2"}
        assert api("PUT", f"/posts/{post['id']}", json=same).status_code == 200
        changed = api("PUT", f"/posts/{post['id']}", json={**same, "message": "v4"})
        assert changed.status_code == 400
        assert sb.view.post(post["id"]).message == "v2"
    with Sandbox() as sb:
        assert Api(sb).config()["PostEditTimeLimit"] == "-1"


def test_max_post_size_is_published_and_enforced() -> None:
    with Sandbox(max_post_size=4000) as sb:
        api = Api(sb)
        assert api.config()["MaxPostSize"] == "4000"
        channel = sb.view.channel_id("alerts")
        ok = api("POST", "/posts", json={"channel_id": channel, "message": "é" * 4000})
        assert ok.status_code == 201
        long = api("POST", "/posts", json={"channel_id": channel, "message": "é" * 4001})
        assert long.status_code == 400
        assert error_id(long) == "model.post.is_valid.message_length.app_error"
        patch = api("PUT", f"/posts/{ok.json()['id']}/patch", json={"message": "x" * 4001})
        assert patch.status_code == 400
        # an incoming webhook splits at the server's limit, as the real one does
        hook = requests.post(sb.webhook_url, json={"text": "w" * 9000}, timeout=10)
        assert hook.status_code == 200
        parts = [p.message for p in sb.view.posts(channel_id=hook_channel(sb))]
        assert [len(p) for p in parts] == [4000, 4000, 1000]


def hook_channel(sb: Sandbox) -> str:
    return sb.view.channel_id("town-square")


def test_collapsed_threads_and_restriction_are_published() -> None:
    with Sandbox(collapsed_threads="disabled", restrict_direct_message="team") as sb:
        config = Api(sb).config()
        assert config["CollapsedThreads"] == "disabled"
        assert config["RestrictDirectMessage"] == "team"
    with Sandbox() as sb:
        config = Api(sb).config()
        assert config["CollapsedThreads"] == "always_on"  # the default since 7.0
        assert config["RestrictDirectMessage"] == "any"


def test_restricted_dms_before_11_1_exempt_the_bot() -> None:
    with Sandbox(restrict_direct_message="team", version="10.11.0") as sb:
        bot = Api(sb)
        bob = Api(sb, sb.user_token("bob"))
        sb.remove_from_team("alice")
        dm = bot.dm("alice")
        assert dm.status_code == 201  # bots are exempt when the DM is created
        post = bot("POST", "/posts", json={"channel_id": dm.json()["id"], "message": "hi"})
        assert post.status_code == 201  # and existing DMs are not checked
        refused = bob.dm("alice")  # a person is not exempt
        assert refused.status_code == 403
        assert (
            error_id(refused) == "api.channel.create_channel.direct_channel.team_restricted_error"
        )


def test_restricted_dms_from_11_1_cover_the_bot_and_existing_dms() -> None:
    users = ("alice", "bob", "carol")
    with Sandbox(restrict_direct_message="team", version="11.1.0", users=users) as sb:
        bot = Api(sb)
        dm = bot.dm("alice").json()
        post = bot("POST", "/posts", json={"channel_id": dm["id"], "message": "before"}).json()
        assert bot.dm("bob").status_code == 201  # sharing the team: allowed
        sb.remove_from_team("alice")
        sb.remove_from_team("carol")
        assert bot.dm("alice").json()["id"] == dm["id"]  # an existing DM is still returned
        refused = bot.dm("carol")  # as on a real 11.4 server: only a new one is refused
        assert refused.status_code == 403
        assert (
            error_id(refused) == "api.channel.create_channel.direct_channel.team_restricted_error"
        )
        new = bot("POST", "/posts", json={"channel_id": dm["id"], "message": "after"})
        assert new.status_code == 400
        assert error_id(new) == "api.post.create_post.can_not_post_in_restricted_dm.error"
        edit = bot("PUT", f"/posts/{post['id']}/patch", json={"message": "edited"})
        assert edit.status_code == 400
        assert error_id(edit) == "api.post.patch_post.can_not_update_post_in_restricted_dm.error"
        upload = bot(
            "POST", "/files", data={"channel_id": dm["id"]}, files=[("files", ("a", b"a"))]
        )
        assert upload.status_code == 400
        assert error_id(upload) == "api.file.upload_file.restricted_dm.error"
        assert [p.message for p in sb.view.posts(dm_with="alice")] == ["before"]


def test_channel_member_lookup(mattermost_server: Sandbox) -> None:
    sb = mattermost_server
    bot = Api(sb)
    me = bot("GET", "/users/me").json()["id"]
    alerts, lobby = sb.view.channel_id("alerts"), sb.view.channel_id("lobby")
    member = bot("GET", f"/channels/{alerts}/members/{me}")
    assert member.status_code == 200
    assert member.json()["user_id"] == me and member.json()["channel_id"] == alerts
    assert bot("GET", f"/channels/{alerts}/members/me").json()["user_id"] == me
    # a public channel the bot can look up by name but is not in: no read_channel
    assert bot("GET", f"/teams/name/{sb.team}/channels/name/lobby").status_code == 200
    outside = bot("GET", f"/channels/{lobby}/members/{me}")
    assert outside.status_code == 403
    assert error_id(outside) == "api.context.permissions.app_error"
    # a member asking about someone who is not in the channel
    alice = Api(sb, sb.user_token("alice"))
    missing = alice("GET", f"/channels/{lobby}/members/{me}")
    assert missing.status_code == 404
    assert error_id(missing) == "app.channel.get_member.missing.app_error"
