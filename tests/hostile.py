"""Hostile HTTP servers on 127.0.0.1 for the attack tests (and bench/report_reliability.py).

:class:`Hostile` runs a real threaded HTTP server whose every answer a test scripts:
it may trickle, send a huge or gzip-bomb body, answer 200 with ``[]``/``null``/HTML,
ask for ``Retry-After: 3600``, echo the ``Authorization`` header... It records every
request (method, path, headers) so a test can count what reached it.
"""

from __future__ import annotations

import gzip
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOKEN = "hostiletoken0123456789abcd"  # 26 characters, like a Mattermost token
BOT = {"id": "b" * 26, "username": "bot", "is_bot": True}


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class Hostile:
    """A scripted HTTP server: ``script(handler)`` writes each whole answer."""

    script: Callable[[http.server.BaseHTTPRequestHandler], None]
    host: str = "127.0.0.1"
    seen: list[Seen] = field(default_factory=list)
    bytes_sent: int = 0

    def __enter__(self) -> Hostile:
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.body = self.rfile.read(length) if length else b""
                outer.seen.append(
                    Seen(self.command, self.path, dict(self.headers.items()), self.body)
                )
                try:
                    outer.script(self)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = _any

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that hangs up on a hostile answer is the point

        self.server = Server((self.host, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def with_auth(self) -> list[Seen]:
        return [s for s in self.seen if "Authorization" in s.headers]


def answer(
    h: http.server.BaseHTTPRequestHandler,
    status: int,
    body: bytes | str | Any,
    *,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> None:
    """Write one whole answer (``body`` not bytes/str is sent as JSON)."""
    if not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    data = body.encode() if isinstance(body, str) else body
    h.send_response(status)
    h.send_header("Content-Type", content_type)
    h.send_header("Content-Length", str(len(data)))
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(data)


def mattermost_like(h: http.server.BaseHTTPRequestHandler) -> bool:
    """Answer the look-ups a send makes like a Mattermost server; False for anything else."""
    path = h.path.split("?")[0]
    if path == "/api/v4/users/me":
        answer(h, 200, BOT)
    elif path.startswith("/api/v4/teams/name/") and "/channels/name/" in path:
        answer(h, 200, {"id": "c" * 26, "name": path.rsplit("/", 1)[1]})
    elif path.startswith("/api/v4/users/username/"):
        answer(h, 200, {"id": "u" * 26, "username": path.rsplit("/", 1)[1]})
    elif path == "/api/v4/channels/direct":
        answer(h, 201, {"id": "d" * 26})
    elif path == "/api/v4/posts":
        answer(h, 201, {"id": "p" * 26, "channel_id": "c" * 26, "create_at": 1})
    elif path.startswith("/api/v4/config/client"):
        answer(h, 200, {"MaxFileSize": "1000000", "MaxPostSize": "16383"})
    elif path == "/api/v4/system/ping":
        answer(h, 200, {"status": "OK"})
    else:
        return False
    return True


def trickle(
    h: http.server.BaseHTTPRequestHandler, data: bytes, every: float, stop: threading.Event
) -> None:
    """Write ``data`` one byte every ``every`` seconds (until the client hangs up)."""
    for i in range(len(data)):
        if stop.is_set():
            return
        h.wfile.write(data[i : i + 1])
        h.wfile.flush()
        time.sleep(every)


def gzip_bomb(inflated: int, member: int = 1 << 20) -> bytes:
    """A gzip body of ``inflated`` bytes of JSON (an object, then spaces) that is about
    ``inflated / 1000`` bytes on the wire: one compressed member repeated."""
    head = gzip.compress(b'{"id": "' + b"a" * 26 + b'"' + b" " * (member - 35))
    body = gzip.compress(b" " * member)
    tail = gzip.compress(b"}")
    return head + body * (inflated // member - 1) + tail


@contextmanager
def serving(script: Callable[[http.server.BaseHTTPRequestHandler], None]) -> Iterator[Hostile]:
    with Hostile(script) as server:
        yield server


def non_loopback_address() -> str | None:
    """An address of this machine that is not loopback (None when it has none)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.123", 9))  # no packet is sent: this only picks a route
        address = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if address.startswith("127.") else address


def run_python(
    code: str, env: dict[str, str], *, timeout: float = 60, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (raises TimeoutExpired when it hangs)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def run_cli(
    args: list[str], env: dict[str, str], *, timeout: float = 60, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mattermost_notify.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )
