"""The sandbox's state: users, team, channels, posts, files, webhooks.

Objects are plain dicts shaped like the server's JSON; keys starting with ``_``
are internal (members, file paths, edit history) and never sent to clients.
Everything lives in memory; with a database path every change is also written
through to SQLite (one row of JSON per object), so a restarted sandbox finds
its posts and files again.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# Mattermost's NewId: 16 random bytes, base32 with this alphabet, 26 characters.
_STD_B32 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_MM_B32 = b"ybndrfg8ejkmcpqxot1uwisza345h769"
_TRANSLATE = bytes.maketrans(_STD_B32, _MM_B32)

Obj = dict[str, Any]


def new_id() -> str:
    """A 26-character id in Mattermost's alphabet."""
    raw = base64.b32encode(secrets.token_bytes(16)).translate(_TRANSLATE)
    return raw.decode("ascii")[:26]


def now_ms() -> int:
    """Milliseconds since the epoch, the unit of every time in the API."""
    return int(time.time() * 1000)


def public(obj: Obj) -> Obj:
    """A copy without the internal ``_`` keys."""
    return {k: v for k, v in obj.items() if not k.startswith("_")}


_KINDS = ("meta", "user", "token", "team", "channel", "post", "file", "hook")


class Store:
    """All objects of one sandbox, guarded by one lock."""

    def __init__(self, db: str | Path | None = None) -> None:
        self.lock = threading.RLock()
        self.meta: Obj = {}
        self.users: dict[str, Obj] = {}
        self.tokens: dict[str, str] = {}  # token -> user id
        self.teams: dict[str, Obj] = {}
        self.channels: dict[str, Obj] = {}
        self.posts: dict[str, Obj] = {}
        self.files: dict[str, Obj] = {}
        self.hooks: dict[str, Obj] = {}
        self._db: sqlite3.Connection | None = None
        self._temp_dir: str | None = None
        if db is None:
            self._temp_dir = tempfile.mkdtemp(prefix="mattermost-sandbox-")
            self.files_dir = Path(self._temp_dir)
        else:
            db_path = Path(db)
            self.files_dir = db_path.with_name(db_path.name + ".files")
            self.files_dir.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(db_path), check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS objects ("
                "kind TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (kind, id))"
            )
            self._db.commit()
            self._load()

    # ---- persistence ---------------------------------------------------
    def _table(self, kind: str) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "user": self.users,
            "token": self.tokens,
            "team": self.teams,
            "channel": self.channels,
            "post": self.posts,
            "file": self.files,
            "hook": self.hooks,
        }[kind]

    def _load(self) -> None:
        assert self._db is not None
        for kind, obj_id, data in self._db.execute("SELECT kind, id, data FROM objects"):
            if kind in _KINDS:
                self._table(kind)[obj_id] = json.loads(data)

    def save(self, kind: str, obj_id: str) -> None:
        """Write one object through to the database (no-op in memory)."""
        self.save_many([(kind, obj_id)])

    def save_many(self, items: Iterable[tuple[str, str]]) -> None:
        if self._db is None:
            return
        with self.lock:
            for kind, obj_id in items:
                value = self._table(kind)[obj_id]
                self._db.execute(
                    "INSERT OR REPLACE INTO objects (kind, id, data) VALUES (?, ?, ?)",
                    (kind, obj_id, json.dumps(value, separators=(",", ":"))),
                )
            self._db.commit()

    def delete(self, kind: str, obj_id: str) -> None:
        with self.lock:
            self._table(kind).pop(obj_id, None)
            if self._db is not None:
                self._db.execute("DELETE FROM objects WHERE kind = ? AND id = ?", (kind, obj_id))
                self._db.commit()

    def close(self) -> None:
        """Close the database and remove the temporary file directory."""
        with self.lock:
            if self._db is not None:
                self._db.close()
                self._db = None
            if self._temp_dir is not None:
                shutil.rmtree(self._temp_dir, ignore_errors=True)
                self._temp_dir = None

    # ---- look-ups ------------------------------------------------------
    def user_by_name(self, username: str) -> Obj | None:
        for user in self.users.values():
            if user["username"] == username:
                return user
        return None

    def team_by_name(self, name: str) -> Obj | None:
        for team in self.teams.values():
            if team["name"] == name and not team["delete_at"]:
                return team
        return None

    def channel_by_name(self, team_id: str, name: str) -> Obj | None:
        for channel in self.channels.values():
            if channel["team_id"] == team_id and channel["name"] == name:
                return channel
        return None

    def dm_channel(self, user_a: str, user_b: str) -> Obj | None:
        name = dm_name(user_a, user_b)
        for channel in self.channels.values():
            if channel["type"] == "D" and channel["name"] == name:
                return channel
        return None

    def new_user(self, username: str, *, is_bot: bool = False, now: int) -> Obj:
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
        self.users[user["id"]] = user
        return user

    def new_channel(
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
        self.channels[channel["id"]] = channel
        return channel


def dm_name(user_a: str, user_b: str) -> str:
    """The name of the direct channel of two users: the sorted ids joined by ``__``."""
    first, second = sorted((user_a, user_b))
    return f"{first}__{second}"


def can_post(user_id: str, channel: Obj) -> bool:
    """Whether ``user_id`` may post in ``channel`` (a member of a channel not deleted)."""
    return user_id in channel["_members"] and not channel["delete_at"]
