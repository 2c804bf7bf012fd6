"""Notifications to Mattermost from scripts and notebooks.

``import mattermost_notify`` is cheap: every public name is resolved
on first use (PEP 562), so neither ``requests`` nor IPython, ipywidgets or tqdm
is imported until something needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

# public name -> submodule that defines it
_LAZY: dict[str, str] = {
    # functional API (docs/use_api.rst)
    "wakeup": "api",
    "notify": "api",
    "notify_user": "api",
    "notify_channel": "api",
    "send_update": "api",
    "export_hook": "api",
    "import_hook": "api",
    "flush": "api",
    "get_client": "api",
    "current_client": "api",
    # jobs
    "on_done": "ondone",
    # the client
    "Notify": "client",
    "SentMessage": "client",
    "ConnectionReport": "client",
    "WebhookClient": "webhook",
    # hooks
    "MessageHook": "hooks",
    "HookStore": "hooks",
    # configuration
    "Settings": "config",
    "load_settings": "config",
    # background delivery
    "BackgroundSender": "sender",
    # errors
    "MattermostNotifyError": "errors",
    "ConfigurationError": "errors",
    "AuthenticationError": "errors",
    "PermissionDeniedError": "errors",
    "NotFoundError": "errors",
    "FileError": "errors",
    "MessageError": "errors",
    "APIError": "errors",
    "MattermostNotifyWarning": "errors",
    "HookError": "errors",
    "ServerError": "errors",
    "UnexpectedResponseError": "errors",
    "RateLimitedError": "errors",
    "NetworkError": "errors",
    "ConnectTimeout": "errors",
    "ReadTimeout": "errors",
    "WebhookModeError": "errors",
    "DeliveryUnknownError": "errors",
    # progress messages (imports tqdm when first used)
    "tqdm": "progress_bar",
    "trange": "progress_bar",
    "progress": "progress_bar",
    # logging (imports the client when first used)
    "MattermostHandler": "logging_handler",
}

__all__ = sorted([*_LAZY, "__version__", "load_ipython_extension", "unload_ipython_extension"])


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'mattermost_notify' has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{module_name}")
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def load_ipython_extension(ipython: Any) -> None:
    """Called by ``%load_ext mattermost_notify``."""
    from .ipython import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Called by ``%unload_ext mattermost_notify``."""
    from .ipython import unload_ipython_extension as _unload

    _unload(ipython)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs (X: re-exported)
    from .api import (
        current_client,
        export_hook,
        flush,
        get_client,
        import_hook,
        notify,
        notify_channel,
        notify_user,
        send_update,
        wakeup,
    )
    from .client import ConnectionReport, Notify, SentMessage
    from .config import Settings, load_settings
    from .errors import *  # noqa: F403 - every public exception
    from .hooks import HookStore, MessageHook
    from .logging_handler import MattermostHandler
    from .ondone import on_done
    from .progress_bar import progress, tqdm, trange
    from .sender import BackgroundSender
    from .webhook import WebhookClient
