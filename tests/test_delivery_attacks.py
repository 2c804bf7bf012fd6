"""Attacks on the promises from outside: hostile servers, bad local files, real processes.

Each attack is one :class:`Attack` of :data:`ATTACKS`, run by ``test_attack`` and by
``bench/report_reliability.py`` (which prints the table). An attack returns what it
saw (one line) and raises ``AssertionError`` when the promise broke. The hostile
servers (``tests/hostile.py``) are real HTTP servers on 127.0.0.1; the processes are
real interpreters; the FIFOs and ``/dev/zero`` are real files.
"""

from __future__ import annotations

import http.server
import io
import json
import os
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from hostile import (
    BOT,
    TOKEN,
    gzip_bomb,
    mattermost_like,
    non_loopback_address,
    run_cli,
    run_python,
    serving,
    trickle,
)
from hostile import answer as reply

from mattermost_notify.client import Notify
from mattermost_notify.errors import (
    ConfigurationError,
    MattermostNotifyWarning,
    MessageError,
    NetworkError,
    RateLimitedError,
    UnexpectedResponseError,
)
from mattermost_notify.sandbox import Sandbox


@dataclass
class Ctx:
    sb: Sandbox
    tmp: Path

    def env(self, **extra: str) -> dict[str, str]:
        """Environment of a child process: the sandbox, and private dirs under tmp."""
        for name in ("home", "data", "config", "cwd"):
            (self.tmp / name).mkdir(parents=True, exist_ok=True)
        env = {
            "HOME": str(self.tmp / "home"),
            "XDG_CONFIG_HOME": str(self.tmp / "config"),
            "MATTERMOST_NOTIFY_DATA_DIR": str(self.tmp / "data"),
            "MATTERMOST_NOTIFY_URL": self.sb.url,
            "MATTERMOST_NOTIFY_TOKEN": self.sb.token,
            "MATTERMOST_NOTIFY_TEAM": self.sb.team,
            "MATTERMOST_NOTIFY_CONFIG": "",
            "PYTHONWARNINGS": "ignore",
        }
        env.update(extra)
        return env


@dataclass(frozen=True)
class Attack:
    item: str  # where the attack was reported (e.g. "18.9")
    name: str
    run: Callable[[Ctx], str]
    slow: bool = False


def hostile_client(url: str, **kw: object) -> Notify:
    kw.setdefault("timeout", (1.0, 1.0))
    kw.setdefault("retry", False)
    return Notify(TOKEN, url, "team", **kw)  # type: ignore[arg-type]


def expect(exc_type: type[BaseException], fn: Callable[[], object], *names: str) -> BaseException:
    try:
        value = fn()
    except exc_type as exc:
        text = str(exc).lower()
        for n in names:
            assert n.lower() in text, f"{n!r} not in {exc}"
        return exc
    except BaseException as exc:
        raise AssertionError(f"{type(exc).__name__} instead of {exc_type.__name__}: {exc}") from exc
    raise AssertionError(f"no {exc_type.__name__}; got {value!r}")


def no_traceback(proc: object, *secrets: str) -> str:
    out = proc.stdout + proc.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in out, out
    for s in secrets:
        assert s not in out, "a secret in the output"
    return " ".join(proc.stderr.split())[:300]  # type: ignore[attr-defined]


# ---------------------------------------------------------------- 18.9 trickling server


