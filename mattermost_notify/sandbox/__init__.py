"""A local Mattermost server for tests and demos (stand-alone, stdlib HTTP server).

``from mattermost_notify.sandbox import Sandbox``. Importing this package is
cheap: the server module is loaded on first use of one of its names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .faults import Faults
    from .server import Sandbox, add_response_observer
    from .view import EditView, FileView, PostView, RequestRecord, View

_LAZY = {
    "Sandbox": "server",
    "add_response_observer": "server",
    "Faults": "faults",
    "View": "view",
    "PostView": "view",
    "FileView": "view",
    "EditView": "view",
    "RequestRecord": "view",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
