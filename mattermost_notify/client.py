"""The client: :class:`Notify` (the original package's class), lean on the wire.

Requests per operation once the ids are known (in this process, or from the id cache on
disk, :mod:`mattermost_notify.idcache`, so also in a fresh process):

* a text message: 1 (``POST /posts``);
* a message with files: 2 (one multipart ``POST /files`` with ``channel_id`` first and the
  files streamed from disk, then ``POST /posts`` with the ``file_ids``); more uploads only
  when the files together exceed the server's per-request limit (MaxFileSize);
* an update: 1 (``PUT /posts/{id}/patch``), also through a hook file in a new process;
  it needs the server's edit time limit (``GET /config/client``, shared with the other
  limits), which comes from the id cache or is read once per client;
* the first DM to a user: ``GET /users/username/x``, ``GET /users/me`` (once, unless a
  post already told the bot's id), ``POST /channels/direct``, then the post;
* the first message to a channel: ``GET /teams/name/{team}/channels/name/{channel}``
  (the team is never looked up on its own), then the post.

The server's limits are read when needed, once: from the id cache, or after an upload
answered 413, or for an update or a message longer than 4000 runes. Messages are counted
in runes (code points) against the ``MaxPostSize`` the server publishes (16383 on
current servers, 4000 on older PostgreSQL installs). A longer *new* message is split
into several posts in one thread, at line ends where possible; a longer *update* is cut,
with a visible marker at the end.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self
from urllib.parse import urlsplit

from ._checks import (
    MAX_FILES_PER_POST,
    FileSpec,
    check_files,
    check_id,
    check_message,
    check_name,
    check_props,
    check_target,
    cut_message,
    plan_posts,
)
from .config import make_settings, parse_mentions
from .errors import (
    APIError,
    ConfigurationError,
    FileError,
    HookError,
    MattermostNotifyError,
    MessageError,
    NotFoundError,
    PermissionDeniedError,
    warn,
)
from .hooks import HookStore, MessageHook, now_iso, read_hook, write_hook
from .idcache import IdCache, channel_key, dm_key, stale_answer, user_key
from .refusals import (
    EDIT_TIME_LIMIT,
    channel_not_found,
    is_restricted_dm,
    not_a_channel_member,
    restricted_dm,
)
from .server_config import MIN_POST_RUNES, ServerConfig

if TYPE_CHECKING:
    from urllib3.util.retry import Retry

    from .sender import BackgroundSender
    from .transport import Transport

__all__ = [
    "Check",
    "ConnectionReport",
    "Notify",
    "SentMessage",
]

MULTIPART_OVERHEAD = 512  # bytes the server allows above MaxFileSize per request
PER_FILE_OVERHEAD = 1024  # rough multipart headers per file part, for batching
FILES_SINCE = (10, 5, 0)

log = logging.getLogger("mattermost_notify.client")


def edit_margin(limit: float) -> float:
    """Seconds before the server's edit time limit at which an update goes to a new post
    instead: room for the request's own time, retries and clocks (half the limit at most)."""
    return min(limit / 2, max(1.0, min(limit * 0.05, 30.0)))


def _epoch(iso: str | None) -> float | None:
    """Seconds since the epoch of a hook's ``created_at`` (None when missing or unreadable)."""
    try:
        return datetime.fromisoformat(iso).timestamp() if iso else None
    except ValueError:
        return None


Files = Sequence[str | os.PathLike[str]] | str | os.PathLike[str] | None
"""One path or a list of paths."""


@dataclass(frozen=True)
class SentMessage:
    """What a send or an update returns."""

    id: str | None
    post_id: str
    channel_id: str
    root_id: str | None
    file_ids: tuple[str, ...]
    permalink: str
    post_ids: tuple[str, ...] = field(default=())
    """Every post of the message (more than one when it was split or had 11+ files)."""

    def __str__(self) -> str:
        return self.permalink


@dataclass(frozen=True)
class Check:
    """One line of a :class:`ConnectionReport`; ``ok`` is None when skipped.

    ``warning``: the check passed but something will not work as expected (shown as
    ``warn``; the report stays ok).
    """

    name: str
    ok: bool | None
    detail: str = ""
    warning: bool = False

    def __str__(self) -> str:
        mark = "warn" if self.warning else {True: "ok", False: "FAIL", None: "skip"}[self.ok]
        return f"{mark:4} {self.name}" + (f": {self.detail}" if self.detail else "")


_warned_own_user: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def own_user_advice(user_name: str) -> str:
    """Why a message to the token's own user alerts nobody, and what to do instead."""
    return (
        f"@{user_name} is the token's own user (a personal access token): Mattermost never "
        "alerts you about your own posts, so these messages arrive silently. Use a bot "
        f"account's token, or post to a channel and mention @{user_name}"
    )


def _warn_own_user_once(url: str, user_name: str) -> None:
    """One warning per process and (server, user); the message is still sent."""
    with _warned_lock:
        if (url, user_name) in _warned_own_user:
            return
        _warned_own_user.add((url, user_name))
    warn(f"mattermost_notify: {own_user_advice(user_name)}")


@dataclass
class ConnectionReport:
    """The result of :meth:`Notify.test_connection`: one :class:`Check` per step."""

    server_url: str
    server_version: str | None = None
    bot_name: str | None = None
    is_bot: bool | None = None
    team_name: str | None = None
    team_member: bool | None = None
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.ok is not False for check in self.checks) and bool(self.checks)

    @property
    def error(self) -> str | None:
        failed = [c for c in self.checks if c.ok is False]
        return f"{failed[0].name}: {failed[0].detail}" if failed else None

    def lines(self) -> list[str]:
        return [str(check) for check in self.checks]

    def __str__(self) -> str:
        return "\n".join(self.lines())


def _mime_type(name: str) -> str:
    import mimetypes  # only when files are sent (it reads the system's mime.types)

    return mimetypes.guess_type(name)[0] or "application/octet-stream"


