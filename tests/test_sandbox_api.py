"""Item 2 of the sandbox issue: behaviour that matches the real server, over real HTTP."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
import requests

from mattermost_notify.sandbox import Sandbox


class Api:
    """A tiny client for the tests: one session, one token."""

    def __init__(self, sb: Sandbox, token: str | None = None) -> None:
        self.sb = sb
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token or sb.token}"

    def __call__(self, method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 10)
        return self.session.request(method, self.sb.url + "/api/v4" + path, **kw)

    def post(self, channel: str, message: str = "m", **fields: Any) -> requests.Response:
        body = {"channel_id": self.sb.view.channel_id(channel), "message": message, **fields}
        return self("POST", "/posts", json=body)

    def upload(self, channel: str, *files: tuple[str, bytes], **data: Any) -> requests.Response:
        form = {"channel_id": self.sb.view.channel_id(channel), **data}
        parts = [("files", f) for f in files]
        return self("POST", "/files", data=form, files=parts)

    def upload_id(self, channel: str, content: bytes = b"x", name: str = "f.txt") -> str:
        r = self.upload(channel, (name, content))
        assert r.status_code == 201, r.text
        return str(r.json()["file_infos"][0]["id"])


@pytest.fixture
def api(mattermost_server: Sandbox) -> Api:
    return Api(mattermost_server)


@pytest.fixture
def alice(mattermost_server: Sandbox) -> Api:
    return Api(mattermost_server, mattermost_server.user_token("alice"))


def error_id(r: requests.Response) -> str:
    return str(r.json()["id"])


# ---- auth ------------------------------------------------------------------


def test_token_in_query_string_is_refused(mattermost_server: Sandbox) -> None:
    r = requests.get(
        f"{mattermost_server.url}/api/v4/users/me",
        params={"access_token": mattermost_server.token},
        timeout=5,
    )
    assert r.status_code == 401
    assert error_id(r) == "api.context.token_provided.app_error"
    assert all(
        mattermost_server.token not in rec.query for rec in mattermost_server.view.requests()
    )


def test_user_lookups(api: Api) -> None:
    me = api("GET", "/users/me").json()
    assert api("GET", f"/users/{me['id']}").json()["username"] == "notify-bot"
    alice = api("GET", "/users/username/alice")
    assert alice.status_code == 200 and alice.json()["username"] == "alice"
    assert api("GET", "/users/username/nobody").status_code == 404
    assert error_id(api("GET", "/users/username/nobody")) == "app.user.get_by_username.app_error"
    upper = api("GET", "/users/username/Alice")
    assert upper.status_code == 400
    assert error_id(upper) == "api.context.invalid_body_param.app_error"
    assert api("GET", "/users/" + "a" * 26).status_code == 404
    assert api("GET", "/users/not-an-id").status_code == 400


def test_config_client(api: Api, mattermost_server: Sandbox) -> None:
    config = api("GET", "/config/client", params={"format": "old"}).json()
    assert config["MaxFileSize"] == str(100 * 1024 * 1024)
    assert config["MaxPostSize"] == "16383"
    assert config["Version"] == "10.6.0"


def test_team_and_channel_lookups(api: Api, mattermost_server: Sandbox) -> None:
    team = api("GET", "/teams/name/SANDBOX")  # lower-cased like the router
    assert team.status_code == 200
    team_id = team.json()["id"]
    assert api("GET", "/teams/name/none").status_code == 404
    assert error_id(api("GET", "/teams/name/none")) == "app.team.get_by_name.missing.app_error"
    by_id = api("GET", f"/teams/{team_id}/channels/name/alerts").json()
    by_name = api("GET", "/teams/name/sandbox/channels/name/Alerts").json()
    assert by_id["id"] == by_name["id"] and by_id["type"] == "O"
    assert api("GET", f"/channels/{by_id['id']}").json()["name"] == "alerts"
    missing = api("GET", "/teams/name/sandbox/channels/name/nothing")
    assert missing.status_code == 404
    assert error_id(missing) == "app.channel.get_by_name.missing.app_error"
    assert error_id(api("GET", "/teams/name/zzz/channels/name/alerts")) == (
        "app.team.get_by_name.missing.app_error"
    )


# ---- private channels and membership --------------------------------------


def test_private_channel_without_membership(api: Api, mattermost_server: Sandbox) -> None:
    sb = mattermost_server
    team_id = api("GET", "/teams/name/sandbox").json()["id"]
    for path in (
        f"/teams/{team_id}/channels/name/secret",
        "/teams/name/sandbox/channels/name/secret",
    ):
        r = api("GET", path)
        assert r.status_code == 404
        assert error_id(r) == "app.channel.get_by_name.missing.app_error"
    secret_id = sb.view.channel_id("secret")
    assert api("GET", f"/channels/{secret_id}").status_code == 403
    r = api.post("secret", "no")
    assert r.status_code == 403 and error_id(r) == "api.context.permissions.app_error"
    assert api.upload("secret", ("a.txt", b"a")).status_code == 403
    assert sb.view.posts("secret") == [] and sb.view.files() == []
    # the bot's own private channel works
    assert api("GET", "/teams/name/sandbox/channels/name/bot-private").status_code == 200
    assert api.post("bot-private", "yes").status_code == 201


def test_bot_must_be_channel_member_to_post(api: Api, mattermost_server: Sandbox) -> None:
    lobby = api("GET", "/teams/name/sandbox/channels/name/lobby")
    assert lobby.status_code == 200  # public: readable
    r = api.post("lobby", "hello")
    assert r.status_code == 403 and error_id(r) == "api.context.permissions.app_error"
    assert mattermost_server.view.posts("lobby") == []


# ---- direct messages --------------------------------------------------------


def test_direct_channel_name_and_201_twice(api: Api, mattermost_server: Sandbox) -> None:
    sb = mattermost_server
    me = api("GET", "/users/me").json()["id"]
    alice = api("GET", "/users/username/alice").json()["id"]
    first = api("POST", "/channels/direct", json=[me, alice])
    again = api("POST", "/channels/direct", json=[alice, me])
    assert first.status_code == 201 and again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert first.json()["type"] == "D"
    assert first.json()["name"] == "__".join(sorted([me, alice]))
    r = api("POST", "/posts", json={"channel_id": first.json()["id"], "message": "psst"})
    assert r.status_code == 201
    assert [p.message for p in sb.view.posts(dm_with="alice")] == ["psst"]
    bob = api("GET", "/users/username/bob").json()["id"]
    assert api("POST", "/channels/direct", json=[alice, bob]).status_code == 403
    assert api("POST", "/channels/direct", json=[me, alice, bob]).status_code == 400


# ---- post limits -------------------------------------------------------------


def test_message_length_counted_in_runes(api: Api) -> None:
    ok = api.post("alerts", "€" * 16383)  # 3 bytes each in UTF-8, one rune each
    assert ok.status_code == 201
    too_long = api.post("alerts", "€" * 16384)
    assert too_long.status_code == 400
    assert error_id(too_long) == "model.post.is_valid.message_length.app_error"


def test_at_most_ten_file_ids(api: Api, mattermost_server: Sandbox) -> None:
    ids = [api.upload_id("alerts", b"%d" % i, f"f{i}.txt") for i in range(11)]
    too_many = api.post("alerts", "eleven", file_ids=ids)
    assert too_many.status_code == 400
    assert error_id(too_many) == "model.post.is_valid.file_ids.app_error"
    ten = api.post("alerts", "ten", file_ids=ids[:10])
    assert ten.status_code == 201 and ten.json()["file_ids"] == ids[:10]
    dup = api.post("alerts", "dup", file_ids=[ids[10], ids[10]])
    assert dup.json()["file_ids"] == [ids[10]]  # duplicates collapse


def test_file_attaches_once_by_uploader_in_its_channel(
    api: Api, alice: Api, mattermost_server: Sandbox
) -> None:
    first_file = api.upload_id("alerts")
    assert api.post("alerts", "one", file_ids=[first_file]).json()["file_ids"] == [first_file]
    # already attached: dropped silently (a real server answers null when none is left)
    second = api.post("alerts", "two", file_ids=[first_file])
    assert second.status_code == 201 and second.json()["file_ids"] is None
    # uploaded by someone else: dropped
    alices_file = alice.upload_id("alerts")
    assert api.post("alerts", "three", file_ids=[alices_file]).json()["file_ids"] is None
    # uploaded to another channel: attached, and moved to the post's channel (as 11.4 does)
    elsewhere = api.upload_id("town-square")
    assert api.post("alerts", "four", file_ids=[elsewhere]).json()["file_ids"] == [elsewhere]
    assert mattermost_server.view.file(elsewhere).post_id != ""


def test_max_file_size_gives_413() -> None:
    with Sandbox(max_file_size=1000) as sb:
        api = Api(sb)
        assert api.upload("alerts", ("ok.bin", b"x" * 1000)).status_code == 201
        big = api.upload("alerts", ("big.bin", b"x" * 1001))
        assert big.status_code == 413
        assert error_id(big) == "api.file.upload_file.too_large_detailed.app_error"
        cid = sb.view.channel_id("alerts")
        raw = api(
            "POST",
            "/files",
            params={"channel_id": cid, "filename": "big.bin"},
            data=b"x" * 1001,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert raw.status_code == 413
        huge = api.upload("alerts", ("huge.bin", b"x" * 5000))  # request over the cap
        assert huge.status_code == 413
        assert len(sb.view.files()) == 1
        assert sorted(p.name for p in sb._store.files_dir.iterdir()) == [sb.view.files()[0].id]


def test_upload_is_streamed_to_disk(api: Api, mattermost_server: Sandbox) -> None:
    """The first half of a body is on disk before the client sends the second half."""
    sb = mattermost_server
    cid = sb.view.channel_id("alerts")
    half = b"y" * (4 * 1024 * 1024)
    seen_on_disk: list[int] = []

    def body() -> Any:
        yield half
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            sizes = [p.stat().st_size for p in sb._store.files_dir.iterdir()]
            if sizes and max(sizes) >= len(half) // 2:
                seen_on_disk.append(max(sizes))
                break
            time.sleep(0.01)
        yield half

    r = api(
        "POST",
        "/files",
        params={"channel_id": cid, "filename": "stream.bin"},
        data=body(),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["file_infos"][0]["size"] == 2 * len(half)
    assert seen_on_disk, "nothing reached the disk before the upload ended"


def test_raw_body_upload_and_client_ids(api: Api, mattermost_server: Sandbox) -> None:
    cid = mattermost_server.view.channel_id("alerts")
    r = api(
        "POST",
        "/files",
        params={"channel_id": cid, "filename": "raw.csv", "client_id": "c1"},
        data=b"a,b\n1,2\n",
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 201
    info = r.json()["file_infos"][0]
    assert (info["name"], info["extension"], info["size"]) == ("raw.csv", "csv", 8)
    assert r.json()["client_ids"] == ["c1"]
    missing = api(
        "POST",
        "/files",
        params={"channel_id": cid},
        data=b"x",
        headers={"Content-Type": "application/octet-stream"},
    )
    assert missing.status_code == 400
    two = api.upload("alerts", ("a.txt", b"a"), ("b.txt", b"b"), client_ids=["x", "y"])
    assert two.status_code == 201 and two.json()["client_ids"] == ["x", "y"]
    assert [i["name"] for i in two.json()["file_infos"]] == ["a.txt", "b.txt"]
    wrong = api.upload("alerts", ("a.txt", b"a"), ("b.txt", b"b"), client_ids=["x"])
    assert wrong.status_code == 400
    assert error_id(wrong) == "api.file.upload_file.incorrect_number_of_client_ids.app_error"
    unknown_field = api.upload("alerts", ("a.txt", b"a"), other="1")
    assert unknown_field.status_code == 400


# ---- edits ----------------------------------------------------------------------


def test_patch_replaces_props_and_keeps_omitted_fields(
    api: Api, mattermost_server: Sandbox
) -> None:
    post = api.post("alerts", "v1", props={"attachments": [{"text": "a"}], "k": "v"}).json()
    r = api("PUT", f"/posts/{post['id']}/patch", json={"props": {"k2": "v2"}})
    assert r.status_code == 200
    assert r.json()["message"] == "v1"
    assert r.json()["props"] == {"k2": "v2"}  # replaced whole, no merge
    r = api("PUT", f"/posts/{post['id']}/patch", json={"message": "v2"})
    assert r.json()["props"] == {"k2": "v2"} and r.json()["message"] == "v2"
    assert r.json()["edit_at"] > 0
    view = mattermost_server.view.post(post["id"])
    assert [e.message for e in view.edits] == ["v1", "v1"] and view.edited


def test_put_clears_omitted_props(api: Api) -> None:
    post = api.post("alerts", "v1", props={"k": "v"}).json()
    r = api("PUT", f"/posts/{post['id']}", json={"id": post["id"], "message": "v2"})
    assert r.status_code == 200
    assert r.json()["props"] == {} and r.json()["message"] == "v2"
    mismatch = api("PUT", f"/posts/{post['id']}", json={"id": "x" * 26, "message": "v3"})
    assert mismatch.status_code == 400


def test_edit_of_unknown_post_is_403(api: Api, alice: Api) -> None:
    for method, suffix, body in (
        ("PUT", "/patch", {"message": "x"}),
        ("PUT", "", {"id": "a" * 26, "message": "x"}),
    ):
        r = api(method, f"/posts/{'a' * 26}{suffix}", json=body)
        assert r.status_code == 403, suffix
        assert error_id(r) == "api.context.permissions.app_error"
    others = alice.post("alerts", "alice's").json()
    assert api("PUT", f"/posts/{others['id']}/patch", json={"message": "x"}).status_code == 403


def test_post_edit_time_limit() -> None:
    with Sandbox(post_edit_time_limit=0) as sb:
        api = Api(sb)
        post = api.post("alerts", "v1").json()
        time.sleep(0.01)
        late = api("PUT", f"/posts/{post['id']}/patch", json={"message": "v2"})
        assert late.status_code == 400
        assert error_id(late) == "api.post.update_post.permissions_time_limit.app_error"
        props_only = api("PUT", f"/posts/{post['id']}/patch", json={"props": {"a": "b"}})
        assert props_only.status_code == 200
    with Sandbox() as sb:  # default: unlimited
        api = Api(sb)
        post = api.post("alerts", "v1").json()
        assert api("PUT", f"/posts/{post['id']}/patch", json={"message": "v2"}).status_code == 200


def test_patch_file_ids_attach_and_remove(api: Api, mattermost_server: Sandbox) -> None:
    a, b = api.upload_id("alerts", b"a"), api.upload_id("alerts", b"b")
    post = api.post("alerts", "files", file_ids=[a]).json()
    r = api("PUT", f"/posts/{post['id']}/patch", json={"file_ids": [b]})
    assert r.json()["file_ids"] == [b]
    assert mattermost_server.view.file(b).post_id == post["id"]
    assert api("GET", f"/files/{a}").status_code == 404  # removed files are deleted


# ---- read, threads, delete ---------------------------------------------------


def test_get_post_threads_and_channel_posts(api: Api, mattermost_server: Sandbox) -> None:
    root = api.post("alerts", "root").json()
    reply = api.post("alerts", "reply", root_id=root["id"]).json()
    assert api.post("alerts", "reply to reply", root_id=reply["id"]).status_code == 400
    assert api.post("town-square", "other channel", root_id=root["id"]).status_code == 400
    assert api("GET", f"/posts/{root['id']}").json()["reply_count"] == 1
    assert api("GET", f"/posts/{'b' * 26}").status_code == 404
    assert [p.id for p in mattermost_server.view.thread(root["id"])] == [root["id"], reply["id"]]
    listing = api("GET", f"/channels/{root['channel_id']}/posts").json()
    assert listing["order"] == [reply["id"], root["id"]]
    assert set(listing["posts"]) == {root["id"], reply["id"]}
    etag = api("GET", f"/posts/{root['id']}").headers["ETag"]
    assert api("GET", f"/posts/{root['id']}", headers={"If-None-Match": etag}).status_code == 304


def test_delete_post(api: Api, alice: Api, mattermost_server: Sandbox) -> None:
    post = api.post("alerts", "bye").json()
    r = api("DELETE", f"/posts/{post['id']}")
    assert r.status_code == 200 and r.json() == {"status": "OK"}
    assert api("GET", f"/posts/{post['id']}").status_code == 404
    assert mattermost_server.view.posts("alerts") == []
    [deleted] = mattermost_server.view.posts("alerts", include_deleted=True)
    assert deleted.deleted
    others = alice.post("alerts", "alice's").json()
    assert api("DELETE", f"/posts/{others['id']}").status_code == 403


def test_times_are_milliseconds(api: Api) -> None:
    before = int(time.time() * 1000)
    post = api.post("alerts", "t").json()
    after = int(time.time() * 1000)
    assert before <= post["create_at"] <= after
    assert post["update_at"] == post["create_at"] and post["edit_at"] == 0


# ---- pending_post_id -----------------------------------------------------------


def test_pending_post_id_repeat_returns_first_post(api: Api, mattermost_server: Sandbox) -> None:
    first = api.post("alerts", "once", pending_post_id="bot:1")
    assert first.status_code == 201 and first.json()["pending_post_id"] == "bot:1"
    again = api.post("alerts", "once", pending_post_id="bot:1")
    assert again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["pending_post_id"] == ""  # loaded from the store, not echoed
    assert len(mattermost_server.view.posts("alerts")) == 1
    # no pending id: no de-duplication
    api.post("alerts", "once")
    api.post("alerts", "once")
    assert len(mattermost_server.view.posts("alerts")) == 3


def test_pending_post_id_500_while_first_is_running(api: Api, mattermost_server: Sandbox) -> None:
    sb = mattermost_server
    sb.faults.delay(1.0, n=1, path_prefix="/api/v4/posts", method="POST")
    results: dict[str, requests.Response] = {}
    slow = threading.Thread(
        target=lambda: results.setdefault("first", Api(sb).post("alerts", "x", pending_post_id="p"))
    )
    slow.start()
    time.sleep(0.3)
    concurrent = api.post("alerts", "x", pending_post_id="p")
    slow.join()
    assert concurrent.status_code == 500
    assert error_id(concurrent) == "api.post.deduplicate_create_post.pending"
    assert results["first"].status_code == 201
    later = api.post("alerts", "x", pending_post_id="p")
    assert later.status_code == 201 and later.json()["id"] == results["first"].json()["id"]
    assert len(sb.view.posts("alerts")) == 1


def test_pending_post_id_forgotten_after_failure_and_window(
    api: Api, mattermost_server: Sandbox
) -> None:
    sb = mattermost_server
    assert api.post("alerts", "€" * 20000, pending_post_id="q").status_code == 400
    ok = api.post("alerts", "fine", pending_post_id="q")
    assert ok.status_code == 201  # the failed create did not poison the id
    sb.pending_post_id_ttl = 0.2
    api.post("alerts", "w", pending_post_id="w")
    time.sleep(0.3)
    assert api.post("alerts", "w", pending_post_id="w").json()["message"] == "w"
    assert len([p for p in sb.view.posts("alerts") if p.message == "w"]) == 2


def test_pending_post_id_of_unreadable_post_creates_new(
    api: Api, alice: Api, mattermost_server: Sandbox
) -> None:
    hidden = alice.post("secret", "alice only", pending_post_id="shared").json()
    mine = api.post("alerts", "mine", pending_post_id="shared")
    assert mine.status_code == 201 and mine.json()["id"] != hidden["id"]
    assert mine.json()["message"] == "mine"


# ---- rate limiting ------------------------------------------------------------


def test_rate_limit_off_by_default(api: Api) -> None:
    r = api("GET", "/users/me")
    assert "X-RateLimit-Limit" not in r.headers


def test_rate_limiting_headers_and_plain_429() -> None:
    with Sandbox(rate_limit=True, rate_limit_per_sec=2, rate_limit_burst=3) as sb:
        api = Api(sb)
        remaining = []
        for _ in range(4):
            r = api("GET", "/users/me")
            assert r.status_code == 200
            assert r.headers["X-RateLimit-Limit"] == "4"  # MaxBurst + 1
            remaining.append(int(r.headers["X-RateLimit-Remaining"]))
            reset = int(r.headers["X-RateLimit-Reset"])
            assert 0 <= reset <= 3  # seconds from now, not an epoch
        assert remaining == [3, 2, 1, 0]
        refused = api("GET", "/users/me")
        assert refused.status_code == 429
        assert refused.text.strip() == "limit exceeded"
        assert refused.headers["Content-Type"].startswith("text/plain")
        assert int(refused.headers["Retry-After"]) >= 1
        assert "X-Request-Id" not in refused.headers
        time.sleep(0.6)  # one emission interval (0.5 s) later a request passes again
        assert api("GET", "/users/me").status_code == 200


# ---- incoming webhooks -----------------------------------------------------------


def test_incoming_webhook(mattermost_server: Sandbox) -> None:
    sb = mattermost_server
    r = requests.post(sb.webhook_url, json={"text": "from a hook"}, timeout=5)
    assert r.status_code == 200 and r.text == "ok"
    assert r.headers["Content-Type"].startswith("text/plain")
    [post] = sb.view.posts("town-square")
    assert post.message == "from a hook" and post.props["from_webhook"] == "true"
    requests.post(sb.webhook_url, json={"text": "elsewhere", "channel": "#alerts"}, timeout=5)
    assert [p.message for p in sb.view.posts("alerts")] == ["elsewhere"]
    attach = {"attachments": [{"fallback": "f", "text": "boxed"}], "channel": "alerts"}
    requests.post(sb.webhook_url, data={"payload": json.dumps(attach)}, timeout=5)
    assert sb.view.posts("alerts")[-1].props["attachments"][0]["text"] == "boxed"
    requests.post(sb.webhook_url, json={"text": "dm", "channel": "@alice"}, timeout=5)
    assert [p.message for p in sb.view.posts(dm_with="alice")] == ["dm"]
    long = requests.post(sb.webhook_url, json={"text": "a" * 20000, "channel": "lobby"}, timeout=5)
    assert long.status_code == 200
    assert [len(p.message) for p in sb.view.posts("lobby")] == [16383, 20000 - 16383]
    empty = requests.post(sb.webhook_url, json={"channel": "alerts"}, timeout=5)
    assert empty.status_code == 400
    assert empty.json()["id"] == "web.incoming_webhook.general.app_error"
    assert (
        requests.post(sb.url + "/hooks/unknownkey", json={"text": "x"}, timeout=5).status_code
        == 400
    )
    missing = requests.post(sb.webhook_url, json={"text": "x", "channel": "nope"}, timeout=5)
    assert missing.status_code == 404
    secret = requests.post(sb.webhook_url, json={"text": "x", "channel": "secret"}, timeout=5)
    assert secret.status_code == 403
    locked = sb.create_webhook("alerts", locked=True)
    r = requests.post(
        f"{sb.url}/hooks/{locked}", json={"text": "x", "channel": "town-square"}, timeout=5
    )
    assert r.status_code == 403


# ---- odds and ends -----------------------------------------------------------------


def test_token_never_reaches_the_log(
    mattermost_server: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG", logger="mattermost_notify.sandbox")
    sb = mattermost_server
    requests.get(f"{sb.url}/api/v4/users/me", params={"access_token": sb.token}, timeout=5)
    requests.get(f"{sb.url}/api/v4/users/me", headers=_bearer(sb.token), timeout=5)
    assert "/api/v4/users/me" in caplog.text
    assert sb.token not in caplog.text
    assert all(sb.token not in repr(r) for r in sb.view.requests())


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_file_part_before_channel_id_uses_the_legacy_parser(
    api: Api, mattermost_server: Sandbox
) -> None:
    from requests_toolbelt import MultipartEncoder

    cid = mattermost_server.view.channel_id("alerts")
    encoder = MultipartEncoder(
        fields=[
            ("files", ("first.txt", b"1", "text/plain")),
            ("other", ("ignored.txt", b"2", "text/plain")),  # only "files" parts are read
            ("channel_id", cid),
        ]
    )
    r = api(
        "POST", "/files", data=encoder.to_string(), headers={"Content-Type": encoder.content_type}
    )
    assert r.status_code == 201, r.text
    assert [i["name"] for i in r.json()["file_infos"]] == ["first.txt"]


def test_upload_the_way_the_original_package_does(mattermost_server: Sandbox, tmp_path) -> None:
    """notify-mattermost 0.1.3 sends its text fields as ``("", value)`` tuples in ``files=``.

    Those parts carry ``filename=""``; Go's ``Part.FileName()`` is "" for them, so the
    server reads them as form fields, channel_id first (the streaming parser).
    """
    sb = mattermost_server
    channel_id = sb.view.channel_id("alerts")
    file_path = tmp_path / "report.txt"
    file_path.write_bytes(b"original upload\n")
    headers = {"Authorization": f"Bearer {sb.token}"}
    with file_path.open("rb") as handle:
        data = {
            "channel_id": ("", channel_id),
            "client_ids": ("", "id_for_file"),
            "files": (file_path.name, handle),
        }
        r = requests.post(f"{sb.url}/api/v4/files", files=data, headers=headers, timeout=10)
    assert r.status_code == 201, r.text
    assert r.json()["client_ids"] == ["id_for_file"]
    [info] = r.json()["file_infos"]
    assert (info["name"], info["size"], info["channel_id"]) == ("report.txt", 16, channel_id)
    sent = r.request.body
    assert isinstance(sent, bytes)
    assert b'name="channel_id"; filename=""' in sent
    assert b'name="client_ids"; filename=""' in sent
    post = requests.post(
        f"{sb.url}/api/v4/posts",
        json={"channel_id": channel_id, "file_ids": [info["id"]]},
        headers=headers,
        timeout=10,
    )
    assert post.status_code == 201, post.text
    [stored] = sb.view.posts(channel="alerts")
    assert [f.name for f in stored.files] == ["report.txt"]
    # a filename="" part with another name is an unknown field, as on the server
    with file_path.open("rb") as handle:
        other = requests.post(
            f"{sb.url}/api/v4/files",
            files={"channel_id": ("", channel_id), "other": ("", "x"), "files": ("a", handle)},
            headers=headers,
            timeout=10,
        )
    assert other.status_code == 400
    assert error_id(other) == "api.context.invalid_param.app_error"


def test_team_member(api: Api, alice: Api, mattermost_server: Sandbox) -> None:
    sb = mattermost_server
    team_id = api("GET", "/teams/name/sandbox").json()["id"]
    alice_id = api("GET", "/users/username/alice").json()["id"]
    r = api("GET", f"/teams/{team_id}/members/{alice_id}")
    assert r.status_code == 200, r.text
    member = r.json()
    assert member == {
        "team_id": team_id,
        "user_id": alice_id,
        "roles": "team_user",
        "delete_at": 0,
        "scheme_guest": False,
        "scheme_user": True,
        "scheme_admin": False,
        "explicit_roles": "",
    }
    me = api("GET", f"/teams/{team_id}/members/me")
    assert me.status_code == 200 and me.json()["user_id"] == sb.bot_user_id
    assert alice("GET", f"/teams/{team_id}/members/{sb.bot_user_id}").status_code == 200
    # a well-formed user id that is no member of the team
    missing = api("GET", f"/teams/{team_id}/members/{'a' * 26}")
    assert missing.status_code == 404
    assert error_id(missing) == "app.team.get_member.missing.app_error"
    # a caller who cannot view the team: 403 before anything is looked up
    sb._store.teams[team_id]["_members"].remove(alice_id)
    denied = alice("GET", f"/teams/{team_id}/members/{sb.bot_user_id}")
    assert denied.status_code == 403
    assert error_id(denied) == "api.context.permissions.app_error"
    gone = api("GET", f"/teams/{team_id}/members/{alice_id}")
    assert gone.status_code == 404
    assert error_id(gone) == "app.team.get_member.missing.app_error"
    assert api("GET", f"/teams/{'b' * 26}/members/me").status_code == 403  # unknown team
    bad = api("GET", f"/teams/{team_id}/members/nope")
    assert bad.status_code == 400 and error_id(bad) == "api.context.invalid_url_param.app_error"


def test_request_body_cap_and_unknown_route(api: Api) -> None:
    big = api.post("alerts", "x", props={"blob": "y" * 400_000})
    assert big.status_code == 413
    assert error_id(big) == "api.context.request_body_too_large.app_error"
    missing = api("GET", "/nothing/here")
    assert missing.status_code == 404 and error_id(missing) == "api.context.404.app_error"
    assert len(missing.headers["X-Request-Id"]) == 26 and "X-Version-Id" in missing.headers


def test_secondary_routes(api: Api, alice: Api) -> None:
    team = api("GET", "/teams/name/sandbox").json()
    assert api("GET", f"/teams/{team['id']}").json()["name"] == "sandbox"
    root = api.post("alerts", "root").json()
    reply = api.post("alerts", "reply", root_id=root["id"]).json()
    thread = api("GET", f"/posts/{reply['id']}/thread").json()
    assert set(thread["order"]) == {root["id"], reply["id"]}
    file_id = api.upload_id("alerts", b"abc", "a.csv")
    info = api("GET", f"/files/{file_id}/info").json()
    assert (info["size"], info["mime_type"]) == (3, "text/csv")
    secret_file = alice.upload_id("secret")
    assert api("GET", f"/files/{secret_file}").status_code == 403
    config = requests.get(api.sb.url + "/api/v4/config/client", params={"format": "old"}, timeout=5)
    assert config.status_code == 200 and "MaxPostSize" not in config.json()  # anonymous
