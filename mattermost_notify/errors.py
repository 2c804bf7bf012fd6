"""The exception hierarchy of mattermost-notify.

Every exception raised by the library derives from :class:`MattermostNotifyError`.
Messages name the thing that went wrong (the user, channel, team, file or
server) and never contain the access token.

.. code-block:: text

    MattermostNotifyError
    ├── ConfigurationError          missing or invalid settings, malformed config file
    │   └── WebhookModeError        an edit, file, hook or thread asked of an incoming webhook
    ├── MessageError (ValueError)   empty or non-string message, bad or unknown id, bad target
    ├── FileError                   missing, directory, unreadable, empty, too large, too many
    ├── HookError                   corrupt or truncated hook, other server or bot, newer format
    ├── NetworkError                the server could not be reached (refused, DNS, TLS, dropped)
    │   ├── ConnectTimeout          no connection within the connect timeout
    │   └── ReadTimeout             no answer within the read timeout
    ├── DeliveryUnknownError        a webhook request that may have been applied got no answer
    └── APIError                    the server answered with an error status
        ├── AuthenticationError     401
        ├── PermissionDeniedError   403
        ├── NotFoundError           404
        ├── RateLimitedError        429 after the retries (``retry_after``)
        └── ServerError             5xx after the retries

    MattermostNotifyWarning (UserWarning)   a background send failed; the program goes on
    └── InsecureConfigWarning               a file holding the token is readable by others
"""

from __future__ import annotations

import warnings

__all__ = [
    "APIError",
    "AuthenticationError",
    "ConfigurationError",
    "ConnectTimeout",
    "DeliveryUnknownError",
    "FileError",
    "HookError",
    "InsecureConfigWarning",
    "MattermostNotifyError",
    "MattermostNotifyWarning",
    "MessageError",
    "NetworkError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitedError",
    "ReadTimeout",
    "ServerError",
    "UnexpectedResponseError",
    "WebhookModeError",
    "warn",
]


class MattermostNotifyError(Exception):
    """Base class of every error raised by mattermost-notify."""


class ConfigurationError(MattermostNotifyError):
    """Missing or invalid settings: URL, token, team, config file, defaults."""


class WebhookModeError(ConfigurationError):
    """Something an incoming webhook cannot do (edit, upload files, thread, hook files);
    raised before anything is sent. The message says what to configure instead."""


class MessageError(MattermostNotifyError, ValueError):
    """A message that cannot be sent: empty, not a string, unknown or reused id."""


class FileError(MattermostNotifyError):
    """A file to attach is missing, not a regular file, unreadable, too large or too many."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class HookError(MattermostNotifyError):
    """A message hook file that is corrupt, truncated, from another server or too new."""


class NetworkError(MattermostNotifyError):
    """The server could not be reached: connection refused, DNS, TLS or timeout."""


class ConnectTimeout(NetworkError):
    """No connection to the server within the connect timeout."""


class ReadTimeout(NetworkError):
    """The server did not answer within the read timeout."""


class DeliveryUnknownError(MattermostNotifyError):
    """A request that may have reached the server got no usable answer (a timeout after
    sending, a dropped connection, a 5xx) and cannot be repeated safely, because an incoming
    webhook has no de-duplication: the message may or may not have been posted."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class APIError(MattermostNotifyError):
    """The server answered with an error status.

    ``error_id`` is the server's stable machine key (for example
    ``api.context.session_expired.app_error``) and ``request_id`` its
    ``X-Request-Id``, useful when reading the server's logs.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_id: str | None = None,
        request_id: str | None = None,
        server_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_id = error_id
        self.request_id = request_id
        self.server_message = server_message

    def __str__(self) -> str:
        text = super().__str__()
        details = [
            f"{name}={value}"
            for name, value in (
                ("status", self.status_code),
                ("id", self.error_id),
                ("request_id", self.request_id),
            )
            if value
        ]
        return f"{text} ({', '.join(details)})" if details else text

    def reworded(self, message: str, cls: type[APIError] | None = None) -> APIError:
        """The same answer (status, ids, server message) told by ``message``."""
        details = ("status_code", "error_id", "request_id", "server_message")
        return (cls or type(self))(message, **{name: getattr(self, name) for name in details})


class AuthenticationError(APIError):
    """401: the token is missing, wrong, revoked or its user is deactivated."""


class PermissionDeniedError(APIError):
    """403: the bot is authenticated but not allowed (not in the team or channel, ...)."""


class NotFoundError(APIError):
    """404: the user, channel, team or post does not exist or is hidden from the bot."""


class RateLimitedError(APIError):
    """429 that did not clear within the retry budget."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class ServerError(APIError):
    """5xx (or another unexpected answer) that did not clear within the retry budget."""


class UnexpectedResponseError(ServerError):
    """An answer no Mattermost server gives: not JSON, JSON of the wrong shape (``[]``,
    ``null``, an object without an ``id``), or larger than the client reads. Usually the
    URL points at something else, or a proxy or firewall answered."""


class MattermostNotifyWarning(UserWarning):
    """A background notification failed; the user's code goes on."""


class InsecureConfigWarning(MattermostNotifyWarning):
    """A file holding the access token is readable by other users."""


def warn(text: str, category: type[Warning] = MattermostNotifyWarning) -> None:
    """Show ``text`` once as a warning of ``category``, without a source line.

    The warning names no line of the library (the user's code did nothing wrong), so it
    is one line on stderr; while tqdm bars are on screen they are cleared first and
    redrawn after it. ``-W error`` or a filter that raises never reaches the caller: the
    text then goes to the ``mattermost_notify`` logger.
    """
    import contextlib
    import sys

    try:
        bars = getattr(getattr(sys.modules.get("tqdm"), "tqdm", None), "external_write_mode", None)
        with bars() if bars is not None else contextlib.nullcontext():
            warnings.warn_explicit(text, category, "mattermost-notify", 0, "mattermost_notify")
    except Exception:
        import logging

        logging.getLogger("mattermost_notify").warning("%s", text)