class BaseClient:
    """What :class:`Notify` and :class:`~mattermost_notify.webhook.WebhookClient` share:
    the default target and the one rule that resolves it, mentions, ``send`` and its
    ``send_to_user``/``send_to_channel`` forms, the background sender and the life cycle.
    """

    has_own_channel = False
    """True when a message without any target has somewhere to go (a webhook's channel)."""

    # what each kind of client does its own way
    _check_files: Callable[[Any], list[FileSpec]]
    _send: Callable[..., SentMessage]
    _close_session: Callable[[], None]

    def __init__(
        self, default_channel: str | None, default_user: str | None, mention: tuple[str, ...]
    ) -> None:
        #: user (or group) names the library's completion and failure messages in channels
        #: mention (``mention`` setting, ``MATTERMOST_NOTIFY_MENTION``)
        self.mention = mention
        self._lock = threading.RLock()
        self._sender: BackgroundSender | None = None
        self._closed = False
        self._default_channel: str | None = None
        self._default_user: str | None = None
        if default_channel is not None:
            self.set_default_channel(default_channel)
        if default_user is not None:
            self.set_default_user(default_user)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self, timeout: float | None = 5.0) -> None:
        """Flush and stop the background sender (if one was started), close the session."""
        if self._closed:
            return
        self._closed = True
        if (sender := self._sender) is not None:
            try:
                sender.close(timeout=5.0 if timeout is None else timeout)
            except Exception:
                log.warning("closing the background sender failed", exc_info=True)
        self._close_session()

    @property
    def sender(self) -> BackgroundSender:
        """The background sender of this client, created on first use."""
        with self._lock:
            if self._sender is None:
                from .sender import BackgroundSender

                self._sender = BackgroundSender(self)  # type: ignore[arg-type]
            return self._sender

    def set_default_channel(self, channel_name: str) -> None:
        """Send to ``channel_name`` when no target is given (looked up when first used)."""
        self._default_channel = check_name(channel_name, "channel name")

    def set_default_user(self, user_name: str) -> None:
        """Send to ``user_name`` when no target is given (looked up when first used)."""
        self._default_user = check_name(user_name, "user name")

    @property
    def default_channel(self) -> str | None:
        return self._default_channel

    @property
    def default_user(self) -> str | None:
        return self._default_user

    def resolve_target(
        self,
        user: str | None = None,
        channel: str | None = None,
        *,
        only: Literal["user", "channel"] | None = None,
    ) -> tuple[str, str]:
        """``("user", name)`` or ``("channel", name)``: where a message without a target goes.

        The one place that decides it. An explicit ``user`` or ``channel`` wins; else the
        default user; else the default channel; else :class:`MessageError` (a webhook
        client: ``("channel", None)``, the webhook's own channel). With ``only`` just the
        default of that kind counts (``send_to_user``, ``notify_channel``, ...).
        Names come back normalised (no ``@``/``~``, lower case). Every caller that names
        no target (``send``, ``notify()``, the background sender, ``%notify``,
        ``mattermost-notify send``) passes ``None`` on to here.
        """
        check_target(user, channel)
        if user is not None:
            return "user", check_name(user, "user name")
        if channel is not None:
            return "channel", check_name(channel, "channel name")
        if self._default_user and only != "channel":
            return "user", self._default_user
        if self._default_channel and only != "user":
            return "channel", self._default_channel
        if self.has_own_channel and only != "user":
            return "channel", None  # type: ignore[return-value]
        if only is not None:
            raise MessageError(
                f"no {only} name given and no default {only} set "
                f"(wakeup(always_send_to_{only}=...) or set_default_{only}())"
            )
        raise MessageError(
            "no user or channel given and no default set: pass user_name= or channel_name=, "
            "or set a default (wakeup(always_send_to_user=...), default_user/default_channel)"
        )

    def mention_text(
        self,
        user: str | None = None,
        channel: str | None = None,
        *,
        mention: str | Sequence[str] | None = None,
    ) -> str:
        """``"@alice @bob "``: what to put in front of a message that must alert people.

        ``mention`` (given to a progress bar or magic) is used for any target; otherwise the
        client's ``mention`` setting, and only when the target is a channel: in a direct
        message the recipient is alerted anyway. ``""`` when nobody is to be mentioned.
        """
        if mention is not None:
            names = parse_mentions(mention, "mention=")
        else:
            try:
                kind, _ = self.resolve_target(user, channel)
            except MessageError:
                return ""
            names = self.mention if kind == "channel" else ()
        return "".join(f"@{name} " for name in names)

    def send(
        self,
        message: str,
        *,
        user: str | None = None,
        channel: str | None = None,
        files: Files = None,
        id: str | None = None,
        root_id: str | None = None,
        props: Mapping[str, Any] | None = None,
        pending_post_id: str | None = None,
    ) -> SentMessage:
        """Send a new message to ``user`` (a DM) or ``channel`` (or the default target).

        Everything (message, target, id, every file) is checked before the first request
        that creates something, so a bad input leaves nothing on the server.
        ``pending_post_id`` lets a caller that retries a whole send (the background
        sender, the outbox) keep one de-duplication key per logical message.
        """
        return self._send_to(
            None,
            message,
            user=user,
            channel=channel,
            files=files,
            id=id,
            root_id=root_id,
            props=props,
            pending_post_id=pending_post_id,
        )

    def _send_to(
        self,
        only: Literal["user", "channel"] | None,
        message: str,
        *,
        user: str | None = None,
        channel: str | None = None,
        files: Files = None,
        id: str | None = None,
        root_id: str | None = None,
        props: Mapping[str, Any] | None = None,
        pending_post_id: str | None = None,
    ) -> SentMessage:
        """``send`` to ``resolve_target(user, channel, only=only)``: with ``only`` the
        default of that kind (a webhook's own channel for ``"channel"``), never the other."""
        specs = self._check_files(files)
        message = check_message(message, has_files=bool(specs))
        if id is not None:
            check_id(id)
        kind, name = self.resolve_target(user, channel, only=only)
        props = check_props(props)
        if root_id is not None and not isinstance(root_id, str):
            raise MessageError(f"root_id must be a post id string, got {type(root_id).__name__}")
        return self._send(
            kind,
            name,
            message,
            specs,
            id,
            root_id=root_id,
            props=props,
            pending_post_id=pending_post_id,
        )

    def send_to_user(
        self, message: str, user_name: str | None = None, files: Files = None, id: str | None = None
    ) -> SentMessage:
        """Send a direct message to ``user_name`` (or the default user)."""
        return self._send_to("user", message, user=user_name, files=files, id=id)

    def send_to_channel(
        self,
        message: str,
        channel_name: str | None = None,
        files: Files = None,
        id: str | None = None,
    ) -> SentMessage:
        """Send a message to ``channel_name`` (or the default channel; a webhook's own
        channel when it has none, never the default user)."""
        return self._send_to("channel", message, channel=channel_name, files=files, id=id)


