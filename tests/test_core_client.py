"""The client over real HTTP against the sandbox: requests per operation, files, long
messages, updates, hooks, errors (exact type, message naming the thing, nothing partial),
retries, rate-limit pacing and the token never in any output."""

from __future__ import annotations

import logging
import re
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mattermost_notify import errors
from mattermost_notify._checks import CUT_MARKER, MAX_MESSAGE_RUNES
from mattermost_notify.client import Notify
from mattermost_notify.hooks import HookStore, read_hook
from mattermost_notify.sandbox import Sandbox


@pytest.fixture
def client(sb: Sandbox) -> Iterator[Notify]:
    with Notify(token=sb.token, url=sb.url, team_name=sb.team, timeout=(2.0, 5.0)) as c:
        yield c


@pytest.fixture
def files(tmp_path: Path) -> list[str]:
    out = []
    for i in range(12):
        p = tmp_path / f"file{i:02d}.txt"
        p.write_text(f"content {i}\n" * (i + 1))
        out.append(str(p))
    return out


def _clear(sb: Sandbox) -> None:
    """Forget the request log (the sandbox logs a request before it answers it)."""
    sb.view.clear_requests()


def _records(sb: Sandbox) -> list:
    return sb.view.requests()


def _calls(sb: Sandbox) -> list[tuple[str, str]]:
    return [(r.method, r.route or r.path) for r in _records(sb)]


def _creating(sb: Sandbox) -> list[tuple[str, str]]:
    return [(m, p) for m, p in _calls(sb) if m != "GET"]


# ---------------------------------------------------------------- requests per operation


def test_first_dm_then_warm_dm_is_one_request(sb: Sandbox, client: Notify) -> None:
    _clear(sb)
    first = client.send_to_user("first", "alice")
    assert _calls(sb) == [
        ("GET", "/api/v4/users/username/{username}"),
        ("GET", "/api/v4/users/{user_id}"),  # users/me
        ("POST", "/api/v4/channels/direct"),
        ("POST", "/api/v4/posts"),
    ]
    _clear(sb)
    second = client.send_to_user("second", "alice")
    records = _records(sb)
    assert [(r.method, r.route) for r in records] == [("POST", "/api/v4/posts")]
    assert "set_online=false" in records[0].query
    assert first.channel_id == second.channel_id
    assert [p.message for p in sb.view.posts(dm_with="alice")][-2:] == ["first", "second"]


def test_channel_message_needs_no_team_lookup(sb: Sandbox, client: Notify) -> None:
    _clear(sb)
    client.send_to_channel("hello", "alerts")
    assert _calls(sb) == [
        ("GET", "/api/v4/teams/name/{team_name}/channels/name/{channel_name}"),
        ("POST", "/api/v4/posts"),
    ]
    _clear(sb)
    sent = client.send_to_channel("again", "alerts")
    assert _calls(sb) == [("POST", "/api/v4/posts")]
    assert sent.permalink == f"{sb.url}/{sb.team}/pl/{sent.post_id}"


def test_three_files_one_upload_one_post(sb: Sandbox, client: Notify, files: list[str]) -> None:
    client.send_to_channel("warm", "alerts", files=files[:1])
    _clear(sb)
    sent = client.send_to_channel("three files", "alerts", files=files[:3])
    assert _calls(sb) == [("POST", "/api/v4/files"), ("POST", "/api/v4/posts")]
    post = sb.view.post(sent.post_id)
    assert post.message == "three files"
    assert [f.name for f in post.files] == ["file00.txt", "file01.txt", "file02.txt"]
    assert [f.read_bytes() for f in post.files] == [Path(f).read_bytes() for f in files[:3]]


def test_update_is_one_patch(sb: Sandbox, client: Notify) -> None:
    sent = client.send_to_user("v1", "alice", id="upd")
    _clear(sb)
    client.send_update("v2", id="upd")
    # the first update of a client also reads the server's edit time limit, once
    config = ("GET", "/api/v4/config/client")
    assert _calls(sb) == [config, ("PUT", "/api/v4/posts/{post_id}/patch")]
    _clear(sb)
    again = client.send_update("v3", id="upd")
    assert _calls(sb) == [("PUT", "/api/v4/posts/{post_id}/patch")]
    post = sb.view.post(sent.post_id)
    assert post.message == "v3" and post.edited
    assert [e.message for e in post.edits] == ["v1", "v2"]
    assert again.post_id == sent.post_id


