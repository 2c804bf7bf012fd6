"""pytest plugin (entry point ``pytest11``): Mattermost sandbox fixtures.

``mattermost_server``: a fresh :class:`~mattermost_notify.sandbox.Sandbox` per test
on a free port. Override the ``mattermost_server_options`` fixture (a dict of
``Sandbox`` keyword arguments) to configure it.

``mattermost_env``: the same sandbox, with the library's environment pointed at
it (``MATTERMOST_NOTIFY_URL/_TOKEN/_TEAM``), isolated ``HOME``, XDG and data
directories and working directory, and a fresh default client before and after.

This module imports nothing heavy at import time and never fails to import.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .server import Sandbox


@pytest.fixture
def mattermost_server_options() -> dict[str, Any]:
    """Keyword arguments for the ``mattermost_server`` sandbox (override to configure)."""
    return {}


@pytest.fixture
def mattermost_server(mattermost_server_options: dict[str, Any]) -> Iterator[Sandbox]:
    """A fresh sandbox Mattermost server on a free port of 127.0.0.1."""
    from .server import Sandbox

    options = {"port": 0, **mattermost_server_options}
    with Sandbox(**options) as sandbox:
        yield sandbox


def _reset_default_client() -> None:
    try:
        api = importlib.import_module("mattermost_notify.api")
    except ModuleNotFoundError as err:
        if err.name != "mattermost_notify.api":
            raise
        return
    reset = getattr(api, "_reset", None)
    if reset is not None:
        reset()


@pytest.fixture
def mattermost_env(
    mattermost_server: Sandbox,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Sandbox]:
    """Point the library at ``mattermost_server``, isolated from any real configuration."""
    root = tmp_path_factory.mktemp("mattermost-env")
    dirs = {name: root / name for name in ("home", "config", "data", "notify-data", "cache", "cwd")}
    for directory in dirs.values():
        directory.mkdir()
    monkeypatch.setenv("HOME", str(dirs["home"]))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(dirs["config"]))
    monkeypatch.setenv("XDG_DATA_HOME", str(dirs["data"]))
    monkeypatch.setenv("MATTERMOST_NOTIFY_DATA_DIR", str(dirs["notify-data"]))
    monkeypatch.setenv("MATTERMOST_NOTIFY_CACHE_DIR", str(dirs["cache"]))
    monkeypatch.delenv("MATTERMOST_NOTIFY_CONFIG", raising=False)
    monkeypatch.setenv("MATTERMOST_NOTIFY_URL", mattermost_server.url)
    monkeypatch.setenv("MATTERMOST_NOTIFY_TOKEN", mattermost_server.token)
    monkeypatch.setenv("MATTERMOST_NOTIFY_TEAM", mattermost_server.team)
    monkeypatch.chdir(dirs["cwd"])  # so no ./.mattermost_notify of the caller is read
    _reset_default_client()
    try:
        yield mattermost_server
    finally:
        _reset_default_client()