def _trickle_body(ctx: Ctx) -> str:
    stop = threading.Event()

    def script(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", "200")
        h.end_headers()
        trickle(h, json.dumps(BOT).encode().ljust(200), 0.5, stop)

    with serving(script) as srv:
        client = hostile_client(srv.url)  # connect 1 s + read 1 s: each attempt ends by 2 s
        t0 = time.monotonic()
        exc = expect(NetworkError, lambda: client.transport.get("/users/me"), "longer than 2")
        took = time.monotonic() - t0
        stop.set()
        client.close()
    # the server would drip for 100 s; the read timeout alone never trips
    assert took < 10, f"took {took:.1f} s"
    return f"NetworkError after {took:.1f} s (server drips 1 byte / 0.5 s for 100 s): {exc}"


def _trickle_headers(ctx: Ctx) -> str:
    stop = threading.Event()

    def script(h: http.server.BaseHTTPRequestHandler) -> None:
        h.wfile.write(b"HTTP/1.1 200 OK\r\n")
        trickle(h, b"X-Slow: " + b"a" * 400 + b"\r\n\r\n", 0.5, stop)

    with serving(script) as srv:
        client = hostile_client(srv.url)
        t0 = time.monotonic()
        expect(NetworkError, lambda: client.send("m", channel="alerts"), "127.0.0.1")
        took = time.monotonic() - t0
        stop.set()
        client.close()
    assert took < 10, f"took {took:.1f} s"
    return f"NetworkError after {took:.1f} s (headers dripping for 200 s)"


# ---------------------------------------------------------------- 18.10 Retry-After: 3600


def _retry_after_3600(ctx: Ctx) -> str:
    calls = {"n": 0}

    def script(h: http.server.BaseHTTPRequestHandler) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            reply(
                h,
                429,
                {"id": "api.rate_limit", "message": "slow down"},
                headers={"Retry-After": "3600"},
            )
        else:
            reply(h, 200, BOT)

    with serving(script) as srv:
        client = hostile_client(srv.url, retry=None)  # the default retries
        t0 = time.monotonic()
        exc = expect(RateLimitedError, lambda: client.transport.get("/users/me"))
        first = time.monotonic() - t0
        assert exc.retry_after == 3600, exc.retry_after  # type: ignore[attr-defined]
        t1 = time.monotonic()
        client.transport.get("/users/me")  # a healthy answer: no wait for the hour
        second = time.monotonic() - t1
        client.close()
    assert first < 5 and second < 5, (first, second)
    return f"RateLimitedError(retry_after=3600) in {first:.2f} s; next request {second:.2f} s"


def _retry_after_short_is_honoured(ctx: Ctx) -> str:
    stamps: list[float] = []

    def script(h: http.server.BaseHTTPRequestHandler) -> None:
        stamps.append(time.monotonic())
        if len(stamps) == 1:
            reply(h, 429, {"id": "api.rate_limit"}, headers={"Retry-After": "2"})
        else:
            reply(h, 200, BOT)

    with serving(script) as srv:
        client = hostile_client(srv.url, retry=None)
        client.transport.get("/users/me")
        client.close()
    gap = stamps[1] - stamps[0]
    assert gap >= 1.9, f"retried after {gap:.2f} s"
    return f"retried {gap:.1f} s after a 429 with Retry-After: 2"


# ---------------------------------------------------------------- 18.12 FIFOs, /dev/zero

_ENTRY_FIFO = """
import os, sys, time
import mattermost_notify as notify
t0 = time.monotonic()
notify.wakeup()
print("woke", round(time.monotonic() - t0, 2))
"""


def _fifo_in_outbox(ctx: Ctx) -> str:
    env = ctx.env()
    spool = Path(env["MATTERMOST_NOTIFY_DATA_DIR"]) / "outbox" / "spool-hostile"
    spool.mkdir(parents=True)
    os.chmod(spool.parent, 0o700)
    os.mkfifo(spool / "00000000000000000001-abcd.json", 0o600)
    proc = run_python(_ENTRY_FIFO, env, timeout=30)
    assert proc.returncode == 0 and "woke" in proc.stdout, proc.stderr
    listing = run_cli(["outbox", "list"], env, timeout=30)
    assert listing.returncode in (0, 1), listing.stderr
    no_traceback(listing)
    return f"wakeup() returned ({proc.stdout.strip()}), `outbox list` exit {listing.returncode}"


def _fifo_hook(ctx: Ctx) -> str:
    fifo = ctx.tmp / "message.msg"
    os.mkfifo(fifo)
    code = f"""
import mattermost_notify as notify
from mattermost_notify.errors import HookError
for path in ({str(fifo)!r}, "/dev/zero"):
    try:
        notify.import_hook(path)
    except HookError as exc:
        print("HookError:", exc)
"""
    proc = run_python(code, ctx.env(), timeout=30)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("HookError")]
    assert len(lines) == 2, proc.stdout
    assert "FIFO" in lines[0] and "device" in lines[1], lines
    return "; ".join(lines)


