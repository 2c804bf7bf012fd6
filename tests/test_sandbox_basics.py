"""Sandbox basics over real HTTP: auth, look-ups, posts, uploads, restart, fixtures."""

from __future__ import annotations

import os
import signal
import threading

import pytest
import requests

from mattermost_notify.sandbox import Sandbox


def _auth(token: str, scheme: str = "Bearer") -> dict[str, str]:
    return {"Authorization": f"{scheme} {token}"}


def test_ping_needs_no_auth_and_carries_headers(mattermost_server: Sandbox) -> None:
    r = requests.get(mattermost_server.url + "/api/v4/system/ping", timeout=5)
    assert r.status_code == 200
    assert r.json()["status"] == "OK"
    assert len(r.headers["X-Request-Id"]) == 26
    assert r.headers["X-Version-Id"].startswith("10.6.0.")


def test_me_with_bearer_and_token_schemes_any_case(mattermost_server: Sandbox) -> None:
    sb = mattermost_server
    for scheme in ("Bearer", "bearer", "BEARER", "Token", "token"):
        r = requests.get(sb.url + "/api/v4/users/me", headers=_auth(sb.token, scheme), timeout=5)
        assert r.status_code == 200, scheme
        assert r.json()["username"] == sb.bot_username
        assert r.json()["is_bot"] is True


def test_missing_or_unknown_token_is_401_with_error_body(mattermost_server: Sandbox) -> None:
    sb = mattermost_server
    for headers in ({}, _auth("x" * 26), {"Authorization": "Basic abc"}):
        r = requests.get(sb.url + "/api/v4/users/me", headers=headers, timeout=5)
        assert r.status_code == 401
        body = r.json()
        assert body["id"] == "api.context.session_expired.app_error"
        assert body["status_code"] == 401
        assert body["request_id"] == r.headers["X-Request-Id"]
        assert set(body) == {"id", "message", "detailed_error", "request_id", "status_code"}


def test_post_to_channel_and_view(mattermost_server: Sandbox) -> None:
    sb = mattermost_server
    h = _auth(sb.token)
    team = requests.get(f"{sb.url}/api/v4/teams/name/{sb.team}", headers=h, timeout=5).json()
    channel = requests.get(
        f"{sb.url}/api/v4/teams/{team['id']}/channels/name/alerts", headers=h, timeout=5
    ).json()
    r = requests.post(
        sb.url + "/api/v4/posts",
        headers=h,
        json={"channel_id": channel["id"], "message": "hello"},
        timeout=5,
    )
    assert r.status_code == 201
    post = r.json()
    assert post["props"]["from_bot"] == "true"
    [seen] = sb.view.posts("alerts")
    assert seen.id == post["id"] and seen.message == "hello" and seen.username == sb.bot_username
    got = requests.get(f"{sb.url}/api/v4/posts/{post['id']}", headers=h, timeout=5)
    assert got.status_code == 200 and got.json()["message"] == "hello"
    assert [r.route for r in sb.view.requests()][-1] == "/api/v4/posts/{post_id}"


def test_upload_then_post_with_file_then_download(mattermost_server: Sandbox) -> None:
    sb = mattermost_server
    h = _auth(sb.token)
    cid = sb.view.channel_id("alerts")
    up = requests.post(
        sb.url + "/api/v4/files",
        headers=h,
        data={"channel_id": cid},
        files={"files": ("report.txt", b"numbers")},
        timeout=5,
    )
    assert up.status_code == 201
    file_id = up.json()["file_infos"][0]["id"]
    post = requests.post(
        sb.url + "/api/v4/posts",
        headers=h,
        json={"channel_id": cid, "message": "see file", "file_ids": [file_id]},
        timeout=5,
    ).json()
    assert post["file_ids"] == [file_id]
    assert sb.view.post(post["id"]).files[0].read_bytes() == b"numbers"
    dl = requests.get(f"{sb.url}/api/v4/files/{file_id}", headers=h, timeout=5)
    assert dl.status_code == 200 and dl.content == b"numbers"


def test_restart_on_same_port_keeps_state() -> None:
    with Sandbox() as sb:
        port = sb.port
        cid = sb.view.channel_id("alerts")
        r = requests.post(
            sb.url + "/api/v4/posts",
            headers=_auth(sb.token),
            json={"channel_id": cid, "message": "before restart"},
            timeout=5,
        )
        assert r.status_code == 201
        sb.stop()
        assert not sb.running
        sb.start()
        assert sb.port == port
        got = requests.get(
            f"{sb.url}/api/v4/posts/{r.json()['id']}", headers=_auth(sb.token), timeout=5
        )
        assert got.json()["message"] == "before restart"


def test_mattermost_env_points_at_the_sandbox(mattermost_env: Sandbox) -> None:
    sb = mattermost_env
    assert os.environ["MATTERMOST_NOTIFY_URL"] == sb.url
    assert os.environ["MATTERMOST_NOTIFY_TOKEN"] == sb.token
    assert os.environ["MATTERMOST_NOTIFY_TEAM"] == sb.team
    for var in ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "MATTERMOST_NOTIFY_DATA_DIR"):
        assert os.environ[var] != os.path.expanduser("~" + os.environ.get("USER", "root"))
        assert os.path.isdir(os.environ[var])
    assert os.path.realpath(os.getcwd()).startswith(
        os.path.realpath(os.path.dirname(os.environ["HOME"]))
    )


def test_request_is_in_the_log_when_its_answer_arrives(mattermost_server: Sandbox) -> None:
    sb = mattermost_server
    for n in range(50):
        requests.get(sb.url + "/api/v4/system/ping", timeout=5)
        assert len(sb.view.requests()) == n + 1


def _blocks_sigint(thread: threading.Thread) -> bool:
    with open(f"/proc/self/task/{thread.native_id}/status", encoding="ascii") as status:
        mask = next(line for line in status if line.startswith("SigBlk:")).split()[1]
    return bool(int(mask, 16) >> (signal.SIGINT - 1) & 1)


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="reads /proc (Linux)")
def test_the_server_s_threads_leave_ctrl_c_to_the_main_thread(mattermost_server: Sandbox) -> None:
    """A Ctrl-C the kernel gave to a server thread would not wake the main thread
    (``mattermost-notify demo --keep`` sleeps there): the server's thread and its request
    threads block SIGINT."""
    with requests.Session() as session:  # keep-alive: the request's thread stays
        r = session.get(mattermost_server.url + "/api/v4/system/ping", timeout=5)
        assert r.status_code == 200
        port = f":{mattermost_server.port}"
        serving = [t for t in threading.enumerate() if t.name.endswith(port)]
        answering = [t for t in threading.enumerate() if "process_request" in t.name]
        assert serving and answering, threading.enumerate()
        assert [t.name for t in serving + answering if not _blocks_sigint(t)] == []
    assert not _blocks_sigint(threading.main_thread())
