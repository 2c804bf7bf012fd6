"""Fixtures of the real-server suite (marker ``real_server``).

The tests here run only when selected with ``-m real_server`` (after
``python scripts/real_mattermost.py build``); a plain ``python -m pytest`` skips them
with one line saying so. When selected, a server that cannot be started is an error,
never a skip.

``real_server`` (session): one bootstrapped real Mattermost server (see
``scripts/real_mattermost.py``), started here and stopped at the end, or the one a
``real_mattermost.py start`` left running when ``MATTERMOST_NOTIFY_REAL_SERVER_STATE``
names its state file. ``admin``: a REST view of it as the system admin (to read
what the library posted). ``server_settings``: changes server settings through
``PUT /api/v4/config/patch`` and restores them after the test. ``real_env``: the
library's environment pointed at the server, isolated like the sandbox's
``mattermost_env``. ``rate_limited_server``: a second server started with rate limiting
on (that setting applies only at start).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
HOW_TO_RUN = (
    "real-server tests not run: build the server with `python scripts/real_mattermost.py "
    "build`, then run `python -m pytest -m real_server`"
)


def _load_script() -> Any:
    name = "real_mattermost"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / "real_mattermost.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


script = _load_script()
sys.path.insert(0, str(Path(__file__).parent))  # differential.py


def _selected(config: pytest.Config) -> bool:
    """True when the run asked for the real server (``-m`` naming ``real_server``)."""
    expression = config.getoption("markexpr", "") or ""
    return "real_server" in expression and "not real_server" not in expression


_NOT_RUN = pytest.StashKey[int]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    ours = [item for item in items if here in Path(str(item.path)).parents]
    for item in ours:
        item.add_marker(pytest.mark.real_server)
    if ours and not _selected(config):
        config.stash[_NOT_RUN] = len(ours)
        config.hook.pytest_deselected(items=ours)
        keep = set(ours)
        items[:] = [item for item in items if item not in keep]


_skipped_here: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail") and "real_server" in report.keywords:
        _skipped_here.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # a real-server test that skips when the real server was asked for is a failure
    if _selected(session.config) and _skipped_here and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_differential: list[str] = []


@pytest.fixture(scope="session")
def differential_results() -> list[str]:
    """Where the differential check leaves its summary line, printed at the end of the run."""
    return _differential


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    for line in _differential:
        terminalreporter.write_line(line)
    count = config.stash.get(_NOT_RUN, 0)
    if count:
        terminalreporter.write_line(f"{count} {HOW_TO_RUN}")
    if _selected(config) and _skipped_here:
        terminalreporter.write_line(
            f"FAILED: {len(_skipped_here)} real-server test(s) skipped although the real "
            f"server was asked for: {', '.join(_skipped_here[:5])}"
        )


class Admin:
    """The system admin's REST view of the real server (to check what the library did)."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.url = server.url + "/api/v4"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {server.admin_token}"

    def call(self, method: str, path: str, body: Any = None, *, expect: int = 200) -> Any:
        for _ in range(30):
            answer = self.session.request(method, self.url + path, json=body, timeout=30)
            if answer.status_code != 429:  # the rate-limited server
                break
            time.sleep(float(answer.headers.get("Retry-After") or 1))
        assert answer.status_code == expect, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json() if answer.content else None

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    def post(self, post_id: str) -> dict[str, Any]:
        return self.get(f"/posts/{post_id}")

    def thread(self, post_id: str) -> list[dict[str, Any]]:
        """The root post and its replies, oldest first."""
        answer = self.get(f"/posts/{post_id}/thread")
        return sorted(answer["posts"].values(), key=lambda p: p["create_at"])

    def channel_posts(self, channel_id: str) -> list[dict[str, Any]]:
        """Every post of a channel, oldest first (page by page: 200 is the server's most)."""
        posts: list[dict[str, Any]] = []
        for page in range(1000):
            answer = self.get(f"/channels/{channel_id}/posts?per_page=200&page={page}")
            posts.extend(answer["posts"][i] for i in answer["order"])
            if len(answer["order"]) < 200:
                break
        return posts[::-1]

    def dm_channel(self, username: str) -> str:
        """The id of the bot's DM channel with ``username``; LookupError when there is none."""
        name = "__".join(sorted([self.server.bot_user_id, self.server.users[username]]))
        path = f"/users/{self.server.bot_user_id}/teams/{self.server.team_id}/channels"
        for channel in self.get(path):
            if channel["name"] == name:
                return channel["id"]
        raise LookupError(f"no DM channel between the bot and {username}")

    def dm_posts(self, username: str) -> list[dict[str, Any]]:
        try:
            channel = self.dm_channel(username)
        except LookupError:
            return []
        return self.channel_posts(channel)

    def file_names(self, post: dict[str, Any]) -> list[str]:
        return sorted(f["name"] for f in post.get("metadata", {}).get("files", []))

    def unread(self, username: str, channel_id: str) -> dict[str, Any]:
        """``msg_count``/``mention_count`` of a user in a channel (what alerts them)."""
        return self.get(f"/users/{self.server.users[username]}/channels/{channel_id}/unread")

    def create_user(self, prefix: str, *, join_team: bool) -> str:
        """A new user (in the team or in no team at all); returns the username."""
        name = f"{prefix}{uuid.uuid4().hex[:8]}"
        user = self.call(
            "POST",
            "/users",
            {"email": f"{name}@example.com", "username": name, "password": "Passw0rd!Passw0rd-1"},
            expect=201,
        )
        self.server.users[name] = user["id"]
        if join_team:
            team = self.server.team_id
            self.call(
                "POST",
                f"/teams/{team}/members",
                {"team_id": team, "user_id": user["id"]},
                expect=201,
            )
        return name

    def config(self) -> dict[str, Any]:
        return self.get("/config")

    def patch_config(self, patch: dict[str, Any]) -> dict[str, Any]:
        return self.call("PUT", "/config/patch", patch)


