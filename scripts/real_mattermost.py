#!/usr/bin/env python3
"""Build, start, bootstrap and stop a real Mattermost server for the real-server tests.

    python scripts/real_mattermost.py build          # Go build at the pinned commit (cached)
    python scripts/real_mattermost.py start [--state FILE] [--rate-limit]
    python scripts/real_mattermost.py stop [--state FILE]
    python scripts/real_mattermost.py info           # pinned versions and cache paths

The server is built from the Go module proxy as a dependency of the small wrapper module
in ``scripts/mattermost-server/`` (its go.mod pins ``server/v8`` and ``server/public`` at
one upstream commit). The binary and its runtime files (i18n, templates, fonts) are
cached in ``$MATTERMOST_NOTIFY_REAL_SERVER_CACHE`` (default
``~/.cache/mattermost-notify/real-server``) under the commit, so a second ``build`` does
nothing; Go's own module and build caches are shared as usual.

``start`` starts Debian's PostgreSQL 15 cluster when it is down (installing the package
with apt-get when it is missing), gives the server a database of its own (a copy of a
migrated template, made once per commit), starts the server on 127.0.0.1 with a free
port, waits for ``/api/v4/system/ping`` and bootstraps over REST: an admin, the team
``research``, users, channels and a bot with an access token. It writes what the tests
need (URL, tokens, names, process ids) to a JSON state file. ``stop`` stops only what
``start`` started, by process id, and drops the server's database.

The pytest fixtures in ``tests/real_server/`` import this module and do the same
without the CLI. Nothing here is imported by the package.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
WRAPPER_SOURCE = REPO / "scripts" / "mattermost-server"
SERVER_MODULE = "github.com/mattermost/mattermost/server/v8"
PUBLIC_MODULE = "github.com/mattermost/mattermost/server/public"
MAIN_PACKAGE = SERVER_MODULE + "/cmd/mattermost"
MODEL_PACKAGE = PUBLIC_MODULE + "/model"
# The full hash of the commit the pseudo-versions in go.mod point at (for the docs).
COMMIT = "9e1d4c2072c08ec08828317a277427ecac71f136"

PG_VERSION = "15"
PG_CLUSTER = "main"
DB_ROLE = "mmnotify"
DB_PASSWORD = "mmnotify-test-only"  # noqa: S105 - a throw-away local test database

TEAM = "research"
PASSWORD = "Passw0rd!Passw0rd-1"  # noqa: S105 - throw-away accounts of a local test server
ADMIN = "sysadmin"
USERS = ("alice", "bob")  # members of the team
OUTSIDER = "carol"  # a user who shares no team with the bot
BOT = "notifybot"
# (name, type, bot is a member); the admin and alice are members of every channel
CHANNELS = (
    ("bot-public", "O", True),
    ("public-no-bot", "O", False),
    ("bot-private", "P", True),
    ("private-no-bot", "P", False),
)

START_TIMEOUT = 300.0  # first start on an empty database runs every migration


class RealServerError(RuntimeError):
    """The real server could not be built, started or bootstrapped."""


def log(message: str) -> None:
    print(f"[real-mattermost] {message}", file=sys.stderr, flush=True)


# ---- versions and cache --------------------------------------------------------------


def pinned_versions() -> dict[str, str]:
    """The module versions the wrapper go.mod requires."""
    text = (WRAPPER_SOURCE / "go.mod").read_text()
    versions = {}
    for module in (SERVER_MODULE, PUBLIC_MODULE):
        match = re.search(rf"^\s*{re.escape(module)}\s+(\S+)\s*$", text, re.MULTILINE)
        if match is None:
            raise RealServerError(f"{WRAPPER_SOURCE / 'go.mod'} does not require {module}")
        versions[module] = match.group(1)
    return versions


def pinned_revision() -> str:
    """The 12-hex commit of the pinned server/v8 pseudo-version."""
    return pinned_versions()[SERVER_MODULE].rsplit("-", 1)[1]


def cache_root() -> Path:
    configured = os.environ.get("MATTERMOST_NOTIFY_REAL_SERVER_CACHE")
    if configured:
        return Path(configured).expanduser().resolve()
    return Path.home() / ".cache" / "mattermost-notify" / "real-server"


def server_dir() -> Path:
    """Where the binary (bin/mattermost) and its runtime files for the pinned commit live."""
    return cache_root() / pinned_revision()


def binary_path() -> Path:
    return server_dir() / "bin" / "mattermost"


def build_info() -> dict[str, Any] | None:
    """What ``build`` recorded for the pinned commit, or None when it is not built."""
    path = server_dir() / "build.json"
    if not binary_path().is_file() or not path.is_file():
        return None
    info = json.loads(path.read_text())
    if info.get("server_v8") != pinned_versions()[SERVER_MODULE]:
        return None
    return info


# ---- build ---------------------------------------------------------------------------


def go_env() -> dict[str, str]:
    env = dict(os.environ)
    env["GOTOOLCHAIN"] = "local"  # never download another toolchain
    env["CGO_ENABLED"] = "0"
    env["GOFLAGS"] = "-mod=mod"  # the wrapper lists only the two server modules
    # the checksum database has no entry for these pseudo-versions; the pinned go.sum does
    private = [p for p in env.get("GONOSUMDB", "").split(",") if p]
    env["GONOSUMDB"] = ",".join([*private, "github.com/mattermost/mattermost"])
    return env


def _run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, text=True, **kwargs)


def _check_wrapper_against(server_go_mod: str, wrapper_go_mod: str) -> None:
    """The server's own exclude and replace lines must be in the wrapper (Go ignores a
    dependency's): fail early, naming the line, when a version bump brings new ones."""
    wanted = []
    block = None
    for raw in server_go_mod.splitlines():
        line = raw.split("//", 1)[0].strip()
        if not line:
            continue
        if block is not None:
            if line == ")":
                block = None
            else:
                wanted.append(f"{block} {line}")
        elif line in ("exclude (", "replace ("):
            block = line.split()[0]
        elif line.startswith(("exclude ", "replace ")):
            wanted.append(line)
    have = " ".join(wrapper_go_mod.split())
    for entry in wanted:
        keyword, rest = entry.split(" ", 1)
        if "=>" in rest and rest.split("=>", 1)[1].strip().startswith((".", "/")):
            raise RealServerError(
                f"the server's go.mod replaces a module by a local path ({rest}); "
                "this commit cannot be built from the module proxy"
            )
        if " ".join(rest.split()) not in have:
            raise RealServerError(
                f"the server's go.mod has `{keyword} {rest}`; "
                f"copy it into {WRAPPER_SOURCE / 'go.mod'}"
            )


