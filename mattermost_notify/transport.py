"""HTTP to the Mattermost REST API v4: one session, timeouts, retries, pacing, redaction.

* One :class:`requests.Session` (keep-alive), the token in an ``Authorization: Bearer``
  header set by an auth object (so ``~/.netrc`` never replaces it) and a cookie policy
  that accepts no cookie (an ``MMAUTHTOKEN`` cookie would win over the header).
* Every request has a connect and a read timeout, and every attempt a total deadline
  (connect + read timeout) after which its socket is shut down, however slowly the server
  trickles its answer. ``POST /posts`` uses a read timeout of at most
  :data:`POST_READ_TIMEOUT` so that a stalled create can still be retried inside the
  server's 30 s ``pending_post_id`` window (API-NOTES 5.2).
* Answers are read with a cap (:data:`MAX_RESPONSE_BYTES`, after gzip decoding) and
  must be a JSON object: anything else is an :class:`UnexpectedResponseError`.
* Plain http only to loopback: by name (``localhost``, ``127.0.0.1``...) when the client
  is built, and by the address actually connected to; such requests never go through a
  proxy (the ``Authorization`` header would travel in clear text to it).
* Retries (urllib3's :class:`~urllib3.util.retry.Retry` does the counting, backoff with
  jitter and ``Retry-After`` parsing): connection errors, timeouts, 502/503/504, 429
  (``Retry-After``, else ``X-RateLimit-Reset``, honoured for that request only; a wait
  past the request's deadline fails at once with :class:`RateLimitedError`) and the 500
  ``api.post.deduplicate_create_post.pending``. Never 400/401/403/404/413. Bounded in total
  time. Requests that create a post must carry a stable ``pending_post_id`` (the client
  does that) and are retried only inside the de-duplication window.
* Pacing: ``X-RateLimit-Remaining``/``-Reset``/``-Limit`` are tracked and a request waits
  for a token when the bucket is empty, so a paced client does not run into 429.
* Every error is one of :mod:`mattermost_notify.errors`, token-free; the requests
  exception is not chained (it carries the request with its headers).
* One DEBUG line per request on the ``mattermost_notify`` logger: method, path, status, ms.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import logging
import os
import queue
import re
import socket
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError
from urllib3.util.retry import Retry

from . import _preconnect
from ._version import __version__
from ._wire import (
    DEDUP_WINDOW,
    MAX_RESPONSE_BYTES,
    POST_READ_TIMEOUT,
    _Deadline,
    _require_loopback_peer,
    check_plain_http,
    is_loopback,
    parse_version,
)
from .errors import (
    APIError,
    AuthenticationError,
    ConnectTimeout,
    MattermostNotifyError,
    NetworkError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ReadTimeout,
    ServerError,
    UnexpectedResponseError,
)

__all__ = [
    "DEDUP_PENDING_ID",
    "RETRY_STATUSES",
    "Transport",
    "default_retry",
    "is_loopback",
    "parse_version",
]

logger = logging.getLogger("mattermost_notify")

RETRY_STATUSES = frozenset({429, 502, 503, 504})
DEDUP_PENDING_ID = "api.post.deduplicate_create_post.pending"
DEFAULT_MAX_RETRY_TIME = 60.0
MAX_PACING_WAIT = 10.0
_NO_PROXY = {"http": None, "https": None, "all": None}


def default_retry() -> Retry:
    """The default retry policy (counts and backoff; statuses are decided here)."""
    return Retry(
        total=8,
        connect=4,
        read=4,
        status=8,
        other=0,
        redirect=0,
        allowed_methods=None,  # every method: posts are made safe by pending_post_id
        status_forcelist=RETRY_STATUSES,
        backoff_factor=0.25,
        backoff_max=8.0,
        backoff_jitter=0.25,
        respect_retry_after_header=True,
        raise_on_status=False,
        raise_on_redirect=False,
    )


def new_session(verify: bool | str) -> requests.Session:
    """A session that accepts no cookie and names the library in ``User-Agent``."""
    session = requests.Session()
    session.verify = verify
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    session.headers["User-Agent"] = f"mattermost-notify/{__version__}"
    return session


class _BearerAuth(requests.auth.AuthBase):
    """Sets ``Authorization: Bearer``; its repr never shows the token."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "<BearerAuth ***>"


