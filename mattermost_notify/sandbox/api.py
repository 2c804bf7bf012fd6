"""The sandbox's REST API v4 handlers, working on a :class:`Store`."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar
from urllib.parse import unquote

from ._store import Obj, Store, can_post, dm_name, new_id, now_ms, public
from .http import (
    FILE_IDS_MAX_RUNES,
    ID_RE,
    MAX_PAYLOAD_BYTES,
    USERNAME_RE,
    ApiError,
    Ctx,
    Response,
    Route,
    check_id,
    invalid_body_param,
    invalid_url_param,
    json_response,
    make_route,
    parse_token,
    permission_error,
)
from .uploads import Uploads
from .webhooks import Webhooks

PENDING_TTL = 30.0
# the fields a team member and a channel member share: a plain user, no guest, no admin
_MEMBER_SCHEME = {
    "scheme_guest": False,
    "scheme_user": True,
    "scheme_admin": False,
    "explicit_roles": "",
}


class Settings(Protocol):
    """What the handlers read of the server's configuration (the Sandbox has it)."""

    url: str
    version: str
    build_number: str
    build_hash: str
    max_file_size: int
    max_post_size: int
    post_edit_time_limit: int | None
    pending_post_id_ttl: float
    restrict_direct_message: str
    collapsed_threads: str
    dm_restriction_covers_bots: bool


ROUTES: list[Route] = []  # in the order of the handlers below; the first match wins
H = TypeVar("H", bound=Callable[..., Response])


def route(method: str, template: str, **kw: Any) -> Callable[[H], H]:
    """Register the decorated handler for ``method`` and the path ``template``."""

    def register(handler: H) -> H:
        ROUTES.append(make_route(method, template, handler.__name__, **kw))
        return handler

    return register


