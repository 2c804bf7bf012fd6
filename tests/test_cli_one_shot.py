"""`mattermost-notify send` from a fresh process with a warm id cache: one request, made
without importing requests (mattermost_notify.one_shot), with every guarantee of the full
client. Over real HTTP: the sandbox, and the hostile servers of tests/hostile.py (a
trickling answer, a token echoed back, a forward proxy, TLS with its own CA)."""

from __future__ import annotations

import http.server
import json
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile import (
    TOKEN,
    Hostile,
    answer,
    mattermost_like,
    non_loopback_address,
    serving,
    trickle,
)

from mattermost_notify.config import load_settings
from mattermost_notify.idcache import IdCache
from mattermost_notify.one_shot import Handover, Posted, try_send
from mattermost_notify.sandbox import Sandbox

# the CLI's main() in a fresh interpreter; the last line tells which heavy modules it loaded
CHILD = """
import json, sys
from mattermost_notify.cli import main
code = main(sys.argv[1:])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("requests", "urllib3"))
print(json.dumps({"code": code, "heavy": heavy}))
"""

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in PROXY_VARIABLES and k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(extra)
    return env


def _cli(args: list[str], env: dict[str, str] | None = None) -> tuple[dict, str, str]:
    """Run the CLI in a child (60 s at most: a hang fails the test); (last line, out, err)."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *args],
        env=env if env is not None else _clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = done.stdout.strip().splitlines()
    try:
        status = json.loads(lines[-1])
    except (IndexError, ValueError):
        status = {"code": done.returncode, "heavy": None}
    return status, done.stdout, done.stderr


def _calls(sb: Sandbox) -> list[tuple[str, str]]:
    import time

    time.sleep(0.05)  # the sandbox logs a request just after answering it
    return [(r.method, r.route or r.path) for r in sb.view.requests()]


@pytest.fixture
def warm(mattermost_env: Sandbox) -> Sandbox:
    """The sandbox, with the id cache holding alice's DM and the channel alerts."""
    for args in (["send", "warm", "--user", "alice"], ["send", "warm", "--channel", "alerts"]):
        status, _, err = _cli(args)
        assert status["code"] == 0, err
    mattermost_env.view.clear_requests()
    return mattermost_env


# ---------------------------------------------------------------- one request, no requests


@pytest.mark.parametrize(
    ("args", "shown"),
    [(["--user", "alice"], "@alice"), (["--channel", "alerts"], "~alerts")],
)
def test_warm_send_is_one_request_without_importing_requests(
    warm: Sandbox, args: list[str], shown: str
) -> None:
    status, out, err = _cli(["send", "one shot", *args])
    assert status == {"code": 0, "heavy": []}, err
    assert out.startswith(f"Sent to {shown}: {warm.url}/{warm.team}/pl/"), out
    assert _calls(warm) == [("POST", "/api/v4/posts")]
    where = {"dm_with": "alice"} if args[0] == "--user" else {"channel": "alerts"}
    [post] = [p for p in warm.view.posts(**where) if p.message == "one shot"]
    assert out.strip().splitlines()[0].endswith(post.id)


def test_the_default_user_of_the_configuration_is_sent_to_the_same_way(warm: Sandbox) -> None:
    config = _configfile(Path(os.environ["HOME"]), 'default_user = "alice"\n')
    status, out, err = _cli(["send", "to the default", "--configfile", str(config)])
    assert status == {"code": 0, "heavy": []}, err
    assert out.startswith("Sent to @alice: "), out
    assert [p.message for p in warm.view.posts(dm_with="alice")][-1] == "to the default"


@pytest.mark.parametrize(
    "extra",
    [["--no-cache"], ["--id", "m1"], ["--files", "FILE"], ["--user", "bob"]],
    ids=["no-cache", "id", "files", "not-cached"],
)
def test_what_needs_the_full_client_still_goes_through_it(
    warm: Sandbox, extra: list[str], tmp_path: Path
) -> None:
    path = tmp_path / "a.txt"
    path.write_text("a\n")
    args = [str(path) if a == "FILE" else a for a in extra]
    target = [] if "--user" in args else ["--channel", "alerts"]
    status, _, err = _cli(["send", "full", *target, *args])
    assert status["code"] == 0, err
    assert "requests" in status["heavy"]