class _RateState:
    """What the server's rate limiter told us last, to wait before the bucket is empty."""

    def __init__(self) -> None:
        self.lock = threading.RLock()  # a signal handler's request may come in reserve()
        self.limit: int | None = None
        self.remaining: float | None = None
        self.rate: float | None = None  # tokens per second
        self.observed = 0.0
        self.sent_since = 0

    def reserve(self) -> float:
        """Take a token; return how long to wait before sending."""
        with self.lock:
            now = time.monotonic()
            wait = 0.0
            if self.remaining is not None and self.rate:
                # with a real bucket, keep one token in hand for other clients at this address
                spare = 1 if (self.limit or 0) >= 10 else 0
                available = (
                    self.remaining + (now - self.observed) * self.rate - self.sent_since - spare
                )
                if self.limit is not None:
                    available = min(available, self.limit - self.sent_since)
                if available < 1:
                    wait = max(wait, (1 - available) / self.rate)
            self.sent_since += 1
            return wait

    def observe(self, headers: Mapping[str, str]) -> None:
        remaining = headers.get("X-RateLimit-Remaining")
        if remaining is None:
            return
        # A server with RateLimitSettings.VaryByUser sends each header twice (its outer and
        # its per-user limiter), which arrives combined as "2, 1": the tighter one counts.
        try:
            rem = min(_numbers(remaining))
            reset = max(_numbers(headers.get("X-RateLimit-Reset", "0") or "0"))
            limit = int(min(_numbers(headers.get("X-RateLimit-Limit", "0") or "0"))) or None
        except ValueError:
            return
        with self.lock:
            self.remaining = rem
            self.limit = limit
            self.observed = time.monotonic()
            self.sent_since = 0
            if limit and reset > 0 and limit > rem:
                # Reset = seconds until the bucket is full again, rounded up: a lower bound
                # of the real rate, so pacing errs on the slow side.
                self.rate = (limit - rem) / reset
            elif reset > 0 and rem <= 0:
                self.rate = 1.0 / reset


_current = threading.local()

_transports: weakref.WeakSet[Transport] = weakref.WeakSet()


def _reset_transports_after_fork() -> None:
    for transport in list(_transports):
        transport._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_transports_after_fork)


def _watch(sock: socket.socket | None) -> None:
    deadline = getattr(_current, "deadline", None)
    if deadline is not None:
        deadline.attach(sock)


class _ConnectionMixin:
    """Takes the connection :mod:`._preconnect` opened early, if it is to this server;
    registers every socket with the attempt's total deadline."""

    _dns_host: str
    port: int
    timeout: Any
    sock: socket.socket | None
    loopback_only = False

    def _new_conn(self) -> Any:
        sock = _preconnect.take(self._dns_host, self.port)
        if sock is None:
            return super()._new_conn()  # type: ignore[misc]
        if isinstance(self.timeout, (int, float)):
            sock.settimeout(self.timeout)
        return sock

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        _watch(self.sock)
        if self.loopback_only:
            _require_loopback_peer(self)  # type: ignore[arg-type]

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self.sock)  # a kept-alive connection (a new one is watched in connect)
        super().request(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_ConnectionMixin, HTTPConnection):
    pass


class _LoopbackHTTPConnection(_HTTPConnection):
    loopback_only = True


class _HTTPSConnection(_ConnectionMixin, HTTPSConnection):
    pass


class _InterruptSafeCondition(threading.Condition):
    """A condition whose ``with`` enters through its lock's own (C) methods: no Python
    code runs between the acquire and the block, where an interrupt (Ctrl-C, a signal
    handler's exception) would leave the lock held (``Condition.__enter__`` is Python)."""

    __enter__ = property(lambda self: self._lock.__enter__)  # type: ignore[assignment]
    __exit__ = property(lambda self: self._lock.__exit__)  # type: ignore[assignment]


