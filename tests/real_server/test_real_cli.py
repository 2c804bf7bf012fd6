"""The command line against the real server, run as a user runs it: the installed
``mattermost-notify`` script in a child process with an isolated home."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def cli(real_server: Any, tmp_path: Path) -> Any:
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATTERMOST_NOTIFY_")}
    env.update(
        HOME=str(home),
        MATTERMOST_NOTIFY_CONFIG_DIR=str(home / "config"),
        MATTERMOST_NOTIFY_DATA_DIR=str(home / "data"),
        PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
    )

    def run(*args: str, stdin: str | None = None, code: int = 0) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            ["mattermost-notify", *args],
            cwd=work,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == code, f"{args}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        assert real_server.bot_token not in proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr
        return proc

    run.work = work  # type: ignore[attr-defined]
    run.env = env  # type: ignore[attr-defined]
    return run


def setup_config(cli: Any, server: Any, url: str | None = None) -> None:
    proc = cli(
        "setup", "--url", url or server.url, "--team-name", server.team, "--token", "-",
        stdin=server.bot_token + "\n",
    )  # fmt: skip
    assert "11.4.0" in proc.stdout + proc.stderr


def test_setup_then_test(cli: Any, real_server: Any) -> None:
    setup_config(cli, real_server)
    proc = cli("test")
    assert "Mattermost 11.4.0" in proc.stdout
    assert "@notifybot" in proc.stdout
    assert "16383" in proc.stdout  # the limits the server publishes


def test_test_with_a_wrong_token_exits_1(cli: Any, real_server: Any, tmp_path: Path) -> None:
    config = tmp_path / "wrong.toml"
    cli(
        "setup", "-u", real_server.url, "-n", real_server.team, "-t", "y" * 26, "-o", str(config),
        "--no-check",
    )  # fmt: skip
    proc = cli("test", "--configfile", str(config), code=1)
    assert "401" in proc.stdout + proc.stderr or "token" in (proc.stdout + proc.stderr).lower()


def test_send_and_update_through_a_hook_file(
    cli: Any, real_server: Any, admin: Any, tmp_path: Path
) -> None:
    setup_config(cli, real_server)
    log = tmp_path / "train.log"
    log.write_text("epoch 3: loss 0.1\n")
    hook = cli.work / "backup.msg"
    cli("send", "Backup: running", "--user", "alice", "--files", str(log), "--save-hook", str(hook))
    post = admin.dm_posts("alice")[-1]
    assert post["message"] == "Backup: running"
    assert admin.file_names(post) == ["train.log"]
    cli("update", "Backup: done", "--hook", str(hook))
    post = admin.post(post["id"])
    assert post["message"] == "Backup: done"
    assert post["edit_at"] > 0
    cli("send", "-", "--channel", "bot-public", stdin="from standard input\n")
    channel_posts = admin.channel_posts(real_server.channels["bot-public"])
    assert channel_posts[-1]["message"] == "from standard input"


def test_send_to_a_channel_the_bot_is_not_in_exits_1_with_one_line(
    cli: Any, real_server: Any
) -> None:
    setup_config(cli, real_server)
    proc = cli("send", "hello", "--channel", "public-no-bot", code=1)
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "public-no-bot" in proc.stderr


class Forwarder:
    """A TCP port that refuses connections until ``open()``, then forwards to the server."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.listener: socket.socket | None = None

    def open(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        assert self.listener is not None
        while True:
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for a, b in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()


@pytest.fixture
def forwarder(real_server: Any) -> Iterator[Forwarder]:
    proxy = Forwarder(real_server.port)
    yield proxy
    proxy.close()


def test_outbox_flush_delivers_what_an_outage_left(
    cli: Any, real_server: Any, admin: Any, forwarder: Forwarder
) -> None:
    url = f"http://127.0.0.1:{forwarder.port}"
    code = (
        "import mattermost_notify as notify\n"
        f"notify.wakeup(url={url!r}, token={real_server.bot_token!r}, "
        f"team_name={real_server.team!r})\n"
        "notify.notify('from the outbox', user_name='bob', block=False)\n"
        "notify.flush(timeout=0.5)\n"
    )
    before = len(admin.dm_posts("bob"))
    # no hand-over to a detached sender at exit: this test is about what `outbox flush` does
    # with what is left on disk
    env = {**cli.env, "MATTERMOST_NOTIFY_DETACH_AT_EXIT": "0"}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
    assert "from the outbox" in cli("outbox", "list").stdout
    assert len(admin.dm_posts("bob")) == before
    forwarder.open()  # the server is reachable again
    setup_config(cli, real_server, url=url)
    proc = cli("outbox", "flush")
    assert "1 sent, 0 left" in proc.stdout
    posts = admin.dm_posts("bob")[before:]
    assert [p["message"] for p in posts] == ["from the outbox"]
    assert "empty" in cli("outbox", "list").stdout
