"""One text message from a fresh process in one request, without importing requests.

``mattermost-notify send TEXT --user NAME`` (or ``--channel``) whose target is in the id
cache needs a single ``POST /posts``. Importing requests and urllib3 takes longer than
that whole round trip, so :func:`try_send` makes it with :mod:`http.client`, under the
rules of :mod:`._wire` that the transport obeys too: a connect timeout (also for the TLS
handshake), a read timeout, a total deadline per attempt that closes the socket of a
trickling server, plain http only to a loopback address (unless ``allow_insecure``),
TLS verified against the CA bundle requests would use (``REQUESTS_CA_BUNDLE``
included), answers read with a cap.

It never decides anything on its own. Whatever it does not take goes to the full client
(:class:`~mattermost_notify.client.Notify`), which then behaves as it always does:

* not tried (``None``): files, ``--id``/``--save-hook``, webhook mode, the id cache off
  or without the target, a message longer than 4000 characters or not valid, a proxy
  in the environment (for a server that is not on loopback), timeouts too long to leave
  a retry inside the server's de-duplication window;
* tried, then handed over (a :class:`Handover` with the ``pending_post_id`` used): any
  answer other than a 2xx JSON post, and any failure of the connection. The full client
  posts again with the same ``pending_post_id`` (the server keeps one post per id, so
  nothing is doubled) and retries only within what is left of the window; its error
  is the one the user sees. A cached id the server refused (403, 404, archived) is
  dropped from the cache first, so the full client looks the target up once.

The token goes only into the ``Authorization`` header; nothing here prints, logs or
raises (an exception of :mod:`http.client` is caught and not shown).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import sys
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from . import _preconnect
from ._checks import check_message, check_name, check_target
from ._version import __version__
from ._wire import (
    DEDUP_WINDOW,
    MAX_RESPONSE_BYTES,
    POST_READ_TIMEOUT,
    _Deadline,
    _require_loopback_peer,
    check_plain_http,
    parse_version,
)
from .errors import MattermostNotifyError
from .idcache import IdCache, channel_key, dm_key, stale_answer, user_key

if TYPE_CHECKING:
    import ssl

    from .config import Settings

__all__ = ["Handover", "Posted", "try_send"]

LONGEST_ONE_POST = 4000
"""Longer messages need the server's MaxPostSize (and maybe several posts): full client."""
CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


class Posted:
    """The message is on the server: ``post_id`` and its ``permalink``."""

    def __init__(self, kind: str, name: str, post_id: str, permalink: str) -> None:
        self.kind, self.name, self.post_id, self.permalink = kind, name, post_id, permalink


class Handover:
    """The attempt did not end in a post the client could read: the full client must send
    the message with this ``pending_post_id``, starting its retries by ``retry_until``
    (``time.monotonic()``)."""

    def __init__(self, pending_post_id: str, retry_until: float) -> None:
        self.pending_post_id = pending_post_id
        self.retry_until = retry_until


class _Target:
    def __init__(self, kind: str, name: str, channel_id: str, text: str, cache: IdCache) -> None:
        self.kind, self.name, self.channel_id, self.text = kind, name, channel_id, text
        self.cache = cache


def try_send(
    settings: Settings, user: str | None, channel: str | None, message: str
) -> Posted | Handover | None:
    """Post ``message`` in one request if the target is cached and nothing needs the full
    client; see the module documentation for what each result means."""
    target = _cached_target(settings, user, channel, message)
    if target is None:
        return None
    cache = target.cache
    bot = cache.get("bot")
    pending = f"{bot or 'mattermost-notify'}:{os.urandom(16).hex()}"
    handover = Handover(pending, time.monotonic() + DEDUP_WINDOW)
    try:
        status, headers, body = _post_once(settings, target.channel_id, target.text, pending)
    except (OSError, http.client.HTTPException, ValueError, MattermostNotifyError):
        return handover
    post = _json_object(body)
    if 200 <= status < 300 and isinstance(post.get("id"), str) and post["id"]:
        if not bot and isinstance(post.get("user_id"), str) and post["user_id"]:
            cache.put("bot", post["user_id"])
        version = parse_version(headers.get("x-version-id"))
        if version is not None:
            cache.put("version", ".".join(map(str, version)))
        team = settings.team_name or "_redirect"
        link = f"{settings.url}/{team}/pl/{post['id']}"
        return Posted(target.kind, target.name, post["id"], link)
    error_id = post.get("id") if isinstance(post.get("id"), str) else None
    if stale_answer(status, error_id):
        # the cached id is refused (nothing was posted): look the target up again
        cache.forget_target(target.kind, target.name, settings.team_name)
    return handover


