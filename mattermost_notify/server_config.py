"""What a server publishes about itself in ``GET /api/v4/config/client?format=old``.

The client reads it lazily, at most once per client (``Notify.server_config()``), and only
when a limit matters: a message longer than the smallest limit any server has, files to
send, an update that may meet the edit time limit, ``mattermost-notify test``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MIN_POST_RUNES",
    "ServerConfig",
]

#: The smallest message limit of any server: older PostgreSQL databases keep a
#: ``VARCHAR(4000)`` column and publish ``MaxPostSize`` 4000. A message this short is
#: never split, so its size needs no look-up.
MIN_POST_RUNES = 4000


def _int(value: Any) -> int | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


@dataclass(frozen=True)
class ServerConfig:
    """The settings of a server that change what the client does.

    ``None`` means the server did not publish the value (an anonymous answer, an old
    server, or the look-up failed).
    """

    version: str | None = None
    max_post_size: int | None = None
    """``MaxPostSize``: the longest message in runes (4000 on old PostgreSQL installs)."""
    max_file_size: int | None = None
    """``MaxFileSize``: bytes per upload request."""
    post_edit_time_limit: int | None = None
    """``PostEditTimeLimit``: seconds after which a post can no longer be edited; None: no limit."""
    collapsed_threads: str | None = None
    """``CollapsedThreads``: ``always_on``, ``default_on``, ``default_off`` or ``disabled``."""
    restrict_direct_message: str | None = None
    """``RestrictDirectMessage``: ``any``, or ``team`` (only users who share a team)."""

    @classmethod
    def from_client_config(cls, data: Mapping[str, Any] | None) -> ServerConfig:
        """Parse the (string-valued) map the server answers; unknown or bad values are None."""
        if not isinstance(data, Mapping):
            return cls()
        edit_limit = _int(data.get("PostEditTimeLimit"))
        max_post = _int(data.get("MaxPostSize"))
        max_file = _int(data.get("MaxFileSize"))
        return cls(
            version=_text(data.get("Version")),
            max_post_size=max_post if max_post and max_post > 0 else None,
            max_file_size=max_file if max_file and max_file > 0 else None,
            # -1 is the server's "no limit"; 0 would refuse every edit at once
            post_edit_time_limit=edit_limit if edit_limit is not None and edit_limit >= 0 else None,
            collapsed_threads=_text(data.get("CollapsedThreads")),
            restrict_direct_message=_text(data.get("RestrictDirectMessage")),
        )

    @property
    def known(self) -> bool:
        """True when the server published its limits (a logged-in answer)."""
        return self.max_post_size is not None or self.max_file_size is not None

    @property
    def post_runes(self) -> int:
        """The message limit to split and cut at: the published one, else the smallest any
        server has (splitting a message that would have fitted loses nothing; sending one
        that does not fit loses all of it)."""
        return self.max_post_size or MIN_POST_RUNES

    @property
    def dms_restricted_to_teams(self) -> bool:
        return (self.restrict_direct_message or "").lower() == "team"

    @property
    def thread_replies_collapsed(self) -> bool:
        """True when replies go to the thread's followers only (unless users turned it off)."""
        return (self.collapsed_threads or "").lower() in ("always_on", "default_on")