def build(*, force: bool = False) -> dict[str, Any]:
    """Build the pinned server into the cache (nothing to do when it is there)."""
    info = build_info()
    if info is not None and not force:
        log(f"server {info['version']} ({info['server_v8']}) already built: {binary_path()}")
        return info
    go = shutil.which("go")
    if go is None:
        raise RealServerError("`go` is not on PATH: install Go >= 1.24 to build the server")
    versions = pinned_versions()
    target = server_dir()
    wrapper = target / "wrapper"
    wrapper.mkdir(parents=True, exist_ok=True)
    for name in ("go.mod", "go.sum"):
        shutil.copyfile(WRAPPER_SOURCE / name, wrapper / name)
    env = go_env()
    started = time.monotonic()
    log(f"go version: {_run([go, 'version'], capture_output=True).stdout.strip()}")
    log(f"downloading {SERVER_MODULE}@{versions[SERVER_MODULE]}")
    download = _run(
        [go, "mod", "download", "-json", f"{SERVER_MODULE}@{versions[SERVER_MODULE]}"],
        cwd=wrapper,
        env=env,
        capture_output=True,
    )
    module = json.loads(download.stdout)
    _check_wrapper_against(Path(module["GoMod"]).read_text(), (wrapper / "go.mod").read_text())
    revision = pinned_revision()
    ldflags = " ".join(
        [
            "-s -w",
            f"-X {MODEL_PACKAGE}.BuildNumber={versions[SERVER_MODULE]}",
            f"-X {MODEL_PACKAGE}.BuildHash={revision}",
            f"-X {MODEL_PACKAGE}.BuildDate={time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}",
        ]
    )
    output = target / "bin" / "mattermost.partial"
    output.parent.mkdir(parents=True, exist_ok=True)
    log("go build (a cold build downloads ~1 GB of modules and compiles for several minutes)")
    _run(
        [
            go,
            "build",
            "-trimpath",
            "-tags",
            "production",
            "-ldflags",
            ldflags,
            "-o",
            str(output),
            MAIN_PACKAGE,
        ],
        cwd=wrapper,
        env=env,
    )
    source = Path(module["Dir"])
    for name in ("i18n", "templates", "fonts"):
        destination = target / name
        if destination.exists():
            shutil.rmtree(destination)
        # plain copies: the module cache is read-only and may be cleaned
        shutil.copytree(source / name, destination, copy_function=shutil.copyfile)
    output.replace(binary_path())
    version = _run([str(binary_path()), "version"], capture_output=True, cwd=target).stdout
    match = re.search(r"^Version:\s*(\S+)", version, re.MULTILINE)
    info = {
        "server_v8": versions[SERVER_MODULE],
        "server_public": versions[PUBLIC_MODULE],
        "commit": COMMIT,
        "version": match.group(1) if match else "unknown",
        "build_seconds": round(time.monotonic() - started, 1),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (target / "build.json").write_text(json.dumps(info, indent=2) + "\n")
    log(f"built server {info['version']} in {info['build_seconds']} s: {binary_path()}")
    return info


# ---- PostgreSQL ----------------------------------------------------------------------


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return ["sudo", "-n", "-u", "postgres", *cmd]


def psql(sql: str, *, database: str = "postgres") -> str:
    result = subprocess.run(
        _as_postgres(
            [
                "psql",
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-p",
                str(pg_port()),
                "-d",
                database,
                "-c",
                sql,
            ]
        ),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RealServerError(f"psql failed ({sql.split()[0]} ...): {result.stderr.strip()}")
    return result.stdout.strip()


def _cluster_status() -> tuple[int, str] | None:
    if shutil.which("pg_lsclusters") is None:
        return None
    out = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=True)
    for line in out.stdout.splitlines():
        parts = line.split()
        if parts[:2] == [PG_VERSION, PG_CLUSTER]:
            return int(parts[2]), parts[3]
    return None


def pg_port() -> int:
    status = _cluster_status()
    return status[0] if status else 5432


def install_postgres() -> None:
    if _cluster_status() is not None:
        return
    if os.geteuid() != 0:
        raise RealServerError(
            "PostgreSQL 15 is not installed: run `apt-get install -y postgresql` as root"
        )
    log("installing PostgreSQL: apt-get update && apt-get install -y postgresql")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
    _run(["apt-get", "install", "-y", "-q", "postgresql"], env=env, stdout=subprocess.DEVNULL)
    if _cluster_status() is None:
        raise RealServerError(f"apt-get installed no PostgreSQL {PG_VERSION} cluster")


def postgres_pid() -> int | None:
    pidfile = Path(f"/var/lib/postgresql/{PG_VERSION}/{PG_CLUSTER}/postmaster.pid")
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(pidfile.read_text().split()[0])
    return None


def start_postgres() -> int | None:
    """Start the cluster when it is down; return the postmaster pid if we started it."""
    install_postgres()
    status = _cluster_status()
    assert status is not None
    if status[1] == "online":
        return None
    log(f"starting PostgreSQL {PG_VERSION}/{PG_CLUSTER}")
    _run(["pg_ctlcluster", "--skip-systemctl-redirect", PG_VERSION, PG_CLUSTER, "start"])
    pid = postgres_pid()
    if pid is None:
        raise RealServerError("PostgreSQL started but wrote no postmaster.pid")
    return pid


def stop_postgres(pid: int) -> None:
    """Stop the cluster we started (fast shutdown), if that postmaster still runs."""
    if postgres_pid() != pid:
        return
    log(f"stopping PostgreSQL (pid {pid})")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)  # postgres: SIGINT = fast shutdown
    _wait_gone(pid, 60.0)