@pytest.fixture(scope="session")
def real_server() -> Iterator[Any]:
    state = os.environ.get("MATTERMOST_NOTIFY_REAL_SERVER_STATE")
    if state:
        server = script.RealServer.load(Path(state))
        if not server.alive():
            raise RuntimeError(f"the server of {state} (pid {server.pid}) is not running")
        yield server
        return
    server = script.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def admin(real_server: Any) -> Admin:
    return Admin(real_server)


@pytest.fixture
def server_settings(admin: Admin) -> Iterator[Callable[[dict[str, Any]], dict[str, Any]]]:
    """``server_settings({"ServiceSettings": {...}})`` patches the running server's config;
    every section and key the test touched is put back afterwards."""
    before = admin.config()
    touched: dict[str, set[str]] = {}

    def patch(settings: dict[str, Any]) -> dict[str, Any]:
        for section, values in settings.items():
            touched.setdefault(section, set()).update(values)
        return admin.patch_config(settings)

    yield patch
    if touched:
        admin.patch_config(
            {
                section: {key: before[section][key] for key in keys}
                for section, keys in touched.items()
            }
        )


@pytest.fixture
def real_env(
    real_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[dict[str, str]]:
    """The library's environment pointed at the real server (isolated home, config, data and
    working directory; a fresh default client before and after). Returns the variables, for
    child processes."""
    from mattermost_notify import api

    for var in list(os.environ):
        if var.startswith("MATTERMOST_NOTIFY_"):
            monkeypatch.delenv(var)
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    values = {
        "MATTERMOST_NOTIFY_URL": real_server.url,
        "MATTERMOST_NOTIFY_TOKEN": real_server.bot_token,
        "MATTERMOST_NOTIFY_TEAM": real_server.team,
        "MATTERMOST_NOTIFY_CONFIG_DIR": str(home / "config"),
        "MATTERMOST_NOTIFY_DATA_DIR": str(home / "data"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "IPYTHONDIR": str(home / "ipython"),
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(work)
    api._reset()
    yield values
    api._reset()


@pytest.fixture
def client(real_server: Any) -> Iterator[Any]:
    """A `Notify` client of the bot on the real server (closed after the test)."""
    import mattermost_notify as notify

    with notify.Notify(
        token=real_server.bot_token, url=real_server.url, team_name=real_server.team
    ) as bot:
        yield bot


@pytest.fixture(scope="session")
def rate_limited_server() -> Iterator[Any]:
    """A second server, started with rate limiting on: PerSec 2, MaxBurst 4, by token."""
    server = script.start(script.rate_limit_env(per_sec=2, max_burst=4))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def rate_limited_admin(rate_limited_server: Any) -> Admin:
    return Admin(rate_limited_server)
