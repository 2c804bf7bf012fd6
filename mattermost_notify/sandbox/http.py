"""The sandbox's HTTP vocabulary: error bodies, responses, the request body and context, routes."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._store import Obj

MiB = 1024 * 1024
MAX_POST_RUNES = 16383
MAX_PAYLOAD_BYTES = 300_000  # ServiceSettings.MaximumPayloadSizeBytes
FILE_IDS_MAX_RUNES = 300
CHUNK = 64 * 1024

_MESSAGES = {
    "api.context.session_expired.app_error": "Invalid or expired session, please login again.",
    "api.context.permissions.app_error": "You do not have the appropriate permissions.",
    "api.context.404.app_error": "Sorry, we could not find the page.",
    "api.context.token_provided.app_error": (
        "Session token provided in query string; use the Authorization header instead."
    ),
    "api.context.request_body_too_large.app_error": "The request body is too large.",
    "api.context.invalid_body_param.app_error": "Invalid or missing {name} in request body.",
    "api.context.invalid_url_param.app_error": (
        "Invalid or missing {name} parameter in request URL."
    ),
    "api.context.invalid_param.app_error": "Invalid {name} parameter.",
    "app.user.get_by_username.app_error": (
        "Unable to find an existing account matching your username for this team."
    ),
    "app.user.missing_account.const": "Unable to find the user.",
    "app.team.get_by_name.missing.app_error": "Unable to find the existing team.",
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
    return ApiError(400, "api.context.invalid_body_param.app_error", name=name)


def invalid_url_param(name: str) -> ApiError:
    return ApiError(400, "api.context.invalid_url_param.app_error", name=name)


def invalid_param(name: str) -> ApiError:
    return ApiError(400, "api.context.invalid_param.app_error", name=name)


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
            try:
                self.length = max(0, int(headers.get("Content-Length") or 0))
            except ValueError:
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
        return b"".join(self._chunks(limit))

    def drain(self, limit: int = 4 * 1024 * MiB) -> bool:
        """Read and discard the rest; False when more than ``limit`` bytes were left."""
        try:
            for _ in self._chunks(limit):
                pass
        except BodyTooLarge:
            return False
        return True

    def _chunks(self, limit: int) -> Iterator[bytes]:
        """The rest of the body; :class:`BodyTooLarge` once past ``limit`` bytes."""
        total = 0
        while data := self.read():
            total += len(data)
            if total > limit:
                raise BodyTooLarge
            yield data


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


def make_route(method: str, template: str, handler: str, **kw: Any) -> Route:
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
    return Route(method, re.compile(f"^{regex}$"), template, handler, **kw)


ID_RE = re.compile(r"^[a-z0-9]{26}$")
USERNAME_RE = re.compile(r"^[a-z0-9.\-_]{1,64}$")


def check_id(value: str, name: str) -> str:
    if not ID_RE.match(value):
        raise invalid_url_param(name)
    return value


def parse_token(authorization: str) -> str:
    """The token of an ``Authorization`` header, the way the server parses it."""
    if len(authorization) > 6 and authorization[:6].upper() == "BEARER":
        return authorization[7:]
    if len(authorization) > 5 and authorization[:5].lower() == "token":
        return authorization[6:]
    return ""


def error_response(err: ApiError, request_id: str = "") -> Response:
    """Mattermost's JSON error body for ``err``."""
    body = {
        "id": err.error_id,
        "message": err.message,
        "detailed_error": "",
        "request_id": request_id,
        "status_code": err.status,
    }
    return json_response(err.status, body)