def _dev_zero_config(ctx: Ctx) -> str:
    code = """
import mattermost_notify as notify
from mattermost_notify.errors import ConfigurationError
try:
    notify.load_settings()
except ConfigurationError as exc:
    print("ConfigurationError:", exc)
"""
    env = ctx.env(MATTERMOST_NOTIFY_CONFIG="/dev/zero")
    for k in ("MATTERMOST_NOTIFY_URL", "MATTERMOST_NOTIFY_TOKEN", "MATTERMOST_NOTIFY_TEAM"):
        env.pop(k)
    proc = run_python(code, {**env, "MATTERMOST_NOTIFY_URL": ""}, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "ConfigurationError" in proc.stdout and "/dev/zero" in proc.stdout, proc.stdout
    return proc.stdout.strip()


# ---------------------------------------------------------------- 18.13 huge bodies


def _huge_body(ctx: Ctx) -> str:
    sent = {"bytes": 0}
    total = 1 << 30

    def script(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Connection", "close")
        h.end_headers()
        h.close_connection = True
        block = b" " * (1 << 20)
        h.wfile.write(b'{"id": "' + b"a" * 26 + b'"')
        for _ in range(total // len(block)):
            h.wfile.write(block)
            sent["bytes"] += len(block)
        h.wfile.write(b"}")

    with serving(script) as srv:
        client = hostile_client(srv.url, timeout=(2.0, 10.0))
        exc = expect(
            UnexpectedResponseError, lambda: client.transport.get("/users/me"), "more than"
        )
        client.close()
    assert sent["bytes"] < total, "the client read the whole body"
    return f"1 GiB body: {exc}"


def _gzip_bomb(ctx: Ctx) -> str:
    bomb = gzip_bomb(256 << 20)

    def script(h: http.server.BaseHTTPRequestHandler) -> None:
        reply(h, 200, bomb, headers={"Content-Encoding": "gzip"})

    with serving(script) as srv:
        client = hostile_client(srv.url, timeout=(2.0, 10.0))
        exc = expect(
            UnexpectedResponseError, lambda: client.transport.get("/users/me"), "more than"
        )
        client.close()
    return f"{len(bomb)} bytes of gzip inflating to 256 MiB: {type(exc).__name__}"


# ---------------------------------------------------------------- 18.15 200 with the wrong shape


def _wrong_shapes(ctx: Ctx) -> str:
    seen = []
    for body, ctype in (
        ("[]", "application/json"),
        ("{}", "application/json"),
        ("null", "application/json"),
        ('"ok"', "application/json"),
        ("<html>Access denied by the firewall</html>", "text/html"),
    ):

        def script(
            h: http.server.BaseHTTPRequestHandler, body: str = body, ctype: str = ctype
        ) -> None:
            reply(h, 200, body, content_type=ctype)

        with serving(script) as srv:
            for target in ({"channel": "alerts"}, {"user": "alice"}):
                client = hostile_client(srv.url)
                expect(UnexpectedResponseError, lambda: client.send("m", **target), srv.url)  # noqa: B023
                client.close()
            seen.append(body[:6])
    return f"UnexpectedResponseError for 200 {', '.join(seen)} (channel and DM)"


def _wrong_shapes_cli(ctx: Ctx) -> str:
    def script(h: http.server.BaseHTTPRequestHandler) -> None:
        reply(h, 200, "[]")

    with serving(script) as srv:
        env = ctx.env(MATTERMOST_NOTIFY_URL=srv.url, MATTERMOST_NOTIFY_TOKEN=TOKEN)
        test = run_cli(["test"], env)
        send = run_cli(["send", "hello", "--channel", "alerts"], env)
    assert test.returncode == 1 and send.returncode == 1, (test.stderr, send.stderr)
    no_traceback(test, TOKEN)
    return f"`test` exit 1, `send` exit 1: {no_traceback(send, TOKEN)}"


def _dot_segments(ctx: Ctx) -> str:
    client = Notify(ctx.sb.token, ctx.sb.url, ctx.sb.team)
    before = len(ctx.sb.view.requests())
    for name in ("..", "."):
        expect(MessageError, lambda: client.send("m", user=name), "user name")  # noqa: B023
        expect(MessageError, lambda: client.send("m", channel=name), "channel name")  # noqa: B023
    expect(ConfigurationError, lambda: Notify(ctx.sb.token, ctx.sb.url, ".."), "team_name")
    assert len(ctx.sb.view.requests()) == before, "a request was sent"
    client.close()
    return "MessageError for user/channel '..' and '.', ConfigurationError for team '..'"


# ---------------------------------------------------------------- 18.17 timeout inf / 1e30


def _infinite_timeout(ctx: Ctx) -> str:
    import mattermost_notify as mn

    out = []
    for value in ("inf", "1e30", "nan"):
        path = ctx.tmp / f"timeout-{value}.toml"
        path.write_text(f'url = "{ctx.sb.url}"\ntoken = "{ctx.sb.token}"\ntimeout = {value}\n')
        os.chmod(path, 0o600)
        expect(ConfigurationError, lambda: mn.load_settings(configfile=path), "timeout", path.name)  # noqa: B023
        out.append(value)
    proc = run_cli(
        ["send", "hi", "--channel", "alerts"],
        ctx.env(
            MATTERMOST_NOTIFY_CONFIG=str(path), MATTERMOST_NOTIFY_URL="", MATTERMOST_NOTIFY_TOKEN=""
        ),
    )
    assert proc.returncode == 2, proc.stderr
    line = no_traceback(proc, ctx.sb.token)
    assert "timeout" in line and path.name in line, line
    return f"ConfigurationError for timeout = {', '.join(out)}; CLI: {line}"


# ---------------------------------------------------------------- 18.18/19/22 secrets


def _token_not_latin1(ctx: Ctx) -> str:
    lines = []
    for bad in ("\u2026", "\u20ac", "\u201d", "\u00e9"):
        token = ctx.sb.token[:10] + bad + ctx.sb.token[10:]
        exc = expect(
            ConfigurationError,
            lambda: Notify(token, ctx.sb.url, ctx.sb.team),  # noqa: B023
            "position 11",
        )
        assert ctx.sb.token[:8] not in str(exc) and ctx.sb.token[-8:] not in str(exc)
        lines.append(bad)
    proc = run_cli(
        ["send", "hi", "--channel", "alerts"],
        ctx.env(MATTERMOST_NOTIFY_TOKEN=ctx.sb.token[:10] + "\u2026" + ctx.sb.token[10:]),
    )
    assert proc.returncode == 2, proc.stderr
    line = no_traceback(proc, ctx.sb.token[:10], ctx.sb.token[10:])
    return f"refused at construction ({', '.join(lines)}); CLI: {line}"


def _url_and_token_swapped(ctx: Ctx) -> str:
    token = ctx.sb.token
    # the URL setting holds the token
    exc = expect(ConfigurationError, lambda: Notify("x" * 26, token, ctx.sb.team), "url")
    assert token not in str(exc)
    proc = run_cli(
        ["send", "hi", "--channel", "alerts"],
        ctx.env(MATTERMOST_NOTIFY_URL=token, MATTERMOST_NOTIFY_TOKEN=token),
    )
    assert proc.returncode == 2, proc.stderr
    return f"value not shown: {no_traceback(proc, token)}"


def _partial_and_encoded_token(ctx: Ctx) -> str:
    token = "abc+def/ghi=jkl%mno&pqr?stu"  # characters that URL-encoding changes

    def script(h: http.server.BaseHTTPRequestHandler) -> None:
        auth = h.headers.get("Authorization", "")
        if h.path.startswith("/api/v4/users/me"):
            # a non-JSON error body that is cut at 200 characters inside the token
            reply(h, 400, "x" * 180 + auth + " trailing", content_type="text/plain")
        else:
            got = auth.removeprefix("Bearer ")
            reply(h, 404, {"id": "x", "message": f"no user for token {quote(got, safe='')}"})

    texts = []
    with serving(script) as srv:
        client = Notify(token, srv.url, "team", retry=False)
        texts.append(repr(expect(Exception, lambda: client.transport.get("/users/me"))))
        texts.append(repr(expect(Exception, lambda: client.transport.get("/users/username/al"))))
        client.close()
    forms = {token, quote(token, safe="")}
    leaks = [t for t in texts for f in forms for i in range(len(f) - 7) if f[i : i + 8] in t]
    assert not leaks, leaks
    return "no 8-character piece of the token, raw or URL-encoded, in the errors"


# ---------------------------------------------------------------- 18.20/21 plain http


def _proxy_for_loopback(ctx: Ctx) -> str:
    def script(h: http.server.BaseHTTPRequestHandler) -> None:
        reply(h, 502, "proxy", content_type="text/plain")

    with serving(script) as proxy:
        saved = {
            k: os.environ.get(k)
            for k in ("http_proxy", "HTTP_PROXY", "ALL_PROXY", "no_proxy", "NO_PROXY")
        }
        try:
            for k in saved:
                os.environ.pop(k, None)
            os.environ["http_proxy"] = proxy.url
            os.environ["ALL_PROXY"] = proxy.url
            for url in (ctx.sb.url, ctx.sb.url.replace("127.0.0.1", "localhost")):
                client = Notify(ctx.sb.token, url, ctx.sb.team)
                client.send("through no proxy", channel="alerts")
                client.close()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    assert not proxy.seen, [s.path for s in proxy.seen]
    posts = [p for p in ctx.sb.view.posts(channel="alerts") if p.message == "through no proxy"]
    assert len(posts) == 2
    return "http_proxy set: 2 sends to 127.0.0.1/localhost went direct, the proxy saw 0 requests"


def _localhost_name_to_remote_address(ctx: Ctx) -> str:
    import socket

    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address")
    from hostile import Hostile

    with Hostile(lambda h: mattermost_like(h), host="0.0.0.0") as srv:
        real = socket.getaddrinfo

        def resolver(host: object, *args: object, **kw: object) -> object:
            # what a resolver may answer for a *.localhost name
            return real(address if host == "evil.localhost" else host, *args, **kw)  # type: ignore[arg-type]

        socket.getaddrinfo = resolver  # type: ignore[assignment]
        try:
            client = Notify(TOKEN, f"http://evil.localhost:{srv.port}", "team", retry=False)
            exc = expect(
                ConfigurationError, lambda: client.send("m", channel="alerts"), address, "loopback"
            )
            client.close()
        finally:
            socket.getaddrinfo = real
    assert not srv.with_auth(), "the token reached the server"
    return f"evil.localhost -> {address}: {type(exc).__name__}, 0 requests with the token"


# ---------------------------------------------------------------- 18.8 send --save-hook


def _save_hook_directory(ctx: Ctx) -> str:
    before = len(ctx.sb.view.posts(channel="alerts"))
    out = []
    for target in (ctx.tmp, ctx.tmp / "no-such-dir" / "x.msg"):
        proc = run_cli(
            ["send", "once", "--channel", "alerts", "--save-hook", str(target)], ctx.env()
        )
        assert proc.returncode == 2, proc.stderr
        out.append(no_traceback(proc, ctx.sb.token))
    assert len(ctx.sb.view.posts(channel="alerts")) == before, "posted before failing"
    return f"exit 2, nothing posted: {out[0]}"


# ---------------------------------------------------------------- 18.7 forked workers

_FORK = """
import multiprocessing as mp, os, sys
from mattermost_notify.client import Notify

client = Notify(os.environ["MATTERMOST_NOTIFY_TOKEN"], os.environ["MATTERMOST_NOTIFY_URL"],
                os.environ["MATTERMOST_NOTIFY_TEAM"])
client.send("fork warm-up", channel="alerts")  # the parent now holds a kept-alive connection

def work(i):
    for k in range(10):
        client.send(f"fork {i}-{k}", channel="alerts")
    return 10

with mp.get_context("fork").Pool(4) as pool:
    result = pool.map_async(work, range(4))
    for k in range(10):
        client.send(f"fork P-{k}", channel="alerts")
    print("sent", sum(result.get(120)) + 10)
"""


def _forked_workers(ctx: Ctx) -> str:
    proc = run_python(_FORK, ctx.env(), timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    messages = [p.message for p in ctx.sb.view.posts(channel="alerts")]
    wanted = [f"fork {i}-{k}" for i in range(4) for k in range(10)]
    wanted += [f"fork P-{k}" for k in range(10)]
    lost = [m for m in wanted if m not in messages]
    doubled = [m for m in wanted if messages.count(m) > 1]
    assert not lost and not doubled, (lost, doubled)
    return f"parent + 4 forked workers sharing one client: {len(wanted)} sent, 0 lost, 0 doubled"


# ---------------------------------------------------------------- 18.1 an update left behind

_LEAVE_UPDATE = """
import mattermost_notify as notify
notify.wakeup(always_send_to_channel="alerts")
# left for the next process (no detached sender at exit: it could deliver it meanwhile)
notify.get_client().sender.hand_over_at_exit = False
notify.notify("epoch 1/3", id="training")          # posted: the server is healthy
open("posted", "w").close()
import time
while not __import__("os").path.exists("go"):     # the test makes every edit fail now
    time.sleep(0.05)
notify.notify("epoch 3/3", id="training", block=False)
notify.flush(timeout=1)
"""

_DELIVER_LEFT = """
import mattermost_notify as notify
notify.wakeup()
print("flushed", notify.flush(timeout=20))
"""


def _update_left_in_the_outbox(ctx: Ctx) -> str:
    env = ctx.env()
    cwd = ctx.tmp / "cwd"
    import subprocess
    import sys

    a = subprocess.Popen(
        [sys.executable, "-c", _LEAVE_UPDATE],
        env={**os.environ, **env},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (cwd / "posted").exists() and a.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        ctx.sb.faults.fail_fraction(
            1.0, statuses=(503,), path_prefix="/api/v4/posts/", method="PUT"
        )
        (cwd / "go").touch()
        _, err = a.communicate(timeout=60)
    finally:
        if a.poll() is None:
            a.kill()
        ctx.sb.faults.clear()
    assert a.returncode == 0, err[-2000:]
    [post] = [p for p in ctx.sb.view.posts(channel="alerts") if p.message.startswith("epoch")]
    assert post.message == "epoch 1/3", "the edit was not refused"
    b = run_python(_DELIVER_LEFT, env, cwd=cwd, timeout=60)
    assert b.returncode == 0, b.stderr[-2000:]
    post = ctx.sb.view.post(post.id)
    assert post.message == "epoch 3/3", f"still {post.message!r}: {b.stderr[-500:]}"
    return "process A's last edit failed (503) at exit; process B applied it from the outbox"


# ---------------------------------------------------------------- 12.6 / 18.2 permanent failures


def _permanent_failure(status: int, max_tries: int) -> Callable[[Ctx], str]:
    def run(ctx: Ctx) -> str:
        data = ctx.tmp / "plot.txt"
        data.write_text("data")
        client = Notify(ctx.sb.token, ctx.sb.url, ctx.sb.team)
        client.send("warm", user="alice")
        before = len(ctx.sb.view.requests())
        ctx.sb.faults.fail_fraction(1.0, statuses=(status,), path_prefix="/api/v4/files")
        caught = warnings.catch_warnings(record=True)
        seen = caught.__enter__()
        warnings.simplefilter("always", MattermostNotifyWarning)
        try:
            stuck = client.sender.post("with a file", channel="alerts", files=[data])
            t0 = time.monotonic()
            dm = client.sender.post("the DM behind it", user="alice")
            got = dm.result(timeout=30)
            took = time.monotonic() - t0
            stuck.result(timeout=30)
        finally:
            ctx.sb.faults.clear()
            caught.__exit__(None, None, None)
        reported = [w for w in seen if issubclass(w.category, MattermostNotifyWarning)]
        assert len(reported) == 1, [str(w.message) for w in reported]
        uploads = [r for r in ctx.sb.view.requests()[before:] if r.path.startswith("/api/v4/files")]
        client.close()
        assert got is not None, "the DM never arrived"
        assert took < 10, f"the DM took {took:.1f} s"
        assert stuck.exception(timeout=0) is not None
        assert len(uploads) <= max_tries, f"{len(uploads)} uploads"
        return f"uploads answered {status}: tried {len(uploads)}x, DM delivered after {took:.1f} s"

    return run


# ---------------------------------------------------------------- 18.16 lone surrogates


def _lone_surrogates(ctx: Ctx) -> str:
    from mattermost_notify import tqdm
    from mattermost_notify.progress_bar import flush as flush_bars

    odd = os.fsdecode(b"r\xe9sultat.csv")  # a file name that is not UTF-8: 'r\udce9sultat.csv'
    shown = "r\ufffdsultat.csv"
    client = Notify(ctx.sb.token, ctx.sb.url, ctx.sb.team)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        client.send(f"blocking {odd}", channel="alerts", id="blocking")
        client.send_update(f"blocking edited {odd}", id="blocking")
        t1 = client.sender.post(f"background {odd}", channel="alerts", id="bg")
        t2 = client.sender.update("bg", f"background edited {odd}")
        t3 = client.sender.post(f"reply {odd}", reply_to="bg")
        bar = tqdm(range(3), desc=f"bar {odd}", channel="alerts", client=client, file=io.StringIO())
        for _ in bar:
            pass
        flush_bars(30)
        assert client.sender.flush(30)
    problems = [str(w.message) for w in seen if issubclass(w.category, MattermostNotifyWarning)]
    assert not problems, problems
    for t in (t1, t2, t3):
        assert t.exception(timeout=0) is None, t.exception(timeout=0)
    messages = [p.message for p in ctx.sb.view.posts(channel="alerts")]
    for want in (f"blocking edited {shown}", f"background edited {shown}", f"reply {shown}"):
        assert want in messages, (want, messages)
    assert any(f"bar {shown}" in m and "3/3" in m for m in messages), messages
    client.close()
    return "blocking, background, reply and progress bar all posted U+FFFD, no exception"


# ---------------------------------------------------------------- 18.6 threads racing on one id


def _threads_on_one_id(ctx: Ctx) -> str:
    import mattermost_notify as notify
    import mattermost_notify.api as api

    out = []
    for block in (True, False):
        api._reset()
        notify.wakeup(always_send_to_channel="alerts")
        mid = f"race-{block}"
        start = threading.Barrier(8)
        errors: list[BaseException] = []

        def run(
            i: int,
            mid: str = mid,
            block: bool = block,
            start: threading.Barrier = start,
            errors: list[BaseException] = errors,
        ) -> None:
            start.wait()
            try:
                notify.notify(f"{mid} {i}", id=mid, block=block)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert notify.flush(30)
        assert not errors, errors
        posts = [p for p in ctx.sb.view.posts(channel="alerts") if p.message.startswith(mid)]
        assert len(posts) == 1, [p.message for p in posts]
        out.append(f"{'block' if block else 'block=False'}: 1 post")
    api._reset()
    return "8 threads notify(id=same) at once: " + ", ".join(out)


# ---------------------------------------------------------------- 18.14 edit of a queued post


def _blocking_edit_of_a_queued_post(ctx: Ctx) -> str:
    import mattermost_notify as notify
    import mattermost_notify.api as api

    api._reset()
    notify.wakeup(always_send_to_channel="alerts")
    client = notify.get_client()
    client.send("warm", channel="alerts")
    saved = api._QUEUED_POST_WAIT
    api._QUEUED_POST_WAIT = 2.0  # (30 s by default)
    ctx.sb.faults.drop_before(1_000_000)
    try:
        notify.notify("queued 1", id="queued", block=False)
        exc = expect(NetworkError, lambda: notify.notify("queued 2", id="queued"), "queued")
    finally:
        api._QUEUED_POST_WAIT = saved
        ctx.sb.faults.clear()
    assert notify.flush(30)
    [post] = [p for p in ctx.sb.view.posts(channel="alerts") if p.message.startswith("queued")]
    assert post.message == "queued 2", post.message
    api._reset()
    return f"NetworkError ({exc}); the edit was applied once the server was back"


# ---------------------------------------------------------------- 18.4 a late atexit handler

_LATE_ATEXIT = """
import atexit
import mattermost_notify as notify

def late():
    notify.notify("sent from a late atexit handler", block=False)

atexit.register(late)  # before the library's own handler: it runs after it
notify.wakeup(always_send_to_channel="alerts")
notify.notify("sent while running", block=False)
"""


def _late_atexit_handler(ctx: Ctx) -> str:
    env = ctx.env()
    proc = run_python(_LATE_ATEXIT, env, cwd=ctx.tmp / "cwd", timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    messages = [p.message for p in ctx.sb.view.posts(channel="alerts")]
    assert "sent while running" in messages, messages
    assert "sent from a late atexit handler" in messages, "left in the outbox for a later process"
    return "a message queued by an atexit handler that runs after the library's was delivered"


# ---------------------------------------------------------------- 18.5 outbox flush counts

_LEAVE_THREE = """
import sys
import mattermost_notify as notify
notify.wakeup(always_send_to_user="alice")
# leave them in the outbox for `outbox flush` (no detached sender at exit)
notify.get_client().sender.hand_over_at_exit = False
for i in range(int(sys.argv[1]) if len(sys.argv) > 1 else 3):
    notify.notify(f"{sys.argv[2] if len(sys.argv) > 2 else 'left behind'} {i}", block=False)
notify.flush(timeout=0.5)
"""


def _outbox_flush_counts(ctx: Ctx) -> str:
    env = ctx.env()
    ctx.sb.faults.drop_before(1_000_000)
    try:
        proc = run_python(_LEAVE_THREE, env, cwd=ctx.tmp / "cwd", timeout=60)
    finally:
        ctx.sb.faults.clear()
    assert proc.returncode == 0, proc.stderr[-2000:]
    # every post now stalls past the flush's time: the worker is inside a request
    ctx.sb.faults.delay(9.0, path_prefix="/api/v4/posts", method="POST")
    try:
        flush = run_cli(["outbox", "flush", "--timeout", "1"], env, timeout=60)
    finally:
        ctx.sb.faults.clear()
    out = " ".join(flush.stdout.split())
    assert "failed" not in out, out
    assert flush.returncode == 1, out
    assert "3 left" in out or "2 left" in out, out
    return f"`outbox flush` while the server stalls: exit 1, {out!r}"


# ---------------------------------------------------------------- 18.3 a second wakeup()


def _second_wakeup(ctx: Ctx) -> str:
    import mattermost_notify as notify
    import mattermost_notify.api as api

    api._reset()
    notify.wakeup(always_send_to_channel="alerts")
    notify.get_client().send("warm", channel="alerts")
    ctx.sb.faults.delay(1.5, path_prefix="/api/v4/posts", method="POST")
    try:
        for i in range(6):
            notify.notify(f"wake {i}", block=False)
        notify.wakeup(always_send_to_channel="alerts")  # the set-up cell, run again
        notify.notify("wake 6", block=False)
        flushed = notify.flush(60)
    finally:
        ctx.sb.faults.clear()
    messages = [
        p.message for p in ctx.sb.view.posts(channel="alerts") if p.message.startswith("wake")
    ]
    api._reset()
    assert flushed, "flush() timed out"
    assert messages == [f"wake {i}" for i in range(7)], messages
    return "7 messages around a second wakeup(): all delivered, in order, flush() True"


# ---------------------------------------------------------------- 18.11 SIGTERM handler sends

_SIGTERM = """
import os, signal, sys
import mattermost_notify as notify

notify.wakeup(always_send_to_channel="alerts")

def on_term(signum, frame):
    notify.notify("stopped by SIGTERM", block=False)
    sys.exit(0)

signal.signal(signal.SIGTERM, on_term)
notify.notify("tick 0", block=False)  # (the first send imports the sender: not in a handler)
open("ready", "w").close()
i = 1
while True:  # the main thread is almost always inside the sender's enqueue
    notify.notify(f"tick {i}", block=False)
    i += 1
"""


def _sigterm_handler_sends(ctx: Ctx) -> str:
    import signal
    import subprocess
    import sys

    env = ctx.env()
    cwd = ctx.tmp / "cwd"
    ctx.sb.faults.delay(0.2, path_prefix="/api/v4/posts", method="POST")  # so the queue grows
    exits = []
    try:
        for _round in range(3):
            (cwd / "ready").unlink(missing_ok=True)
            proc = subprocess.Popen(
                [sys.executable, "-c", _SIGTERM],
                env={**os.environ, **env},
                cwd=cwd,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            deadline = time.monotonic() + 30
            while not (cwd / "ready").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise AssertionError("the process hung after SIGTERM (deadlock)") from None
            exits.append(proc.returncode)
    finally:
        ctx.sb.faults.clear()
    assert exits == [0, 0, 0], exits
    return "SIGTERM while the main thread was queueing, handler sends: exit 0 (3 runs)"


# A signal handler runs on the thread it interrupts, where the interpreter checks for
# one: after a call returns, at a function's start and at a loop's backward jump. An
# opcode trace runs on the interrupted thread just as a handler does: here the handler
# sends at each such point of a send in turn, in the library and in the threading
# module under it, once returning and once raising after its send (Ctrl-C, sys.exit in a
# SIGTERM handler). A lock the handler's path takes that the interrupted send holds shows
# as a hang; a lock the raise leaves held (a `with condition:` interrupted inside
# Condition.__enter__) shows when another thread must take it; a half-done change the
# handler broke shows as an exception, or as a queue that does not drain.
_SEND_AT_EVERY_BYTECODE = """
import dis, faulthandler, os, sys, threading
import mattermost_notify as notify

faulthandler.dump_traceback_later(480, exit=True)  # a hang shows its stacks
BLOCK = {block}

notify.wakeup(always_send_to_channel="alerts")
notify.notify("warm up", block=False)
state = {"count": 0, "at": -1, "raise": False, "where": ""}

class Interrupt(BaseException):
    pass

def handler_sends():
    notify.notify("from a signal handler", block=BLOCK)
    notify.notify("from a signal handler", id="job", block=BLOCK)

CALLS = {"CALL", "CALL_KW", "CALL_FUNCTION_EX"}

def on_call(frame, event, arg):
    name = frame.f_code.co_filename
    if "mattermost_notify" not in name and not name.endswith("threading.py"):
        return None
    frame.f_trace_opcodes = True
    previous = [None]

    def on_opcode(frame, event, arg):
        if event == "opcode":
            op = dis.opname[frame.f_code.co_code[frame.f_lasti]]
            checks = op in ("RESUME", "JUMP_BACKWARD") or previous[0] in CALLS
            previous[0] = op
            if checks:
                state["count"] += 1
                if state["count"] == state["at"]:
                    code = frame.f_code
                    state["where"] = f"{code.co_filename}:{frame.f_lineno} ({code.co_name})"
                    handler_sends()
                    if state["raise"]:
                        raise Interrupt
        return on_opcode

    return on_opcode

def probe():
    notify.get_client().sender.pending()
    if BLOCK:
        notify.notify("probe")

def another_thread_can_send():
    done = []
    probe_thread = threading.Thread(target=lambda: done.append(probe()), daemon=True)
    probe_thread.start()
    probe_thread.join(30)
    return bool(done)

def interrupted_send(at, then_raise):
    state["count"], state["at"], state["raise"] = 0, at, then_raise
    sys.settrace(on_call)
    try:
        notify.notify(f"send {at}", block=BLOCK)
        notify.notify(f"send {at}", id="job", block=BLOCK)
    except Interrupt:
        pass
    finally:
        sys.settrace(None)
    if not another_thread_can_send():
        print(f"a lock stayed held after an interrupt at {state['where']}", file=sys.stderr)
        os._exit(1)  # (exiting normally would hang on that lock)
    return state["count"]

total = interrupted_send(-1, False)
for at in range(1, total + 1):
    interrupted_send(at, False)
    interrupted_send(at, True)
if not notify.flush(timeout=120):
    print("the queue did not drain after the interrupted sends", file=sys.stderr)
    os._exit(1)
print(total)
"""


@pytest.mark.slow
@pytest.mark.timeout(600)  # block=True: about 550 points, 2 interrupts each, 2-3 min loaded
@pytest.mark.parametrize("block", [False, True], ids=["block=False", "block=True"])
def test_a_send_from_a_signal_handler_at_any_point_of_a_send_returns(
    block: bool, mattermost_env: Sandbox, tmp_path: Path
) -> None:
    import subprocess
    import sys

    ctx = Ctx(mattermost_env, tmp_path)
    env = ctx.env()
    try:
        done = subprocess.run(
            [sys.executable, "-c", _SEND_AT_EVERY_BYTECODE.replace("{block}", str(block))],
            env={**os.environ, **env},
            cwd=ctx.tmp / "cwd",
            capture_output=True,
            text=True,
            timeout=540,
        )
    except subprocess.TimeoutExpired:
        raise AssertionError("a send from a signal handler hung (deadlock)") from None
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout) > 50  # the trace did reach the library's bytecodes


def _firewall_page_for_one_message(ctx: Ctx) -> str:
    def script(h: http.server.BaseHTTPRequestHandler) -> None:
        if h.path.startswith("/api/v4/posts") and b"blocked by the firewall" in h.body:  # type: ignore[attr-defined]
            reply(h, 200, "<html>Request blocked</html>", content_type="text/html")
        elif not mattermost_like(h):
            reply(h, 404, {"id": "api.context.404.app_error"})

    with serving(script) as srv, warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", MattermostNotifyWarning)
        client = hostile_client(srv.url, retry=None)
        stuck = client.sender.post("blocked by the firewall", channel="alerts")
        behind = client.sender.post("the message behind it", user="alice")
        ok = behind.result(timeout=30)
        stuck.exception(timeout=30)
        client.close()
    tries = [s for s in srv.seen if b"blocked by the firewall" in s.body]
    reported = [w for w in seen if issubclass(w.category, MattermostNotifyWarning)]
    assert ok is not None, "the message behind it never went out"
    assert isinstance(stuck.exception(timeout=0), UnexpectedResponseError)
    assert len(tries) <= 4 and len(reported) == 1, (len(tries), len(reported))
    return f"200 HTML for one message: tried {len(tries)}x, reported once, the next one delivered"


def _two_concurrent_flushes(ctx: Ctx) -> str:
    import subprocess
    import sys

    env = ctx.env()
    ctx.sb.faults.drop_before(1_000_000)
    try:
        subprocess.run(
            [sys.executable, "-c", _LEAVE_THREE, "40", "left for two flushes"],
            env={**os.environ, **env},
            cwd=ctx.tmp / "cwd",
            capture_output=True,
            timeout=60,
            check=True,
        )
    finally:
        ctx.sb.faults.clear()
    cmd = [sys.executable, "-m", "mattermost_notify.cli", "outbox", "flush"]
    ctx.sb.faults.delay(0.1, path_prefix="/api/v4/posts", method="POST")  # so they overlap
    procs = [
        subprocess.Popen(
            cmd,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        outs = [" ".join(p.communicate(timeout=120)[0].split()) for p in procs]
    finally:
        ctx.sb.faults.clear()
    sent = 0
    for out in outs:
        assert "failed" not in out, outs
        sent += int(out.split("; ")[1].split(" sent")[0])
    posts = [
        p.message
        for p in ctx.sb.view.posts(dm_with="alice")
        if p.message.startswith("left for two flushes")
    ]
    assert len(posts) == 40 == len(set(posts)), len(posts)
    assert sent == 40, outs
    return f"two `outbox flush` at once over 40 messages: {outs[0]!r} / {outs[1]!r}"


ATTACKS: list[Attack] = [
    Attack(
        "18.1", "an update left in the outbox by an exiting process", _update_left_in_the_outbox
    ),
    Attack("12.6", "uploads answered 501 forever", _permanent_failure(501, 4)),
    Attack("18.2", "uploads answered 500 forever", _permanent_failure(500, 4)),
    Attack("18.2", "200 HTML page for one message, forever", _firewall_page_for_one_message),
    Attack("18.3", "a second wakeup() while messages are queued", _second_wakeup, slow=True),
    Attack("18.4", "a message from a late atexit handler", _late_atexit_handler),
    Attack(
        "18.5", "outbox flush while the worker is inside a request", _outbox_flush_counts, slow=True
    ),
    Attack("18.5", "two outbox flushes at once", _two_concurrent_flushes, slow=True),
    Attack("18.6", "8 threads notify(id=same) at once", _threads_on_one_id),
    Attack("18.7", "forked workers share the parent's client", _forked_workers),
    Attack("18.8", "send --save-hook DIRECTORY posts nothing", _save_hook_directory),
    Attack("18.9", "server trickles the body 1 byte / 0.5 s", _trickle_body),
    Attack("18.9", "server trickles the headers", _trickle_headers),
    Attack("18.10", "429 with Retry-After: 3600", _retry_after_3600),
    Attack("18.10", "429 with Retry-After: 2 is honoured", _retry_after_short_is_honoured),
    Attack("18.11", "a SIGTERM handler that sends", _sigterm_handler_sends, slow=True),
    Attack("18.12", "a FIFO named like an outbox entry", _fifo_in_outbox),
    Attack("18.12", "import_hook(FIFO) and import_hook('/dev/zero')", _fifo_hook),
    Attack("18.12", "MATTERMOST_NOTIFY_CONFIG=/dev/zero", _dev_zero_config),
    Attack("18.13", "200 with a 1 GiB body", _huge_body),
    Attack("18.13", "200 with a gzip bomb", _gzip_bomb),
    Attack("18.14", "blocking edit while its post is queued", _blocking_edit_of_a_queued_post),
    Attack("18.15", "200 with [], {}, null, a string, HTML", _wrong_shapes),
    Attack("18.15", "CLI test/send against 200 []", _wrong_shapes_cli),
    Attack("18.15", "user, channel or team named '..'", _dot_segments),
    Attack("18.16", "text with a lone surrogate on every path", _lone_surrogates),
    Attack("18.17", "timeout = inf, 1e30, nan in the config", _infinite_timeout),
    Attack("18.18", "a token with a non-ASCII character", _token_not_latin1),
    Attack("18.19", "URL and token swapped", _url_and_token_swapped),
    Attack("18.20", "http_proxy set, server on loopback", _proxy_for_loopback),
    Attack("18.21", "*.localhost resolving to another address", _localhost_name_to_remote_address),
    Attack("18.22", "token cut at 200 characters or URL-encoded", _partial_and_encoded_token),
]


@pytest.mark.parametrize(
    "attack",
    [pytest.param(a, marks=[pytest.mark.slow] if a.slow else []) for a in ATTACKS],
    ids=[f"{a.item} {a.name}" for a in ATTACKS],
)
def test_attack(attack: Attack, mattermost_env: Sandbox, tmp_path: Path) -> None:
    attack.run(Ctx(mattermost_env, tmp_path))