def test_a_message_longer_than_one_post_is_split_by_the_full_client(warm: Sandbox) -> None:
    text = "line\n" * 1000  # 5000 characters: more than the smallest MaxPostSize (4000)
    status, _, err = _cli(["send", text, "--channel", "alerts"])
    assert status["code"] == 0, err
    assert "requests" in status["heavy"]
    posts = [p.message for p in warm.view.posts(channel="alerts")][-2:]
    assert "".join(posts).count("line") == 1000


# ---------------------------------------------------------------- stale entries


def test_channel_archived_and_recreated_delivers_with_one_extra_look_up(warm: Sandbox) -> None:
    old = warm.archive_channel("alerts")
    new = warm.create_channel("alerts")
    warm.view.clear_requests()
    status, _, err = _cli(["send", "after", "--channel", "alerts"])
    assert status["code"] == 0, err
    assert _calls(warm) == [
        ("POST", "/api/v4/posts"),  # the cached id: refused (archived)
        ("GET", "/api/v4/teams/name/{team_name}/channels/name/{channel_name}"),
        ("POST", "/api/v4/posts"),
    ]
    assert [p.message for p in warm.view.posts(channel_id=new)] == ["after"]
    assert old != new
    warm.view.clear_requests()
    status, _, err = _cli(["send", "again", "--channel", "alerts"])  # the new id is cached
    assert status == {"code": 0, "heavy": []}, err
    assert _calls(warm) == [("POST", "/api/v4/posts")]


def test_a_refusal_that_is_not_stale_gives_the_full_clients_error(warm: Sandbox) -> None:
    warm.remove_from_team(warm.bot_username)
    status, out, err = _cli(["send", "refused", "--channel", "alerts"])
    assert status["code"] == 1, (out, err)
    assert "alerts" in err and "Traceback" not in err
    assert warm.token not in out + err
    assert not [p for p in warm.view.posts(channel="alerts") if p.message == "refused"]


# ---------------------------------------------------------------- hostile servers


def _hostile_env(url: str, home: Path, **extra: str) -> dict[str, str]:
    """The CLI's environment for a hostile server, with alerts (team "team") cached."""
    env = _clean_env(
        MATTERMOST_NOTIFY_URL=url,
        MATTERMOST_NOTIFY_TOKEN=TOKEN,
        MATTERMOST_NOTIFY_TEAM="team",
        MATTERMOST_NOTIFY_CACHE_DIR=str(home / "cache"),
        MATTERMOST_NOTIFY_DATA_DIR=str(home / "data"),
        MATTERMOST_NOTIFY_CONFIG_DIR=str(home / "config"),
        HOME=str(home),
        **extra,
    )
    env.pop("MATTERMOST_NOTIFY_CONFIG", None)
    return env


def _warm_cache(env: dict[str, str], configfile: Path | None = None) -> None:
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        settings = load_settings(configfile=configfile)
        IdCache(settings.url, settings.token).put("channel:team/alerts", "c" * 26)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _configfile(home: Path, text: str) -> Path:
    """A configuration file (mode 0600) holding ``text``, for ``--configfile``."""
    path = home / "settings.toml"
    path.write_text(text)
    path.chmod(0o600)
    return path


def _timeouts(home: Path, connect: float, read: float) -> Path:
    return _configfile(home, f"timeout = [{connect}, {read}]\n")