def _cached_target(
    settings: Settings, user: str | None, channel: str | None, message: str
) -> _Target | None:
    """The target's channel id from the id cache, or None when the full client must send."""
    if settings.webhook_url or not settings.id_cache or not settings.token:
        return None
    connect, read = settings.timeout
    if connect + min(read, POST_READ_TIMEOUT) >= DEDUP_WINDOW:
        return None  # a failed attempt would leave no retry inside the window
    try:
        loopback = check_plain_http(settings.url, settings.allow_insecure, "the access token")
        check_target(user, channel)
        text = check_message(message, has_files=False)
        if len(text) > LONGEST_ONE_POST:
            return None
        if user is not None:
            kind, name = "user", check_name(user, "user name")
        elif channel is not None:
            kind, name = "channel", check_name(channel, "channel name")
        elif settings.default_user:
            kind, name = "user", check_name(settings.default_user, "user name")
        elif settings.default_channel:
            kind, name = "channel", check_name(settings.default_channel, "channel name")
        else:
            return None
    except MattermostNotifyError:
        return None  # the full client raises the same error
    if not loopback and _proxied():
        return None
    cache = IdCache(settings.url, settings.token)
    if kind == "user":
        user_id = cache.get(user_key(name))
        channel_id = cache.get(dm_key(user_id)) if isinstance(user_id, str) else None
    elif settings.team_name:
        channel_id = cache.get(channel_key(settings.team_name, name))
    else:
        return None
    if not isinstance(channel_id, str) or not channel_id:
        return None
    return _Target(kind, name, channel_id, text, cache)


def _proxied() -> bool:
    """Whether requests would send through a proxy: any ``*_proxy`` variable (also
    ``no_proxy``: deciding it is the full client's job), or a system proxy on macOS and
    Windows."""
    if any(k.lower().endswith("_proxy") and v for k, v in os.environ.items()):
        return True
    if sys.platform in ("darwin", "win32"):  # pragma: no cover - read from the system
        import urllib.request

        return bool(urllib.request.getproxies())
    return False


def _post_once(
    settings: Settings, channel_id: str, message: str, pending: str
) -> tuple[int, dict[str, str], bytes]:
    """One ``POST /posts`` attempt: (status, headers with lower-case names, body)."""
    parts = urlsplit(settings.url)
    https = parts.scheme == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if https else 80)
    connect, read = settings.timeout[0], min(settings.timeout[1], POST_READ_TIMEOUT)
    payload = {"channel_id": channel_id, "message": message, "pending_post_id": pending}
    body = json.dumps(payload, allow_nan=False).encode()
    path = parts.path.rstrip("/") + "/api/v4/posts?set_online=false"
    headers = {
        "User-Agent": f"mattermost-notify/{__version__}",
        "Accept": "application/json",
        "Authorization": f"Bearer {settings.token}",
        "Content-Type": "application/json",
    }
    guard = _Deadline(connect + read)  # the whole attempt ends by then, however it trickles
    sock: socket.socket | None = None
    conn: http.client.HTTPConnection | None = None
    try:
        sock = _preconnect.take(host, port) or socket.create_connection((host, port), connect)
        guard.attach(sock)
        sock.settimeout(connect)
        if https:
            context = _tls_context(settings.verify)
            sock = context.wrap_socket(sock, server_hostname=host)
            guard.attach(sock)
            conn = http.client.HTTPSConnection(host, port, context=context)
        else:
            conn = http.client.HTTPConnection(host, port)
        conn.sock = sock
        if not https and not settings.allow_insecure:
            _require_loopback_peer(conn)
        sock.settimeout(read)
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        declared = response.getheader("Content-Length") or ""
        if declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
            raise ValueError("answer too large")
        data = response.read(MAX_RESPONSE_BYTES + 1)
        if len(data) > MAX_RESPONSE_BYTES or guard.expired:
            raise ValueError("answer too large or cut off by the deadline")
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        guard.cancel()
        if conn is not None:
            conn.close()
        elif sock is not None:
            sock.close()


def _tls_context(verify: bool | str) -> ssl.SSLContext:
    """What requests verifies against: ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE`` when
    set (they win over ``verify`` there), else ``verify`` (a file or a directory of CA
    certificates), certifi's bundle for True, nothing for False."""
    import ssl

    where = next((os.environ[v] for v in CA_BUNDLE_VARIABLES if os.environ.get(v)), verify)
    if where is False:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        if not isinstance(where, str):
            import certifi

            where = certifi.where()
        if os.path.isdir(where):
            context = ssl.create_default_context(capath=where)
        else:
            context = ssl.create_default_context(cafile=where)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