# ---------------------------------------------------------------- files, threads, lengths


def test_eleven_files_go_on_in_the_thread(sb: Sandbox, client: Notify, files: list[str]) -> None:
    sent = client.send_to_channel("eleven", "alerts", files=files[:11])
    assert len(sent.post_ids) == 2
    first, second = (sb.view.post(p) for p in sent.post_ids)
    assert len(first.files) == 10 and first.message == "eleven"
    assert len(second.files) == 1 and second.root_id == first.id
    assert second.files[0].name == "file10.txt"


def test_long_message_split_into_a_thread(sb: Sandbox, client: Notify) -> None:
    lines = [f"line {i:05d} " + "é" * 60 for i in range(600)]  # ~43000 runes
    text = "\n".join(lines)
    sent = client.send_to_channel(text, "alerts")
    posts = [sb.view.post(p) for p in sent.post_ids]
    assert len(posts) == 3
    assert all(len(p.message) <= MAX_MESSAGE_RUNES for p in posts)
    assert all(p.root_id == posts[0].id for p in posts[1:])
    body = [posts[0].message] + [p.message.split("\n", 1)[1] for p in posts[1:]]
    assert posts[1].message.startswith("(continued 2/3)")
    assert "\n".join(body) == text


def test_long_update_is_cut_with_a_marker(sb: Sandbox, client: Notify) -> None:
    sent = client.send_to_channel("short", "alerts", id="long-upd")
    client.send_update("x" * (MAX_MESSAGE_RUNES + 500), id="long-upd")
    message = sb.view.post(sent.post_id).message
    assert len(message) == MAX_MESSAGE_RUNES
    hidden = int(re.search(r"message cut: (\d+) more", message).group(1))
    assert message.endswith(CUT_MARKER.format(n=hidden))
    assert len(message) - len(CUT_MARKER.format(n=hidden)) + hidden == MAX_MESSAGE_RUNES + 500


def test_reply_goes_into_the_thread(sb: Sandbox, client: Notify) -> None:
    root = client.send_to_channel("root", "alerts", id="thread-root")
    reply = client.reply("thread-root", "done!")
    assert sb.view.post(reply.post_id).root_id == root.post_id
    assert sb.view.post(root.post_id).reply_ids == (reply.post_id,)


def test_update_replaces_files_on_10_5_plus(sb: Sandbox, client: Notify, files: list[str]) -> None:
    sent = client.send_to_channel("with a file", "alerts", files=files[:1], id="fileupd")
    client.send_update("other file", id="fileupd", files=files[1:3])
    post = sb.view.post(sent.post_id)
    assert [f.name for f in post.files] == ["file01.txt", "file02.txt"]


def test_update_files_on_old_server_names_the_version(files: list[str]) -> None:
    with (
        Sandbox(version="10.4.2") as old,
        Notify(token=old.token, url=old.url, team_name=old.team) as c,
    ):
        sent = c.send_to_channel("v1", "alerts", id="old")
        _clear(old)
        with pytest.raises(errors.FileError, match=r"10\.4\.2.*needs 10\.5") as info:
            c.send_update("v2", id="old", files=files[:1])
        assert "'old'" in str(info.value)
        assert _creating(old) == []
        assert old.view.post(sent.post_id).message == "v1"


def test_pending_post_id_deduplicates(sb: Sandbox, client: Notify) -> None:
    before = len(sb.view.posts(channel="alerts"))
    key = client.new_pending_post_id()
    a = client.send("once", channel="alerts", pending_post_id=key)
    b = client.send("once", channel="alerts", pending_post_id=key)
    assert a.post_id == b.post_id
    assert len(sb.view.posts(channel="alerts")) == before + 1


# ---------------------------------------------------------------- hooks


