"""Fault injection, SQLite state, the web page, permalinks and the command line."""

from __future__ import annotations

import re
import signal
import stat
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import requests

from mattermost_notify.sandbox import Sandbox


def _auth(sb: Sandbox) -> dict[str, str]:
    return {"Authorization": f"Bearer {sb.token}"}


def _post(
    sb: Sandbox, message: str, channel: str = "alerts", **fields: object
) -> requests.Response:
    body = {"channel_id": sb.view.channel_id(channel), "message": message, **fields}
    return requests.post(sb.url + "/api/v4/posts", headers=_auth(sb), json=body, timeout=10)


# ---- faults ---------------------------------------------------------------------


def test_fail_next_answers_status_without_applying(mattermost_server: Sandbox) -> None:
    sb = mattermost_server
    sb.faults.fail_next(2, status=503)
    first, second, third = (_post(sb, f"m{i}") for i in range(3))
    assert [first.status_code, second.status_code, third.status_code] == [503, 503, 201]
    assert first.json()["status_code"] == 503
    assert [p.message for p in sb.view.posts("alerts")] == ["m2"]
    assert [r.fault for r in sb.view.requests()][:3] == ["status:503", "status:503", ""]


def test_fail_next_429_is_plain_text_with_retry_after(mattermost_server: Sandbox) -> None:
    sb = mattermost_server
    sb.faults.fail_next(1, status=429)
    r = _post(sb, "x")
    assert r.status_code == 429 and r.text.strip() == "limit exceeded"
    assert r.headers["Retry-After"] == "1"


def test_faults_restricted_to_a_path_prefix(mattermost_server: Sandbox) -> None:
    sb = mattermost_server
    sb.faults.fail_next(1, status=502, path_prefix="/api/v4/posts")
    assert requests.get(sb.url + "/api/v4/system/ping", timeout=5).status_code == 200
    assert _post(sb, "a").status_code == 502
    assert _post(sb, "b").status_code == 201


def _pattern(seed: int) -> list[int]:
    with Sandbox() as sb:
        sb.faults.fail_fraction(0.5, seed=seed, statuses=(500, 503))
        return [
            requests.get(sb.url + "/api/v4/system/ping", timeout=5).status_code for _ in range(30)
        ]


def test_fail_fraction_is_seeded() -> None:
    first, again, other = _pattern(7), _pattern(7), _pattern(8)
    assert first == again
    assert first != other
    assert {500, 503, 200} == set(first)
    assert 5 <= sum(code != 200 for code in first) <= 25


def test_drop_before_applies_nothing(mattermost_server: Sandbox) -> None:
    sb = mattermost_server
    sb.faults.drop_before(1, path_prefix="/api/v4/posts")
    with pytest.raises(requests.ConnectionError):
        _post(sb, "lost")
    assert sb.view.posts("alerts") == []
    assert _post(sb, "kept").status_code == 201
    assert sb.view.requests()[0].status == 0 and sb.view.requests()[0].fault == "drop_before"


def test_drop_after_applies_then_hangs_up_and_dedup_saves_the_retry(
    mattermost_server: Sandbox,
) -> None:
    sb = mattermost_server
    sb.faults.drop_after(1, path_prefix="/api/v4/posts")
    with pytest.raises(requests.ConnectionError):
        _post(sb, "applied", pending_post_id="retry-1")
    [post] = sb.view.posts("alerts")  # committed although no answer came
    assert post.message == "applied"
    retry = _post(sb, "applied", pending_post_id="retry-1")
    assert retry.status_code == 201 and retry.json()["id"] == post.id
    naive = _post(sb, "applied")  # a retry without pending_post_id posts twice
    assert naive.status_code == 201
    assert len(sb.view.posts("alerts")) == 2


def test_delay_stalls_requests(mattermost_server: Sandbox) -> None:
    sb = mattermost_server
    sb.faults.delay(0.5, n=1)
    started = time.monotonic()
    assert requests.get(sb.url + "/api/v4/system/ping", timeout=5).status_code == 200
    assert time.monotonic() - started >= 0.5
    started = time.monotonic()
    requests.get(sb.url + "/api/v4/system/ping", timeout=5)
    assert time.monotonic() - started < 0.5
    sb.faults.delay(2.0)
    with pytest.raises(requests.Timeout):
        requests.get(sb.url + "/api/v4/system/ping", timeout=0.5)
    sb.faults.clear()
    assert requests.get(sb.url + "/api/v4/system/ping", timeout=5).status_code == 200


# ---- state ------------------------------------------------------------------------


