"""The functional API: ``import mattermost_notify as notify``, as in the original package.

A module-level default client is created by :func:`wakeup` (or by the first function
that needs it: every function wakes up on its own). Its message hooks live in memory,
as in the original package; :func:`export_hook`/:func:`import_hook` carry them across processes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from ._checks import check_target
from .errors import ConfigurationError, NetworkError

if TYPE_CHECKING:
    from .client import Files, Notify, SentMessage
    from .hooks import MessageHook
    from .sender import Ticket

__all__ = [
    "current_client",
    "export_hook",
    "flush",
    "get_client",
    "import_hook",
    "make_client",
    "notify",
    "notify_channel",
    "notify_user",
    "send_update",
    "wakeup",
]

_lock = threading.RLock()
_client: Notify | None = None

# how long a blocking notify(id=...) waits for the background post of that id
_QUEUED_POST_WAIT = 30.0


def wakeup(
    always_send_to_user: str | None = None,
    always_send_to_channel: str | None = None,
    config: Mapping[str, Any] | None = None,
    **settings: Any,
) -> Notify:
    """Set up the default client and return it.

    Without ``config`` the settings come from the environment and the config files (see
    :mod:`mattermost_notify.config`); ``config={"url": ..., "team_name": ..., "token": ...}``
    works as in the original package; keyword ``settings`` (``url=``, ``token=``,
    ``team_name=``, ``verify=``, ``timeout=``, ``allow_insecure=``) win over both.
    ``always_send_to_user`` and ``always_send_to_channel`` exclude each other.
    """
    global _client
    if always_send_to_user is not None and always_send_to_channel is not None:
        raise ConfigurationError(
            "always_send_to_user and always_send_to_channel exclude each other: "
            f"got user {always_send_to_user!r} and channel {always_send_to_channel!r}"
        )
    from .config import load_settings

    resolved = load_settings(config, **settings)
    kwargs = resolved.client_kwargs()
    if always_send_to_user is not None:
        kwargs.update(default_user=always_send_to_user, default_channel=None)
    if always_send_to_channel is not None:
        kwargs.update(default_user=None, default_channel=always_send_to_channel)
    client = new_client(**kwargs)
    with _lock:
        old = _client
        _client = client
    if old is not None:
        # a second wakeup in one process keeps the hooks (and hook store) of the first
        if old.url == client.url and client.hook_store is None:
            client.hook_store = old.hook_store
        for hook in old.hooks.values():
            if hook.server_url == client.url:
                client._remember(hook)
        sender = old._sender
        if sender is not None and old.url == client.url and sender.pending():
            # still delivering: the new client takes the queue over, in order, rather
            # than waiting for it or leaving it behind in a spool nobody reads
            sender.adopt_client(client)
            client._sender, old._sender = sender, None
        old.close()
    # what an earlier process could not deliver to this server goes out now, first
    from .outbox import has_entries

    try:
        if has_entries():  # cheap when empty: no sender thread is started
            client.sender.resume_outbox()
    except Exception as exc:  # never break wakeup()
        logging.getLogger("mattermost_notify").warning("cannot resume the outbox: %s", exc)
    return client


def make_client(config: Mapping[str, Any] | None = None, **settings: Any) -> Notify:
    """A new client (not the default one) from ``settings`` > ``config`` > environment >
    files, as :func:`wakeup` resolves them; nothing is sent."""
    from .config import load_settings

    return new_client(**load_settings(config, **settings).client_kwargs())


def new_client(**kwargs: Any) -> Notify:
    """The client for ``Settings.client_kwargs()``: a :class:`~mattermost_notify.client.Notify`
    (a bot's or a personal token), or in webhook mode (``webhook_url=``) a
    :class:`~mattermost_notify.webhook.WebhookClient` with the same send surface."""
    if kwargs.get("webhook_url"):
        from .webhook import WebhookClient

        return WebhookClient(**kwargs)  # type: ignore[return-value]
    from .client import Notify

    return Notify(**kwargs)


def current_client() -> Notify | None:
    """The default client if one was set up, else None (never wakes up)."""
    with _lock:
        return _client


def get_client() -> Notify:
    """The default client (woken up with the configured settings when needed)."""
    with _lock:  # two threads waking up at once get one client
        if _client is not None:
            return _client
        return wakeup()


def _reset() -> None:
    """Forget the default client (tests only). Closes it."""
    global _client
    with _lock:
        old, _client = _client, None
    if old is not None:
        old.close(timeout=1.0)


def notify(
    message: str,
    user_name: str | None = None,
    channel_name: str | None = None,
    files: Files = None,
    id: str | None = None,
    *,
    block: bool = True,
) -> SentMessage | Ticket | None:
    """Send ``message`` to a user or a channel, or update it when ``id`` is already known.

    Without a target it goes where :meth:`Notify.resolve_target` says: the default
    user, else the default channel.

    With ``block=False`` the message is handed to the client's background sender and a
    ticket is returned at once; failures then become warnings, never exceptions.
    """
    client = get_client()
    check_target(user_name, channel_name)
    # One decision (post or edit) at a time per id: threads racing on the same id
    # must make one post and edits of it, never a post each.
    with _lock_for(id) if id is not None else contextlib.nullcontext():
        if id is not None and _known(client, id, block=block):
            if block:
                return _update_now(client, id, message, files)
            return client.sender.update(id, message, files=files)
        send = client.send if block else client.sender.post
        return send(message, user=user_name, channel=channel_name, files=files, id=id)


# Reentrant: a signal handler that sends runs on the thread it interrupted, maybe while
# that thread holds one of these (a plain Lock would hang the process for good).
_id_locks: dict[str, threading.RLock] = {}
_id_locks_guard = threading.RLock()


def _lock_for(id: str) -> threading.RLock:
    with _id_locks_guard:
        return _id_locks.setdefault(id, threading.RLock())


def _update_now(client: Notify, id: str, message: str, files: Files) -> SentMessage:
    sender = client._sender
    if not client.has_message(id) and sender is not None and sender.knows(id):
        # Its post is still queued (the server is away): the edit waits behind it.
        sender.update(id, message, files=files)
        raise NetworkError(
            f"message {id!r} is still queued: the server did not take it within "
            f"{_QUEUED_POST_WAIT:g} s. This update is queued behind it and is sent when "
            "the server answers"
        )
    return client.send_update(message, id, files=files)


def _known(client: Notify, id: str, *, block: bool) -> bool:
    """Whether ``id`` names a message already sent, or queued in the background."""
    if client.has_message(id):
        return True
    sender = client._sender
    if sender is None or not sender.knows(id):
        return False
    if block:  # the edit must find the post: let the queue deliver it first
        sender.flush(_QUEUED_POST_WAIT)
    return True


def notify_user(
    message: str,
    user_name: str | None = None,
    files: Files = None,
    id: str | None = None,
    *,
    block: bool = True,
) -> SentMessage | Ticket | None:
    """Send a direct message to ``user_name`` (or the default user)."""
    return _notify_one("user", message, user_name, files, id, block)


def notify_channel(
    message: str,
    channel_name: str | None = None,
    files: Files = None,
    id: str | None = None,
    *,
    block: bool = True,
) -> SentMessage | Ticket | None:
    """Send a message to ``channel_name`` (or the default channel)."""
    return _notify_one("channel", message, channel_name, files, id, block)


def _notify_one(
    kind: Literal["user", "channel"],
    message: str,
    name: str | None,
    files: Files,
    id: str | None,
    block: bool,
) -> SentMessage | Ticket | None:
    client = get_client()
    if block:
        send = client.send_to_user if kind == "user" else client.send_to_channel
        return send(message, name, files, id)
    return client.sender.post(message, files=files, id=id, only=kind, **{kind: name})


def send_update(
    message: str, id: str, files: Files = None, *, block: bool = True
) -> SentMessage | Ticket | None:
    """Edit the message sent earlier with ``id``."""
    client = get_client()
    if not block:
        return client.sender.update(id, message, files=files)
    return client.send_update(message, id, files=files)


def export_hook(id: str, path: str | os.PathLike[str]) -> None:
    """Write the hook of message ``id`` to ``path`` (JSON, mode 0600, no token)."""
    get_client().write_message_hook_to_file(id, path)


def import_hook(path: str | os.PathLike[str]) -> MessageHook:
    """Read a hook file so that its message can be updated in this process."""
    return get_client().read_message_hook_from_file(path)


def flush(timeout: float | None = None) -> bool:
    """Wait until background messages (progress bars included) are delivered.

    Covers every client of this process that has queued something. True when everything
    went out (or failed for good, as a warning) within ``timeout`` seconds (None: no limit).
    """
    from .sender import flush_all

    return flush_all(timeout)