def test_hook_file_round_trip_between_clients(sb: Sandbox, client: Notify, tmp_path: Path) -> None:
    sent = client.send_to_user("Hello World!", "alice", id="my-test-message")
    path = client.write_message_hook_to_file("my-test-message", tmp_path / "h.msg")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sb.token not in path.read_text()
    hook = read_hook(path)
    assert (hook.server_url, hook.post_id) == (sb.url, sent.post_id)
    with Notify(token=sb.token, url=sb.url, team_name=sb.team) as other:
        other.read_message_hook_from_file(path)
        _clear(sb)
        other.send_update("Hello World! (updated)", id="my-test-message")
    assert sb.view.post(sent.post_id).message == "Hello World! (updated)"


def test_original_hook_file_format_is_accepted(sb: Sandbox, client: Notify, tmp_path: Path) -> None:
    sent = client.send_to_channel("legacy", "alerts")
    path = tmp_path / "old.msg"
    path.write_text(
        f"[Mattermost-Notify Message Hook]\nlegacy-id\n{sent.channel_id}\n{sent.post_id}"
    )
    with Notify(token=sb.token, url=sb.url, team_name=sb.team) as other:
        other.read_message_hook_from_file(path)
        other.send_update("legacy (updated)", id="legacy-id")
    assert sb.view.post(sent.post_id).message == "legacy (updated)"


def test_hook_from_another_server_names_both(sb: Sandbox, client: Notify, tmp_path: Path) -> None:
    with (
        Sandbox() as elsewhere,
        Notify(token=elsewhere.token, url=elsewhere.url, team_name=elsewhere.team) as c,
    ):
        c.send_to_channel("there", "alerts", id="foreign")
        path = c.write_message_hook_to_file("foreign", tmp_path / "f.msg")
    with pytest.raises(errors.HookError) as info:
        client.read_message_hook_from_file(path)
    assert elsewhere.url in str(info.value) and sb.url in str(info.value)
    assert not client.has_message("foreign")


def test_hook_store_survives_a_restart(sb: Sandbox, tmp_path: Path) -> None:
    store_path = tmp_path / "store.json"
    with Notify(token=sb.token, url=sb.url, team_name=sb.team, hook_store=store_path) as a:
        sent = a.send_to_channel("kernel 1", "alerts", id="persist")
    assert HookStore(store_path).get("persist") is not None
    with Notify(
        token=sb.token, url=sb.url, team_name=sb.team, hook_store=HookStore(store_path)
    ) as b:
        assert b.has_message("persist")
        _clear(sb)
        b.send_update("kernel 2", id="persist")
        patch = ("PUT", "/api/v4/posts/{post_id}/patch")
        assert _calls(sb) == [("GET", "/api/v4/config/client"), patch]  # + the edit limit
    assert sb.view.post(sent.post_id).message == "kernel 2"


# ---------------------------------------------------------------- errors, nothing partial


def _count_posts(sb: Sandbox) -> int:
    return len(sb.view.posts(channel="alerts"))


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"message": ""}, errors.MessageError, "message is empty"),
        ({"message": "   "}, errors.MessageError, "message is empty"),
        ({"message": 42}, errors.MessageError, "must be a str, got int"),
        ({"message": b"x"}, errors.MessageError, "decode bytes"),
        ({"message": None}, errors.MessageError, "got NoneType"),
        ({"id": ""}, errors.MessageError, "message id must be a non-empty string"),
        (
            {"files": ["/nonexistent/file.txt"]},
            errors.FileError,
            r"'/nonexistent/file.txt'.*not exist",
        ),
        ({"files": "DIR"}, errors.FileError, "is a directory"),
        ({"files": [b"bytes"]}, errors.FileError, "by its path"),
        ({"files": 12}, errors.FileError, "list of paths"),
    ],
)
def test_bad_input_nothing_sent(
    sb: Sandbox, client: Notify, tmp_path: Path, kwargs: dict, exc: type, match: str
) -> None:
    args = {"message": "hello", **kwargs}
    if args.get("files") == "DIR":
        args["files"] = [str(tmp_path)]
    _clear(sb)
    before = _count_posts(sb)
    with pytest.raises(exc, match=match):
        client.send_to_channel(args.pop("message"), "alerts", **args)
    assert _creating(sb) == []
    assert _count_posts(sb) == before


