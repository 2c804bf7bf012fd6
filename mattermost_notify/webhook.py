"""Webhook mode: :class:`WebhookClient` posts through a Mattermost *incoming webhook*.

For users who cannot get a bot account: an incoming webhook URL
(``https://chat.example.org/hooks/<key>``) is enough. The client has the send surface
of :class:`~mattermost_notify.client.Notify` (``send``, ``send_to_user``,
``send_to_channel``, ``reply``, ``send_update``, ``sender``, ``test_connection``), so the
functional API, the CLI, the background sender, progress bars and the magics use it
unchanged. What a webhook cannot do is refused *before* anything is sent, with
:class:`~mattermost_notify.errors.WebhookModeError` saying what to get instead:

* edits (``send_update``, ``notify(id=...)`` a second time): the webhook answers ``ok``
  and no post id, so its posts can never be edited;
* files: a webhook cannot upload;
* message ids across processes (hook files): there is no post id to write down;
* threads: ``reply(id, ...)`` posts a new message to the same target (no thread).

``channel`` and ``@user`` targets go into the payload's ``channel`` field; the server
may refuse them (a webhook locked to its channel: 403; a private channel the webhook's
owner cannot read: 403; an unknown channel: 404; an unknown user: 400).

**Retries.** The webhook has no ``pending_post_id``: a request repeated after it
reached the server can post twice. So a request is repeated only when it certainly did
not reach the server (connection refused, also by a proxy, DNS failure, connect timeout,
and the 429 of the server's rate limiter, which answers before the webhook runs). A timeout or a
dropped connection *after* the request was sent, and any 5xx, raise
:class:`~mattermost_notify.errors.DeliveryUnknownError` and are not repeated, not even by
the background sender.

**The URL is a credential**: it never appears in a ``repr``, an error, a log line (the
DEBUG lines of this module and of urllib3 show ``/hooks/***``), the outbox or a hook file.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import random
import threading
import time
import types
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import requests

from ._checks import check_id, check_message
from .client import BaseClient, Check, ConnectionReport, SentMessage
from .config import make_settings
from .errors import (
    APIError,
    DeliveryUnknownError,
    NetworkError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    WebhookModeError,
)
from .transport import (
    check_plain_http,
    classify,
    json_body,
    new_session,
    parse_version,
    short_reason,
    wait_hint,
)

if TYPE_CHECKING:  # pragma: no cover
    from .hooks import MessageHook

__all__ = ["WebhookClient"]

logger = logging.getLogger("mattermost_notify")

MAX_ATTEMPTS = 4
RETRY_BUDGET = 20.0  # seconds, for the attempts that certainly did not reach the server
GET_A_BOT = (
    "ask for a bot account's token (or use a personal access token) and configure url, "
    "token and team_name instead of webhook_url"
)

# ---------------------------------------------------------------- redaction

_keys: set[str] = set()
_keys_lock = threading.Lock()


class _RedactWebhookKeys(logging.Filter):
    """urllib3 logs every request line with its path at DEBUG: hide the webhook keys."""

    def filter(self, record: logging.LogRecord) -> bool:
        with _keys_lock:
            keys = tuple(_keys)
        if not keys:
            return True
        try:
            text = record.getMessage()
        except Exception:
            return True
        if any(k in text for k in keys):
            for key in keys:
                text = text.replace(key, "***")
            record.msg, record.args = text, ()
        return True


_redactor = _RedactWebhookKeys()
for _name in ("urllib3.connectionpool", "urllib3.connection", "urllib3.util.retry"):
    logging.getLogger(_name).addFilter(_redactor)


def _register_key(key: str) -> None:
    with _keys_lock:
        _keys.add(key)


# ---------------------------------------------------------------- the client


class WebhookClient(BaseClient):
    """Sends through one incoming webhook. Nothing is sent on construction.

    ``username`` / ``icon_url`` override the post's name and icon (only when the server
    allows overrides: *Enable integrations to override usernames / profile picture
    icons*). ``default_channel`` / ``default_user``: the target when none is given
    (default: the webhook's own channel).
    """

    can_edit = False
    """Edits are impossible: progress bars and the magics post a new message instead."""
    has_own_channel = True

    def __init__(
        self,
        webhook_url: str,
        *,
        default_channel: str | None = None,
        default_user: str | None = None,
        username: str | None = None,
        icon_url: str | None = None,
        mention: str | Sequence[str] | None = None,
        verify: bool | str = True,
        timeout: float | tuple[float, float] = (5.0, 30.0),
        allow_insecure: bool = False,
    ) -> None:
        values = {"webhook_url": webhook_url, "verify": verify, "timeout": timeout}
        values |= {"allow_insecure": allow_insecure, "mention": mention}
        settings = make_settings(values, {k: f"WebhookClient({k}=...)" for k in values})
        base, key = settings.url, str(settings.webhook_url).rsplit("/", 1)[1]
        _register_key(key)
        check_plain_http(base, settings.allow_insecure, "the webhook URL (a credential)")
        self._key = key
        self._post_url = f"{base}/hooks/{key}"
        self.server_url = base
        fingerprint = hashlib.sha256(key.encode()).hexdigest()[:12]
        # the client's identity (outbox, sender): the server and which webhook, not the key
        self.url = f"{base}/hooks/webhook-{fingerprint}"
        self.team_name: str | None = None
        self.username = username
        self.icon_url = icon_url
        self.timeout = settings.timeout
        super().__init__(default_channel, default_user, settings.mention)
        self._targets: dict[str, tuple[str, str | None]] = {}  # id -> (kind, name)
        self.hook_store = None
        self.request_count = 0
        self._session = new_session(settings.verify)

    def __repr__(self) -> str:
        return f"WebhookClient(url='{self.server_url}/hooks/***')"

    @property
    def where(self) -> str:
        """How messages name this webhook (never its key)."""
        return f"the incoming webhook on {self.server_url}"

    def _close_session(self) -> None:
        self._session.close()

    # ------------------------------------------------------------ refusals

    def refuse_in_background(self, kind: str, *, files: Any = None) -> None:
        """Called by the background sender before it queues: what cannot be sent is
        refused now, in the caller, as the blocking calls do."""
        self._check_files(files)
        if kind == "update":
            self.send_update("", "(queued update)")

    def _refuse(self, what: str, why: str) -> WebhookModeError:
        return WebhookModeError(
            f"{what} is not possible in webhook mode: {why}. To do it, {GET_A_BOT}."
        )

    def _check_files(self, files: Any) -> list[Any]:
        """No files at all (``None`` or an empty list), or :class:`WebhookModeError`."""
        if files is None or (isinstance(files, (list, tuple)) and not files):
            return []
        raise self._refuse("sending files", "an incoming webhook posts text only and cannot upload")

    # ------------------------------------------------------------ sending

    def _send(
        self, kind: str, name: str | None, message: str, specs: Any, id: str | None, **kw: Any
    ) -> SentMessage:
        """Post to ``@user``, ``channel`` or the webhook's channel. The result has no post id
        (a webhook answers only ``ok``). ``id`` is remembered in this process so that a later
        edit of it gets a clear error (and ``reply`` finds its target). ``kw``: ``root_id``
        (refused), ``props``, ``pending_post_id`` (not used: webhooks do not de-duplicate)."""
        if kw["root_id"] is not None:
            raise self._refuse("a reply in a thread (root_id)", "a webhook has no threads")
        self._post(message, kind, name, kw["props"])
        if id is not None:
            with self._lock:
                self._targets[id] = (kind, name)
        return SentMessage(
            id=id, post_id="", channel_id="", root_id=None, file_ids=(), permalink=""
        )

    def reply(
        self, id: str, message: str, files: Any = None, *, pending_post_id: Any = None
    ) -> SentMessage:
        """A new message to the target of message ``id`` (a webhook has no threads).

        Files cannot be sent: they are named in a line at the end instead, so that the
        final state of a cell or a progress bar still arrives.
        """
        check_id(id)
        with self._lock:
            target = self._targets.get(id)
        if target is None:
            raise self._refuse(
                f"replying to message {id!r}",
                "it was not sent by this process, and an incoming webhook gives no post id "
                "to find it by",
            )
        message = check_message(message, has_files=False)
        names = _file_names(files)
        if names:
            message += f"\n\n({len(names)} file(s) not attached, webhook mode: {', '.join(names)})"
        self._post(message, target[0], target[1], None)
        return SentMessage(None, post_id="", channel_id="", root_id=None, file_ids=(), permalink="")

    def send_update(
        self, message: str, id: str, files: Any = None, *, props: Any = None
    ) -> SentMessage:
        """Always :class:`WebhookModeError`: a webhook's posts cannot be edited."""
        raise self._refuse(
            f"updating message {id!r} (send_update)",
            "an incoming webhook answers only 'ok', without a post id, so its posts can never "
            "be edited",
        )

    # ------------------------------------------------------------ ids and hooks

    def has_message(self, id: str) -> bool:
        """True for an id sent in this process (so that an edit of it is refused clearly)."""
        with self._lock:
            return id in self._targets

    message_in_cache = has_message

    def forget(self, id: str) -> bool:
        check_id(id)
        with self._lock:
            return self._targets.pop(id, None) is not None

    @property
    def hooks(self) -> Mapping[str, MessageHook]:
        """Always empty: a webhook's posts have no hook."""
        return types.MappingProxyType({})

    def _remember(self, hook: MessageHook) -> None:
        """Hooks of a token client are not carried over (nothing to edit them with)."""

    def write_message_hook_to_file(self, id: str, filename: Any) -> Any:
        raise self._refuse(
            f"exporting the hook of message {id!r}",
            "an incoming webhook gives no post id, so another process cannot find the message",
        )

    def read_message_hook_from_file(self, filename: Any) -> Any:
        raise self._refuse(
            f"importing the hook file {filename}",
            "a message cannot be edited through an incoming webhook",
        )

    add_hook = read_message_hook_from_file

    # ------------------------------------------------------------ the request

    def _payload(
        self, message: str, kind: str, name: str | None, props: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"text": message}
        if name:
            payload["channel"] = f"@{name}" if kind == "user" else name
        if self.username:
            payload["username"] = self.username
        if self.icon_url:
            payload["icon_url"] = self.icon_url
        if props:
            payload["props"] = dict(props)
        return payload

    def _post(
        self, message: str, kind: str, name: str | None, props: Mapping[str, Any] | None
    ) -> None:
        """POST the payload; repeat only what certainly did not reach the server."""
        payload = self._payload(message, kind, name, props)
        target = (
            f"user {name!r}"
            if kind == "user"
            else (f"channel {name!r}" if name else "the webhook's channel")
        )
        what = f"the message to {target} through {self.where}"
        start = time.monotonic()
        for attempt in itertools.count(1):
            t0 = time.monotonic()
            try:
                response = self._session.post(
                    self._post_url, json=payload, timeout=self.timeout, allow_redirects=False
                )
            except requests.exceptions.RequestException as exc:
                kind_text, reached = classify(exc)
                ms = (time.monotonic() - t0) * 1000
                logger.debug("POST /hooks/*** failed (%s) after %.0f ms", kind_text, ms)
                reason = self._redact(short_reason(exc))
                if kind_text == "TLS error":
                    raise NetworkError(
                        f"TLS error talking to {self.server_url} ({what}): {reason}; check the "
                        "certificate, or set verify to the path of a CA bundle"
                    ) from None
                if reached:
                    raise DeliveryUnknownError(
                        f"{kind_text} after the request was sent ({what}): it may or may not "
                        "have been posted. Not repeated, because an incoming webhook cannot "
                        "tell a repeat from a new message (it could post twice)"
                    ) from None
                pause = _backoff(attempt)
                failure: Exception = NetworkError(
                    f"{kind_text} talking to {self.server_url} ({what}) after {attempt} "
                    f"attempt(s): {reason}; nothing was posted"
                )
            else:
                self.request_count += 1
                ms = (time.monotonic() - t0) * 1000
                logger.debug("POST /hooks/*** %s %.0f ms", response.status_code, ms)
                if 200 <= response.status_code < 300:
                    return
                if response.status_code != 429:
                    raise self._error_for(response, what, name, kind)
                pause = min(wait_hint(response) or _backoff(attempt), RETRY_BUDGET)
                failure = RateLimitedError(
                    f"{self.server_url} is rate limiting ({what}); nothing was posted",
                    retry_after=pause,
                    status_code=429,
                )
            if attempt >= MAX_ATTEMPTS or time.monotonic() + pause - start >= RETRY_BUDGET:
                raise failure from None
            time.sleep(pause)

    def _error_for(
        self, response: requests.Response, what: str, name: str | None, kind: str
    ) -> Exception:
        status = response.status_code
        body = json_body(response)
        info = {
            "status_code": status,
            "error_id": body.get("id") or None,
            "request_id": body.get("request_id") or response.headers.get("X-Request-Id"),
            "server_message": self._redact(str(body.get("message") or "")) or None,
        }
        if status >= 500 and status != 501:
            return DeliveryUnknownError(
                f"{self.server_url} failed with {status} ({what}): it may or may not have "
                "been posted; not repeated, because an incoming webhook cannot tell a repeat "
                "from a new message",
                status_code=status,
            )
        if status == 501:
            return APIError(
                f"incoming webhooks are disabled on {self.server_url} ({what}): an admin must "
                f"turn on Enable Incoming Webhooks, or {GET_A_BOT}",
                **info,
            )
        if status == 403:
            return PermissionDeniedError(
                f"{self.server_url} refused {what} (403): the webhook is locked to its own "
                "channel, or its owner cannot post in that private channel. Send to the "
                "webhook's channel (no channel), or use a webhook for that channel",
                **info,
            )
        if status == 404:
            return NotFoundError(
                f"{what}: no such channel on {self.server_url} (404); use the channel's name "
                "as in its URL",
                **info,
            )
        if status == 413:
            return APIError(f"{what} is too large for {self.server_url} (413)", **info)
        if 300 <= status < 400:
            return APIError(
                f"{self.server_url} redirects the webhook request ({status}): set the webhook "
                "URL to the address it redirects to (https instead of http?)",
                **info,
            )
        hint = "no such user, or " if kind == "user" else ""
        return APIError(
            f"{self.server_url} refused {what} ({status}): {hint}the webhook does not exist "
            "(deleted, or a wrong URL) or the payload was refused",
            **info,
        )

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key in text else text

    # ------------------------------------------------------------ diagnostics

    def test_connection(self) -> ConnectionReport:
        """Check the server and the webhook without posting anything.

        The webhook is asked to post to a channel that does not exist: a webhook that
        exists answers 404 (nothing is posted), an unknown one 400, and a server with
        incoming webhooks turned off 501.
        """
        report = ConnectionReport(server_url=self.server_url)
        checks = report.checks
        try:
            response = self._session.get(
                f"{self.server_url}/api/v4/system/ping", timeout=self.timeout
            )
        except requests.exceptions.RequestException as exc:
            kind_text, _ = classify(exc)
            checks.append(
                Check("server", False, f"{kind_text}: {self.server_url}: {short_reason(exc)}")
            )
            return report
        version = response.headers.get("X-Version-Id", "")
        shown = ".".join(map(str, parse_version(version) or ())) or "?"
        report.server_version = shown if shown != "?" else None
        if response.status_code != 200:
            status = response.status_code
            what = f"{self.server_url} answered {status} to system/ping: is it a Mattermost server?"
            checks.append(Check("server", False, what))
            return report
        checks.append(Check("server", True, f"{self.server_url} answers, Mattermost {shown}"))
        probe = f"mattermost-notify-probe-{random.getrandbits(48):012x}"
        try:
            answer = self._session.post(
                self._post_url,
                json={"text": "connection check", "channel": probe},
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.exceptions.RequestException as exc:
            kind_text, _ = classify(exc)
            checks.append(
                Check("webhook", False, f"{kind_text}: {self._redact(short_reason(exc))}")
            )
            return report
        ok, detail = {
            404: (True, f"{self.where} exists (checked without posting)"),
            501: (False, f"incoming webhooks are disabled on {self.server_url}"),
            400: (
                False,
                f"{self.server_url} does not know this webhook (deleted, or a wrong URL): "
                "copy it again from Integrations > Incoming Webhooks",
            ),
        }.get(
            answer.status_code,
            (None, f"not checked: the server answered {answer.status_code} to a probe"),
        )
        checks.append(Check("webhook", ok, detail))
        mode = "webhook mode: messages and channel/@user targets; no edits, files or threads"
        checks.append(Check("mode", True, mode, warning=True))
        return report


# ---------------------------------------------------------------- helpers


def _file_names(files: Any) -> list[str]:
    if files is None:
        return []
    if isinstance(files, (str, bytes)) or not isinstance(files, Sequence):
        files = [files]
    return [os.path.basename(os.fspath(f)) for f in files]


def _backoff(attempt: int) -> float:
    base = min(4.0, 0.25 * 2 ** (attempt - 1))
    return random.uniform(base / 2, base)
