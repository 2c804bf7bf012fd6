"""``POST /api/v4/files``: multipart and raw-body uploads, streamed to disk."""

from __future__ import annotations

import contextlib
import mimetypes
from collections.abc import Callable
from pathlib import Path
from typing import IO

from ._store import Obj, Store, can_post, new_id, now_ms, public
from .http import (
    CHUNK,
    ApiError,
    Ctx,
    Response,
    invalid_body_param,
    invalid_param,
    json_response,
    permission_error,
)

_MAX_FIELD = 64 * 1024


class _Upload:
    """One file being written to disk."""

    def __init__(self, directory: Path, name: str) -> None:
        self.id = new_id()
        self.name = Path(name.replace("\\", "/")).name or "file"
        self.path = directory / self.id
        self.size = 0
        self.handle: IO[bytes] | None = self.path.open("wb")

    def write(self, data: bytes) -> None:
        assert self.handle is not None
        self.handle.write(data)
        self.size += len(data)

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None

    def discard(self) -> None:
        self.close()
        with contextlib.suppress(OSError):
            self.path.unlink()


class Uploads:
    """The upload handler; ``max_file_size()`` is the server's current MaxFileSize and
    ``restricted_dm(channel)`` whether the server refuses uploads to that DM."""

    def __init__(
        self,
        store: Store,
        max_file_size: Callable[[], int],
        restricted_dm: Callable[[Obj], bool],
    ) -> None:
        self.store = store
        self.max_file_size = max_file_size
        self.restricted_dm = restricted_dm

    def _check_channel(self, ctx: Ctx, channel_id: str) -> Obj:
        channel = self.store.channels.get(channel_id)
        if channel is None or not can_post(ctx.user_id, channel):
            raise permission_error()
        if self.restricted_dm(channel):
            raise ApiError(400, "api.file.upload_file.restricted_dm.error")
        return channel

    def _too_large(self, name: str, length: int) -> ApiError:
        return ApiError(
            413,
            "api.file.upload_file.too_large_detailed.app_error",
            filename=name,
            length=length,
            limit=self.max_file_size(),
        )

    def upload(self, ctx: Ctx) -> Response:
        if ctx.body.length == 0 and not ctx.body.chunked:
            raise ApiError(
                400,
                "api.file.upload_file.read_request.app_error",
                "Unable to upload file(s). Request body is empty.",
            )
        content_type = ctx.headers.get("Content-Type", "")
        if content_type.lower().startswith("multipart/form-data"):
            uploads, client_ids, channel = self._multipart(ctx, content_type)
        else:
            uploads, client_ids, channel = self._raw(ctx)
        now = now_ms()
        infos = []
        with self.store.lock:
            for item in uploads:
                name = item.name
                extension = Path(name).suffix.lstrip(".").lower()
                mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
                info: Obj = {
                    "id": item.id,
                    "user_id": ctx.user_id,
                    "post_id": "",
                    "channel_id": channel["id"],
                    "create_at": now,
                    "update_at": now,
                    "delete_at": 0,
                    "name": name,
                    "extension": extension,
                    "size": item.size,
                    "mime_type": mime,
                    "width": 0,
                    "height": 0,
                    "has_preview_image": False,
                    "mini_preview": None,
                    "remote_id": "",
                    "archived": False,
                }
                self.store.files[item.id] = info
                infos.append(public(info))
            self.store.save_many(("file", i["id"]) for i in infos)
        return json_response(201, {"file_infos": infos, "client_ids": client_ids})

    # ---- raw body ------------------------------------------------------
    def _raw(self, ctx: Ctx) -> tuple[list[_Upload], list[str], Obj]:
        channel_id = ctx.q("channel_id")
        filename = ctx.q("filename")
        if not channel_id:
            raise invalid_param("channel_id")
        if not filename:
            raise invalid_param("filename")
        channel = self._check_channel(ctx, channel_id)
        limit = self.max_file_size()
        if ctx.body.length is not None and ctx.body.length > limit:
            raise self._too_large(filename, ctx.body.length)
        item = _Upload(self.store.files_dir, filename)
        try:
            while True:
                data = ctx.body.read(CHUNK)
                if not data:
                    break
                if item.size + len(data) > limit:
                    raise self._too_large(filename, item.size + len(data))
                item.write(data)
        except BaseException:
            item.discard()
            raise
        item.close()
        client_id = ctx.q("client_id")
        return [item], [client_id] if client_id else [], channel

    # ---- multipart -----------------------------------------------------
    def _multipart(self, ctx: Ctx, content_type: str) -> tuple[list[_Upload], list[str], Obj]:
        from multipart import MultipartError, MultipartSegment, PushMultipartParser

        boundary = _boundary(content_type)
        if not boundary:
            raise invalid_param("boundary")
        limit = self.max_file_size()
        query_channel = ctx.q("channel_id")
        channel_id = query_channel
        channel: Obj | None = None
        if channel_id:
            channel = self._check_channel(ctx, channel_id)
        client_ids: list[str] = []
        done: list[_Upload] = []
        current_file: _Upload | None = None
        field_name = ""
        field_value = bytearray()
        mode = ""  # "field", "file", "skip"
        total = 0
        try:
            parser = PushMultipartParser(boundary, max_segment_count=1000)
            while True:
                chunk = ctx.body.read(CHUNK)
                total += len(chunk)
                if total > limit + 512:
                    raise ApiError(413, "api.context.request_body_too_large.app_error")
                for event in parser.parse(chunk):
                    if isinstance(event, MultipartSegment):
                        if not event.filename:
                            # no filename, or filename="": a form field, as for the server
                            # (Go's Part.FileName() is "" for both)
                            mode, field_name = "field", event.name
                            field_value = bytearray()
                        elif channel_id or event.name == "files":
                            # streaming mode takes any name; the legacy parser only "files"
                            mode = "file"
                            current_file = _Upload(self.store.files_dir, event.filename)
                        else:
                            mode = "skip"
                    elif event is not None:
                        if mode == "field":
                            field_value += event
                            if len(field_value) > _MAX_FIELD:
                                raise invalid_param(field_name)
                        elif mode == "file":
                            assert current_file is not None
                            if current_file.size + len(event) > limit:
                                raise self._too_large(
                                    current_file.name, current_file.size + len(event)
                                )
                            current_file.write(event)
                    else:
                        if mode == "field":
                            value = field_value.decode("utf-8", "replace")
                            if field_name == "channel_id":
                                if query_channel and value != query_channel:
                                    raise invalid_param("channel_id")
                                if channel is None:
                                    channel = self._check_channel(ctx, value)
                                channel_id = value
                            elif field_name == "client_ids":
                                client_ids.append(value)
                            else:
                                raise invalid_param(field_name)
                        elif mode == "file":
                            assert current_file is not None
                            current_file.close()
                            done.append(current_file)
                            current_file = None
                        mode = ""
                if not chunk:
                    break
        except MultipartError:
            self._discard(done, current_file)
            raise ApiError(400, "api.file.upload_file.read_request.app_error") from None
        except BaseException:
            self._discard(done, current_file)
            raise
        if channel is None:
            self._discard(done, None)
            raise invalid_body_param("channel_id")
        if client_ids and len(client_ids) != len(done):
            self._discard(done, None)
            raise ApiError(
                400,
                "api.file.upload_file.incorrect_number_of_client_ids.app_error",
                client_ids=len(client_ids),
                files=len(done),
            )
        return done, client_ids, channel

    @staticmethod
    def _discard(done: list[_Upload], current: _Upload | None) -> None:
        for item in done:
            item.discard()
        if current is not None:
            current.discard()


def _boundary(content_type: str) -> str:
    from multipart import parse_options_header

    _, options = parse_options_header(content_type)
    return str(options.get("boundary", ""))
