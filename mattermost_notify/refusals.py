"""Server refusals that have a known cause, as errors that say what to do.

The server's own words are generic ("You do not have the appropriate permissions.", "Channel
does not exist."); these name the user or channel, the setting behind the refusal, and the fix.
"""

from __future__ import annotations

from .errors import APIError, NotFoundError, PermissionDeniedError

__all__ = [
    "EDIT_TIME_LIMIT",
    "RESTRICTED_DM",
    "channel_not_found",
    "is_restricted_dm",
    "not_a_channel_member",
    "restricted_dm",
]

#: The server refuses an edit of a post older than ``PostEditTimeLimit``.
EDIT_TIME_LIMIT = "api.post.update_post.permissions_time_limit.app_error"

#: ``RestrictDirectMessage = team`` and the two users share no team: the DM cannot be
#: created (403), or, from 11.1, posts, edits and uploads in an existing one are refused (400).
RESTRICTED_DM = frozenset(
    {
        "api.channel.create_channel.direct_channel.team_restricted_error",
        "api.post.create_post.can_not_post_in_restricted_dm.error",
        "api.post.patch_post.can_not_update_post_in_restricted_dm.error",
        "api.post.update_post.can_not_update_post_in_restricted_dm.error",
        "api.file.upload_file.restricted_dm.error",
    }
)

_CHANNEL_MISSING = "app.channel.get_by_name.missing.app_error"


def _bot(bot_name: str | None) -> str:
    return f"the bot @{bot_name}" if bot_name else "the bot"


def is_restricted_dm(exc: BaseException) -> bool:
    return isinstance(exc, APIError) and exc.error_id in RESTRICTED_DM


def restricted_dm(
    exc: APIError, *, server: str, user_name: str | None, bot_name: str | None
) -> PermissionDeniedError:
    """The DM was refused because the server restricts DMs to users who share a team."""
    who = f"@{user_name}" if user_name else "this user"
    return exc.reworded(  # type: ignore[return-value]
        f"cannot send a direct message to {who}: {server} allows direct messages only between "
        f"users who share a team (RestrictDirectMessage = team; from Mattermost 11.1 bots are "
        f"no longer exempt) and {_bot(bot_name)} shares no team with {who}. Add the bot to a "
        f"team {who} is in, or send to a channel instead",
        PermissionDeniedError,
    )


def not_a_channel_member(
    exc: APIError,
    *,
    server: str,
    channel_name: str | None,
    team_name: str | None,
    bot_name: str | None,
    member: bool | None,
) -> PermissionDeniedError:
    """A post or upload in a channel the bot can see was refused (403).

    ``member``: what ``GET /channels/{id}/members/{bot}`` said (None: not known).
    """
    channel = f"channel {channel_name!r}" if channel_name else "this channel"
    where = f"{channel}" + (f" (team {team_name!r})" if team_name else "") + f" on {server}"
    invite = f"/invite @{bot_name}" if bot_name else "/invite @<the bot's name>"
    handle = f" in ~{channel_name}" if channel_name else " in that channel"
    if member:
        text = (
            f"{_bot(bot_name)} is a member of {where} but may not post there (a read-only or "
            f"moderated channel, or the permission scheme): ask a channel or system admin"
        )
    else:
        text = (
            f"{_bot(bot_name)} is not a member of {where}: a bot can find a public channel "
            f"without being in it, but only members may post. Add the bot to the channel, "
            f"e.g. type `{invite}`{handle}"
        )
    return exc.reworded(text, PermissionDeniedError)  # type: ignore[return-value]


def channel_not_found(
    exc: NotFoundError, *, server: str, channel_name: str, team_name: str, bot_name: str | None
) -> NotFoundError:
    """The channel look-up answered 404: a typo, an archived channel, or a private channel
    the bot is not in (the server hides those)."""
    if exc.error_id != _CHANNEL_MISSING:
        return exc
    invite = f"/invite @{bot_name}" if bot_name else "/invite @<the bot's name>"
    return exc.reworded(  # type: ignore[return-value]
        f"channel {channel_name!r} not found in team {team_name!r} on {server}: check the "
        f"name (the channel's URL handle, e.g. town-square, not its display name). If it is a "
        f"private channel, it may exist and the bot not be in it (the server hides private "
        f"channels from non-members): add the bot, e.g. type `{invite}` in that channel"
    )
