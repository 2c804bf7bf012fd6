"""A TCP proxy on loopback that adds a fixed delay in each direction (a far server).

    with LatencyProxy(upstream_port, delay=0.020) as proxy:
        url = f"http://127.0.0.1:{proxy.port}"

Every chunk read from one side is written to the other side ``delay`` seconds later, in
order. Opening a connection costs one round trip as over a real network: the kernel
completes the handshake with the proxy at once, so bytes the client sends are delivered
no earlier than one round trip plus one delay after the connection was accepted (when a
real client's connect() would have returned and its first bytes arrived). Loopback
only: it listens on 127.0.0.1 and refuses an upstream that is not a loopback address.
Both sockets have TCP_NODELAY set, so the proxy adds no Nagle stall of its own.
"""

from __future__ import annotations

import contextlib
import ipaddress
import queue
import socket
import threading
import time

__all__ = ["LatencyProxy"]


class _Pipe:
    """One direction of one connection: read, hold for ``delay``, write."""

    def __init__(self, src: socket.socket, dst: socket.socket, delay: float, earliest: float):
        self.src, self.dst, self.delay, self.earliest = src, dst, delay, earliest
        self.chunks: queue.Queue[tuple[float, bytes]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._write, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = self.src.recv(65536)
            except OSError:
                data = b""
            self.chunks.put((max(time.monotonic() + self.delay, self.earliest), data))
            if not data:
                return

    def _write(self) -> None:
        while True:
            due, data = self.chunks.get()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                if not data:
                    self.dst.shutdown(socket.SHUT_WR)
                    return
                self.dst.sendall(data)
            except OSError:
                with contextlib.suppress(OSError):
                    self.src.shutdown(socket.SHUT_RD)
                return


class LatencyProxy:
    """Forward 127.0.0.1:<port> to ``upstream_host:upstream_port`` with ``delay`` each way."""

    def __init__(
        self, upstream_port: int, *, delay: float = 0.020, upstream_host: str = "127.0.0.1"
    ) -> None:
        if not ipaddress.ip_address(upstream_host).is_loopback:
            raise ValueError(f"the latency proxy only forwards to loopback, not {upstream_host}")
        self.upstream = (upstream_host, upstream_port)
        self.delay = delay
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            accepted = time.monotonic()
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._sockets.append(sock)
            _Pipe(client, upstream, self.delay, earliest=accepted + 3 * self.delay)
            _Pipe(upstream, client, self.delay, earliest=0.0)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def __enter__(self) -> LatencyProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
