"""A notebook's message ids across kernel sessions: when an id is reused, when it is not.

The rule (see the Jupyter page of the docs):

* within one kernel session an id always names its message;
* after a kernel restart, the ids stored for the notebook are always found by
  ``send_update`` (and exported, imported): a restart in the middle of a job updates
  the same posts;
* the "send or update" calls (``notify(..., id=X)``, ``%notify --id X``,
  ``%%notify_on_done --id X``) edit a message of an earlier session only when that
  session was active less than ``reuse_within`` seconds before this one started;
  otherwise they post a new message, and the id names the new one from then on (a fresh
  run of the notebook the next day does not edit yesterday's posts);
* ids the extension made up itself (``cell-...``, ``progress-...``) of a session that
  ended longer ago than ``reuse_within`` are removed from the store.

A session marks itself active in ``<store>.session.json`` (the notebook's key and the
time) when it starts and then every minute from a daemon thread, so the time of a
kernel that died is known to within a minute.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from .._files import write_private
from .._threads import start_thread
from ..hooks import HookStore, MessageHook

__all__ = ["AUTO_ID_PREFIXES", "DEFAULT_REUSE_WITHIN", "NotebookHookStore"]

DEFAULT_REUSE_WITHIN = 3600.0
AUTO_ID_PREFIXES = ("cell-", "progress-")
HEARTBEAT = 60.0
_SUFFIX = ".session.json"


def _read_session(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class NotebookHookStore(HookStore):
    """The hook store of one notebook, seen from one kernel session."""

    def __init__(
        self,
        path: str | Path,
        *,
        key: str,
        reuse_within: float = DEFAULT_REUSE_WITHIN,
        heartbeat: float | None = HEARTBEAT,
    ) -> None:
        super().__init__(path)
        self.key = key
        self.session_path = self.path.with_name(self.path.stem + _SUFFIX)
        self.started = time.time()
        last = _read_session(self.session_path).get("last_active")
        self.previous_active: float | None = (
            float(last) if isinstance(last, int | float) and not isinstance(last, bool) else None
        )
        self.earlier: set[str] = set()
        with contextlib.suppress(Exception):
            self.earlier = {h.id for h in self.list()}
        self.set_reuse_within(reuse_within)
        self.touch()
        if heartbeat:
            _start_heartbeat(self, heartbeat)

    def __repr__(self) -> str:
        return f"NotebookHookStore({str(self.path)!r}, key={self.key!r})"

    @classmethod
    def for_notebook(
        cls,
        key: str,
        *,
        reuse_within: float = DEFAULT_REUSE_WITHIN,
        heartbeat: float | None = HEARTBEAT,
    ) -> NotebookHookStore:
        """The store of the notebook ``key`` (the same file as ``HookStore.for_key(key)``)."""
        return cls(
            HookStore.for_key(key).path, key=key, reuse_within=reuse_within, heartbeat=heartbeat
        )

    def set_reuse_within(self, seconds: float) -> None:
        """Change the window (``%config NotifyMagics.reuse_ids_within`` after loading)."""
        self.reuse_within = float(seconds)
        self.reuse_earlier = (
            self.previous_active is not None
            and self.started - self.previous_active <= self.reuse_within
        )
        if not self.reuse_earlier:
            self._prune_auto_ids()

    # ---- the rule -------------------------------------------------------------
    def reusable(self, id: str) -> bool:
        """May a "send or update" call edit the stored message ``id``?"""
        return self.reuse_earlier or id not in self.earlier

    def put(self, hook: MessageHook) -> None:
        super().put(hook)
        self.earlier.discard(hook.id)  # a message of this session from now on

    def touch(self) -> None:
        """Mark this notebook's session active now (and name the notebook)."""
        with contextlib.suppress(OSError):
            text = json.dumps({"key": self.key, "last_active": time.time()})
            write_private(self.session_path, text, fsync=False)

    def _prune_auto_ids(self) -> None:
        for mid in list(self.earlier):
            if mid.startswith(AUTO_ID_PREFIXES):
                with contextlib.suppress(Exception):
                    self.remove(mid)
                self.earlier.discard(mid)

    # ---- the hint of a renamed notebook -----------------------------------------
    def hint_for_missing(self, id: str) -> str:
        """Where else ``id`` is stored: the old path of a renamed or moved notebook."""
        try:
            sessions = sorted(self.path.parent.glob(f"*{_SUFFIX}"))
        except OSError:
            return ""
        for session in sessions:
            if session == self.session_path:
                continue
            key = _read_session(session).get("key")
            if not isinstance(key, str) or key == self.key:
                continue
            store = HookStore(session.with_name(session.name[: -len(_SUFFIX)] + ".json"))
            try:
                found = store.get(id)
            except Exception:
                found = None
            if found is not None:
                return (
                    f"; it is stored for the notebook {key} (renamed or moved?): to use that "
                    f"notebook's ids here, run %config NotifyMagics.notebook_key = {key!r}"
                )
        return ""


def _start_heartbeat(store: NotebookHookStore, every: float) -> None:
    ref = weakref.ref(store)

    def beat() -> None:
        while True:
            time.sleep(every)
            alive = ref()
            if alive is None:
                return
            alive.touch()
            del alive

    start_thread(threading.Thread(target=beat, name="mattermost-notify-session", daemon=True))
