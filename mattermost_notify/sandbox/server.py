"""The sandbox HTTP server: a subset of Mattermost's REST API v4 on a local port."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import secrets
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ._store import Obj, Store, dm_name, new_id, now_ms, public
from .faults import Fault, Faults
from .ratelimit import RateLimiter
from .view import RequestLog, RequestRecord, View

log = logging.getLogger("mattermost_notify.sandbox")

MiB = 1024 * 1024
MAX_POST_RUNES = 16383
MAX_PAYLOAD_BYTES = 300_000  # ServiceSettings.MaximumPayloadSizeBytes
FILE_IDS_MAX_RUNES = 300
PENDING_TTL = 30.0
CHUNK = 64 * 1024

ResponseObserver = Callable[[RequestRecord, str, bytes], None]
_observers: list[ResponseObserver] = []


def add_response_observer(callback: ResponseObserver) -> Callable[[], None]:
    """Call ``callback(record, content_type, body)`` after every answered API request.

    Applies to every sandbox in this process (the project's tests use it to check
    every JSON answer against the OpenAPI document). Returns a function that
    removes the observer. Downloads are passed with an empty body.
    """
    _observers.append(callback)

    def remove() -> None:
        with contextlib.suppress(ValueError):
            _observers.remove(callback)

    return remove


# ---------------------------------------------------------------------------
# errors and responses
# ---------------------------------------------------------------------------

_MESSAGES = {
    "api.context.session_expired.app_error": "Invalid or expired session, please login again.",
    "api.context.permissions.app_error": "You do not have the appropriate permissions.",
    "api.context.404.app_error": "Sorry, we could not find the page.",
    "api.context.token_provided.app_error": (
        "Session token provided in query string; use the Authorization header instead."
    ),
    "api.context.request_body_too_large.app_error": "The request body is too large.",
    "app.user.get_by_username.app_error": (
        "Unable to find an existing account matching your username for this team."
    ),
    "app.user.missing_account.const": "Unable to find the user.",
    "app.team.get_by_name.missing.app_error": "Unable to find the existing team.",
    "app.team.get.find.app_error": "Unable to find the existing team.",
    "app.team.get_member.missing.app_error": "No team member found for that user ID and team ID.",
    "app.channel.get_by_name.missing.app_error": "Channel does not exist.",
    "app.channel.get.existing.app_error": "Unable to find the existing channel.",
    "app.post.get.app_error": "Unable to get post.",
    "app.file_info.get.app_error": "Unable to get the file info.",
    "app.post.save.existing.app_error": "You cannot update an existing Post.",
    "model.post.is_valid.message_length.app_error": (
        "Message property is longer than the maximum permitted length."
    ),
    "model.post.is_valid.file_ids.app_error": (
        "Invalid file ids. Note that uploads are limited to 10 files maximum. "
        "Please use additional posts for more files."
    ),
    "model.post.is_valid.type.app_error": "Invalid type.",
    "api.post.create_post.root_id.app_error": "Invalid RootId parameter.",
    "api.post.create_post.channel_root_id.app_error": "Invalid ChannelId for RootId parameter.",
    "api.post.deduplicate_create_post.pending": (
        "Rejected post since another client is making the same request."
    ),
    "api.channel.create_channel.direct_channel.team_restricted_error": (
        "A direct channel can not be created between these users because they do not share a team."
    ),
    "api.post.create_post.can_not_post_in_restricted_dm.error": (
        "You cannot post in this direct message: the users do not share a team."
    ),
    "api.post.patch_post.can_not_update_post_in_restricted_dm.error": (
        "You cannot edit posts in this direct message: the users do not share a team."
    ),
    "api.post.update_post.can_not_update_post_in_restricted_dm.error": (
        "You cannot edit posts in this direct message: the users do not share a team."
    ),
    "api.file.upload_file.restricted_dm.error": (
        "You cannot upload files to this direct message: the users do not share a team."
    ),
    "app.channel.get_member.missing.app_error": (
        "No channel member found for that user ID and channel ID."
    ),
    "api.post.update_post.permissions_time_limit.app_error": (
        "Post edit is only allowed for {limit} seconds. "
        "Please ask your System Administrator for details."
    ),
    "api.file.upload_file.too_large_detailed.app_error": (
        "Unable to upload file {filename}. {length} bytes exceeds "
        "the maximum allowed {limit} bytes."
    ),
    "api.file.upload_file.incorrect_number_of_client_ids.app_error": (
        "Unable to upload file(s). Have {client_ids} client_ids for {files} files."
    ),
    "api.file.upload_file.read_request.app_error": (
        "Unable to upload file(s). Error reading request."
    ),
    "web.incoming_webhook.general.app_error": "Couldn't process the incoming webhook.",
    "web.incoming_webhook.decode.app_error": "Unable to decode the incoming webhook payload.",
    "sandbox.fault.injected": "Fault injected by the sandbox.",
    "sandbox.internal.app_error": "Internal error in the sandbox.",
}


class ApiError(Exception):
    """An error answered with Mattermost's error body."""

    def __init__(self, status: int, error_id: str, message: str | None = None, **fmt: Any) -> None:
        self.status = status
        self.error_id = error_id
        template = message if message is not None else _MESSAGES.get(error_id, error_id)
        self.message = template.format(**fmt) if fmt else template
        super().__init__(f"{status} {error_id}")


def invalid_body_param(name: str) -> ApiError:
    return ApiError(
        400,
        "api.context.invalid_body_param.app_error",
        f"Invalid or missing {name} in request body.",
    )


def invalid_url_param(name: str) -> ApiError:
    return ApiError(
        400,
        "api.context.invalid_url_param.app_error",
        f"Invalid or missing {name} parameter in request URL.",
    )


def invalid_param(name: str) -> ApiError:
    return ApiError(400, "api.context.invalid_param.app_error", f"Invalid {name} parameter.")


def permission_error() -> ApiError:
    return ApiError(403, "api.context.permissions.app_error")


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    file_path: Path | None = None  # streamed from disk instead of body
    api: bool = True  # carries X-Request-Id / X-Version-Id


def json_response(status: int, value: Any) -> Response:
    return Response(status, json.dumps(value, separators=(",", ":")).encode())


# ---------------------------------------------------------------------------
# request body
# ---------------------------------------------------------------------------


class BodyTooLarge(Exception):
    pass


class Body:
    """The request body, read incrementally (Content-Length or chunked)."""

    def __init__(self, rfile: Any, headers: Any) -> None:
        self._rfile = rfile
        self.chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        self.length: int | None = None
        self._left = 0
        self._chunk_left = 0
        self.done = False
        self.received = 0
        if not self.chunked:
            raw = headers.get("Content-Length")
            try:
                self.length = int(raw) if raw is not None else 0
            except ValueError:
                self.length = 0
            if self.length < 0:
                self.length = 0
            self._left = self.length
            self.done = self._left == 0

    def read(self, size: int = CHUNK) -> bytes:
        """Up to ``size`` bytes; ``b""`` at the end."""
        if self.done:
            return b""
        if not self.chunked:
            data = self._rfile.read(min(size, self._left))
            if not data:
                raise ConnectionError("client closed the connection mid-body")
            self._left -= len(data)
            self.received += len(data)
            self.done = self._left == 0
            return data
        if self._chunk_left == 0:
            line = self._rfile.readline(1024)
            if not line:
                raise ConnectionError("client closed the connection mid-body")
            chunk_size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if chunk_size == 0:
                while True:  # trailers
                    trailer = self._rfile.readline(8192)
                    if trailer in (b"\r\n", b"\n", b""):
                        break
                self.done = True
                return b""
            self._chunk_left = chunk_size
        data = self._rfile.read(min(size, self._chunk_left))
        if not data:
            raise ConnectionError("client closed the connection mid-body")
        self._chunk_left -= len(data)
        self.received += len(data)
        if self._chunk_left == 0:
            self._rfile.readline(8)  # CRLF after the chunk
        return data

    def read_all(self, limit: int) -> bytes:
        """The whole body; :class:`BodyTooLarge` beyond ``limit`` bytes."""
        if self.length is not None and self.length > limit:
            raise BodyTooLarge
        parts = []
        total = 0
        while True:
            data = self.read()
            if not data:
                break
            total += len(data)
            if total > limit:
                raise BodyTooLarge
            parts.append(data)
        return b"".join(parts)

    def drain(self, limit: int = 4 * 1024 * MiB) -> bool:
        """Read and discard the rest; False when more than ``limit`` bytes were left."""
        discarded = 0
        while not self.done:
            data = self.read()
            if not data:
                break
            discarded += len(data)
            if discarded > limit:
                return False
        return True