def test_a_trickling_answer_is_cut_at_the_deadline_and_retried_with_the_same_pending_id(
    tmp_path: Path,
) -> None:
    stop = threading.Event()
    posts: list[dict] = []

    def script(h: http.server.BaseHTTPRequestHandler) -> None:
        if h.path.startswith("/api/v4/posts"):
            posts.append(json.loads(h.body))  # type: ignore[attr-defined]
            if len(posts) == 1:  # the first answer drips 1 byte / 0.5 s (100 s in all)
                h.send_response(201)
                h.send_header("Content-Type", "application/json")
                h.send_header("Content-Length", "200")
                h.end_headers()
                trickle(h, b'{"id": "' + b"p" * 26 + b'"}'.ljust(190), 0.5, stop)
                return
        mattermost_like(h)

    with serving(script) as srv:
        env = _hostile_env(srv.url, tmp_path)
        config = _timeouts(tmp_path, 1.0, 1.0)
        _warm_cache(env, config)
        status, out, err = _cli(
            ["send", "slow", "--channel", "alerts", "--configfile", str(config)], env
        )
        stop.set()
    # the one-shot attempt ended by its deadline (connect + read = 2 s), far before the
    # 100 s of dripping; the full client sent the same message again, with the same key
    assert status["code"] == 0, err
    assert len(posts) == 2
    assert posts[0]["pending_post_id"] == posts[1]["pending_post_id"]
    assert posts[0]["channel_id"] == "c" * 26
    assert TOKEN not in out + err


def test_the_one_shot_attempt_itself_hands_over_at_its_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stop = threading.Event()

    def script(h: http.server.BaseHTTPRequestHandler) -> None:
        h.wfile.write(b"HTTP/1.1 201 Created\r\n")  # then the headers drip for 200 s
        trickle(h, b"X-Slow: " + b"a" * 400 + b"\r\n\r\n", 0.5, stop)

    results: list[object] = []
    with serving(script) as srv:
        env = _hostile_env(srv.url, tmp_path)
        config = _timeouts(tmp_path, 1.0, 1.0)  # a byte every 0.5 s: no read timeout
        _warm_cache(env, config)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = load_settings(configfile=config)
        worker = threading.Thread(
            target=lambda: results.append(try_send(settings, None, "alerts", "m")), daemon=True
        )
        worker.start()
        worker.join(30)  # a hang detector, not a timing: the deadline is 2 s
        stop.set()
        seen = list(srv.seen)
    assert results, "try_send did not return: no deadline on the attempt"
    [handover] = results
    assert isinstance(handover, Handover)
    [post] = seen
    assert json.loads(post.body)["pending_post_id"] == handover.pending_post_id