class _PoolQueue(queue.LifoQueue):  # type: ignore[type-arg]
    """urllib3's queue of pooled connections, with an interrupt-safe, reentrant lock:
    urllib3 puts a connection back in a ``finally``, so a Ctrl-C that left the plain
    lock held there would hang the process at once."""

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__(maxsize)
        self.mutex = threading.RLock()  # type: ignore[assignment]
        self.not_empty = _InterruptSafeCondition(self.mutex)
        self.not_full = _InterruptSafeCondition(self.mutex)
        self.all_tasks_done = _InterruptSafeCondition(self.mutex)


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection
    QueueCls = _PoolQueue


class _LoopbackHTTPPool(HTTPConnectionPool):
    ConnectionCls = _LoopbackHTTPConnection
    QueueCls = _PoolQueue


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection
    QueueCls = _PoolQueue


class _Adapter(HTTPAdapter):
    """requests' adapter with connections that obey the attempt's total deadline (and,
    for plain http without ``allow_insecure``, connect only to loopback addresses)."""

    def __init__(self, *, loopback_only: bool, **kwargs: Any) -> None:
        self._loopback_only = loopback_only
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _LoopbackHTTPPool if self._loopback_only else _HTTPPool,
            "https": _HTTPSPool,
        }

    def proxy_manager_for(self, *args: Any, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(*args, **kwargs)
        if hasattr(manager, "pool_classes_by_scheme"):
            manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
        return manager


def _token_forms(token: str) -> re.Pattern[str] | None:
    """A pattern for the token, URL-encoded or not, and any piece of it of 8+ characters
    (an error body cut at 200 characters may end inside it)."""
    if not token:
        return None
    shortest = min(8, len(token))
    pieces: set[str] = set()
    for form in {token, quote(token, safe=""), quote_plus(token)}:
        for i in range(len(form)):
            for j in range(i + shortest, len(form) + 1):
                pieces.add(form[i:j])
    ordered = sorted(pieces, key=len, reverse=True)
    return re.compile("|".join(re.escape(p) for p in ordered))


class Transport:
    """Requests to one server with one token. Thread-safe."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        verify: bool | str = True,
        timeout: tuple[float, float] = (5.0, 30.0),
        allow_insecure: bool = False,
        retry: Retry | int | bool | None = None,
        max_retry_time: float = DEFAULT_MAX_RETRY_TIME,
        pool_maxsize: int = 16,
    ) -> None:
        loopback = check_plain_http(url, allow_insecure, "the access token")
        self.url = url.rstrip("/")
        self.api_url = self.url + "/api/v4"
        self._token = token
        self._token_pattern: re.Pattern[str] | None = None
        # a proxy cannot reach this machine's loopback, and would see the token over http
        self._proxies: dict[str, None] | None = dict(_NO_PROXY) if loopback else None
        self.timeout = (float(timeout[0]), float(timeout[1]))
        self.max_retry_time = float(max_retry_time)
        if retry is None or retry is True:
            self.retry = default_retry()
        elif retry is False:
            self.retry = Retry(total=0, raise_on_status=False, redirect=0)
        elif isinstance(retry, int):
            self.retry = default_retry().new(total=retry)
        else:
            self.retry = retry
        self.server_version: tuple[int, int, int] | None = None
        self.version_header: str | None = None
        self.request_count = 0
        self._rate = _RateState()

        session = new_session(verify)
        session.auth = _BearerAuth(token)
        session.headers["Accept"] = "application/json"
        adapter = _Adapter(
            loopback_only=url.startswith("http:") and not allow_insecure,
            pool_connections=2,
            pool_maxsize=pool_maxsize,
            max_retries=0,
        )
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        self.session = session
        _transports.add(self)

    def _after_fork(self) -> None:
        """In a forked child: never touch the parent's pooled connections (their bytes
        would interleave with the parent's on the same socket) or its locks."""
        self._rate.lock = threading.RLock()
        self._fresh_pools()

    def _fresh_pools(self) -> None:
        """New connection pools; the old ones' sockets are left to whoever holds them.
        Also after an interrupt (Ctrl-C, a signal handler's exception) inside a request:
        urllib3's pool enters its plain lock through ``with condition:``, so an interrupt
        there can leave it held, and the next request of this thread would wait forever."""
        for adapter in self.session.adapters.values():
            if isinstance(adapter, HTTPAdapter):
                adapter.init_poolmanager(
                    adapter._pool_connections, adapter._pool_maxsize, block=adapter._pool_block
                )
                adapter.proxy_manager = {}

    def _private_session(self) -> requests.Session:
        """A session with pools of its own, for a request made inside another request
        of the same thread (a signal handler that interrupted it): the interrupted
        request may hold a lock of the shared pools."""
        session = requests.Session()
        session.auth, session.verify = self.session.auth, self.session.verify
        session.headers = self.session.headers.copy()
        session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        for prefix, adapter in self.session.adapters.items():
            if isinstance(adapter, _Adapter):
                loopback_only = adapter._loopback_only
                session.mount(prefix, _Adapter(loopback_only=loopback_only, max_retries=0))
        return session

    def __repr__(self) -> str:
        return f"Transport({self.url!r}, token='***')"

    # ------------------------------------------------------------ helpers

    def redact(self, text: str) -> str:
        """``text`` with the token (whole, URL-encoded, or a piece of it) replaced by ``***``."""
        if not self._token or not text:
            return text
        if self._token_pattern is None:
            self._token_pattern = _token_forms(self._token)
        return self._token_pattern.sub("***", text) if self._token_pattern else text

    def close(self) -> None:
        self.session.close()

    # ------------------------------------------------------------ requests

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        body: Callable[[], tuple[Any, dict[str, str]]] | None = None,
        what: str | None = None,
        creates_post: bool = False,
        retry: bool = True,
    ) -> requests.Response:
        """Send one logical request (with retries); return the 2xx response.

        ``path`` is relative to ``/api/v4``. ``body`` builds a fresh (data, headers) pair
        for every attempt (a streamed upload cannot be rewound). ``what`` names the
        thing the request is about, for error messages ("user 'bob'").
        ``creates_post`` limits retries to the ``pending_post_id`` window.
        """
        url = self.api_url + path
        state = self.retry.new() if retry else Retry(total=0, raise_on_status=False)
        start = time.monotonic()
        deadline = start + (
            min(DEDUP_WINDOW, self.max_retry_time) if creates_post else self.max_retry_time
        )
        timeout = self.timeout
        if creates_post:
            timeout = (timeout[0], min(timeout[1], POST_READ_TIMEOUT))
        attempt = 0
        while True:
            attempt += 1
            wait = self._rate.reserve()
            if wait > 0:
                # pacing never holds a request long, whatever the headers said
                wait = min(wait, MAX_PACING_WAIT, max(0.0, deadline - time.monotonic()))
                logger.debug("rate limit: waiting %.2f s before %s %s", wait, method, path)
                time.sleep(wait)
            data = None
            headers: dict[str, str] = {}
            if body is not None:
                data, headers = body()
            t0 = time.monotonic()
            # the whole attempt (connect, request, headers, body) ends by this deadline
            guard = _Deadline(timeout[0] + timeout[1])
            outer = getattr(_current, "deadline", None)  # a request a signal handler interrupted
            _current.deadline = guard
            session = self.session if outer is None else self._private_session()
            try:
                response = session.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    data=data,
                    headers=headers,
                    timeout=timeout,
                    allow_redirects=False,
                    stream=True,
                    proxies=self._proxies,
                )
                _read_capped(response, self, what)
                if guard.expired:
                    # cut off mid-answer: what was read may look whole, it is not
                    raise requests.exceptions.ConnectionError("total deadline")
            except requests.exceptions.RequestException as exc:
                ms = (time.monotonic() - t0) * 1000
                kind, reached = ("total deadline", True) if guard.expired else classify(exc)
                logger.debug("%s %s failed (%s) after %.0f ms", method, path, kind, ms)
                if kind in RETRYABLE:
                    # Retry counts a ProtocolError as a read error, a ConnectTimeoutError as a
                    # connect error (the request never reached the server)
                    error = urllib3.exceptions.ProtocolError if reached else ConnectTimeoutError
                    try:
                        state = state.increment(method, url, error=error(kind))
                    except urllib3.exceptions.MaxRetryError:
                        pass
                    else:
                        backoff = state.get_backoff_time()
                        if time.monotonic() + backoff < deadline:
                            time.sleep(backoff)
                            continue
                raise self._network_error(exc, kind, what, attempt, guard) from None
            except BaseException as exc:
                if not isinstance(exc, Exception) and session is self.session:
                    self._fresh_pools()  # interrupted: a pool's lock may be left held
                raise
            finally:
                guard.cancel()
                _current.deadline = outer
                if session is not self.session:
                    session.close()
                if data is not None and hasattr(data, "close"):
                    data.close()
            ms = (time.monotonic() - t0) * 1000
            self.request_count += 1
            logger.debug("%s %s %s %.0f ms", method, path, response.status_code, ms)
            self._observe(response)
            status = response.status_code
            if 200 <= status < 300:
                return response
            retry_this = status in RETRY_STATUSES or (
                status == 500 and json_body(response).get("id") == DEDUP_PENDING_ID
            )
            if retry_this:
                hint = wait_hint(response)
                if hint is not None and time.monotonic() + hint >= deadline:
                    # the server asks for a wait past this request's deadline: say so now
                    # rather than sleep (and never hold back later requests for it)
                    raise self.error_for(response, what=what, method=method, path=path)
                try:
                    state = state.increment(method, url, response=response.raw)
                except urllib3.exceptions.MaxRetryError:
                    pass
                else:
                    pause = hint if hint is not None else state.get_backoff_time()
                    if status == 500:
                        pause = max(pause, 0.5)  # the first attempt is still running
                    if time.monotonic() + pause < deadline:
                        response.close()
                        time.sleep(pause)
                        continue
            raise self.error_for(response, what=what, method=method, path=path)

    def get(self, path: str, **kw: Any) -> dict[str, Any]:
        """GET; the answer must be a JSON object (see :meth:`call`)."""
        return self.call("GET", path, **kw)

    def post(self, path: str, payload: Any, **kw: Any) -> dict[str, Any]:
        return self.call("POST", path, json=payload, **kw)

    def put(self, path: str, payload: Any, **kw: Any) -> dict[str, Any]:
        return self.call("PUT", path, json=payload, **kw)

    def call(
        self, method: str, path: str, *, keys: tuple[str, ...] = ("id",), **kw: Any
    ) -> dict[str, Any]:
        """:meth:`request`; the answer must be a JSON object with string values for ``keys``."""
        return _json_of(self.request(method, path, **kw), self, kw.get("what"), keys)

    # ------------------------------------------------------------ internals

    def _observe(self, response: requests.Response) -> None:
        version = response.headers.get("X-Version-Id")
        if version and version != self.version_header:
            self.version_header = version
            self.server_version = parse_version(version)
        self._rate.observe(response.headers)

    def _network_error(
        self, exc: Exception, kind: str, what: str | None, attempts: int, guard: _Deadline
    ) -> NetworkError:
        parts = urlsplit(self.url)
        host = parts.netloc
        tries = f" (tried {attempts} times)" if attempts > 1 else ""
        about = f" ({what})" if what else ""
        detail = short_reason(exc)
        low = detail.lower()
        # one line: what is wrong, then what to do; the connection-level failures are
        # about the server, not about the user or channel being looked up
        if kind == "TLS error" and ("wrong version number" in low or "record layer" in low):
            text = (
                f"{host} does not speak https (the TLS handshake got a plain answer){tries}: "
                f"if the server uses plain http, write the URL as http://{host}; "
                "otherwise check the port"
            )
        elif kind == "TLS error" and "certificate" in low:
            text = (
                f"the TLS certificate of {parts.hostname} could not be verified ({detail}): "
                "give your organisation's CA bundle with --ca-bundle PEM or "
                'verify = "/path/to/ca.pem" in the configuration'
            )
        elif kind == "TLS error":
            text = f"TLS failed with {host}{tries}: {detail}; check the URL and the port"
        elif kind == "DNS lookup failed":
            text = (
                f"cannot find the host {parts.hostname} (DNS lookup failed){tries}: "
                f"check the host name in the URL {self.url} (and your network or VPN)"
            )
        elif kind == "connection failed" and "refused" in low:
            text = (
                f"nothing answers at {host} (connection refused){tries}: "
                f"check the port in the URL {self.url} and that the server is running"
            )
        elif kind == "connect timeout":
            text = (
                f"{host} did not accept a connection within {self.timeout[0]:g} s "
                f"(connect timeout){tries}: check the URL, your network, VPN or proxy"
            )
        elif kind == "connection failed":
            text = f"cannot connect to {host}{tries}: {detail}; check the URL and your network"
        elif kind == "total deadline":
            text = (
                f"{host} took longer than {guard.seconds:g} s (connect + read timeout) to "
                f"answer{about}{tries}: the connection was closed"
            )
        else:
            hint = f"; timeout (connect, read) = {self.timeout}" if kind == "read timeout" else ""
            text = f"{kind} talking to {host}{about}{tries}: {detail}{hint}"
        error = {"connect timeout": ConnectTimeout, "read timeout": ReadTimeout}.get(
            kind, NetworkError
        )
        return error(self.redact(text))

    def error_for(
        self,
        response: requests.Response,
        *,
        what: str | None = None,
        method: str = "",
        path: str = "",
    ) -> MattermostNotifyError:
        """The exception for a non-2xx response (token-free, names ``what`` and the server)."""
        status = response.status_code
        body = json_body(response) if "json" in response.headers.get("Content-Type", "") else {}
        error_id = body.get("id") or None
        page = not body and (
            "html" in response.headers.get("Content-Type", "") or response.text.lstrip()[:1] == "<"
        )
        server_message = body.get("message") or (
            response.text[:200] if not body and not page else None
        )
        request_id = body.get("request_id") or response.headers.get("X-Request-Id")
        server = self.url
        thing = what or f"{method} {path}"
        said = f": {server_message}" if server_message else ""
        kwargs: dict[str, Any] = {
            "status_code": status,
            "error_id": error_id,
            "request_id": request_id,
            "server_message": self.redact(server_message) if server_message else None,
        }
        if page and status in (404, 405):
            # a web page where the API should be: a proxy, or a URL copied from the browser
            cls: type[APIError] = NotFoundError
            text = (
                f"{server} answered {status} with a web page, not the Mattermost API ({thing}): "
                "the URL should be the server's address only (like https://chat.example.org), "
                "not the address of a page copied from the browser"
            )
            return cls(self.redact(text), **kwargs)
        if status == 401:
            cls = AuthenticationError
            text = (
                f"{server} refused the access token ({thing}){said}; "
                "check the token (wrong, revoked, or its bot is deactivated)"
            )
        elif status == 403:
            cls = PermissionDeniedError
            text = f"permission denied: {thing} on {server}{said}"
        elif status == 404:
            cls = NotFoundError
            text = f"{thing} not found on {server}{said}"
        elif status == 429:
            retry_after = wait_hint(response)
            text = f"{server} is rate limiting ({thing}); gave up after the retry budget"
            return RateLimitedError(self.redact(text), retry_after=retry_after, **kwargs)
        elif status >= 500:
            cls = ServerError
            text = f"{server} failed with {status} ({thing}){said}"
        elif 300 <= status < 400:
            cls = APIError
            location = response.headers.get("Location", "?")
            text = (
                f"{server} redirects {method} {path} to {location}: "
                "set the server URL to where it redirects"
            )
        else:
            cls = APIError
            text = f"{server} refused {thing} with {status}{said}"
        return cls(self.redact(text), **kwargs)