class Api:
    """The route handlers, working on a :class:`Store`."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.uploads = Uploads(store, lambda: settings.max_file_size, self.restricted_dm)
        self.webhooks = Webhooks(store, self.insert_post, lambda: settings.max_post_size)
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
        handler = getattr(self, route.handler)
        return handler(ctx, **(params or {})), route.template

    def _match(self, method: str, path: str) -> tuple[Route | None, dict[str, str] | None]:
        path_known = False
        for candidate in ROUTES:
            found = candidate.pattern.match(path)
            if found is None:
                continue
            if candidate.method == method:
                return candidate, {k: unquote(v) for k, v in found.groupdict().items()}
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

    def _share_a_team(self, user_id: str, other_id: str) -> bool:
        return any(
            user_id in team["_members"] and other_id in team["_members"]
            for team in self.store.teams.values()
        )

    def restricted_dm(self, channel: Obj) -> bool:
        """CheckIfChannelIsRestrictedDM (11.1 and later): a DM between users who share no
        team while RestrictDirectMessage is ``team``. Earlier servers never check an
        existing DM."""
        if channel["type"] != "D" or self.settings.restrict_direct_message != "team":
            return False
        if not self.settings.dm_restriction_covers_bots:
            return False
        members = channel["_members"]
        return not self._share_a_team(members[0], members[-1])

    # ---- system --------------------------------------------------------
    @route("GET", "/api/v4/system/ping", auth=False)
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

    @route("GET", "/api/v4/config/client", auth=False)
    def h_config_client(self, ctx: Ctx) -> Response:
        sb = self.settings
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
    @route("GET", "/api/v4/users/{user_id}")
    def h_user(self, ctx: Ctx, user_id: str) -> Response:
        if user_id == "me":
            user_id = ctx.user_id
        check_id(user_id, "user_id")
        user = self.store.users.get(user_id)
        if user is None:
            raise ApiError(404, "app.user.missing_account.const")
        return json_response(200, public(user))

    @route("GET", "/api/v4/users/username/{username}")
    def h_user_by_name(self, ctx: Ctx, username: str) -> Response:
        if not USERNAME_RE.match(username):
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

    @route("GET", "/api/v4/teams/name/{team_name}")
    def h_team_by_name(self, ctx: Ctx, team_name: str) -> Response:
        team = self.store.team_by_name(team_name.lower())
        if team is None:
            raise ApiError(404, "app.team.get_by_name.missing.app_error")
        return json_response(200, public(self._visible_team(ctx, team)))

    @route("GET", "/api/v4/teams/{team_id}")
    def h_team(self, ctx: Ctx, team_id: str) -> Response:
        check_id(team_id, "team_id")
        team = self.store.teams.get(team_id)
        if team is None:
            raise permission_error()
        return json_response(200, public(self._visible_team(ctx, team)))

    @staticmethod
    def _member_route(ctx: Ctx, container_id: str, name: str, user_id: str) -> str:
        """The ids of a ``.../{id}/members/{user_id}`` route checked; ``me`` resolved."""
        check_id(container_id, name)
        return check_id(ctx.user_id if user_id == "me" else user_id, "user_id")

    @route("GET", "/api/v4/teams/{team_id}/members/{user_id}")
    def h_team_member(self, ctx: Ctx, team_id: str, user_id: str) -> Response:
        # api4/team.go getTeamMember: ids checked, then view_team (membership: no
        # sandbox user has system-wide team permissions), then the member row
        user_id = self._member_route(ctx, team_id, "team_id", user_id)
        if not self._team_member(ctx.user_id, team_id):
            raise permission_error()
        if not self._team_member(user_id, team_id):
            raise ApiError(404, "app.team.get_member.missing.app_error")
        member = {"team_id": team_id, "user_id": user_id, "roles": "team_user", "delete_at": 0}
        return json_response(200, member | _MEMBER_SCHEME)

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

    @route("GET", "/api/v4/teams/{team_id}/channels/name/{channel_name}")
    def h_channel_by_name(self, ctx: Ctx, team_id: str, channel_name: str) -> Response:
        check_id(team_id, "team_id")
        team = self.store.teams.get(team_id)
        if team is None:
            raise ApiError(404, "app.channel.get_by_name.missing.app_error")
        return self._channel_in_team(ctx, team, channel_name)

    @route("GET", "/api/v4/teams/name/{team_name}/channels/name/{channel_name}")
    def h_channel_by_team_name(self, ctx: Ctx, team_name: str, channel_name: str) -> Response:
        team = self.store.team_by_name(team_name.lower())
        if team is None:
            raise ApiError(404, "app.team.get_by_name.missing.app_error")
        return self._channel_in_team(ctx, team, channel_name)

    def _readable_channel(self, ctx: Ctx, channel_id: str) -> Obj:
        check_id(channel_id, "channel_id")
        channel = self.store.channels.get(channel_id)
        if channel is None:
            raise ApiError(404, "app.channel.get.existing.app_error")
        if not self._can_read(ctx.user_id, channel):
            raise permission_error()
        return channel

    @route("GET", "/api/v4/channels/{channel_id}")
    def h_channel(self, ctx: Ctx, channel_id: str) -> Response:
        return json_response(200, public(self._readable_channel(ctx, channel_id)))

    @route("GET", "/api/v4/channels/{channel_id}/members/{user_id}")
    def h_channel_member(self, ctx: Ctx, channel_id: str, user_id: str) -> Response:
        # api4/channel.go getChannelMember: read_channel, which only the channel's own
        # member roles grant (team roles do not), then the member row
        user_id = self._member_route(ctx, channel_id, "channel_id", user_id)
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
            }
        return json_response(200, member | _MEMBER_SCHEME)

    @route("GET", "/api/v4/channels/{channel_id}/posts")
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
            return self._post_list(posts, posts)

    @route("POST", "/api/v4/channels/direct")
    def h_direct_channel(self, ctx: Ctx) -> Response:
        ids = ctx.json_body("user_ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise invalid_body_param("user_ids")
        if len(ids) == 1:
            ids = [ids[0], ids[0]]
        if len(ids) != 2:
            raise invalid_body_param("user_ids")
        for user_id in ids:
            if not ID_RE.match(user_id):
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
        exempt = is_bot and not self.settings.dm_restriction_covers_bots
        with self.store.lock:
            channel = self.store.dm_channel(ctx.user_id, other)
            if channel is None:
                if (
                    self.settings.restrict_direct_message == "team"
                    and not exempt
                    and not self._share_a_team(ctx.user_id, other)
                ):
                    raise ApiError(
                        403, "api.channel.create_channel.direct_channel.team_restricted_error"
                    )
                now = now_ms()
                channel = self.store.new_channel(
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
        if len(message) > self.settings.max_post_size:
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

    @route("POST", "/api/v4/posts", stalls_itself=True)
    def h_create_post(self, ctx: Ctx) -> Response:
        body = ctx.json_body("post")
        if not isinstance(body, dict):
            raise invalid_body_param("post")
        channel_id = body.get("channel_id")
        if not isinstance(channel_id, str) or not ID_RE.match(channel_id):
            raise invalid_body_param("channel_id")
        with self.store.lock:
            channel = self.store.channels.get(channel_id)
            if channel is not None and channel["delete_at"] and ctx.user_id in channel["_members"]:
                raise ApiError(400, "api.post.create_post.can_not_post_to_deleted.error")
            if channel is None or not can_post(ctx.user_id, channel):
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
                            time.monotonic() + self.settings.pending_post_id_ttl,
                        )

    def _dedup_begin(self, ctx: Ctx, pending_id: str) -> Obj | None:
        """Steps 2-5 of the server's deduplicateCreatePost: the earlier post, or None."""
        with self._pending_lock:
            now = time.monotonic()
            entry = self._pending.get(pending_id)
            if entry is not None and entry[1] <= now:
                entry = None
            if entry is None:
                self._pending[pending_id] = ("", now + self.settings.pending_post_id_ttl)
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
            self._pending[pending_id] = ("", time.monotonic() + self.settings.pending_post_id_ttl)
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
            attached = [
                f for f in dict.fromkeys(file_ids) if attach_check and attach_check(f, post_id)
            ]
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
        check_id(post_id, "post_id")
        post = self.store.posts.get(post_id)
        if post is None or post["delete_at"] or post["user_id"] != ctx.user_id:
            raise permission_error()
        channel = self.store.channels.get(post["channel_id"])
        if channel is None or not self._can_read(ctx.user_id, channel):
            raise permission_error()
        return post

    def _check_edit_time(self, post: Obj) -> None:
        limit = self.settings.post_edit_time_limit
        if limit is not None and limit >= 0 and now_ms() > post["create_at"] + limit * 1000:
            raise ApiError(
                400, "api.post.update_post.permissions_time_limit.app_error", limit=limit
            )

    def _apply_edit(
        self,
        ctx: Ctx,
        post: Obj,
        restricted_error: str,
        message: str,
        props: Obj,
        file_ids: list[str] | None,
        is_pinned: bool,
        has_reactions: bool,
    ) -> Response:
        """The edit of both PUT routes (``restricted_error``: the route's refusal in a DM
        the server restricts), once the values are taken from the request."""
        if self.restricted_dm(self.store.channels[post["channel_id"]]):
            raise ApiError(400, restricted_error)
        self._validate_post_fields(message, file_ids if file_ids is not None else [], props)
        now = now_ms()
        before = {"message": post["message"], "props": post["props"], "file_ids": post["file_ids"]}
        new_files = post["file_ids"]
        if file_ids is not None:
            new_files = [
                f
                for f in dict.fromkeys(file_ids)
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
        return json_response(200, self._post_json(post))

    @route("PUT", "/api/v4/posts/{post_id}/patch")
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
            props = patch.get("props")
            is_pinned = patch.get("is_pinned")
            has_reactions = patch.get("has_reactions")
            return self._apply_edit(
                ctx,
                post,
                "api.post.patch_post.can_not_update_post_in_restricted_dm.error",
                message,
                dict(post["props"]) if props is None else props,
                patch.get("file_ids"),
                post["is_pinned"] if is_pinned is None else bool(is_pinned),
                post.get("has_reactions", False) if has_reactions is None else bool(has_reactions),
            )

    @route("PUT", "/api/v4/posts/{post_id}")
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
            return self._apply_edit(
                ctx,
                post,
                "api.post.update_post.can_not_update_post_in_restricted_dm.error",
                message,
                body.get("props") or {},
                body.get("file_ids"),
                bool(body.get("is_pinned")),
                bool(body.get("has_reactions")),
            )

    def _readable(self, ctx: Ctx, kind: str, obj_id: str) -> Obj:
        """A post or a file (``kind``) by id: 404 when absent or deleted, 403 when the caller
        cannot read its channel (a file the caller uploaded is always readable)."""
        check_id(obj_id, f"{kind}_id")
        obj = (self.store.posts if kind == "post" else self.store.files).get(obj_id)
        missing = "app.post.get.app_error" if kind == "post" else "app.file_info.get.app_error"
        if obj is None or obj["delete_at"]:
            raise ApiError(404, missing)
        if kind == "file" and obj["user_id"] == ctx.user_id:
            return obj
        channel = self.store.channels.get(obj["channel_id"])
        if channel is None or not self._can_read(ctx.user_id, channel):
            raise permission_error()
        return obj

    @route("GET", "/api/v4/posts/{post_id}")
    def h_get_post(self, ctx: Ctx, post_id: str) -> Response:
        with self.store.lock:
            post = self._readable(ctx, "post", post_id)
            etag = f'"{self.settings.version}.{post["update_at"]}"'
            if ctx.headers.get("If-None-Match") == etag:
                return Response(304, b"", "", {"ETag": etag})
            response = json_response(200, self._post_json(post))
        response.headers["ETag"] = etag
        return response

    @route("GET", "/api/v4/posts/{post_id}/thread")
    def h_post_thread(self, ctx: Ctx, post_id: str) -> Response:
        with self.store.lock:
            post = self._readable(ctx, "post", post_id)
            root = self.store.posts[post["root_id"]] if post["root_id"] else post
            posts = [root] + [self.store.posts[r] for r in root["_replies"]]
            posts = [p for p in posts if not p["delete_at"]]
            return self._post_list(posts, reversed(posts))

    def _post_list(self, posts: list[Obj], order: Iterable[Obj]) -> Response:
        """A PostList: the posts by id, and their ids in ``order``."""
        body = {
            "order": [p["id"] for p in order],
            "posts": {p["id"]: self._post_json(p) for p in posts},
            "next_post_id": "",
            "prev_post_id": "",
            "has_next": False,
        }
        return json_response(200, body)

    @route("DELETE", "/api/v4/posts/{post_id}")
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
    @route("POST", "/api/v4/files", upload=True)
    def h_upload(self, ctx: Ctx) -> Response:
        return self.uploads.upload(ctx)

    @route("GET", "/api/v4/files/{file_id}")
    def h_file_download(self, ctx: Ctx, file_id: str) -> Response:
        info = self._readable(ctx, "file", file_id)
        name = info["name"].replace('"', "")
        disposition = "attachment" if ctx.q("download") != "0" else "inline"
        return Response(
            200,
            content_type=info["mime_type"] or "application/octet-stream",
            headers={"Content-Disposition": f'{disposition};filename="{name}"'},
            file_path=self.store.files_dir / info["id"],
        )

    @route("GET", "/api/v4/files/{file_id}/info")
    def h_file_info(self, ctx: Ctx, file_id: str) -> Response:
        return json_response(200, public(self._readable(ctx, "file", file_id)))

    # ---- incoming webhooks ---------------------------------------------
    @route("POST", "/hooks/{key}", auth=False)
    def h_incoming_webhook(self, ctx: Ctx, key: str) -> Response:
        return self.webhooks.handle(ctx, key)
