"""What every request to the server obeys, whichever HTTP library sends it.

Shared by :mod:`.transport` (requests) and :mod:`.one_shot` (the CLI's send without
requests): the plain-http rule, the loopback checks, the total deadline of an attempt
(a watchdog thread shuts the socket down however slowly the server trickles), the
server's version header and the limits of a post creation. Imports only the standard
library and :mod:`.errors`.
"""

from __future__ import annotations

import contextlib
import heapq
import ipaddress
import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from ._threads import start_thread
from .errors import ConfigurationError

logger = logging.getLogger("mattermost_notify")

POST_READ_TIMEOUT = 10.0
"""Upper bound of the read timeout of a post creation (see :mod:`.transport`)."""
DEDUP_WINDOW = 25.0
"""Retries of one post creation start within this many seconds (server keeps 30 s)."""
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
"""Largest answer read (after decoding gzip); Mattermost's answers are a few KiB."""


def is_loopback(host: str | None) -> bool:
    """True for ``localhost``, ``*.localhost``, 127.0.0.0/8 and ::1."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_plain_http(url: str, allow_insecure: bool, credential: str) -> bool:
    """Whether ``url`` names a loopback host; plain http to another host raises
    :class:`ConfigurationError` unless ``allow_insecure`` (``credential`` would travel in clear)."""
    parts = urlsplit(url)
    loopback = is_loopback(parts.hostname)
    if parts.scheme == "http" and not loopback and not allow_insecure:
        raise ConfigurationError(
            f"refusing to send {credential} over plain http to {parts.hostname}: "
            f"use https://{parts.netloc}{parts.path}; if the network path is trusted, "
            "allow plain http with allow_insecure = true in the configuration file, "
            "--allow-insecure on the command line or allow_insecure=True in Python"
        )
    return loopback


def parse_version(header: str | None) -> tuple[int, int, int] | None:
    """``X-Version-Id`` (``10.6.0.1368...``) -> ``(10, 6, 0)``."""
    if not header:
        return None
    parts = header.split(".")
    try:
        return int(parts[0]), int(parts[1]), int(parts[2])
    except (IndexError, ValueError):
        return None


# ---------------------------------------------------------------- total deadline of an attempt


class _Watchdog:
    """One daemon thread that calls callbacks when their deadline passes."""

    def __init__(self) -> None:
        self._reinit()

    def _reinit(self) -> None:
        # also after fork: the thread does not exist in the child, and its lock may be held.
        # Taken as `with self._lock` (a C-level context manager): Ctrl-C inside the Python
        # code of Condition.__enter__ would leave it held, and the next request would hang.
        # Reentrant: a signal handler's request runs on the thread it interrupted.
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._heap: list[list[Any]] = []
        self._seq = itertools.count()
        self._started = False

    def schedule(self, delay: float, fn: Callable[[], None]) -> list[Any]:
        entry = [time.monotonic() + delay, next(self._seq), fn]
        with self._lock:
            if not self._started:
                try:
                    start_thread(
                        threading.Thread(
                            target=self._run, name="mattermost-notify-deadlines", daemon=True
                        )
                    )
                    self._started = True
                except RuntimeError:  # Python 3.12 in an atexit handler: no new thread;
                    # this attempt is bounded by its socket timeouts alone
                    logger.debug("no deadline thread at interpreter exit")
            heapq.heappush(self._heap, entry)
            if self._heap[0] is entry:
                self._cond.notify()
        return entry

    @staticmethod
    def cancel(entry: list[Any]) -> None:
        entry[2] = None  # dropped when its time comes

    def _run(self) -> None:
        cond, heap = self._cond, self._heap
        while True:
            due = []
            with self._lock:
                while not due:
                    now = time.monotonic()
                    while heap and (heap[0][2] is None or heap[0][0] <= now):
                        entry = heapq.heappop(heap)
                        if entry[2] is not None:
                            due.append(entry[2])
                    if not due:
                        cond.wait(heap[0][0] - now if heap else None)
            for fn in due:
                try:
                    fn()
                except Exception:  # pragma: no cover - a deadline must never kill the thread
                    logger.debug("deadline callback failed", exc_info=True)


_watchdog = _Watchdog()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_watchdog._reinit)


class _Deadline:
    """Shuts down the socket of the current attempt when the attempt's time is up."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._entry = _watchdog.schedule(seconds, self._fire)

    def attach(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._sock = sock
            if self.expired:
                _shutdown(sock)

    def _fire(self) -> None:
        with self._lock:
            self.expired = True
            if self._sock is not None:
                _shutdown(self._sock)

    def cancel(self) -> None:
        _watchdog.cancel(self._entry)
        with self._lock:
            self._sock = None


def _shutdown(sock: socket.socket) -> None:
    # socket.socket's own shutdown, also for an SSLSocket: wakes the reader with EOF
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _NotLoopbackError(ConfigurationError):
    """Plain http to a loopback name that connected to another address."""


def _require_loopback_peer(conn: Any) -> None:
    """Refuse (and close) a plain-http connection whose peer is not a loopback address
    (``conn``: an http.client or urllib3 connection)."""
    try:
        address = conn.sock.getpeername()[0] if conn.sock is not None else None
    except OSError:
        return
    if address is None:
        return
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    mapped = getattr(ip, "ipv4_mapped", None)
    if ip.is_loopback or (mapped is not None and mapped.is_loopback):
        return
    conn.close()
    raise _NotLoopbackError(
        f"refusing to send the access token over plain http to {conn.host}: it resolved to "
        f"{address}, which is not a loopback address; use https://, or pass "
        "allow_insecure=True if the network path is trusted"
    )