RETRYABLE = frozenset(
    {"connect timeout", "read timeout", "connection failed", "connection dropped", "total deadline"}
)


def classify(exc: requests.exceptions.RequestException) -> tuple[str, bool]:
    """``(what failed, whether the request may have reached the server)``."""
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS error", False
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connect timeout", False
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "read timeout", True
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason: Any = exc.args[0] if exc.args else None
        reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError
        if isinstance(reason, urllib3.exceptions.NameResolutionError):
            return "DNS lookup failed", False
        if isinstance(
            reason, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ProxyError)
        ):
            return "connection failed", False
        if isinstance(reason, urllib3.exceptions.ConnectTimeoutError):
            return "connect timeout", False
        return "connection dropped", True
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "connection dropped", True
    return type(exc).__name__, True


def wait_hint(response: requests.Response) -> float | None:
    """Seconds the server asks to wait: ``Retry-After`` (urllib3 parses it), else for a 429
    ``X-RateLimit-Reset``; None when it says nothing usable."""
    after = response.headers.get("Retry-After")
    if after:
        with contextlib.suppress(urllib3.exceptions.InvalidHeader, ValueError, OverflowError):
            return max(0.0, Retry().parse_retry_after(after))
    reset = response.headers.get("X-RateLimit-Reset")
    if response.status_code == 429 and reset:
        with contextlib.suppress(ValueError):
            return max(0.0, *_numbers(reset))
    return None