def test_sqlite_state_survives_a_new_process_object(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with Sandbox(db=db, token="fixed-token") as sb:
        cid = sb.view.channel_id("alerts")
        up = requests.post(
            sb.url + "/api/v4/files",
            headers=_auth(sb),
            data={"channel_id": cid},
            files={"files": ("kept.txt", b"persisted bytes")},
            timeout=5,
        )
        file_id = up.json()["file_infos"][0]["id"]
        post = _post(sb, "persisted", file_ids=[file_id]).json()
        requests.put(
            f"{sb.url}/api/v4/posts/{post['id']}/patch",
            headers=_auth(sb),
            json={"message": "persisted, edited"},
            timeout=5,
        )
        bot_id = sb.bot_user_id
    with Sandbox(db=db) as again:
        assert again.token == "fixed-token" and again.bot_user_id == bot_id
        [kept] = again.view.posts("alerts")
        assert kept.message == "persisted, edited" and [e.message for e in kept.edits] == [
            "persisted"
        ]
        r = requests.get(f"{again.url}/api/v4/files/{file_id}", headers=_auth(again), timeout=5)
        assert r.content == b"persisted bytes"
        assert _post(again, "more").status_code == 201


def test_seed_is_configurable() -> None:
    with Sandbox(
        team="lab",
        bot_username="runner",
        users=("carol",),
        channels=("runs",),
        private_channels=("ops",),
    ) as sb:
        h = _auth(sb)
        assert (
            requests.get(sb.url + "/api/v4/users/me", headers=h, timeout=5).json()["username"]
            == "runner"
        )
        for name, code in (
            ("runs", 200),
            ("ops", 200),
            ("lobby", 200),
            ("secret", 404),
            ("alerts", 404),
        ):
            r = requests.get(
                f"{sb.url}/api/v4/teams/name/lab/channels/name/{name}", headers=h, timeout=5
            )
            assert r.status_code == code, name
        assert (
            requests.get(f"{sb.url}/api/v4/users/username/carol", headers=h, timeout=5).status_code
            == 200
        )


# ---- web page --------------------------------------------------------------------


def test_web_page_renders_markdown_escapes_html_and_nests_threads(
    mattermost_server: Sandbox,
) -> None:
    sb = mattermost_server
    root = _post(sb, "**bold** <script>alert(1)</script>").json()
    _post(sb, "a reply", root_id=root["id"])
    cid = sb.view.channel_id("alerts")
    up = requests.post(
        sb.url + "/api/v4/files",
        headers=_auth(sb),
        data={"channel_id": cid},
        files={"files": ("plot.png", b"\x89PNG")},
        timeout=5,
    ).json()
    file_id = up["file_infos"][0]["id"]
    edited = _post(sb, "before", file_ids=[file_id]).json()
    requests.put(
        f"{sb.url}/api/v4/posts/{edited['id']}/patch",
        headers=_auth(sb),
        json={"message": "after"},
        timeout=5,
    )
    page = requests.get(sb.url + "/", timeout=5)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    text = page.text
    assert "<strong>bold</strong>" in text
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "(edited)" in text and "after" in text
    assert f'href="/_sandbox/files/{file_id}"' in text
    assert text.index(f'id="post-{root["id"]}"') < text.index('class="post reply"')
    assert "http-equiv='refresh'" in text
    assert sb.token not in text
    assert requests.get(f"{sb.url}/_sandbox/files/{file_id}", timeout=5).content == b"\x89PNG"


def test_permalink(mattermost_server: Sandbox) -> None:
    sb = mattermost_server
    post = _post(sb, "linked").json()
    r = requests.get(f"{sb.url}/{sb.team}/pl/{post['id']}", timeout=5, allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == f"/#post-{post['id']}"
    followed = requests.get(f"{sb.url}/{sb.team}/pl/{post['id']}", timeout=5)
    assert followed.status_code == 200 and f'id="post-{post["id"]}"' in followed.text
    assert requests.get(f"{sb.url}/{sb.team}/pl/{'z' * 26}", timeout=5).status_code == 404


# ---- command line -------------------------------------------------------------------


def _start_cli(*args: str) -> tuple[subprocess.Popen[str], str, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mattermost_notify.sandbox", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C stops it as in a terminal, also when pytest runs as a background job
        # (which inherits SIGINT ignored)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout is not None
    lines = []
    while True:  # the banner, up to the Ctrl-C hint
        line = proc.stdout.readline()
        lines.append(line)
        if not line or "Ctrl-C" in line:
            break
    first = "".join(lines)
    found = re.search(r"(http://127\.0\.0\.1:\d+)", first)
    assert found, first + (proc.stderr.read() if proc.stderr else "")
    return proc, found.group(1), first


def test_cli_runs_prints_writes_config_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    config = tmp_path / "conf" / "config.toml"
    proc, url, first = _start_cli(
        "--token",
        "cli-token",
        "--team",
        "lab",
        "--user",
        "dora",
        "--channel",
        "runs",
        "--write-config",
        str(config),
    )
    try:
        me = requests.get(
            url + "/api/v4/users/me", headers={"Authorization": "Bearer cli-token"}, timeout=5
        )
        assert me.status_code == 200
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
        assert tomllib.loads(config.read_text()) == {
            "url": url,
            "token": "cli-token",
            "team_name": "lab",
        }
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    out = first + out
    assert proc.returncode == 0, err
    assert "cli-token" in out and "lab" in out and "dora" in out and "runs" in out
    assert "stopped" in out and "Traceback" not in err


def test_cli_fault_flags_and_db(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    proc, url, _ = _start_cli(
        "--db", str(db), "--fail-next", "1", "--fail-status", "502", "--fault-path", "/api/v4/users"
    )
    try:
        assert requests.get(url + "/api/v4/system/ping", timeout=5).status_code == 200
        assert requests.get(url + "/api/v4/users/me", timeout=5).status_code == 502
        assert requests.get(url + "/api/v4/users/me", timeout=5).status_code == 401
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert db.exists()


def test_cli_add_arguments_and_run_in_process(tmp_path: Path) -> None:
    import argparse

    from mattermost_notify.sandbox import cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["--port", "0", "--rate-limit", "--delay", "0.1"])
    sandbox = cli.build_sandbox(args)
    try:
        assert sandbox.rate_limiter is not None and sandbox.faults.active
    finally:
        sandbox.close()


def test_fail_fraction_with_modes_only(mattermost_server: Sandbox) -> None:
    sb = mattermost_server
    sb.faults.fail_fraction(1.0, modes=("drop_after",), path_prefix="/api/v4/posts")
    for i in range(3):
        with pytest.raises(requests.ConnectionError):
            _post(sb, f"m{i}")
    assert [p.message for p in sb.view.posts("alerts")] == ["m0", "m1", "m2"]
    assert {r.fault for r in sb.view.requests()} == {"drop_after"}
