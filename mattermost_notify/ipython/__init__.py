"""The IPython / Jupyter extension of mattermost-notify.

Load it with ``%load_ext mattermost_notify``. Importing this package is cheap: IPython,
traitlets and ipywidgets are imported only by :func:`load_ipython_extension` (and by the
widgets when they are used), so ``mattermost_notify.ipython.autoload`` can be used by
the command line without IPython.

Magics (see :mod:`mattermost_notify.ipython.magics`):

- ``%notify [-u USER | -c CHANNEL] [-f FILE ...] [--id ID] MESSAGE``
- ``%%notify_on_done [-u|-c] [-m MESSAGE] [--id ID] [--after S] [--attach FILE ...] [--figures]``
- ``%autonotify [--after S] [--on done|error|all] [--off]``
- ``%notify_hooks [list | forget ID | export ID FILE]``
- ``%notify_setup`` (an ipywidgets form)

Configuration (``ipython_kernel_config.py`` or ``%config``)::

    c.NotifyMagics.default_channel = "alerts"
    c.NotifyMagics.auto_after = 120.0

To load it in every kernel, add ``c.InteractiveShellApp.extensions.append("mattermost_notify")``
to ``~/.ipython/profile_default/ipython_kernel_config.py`` (``mattermost-notify jupyter enable``
does exactly that).
"""

from __future__ import annotations

import contextlib
from typing import Any

__all__ = ["load_ipython_extension", "unload_ipython_extension"]

#: the key of our instance in ``shell.magics_manager.registry``
REGISTRY_KEY = "NotifyMagics"


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics, the event callbacks and the configurable (idempotent)."""
    if REGISTRY_KEY in ipython.magics_manager.registry:
        return  # a startup file and %load_ext, or a direct second call
    from .magics import NotifyMagics

    magics = NotifyMagics(shell=ipython)  # Magics.__init__ adds it to shell.configurables
    ipython.register_magics(magics)
    ipython.events.register("pre_run_cell", magics.pre_run_cell)
    ipython.events.register("post_run_cell", magics.post_run_cell)
    # this cell may go on with notify.send_update(...): give the client the store now
    with contextlib.suppress(Exception):
        magics._attach_default_client()


def unload_ipython_extension(ipython: Any) -> None:
    """Remove exactly what :func:`load_ipython_extension` added."""
    magics = ipython.magics_manager.registry.pop(REGISTRY_KEY, None)
    if magics is None:
        return
    for kind, table in magics.magics.items():
        current = ipython.magics_manager.magics[kind]
        for name, func in table.items():
            if current.get(name) == func:  # only names that still point at our methods
                del current[name]
    for event, callback in (
        ("pre_run_cell", magics.pre_run_cell),
        ("post_run_cell", magics.post_run_cell),
    ):
        with contextlib.suppress(ValueError):  # already gone
            ipython.events.unregister(event, callback)
    while magics in ipython.configurables:
        ipython.configurables.remove(magics)
    magics.close()