def json_body(response: requests.Response) -> dict[str, Any]:
    """The JSON object an (error) answer carries, or ``{}``."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _read_capped(response: requests.Response, transport: Transport, what: str | None) -> None:
    """Read the body of ``response`` (gzip decoded) into memory, at most
    :data:`MAX_RESPONSE_BYTES`; a larger one is an :class:`UnexpectedResponseError`."""
    limit = MAX_RESPONSE_BYTES
    chunks: list[bytes] = []
    size = 0
    declared = response.headers.get("Content-Length", "")
    too_large = declared.isdigit() and int(declared) > limit
    if not too_large:
        for chunk in response.iter_content(64 * 1024):
            size += len(chunk)
            if size > limit:
                too_large = True
                break
            chunks.append(chunk)
    if too_large:
        response.close()
        raise UnexpectedResponseError(
            f"{transport.url} answered {response.status_code} with more than {limit} bytes "
            f"({what or response.request.path_url}); a Mattermost server never sends that much: "
            "is the URL right, or is a proxy in the way?",
            status_code=response.status_code,
            request_id=response.headers.get("X-Request-Id"),
        )
    response._content = b"".join(chunks)
    response._content_consumed = True


def _json_of(
    response: requests.Response, transport: Transport, what: str | None, keys: tuple[str, ...]
) -> dict[str, Any]:
    about = what or response.request.path_url
    try:
        data = response.json()
    except ValueError:
        raise UnexpectedResponseError(
            f"{transport.url} answered {response.status_code} with something that is not JSON "
            f"({what or response.request.path_url}): the URL should be the Mattermost "
            "server's address only (like https://chat.example.org), not a page copied from "
            "the browser",
            status_code=response.status_code,
            request_id=response.headers.get("X-Request-Id"),
        ) from None
    if not isinstance(data, dict):
        shape = "null" if data is None else f"a JSON {type(data).__name__}"
    else:
        missing = [k for k in keys if not isinstance(data.get(k), str) or not data.get(k)]
        if not missing:
            return data
        shape = f"a JSON object without {', '.join(repr(k) for k in missing)}"
    raise UnexpectedResponseError(
        f"{transport.url} answered {response.status_code} with {shape} where Mattermost sends "
        f"an object ({about}); is the URL a Mattermost server, or is a proxy answering?",
        status_code=response.status_code,
        request_id=response.headers.get("X-Request-Id"),
    )


def short_reason(exc: Exception) -> str:
    """The innermost reason of a requests/urllib3 error, without URLs or objects."""
    reason: Any = exc
    for _ in range(5):
        nxt = getattr(reason, "reason", None) or (reason.args[0] if reason.args else None)
        if isinstance(nxt, BaseException) and nxt is not reason:
            reason = nxt
        else:
            break
    text = str(reason)
    # urllib3 prefixes "<urllib3.connection.HTTPConnection object at 0x..>: "
    if ">: " in text:
        text = text.split(">: ", 1)[1]
    text = text.replace("\n", " ")
    return text[:300] if text else type(reason).__name__


def _numbers(value: str) -> list[float]:
    """The numbers of a header that may be a comma-separated list ("5" or "5, 5")."""
    return [float(part) for part in value.split(",")]
