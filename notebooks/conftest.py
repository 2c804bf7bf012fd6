"""Run the example notebooks with nbval against a sandbox started here.

nbval's cell items are not pytest Functions, so fixtures do not reach them: the sandbox
is started by a hook before the first notebook cell runs (nbval starts each notebook's
kernel in its collector's setup, which comes after this hook), and the configuration
reaches the kernel through the environment it inherits: MATTERMOST_NOTIFY_URL, _TOKEN,
_TEAM, plus private config, data and IPython directories so nothing of the user's is
read or written. Everything is restored when the session ends.

These runs are marked ``slow``: the quick run (``-m "not slow"``) runs the same notebooks
in real kernels through tests/test_notebooks.py, which also checks what they posted.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

import pytest

_state: dict[str, Any] = {}


def _start() -> None:
    from mattermost_notify.sandbox import Sandbox

    root = tempfile.mkdtemp(prefix="mattermost-notify-notebooks-")
    sandbox = Sandbox(port=0)
    sandbox.__enter__()
    env = {
        "MATTERMOST_NOTIFY_URL": sandbox.url,
        "MATTERMOST_NOTIFY_TOKEN": sandbox.token,
        "MATTERMOST_NOTIFY_TEAM": sandbox.team,
        "MATTERMOST_NOTIFY_DATA_DIR": os.path.join(root, "data"),
        "MATTERMOST_NOTIFY_CONFIG_DIR": os.path.join(root, "config"),
        "XDG_CONFIG_HOME": os.path.join(root, "xdg-config"),
        "XDG_DATA_HOME": os.path.join(root, "xdg-data"),
        "IPYTHONDIR": os.path.join(root, "ipython"),
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    }
    removed = ("MATTERMOST_NOTIFY_CONFIG", "JPY_SESSION_NAME", "MATTERMOST_NOTIFY_NOTEBOOK")
    _state["saved"] = {k: os.environ.get(k) for k in (*env, *removed)}
    os.environ.update(env)
    for key in removed:
        os.environ.pop(key, None)
    _state["sandbox"] = sandbox
    _state["root"] = root


@pytest.hookimpl(tryfirst=True)  # before -m "not slow" deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if "sandbox" not in _state and item.path.suffix == ".ipynb":
        _start()


def pytest_sessionfinish(session: pytest.Session) -> None:
    sandbox = _state.pop("sandbox", None)
    if sandbox is None:
        return
    for key, value in _state.pop("saved").items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    sandbox.__exit__(None, None, None)
    shutil.rmtree(_state.pop("root"), ignore_errors=True)