def ensure_role() -> None:
    exists = psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{DB_ROLE}'")  # noqa: S608 - our constant
    if not exists:
        psql(f"CREATE ROLE {DB_ROLE} LOGIN PASSWORD '{DB_PASSWORD}'")


def database_exists(name: str) -> bool:
    return bool(psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'"))  # noqa: S608


def drop_database(name: str) -> None:
    psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def datasource(database: str) -> str:
    return (
        f"postgres://{DB_ROLE}:{DB_PASSWORD}@127.0.0.1:{pg_port()}/{database}"
        "?sslmode=disable&connect_timeout=10"
    )


# ---- the server process --------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            waited, _ = os.waitpid(pid, os.WNOHANG)
            if waited == pid:
                return True
        except ChildProcessError:  # not our child: poll its existence
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
        time.sleep(0.1)
    return False


def server_env(run_dir: Path, port: int, database: str, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MM_")}
    env.update(
        {
            "MM_CONFIG": str(run_dir / "config" / "config.json"),  # absolute: a file store
            "MM_SQLSETTINGS_DRIVERNAME": "postgres",
            "MM_SQLSETTINGS_DATASOURCE": datasource(database),
            "MM_SERVICESETTINGS_LISTENADDRESS": f"127.0.0.1:{port}",
            "MM_SERVICESETTINGS_SITEURL": f"http://127.0.0.1:{port}",
            "MM_SERVICESETTINGS_ENABLELOCALMODE": "false",
            "MM_SERVICESETTINGS_ENABLEBOTACCOUNTCREATION": "true",
            "MM_SERVICESETTINGS_ENABLEUSERACCESSTOKENS": "true",
            "MM_SERVICESETTINGS_ENABLESECURITYFIXALERT": "false",
            "MM_FILESETTINGS_DIRECTORY": str(run_dir / "data") + "/",
            "MM_LOGSETTINGS_FILELOCATION": str(run_dir / "logs"),
            "MM_LOGSETTINGS_CONSOLELEVEL": "WARN",
            "MM_LOGSETTINGS_ENABLEDIAGNOSTICS": "false",
            "MM_PLUGINSETTINGS_ENABLE": "false",
            "MM_PLUGINSETTINGS_DIRECTORY": str(run_dir / "plugins"),
            "MM_PLUGINSETTINGS_CLIENTDIRECTORY": str(run_dir / "client" / "plugins"),
            "MM_METRICSSETTINGS_ENABLE": "false",
            "MM_ANNOUNCEMENTSETTINGS_ADMINNOTICESENABLED": "false",
            "MM_ANNOUNCEMENTSETTINGS_USERNOTICESENABLED": "false",
            "MM_EMAILSETTINGS_SENDEMAILNOTIFICATIONS": "false",
            "MM_EMAILSETTINGS_SENDPUSHNOTIFICATIONS": "false",
        }
    )
    env.update(extra)
    return env


def _spawn(run_dir: Path, port: int, database: str, extra: dict[str, str]) -> subprocess.Popen:
    for sub in ("config", "data", "logs", "plugins", "client/plugins"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    stdout = (run_dir / "logs" / "stdout.log").open("ab")
    try:
        return subprocess.Popen(
            [str(binary_path()), "server"],
            cwd=run_dir,
            env=server_env(run_dir, port, database, extra),
            stdout=stdout,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C in the terminal reaches only the tests
        )
    finally:
        stdout.close()


def _log_tail(run_dir: Path, lines: int = 30) -> str:
    path = run_dir / "logs" / "stdout.log"
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"


def _wait_ready(proc: subprocess.Popen, url: str, run_dir: Path, timeout: float) -> str:
    """Poll the ping route until it answers; return the X-Version-Id header."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RealServerError(
                f"mattermost exited with status {proc.returncode} before it was ready; "
                f"end of {run_dir / 'logs' / 'stdout.log'}:\n{_log_tail(run_dir)}"
            )
        try:
            answer = requests.get(url + "/api/v4/system/ping", timeout=2)
            if answer.status_code == 200:
                return answer.headers.get("X-Version-Id", "")
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RealServerError(f"mattermost not ready after {timeout:.0f} s:\n{_log_tail(run_dir)}")


def _terminate(proc_or_pid: subprocess.Popen | int, timeout: float = 60.0) -> None:
    pid = proc_or_pid if isinstance(proc_or_pid, int) else proc_or_pid.pid
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not _wait_gone(pid, timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 10.0)
    if not isinstance(proc_or_pid, int):
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc_or_pid.wait(timeout=1)


def template_database() -> str:
    return f"mmnotify_template_{pinned_revision()}"


def ensure_template() -> float | None:
    """Migrate an empty database once per commit and keep it as a template.

    Returns the first start's duration (migrations) when it ran now, else None."""
    name = template_database()
    if database_exists(name):
        return None
    partial = name + "_partial"
    drop_database(partial)
    psql(f'CREATE DATABASE "{partial}" OWNER {DB_ROLE}')
    run_dir = server_dir() / "runs" / "template"
    shutil.rmtree(run_dir, ignore_errors=True)
    port = free_port()
    log(f"first start on an empty database (migrations) for {name}")
    started = time.monotonic()
    proc = _spawn(run_dir, port, partial, {})
    try:
        _wait_ready(proc, f"http://127.0.0.1:{port}", run_dir, START_TIMEOUT)
        seconds = time.monotonic() - started
    finally:
        _terminate(proc)
    psql(f'ALTER DATABASE "{partial}" RENAME TO "{name}"')
    shutil.rmtree(run_dir, ignore_errors=True)
    log(f"migrated the template database in {seconds:.1f} s")
    return round(seconds, 1)


# ---- REST bootstrap ------------------------------------------------------------------


class _Rest:
    """Minimal admin client for the bootstrap: JSON in and out, waits out 429s."""

    def __init__(self, url: str, token: str | None = None) -> None:
        import requests

        self.url = url + "/api/v4"
        self.session = requests.Session()
        self.token = token

    def call(self, method: str, path: str, body: Any = None, *, expect: int = 200) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        for _ in range(60):
            answer = self.session.request(
                method, self.url + path, json=body, headers=headers, timeout=30
            )
            if answer.status_code == 429:  # the rate-limited server
                time.sleep(float(answer.headers.get("Retry-After") or 1))
                continue
            break
        if answer.status_code != expect:
            raise RealServerError(
                f"bootstrap: {method} {path} answered {answer.status_code}, not {expect}: "
                f"{answer.text[:300]}"
            )
        self.last = answer
        return answer.json() if answer.content else None


@dataclass
class RealServer:
    """A running real server and what the bootstrap created (the JSON state)."""

    url: str
    port: int
    pid: int
    database: str
    run_dir: str
    version: str  # X-Version-Id: <version>.<build number>.<config hash>.<licensed>
    admin: str
    admin_token: str
    team: str
    team_id: str
    bot: str
    bot_user_id: str
    bot_token: str
    users: dict[str, str] = field(default_factory=dict)  # username -> user id
    channels: dict[str, str] = field(default_factory=dict)  # name -> channel id
    env: dict[str, str] = field(default_factory=dict)  # the extra MM_* settings it runs with
    start_seconds: float = 0.0
    bootstrap_seconds: float = 0.0
    postgres_pid: int | None = None  # set when this server's start started PostgreSQL

    @property
    def server_version(self) -> str:
        """The dotted release version, e.g. ``11.4.0``."""
        return ".".join(self.version.split(".")[:3])

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(asdict(self), out, indent=2)

    @classmethod
    def load(cls, path: Path) -> RealServer:
        return cls(**json.loads(path.read_text()))

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def stop(self, *, keep_logs: bool = False) -> None:
        """Stop the server process and drop its database (and PostgreSQL if we started it)."""
        log(f"stopping mattermost (pid {self.pid}, port {self.port})")
        _terminate(self.pid)
        with contextlib.suppress(RealServerError):
            drop_database(self.database)
        if not keep_logs:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        if self.postgres_pid is not None:
            stop_postgres(self.postgres_pid)


def bootstrap(url: str) -> dict[str, Any]:
    """Create the admin, team, users, channels and bot over REST; return their ids."""
    anonymous = _Rest(url)
    anonymous.call(
        "POST",
        "/users",
        {"email": f"{ADMIN}@example.com", "username": ADMIN, "password": PASSWORD},
        expect=201,
    )  # the first user of an empty server becomes system admin
    anonymous.call("POST", "/users/login", {"login_id": ADMIN, "password": PASSWORD})
    admin = _Rest(url, anonymous.last.headers["Token"])
    me = admin.call("GET", "/users/me")
    if "system_admin" not in me["roles"]:
        raise RealServerError(f"the first user did not become system admin: {me['roles']}")
    team = admin.call(
        "POST", "/teams", {"name": TEAM, "display_name": "Research", "type": "O"}, expect=201
    )
    users = {ADMIN: me["id"]}
    for name in (*USERS, OUTSIDER):
        user = admin.call(
            "POST",
            "/users",
            {"email": f"{name}@example.com", "username": name, "password": PASSWORD},
            expect=201,
        )
        users[name] = user["id"]
        if name != OUTSIDER:
            admin.call(
                "POST",
                f"/teams/{team['id']}/members",
                {"team_id": team["id"], "user_id": user["id"]},
                expect=201,
            )
    bot = admin.call(
        "POST",
        "/bots",
        {"username": BOT, "display_name": "Notify bot", "description": "mattermost-notify tests"},
        expect=201,
    )
    users[BOT] = bot["user_id"]
    admin.call(
        "POST",
        f"/teams/{team['id']}/members",
        {"team_id": team["id"], "user_id": bot["user_id"]},
        expect=201,
    )
    channels = {}
    for name, kind, with_bot in CHANNELS:
        channel = admin.call(
            "POST",
            "/channels",
            {"team_id": team["id"], "name": name, "display_name": name, "type": kind},
            expect=201,
        )
        channels[name] = channel["id"]
        members = [users["alice"], *([bot["user_id"]] if with_bot else [])]
        for member in members:
            admin.call(
                "POST", f"/channels/{channel['id']}/members", {"user_id": member}, expect=201
            )
    town = admin.call("GET", f"/teams/{team['id']}/channels/name/town-square")
    channels["town-square"] = town["id"]
    token = admin.call(
        "POST", f"/users/{bot['user_id']}/tokens", {"description": "mattermost-notify tests"}
    )
    return {
        "admin": ADMIN,
        "admin_token": admin.token,
        "team": TEAM,
        "team_id": team["id"],
        "bot": BOT,
        "bot_user_id": bot["user_id"],
        "bot_token": token["token"],
        "users": users,
        "channels": channels,
    }


def rate_limit_env(per_sec: int = 2, max_burst: int = 4) -> dict[str, str]:
    """Settings of a server with rate limiting on (they apply only at start)."""
    return {
        "MM_RATELIMITSETTINGS_ENABLE": "true",
        "MM_RATELIMITSETTINGS_PERSEC": str(per_sec),
        "MM_RATELIMITSETTINGS_MAXBURST": str(max_burst),
        "MM_RATELIMITSETTINGS_VARYBYREMOTEADDR": "true",
        "MM_RATELIMITSETTINGS_VARYBYUSER": "true",
    }


def start(extra_env: dict[str, str] | None = None) -> RealServer:
    """Start PostgreSQL if needed and one bootstrapped server with its own database."""
    if build_info() is None:
        raise RealServerError(
            f"the server is not built ({binary_path()} missing): "
            "run `python scripts/real_mattermost.py build` first"
        )
    postgres = start_postgres()
    try:
        ensure_role()
        first_start = ensure_template()
        port = free_port()
        database = f"mmnotify_{port}"
        drop_database(database)  # left over from a killed run; no server listens on the port
        psql(f'CREATE DATABASE "{database}" TEMPLATE "{template_database()}" OWNER {DB_ROLE}')
        run_dir = server_dir() / "runs" / str(port)
        shutil.rmtree(run_dir, ignore_errors=True)
        url = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        proc = _spawn(run_dir, port, database, extra_env or {})
        try:
            version = _wait_ready(proc, url, run_dir, START_TIMEOUT)
            start_seconds = time.monotonic() - started
            started = time.monotonic()
            ids = bootstrap(url)
        except BaseException:
            _terminate(proc)
            drop_database(database)
            raise
        server = RealServer(
            url=url,
            port=port,
            pid=proc.pid,
            database=database,
            run_dir=str(run_dir),
            version=version,
            env=dict(extra_env or {}),
            start_seconds=round(start_seconds, 1),
            bootstrap_seconds=round(time.monotonic() - started, 1),
            postgres_pid=postgres,
            **ids,
        )
    except BaseException:
        if postgres is not None:
            stop_postgres(postgres)
        raise
    log(
        f"mattermost {server.server_version} ready at {url} (pid {proc.pid}): "
        + (f"first start with migrations {first_start} s, " if first_start else "")
        + f"start {server.start_seconds} s, bootstrap {server.bootstrap_seconds} s"
    )
    return server


# ---- CLI -----------------------------------------------------------------------------


def default_state_path() -> Path:
    return server_dir() / "state.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build_cmd = sub.add_parser("build", help="build the pinned server (cached)")
    build_cmd.add_argument("--force", action="store_true", help="build even when cached")
    start_cmd = sub.add_parser("start", help="start and bootstrap a server; write its state")
    start_cmd.add_argument("--state", type=Path, default=None)
    start_cmd.add_argument(
        "--rate-limit", action="store_true", help="with rate limiting on (PerSec 2, MaxBurst 4)"
    )
    stop_cmd = sub.add_parser("stop", help="stop the server a `start` started")
    stop_cmd.add_argument("--state", type=Path, default=None)
    stop_cmd.add_argument("--keep-logs", action="store_true")
    info_cmd = sub.add_parser("info", help="print the pinned versions, cache paths, build record")
    info_cmd.add_argument("--brief", action="store_true", help="one line")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            build(force=args.force)
        elif args.command == "start":
            state = args.state or default_state_path()
            if state.exists() and RealServer.load(state).alive():
                raise RealServerError(f"a server from {state} is still running: stop it first")
            server = start(rate_limit_env() if args.rate_limit else None)
            server.save(state)
            print(f"state: {state}")
            print(f"url: {server.url}")
            print(f"version: {server.version}")
        elif args.command == "stop":
            state = args.state or default_state_path()
            if not state.exists():
                raise RealServerError(f"no state file {state}: nothing to stop")
            RealServer.load(state).stop(keep_logs=args.keep_logs)
            state.unlink()
        elif args.brief:
            built = build_info()
            print(
                f"Mattermost {built['version']} ({SERVER_MODULE} {built['server_v8']}, commit "
                f"{COMMIT}); the cached build took {built['build_seconds']} s"
                if built
                else f"not built yet ({binary_path()} missing)"
            )
        else:
            info = {
                "server_v8": pinned_versions()[SERVER_MODULE],
                "server_public": pinned_versions()[PUBLIC_MODULE],
                "commit": COMMIT,
                "cache": str(server_dir()),
                "binary": str(binary_path()),
                "build": build_info(),
            }
            print(json.dumps(info, indent=2))
    except (RealServerError, subprocess.CalledProcessError) as err:
        log(f"error: {err}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