def test_no_token_in_the_output_when_the_server_echoes_it(tmp_path: Path) -> None:
    def script(h: http.server.BaseHTTPRequestHandler) -> None:
        auth = h.headers.get("Authorization", "")
        answer(h, 401, {"id": "api.context.session_expired", "message": f"bad token {auth}"})

    with serving(script) as srv:
        env = _hostile_env(srv.url, tmp_path)
        _warm_cache(env)
        status, out, err = _cli(["send", "m", "--channel", "alerts"], env)
        assert srv.seen and srv.seen[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert status["code"] == 1, (out, err)
    assert "refused the access token" in err
    assert "Traceback" not in out + err
    pieces = {TOKEN[i : i + 8] for i in range(len(TOKEN) - 7)}
    assert not [p for p in pieces if p in out + err]


# ---------------------------------------------------------------- proxies


def _forward_proxy(h: http.server.BaseHTTPRequestHandler) -> None:
    """A forward proxy that answers for the server itself (absolute-form request lines)."""
    if h.path.startswith("http://"):
        h.path = "/" + h.path.split("/", 3)[3]
    mattermost_like(h)


@pytest.mark.parametrize("bypass", [False, True], ids=["HTTP_PROXY", "HTTP_PROXY+NO_PROXY"])
def test_proxy_variables_are_honoured_as_requests_honours_them(
    tmp_path: Path, bypass: bool
) -> None:
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address")
    with (
        Hostile(lambda h: mattermost_like(h), host="0.0.0.0") as server,
        serving(_forward_proxy) as proxy,
    ):
        url = f"http://{address}:{server.port}"
        extra = {"HTTP_PROXY": proxy.url}
        if bypass:
            extra["NO_PROXY"] = address
        env = _hostile_env(url, tmp_path, **extra)
        config = _configfile(tmp_path, "allow_insecure = true\n")
        _warm_cache(env, config)
        status, _, err = _cli(
            ["send", "m", "--channel", "alerts", "--configfile", str(config)], env
        )
        through_proxy = [s.path for s in proxy.seen]
        direct = [s.path for s in server.seen]
    assert status["code"] == 0, err
    if bypass:
        assert (through_proxy, direct) == ([], ["/api/v4/posts?set_online=false"])
    else:
        assert len(through_proxy) == 1 and through_proxy[0].endswith(
            "/api/v4/posts?set_online=false"
        )
        assert direct == []


def test_without_a_proxy_variable_a_remote_server_gets_the_one_shot_request(
    tmp_path: Path,
) -> None:
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address")
    with Hostile(lambda h: mattermost_like(h), host="0.0.0.0") as server:
        env = _hostile_env(f"http://{address}:{server.port}", tmp_path)
        config = _configfile(tmp_path, "allow_insecure = true\n")
        _warm_cache(env, config)
        status, _, err = _cli(
            ["send", "m", "--channel", "alerts", "--configfile", str(config)], env
        )
        seen = [s.path for s in server.seen]
    assert status == {"code": 0, "heavy": []}, err
    assert seen == ["/api/v4/posts?set_online=false"]


# ---------------------------------------------------------------- TLS


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[Hostile, Path]]:
    """A Mattermost-like https server on 127.0.0.1 with a certificate of its own CA."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with Hostile(lambda h: mattermost_like(h)) as server:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)
        server.server.socket = context.wrap_socket(server.server.socket, server_side=True)
        yield server, ca_file


def test_tls_is_verified_against_the_configured_ca(
    tls_server: tuple[Hostile, Path], tmp_path: Path
) -> None:
    server, ca_file = tls_server
    env = _hostile_env(f"https://127.0.0.1:{server.port}", tmp_path)
    config = _configfile(tmp_path, f'verify = "{ca_file}"\n')
    _warm_cache(env, config)
    status, _, err = _cli(["send", "m", "--channel", "alerts", "--configfile", str(config)], env)
    assert status == {"code": 0, "heavy": []}, err
    assert [s.path for s in server.seen] == ["/api/v4/posts?set_online=false"]


def test_tls_honours_requests_ca_bundle(tls_server: tuple[Hostile, Path], tmp_path: Path) -> None:
    server, ca_file = tls_server
    env = _hostile_env(
        f"https://127.0.0.1:{server.port}", tmp_path, REQUESTS_CA_BUNDLE=str(ca_file)
    )
    _warm_cache(env)
    status, _, err = _cli(["send", "m", "--channel", "alerts"], env)
    assert status == {"code": 0, "heavy": []}, err


def test_an_unverifiable_certificate_sends_nothing_and_says_so(
    tls_server: tuple[Hostile, Path], tmp_path: Path
) -> None:
    server, _ = tls_server
    env = _hostile_env(f"https://127.0.0.1:{server.port}", tmp_path)  # certifi's CAs only
    _warm_cache(env)
    status, out, err = _cli(["send", "m", "--channel", "alerts"], env)
    assert status["code"] == 1, (out, err)
    assert "certificate" in err and "Traceback" not in err
    assert server.seen == []  # no request (and no token) went out


# ---------------------------------------------------------------- plain http


def test_plain_http_to_a_remote_server_is_refused_before_connecting(tmp_path: Path) -> None:
    env = _hostile_env("http://192.0.2.1:8065", tmp_path)  # TEST-NET-1: nothing there
    _warm_cache(env)
    status, out, err = _cli(["send", "m", "--channel", "alerts"], env)
    assert status["code"] == 2, (out, err)
    assert "refusing to send the access token over plain http" in err


def test_posted_result_names_the_post(warm: Sandbox) -> None:
    settings = load_settings()
    result = try_send(settings, None, "alerts", "in process")
    assert isinstance(result, Posted)
    [post] = [p for p in warm.view.posts(channel="alerts") if p.message == "in process"]
    assert result.post_id == post.id
    assert result.permalink == f"{warm.url}/{warm.team}/pl/{post.id}"