def test_one_bad_file_among_good_ones_sends_nothing(
    sb: Sandbox, client: Notify, files: list[str], tmp_path: Path
) -> None:
    # the last file is empty (the server refuses those); an unreadable one is in
    # test_delivery_bad_input.py, which drops root privileges to make one
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    _clear(sb)
    with pytest.raises(errors.FileError, match=r"empty\.bin.*is empty") as info:
        client.send_to_channel("x", "alerts", files=[*files[:2], str(empty)])
    assert info.value.path == str(empty)
    assert _creating(sb) == []


def test_file_over_the_server_limit(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 5000)
    with (
        Sandbox(max_file_size=4096) as small,
        Notify(token=small.token, url=small.url, team_name=small.team) as c,
    ):
        # the limit is not asked for upfront: the first upload is refused (413), then
        # the limits are fetched and the file is named; nothing is stored or posted
        with pytest.raises(errors.FileError, match=r"big\.bin.*5000 bytes.*4096"):
            c.send_to_channel("x", "alerts", files=[str(big)])
        assert _creating(small) == [("POST", "/api/v4/files")]
        assert small.view.files() == []
        assert small.view.posts(channel="alerts") == []
        # now the limit is known (and cached on disk): nothing goes out
        small.view.clear_requests()
        with pytest.raises(errors.FileError, match=r"big\.bin.*5000 bytes.*4096"):
            c.send_to_channel("x", "alerts", files=[str(big)])
        assert _creating(small) == []
        with (
            Notify(token=small.token, url=small.url, team_name=small.team) as fresh,
            pytest.raises(errors.FileError, match=r"big\.bin.*5000 bytes.*4096"),
        ):
            fresh.send_to_channel("x", "alerts", files=[str(big)])
        # a fresh client confirms a cached limit before refusing a file (it may have grown)
        assert [p for _m, p in _calls(small)] == ["/api/v4/config/client"]