class Notify(BaseClient):
    """A client for one Mattermost server and one bot token.

    Nothing is sent when the client is created; the bot's id, the team, users and
    channels are looked up when first needed and cached.

    ``hook_store``: a :class:`~mattermost_notify.hooks.HookStore` (or a path) to which
    every message hook is written through, and where ``send_update`` looks up ids it
    does not have in memory (hooks then survive a kernel restart).
    """

    def __init__(
        self,
        token: str,
        url: str,
        team_name: str | None = None,
        *,
        default_channel: str | None = None,
        default_user: str | None = None,
        verify: bool | str = True,
        timeout: float | tuple[float, float] = (5.0, 30.0),
        allow_insecure: bool = False,
        hook_store: HookStore | str | os.PathLike[str] | None = None,
        retry: Retry | int | bool | None = None,
        mention: str | Sequence[str] | None = None,
        id_cache: IdCache | bool = True,
    ) -> None:
        # notify-mattermost 0.1.3 took Notify(url, token, team_name): accept that order too
        if (
            isinstance(token, str)
            and isinstance(url, str)
            and token.startswith(("http://", "https://"))
            and not url.startswith(("http://", "https://"))
        ):
            token, url = url, token
        values = {"url": url, "token": token, "team_name": team_name, "mention": mention}
        values |= {"verify": verify, "timeout": timeout, "allow_insecure": allow_insecure}
        settings = make_settings(
            values, {k: f"Notify({k}=...)" for k in ("url", "token", "mention")}
        )
        from .transport import Transport

        self.url: str = settings.url
        self.team_name: str | None = settings.team_name
        self._transport: Transport = Transport(
            settings.url,
            settings.token,
            verify=settings.verify,
            timeout=settings.timeout,
            allow_insecure=settings.allow_insecure,
            retry=retry,
        )
        self.timeout = settings.timeout
        super().__init__(default_channel, default_user, settings.mention)
        self._me: dict[str, Any] | None = None
        self._user_ids: dict[str, str] = {}
        self._channel_ids: dict[tuple[str, str], str] = {}
        self._dm_channels: dict[str, str] = {}
        self._channel_names: dict[str, tuple[str, str]] = {}  # channel id -> (kind, name)
        self._hooks: dict[str, MessageHook] = {}
        self._targets: dict[str, str] = {}  # id -> channel id it was sent to
        self._server_config: ServerConfig | None = None
        self._posted_at: dict[str, float] = {}  # post id -> time.time() just before creating it
        self._learned_edit_limit: float | None = None  # from a refusal, when not published
        self._limits_fetched = False  # this process asked the server (not just the id cache)
        if isinstance(id_cache, IdCache):
            self.id_cache = id_cache
        else:
            self.id_cache = IdCache(settings.url, settings.token, enabled=bool(id_cache))
        if isinstance(hook_store, (str, os.PathLike)):
            hook_store = HookStore(hook_store)
        self.hook_store: HookStore | None = hook_store

    def __repr__(self) -> str:
        return f"Notify(url={self.url!r}, team_name={self.team_name!r}, token='***')"

    @property
    def transport(self) -> Transport:
        return self._transport

    def _close_session(self) -> None:
        self._transport.close()

    @property
    def server_version(self) -> tuple[int, int, int] | None:
        return self._transport.server_version

    # ------------------------------------------------------------ look-ups

    def _whoami(self) -> dict[str, Any]:
        if self._me is None:
            me = self._transport.get("/users/me", what="the bot's own user (users/me)")
            with self._lock:
                self._me = me
            self.id_cache.put("bot", str(me["id"]))
        return self._me

    @property
    def bot_user_id(self) -> str:
        return self._known_bot_id() or str(self._whoami()["id"])

    def _known_bot_id(self) -> str | None:
        """The bot's user id if this client knows it (memory or id cache), no request."""
        if self._me:
            return str(self._me["id"])
        cached = self.id_cache.get("bot")
        if isinstance(cached, str) and cached:
            with self._lock:
                if self._me is None:
                    self._me = {"id": cached}
            return cached
        return None

    def _cached_id(self, memory: dict[Any, str], key: Any, disk_key: str) -> str | None:
        with self._lock:
            cached = memory.get(key)
        if cached:
            return cached
        cached = self.id_cache.get(disk_key)
        if isinstance(cached, str) and cached:
            with self._lock:
                memory[key] = cached
            return cached
        return None

    def _user_id(self, user_name: str) -> str:
        cached = self._cached_id(self._user_ids, user_name, user_key(user_name))
        if cached:
            return cached
        user = self._transport.get(f"/users/username/{user_name}", what=f"user {user_name!r}")
        with self._lock:
            self._user_ids[user_name] = user["id"]
        self.id_cache.put(user_key(user_name), str(user["id"]))
        return str(user["id"])

    def _dm_channel(self, user_name: str) -> str:
        user_id = self._user_id(user_name)
        cached = self._cached_id(self._dm_channels, user_id, dm_key(user_id))
        if cached:
            with self._lock:
                self._channel_names.setdefault(cached, ("user", user_name))
            return cached
        me = self.bot_user_id
        if user_id == me:
            _warn_own_user_once(self.url, user_name)
        try:
            channel = self._transport.post(
                "/channels/direct",
                [me, user_id],
                what=f"the direct channel with user {user_name!r}",
            )
        except APIError as exc:
            if is_restricted_dm(exc):
                raise restricted_dm(
                    exc, server=self.url, user_name=user_name, bot_name=self._bot_name()
                ) from None
            raise
        with self._lock:
            self._dm_channels[user_id] = channel["id"]
            self._channel_names[channel["id"]] = ("user", user_name)
        self.id_cache.put(dm_key(user_id), str(channel["id"]))
        return str(channel["id"])

    def _channel_id(self, channel_name: str) -> str:
        team = self.team_name
        if not team:
            raise ConfigurationError(
                f"cannot find channel {channel_name!r}: no team_name is configured for {self.url}"
            )
        key = (team, channel_name)
        cached = self._cached_id(self._channel_ids, key, channel_key(team, channel_name))
        if cached:
            with self._lock:
                self._channel_names.setdefault(cached, ("channel", channel_name))
            return cached
        try:
            channel = self._transport.get(
                f"/teams/name/{team}/channels/name/{channel_name}",
                what=f"channel {channel_name!r} in team {team!r}",
            )
        except NotFoundError as exc:
            raise channel_not_found(
                exc,
                server=self.url,
                channel_name=channel_name,
                team_name=team,
                bot_name=self._bot_name(),
            ) from None
        with self._lock:
            self._channel_ids[key] = channel["id"]
            self._channel_names[channel["id"]] = ("channel", channel_name)
        self.id_cache.put(channel_key(team, channel_name), str(channel["id"]))
        return str(channel["id"])

    def _forget_target(self, kind: str, name: str) -> None:
        """Drop what is cached for a target (memory and disk): the server refused it."""
        with self._lock:
            if kind == "user":
                user_id = self._user_ids.pop(name, None)
                if user_id:
                    self._dm_channels.pop(user_id, None)
            else:
                user_id = None
                self._channel_ids.pop((self.team_name or "", name), None)
        self.id_cache.forget_target(kind, name, self.team_name, user_id)

    def _bot_name(self) -> str | None:
        """The bot's username, for advice in an error (looked up only then; None if unknown)."""
        if not (self._me and self._me.get("username")):
            with contextlib.suppress(MattermostNotifyError, KeyError, TypeError):
                me = self._transport.get("/users/me", what="the bot's own user", retry=False)
                with self._lock:
                    self._me = me
        name = self._me.get("username") if self._me else None
        return str(name) if name else None

    def _channel_kind_and_name(self, channel_id: str) -> tuple[str, str | None]:
        """("user", name) for a DM, ("channel", name) otherwise; asked of the server only for
        a channel this client did not resolve itself (a hook from a file)."""
        with self._lock:
            known = self._channel_names.get(channel_id)
        if known:
            return known
        try:
            channel = self._transport.get(
                f"/channels/{channel_id}", what=f"channel {channel_id}", retry=False
            )
            if channel.get("type") == "D":
                me = self._known_bot_id() or self.bot_user_id
                ids = [i for i in str(channel.get("name", "")).split("__") if i and i != me]
                other = self._transport.get(
                    f"/users/{ids[0] if ids else me}", what="the DM's user", retry=False
                )
                return "user", str(other.get("username") or "") or None
            return "channel", str(channel.get("name") or "") or None
        except (MattermostNotifyError, KeyError, TypeError, AttributeError):
            return "channel", None

    def _is_channel_member(self, channel_id: str) -> bool | None:
        """``GET /channels/{id}/members/{bot}``: None when the server did not say."""
        try:
            self._transport.get(
                f"/channels/{channel_id}/members/{self.bot_user_id}",
                what="the bot's channel membership",
                retry=False,
                keys=(),
            )
        except (PermissionDeniedError, NotFoundError):
            return False
        except MattermostNotifyError:
            return None
        return True

    def _explain_refusal(self, exc: APIError, channel_id: str) -> APIError:
        """``exc`` for a post or upload in ``channel_id``, or a clearer error when the cause
        is known: a restricted DM, or a channel the bot is not a member of."""
        if is_restricted_dm(exc):
            _, user_name = self._channel_kind_and_name(channel_id)
            return restricted_dm(
                exc, server=self.url, user_name=user_name, bot_name=self._bot_name()
            )
        if isinstance(exc, PermissionDeniedError):
            kind, name = self._channel_kind_and_name(channel_id)
            if kind == "channel":
                return not_a_channel_member(
                    exc,
                    server=self.url,
                    channel_name=name,
                    team_name=self.team_name,
                    bot_name=self._bot_name(),
                    member=self._is_channel_member(channel_id),
                )
        return exc

    def server_config(self, *, refresh: bool = False) -> ServerConfig:
        """What the server publishes (``GET /config/client``): MaxPostSize, MaxFileSize,
        PostEditTimeLimit... Asked of the server at most once per client, and only when
        the id cache has no fresh copy, or with ``refresh`` (a cached value refused
        something). Empty (every field None) when the server refuses it."""
        known = self._known_server_config()
        if known is not None and (not refresh or self._limits_fetched):
            return known
        try:
            data = self._transport.get(
                "/config/client", params={"format": "old"}, what="the server's limits", keys=()
            )
        except APIError:
            data = None
        config = ServerConfig.from_client_config(data)
        with self._lock:
            self._server_config = config
            self._limits_fetched = True
        if config.known and isinstance(data, Mapping):
            self.id_cache.put("limits", dict(data))
        return config

    def _known_server_config(self) -> ServerConfig | None:
        """The server's config if known without a request (memory, then the id cache)."""
        with self._lock:
            if self._server_config is not None:
                return self._server_config
        cached = self.id_cache.get("limits")
        if not isinstance(cached, dict):
            return None
        config = ServerConfig.from_client_config(cached)
        with self._lock:
            if self._server_config is None:
                self._server_config = config
            return self._server_config

    def _cached_version(self) -> tuple[int, int, int] | None:
        from .transport import parse_version

        cached = self.id_cache.get("version")
        return parse_version(cached) if isinstance(cached, str) else None

    def _max_runes(self, length: int) -> int:
        """The message limit, looked up only for a message that some server would refuse."""
        if length <= MIN_POST_RUNES:
            return MIN_POST_RUNES
        return self.server_config().post_runes

    # ------------------------------------------------------------ validation

    def _check_files(self, files: Any) -> list[FileSpec]:
        """Every file: exists, regular, readable, under MaxFileSize. Nothing is sent yet.

        The server's MaxFileSize is used when it is known without a request (a cached
        copy is confirmed with the server before it refuses a file); otherwise the
        upload's 413 tells (see :meth:`_upload`).
        """
        specs = check_files(files)
        if specs:
            known = self._known_server_config()
            self._check_sizes(specs, known.max_file_size if known else None)
        return specs

    def _check_sizes(self, specs: Sequence[FileSpec], limit: int | None) -> None:
        if not limit or all(spec.size <= limit for spec in specs):
            return
        if not self._limits_fetched:
            # the limit came from the cache: the server may allow more by now
            limit = self.server_config(refresh=True).max_file_size
            if not limit:
                return
        for spec in specs:
            if spec.size > limit:
                raise FileError(
                    f"file {str(spec.path)!r} is {spec.size} bytes; {self.url} accepts at "
                    f"most {limit} bytes per file (MaxFileSize)",
                    str(spec.path),
                )

    def _target_channel(self, kind: str, name: str) -> str:
        return self._dm_channel(name) if kind == "user" else self._channel_id(name)

    # ------------------------------------------------------------ files on the wire

    def _upload(
        self, channel_id: str, specs: Sequence[FileSpec], *, explain: bool = True
    ) -> list[str]:
        """Upload ``specs`` (streamed) in as few multipart requests as the limit allows.

        Without a known limit everything goes in one request; a 413 then fetches the
        server's limits, names a file that is too large, or splits the upload.
        """
        if not specs:
            return []
        try:
            return self._upload_batches(channel_id, specs, explain)
        except APIError as exc:
            if exc.status_code != 413 or self._limits_fetched:
                raise
            limit = self.server_config(refresh=True).max_file_size
            if not limit:
                raise
            self._check_sizes(specs, limit)
            return self._upload_batches(channel_id, specs, explain)

    def _upload_batches(
        self, channel_id: str, specs: Sequence[FileSpec], explain: bool
    ) -> list[str]:
        known = self._known_server_config()
        limit = known.max_file_size if known else None
        batches: list[list[FileSpec]] = []
        current: list[FileSpec] = []
        size = 0
        for spec in specs:
            cost = spec.size + PER_FILE_OVERHEAD
            if current and limit and size + cost > limit + MULTIPART_OVERHEAD:
                batches.append(current)
                current, size = [], 0
            current.append(spec)
            size += cost
        batches.append(current)
        ids: list[str] = []
        for batch in batches:
            ids.extend(self._upload_batch(channel_id, batch, explain))
        return ids

    def _upload_batch(
        self, channel_id: str, batch: Sequence[FileSpec], explain: bool = True
    ) -> list[str]:
        from requests_toolbelt.multipart.encoder import MultipartEncoder

        names = ", ".join(repr(s.name) for s in batch)

        def body() -> tuple[Any, dict[str, str]]:
            fields: list[tuple[str, Any]] = [("channel_id", channel_id)]
            for spec in batch:
                mime = _mime_type(spec.name)
                try:
                    fh = open(spec.path, "rb")  # noqa: SIM115 - closed by _Closing
                except OSError as exc:
                    raise FileError(
                        f"file {str(spec.path)!r} could not be opened: {exc.strerror}",
                        str(spec.path),
                    ) from None
                fields.append(("files", (spec.name, fh, mime)))
            encoder = MultipartEncoder(fields=fields)
            return _Closing(encoder, [f[1][1] for f in fields[1:]]), {
                "Content-Type": encoder.content_type
            }

        try:
            response = self._transport.request(
                "POST", "/files", body=body, what=f"the upload of {names}"
            )
        except APIError as exc:
            raise (self._explain_refusal(exc, channel_id) if explain else exc) from None
        try:
            infos = response.json()["file_infos"]
            ids = [str(info["id"]) for info in infos]
        except (ValueError, KeyError, TypeError):
            raise APIError(
                f"{self.url} answered the upload of {names} without file ids",
                status_code=response.status_code,
            ) from None
        if len(ids) != len(batch):
            raise APIError(
                f"{self.url} stored {len(ids)} of {len(batch)} files ({names})",
                status_code=response.status_code,
            )
        return ids

    # ------------------------------------------------------------ posts

    def _create_post(
        self,
        channel_id: str,
        message: str,
        *,
        root_id: str | None,
        file_ids: Sequence[str] = (),
        props: Mapping[str, Any] | None = None,
        pending_post_id: str | None = None,
        what: str,
        explain: bool = True,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"channel_id": channel_id, "message": message}
        if root_id:
            payload["root_id"] = root_id
        if file_ids:
            payload["file_ids"] = list(file_ids)
        if props:
            payload["props"] = dict(props)
        payload["pending_post_id"] = pending_post_id or self.new_pending_post_id()
        try:
            post = self._transport.post(
                "/posts",
                payload,
                params={"set_online": "false"},
                what=what,
                creates_post=True,
            )
        except APIError as exc:
            raise (self._explain_refusal(exc, channel_id) if explain else exc) from None
        if self._me is None and isinstance(post, dict) and post.get("user_id"):
            # the author of our own post is the bot: no need for users/me later
            with self._lock:
                if self._me is None:
                    self._me = {"id": post["user_id"]}
            self.id_cache.put("bot", str(post["user_id"]))
        self._note_version()
        return post

    def _note_version(self) -> tuple[int, int, int] | None:
        """The server's version as its last answer said, kept in the id cache."""
        version = self._transport.server_version
        if version is not None:
            self.id_cache.put("version", ".".join(map(str, version)))
        return version

    def _post_message(
        self,
        channel_id: str,
        message: str,
        specs: Sequence[FileSpec],
        *,
        id: str | None,
        root_id: str | None,
        props: dict[str, Any] | None,
        pending_post_id: str | None,
        what: str,
        made: list[str] | None = None,
        explain: bool = True,
    ) -> tuple[SentMessage, dict[str, Any]]:
        """Post ``message`` and ``specs`` as the posts of :func:`plan_posts`.

        Later posts go in the thread of ``root_id`` (or of the first post); each has its
        own ``pending_post_id``, derived from the first. Returns the result and the
        server's first post. ``made`` (when given) receives each post id as it is made;
        ``explain=False`` leaves a refusal unexplained (the caller may retry elsewhere).
        """
        limit = self._max_runes(len(message))
        first_pending = pending_post_id or self.new_pending_post_id()
        post_ids: list[str] = [] if made is None else made
        file_ids_all: list[str] = []
        thread_root = root_id
        first_post: dict[str, Any] = {}
        for index, (text, batch) in enumerate(plan_posts(message, specs, limit)):
            file_ids = self._upload(channel_id, batch, explain=explain)
            post = self._create_post(
                channel_id,
                text,
                root_id=thread_root,
                file_ids=file_ids,
                props=props if index == 0 else None,
                pending_post_id=first_pending if index == 0 else f"{first_pending}:{index}",
                what=what,
                explain=explain,
            )
            attached = len(post.get("file_ids") or [])
            if attached < len(file_ids):
                raise APIError(
                    f"{self.url} attached {attached} of {len(file_ids)} files to {what} "
                    f"(post {post['id']})"
                )
            post_ids.append(str(post["id"]))
            file_ids_all.extend(file_ids)
            if index == 0:
                first_post = post
                thread_root = root_id or str(post["id"])
        result = SentMessage(
            id=id,
            post_id=post_ids[0],
            channel_id=channel_id,
            root_id=root_id,
            file_ids=tuple(file_ids_all),
            permalink=self.permalink(post_ids[0]),
            post_ids=tuple(post_ids),
        )
        return result, first_post

    def new_pending_post_id(self, key: str | None = None) -> str:
        """A fresh ``pending_post_id`` ("<bot user id>:<32 random hex digits>", or ``key``
        instead of those); reuse it to retry."""
        return f"{self._known_bot_id() or 'mattermost-notify'}:{key or os.urandom(16).hex()}"

    def permalink(self, post_id: str) -> str:
        team = self.team_name or "_redirect"
        return f"{self.url}/{team}/pl/{post_id}"

    def _target_known(self, kind: str, name: str) -> bool:
        """True when the target's id is known without a look-up (memory or id cache)."""
        if kind == "user":
            return self._cached_id(self._user_ids, name, user_key(name)) is not None
        team = self.team_name or ""
        return self._cached_id(self._channel_ids, (team, name), channel_key(team, name)) is not None

    def _send(
        self,
        kind: str,
        name: str,
        message: str,
        specs: list[FileSpec],
        id: str | None,
        *,
        root_id: str | None,
        props: dict[str, Any] | None,
        pending_post_id: str | None,
    ) -> SentMessage:
        what_target = f"user {name!r}" if kind == "user" else f"channel {name!r}"
        from_cache = self._target_known(kind, name)
        channel_id = self._target_channel(kind, name)
        if id is not None:
            with self._lock:
                previous = self._targets.get(id)
            if previous is None and self.hook_store is not None and id not in self._hooks:
                stored = self._store_get(id) if self._reusable(id) else None
                previous = stored.channel_id if stored else None
            if previous is not None and previous != channel_id:
                raise MessageError(
                    f"the message id {id!r} is already used for another target "
                    f"(channel {previous}); use a new id to send to {what_target}"
                )
        started = time.time()
        pending = pending_post_id or self.new_pending_post_id()
        made: list[str] = []

        def post_to(target: str, explain: bool) -> tuple[SentMessage, dict[str, Any]]:
            return self._post_message(
                target,
                message,
                specs,
                id=id,
                root_id=root_id,
                props=props,
                pending_post_id=pending,
                what=f"the message to {what_target}",
                made=made,
                explain=explain,
            )

        try:
            result, first_post = post_to(channel_id, explain=not from_cache)
        except APIError as exc:
            if not from_cache:
                raise
            # a cached id the server refuses (channel archived, or deleted and re-created;
            # user gone): drop it and look the target up once more. Nothing was posted,
            # so the same pending_post_id is safe (the server forgets a failed one).
            if made or not stale_answer(exc.status_code, exc.error_id):
                raise self._explain_refusal(exc, channel_id) from None
            self._forget_target(kind, name)
            fresh = self._target_channel(kind, name)
            if fresh == channel_id:
                raise self._explain_refusal(exc, channel_id) from None
            channel_id = fresh
            result, first_post = post_to(channel_id, explain=True)
        if id is not None:
            with self._lock:
                self._posted_at[result.post_id] = started
            hook = MessageHook(
                id=id,
                server_url=self.url,
                bot_user_id=str(first_post.get("user_id") or self._known_bot_id() or "") or None,
                channel_id=channel_id,
                post_id=result.post_id,
                root_id=root_id,
                created_at=now_iso(),
            )
            self._remember(hook)
        return result

    def reply(
        self,
        id: str,
        message: str,
        files: Files = None,
        *,
        pending_post_id: str | None = None,
    ) -> SentMessage:
        """A new post in the thread of the message ``id`` (notifies, unlike an edit)."""
        specs = self._check_files(files)
        message = check_message(message, has_files=bool(specs))
        hook = self._hook(id)
        result, _ = self._post_message(
            hook.channel_id,
            message,
            specs,
            id=None,
            root_id=hook.root_id or hook.post_id,
            props=None,
            pending_post_id=pending_post_id,
            what=f"the reply to message {id!r}",
        )
        return result

    def send_update(
        self,
        message: str,
        id: str,
        files: Files = None,
        *,
        props: Mapping[str, Any] | None = None,
    ) -> SentMessage:
        """Edit the message sent with ``id`` (``PUT /posts/{id}/patch``, one request).

        ``files`` replaces the message's files (Mattermost 10.5 or newer; on older servers
        a :class:`FileError` names the version and nothing is changed). A message longer
        than the server's limit is cut with a visible marker.
        """
        specs = self._check_files(files)
        message = check_message(message, has_files=bool(specs) or files is not None)
        props = check_props(props)
        hook = self._hook(id)
        if len(specs) > MAX_FILES_PER_POST:
            raise FileError(
                f"an update can carry at most {MAX_FILES_PER_POST} files, got {len(specs)} "
                f"(message {id!r})"
            )
        if files is not None:
            version = self._transport.server_version
            if version is None:
                version = self._cached_version()
            if version is None or version < FILES_SINCE:
                self._transport.get("/system/ping", what="the server (system/ping)", keys=())
                version = self._note_version()
            if version is None or version < FILES_SINCE:
                shown = ".".join(map(str, version)) if version else "an unknown version"
                raise FileError(
                    f"{self.url} runs Mattermost {shown}; replacing the files of a message "
                    f"(message {id!r}) needs 10.5 or newer. Send them with reply() instead."
                )
        text = cut_message(message, self._max_runes(len(message)))
        if self._edit_window_closing(hook):
            return self._continue_in_thread(id, hook, text, specs, props)
        patch: dict[str, Any] = {"message": text}
        file_ids: list[str] = []
        if files is not None:
            file_ids = self._upload(hook.channel_id, specs)
            patch["file_ids"] = file_ids
        if props is not None:
            patch["props"] = props
        try:
            post = self._transport.put(
                f"/posts/{hook.post_id}/patch", patch, what=f"message {id!r} (post {hook.post_id})"
            )
        except APIError as exc:
            if exc.error_id == EDIT_TIME_LIMIT:
                # never retried as an edit: the message goes on in a new post, once
                limit = self._learn_edit_limit(exc, hook)
                warn(
                    f"mattermost_notify: {self.url} refused to edit message {id!r}: posts can be "
                    f"edited for {limit} s there (PostEditTimeLimit); the message goes on in "
                    "a new post in its thread"
                )
                return self._continue_in_thread(id, hook, text, specs, props, file_ids)
            if is_restricted_dm(exc):
                raise self._explain_refusal(exc, hook.channel_id) from None
            if not isinstance(exc, PermissionDeniedError):
                raise
            # the server reports a deleted or unknown post as 403 (API-NOTES 5.5)
            raise exc.reworded(
                f"cannot edit message {id!r} (post {hook.post_id} on {self.url}): it was deleted, "
                f"or it is not the bot's post ({exc.server_message or 'forbidden'})"
            ) from None
        return self._edited(id, hook, post, file_ids)

    def _edited(
        self, id: str, hook: MessageHook, post: Mapping[str, Any], file_ids: Sequence[str]
    ) -> SentMessage:
        """The result of an update of message ``id``, whose post is now ``hook.post_id``."""
        file_ids = tuple(post.get("file_ids") or file_ids)
        link = self.permalink(hook.post_id)
        return SentMessage(
            id, hook.post_id, hook.channel_id, hook.root_id, file_ids, link, (hook.post_id,)
        )

    # ------------------------------------------------------------ edit time limit

    def edit_time_limit(self) -> float | None:
        """Seconds after which the server refuses to edit a post (``PostEditTimeLimit``);
        None when it has no limit. Read from the server when first needed."""
        if self._learned_edit_limit is not None:
            return self._learned_edit_limit
        limit = self.server_config().post_edit_time_limit
        return None if limit is None else float(limit)

    def _post_age(self, hook: MessageHook) -> float | None:
        with self._lock:
            posted = self._posted_at.get(hook.post_id)
        if posted is None:
            posted = _epoch(hook.created_at)  # whole seconds: the age is over-estimated
        return None if posted is None else time.time() - posted

    def _edit_window_closing(self, hook: MessageHook) -> bool:
        """True when an edit of ``hook``'s post would meet (or nearly) the edit time limit."""
        limit = self.edit_time_limit()
        if limit is None:
            return False
        age = self._post_age(hook)
        return age is not None and age >= limit - edit_margin(limit)

    def _learn_edit_limit(self, exc: APIError, hook: MessageHook) -> str:
        """The limit a refusal reveals (its text says "... only allowed for N seconds"),
        kept so that the next continuation comes in time; returns it for the warning."""
        found = re.search(r"(\d+) seconds", exc.server_message or "")
        age = self._post_age(hook)
        if found:
            self._learned_edit_limit = float(found.group(1))
        elif self.edit_time_limit() is None and age is not None:
            self._learned_edit_limit = max(0.0, float(int(age)))
        limit = self.edit_time_limit()
        return "?" if limit is None else f"{limit:g}"

    def _continue_in_thread(
        self,
        id: str,
        hook: MessageHook,
        text: str,
        specs: Sequence[FileSpec],
        props: dict[str, Any] | None,
        file_ids: Sequence[str] = (),
    ) -> SentMessage:
        """Post ``text`` as a new post in the thread of message ``id``; ``id`` names that post
        from now on (later updates edit it). Past the edit time limit the old post cannot
        change any more."""
        root = hook.root_id or hook.post_id
        # one de-duplication key per (post continued from, text): a retry of this request
        # cannot post twice, another process continuing the same post with other text can
        seed = f"{self.url}/posts/{hook.post_id}/continued\n{text}"
        import uuid

        pending = self.new_pending_post_id(uuid.uuid5(uuid.NAMESPACE_URL, seed).hex)
        started = time.time()
        file_ids = list(file_ids) or self._upload(hook.channel_id, specs)
        post = self._create_post(
            hook.channel_id,
            text,
            root_id=root,
            file_ids=file_ids,
            props=props,
            pending_post_id=pending,
            what=f"message {id!r} (continued in a new post)",
        )
        moved = replace(hook, post_id=str(post["id"]), root_id=root, created_at=now_iso())
        with self._lock:
            self._posted_at[moved.post_id] = started
        self._remember(moved)
        log.info(
            "message %r continues in post %s (post %s can no longer be edited)",
            id,
            moved.post_id,
            hook.post_id,
        )
        return self._edited(id, moved, post, file_ids)

    # ------------------------------------------------------------ hooks

    def _store_get(self, id: str) -> MessageHook | None:
        if self.hook_store is None:
            return None
        hook = self.hook_store.get(id)
        if hook is not None:
            hook.check_matches(self.url, self._known_bot_id(), source=f"{self.hook_store!r}")
        return hook

    def _hook(self, id: Any) -> MessageHook:
        check_id(id)
        with self._lock:
            hook = self._hooks.get(id)
        if hook is None:
            hook = self._store_get(id)
            if hook is not None:
                with self._lock:
                    self._hooks[id] = hook
                    self._targets[id] = hook.channel_id
        if hook is None:
            raise MessageError(
                f"unknown message id {id!r}: no message was sent with this id by this client "
                "(send it first, or import its hook: notify.import_hook(path), "
                "Notify.read_message_hook_from_file(path) on a client of your own)"
                + self._store_hint(id)
            )
        return hook

    def _reusable(self, id: str) -> bool:
        """May a send-or-update call edit the stored message ``id``? (a store may say no:
        the notebook store does for ids of a kernel session that ended long ago)"""
        reusable = getattr(self.hook_store, "reusable", None)
        return True if reusable is None else bool(reusable(id))

    def _store_hint(self, id: str) -> str:
        hint = getattr(self.hook_store, "hint_for_missing", None)
        try:
            return str(hint(id)) if hint is not None else ""
        except Exception:
            return ""

    def _remember(self, hook: MessageHook) -> None:
        with self._lock:
            self._hooks[hook.id] = hook
            self._targets[hook.id] = hook.channel_id
        if self.hook_store is not None:
            self.hook_store.put(hook)

    def has_message(self, id: str) -> bool:
        """True when ``id`` names a message this client can update."""
        with self._lock:
            if id in self._hooks:
                return True
        return (
            self.hook_store is not None and self._store_get(id) is not None and self._reusable(id)
        )

    def forget(self, id: str) -> bool:
        """Drop the hook of ``id`` (memory and hook store); True when it was known.

        The message stays on the server; a later send with ``id`` posts a new one.
        """
        check_id(id)
        with self._lock:
            known = self._hooks.pop(id, None) is not None
            self._targets.pop(id, None)
        if self.hook_store is not None:
            known = self.hook_store.remove(id) or known
        return known

    # the original package's name
    message_in_cache = has_message

    @property
    def hooks(self) -> Mapping[str, MessageHook]:
        """The hooks in memory (read-only view)."""
        with self._lock:
            return types.MappingProxyType(dict(self._hooks))

    def add_hook(self, hook: MessageHook, *, source: str = "hook") -> MessageHook:
        """Adopt a hook (for example read from a file) after checking server and bot."""
        if not isinstance(hook, MessageHook):
            raise HookError(f"{source} is not a MessageHook")
        # no users/me just for this check: when the bot's id is not known yet, the
        # server itself refuses an edit of another bot's post (403)
        hook.check_matches(self.url, self._known_bot_id(), source=source)
        if hook.server_url is None or hook.bot_user_id is None:
            # the original package's format: complete it with what this client knows
            hook = replace(
                hook,
                server_url=hook.server_url or self.url,
                bot_user_id=hook.bot_user_id or self._known_bot_id(),
                created_at=hook.created_at or now_iso(),
            )
        self._remember(hook)
        return hook

    def write_message_hook_to_file(self, id: str, filename: str | os.PathLike[str]) -> Path:
        """Write the hook of message ``id`` to ``filename`` (JSON, atomic, mode 0600)."""
        hook = self._hook(id)
        return write_hook(filename, hook)

    def read_message_hook_from_file(self, filename: str | os.PathLike[str]) -> MessageHook:
        """Read a hook file (also the original package's format) so ``id`` can be updated.

        A hook from another server or bot raises :class:`HookError` naming both.
        """
        hook = read_hook(filename)
        return self.add_hook(hook, source=f"hook file {filename}")

    # ------------------------------------------------------------ diagnostics

    def test_connection(self) -> ConnectionReport:
        """Check server, TLS, token, bot, team and limits, in this order, stopping at the
        first failure; never raises for a failed check."""
        from .transport import is_loopback, parse_version

        report = ConnectionReport(server_url=self.url, team_name=self.team_name)
        t = self._transport
        checks = report.checks

        try:
            t.get("/system/ping", what="system/ping", retry=False, keys=())
        except MattermostNotifyError as exc:
            tls = self.url.startswith("https:") and "TLS" in str(exc)
            checks.append(Check("TLS" if tls else "server", False, str(exc)))
            return report
        report.server_version = ".".join(map(str, parse_version(t.version_header) or ())) or None
        checks.append(
            Check("server", True, f"{self.url} answers, Mattermost {report.server_version or '?'}")
        )
        host = urlsplit(self.url).hostname
        verify = t.session.verify
        if not self.url.startswith("https:"):
            where = "this machine" if is_loopback(host) else f"{host} (allow_insecure is on)"
            checks.append(Check("TLS", None, f"not used: plain http to {where}"))
        elif verify is False:
            checks.append(
                Check("TLS", None, "certificate NOT verified (verify = false): test set-ups only")
            )
        elif isinstance(verify, str):
            checks.append(Check("TLS", True, f"certificate verified with the CA bundle {verify}"))
        else:
            checks.append(Check("TLS", True, "certificate verified"))

        try:
            me = self._transport.get("/users/me", what="the bot's own user (users/me)", retry=False)
        except MattermostNotifyError as exc:
            checks.append(Check("token", False, str(exc)))
            return report
        with self._lock:
            self._me = me
        report.bot_name = me.get("username")
        bot_id = str(me["id"])
        report.is_bot = bool(me.get("is_bot"))
        checks.append(Check("token", True, "accepted"))
        user = "a personal access token of a user account, not a bot: messages come from that user"
        account = "a bot account" if report.is_bot else user
        checks.append(Check("bot", True, f"@{report.bot_name} ({account})"))

        if self.team_name:
            not_member = Check(
                "team",
                False,
                f"@{report.bot_name} is not a member of team {self.team_name!r}: "
                + ("add the bot to the team" if report.is_bot else "join the team"),
            )
            team: dict[str, Any] | None = None
            try:
                team = t.get(
                    f"/teams/name/{self.team_name}", what=f"team {self.team_name!r}", retry=False
                )
                t.get(
                    f"/teams/{team['id']}/members/{bot_id}",
                    what=f"the bot's membership of team {self.team_name!r}",
                    retry=False,
                    keys=(),
                )
                report.team_member = True
                checks.append(
                    Check("team", True, f"@{report.bot_name} is a member of {self.team_name!r}")
                )
            except PermissionDeniedError:  # an invite-only team hides itself from non-members
                checks.append(not_member)
            except NotFoundError as exc:
                if exc.error_id == "app.team.get_member.missing.app_error":
                    checks.append(not_member)
                elif exc.error_id == "api.context.404.app_error" and team is not None:
                    # the team exists but the server has no member route (old or partial)
                    found = f"{self.team_name!r} found (membership not checked)"
                    checks.append(Check("team", True, found))
                elif team is None:
                    checks.append(
                        Check(
                            "team",
                            False,
                            f"no team named {self.team_name!r} on {self.url}: use the team's "
                            "name as in its URL (research in https://chat.example.org/research/"
                            "channels/...), not its display name",
                        )
                    )
                else:
                    checks.append(Check("team", False, str(exc)))
            except MattermostNotifyError as exc:
                checks.append(Check("team", False, str(exc)))
            if checks[-1].ok is False:
                report.team_member = False
                return report
        else:
            checks.append(Check("team", None, "no team_name configured (direct messages only)"))

        cfg = self.server_config(refresh=True)  # the test command asks the server itself
        limits = f"files up to {cfg.max_file_size or '?'} bytes, messages up to {cfg.post_runes}"
        if cfg.known:
            checks.append(Check("limits", True, f"{limits} characters"))
        else:
            checks.append(Check("limits", None, "the server did not publish its limits"))
        if cfg.post_edit_time_limit is not None:
            edits = f"a post can be edited for {cfg.post_edit_time_limit} s (PostEditTimeLimit)"
            later = "a message updated for longer goes on in a new post in its thread"
            checks.append(Check("edits", True, f"{edits}: {later}"))
        if cfg.dms_restricted_to_teams:
            dms = "only to users who share a team with the bot (RestrictDirectMessage = team)"
            checks.append(Check("direct messages", True, dms))
        if self.mention:
            checks.append(self._check_mentions())
            if checks[-1].ok is False:
                return report
        elif self._default_channel:
            threads = (
                f" (CollapsedThreads = {cfg.collapsed_threads}: a thread reply reaches only the "
                "thread's followers)"
                if cfg.thread_replies_collapsed
                else ""
            )
            who = f"messages in ~{self._default_channel} alert only people they mention{threads}"
            advice = 'set mention = ["your_username"] to be alerted'
            checks.append(Check("mentions", True, f"none set: {who}; {advice}"))
        if self._default_channel:
            check = self._check_default_channel(report.bot_name)
            checks.append(check)
            if check.ok is False:
                return report
        if self._default_user:
            try:
                own = self._user_id(self._default_user) == bot_id
                detail = own_user_advice(self._default_user) if own else f"@{self._default_user}"
                checks.append(Check("default user", True, detail, warning=own))
            except MattermostNotifyError as exc:
                checks.append(Check("default user", False, str(exc)))
        return report

    def _check_mentions(self) -> Check:
        """Every name in ``mention`` is a user (a typo would alert nobody, silently);
        ``channel``, ``here`` and ``all`` are Mattermost's own mentions."""
        unknown = []
        for name in self.mention:
            if name in ("channel", "here", "all"):
                continue
            try:
                self._user_id(name)
            except NotFoundError:
                unknown.append(name)
            except MattermostNotifyError as exc:
                return Check("mentions", False, str(exc))
        if unknown:
            shown = ", ".join(f"{n!r}" for n in unknown)
            return Check(
                "mentions",
                False,
                f"mention names no user {shown} on {self.url}: use user names (lower case, as "
                "in @name), not display names",
            )
        names = " ".join(f"@{name}" for name in self.mention)
        return Check(
            "mentions", True, f"completion and failure messages in channels mention {names}"
        )

    def _check_default_channel(self, bot_name: str | None) -> Check:
        """The default channel exists and the bot is a member (a public channel can be found
        by a bot that may not post in it)."""
        name = self._default_channel
        try:
            channel_id = self._channel_id(str(name))
        except MattermostNotifyError as exc:
            return Check("default channel", False, str(exc))
        try:
            self._transport.get(
                f"/channels/{channel_id}/members/{self.bot_user_id}",
                what=f"the bot's membership of channel {name!r}",
                retry=False,
                keys=(),
            )
        except (PermissionDeniedError, NotFoundError) as exc:
            error = not_a_channel_member(
                exc,
                server=self.url,
                channel_name=name,
                team_name=self.team_name,
                bot_name=bot_name,
                member=False,
            )
            return Check("default channel", False, str(error.args[0]))
        except MattermostNotifyError as exc:
            return Check("default channel", False, str(exc))
        return Check("default channel", True, f"~{name}, the bot is a member")


class _Closing:
    """A MultipartEncoder that closes its files when the transport is done with it."""

    def __init__(self, encoder: Any, files: list[Any]) -> None:
        self._encoder = encoder
        self._files = files
        self.len = encoder.len

    def read(self, size: int = -1) -> bytes:
        return self._encoder.read(size)

    def __len__(self) -> int:
        return int(self._encoder.len)

    def close(self) -> None:
        for fh in self._files:
            with contextlib.suppress(OSError):
                fh.close()
