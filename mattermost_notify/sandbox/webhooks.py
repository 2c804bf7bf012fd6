"""``POST /hooks/{key}``: incoming webhooks (JSON, form ``payload`` or multipart fields)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from ._store import Obj, Store, dm_name, now_ms
from .http import MAX_PAYLOAD_BYTES, ApiError, BodyTooLarge, Ctx, Response


def _hook_error(status: int, decode: bool = False) -> ApiError:
    if decode:
        return ApiError(status, "web.incoming_webhook.decode.app_error")
    return ApiError(status, "web.incoming_webhook.general.app_error")


class Webhooks:
    """The incoming-webhook handler; ``insert_post`` stores a post as the API does,
    ``max_post_size()`` is the server's MaxPostSize."""

    def __init__(
        self, store: Store, insert_post: Callable[..., Obj], max_post_size: Callable[[], int]
    ) -> None:
        self.store = store
        self.insert_post = insert_post
        self.max_post_size = max_post_size

    def _payload(self, ctx: Ctx) -> dict[str, Any]:
        try:
            raw = ctx.body.read_all(MAX_PAYLOAD_BYTES + 512)
        except BodyTooLarge:
            raise ApiError(413, "api.context.request_body_too_large.app_error") from None
        content_type = ctx.headers.get("Content-Type", "").split(";")[0].strip().lower()
        try:
            if content_type == "application/x-www-form-urlencoded":
                form = parse_qs(raw.decode("utf-8"))
                payload = json.loads(form.get("payload", [""])[0])
            elif content_type == "multipart/form-data":
                payload = self._multipart_fields(ctx, raw)
            else:
                payload = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise _hook_error(400, decode=True) from None
        if not isinstance(payload, dict):
            raise _hook_error(400, decode=True)
        return payload

    @staticmethod
    def _multipart_fields(ctx: Ctx, raw: bytes) -> dict[str, Any]:
        from multipart import MultipartSegment, PushMultipartParser, parse_options_header

        _, options = parse_options_header(ctx.headers.get("Content-Type", ""))
        parser = PushMultipartParser(options.get("boundary", ""), max_segment_count=100)
        fields: dict[str, Any] = {}
        name = ""
        value = bytearray()
        for chunk in (raw, b""):
            for event in parser.parse(chunk):
                if isinstance(event, MultipartSegment):
                    name, value = event.name, bytearray()
                elif event is not None:
                    value += event
                else:
                    fields[name] = value.decode("utf-8")
        if "attachments" in fields:
            fields["attachments"] = json.loads(fields["attachments"])
        return fields

    def handle(self, ctx: Ctx, key: str) -> Response:
        if not key.isalnum():
            raise _hook_error(400)
        payload = self._payload(ctx)
        store = self.store
        with store.lock:
            hook = store.hooks.get(key)
            if hook is None:
                raise _hook_error(400)
            text = payload.get("text") or ""
            attachments = payload.get("attachments")
            if not isinstance(text, str) or (not text and not attachments):
                raise _hook_error(400)
            channel = self._target_channel(hook, payload.get("channel"))
            post_type = payload.get("type") or ""
            if not isinstance(post_type, str) or (
                post_type and not post_type.startswith("custom_")
            ):
                raise _hook_error(400)
            props: Obj = (
                dict(payload.get("props") or {}) if isinstance(payload.get("props"), dict) else {}
            )
            props["from_webhook"] = "true"
            size = self.max_post_size()
            parts = [text[i : i + size] for i in range(0, len(text), size)]
            parts = parts or [""]
            for index, part in enumerate(parts):
                part_props = dict(props)
                if attachments and index == len(parts) - 1:
                    part_props["attachments"] = attachments
                self.insert_post(hook["user_id"], channel, part, "", part_props, [], post_type)
        return Response(200, b"ok", "text/plain")

    def _target_channel(self, hook: Obj, requested: Any) -> Obj:
        store = self.store
        default = store.channels[hook["channel_id"]]
        if not requested:
            return default
        if not isinstance(requested, str):
            raise _hook_error(400)
        if requested.startswith("@"):
            user = store.user_by_name(requested[1:].lower())
            if user is None:  # web.incoming_webhook.user.app_error: 400, not 404
                raise _hook_error(400)
            channel = store.dm_channel(hook["user_id"], user["id"])
            if channel is None:
                members = {hook["user_id"], user["id"]}
                channel = store.new_channel(
                    "", dm_name(hook["user_id"], user["id"]), "", "D", members=members, now=now_ms()
                )
                store.save("channel", channel["id"])
            return channel
        name = requested.lstrip("#").lower()
        channel = store.channel_by_name(hook["team_id"], name)
        if channel is None:
            raise _hook_error(404)
        if hook["channel_locked"] and channel["id"] != default["id"]:
            raise _hook_error(403)
        if channel["type"] == "P" and hook["user_id"] not in channel["_members"]:
            raise _hook_error(403)
        return channel
