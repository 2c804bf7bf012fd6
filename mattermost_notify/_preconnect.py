"""Open the TCP connection to the server while the process is still importing.

A one-shot command (``mattermost-notify send``) spends most of its time importing
(http.client for :mod:`.one_shot`, requests and urllib3 for the full client); opening
the connection in a thread meanwhile saves the round trip of the TCP handshake.
:func:`start` opens it; the first connection to that host and port takes it with
:func:`take` (once); anything else connects as usual. Nothing is sent on the early
connection before it is taken (TLS happens afterwards, as for any connection), and a
connection nobody takes is closed at exit. Nothing is started when a proxy is
configured in the environment.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import threading
from urllib.parse import urlsplit

from ._threads import start_thread

__all__ = ["start", "take"]

_lock = threading.Lock()
_pending: _Early | None = None


class _Early:
    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.sock: socket.socket | None = None
        self.thread = threading.Thread(target=self._connect, name="mattermost-notify-connect")
        self.thread.daemon = True
        start_thread(self.thread)

    def _connect(self) -> None:
        try:
            sock = socket.create_connection((self.host, self.port), self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock = sock
        except OSError:
            self.sock = None  # the transport connects itself and reports the error


def _proxied() -> bool:
    return any(k.lower().endswith("_proxy") and v for k, v in os.environ.items())


def start(url: str, timeout: float) -> None:
    """Start connecting to the server of ``url`` in the background (once per process)."""
    global _pending
    parts = urlsplit(url)
    if parts.hostname is None or parts.scheme not in ("http", "https") or _proxied():
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    with _lock:
        if _pending is not None:
            return
        _pending = _Early(parts.hostname, port, timeout)
    atexit.register(_close)


def take(host: str, port: int | None) -> socket.socket | None:
    """The early connection to ``host:port`` if there is one (only the first caller)."""
    global _pending
    with _lock:
        early = _pending
        if early is None or early.host != host or early.port != port:
            return None
        _pending = None
    early.thread.join(early.timeout + 1.0)
    return early.sock


def _close() -> None:
    global _pending
    with _lock:
        early, _pending = _pending, None
    if early is not None:
        early.thread.join(early.timeout + 1.0)
        if early.sock is not None:
            with contextlib.suppress(OSError):
                early.sock.close()