def test_empty_file_refused(sb: Sandbox, client: Notify, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(errors.FileError, match=r"empty\.txt.*empty"):
        client.send_to_channel("x", "alerts", files=[str(empty)])


def test_unknown_user_channel_private_and_foreign_team(sb: Sandbox, client: Notify) -> None:
    with pytest.raises(errors.NotFoundError, match=r"user 'nobody' not found on " + sb.url):
        client.send_to_user("x", "nobody")
    with pytest.raises(errors.NotFoundError, match=r"'nochannel' not found in team 'sandbox'"):
        client.send_to_channel("x", "nochannel")
    with pytest.raises(errors.NotFoundError, match=r"channel 'secret'"):
        client.send_to_channel("x", "secret")
    with pytest.raises(errors.PermissionDeniedError, match=r"channel 'lobby'") as info:
        client.send_to_channel("x", "lobby")
    assert info.value.status_code == 403 and info.value.error_id
    with (
        Notify(token=sb.token, url=sb.url, team_name="otherteam") as other,
        pytest.raises(errors.NotFoundError, match="team 'otherteam'"),
    ):
        other.send_to_channel("x", "alerts")


def test_wrong_token_is_authentication_error_without_the_token(sb: Sandbox) -> None:
    wrong = "wrongtoken" + "z" * 16
    with (
        Notify(token=wrong, url=sb.url, team_name=sb.team) as c,
        pytest.raises(errors.AuthenticationError, match="refused the access token") as info,
    ):
        c.send_to_channel("x", "alerts")
    assert wrong not in str(info.value) and wrong not in repr(info.value)
    assert info.value.status_code == 401


def test_unknown_id_and_reused_id(sb: Sandbox, client: Notify) -> None:
    with pytest.raises(errors.MessageError, match="unknown message id 'never-sent'"):
        client.send_update("x", id="never-sent")
    client.send_to_channel("a", "alerts", id="mine")
    _clear(sb)
    with pytest.raises(errors.MessageError, match="'mine' is already used for another target"):
        client.send_to_user("b", "alice", id="mine")
    assert ("POST", "/api/v4/posts") not in _calls(sb)


def test_target_errors(client: Notify) -> None:
    with pytest.raises(errors.MessageError, match="not both"):
        client.send("x", user="alice", channel="alerts")
    with pytest.raises(errors.MessageError, match="no user or channel given"):
        client.send("x")
    with pytest.raises(errors.MessageError, match="invalid channel name"):
        client.send_to_channel("x", "no such/channel")


def test_unreachable_host_is_a_network_error(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = "unreachabletoken" + "q" * 10
    with (
        Notify(token=token, url=f"http://127.0.0.1:{port}", team_name="t", retry=1) as c,
        pytest.raises(errors.NetworkError, match=f"127.0.0.1:{port}") as info,
    ):
        c.send_to_channel("x", "alerts")
    assert token not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_read_timeout_is_named(sb: Sandbox) -> None:
    with Notify(token=sb.token, url=sb.url, team_name=sb.team, timeout=(1.0, 0.3), retry=0) as c:
        sb.faults.delay(1.0)
        try:
            with pytest.raises(
                errors.ReadTimeout, match=r"read timeout.*timeout \(connect, read\)"
            ) as info:
                c.send_to_user("x", "bob")
            assert isinstance(info.value, errors.NetworkError)  # a NetworkError like any other
        finally:
            sb.faults.clear()
            time.sleep(0.8)  # let the delayed request finish before the next test


# ---------------------------------------------------------------- retries and pacing


def test_retries_503_and_dropped_connections_exactly_once(sb: Sandbox, client: Notify) -> None:
    client.send_to_channel("warm", "alerts")
    before = _count_posts(sb)
    sb.faults.fail_next(2, status=503)
    client.send_to_channel("after two 503", "alerts")
    sb.faults.drop_after(1)  # the server applies the post, the answer is lost
    client.send_to_channel("answer lost", "alerts")
    sb.faults.drop_before(1)
    client.send_to_channel("request lost", "alerts")
    messages = [p.message for p in sb.view.posts(channel="alerts")][before:]
    assert messages == ["after two 503", "answer lost", "request lost"]


def test_reply_retried_after_a_lost_answer_is_not_doubled(sb: Sandbox, client: Notify) -> None:
    root = client.send_to_channel("root of a retried reply", "alerts", id="retried-reply")
    sb.faults.drop_after(1)  # the server saves the reply, the answer is lost, we retry
    reply = client.reply("retried-reply", "reply once")
    thread = [p.message for p in sb.view.thread(root.post_id)]
    assert thread == ["root of a retried reply", "reply once"]
    assert sb.view.post(reply.post_id).root_id == root.post_id


def test_no_retry_on_4xx(sb: Sandbox, client: Notify) -> None:
    _clear(sb)
    with pytest.raises(errors.NotFoundError):
        client.send_to_user("x", "ghost")
    # by path: a request delayed by an earlier test may still land in the log
    lookups = [r for r in _records(sb) if r.path == "/api/v4/users/username/ghost"]
    assert [r.status for r in lookups] == [404]


@pytest.mark.parametrize("by_user", [False, True], ids=["by-address", "by-user"])
def test_paced_client_gets_no_429(by_user: bool) -> None:
    # by user (VaryByUser): the real server sends every X-RateLimit-* header twice
    with (
        Sandbox(
            rate_limit=True, rate_limit_per_sec=20, rate_limit_burst=5, rate_limit_by_user=by_user
        ) as limited,
        Notify(token=limited.token, url=limited.url, team_name=limited.team) as c,
    ):
        for i in range(40):
            c.send_to_channel(f"paced {i}", "alerts")
        statuses = [r.status for r in _records(limited)]
        assert 429 not in statuses
        assert [p.message for p in limited.view.posts(channel="alerts")][-40:] == [
            f"paced {i}" for i in range(40)
        ]


def test_429_honours_retry_after() -> None:
    with (
        Sandbox(rate_limit=True, rate_limit_per_sec=20, rate_limit_burst=3) as limited,
        Notify(token=limited.token, url=limited.url, team_name=limited.team) as c,
        Notify(token=limited.token, url=limited.url, team_name=limited.team) as d,
    ):
        # two clients share the bucket: the second does not know the first's pacing
        c.send_to_channel("c", "alerts")
        d.send_to_channel("d", "alerts")
        for i in range(5):
            c.send_to_channel(f"c{i}", "alerts")
            d.send_to_channel(f"d{i}", "alerts")
        messages = [p.message for p in limited.view.posts(channel="alerts")]
        assert sorted(messages[-12:]) == sorted(
            ["c", "d"] + [f"c{i}" for i in range(5)] + [f"d{i}" for i in range(5)]
        )


# ---------------------------------------------------------------- report, secrets


def _check(report, name):
    return next(c for c in report.checks if c.name == name)


def test_connection_report(sb: Sandbox, client: Notify) -> None:
    report = client.test_connection()
    assert report.ok, report.lines()
    assert report.server_version == "10.6.0"
    assert report.bot_name == sb.bot_username and report.is_bot
    # the lines the README lists, in its order
    assert [c.name for c in report.checks][:6] == [
        "server",
        "TLS",
        "token",
        "bot",
        "team",
        "limits",
    ]
    assert _check(report, "TLS").ok is None and "plain http" in _check(report, "TLS").detail
    with Notify(token="bad" + "x" * 20, url=sb.url, team_name=sb.team) as bad:
        report = bad.test_connection()
    assert not report.ok
    # stops at the first failure: nothing after the token line
    assert report.checks[-1].name == "token" and report.checks[-1].ok is False
    assert report.error and "refused the access token" in report.error


def test_connection_report_names_tls_when_https_meets_a_plain_http_server(sb: Sandbox) -> None:
    https_url = sb.url.replace("http://", "https://")
    with Notify(sb.token, https_url, sb.team) as c:
        report = c.test_connection()
    assert [(c.name, c.ok) for c in report.checks] == [("TLS", False)]
    assert "does not speak https" in report.checks[0].detail


def test_connection_report_stops_at_the_first_failure(sb: Sandbox) -> None:
    with Notify(sb.token, sb.url, "no-such-team", default_channel="alerts") as c:
        report = c.test_connection()
    assert [c.name for c in report.checks] == ["server", "TLS", "token", "bot", "team"]
    team = report.checks[-1]
    assert team.ok is False and "no team named 'no-such-team'" in team.detail
    assert "not its display name" in team.detail


def test_connection_report_checks_team_membership() -> None:
    with Sandbox() as outsider_sb:
        with Notify(outsider_sb.token, outsider_sb.url, outsider_sb.team) as c:
            team = _check(c.test_connection(), "team")
            assert (team.name, team.ok) == ("team", True)
            assert "is a member of 'sandbox'" in team.detail
        outsider_sb.remove_from_team(outsider_sb.bot_username)
        with Notify(outsider_sb.token, outsider_sb.url, outsider_sb.team) as c:
            report = c.test_connection()
        assert not report.ok and report.team_member is False
        team = _check(report, "team")
        assert team.ok is False and "not a member of team 'sandbox'" in team.detail
        assert "add the bot to the team" in team.detail


def test_token_never_in_logs_reprs_errors_or_hooks(
    sb: Sandbox, client: Notify, files: list[str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = [repr(client), str(client), repr(client.transport)]
    client.send_to_user("secret test", "alice", id="s1", files=files[:2])
    client.send_update("secret test 2", id="s1")
    client.write_message_hook_to_file("s1", tmp_path / "s1.msg")
    texts.append((tmp_path / "s1.msg").read_text())
    for call in (
        lambda: client.send_to_user("x", "nobody"),
        lambda: client.send_to_channel("x", "lobby"),
        lambda: client.send_update("x", id="nope"),
    ):
        with pytest.raises(errors.MattermostNotifyError) as info:
            call()
        texts += [str(info.value), repr(info.value)]
    sb.faults.fail_next(1, status=503)
    client.send_to_user("after 503", "alice")
    assert any("POST /posts 201" in r.getMessage() for r in caplog.records)
    texts += [r.getMessage() for r in caplog.records]
    texts.append(caplog.text)
    leaks = [t for t in texts if sb.token in t]
    assert leaks == []
