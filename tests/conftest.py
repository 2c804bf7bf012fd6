"""Shared fixtures, and the OpenAPI check of every sandbox answer in this suite.

The sandbox fixtures themselves come from the package's pytest plugin
(``mattermost_server``, ``mattermost_env``); ``sb`` here is one sandbox per test module
for the modules that do not need a fresh server per test.

Every JSON answer of every sandbox of the run is checked against Mattermost's OpenAPI
document (``tests/data/openapi``, the official source fragments); a test whose sandbox
answered something the document does not allow fails at teardown, listing the
differences, and the run ends with a line saying how many answers were checked.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openapi_check import COLLECTOR_KEY, OpenAPIChecker, ResponseCollector

from mattermost_notify.sandbox import Sandbox

OPENAPI = Path(__file__).parent / "data" / "openapi"


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    """One sandbox server for the whole test module."""
    with Sandbox() as server:
        yield server


def pytest_configure(config: pytest.Config) -> None:
    config.stash[COLLECTOR_KEY] = ResponseCollector(OpenAPIChecker(OPENAPI))


def pytest_unconfigure(config: pytest.Config) -> None:
    collector = config.stash.get(COLLECTOR_KEY, None)
    if collector is not None:
        collector.remove()


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    collector = session.config.stash.get(COLLECTOR_KEY, None)
    if workeroutput is not None and collector is not None:  # a pytest-xdist worker
        workeroutput["openapi_checked"] = collector.checker.checked
        workeroutput["openapi_skipped"] = collector.checker.skipped


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """Under pytest-xdist: add up what each worker's checker counted."""
    collector = node.config.stash.get(COLLECTOR_KEY, None)
    output = getattr(node, "workeroutput", {})
    if collector is not None:
        collector.checker.checked += output.get("openapi_checked", 0)
        collector.checker.skipped += output.get("openapi_skipped", 0)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    collector = config.stash.get(COLLECTOR_KEY, None)
    if collector is not None and collector.checker.checked:
        checker = collector.checker
        terminalreporter.write_line(
            f"mattermost sandbox: {checker.checked} JSON answers checked against the OpenAPI "
            f"document ({checker.skipped} of routes it does not describe)"
        )


# What selects this library's configuration: a test that changes one of these and does
# not put it back configures every test after it (use monkeypatch.setenv/delenv).
_CONFIGURING = ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME")


def _configuring_environment() -> dict[str, str]:
    return {
        name: value
        for name, value in os.environ.items()
        if name.startswith("MATTERMOST_NOTIFY_")
        or name in _CONFIGURING
        or name.lower().endswith("_proxy")
    }


_ENVIRONMENT_KEY = pytest.StashKey[dict[str, str]]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_ENVIRONMENT_KEY] = _configuring_environment()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    """Fail a test that leaves the library's environment changed for the tests after it
    (checked once every fixture of the test, monkeypatch included, is torn down)."""
    result = yield
    before = item.stash.get(_ENVIRONMENT_KEY, None)
    after = _configuring_environment()
    if before is not None and after != before:
        changed = sorted(
            name for name in before.keys() | after.keys() if before.get(name) != after.get(name)
        )
        for name in changed:  # put it back, so that one leak fails one test
            if name in before:
                os.environ[name] = before[name]
            else:
                del os.environ[name]
        pytest.fail(f"{item.nodeid} left the environment changed: {', '.join(changed)}")
    return result


@pytest.fixture(autouse=True)
def _openapi_check(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test at teardown if a sandbox answer broke the OpenAPI document."""
    collector = request.config.stash.get(COLLECTOR_KEY, None)
    if collector is not None:
        collector.check_pending()  # answers from before this test belong to no test
    yield
    if collector is not None:
        violations = collector.check_pending()
        if violations:
            lines = "\n".join(f"  {v}" for v in violations[:20])
            pytest.fail(f"sandbox answers that break the OpenAPI document:\n{lines}")


@pytest.fixture(autouse=True)
def _isolated_id_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Every test gets an empty id cache directory (never the user's cache)."""
    monkeypatch.setenv("MATTERMOST_NOTIFY_CACHE_DIR", str(tmp_path_factory.mktemp("id-cache")))
