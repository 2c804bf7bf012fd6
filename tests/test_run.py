"""``mattermost-notify run -- COMMAND``: through the installed console script, over real
HTTP against the sandbox (commands that exit 0, exit 3, are killed by SIGKILL, ...)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mattermost_notify.cli import main

SCRIPT = shutil.which("mattermost-notify", path=str(Path(sys.executable).parent))


def _run(sb, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    assert SCRIPT
    proc = subprocess.run(
        [SCRIPT, "run", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ),
    )
    assert sb.token not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def _dm_or_none(sb, user: str = "alice") -> list[str]:
    try:
        return _dm(sb, user)
    except KeyError:  # no direct channel yet
        return []


def _dm(sb, user: str = "alice") -> list[str]:
    return [p.message for p in sb.view.posts(dm_with=user)]


def test_exit_0_posts_done_and_passes_output(mattermost_env):
    proc = _run(mattermost_env, "-u", "alice", "--", "sh", "-c", "echo hello; echo warn >&2")
    assert proc.returncode == 0
    assert proc.stdout == "hello\n"
    assert proc.stderr == "warn\n"
    [message] = _dm(mattermost_env)
    assert "**Done**" in message
    assert "`sh -c 'echo hello; echo warn >&2'`" in message
    # stdout and stderr are read by two threads: their order in the tail is approximate
    assert "\nhello\n" in message and "\nwarn\n" in message
    assert "@" in message and "started" in message  # user@host


def test_exit_3_is_reported_and_kept(mattermost_env):
    proc = _run(mattermost_env, "-u", "alice", "--", "sh", "-c", "echo out; exit 3")
    assert proc.returncode == 3
    [message] = _dm(mattermost_env)
    assert "**Failed**" in message
    assert "**exit status 3**" in message
    assert "```\nout\n```" in message


def test_sigkill_exits_137_and_says_out_of_memory(mattermost_env):
    proc = _run(mattermost_env, "-u", "alice", "--", "sh", "-c", "echo hi; kill -9 $$")
    assert proc.returncode == 137
    assert proc.stdout == "hi\n"
    [message] = _dm(mattermost_env)
    assert "killed by SIGKILL: probably out of memory" in message
    assert "```\nhi\n```" in message


def test_sigterm_to_run_reaches_the_command(mattermost_env):
    assert SCRIPT
    proc = subprocess.Popen(
        [SCRIPT, "run", "-c", "alerts", "--", "sh", "-c", "echo started; sleep 30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "started\n"
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, err
    [post] = mattermost_env.view.posts(channel="alerts")
    assert "killed by SIGTERM" in post.message


def test_tail_keeps_the_last_n_lines(mattermost_env):
    proc = _run(mattermost_env, "-u", "alice", "--tail", "2", "--", "seq", "1", "5")
    assert proc.returncode == 0
    [message] = _dm(mattermost_env)
    assert "```\n4\n5\n```" in message
    assert "\n3\n" not in message
    _run(mattermost_env, "-u", "bob", "--tail", "0", "--", "seq", "1", "5")
    [message] = _dm(mattermost_env, "bob")
    assert "```" not in message


def test_after_skips_short_successes_not_failures(mattermost_env):
    assert _run(mattermost_env, "-u", "alice", "--after", "60", "--", "true").returncode == 0
    assert _run(mattermost_env, "-u", "alice", "--after", "60", "--", "false").returncode == 1
    [message] = _dm(mattermost_env)
    assert "**exit status 1**" in message


def test_mention_and_title(mattermost_env):
    _run(mattermost_env, "-c", "alerts", "--mention", "bob", "-m", "nightly backup", "--", "true")
    [post] = mattermost_env.view.posts(channel="alerts")
    assert "nightly backup" in post.message
    assert "@bob" in post.message


def test_progress_keeps_one_message_updated(mattermost_env, monkeypatch, capfd):
    from mattermost_notify import runner

    monkeypatch.setattr(runner, "PROGRESS_INTERVAL", 0.3)
    code = main(
        ["run", "-u", "alice", "--progress", "--", "sh", "-c", "echo step-1; sleep 1.5; echo end"]
    )
    assert code == 0
    assert "step-1" in capfd.readouterr().out
    posts = mattermost_env.view.posts(dm_with="alice")
    root, reply = posts
    assert reply.root_id == root.id
    assert "**Done**" in reply.message
    assert "**Done**" in root.message  # the final edit
    history = [v.message for v in root.history] if hasattr(root, "history") else []
    edits = [req for req in mattermost_env.view.requests() if req.method == "PUT"]
    assert len(edits) >= 2, history  # at least one progress edit and the final one


def test_command_not_found_exits_127_and_is_reported(mattermost_env):
    proc = _run(mattermost_env, "-u", "alice", "--", "no-such-command-xyz")
    assert proc.returncode == 127
    assert proc.stderr.strip() == "mattermost-notify: run: command not found: no-such-command-xyz"
    [message] = _dm(mattermost_env)
    assert "command not found" in message


def test_a_failed_notification_keeps_the_command_status(mattermost_env):
    proc = _run(mattermost_env, "-u", "nobody-here", "--", "sh", "-c", "echo x; exit 4")
    assert proc.returncode == 4
    lines = [line for line in proc.stderr.splitlines() if line]
    assert len(lines) == 1, proc.stderr
    assert "notification not sent" in lines[0] and "nobody-here" in lines[0]


@pytest.mark.slow
def test_server_down_does_not_hold_the_command(mattermost_env):
    mattermost_env.stop()
    started = time.monotonic()
    proc = _run(mattermost_env, "-u", "alice", "--", "sh", "-c", "exit 5")
    assert proc.returncode == 5
    assert "outbox" in proc.stderr
    assert time.monotonic() - started < 40
    # the server comes back: the detached sender started at exit delivers the message
    mattermost_env.start()
    deadline = time.monotonic() + 60
    while not _dm_or_none(mattermost_env) and time.monotonic() < deadline:
        time.sleep(0.2)
    [message] = _dm(mattermost_env)
    assert "**exit status 5**" in message


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([], "run needs a command"),
        (["--"], "run needs a command"),
        (["-u", "a", "-c", "b", "--", "touch", "MARKER"], "not allowed with argument"),
        (["--tail", "-1", "-u", "a", "--", "touch", "MARKER"], "--tail must be >= 0"),
        (["--after", "-1", "-u", "a", "--", "touch", "MARKER"], "--after must be >= 0"),
    ],
)
def test_usage_mistakes_exit_2_without_running(mattermost_env, tmp_path, args, needle):
    marker = tmp_path / "ran"
    args = [str(marker) if a == "MARKER" else a for a in args]
    proc = _run(mattermost_env, *args)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not marker.exists()


def test_no_configuration_exits_2_before_running(mattermost_env, monkeypatch, tmp_path):
    monkeypatch.delenv("MATTERMOST_NOTIFY_URL")
    marker = tmp_path / "ran"
    proc = _run(mattermost_env, "-u", "alice", "--", "touch", str(marker))
    assert proc.returncode == 2
    assert not marker.exists()
    assert len(proc.stderr.strip().splitlines()) == 1
