"""Read-only view of a sandbox's state for tests: posts, files, edits, threads, requests."""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ._store import dm_name

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._store import Obj, Store


@dataclass(frozen=True)
class FileView:
    """An uploaded file."""

    id: str
    name: str
    size: int
    mime_type: str
    channel_id: str
    user_id: str
    post_id: str
    path: Path

    def read_bytes(self) -> bytes:
        return self.path.read_bytes()


@dataclass(frozen=True)
class EditView:
    """A former version of a post, replaced at ``replaced_at`` (ms)."""

    message: str
    props: Mapping[str, Any]
    file_ids: tuple[str, ...]
    replaced_at: int


@dataclass(frozen=True)
class PostView:
    """A post as stored, with its former versions, files and thread."""

    id: str
    channel_id: str
    channel_name: str
    user_id: str
    username: str
    message: str
    root_id: str
    props: Mapping[str, Any]
    file_ids: tuple[str, ...]
    files: tuple[FileView, ...]
    create_at: int
    update_at: int
    edit_at: int
    delete_at: int
    edits: tuple[EditView, ...]  # former versions, oldest first
    reply_ids: tuple[str, ...]  # replies in its thread, oldest first
    type: str

    @property
    def edited(self) -> bool:
        return self.edit_at > 0

    @property
    def deleted(self) -> bool:
        return self.delete_at > 0


@dataclass(frozen=True)
class RequestRecord:
    """One request as the sandbox saw it (never the token or the body)."""

    request_id: str
    time: int  # ms since the epoch, when it arrived
    method: str
    path: str
    query: str
    route: str  # the matched route template, "" if none
    status: int  # 0 when the connection was dropped without an answer
    user_id: str  # "" when unauthenticated
    duration_ms: float
    fault: str  # "" or the injected fault ("status:503", "drop_before", "drop_after")
    content_type: str  # of the response


class RequestLog:
    """Thread-safe append-only list of :class:`RequestRecord`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []

    def append(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    def snapshot(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


class View:
    """Read-only access to a sandbox's state (``sb.view``)."""

    def __init__(self, store: Store, log: RequestLog, bot_user_id: str) -> None:
        self._store = store
        self._log = log
        self._bot_user_id = bot_user_id

    # ---- posts ---------------------------------------------------------
    def posts(
        self,
        channel: str | None = None,
        *,
        channel_id: str | None = None,
        dm_with: str | None = None,
        include_deleted: bool = False,
    ) -> list[PostView]:
        """Posts of one channel (by name, id, or the bot's DM with a user), oldest first.

        With no argument: every post of every channel.
        """
        with self._store.lock:
            wanted = self._channel_id(channel, channel_id, dm_with)
            posts = [
                p
                for p in self._store.posts.values()
                if (wanted is None or p["channel_id"] == wanted)
                and (include_deleted or not p["delete_at"])
            ]
            posts.sort(key=lambda p: (p["create_at"], p["_seq"]))
            return [self._post_view(p) for p in posts]

    def post(self, post_id: str) -> PostView:
        """One post (also a deleted one); KeyError if unknown."""
        with self._store.lock:
            return self._post_view(self._store.posts[post_id])

    def thread(self, root_id: str) -> list[PostView]:
        """A root post followed by its replies, oldest first."""
        root = self.post(root_id)
        return [root] + [self.post(r) for r in root.reply_ids]

    def file(self, file_id: str) -> FileView:
        with self._store.lock:
            return self._file_view(self._store.files[file_id])

    def files(self) -> list[FileView]:
        with self._store.lock:
            return [self._file_view(f) for f in self._store.files.values()]

    def channel_id(self, name: str) -> str:
        """The id of a team channel by name."""
        found = self._channel_id(name, None, None)
        assert found is not None
        return found

    # ---- requests ------------------------------------------------------
    def requests(self) -> list[RequestRecord]:
        """Every request received so far (since the last :meth:`clear_requests`)."""
        return self._log.snapshot()

    def clear_requests(self) -> None:
        self._log.clear()

    # ---- helpers -------------------------------------------------------
    def _channel_id(
        self, channel: str | None, channel_id: str | None, dm_with: str | None
    ) -> str | None:
        store = self._store
        if channel_id is not None:
            return channel_id
        if dm_with is not None:
            user = store.user_by_name(dm_with)
            if user is None:
                raise KeyError(f"no user {dm_with!r}")
            name = dm_name(self._bot_user_id, user["id"])
            for ch in store.channels.values():
                if ch["name"] == name:
                    return str(ch["id"])
            raise KeyError(f"no direct channel with {dm_with!r}")
        if channel is not None:
            for ch in store.channels.values():
                if ch["name"] == channel and ch["type"] in ("O", "P"):
                    return str(ch["id"])
            raise KeyError(f"no channel {channel!r}")
        return None

    def _file_view(self, info: Obj) -> FileView:
        own = {f.name: info[f.name] for f in fields(FileView) if f.name != "path"}
        return FileView(**own, path=self._store.files_dir / info["id"])

    def _post_view(self, post: Obj) -> PostView:
        store = self._store
        channel = store.channels.get(post["channel_id"], {})
        user = store.users.get(post["user_id"], {})
        files = tuple(self._file_view(store.files[f]) for f in post["file_ids"] if f in store.files)
        edits = tuple(
            EditView(e["message"], _freeze(e["props"]), tuple(e["file_ids"]), e["replaced_at"])
            for e in post.get("_edits", [])
        )
        derived = {
            "channel_name": channel.get("name", ""),
            "username": user.get("username", ""),
            "props": _freeze(post["props"]),
            "file_ids": tuple(post["file_ids"]),
            "files": files,
            "edits": edits,
            "reply_ids": tuple(post.get("_replies", [])),
        }
        own = {f.name: post[f.name] for f in fields(PostView) if f.name not in derived}
        return PostView(**own, **derived)
