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