# ---------------------------------------------------------------------------
# request context
# ---------------------------------------------------------------------------


@dataclass
class Ctx:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Any
    body: Body
    request_id: str
    client: str
    stall: Callable[[], None]
    user: Obj | None = None

    def q(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[0] if values else default

    def json_body(self, name: str) -> Any:
        try:
            raw = self.body.read_all(MAX_PAYLOAD_BYTES + 512)
        except BodyTooLarge:
            raise ApiError(413, "api.context.request_body_too_large.app_error") from None
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise invalid_body_param(name) from None

    @property
    def user_id(self) -> str:
        assert self.user is not None
        return str(self.user["id"])


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    template: str
    handler: str
    auth: bool = True
    upload: bool = False  # body capped at MaxFileSize instead of the payload limit
    stalls_itself: bool = False  # the handler calls ctx.stall() at the right moment


def _route(method: str, template: str, handler: str, **kw: Any) -> Route:
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
    return Route(method, re.compile(f"^{regex}$"), template, handler, **kw)


ROUTES: tuple[Route, ...] = (
    _route("GET", "/api/v4/system/ping", "ping", auth=False),
    _route("GET", "/api/v4/config/client", "config_client", auth=False),
    _route("GET", "/api/v4/users/username/{username}", "user_by_name"),
    _route("GET", "/api/v4/users/{user_id}", "user"),
    _route(
        "GET", "/api/v4/teams/name/{team_name}/channels/name/{channel_name}", "channel_by_team_name"
    ),
    _route("GET", "/api/v4/teams/name/{team_name}", "team_by_name"),
    _route("GET", "/api/v4/teams/{team_id}/channels/name/{channel_name}", "channel_by_name"),
    _route("GET", "/api/v4/teams/{team_id}/members/{user_id}", "team_member"),
    _route("GET", "/api/v4/teams/{team_id}", "team"),
    _route("POST", "/api/v4/channels/direct", "direct_channel"),
    _route("GET", "/api/v4/channels/{channel_id}/posts", "channel_posts"),
    _route("GET", "/api/v4/channels/{channel_id}/members/{user_id}", "channel_member"),
    _route("GET", "/api/v4/channels/{channel_id}", "channel"),
    _route("POST", "/api/v4/posts", "create_post", stalls_itself=True),
    _route("PUT", "/api/v4/posts/{post_id}/patch", "patch_post"),
    _route("GET", "/api/v4/posts/{post_id}/thread", "post_thread"),
    _route("GET", "/api/v4/posts/{post_id}", "get_post"),
    _route("PUT", "/api/v4/posts/{post_id}", "update_post"),
    _route("DELETE", "/api/v4/posts/{post_id}", "delete_post"),
    _route("POST", "/api/v4/files", "upload", upload=True),
    _route("GET", "/api/v4/files/{file_id}/info", "file_info"),
    _route("GET", "/api/v4/files/{file_id}", "file_download"),
    _route("POST", "/hooks/{key}", "incoming_webhook", auth=False),
)

_ID_RE = re.compile(r"^[a-z0-9]{26}$")
_USERNAME_RE = re.compile(r"^[a-z0-9.\-_]{1,64}$")


def _check_id(value: str, name: str) -> str:
    if not _ID_RE.match(value):
        raise invalid_url_param(name)
    return value


def parse_token(authorization: str) -> str:
    """The token of an ``Authorization`` header, the way the server parses it."""
    if len(authorization) > 6 and authorization[:6].upper() == "BEARER":
        return authorization[7:]
    if len(authorization) > 5 and authorization[:5].lower() == "token":
        return authorization[6:]
    return ""


# ---------------------------------------------------------------------------
# the API
# ---------------------------------------------------------------------------


class Api:
    """The route handlers, working on a :class:`Store`."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sb = sandbox
        self.store = sandbox._store
        self._pending: dict[str, tuple[str, float]] = {}  # pending_post_id -> (post id, expiry)
        self._pending_lock = threading.Lock()
        self._seq = max((p.get("_seq", 0) for p in self.store.posts.values()), default=0)

    # ---- dispatch ------------------------------------------------------
    def dispatch(self, ctx: Ctx) -> tuple[Response, str]:
        route, params = self._match(ctx.method, ctx.path)
        if route is None:
            if params is not None:  # known path, other method
                return Response(405, b"405 method not allowed\n", "text/plain", api=True), ""
            raise ApiError(404, "api.context.404.app_error")
        if route.auth:
            self._authenticate(ctx)
        elif ctx.headers.get("Authorization"):
            token = parse_token(ctx.headers.get("Authorization", ""))
            user_id = self.store.tokens.get(token)
            ctx.user = self.store.users.get(user_id) if user_id else None
        limit = MAX_PAYLOAD_BYTES + 512
        if not route.upload and ctx.body.length is not None and ctx.body.length > limit:
            raise ApiError(413, "api.context.request_body_too_large.app_error")
        if not route.stalls_itself:
            ctx.stall()
        handler = getattr(self, "h_" + route.handler)
        return handler(ctx, **(params or {})), route.template

    def _match(self, method: str, path: str) -> tuple[Route | None, dict[str, str] | None]:
        path_known = False
        for route in ROUTES:
            found = route.pattern.match(path)
            if found is None:
                continue
            if route.method == method:
                return route, {k: unquote(v) for k, v in found.groupdict().items()}
            path_known = True
        return None, ({} if path_known else None)

    def route_template(self, method: str, path: str) -> str:
        route, _ = self._match(method, path)
        return route.template if route else ""

    def _authenticate(self, ctx: Ctx) -> None:
        header = ctx.headers.get("Authorization", "")
        token = parse_token(header) if header else ""
        if not token and "access_token" in ctx.query:
            raise ApiError(401, "api.context.token_provided.app_error")
        user_id = self.store.tokens.get(token) if token else None
        user = self.store.users.get(user_id) if user_id else None
        if user is None or user["delete_at"]:
            raise ApiError(401, "api.context.session_expired.app_error")
        ctx.user = user

    # ---- permissions ---------------------------------------------------
    def _team_member(self, user_id: str, team_id: str) -> bool:
        team = self.store.teams.get(team_id)
        return team is not None and user_id in team["_members"]

    def _can_read(self, user_id: str, channel: Obj) -> bool:
        if user_id in channel["_members"]:
            return True
        return channel["type"] == "O" and self._team_member(user_id, channel["team_id"])

    def _can_post(self, user_id: str, channel: Obj) -> bool:
        return user_id in channel["_members"] and not channel["delete_at"]

    def _share_a_team(self, user_id: str, other_id: str) -> bool:
        return any(
            user_id in team["_members"] and other_id in team["_members"]
            for team in self.store.teams.values()
        )

    def restricted_dm(self, channel: Obj) -> bool:
        """CheckIfChannelIsRestrictedDM (11.1 and later): a DM between users who share no
        team while RestrictDirectMessage is ``team``. Earlier servers never check an
        existing DM."""
        if channel["type"] != "D" or self.sb.restrict_direct_message != "team":
            return False
        if not self.sb.dm_restriction_covers_bots:
            return False
        members = channel["_members"]
        return not self._share_a_team(members[0], members[-1])

    # ---- system --------------------------------------------------------
    def h_ping(self, ctx: Ctx) -> Response:
        return json_response(
            200,
            {
                "ActiveSearchBackend": "database",
                "AndroidLatestVersion": "",
                "AndroidMinVersion": "",
                "IosLatestVersion": "",
                "IosMinVersion": "",
                "status": "OK",
            },
        )

    def h_config_client(self, ctx: Ctx) -> Response:
        sb = self.sb
        config = {
            "Version": sb.version,
            "BuildNumber": sb.build_number,
            "BuildHash": sb.build_hash,
            "SiteName": "Mattermost Sandbox",
            "SiteURL": sb.url,
            "DiagnosticsEnabled": "false",
            "EnableFileAttachments": "true",
            "MaxFileSize": str(sb.max_file_size),
        }
        if ctx.user is not None:
            config["MaxPostSize"] = str(sb.max_post_size)
            limit = sb.post_edit_time_limit
            config["PostEditTimeLimit"] = str(-1 if limit is None else limit)
            config["CollapsedThreads"] = sb.collapsed_threads
            config["RestrictDirectMessage"] = sb.restrict_direct_message
            config["EnableIncomingWebhooks"] = "true"
        return json_response(200, config)

    # ---- users ---------------------------------------------------------
    def h_user(self, ctx: Ctx, user_id: str) -> Response:
        if user_id == "me":
            user_id = ctx.user_id
        _check_id(user_id, "user_id")
        user = self.store.users.get(user_id)
        if user is None:
            raise ApiError(404, "app.user.missing_account.const")
        return json_response(200, public(user))

    def h_user_by_name(self, ctx: Ctx, username: str) -> Response:
        if not _USERNAME_RE.match(username):
            raise invalid_body_param("username")
        user = self.store.user_by_name(username)
        if user is None:
            raise ApiError(404, "app.user.get_by_username.app_error")
        return json_response(200, public(user))

    # ---- teams ---------------------------------------------------------
    def _visible_team(self, ctx: Ctx, team: Obj) -> Obj:
        if not team["allow_open_invite"] and ctx.user_id not in team["_members"]:
            raise permission_error()
        return team

    def h_team_by_name(self, ctx: Ctx, team_name: str) -> Response:
        team = self.store.team_by_name(team_name.lower())
        if team is None:
            raise ApiError(404, "app.team.get_by_name.missing.app_error")
        return json_response(200, public(self._visible_team(ctx, team)))

    def h_team(self, ctx: Ctx, team_id: str) -> Response:
        _check_id(team_id, "team_id")
        team = self.store.teams.get(team_id)
        if team is None:
            raise permission_error()
        return json_response(200, public(self._visible_team(ctx, team)))

    def h_team_member(self, ctx: Ctx, team_id: str, user_id: str) -> Response:
        # api4/team.go getTeamMember: ids checked, then view_team (membership: no
        # sandbox user has system-wide team permissions), then the member row
        _check_id(team_id, "team_id")
        if user_id == "me":
            user_id = ctx.user_id
        _check_id(user_id, "user_id")
        if not self._team_member(ctx.user_id, team_id):
            raise permission_error()
        if not self._team_member(user_id, team_id):
            raise ApiError(404, "app.team.get_member.missing.app_error")
        member: Obj = {
            "team_id": team_id,
            "user_id": user_id,
            "roles": "team_user",
            "delete_at": 0,
            "scheme_guest": False,
            "scheme_user": True,
            "scheme_admin": False,
            "explicit_roles": "",
        }
        return json_response(200, member)

    # ---- channels ------------------------------------------------------
    def _channel_in_team(self, ctx: Ctx, team: Obj, channel_name: str) -> Response:
        if not self._team_member(ctx.user_id, team["id"]):
            raise permission_error()
        channel = self.store.channel_by_name(team["id"], channel_name.lower())
        if channel is None or (channel["delete_at"] and ctx.q("include_deleted") != "true"):
            raise ApiError(404, "app.channel.get_by_name.missing.app_error")
        if not self._can_read(ctx.user_id, channel):
            if channel["type"] == "P":  # the server hides private channels
                raise ApiError(404, "app.channel.get_by_name.missing.app_error")
            raise permission_error()
        return json_response(200, public(channel))

    def h_channel_by_name(self, ctx: Ctx, team_id: str, channel_name: str) -> Response:
        _check_id(team_id, "team_id")
        team = self.store.teams.get(team_id)
        if team is None:
            raise ApiError(404, "app.channel.get_by_name.missing.app_error")
        return self._channel_in_team(ctx, team, channel_name)

    def h_channel_by_team_name(self, ctx: Ctx, team_name: str, channel_name: str) -> Response:
        team = self.store.team_by_name(team_name.lower())
        if team is None:
            raise ApiError(404, "app.team.get_by_name.missing.app_error")
        return self._channel_in_team(ctx, team, channel_name)

    def _readable_channel(self, ctx: Ctx, channel_id: str) -> Obj:
        _check_id(channel_id, "channel_id")
        channel = self.store.channels.get(channel_id)
        if channel is None:
            raise ApiError(404, "app.channel.get.existing.app_error")
        if not self._can_read(ctx.user_id, channel):
            raise permission_error()
        return channel

    def h_channel(self, ctx: Ctx, channel_id: str) -> Response:
        return json_response(200, public(self._readable_channel(ctx, channel_id)))

    def h_channel_member(self, ctx: Ctx, channel_id: str, user_id: str) -> Response:
        # api4/channel.go getChannelMember: read_channel, which only the channel's own
        # member roles grant (team roles do not), then the member row
        _check_id(channel_id, "channel_id")
        if user_id == "me":
            user_id = ctx.user_id
        _check_id(user_id, "user_id")
        with self.store.lock:
            channel = self.store.channels.get(channel_id)
            if channel is None or ctx.user_id not in channel["_members"]:
                raise permission_error()
            if user_id not in channel["_members"]:
                raise ApiError(404, "app.channel.get_member.missing.app_error")
            member: Obj = {
                "channel_id": channel_id,
                "user_id": user_id,
                "roles": "channel_user",
                "last_viewed_at": 0,
                "msg_count": 0,
                "mention_count": 0,
                "mention_count_root": 0,
                "urgent_mention_count": 0,
                "msg_count_root": 0,
                "notify_props": {
                    "desktop": "default",
                    "email": "default",
                    "ignore_channel_mentions": "default",
                    "mark_unread": "all",
                    "push": "default",
                },
                "last_update_at": channel["create_at"],
                "scheme_guest": False,
                "scheme_user": True,
                "scheme_admin": False,
                "explicit_roles": "",
            }
        return json_response(200, member)

    def h_channel_posts(self, ctx: Ctx, channel_id: str) -> Response:
        channel = self._readable_channel(ctx, channel_id)
        try:
            page = int(ctx.q("page", "0"))
            per_page = int(ctx.q("per_page", "60"))
            since = int(ctx.q("since", "0"))
        except ValueError:
            raise invalid_url_param("page") from None
        per_page = max(1, min(per_page, 200))
        with self.store.lock:
            posts = [p for p in self.store.posts.values() if p["channel_id"] == channel["id"]]
            if since:
                posts = [p for p in posts if p["update_at"] > since]
            else:
                posts = [p for p in posts if not p["delete_at"]]
            posts.sort(key=lambda p: (p["create_at"], p["_seq"]), reverse=True)
            if not since:
                posts = posts[page * per_page : (page + 1) * per_page]
            body = {
                "order": [p["id"] for p in posts],
                "posts": {p["id"]: self._post_json(p) for p in posts},
                "next_post_id": "",
                "prev_post_id": "",
                "has_next": False,
            }
        return json_response(200, body)

    def h_direct_channel(self, ctx: Ctx) -> Response:
        ids = ctx.json_body("user_ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise invalid_body_param("user_ids")
        if len(ids) == 1:
            ids = [ids[0], ids[0]]
        if len(ids) != 2:
            raise invalid_body_param("user_ids")
        for user_id in ids:
            if not _ID_RE.match(user_id):
                raise invalid_body_param("user_id")
        if ctx.user_id not in ids:
            raise permission_error()
        other = ids[1] if ids[0] == ctx.user_id else ids[0]
        if other not in self.store.users:
            raise ApiError(
                400,
                "api.channel.create_direct_channel.invalid_user.app_error",
                "Invalid user ID for direct channel creation.",
            )
        # app/channel.go GetOrCreateDirectChannel: an existing DM is returned (201) as it is
        # (posts in it are checked later); only creating one is subject to the team
        # restriction, from which bots are exempt before 11.1 (from 11.1 only system,
        # plugin or session-owned bots, which a bot calling with its own token is not).
        # Checked against a real 11.4 server.
        is_bot = bool(ctx.user and ctx.user.get("is_bot"))
        exempt = is_bot and not self.sb.dm_restriction_covers_bots
        with self.store.lock:
            channel = self.store.dm_channel(ctx.user_id, other)
            if channel is None:
                if (
                    self.sb.restrict_direct_message == "team"
                    and not exempt
                    and not self._share_a_team(ctx.user_id, other)
                ):
                    raise ApiError(
                        403, "api.channel.create_channel.direct_channel.team_restricted_error"
                    )
                now = now_ms()
                channel = self.sb._make_channel(
                    "", dm_name(ctx.user_id, other), "", "D", members={ctx.user_id, other}, now=now
                )
                self.store.save("channel", channel["id"])
        return json_response(201, public(channel))

    # ---- posts ---------------------------------------------------------
    def _post_json(self, post: Obj) -> Obj:
        out = public(post)
        files = [public(self.store.files[f]) for f in post["file_ids"] if f in self.store.files]
        metadata: Obj = {}
        if files:
            metadata["files"] = files
        out["metadata"] = metadata
        return out

    def _validate_post_fields(self, message: Any, file_ids: Any, props: Any) -> None:
        if not isinstance(message, str):
            raise invalid_body_param("post")
        if len(message) > self.sb.max_post_size:
            raise ApiError(400, "model.post.is_valid.message_length.app_error")
        if not isinstance(file_ids, list) or not all(isinstance(f, str) for f in file_ids):
            raise invalid_body_param("file_ids")
        if len(json.dumps(file_ids, separators=(",", ":"))) > FILE_IDS_MAX_RUNES:
            raise ApiError(400, "model.post.is_valid.file_ids.app_error")
        if not isinstance(props, dict):
            raise invalid_body_param("props")

    def _attachable(self, ctx: Ctx, file_id: str, channel_id: str, post_id: str) -> bool:
        # as the real server (11.4): the uploader's own unattached file, uploaded to any
        # channel (attaching moves it to the post's channel)
        info = self.store.files.get(file_id)
        return (
            info is not None
            and info["user_id"] == ctx.user_id
            and info["post_id"] in ("", post_id)
            and not info["delete_at"]
        )

    def _attach(self, file_ids: list[str], post_id: str, now: int) -> None:
        channel_id = self.store.posts[post_id]["channel_id"]
        for file_id in file_ids:
            info = self.store.files[file_id]
            info["post_id"] = post_id
            info["channel_id"] = channel_id
            info["update_at"] = now

    def h_create_post(self, ctx: Ctx) -> Response:
        body = ctx.json_body("post")
        if not isinstance(body, dict):
            raise invalid_body_param("post")
        channel_id = body.get("channel_id")
        if not isinstance(channel_id, str) or not _ID_RE.match(channel_id):
            raise invalid_body_param("channel_id")
        with self.store.lock:
            channel = self.store.channels.get(channel_id)
            if channel is not None and channel["delete_at"] and ctx.user_id in channel["_members"]:
                raise ApiError(400, "api.post.create_post.can_not_post_to_deleted.error")
            if channel is None or not self._can_post(ctx.user_id, channel):
                raise permission_error()
            if self.restricted_dm(channel):
                raise ApiError(400, "api.post.create_post.can_not_post_in_restricted_dm.error")
        pending_id = body.get("pending_post_id") or ""
        if not isinstance(pending_id, str):
            raise invalid_body_param("pending_post_id")
        if pending_id:
            earlier = self._dedup_begin(ctx, pending_id)
            if earlier is not None:
                return json_response(201, self._post_json(earlier))
        created: Obj | None = None
        try:
            ctx.stall()
            created = self._create_post(ctx, body, channel)
            answer = {**self._post_json(created), "pending_post_id": pending_id}
            if body.get("file_ids") and not created["file_ids"]:
                answer["file_ids"] = None  # as the real server, when none could be attached
            return json_response(201, answer)
        finally:
            if pending_id:
                with self._pending_lock:
                    if created is None:
                        self._pending.pop(pending_id, None)
                    else:
                        self._pending[pending_id] = (
                            created["id"],
                            time.monotonic() + self.sb.pending_post_id_ttl,
                        )

    def _dedup_begin(self, ctx: Ctx, pending_id: str) -> Obj | None:
        """Steps 2-5 of the server's deduplicateCreatePost: the earlier post, or None."""
        with self._pending_lock:
            now = time.monotonic()
            entry = self._pending.get(pending_id)
            if entry is not None and entry[1] <= now:
                entry = None
            if entry is None:
                self._pending[pending_id] = ("", now + self.sb.pending_post_id_ttl)
                if len(self._pending) > 25000:
                    self._pending = {k: v for k, v in self._pending.items() if v[1] > now}
                return None
            post_id = entry[0]
            if post_id == "":
                raise ApiError(500, "api.post.deduplicate_create_post.pending")
        with self.store.lock:
            post = self.store.posts.get(post_id)
            if post is not None and not post["delete_at"]:
                channel = self.store.channels.get(post["channel_id"])
                if channel is not None and self._can_read(ctx.user_id, channel):
                    return post
        with self._pending_lock:  # not readable any more: create a new post
            self._pending[pending_id] = ("", time.monotonic() + self.sb.pending_post_id_ttl)
        return None

    def _create_post(self, ctx: Ctx, body: Obj, channel: Obj) -> Obj:
        if body.get("id"):
            raise ApiError(400, "app.post.save.existing.app_error")
        message = body.get("message", "")
        file_ids = body.get("file_ids") or []
        props = body.get("props") or {}
        self._validate_post_fields(message, file_ids, props)
        post_type = body.get("type") or ""
        if not isinstance(post_type, str) or (post_type and not post_type.startswith("custom_")):
            raise ApiError(400, "model.post.is_valid.type.app_error")
        root_id = body.get("root_id") or ""
        if not isinstance(root_id, str):
            raise invalid_body_param("root_id")
        props = {
            k: v for k, v in props.items() if k not in ("add_channel_member", "force_notification")
        }
        if ctx.user is not None and ctx.user.get("is_bot"):
            props["from_bot"] = "true"
        return self.insert_post(
            ctx.user_id,
            channel,
            message,
            root_id,
            props,
            file_ids,
            post_type,
            attach_check=lambda f, pid: self._attachable(ctx, f, channel["id"], pid),
        )

    def insert_post(
        self,
        user_id: str,
        channel: Obj,
        message: str,
        root_id: str,
        props: Obj,
        file_ids: list[str],
        post_type: str = "",
        attach_check: Callable[[str, str], bool] | None = None,
    ) -> Obj:
        """Store a new post (validation already done, except ``root_id``)."""
        with self.store.lock:
            root = None
            if root_id:
                root = self.store.posts.get(root_id)
                if root is None or root["delete_at"] or root["root_id"]:
                    raise ApiError(400, "api.post.create_post.root_id.app_error")
                if root["channel_id"] != channel["id"]:
                    raise ApiError(400, "api.post.create_post.channel_root_id.app_error")
            post_id = new_id()
            unique: list[str] = []
            for f in file_ids:
                if f not in unique:
                    unique.append(f)
            attached = [f for f in unique if attach_check is not None and attach_check(f, post_id)]
            now = now_ms()
            self._seq += 1
            post: Obj = {
                "id": post_id,
                "create_at": now,
                "update_at": now,
                "edit_at": 0,
                "delete_at": 0,
                "is_pinned": False,
                "user_id": user_id,
                "channel_id": channel["id"],
                "root_id": root_id,
                "original_id": "",
                "message": message,
                "type": post_type,
                "props": props,
                "hashtags": "",
                "file_ids": attached,
                "pending_post_id": "",
                "reply_count": 0,
                "last_reply_at": 0,
                "participants": None,
                "_seq": self._seq,
                "_edits": [],
                "_replies": [],
            }
            self.store.posts[post_id] = post
            self._attach(attached, post_id, now)
            channel["last_post_at"] = now
            channel["total_msg_count"] += 1
            if not root_id:
                channel["last_root_post_at"] = now
                channel["total_msg_count_root"] += 1
            saves = [("post", post_id), ("channel", channel["id"])]
            saves += [("file", f) for f in attached]
            if root is not None:
                root["_replies"].append(post_id)
                root["reply_count"] += 1
                root["last_reply_at"] = now
                post["reply_count"] = root["reply_count"]
                saves.append(("post", root["id"]))
            self.store.save_many(saves)
            return post

    def _own_post_for_edit(self, ctx: Ctx, post_id: str) -> Obj:
        _check_id(post_id, "post_id")
        post = self.store.posts.get(post_id)
        if post is None or post["delete_at"] or post["user_id"] != ctx.user_id:
            raise permission_error()
        channel = self.store.channels.get(post["channel_id"])
        if channel is None or not self._can_read(ctx.user_id, channel):
            raise permission_error()
        return post

    def _check_edit_time(self, post: Obj) -> None:
        limit = self.sb.post_edit_time_limit
        if limit is not None and limit >= 0 and now_ms() > post["create_at"] + limit * 1000:
            raise ApiError(
                400, "api.post.update_post.permissions_time_limit.app_error", limit=limit
            )

    def _apply_edit(
        self,
        ctx: Ctx,
        post: Obj,
        message: str,
        props: Obj,
        file_ids: list[str] | None,
        is_pinned: bool,
        has_reactions: bool,
    ) -> Obj:
        now = now_ms()
        before = {"message": post["message"], "props": post["props"], "file_ids": post["file_ids"]}
        new_files = post["file_ids"]
        if file_ids is not None:
            unique: list[str] = []
            for f in file_ids:
                if f not in unique:
                    unique.append(f)
            new_files = [
                f
                for f in unique
                if f in post["file_ids"] or self._attachable(ctx, f, post["channel_id"], post["id"])
            ]
        removed = [f for f in post["file_ids"] if f not in new_files]
        added = [f for f in new_files if f not in post["file_ids"]]
        old_attachments = post["props"].get("attachments")
        changed = (
            message != post["message"]
            or bool(removed or added)
            or props.get("attachments") != old_attachments
        )
        if changed or props != post["props"]:
            post["_edits"].append({**before, "replaced_at": now})
        post["message"] = message
        post["props"] = props
        post["file_ids"] = new_files
        post["is_pinned"] = is_pinned
        if has_reactions:
            post["has_reactions"] = True
        else:
            post.pop("has_reactions", None)
        post["update_at"] = now
        if changed:
            post["edit_at"] = now
        self._attach(added, post["id"], now)
        for f in removed:
            self.store.files[f]["delete_at"] = now
            self.store.files[f]["update_at"] = now
        self.store.save_many([("post", post["id"])] + [("file", f) for f in added + removed])
        return post

    def h_patch_post(self, ctx: Ctx, post_id: str) -> Response:
        patch = ctx.json_body("post")
        if not isinstance(patch, dict):
            raise invalid_body_param("post")
        with self.store.lock:
            post = self._own_post_for_edit(ctx, post_id)
            message = patch.get("message")
            if message is not None:
                self._check_edit_time(post)  # any message, even the unchanged text (7.10+)
            else:
                message = post["message"]
            if self.restricted_dm(self.store.channels[post["channel_id"]]):
                raise ApiError(
                    400, "api.post.patch_post.can_not_update_post_in_restricted_dm.error"
                )
            props = patch.get("props")
            props = dict(post["props"]) if props is None else props
            file_ids = patch.get("file_ids")
            self._validate_post_fields(message, file_ids if file_ids is not None else [], props)
            is_pinned = patch.get("is_pinned")
            has_reactions = patch.get("has_reactions")
            post = self._apply_edit(
                ctx,
                post,
                message,
                props,
                file_ids,
                post["is_pinned"] if is_pinned is None else bool(is_pinned),
                post.get("has_reactions", False) if has_reactions is None else bool(has_reactions),
            )
            return json_response(200, self._post_json(post))

    def h_update_post(self, ctx: Ctx, post_id: str) -> Response:
        body = ctx.json_body("post")
        if not isinstance(body, dict):
            raise invalid_body_param("post")
        if body.get("id") != post_id:
            raise invalid_body_param("id")
        with self.store.lock:
            post = self._own_post_for_edit(ctx, post_id)
            message = body.get("message") or ""
            if message != post["message"]:
                self._check_edit_time(post)
            if self.restricted_dm(self.store.channels[post["channel_id"]]):
                raise ApiError(
                    400, "api.post.update_post.can_not_update_post_in_restricted_dm.error"
                )
            props = body.get("props") or {}
            file_ids = body.get("file_ids")
            self._validate_post_fields(message, file_ids if file_ids is not None else [], props)
            post = self._apply_edit(
                ctx,
                post,
                message,
                props,
                file_ids,
                bool(body.get("is_pinned")),
                bool(body.get("has_reactions")),
            )
            return json_response(200, self._post_json(post))

    def _readable_post(self, ctx: Ctx, post_id: str) -> Obj:
        _check_id(post_id, "post_id")
        post = self.store.posts.get(post_id)
        if post is None or post["delete_at"]:
            raise ApiError(404, "app.post.get.app_error")
        channel = self.store.channels.get(post["channel_id"])
        if channel is None or not self._can_read(ctx.user_id, channel):
            raise permission_error()
        return post

    def h_get_post(self, ctx: Ctx, post_id: str) -> Response:
        with self.store.lock:
            post = self._readable_post(ctx, post_id)
            etag = f'"{self.sb.version}.{post["update_at"]}"'
            if ctx.headers.get("If-None-Match") == etag:
                return Response(304, b"", "", {"ETag": etag})
            response = json_response(200, self._post_json(post))
        response.headers["ETag"] = etag
        return response

    def h_post_thread(self, ctx: Ctx, post_id: str) -> Response:
        with self.store.lock:
            post = self._readable_post(ctx, post_id)
            root = self.store.posts[post["root_id"]] if post["root_id"] else post
            posts = [root] + [self.store.posts[r] for r in root["_replies"]]
            posts = [p for p in posts if not p["delete_at"]]
            body = {
                "order": [p["id"] for p in reversed(posts)],
                "posts": {p["id"]: self._post_json(p) for p in posts},
                "next_post_id": "",
                "prev_post_id": "",
                "has_next": False,
            }
        return json_response(200, body)

    def h_delete_post(self, ctx: Ctx, post_id: str) -> Response:
        with self.store.lock:
            post = self._own_post_for_edit(ctx, post_id)
            now = now_ms()
            targets = [post] + [self.store.posts[r] for r in post["_replies"]]
            saves = []
            for target in targets:
                target["delete_at"] = now
                target["update_at"] = now
                saves.append(("post", target["id"]))
                for f in target["file_ids"]:
                    self.store.files[f]["delete_at"] = now
                    saves.append(("file", f))
            if post["root_id"]:
                root = self.store.posts.get(post["root_id"])
                if root is not None:
                    root["reply_count"] = max(0, root["reply_count"] - 1)
                    saves.append(("post", root["id"]))
            self.store.save_many(saves)
        return json_response(200, {"status": "OK"})

    # ---- files ---------------------------------------------------------
    def h_upload(self, ctx: Ctx) -> Response:
        return self.sb._uploads.upload(ctx)

    def _readable_file(self, ctx: Ctx, file_id: str) -> Obj:
        _check_id(file_id, "file_id")
        info = self.store.files.get(file_id)
        if info is None or info["delete_at"]:
            raise ApiError(404, "app.file_info.get.app_error")
        channel = self.store.channels.get(info["channel_id"])
        if info["user_id"] != ctx.user_id and (
            channel is None or not self._can_read(ctx.user_id, channel)
        ):
            raise permission_error()
        return info

    def h_file_info(self, ctx: Ctx, file_id: str) -> Response:
        return json_response(200, public(self._readable_file(ctx, file_id)))

    def h_file_download(self, ctx: Ctx, file_id: str) -> Response:
        info = self._readable_file(ctx, file_id)
        name = info["name"].replace('"', "")
        disposition = "attachment" if ctx.q("download") != "0" else "inline"
        return Response(
            200,
            content_type=info["mime_type"] or "application/octet-stream",
            headers={"Content-Disposition": f'{disposition};filename="{name}"'},
            file_path=self.store.files_dir / info["id"],
        )

    # ---- incoming webhooks ---------------------------------------------
    def h_incoming_webhook(self, ctx: Ctx, key: str) -> Response:
        return self.sb._webhooks.handle(ctx, key)


from .uploads import Uploads  # noqa: E402
from .webhooks import Webhooks  # noqa: E402

# ---------------------------------------------------------------------------
# HTTP plumbing
# ---------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    sandbox: Sandbox

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "MattermostSandbox"
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.sockets_lock:
            self.server.open_sockets.add(self.connection)

    def finish(self) -> None:
        with self.server.sockets_lock:
            self.server.open_sockets.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        # never the request line: its query string may carry an access_token
        # (an unparsable request, say a TLS handshake, has no command or path yet)
        path = urlsplit(getattr(self, "path", None) or "").path
        log.debug("%s %s %s", self.address_string(), self.command, path)

    def do_GET(self) -> None:
        try:
            self.server.sandbox._handle(self)
        except (ConnectionError, TimeoutError, OSError):
            self.close_connection = True  # the client went away mid-request

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    # ---- writing -------------------------------------------------------
    def write_response(self, response: Response, extra_headers: dict[str, str]) -> None:
        self.send_response(response.status)
        length = response.file_path.stat().st_size if response.file_path else len(response.body)
        headers = {**extra_headers, **response.headers}
        if response.content_type:
            headers["Content-Type"] = response.content_type
        headers["Content-Length"] = str(length)
        for name, value in headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return
        if response.file_path is not None:
            with response.file_path.open("rb") as fh:
                while True:
                    data = fh.read(CHUNK)
                    if not data:
                        break
                    self.wfile.write(data)
        elif response.body:
            self.wfile.write(response.body)

    def drop(self) -> None:
        """Close the connection without answering."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class Sandbox:
    """A local Mattermost server speaking a subset of REST API v4.

    ``with Sandbox() as sb:`` starts it on a free port of 127.0.0.1; ``sb.url``,
    ``sb.token``, ``sb.team`` and ``sb.bot_username`` are what a client needs.
    ``sb.view`` reads the state, ``sb.faults`` injects failures; ``stop()`` then
    ``start()`` restarts on the same port with the same state.
    """

    def __init__(
        self,
        port: int = 0,
        token: str | None = None,
        team: str = "sandbox",
        bot_username: str = "notify-bot",
        users: Iterable[str] = ("alice", "bob"),
        channels: Iterable[str] = ("town-square", "alerts"),
        private_channels: Iterable[str] = ("bot-private",),
        db: str | Path | None = None,
        rate_limit: bool = False,
        max_file_size: int = 100 * MiB,
        post_edit_time_limit: int | None = None,
        version: str = "10.6.0",
        *,
        max_post_size: int = MAX_POST_RUNES,
        restrict_direct_message: str = "any",
        collapsed_threads: str = "always_on",
        host: str = "127.0.0.1",
        rate_limit_per_sec: float = 10.0,
        rate_limit_burst: int = 100,
        rate_limit_by_user: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.version = version
        self.build_number = "0"
        self.max_file_size = int(max_file_size)
        self.post_edit_time_limit = post_edit_time_limit
        #: ServiceSettings.MaxPostSize in runes (4000 on servers with an old PostgreSQL column)
        self.max_post_size = int(max_post_size)
        if restrict_direct_message not in ("any", "team"):
            raise ValueError(
                f"restrict_direct_message must be 'any' or 'team', not {restrict_direct_message!r}"
            )
        #: TeamSettings.RestrictDirectMessage: "any", or "team" (DMs only between users
        #: who share a team; see ``dm_restriction_covers_bots``)
        self.restrict_direct_message = restrict_direct_message
        #: ServiceSettings.CollapsedThreads, published only (the sandbox sends no notifications)
        self.collapsed_threads = collapsed_threads
        #: seconds a pending_post_id is remembered (the server's 30 s; tests may shorten it)
        self.pending_post_id_ttl = PENDING_TTL
        self.faults = Faults()
        self.rate_limiter = (
            RateLimiter(rate_limit_per_sec, rate_limit_burst) if rate_limit else None
        )
        #: RateLimitSettings.VaryByUser: one bucket per token instead of per address
        self.rate_limit_by_user = rate_limit_by_user
        self._store = Store(db)
        self._finalizer = weakref.finalize(self, self._store.close)
        self._seed(token, team, bot_username, list(users), list(channels), list(private_channels))
        self.build_hash = hashlib.sha1(  # noqa: S324 - not security, a config fingerprint
            f"{version}{self.max_file_size}{post_edit_time_limit}{max_post_size}"
            f"{restrict_direct_message}{collapsed_threads}".encode()
        ).hexdigest()
        self.version_id = f"{version}.{self.build_number}.{self.build_hash}.false"
        self._log = RequestLog()
        self.view = View(self._store, self._log, self.bot_user_id)
        self._api = Api(self)
        self._uploads = Uploads(self)
        self._webhooks = Webhooks(self)
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def dm_restriction_covers_bots(self) -> bool:
        """From 11.1 the bot is no longer exempt from RestrictDirectMessage = team, and
        posts, edits and uploads in existing DMs are checked too."""
        parts = re.findall(r"\d+", self.version)[:2]
        major_minor = tuple(int(p) for p in parts) + (0,) * (2 - len(parts))
        return major_minor >= (11, 1)

    # ---- fixture data --------------------------------------------------
    def _make_user(self, username: str, *, is_bot: bool = False, now: int) -> Obj:
        user: Obj = {
            "id": new_id(),
            "create_at": now,
            "update_at": now,
            "delete_at": 0,
            "username": username,
            "auth_data": "",
            "auth_service": "",
            "email": f"{username}@sandbox.invalid",
            "nickname": "",
            "first_name": username.capitalize() if not is_bot else "",
            "last_name": "",
            "position": "",
            "roles": "system_user",
            "locale": "en",
            "timezone": {
                "automaticTimezone": "",
                "manualTimezone": "",
                "useAutomaticTimezone": "true",
            },
            "props": {},
            "notify_props": {},
            "last_password_update": now,
            "last_picture_update": 0,
            "failed_attempts": 0,
            "mfa_active": False,
            "disable_welcome_email": False,
        }
        if is_bot:
            user["is_bot"] = True
            user["bot_description"] = "Sends notifications (sandbox bot)."
        self._store.users[user["id"]] = user
        return user

    def _make_channel(
        self,
        team_id: str,
        name: str,
        display_name: str,
        kind: str,
        *,
        members: set[str],
        now: int,
        creator_id: str = "",
    ) -> Obj:
        channel: Obj = {
            "id": new_id(),
            "create_at": now,
            "update_at": now,
            "delete_at": 0,
            "team_id": team_id,
            "type": kind,
            "display_name": display_name,
            "name": name,
            "header": "",
            "purpose": "",
            "last_post_at": 0,
            "last_root_post_at": 0,
            "total_msg_count": 0,
            "total_msg_count_root": 0,
            "extra_update_at": 0,
            "creator_id": creator_id,
            "_members": sorted(members),
        }
        self._store.channels[channel["id"]] = channel
        return channel

    def _seed(
        self,
        token: str | None,
        team_name: str,
        bot_username: str,
        users: list[str],
        channels: list[str],
        private_channels: list[str],
    ) -> None:
        store = self._store
        with store.lock:
            if store.meta.get("seeded"):
                self.bot_user_id = store.meta["bot_user_id"]
                self.team = store.meta["team"]
                self.bot_username = store.users[self.bot_user_id]["username"]
                self.user_tokens = dict(store.meta["user_tokens"])
                if token is not None and token != store.meta["token"]:
                    store.tokens.pop(store.meta["token"], None)
                    store.tokens[token] = self.bot_user_id
                    store.meta["token"] = token
                    store.save_many([("meta", "token"), ("token", token)])
                self.token = store.meta["token"]
                self.webhook_key = store.meta["webhook_key"]
                return
            now = now_ms()
            bot = self._make_user(bot_username, is_bot=True, now=now)
            people = [self._make_user(name, now=now) for name in users]
            self.bot_user_id = bot["id"]
            self.bot_username = bot_username
            self.team = team_name
            self.token = token if token is not None else new_id()
            store.tokens[self.token] = bot["id"]
            self.user_tokens = {}
            for person in people:
                user_token = new_id()
                store.tokens[user_token] = person["id"]
                self.user_tokens[person["username"]] = user_token
            everyone = {bot["id"]} | {p["id"] for p in people}
            people_ids = {p["id"] for p in people}
            team: Obj = {
                "id": new_id(),
                "create_at": now,
                "update_at": now,
                "delete_at": 0,
                "display_name": team_name.replace("-", " ").title(),
                "name": team_name,
                "description": "",
                "email": f"admin@{team_name}.invalid",
                "type": "I",
                "company_name": "",
                "allowed_domains": "",
                "invite_id": new_id(),
                "allow_open_invite": False,
                "scheme_id": "",
                "group_constrained": False,
                "_members": sorted(everyone),
            }
            store.teams[team["id"]] = team
            creator = people[0]["id"] if people else bot["id"]

            def display(name: str) -> str:
                return name.replace("-", " ").replace("_", " ").title()

            # (name, type, members): the listed channels with the bot in them, then
            # "secret" (private) and "lobby" (public) that the bot is not a member of
            specs = [(name, "O", everyone) for name in channels]
            specs += [(name, "P", everyone) for name in private_channels]
            specs += [("secret", "P", people_ids), ("lobby", "O", people_ids)]
            seen: set[str] = set()
            first_channel = None
            for name, kind, members in specs:
                if name in seen:
                    continue
                seen.add(name)
                ch = self._make_channel(
                    team["id"],
                    name,
                    display(name),
                    kind,
                    members=members,
                    now=now,
                    creator_id=creator,
                )
                if kind == "O" and members is everyone and first_channel is None:
                    first_channel = ch
            hook_channel = first_channel or next(iter(store.channels.values()))
            self.webhook_key = self.create_webhook(hook_channel["name"], _save=False)
            store.meta.update(
                seeded=True,
                bot_user_id=bot["id"],
                team=team_name,
                token=self.token,
                user_tokens=self.user_tokens,
                webhook_key=self.webhook_key,
            )
            saves = [("meta", k) for k in store.meta]
            saves += [("user", u) for u in store.users] + [("token", t) for t in store.tokens]
            saves += [("team", t) for t in store.teams] + [("channel", c) for c in store.channels]
            saves += [("hook", h) for h in store.hooks]
            store.save_many(saves)

    def create_webhook(self, channel: str, *, locked: bool = False, _save: bool = True) -> str:
        """Create an incoming webhook posting (as the bot) to ``channel``; returns its key."""
        store = self._store
        with store.lock:
            team = store.team_by_name(self.team) if hasattr(self, "team") else None
            target = None
            for ch in store.channels.values():
                if ch["name"] == channel and (team is None or ch["team_id"] == team["id"]):
                    target = ch
            if target is None:
                raise KeyError(f"no channel {channel!r}")
            key = new_id()
            store.hooks[key] = {
                "id": key,
                "channel_id": target["id"],
                "user_id": self.bot_user_id,
                "team_id": target["team_id"],
                "channel_locked": locked,
                "display_name": "sandbox hook",
            }
            if _save:
                store.save("hook", key)
        return key

    @property
    def webhook_url(self) -> str:
        """URL of the seeded incoming webhook (posts to the first public channel)."""
        return f"{self.url}/hooks/{self.webhook_key}"

    def remove_from_team(self, username: str) -> None:
        """Take ``username`` (the bot too) out of the team and its channels, as an admin can.

        For trying what a client does when its bot was never added to the team.
        """
        store = self._store
        with store.lock:
            user = store.user_by_name(username)
            team = store.team_by_name(self.team)
            if user is None or team is None:
                raise KeyError(f"no user {username!r} in team {self.team!r}")
            changed = [("team", team["id"])]
            if user["id"] in team["_members"]:
                team["_members"].remove(user["id"])
            for ch in store.channels.values():
                if ch["team_id"] == team["id"] and user["id"] in ch["_members"]:
                    ch["_members"].remove(user["id"])
                    changed.append(("channel", ch["id"]))
            store.save_many(changed)

    # ---- admin changes (what an administrator does behind a client's back) ----
    def _team_obj(self) -> Obj:
        team = self._store.team_by_name(self.team)
        if team is None:
            raise KeyError(f"no team {self.team!r}")
        return team

    def archive_channel(self, name: str, *, permanent: bool = False) -> str:
        """Archive channel ``name`` of the team (``permanent``: delete it); returns its id.

        An archived channel is not found by name any more and refuses posts (400
        ``api.post.create_post.can_not_post_to_deleted.error``); a deleted one is gone
        (posts to its id get 403). Either way its name can be used again.
        """
        store = self._store
        with store.lock:
            team = self._team_obj()
            channel = store.channel_by_name(team["id"], name)
            if channel is None:
                raise KeyError(f"no channel {name!r} in team {self.team!r}")
            if permanent:
                store.delete("channel", channel["id"])
            else:
                channel["delete_at"] = channel["update_at"] = now_ms()
                channel["name"] = f"{name}--archived-{channel['id'][:8]}"
                store.save("channel", channel["id"])
            return str(channel["id"])

    def create_channel(self, name: str, *, private: bool = False, bot_member: bool = True) -> str:
        """Create channel ``name`` in the team (every user in it; the bot too unless
        ``bot_member=False``); returns the new id."""
        store = self._store
        with store.lock:
            team = self._team_obj()
            if store.channel_by_name(team["id"], name) is not None:
                raise ValueError(f"channel {name!r} exists in team {self.team!r}")
            members = {uid for uid in team["_members"] if bot_member or uid != self.bot_user_id}
            channel = self._make_channel(
                team["id"],
                name,
                name.replace("-", " ").title(),
                "P" if private else "O",
                members=members,
                now=now_ms(),
            )
            store.save("channel", channel["id"])
            return str(channel["id"])

    def rename_user(self, username: str, new_username: str) -> str:
        """Give user ``username`` the name ``new_username`` (its id stays); returns the id."""
        store = self._store
        with store.lock:
            user = store.user_by_name(username)
            if user is None:
                raise KeyError(f"no user {username!r}")
            if store.user_by_name(new_username) is not None:
                raise ValueError(f"user name {new_username!r} is taken")
            user["username"] = new_username
            user["update_at"] = now_ms()
            store.save("user", user["id"])
            return str(user["id"])

    def create_user(self, username: str) -> str:
        """A new user ``username`` in the team; returns its id."""
        store = self._store
        with store.lock:
            if store.user_by_name(username) is not None:
                raise ValueError(f"user name {username!r} is taken")
            team = self._team_obj()
            user = self._make_user(username, now=now_ms())
            team["_members"] = sorted({*team["_members"], user["id"]})
            store.save_many([("user", user["id"]), ("team", team["id"])])
            return str(user["id"])

    def user_token(self, username: str) -> str:
        """The access token of a seeded (non-bot) user, for tests acting as that user."""
        return self.user_tokens[username]

    # ---- life cycle ----------------------------------------------------
    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> Sandbox:
        """Start serving (on ``port``; after a stop, on the same port as before)."""
        if self._server is not None:
            return self
        if self._finalizer is None or not self._finalizer.alive:
            raise RuntimeError("this sandbox was closed")
        server = _HTTPServer((self.host, self.port), self)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"mattermost-sandbox:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close open connections; the state is kept."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with server.sockets_lock:
            sockets = list(server.open_sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def close(self) -> None:
        """Stop and free the state (temporary files, database connection)."""
        self.stop()
        self._finalizer()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Sandbox {self.url} team={self.team!r} bot={self.bot_username!r} {state}>"

    # ---- request handling ----------------------------------------------
    def _handle(self, handler: _Handler) -> None:
        started = time.perf_counter()
        arrived = now_ms()
        request_id = new_id()
        split = urlsplit(handler.path)
        path = split.path
        method = handler.command
        body = Body(handler.rfile, handler.headers)
        is_api = path.startswith(("/api/", "/hooks/"))
        stalled = [False]

        def stall() -> None:
            if not stalled[0]:
                stalled[0] = True
                seconds = self.faults.stall_seconds(method, path)
                if seconds > 0:
                    time.sleep(seconds)

        ctx = Ctx(
            method,
            path,
            parse_qs(split.query, keep_blank_values=True),
            handler.headers,
            body,
            request_id,
            handler.client_address[0],
            stall,
        )
        fault: Fault | None = self.faults.choose(method, path) if is_api else None
        fault_name = ""
        extra: dict[str, str] = {}
        route = ""
        if fault is not None:
            fault_name = fault.mode if fault.mode != "status" else f"status:{fault.status}"
        if fault is not None and fault.mode == "drop_before":
            body.drain()
            handler.drop()
            self._record(ctx, route, 0, "", started, arrived, fault_name, b"")
            return
        if fault is not None and fault.mode == "status":
            body.drain()
            response = self._fault_response(fault.status)
        elif is_api and self.rate_limiter is not None:
            header = ctx.headers.get("Authorization", "") if self.rate_limit_by_user else ""
            token = parse_token(header) if header else ""
            decision = self.rate_limiter.check(f"token:{token}" if token else ctx.client)
            headers = decision.headers()
            if token and not decision.limited:
                # as the real server with VaryByUser: the API handler's own per-user limiter
                # writes a second copy of each X-RateLimit-* header ("5, 5" once combined)
                headers = {
                    k: f"{v}, {v}" if k.startswith("X-RateLimit") else v for k, v in headers.items()
                }
            extra.update(headers)
            if decision.limited:
                body.drain()
                response = Response(
                    429, b"limit exceeded\n", "text/plain; charset=utf-8", api=False
                )
            else:
                response, route = self._run(ctx)
        elif is_api:
            response, route = self._run(ctx)
        else:
            response = self._web(ctx)
        if not body.done and not body.drain(limit=self.max_file_size + MiB):
            handler.close_connection = True
        if fault is not None and fault.mode == "drop_after":
            handler.drop()
            self._record(ctx, route, 0, "", started, arrived, fault_name, b"")
            return
        if response.api:
            extra["X-Request-Id"] = request_id
            extra["X-Version-Id"] = self.version_id
            extra["X-Content-Type-Options"] = "nosniff"
            extra["Referrer-Policy"] = "no-referrer"
            if method == "GET":
                extra["Expires"] = "0"
        if is_api:  # logged before answering: a client that got its answer finds it in the log
            self._record(
                ctx,
                route,
                response.status,
                response.content_type,
                started,
                arrived,
                fault_name,
                response.body,
            )
        try:
            handler.write_response(response, extra)
        except OSError:
            handler.close_connection = True

    def _run(self, ctx: Ctx) -> tuple[Response, str]:
        try:
            return self._api.dispatch(ctx)
        except ApiError as err:
            return self._error_response(err, ctx.request_id), self._api.route_template(
                ctx.method, ctx.path
            )
        except ConnectionError:
            raise
        except Exception:
            log.exception("sandbox: unexpected error in %s %s", ctx.method, ctx.path)
            internal = ApiError(500, "sandbox.internal.app_error")
            return self._error_response(internal, ctx.request_id), ""

    def _error_response(self, err: ApiError, request_id: str) -> Response:
        body = {
            "id": err.error_id,
            "message": err.message,
            "detailed_error": "",
            "request_id": request_id,
            "status_code": err.status,
        }
        return json_response(err.status, body)

    def _fault_response(self, status: int) -> Response:
        if status == 429:
            return Response(
                429,
                b"limit exceeded\n",
                "text/plain; charset=utf-8",
                {"Retry-After": "1"},
                api=False,
            )
        err = ApiError(status, "sandbox.fault.injected")
        body = {
            "id": err.error_id,
            "message": err.message,
            "detailed_error": "",
            "request_id": "",
            "status_code": status,
        }
        return json_response(status, body)

    def _record(
        self,
        ctx: Ctx,
        route: str,
        status: int,
        content_type: str,
        started: float,
        arrived: int,
        fault: str,
        body: bytes,
    ) -> None:
        record = RequestRecord(
            request_id=ctx.request_id,
            time=arrived,
            method=ctx.method,
            path=ctx.path,
            query=urlsplit(
                "?"
                + "&".join(
                    f"{k}={v}" for k, vs in ctx.query.items() if k != "access_token" for v in vs
                )
            ).query,
            route=route,
            status=status,
            user_id=str(ctx.user["id"]) if ctx.user else "",
            duration_ms=(time.perf_counter() - started) * 1000,
            fault=fault,
            content_type=content_type,
        )
        self._log.append(record)
        for observer in list(_observers):
            try:
                observer(record, content_type, body)
            except Exception:
                log.exception("sandbox: response observer failed")

    # ---- the web page --------------------------------------------------
    def _web(self, ctx: Ctx) -> Response:
        from .web import render

        ctx.body.drain()
        return render(self, ctx.method, ctx.path, ctx.query)


def random_token() -> str:
    return secrets.token_hex(13)
