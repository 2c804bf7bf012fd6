"""Delivery across processes, over real HTTP against the sandbox.

* The outbox survives a process exit: a process sends while the server is
  down and exits; the next process delivers, in order, exactly once.
* A replay of posts that the server applied but never answered (dropped
  after applying) inside the 30 s window does not double them.
* ``mattermost-notify outbox list|flush|drop``.
* 4 processes sending and updating messages whose hooks live in one
  notebook-keyed HookStore: nothing corrupted or lost.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from polling import wait_until

import mattermost_notify as mn
from mattermost_notify import outbox
from mattermost_notify.hooks import HookStore
from mattermost_notify.sandbox import Sandbox

CLI = [sys.executable, "-m", "mattermost_notify.cli"]


def run_py(code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


SEND_THEN_EXIT = """
    import mattermost_notify as mn
    client = mn.wakeup()
    client.sender.exit_timeout = {exit_timeout}
    client.sender.hand_over_at_exit = False  # what is left stays for the next process
    for i in range(10):
        target = {{"channel": "alerts"}} if i % 2 else {{"user": "alice"}}
        client.sender.post(f"{prefix}{{i}}", **target)
    client.sender.post("{prefix}progress 0", channel="alerts", id="{prefix}bar")
    client.sender.update("{prefix}bar", "{prefix}progress 100")
    print("queued", flush=True)
    # no flush, no close: the interpreter exits and its atexit hook runs
"""


def expected_alerts(prefix: str) -> list[str]:
    return [f"{prefix}{i}" for i in range(1, 10, 2)] + [f"{prefix}progress 100"]


def expected_alice(prefix: str) -> list[str]:
    return [f"{prefix}{i}" for i in range(0, 10, 2)]


def server_messages(sb: Sandbox, prefix: str) -> tuple[list[str], list[str]]:
    alerts = [p.message for p in sb.view.posts("alerts") if p.message.startswith(prefix)]
    try:
        dm = sb.view.posts(dm_with="alice")
    except KeyError:  # no DM channel yet
        dm = []
    alice = [p.message for p in dm if p.message.startswith(prefix)]
    return alerts, alice


def leave_messages_in_outbox(sb: Sandbox, prefix: str) -> None:
    """A process queues 11 messages + 1 update while the server is down, then exits."""
    sb.stop()
    try:
        run_py(SEND_THEN_EXIT.format(prefix=prefix, exit_timeout=1.0))
    finally:
        sb.start()
    left = outbox.list_entries()
    assert len(left) == 12, left
    assert not any(e.active for e in left)
    assert [e.kind for e in left] == ["post"] * 11 + ["update"]
    assert server_messages(sb, prefix) == ([], [])


def test_outbox_survives_exit_and_the_next_sender_delivers_first(mattermost_env: Sandbox) -> None:
    sb = mattermost_env
    leave_messages_in_outbox(sb, "exit-")
    run_py(
        """
        import mattermost_notify as mn
        mn.wakeup()
        mn.notify("exit-after restart", channel_name="alerts", block=False)
        assert mn.flush(60)
        """
    )
    alerts, alice = server_messages(sb, "exit-")
    assert alerts == [*expected_alerts("exit-"), "exit-after restart"]
    assert alice == expected_alice("exit-")
    assert outbox.list_entries() == []


def test_outbox_is_delivered_by_the_next_process_that_wakes_up(mattermost_env: Sandbox) -> None:
    sb = mattermost_env
    leave_messages_in_outbox(sb, "wake-")
    run_py(
        """
        import mattermost_notify as mn
        mn.wakeup()
        assert mn.flush(60)
        """
    )
    alerts, alice = server_messages(sb, "wake-")
    assert (alerts, alice) == (expected_alerts("wake-"), expected_alice("wake-"))


def test_replay_inside_the_window_of_posts_applied_but_unanswered_is_not_doubled(
    mattermost_env: Sandbox,
) -> None:
    sb = mattermost_env
    # The server applies every post but drops the connection before answering:
    # the first process never learns that its posts arrived, and exits.
    sb.faults.fail_fraction(1.0, modes=("drop_after",), path_prefix="/api/v4/posts")
    run_py(
        """
        import mattermost_notify as mn
        from mattermost_notify.transport import default_retry
        client = mn.Notify(
            mn.load_settings().token, mn.load_settings().url, mn.load_settings().team_name,
            retry=default_retry().new(total=1, backoff_factor=0.01),
        )
        client.sender.exit_timeout = 1.0
        for i in range(5):
            client.sender.post(f"ghost-{i}", channel="alerts")
        """
    )
    sb.faults.clear()
    left = outbox.list_entries()
    assert len(left) == 5
    assert left[0].attempts > 0  # the first post was tried (repeatedly, same pending id)...
    # ... and applied once, though the sender never learnt it; the others wait behind it
    alerts, _ = server_messages(sb, "ghost-")
    assert alerts == ["ghost-0"]
    proc = subprocess.run(
        [*CLI, "outbox", "flush", "--timeout", "30"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    alerts, _ = server_messages(sb, "ghost-")
    assert alerts == [f"ghost-{i}" for i in range(5)]  # replayed inside 30 s: no double
    assert outbox.list_entries() == []


@pytest.mark.slow
def test_cli_outbox_list_flush_drop(mattermost_env: Sandbox) -> None:
    sb = mattermost_env
    leave_messages_in_outbox(sb, "cli-")
    listing = subprocess.run([*CLI, "outbox", "list"], capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0, listing.stderr
    for i in range(10):
        assert f"cli-{i}" in listing.stdout
    flush = subprocess.run(
        [*CLI, "outbox", "flush", "--timeout", "60"], capture_output=True, text=True, timeout=120
    )
    assert flush.returncode == 0, flush.stdout + flush.stderr
    assert "12 message(s) were waiting" in flush.stdout and "12 sent, 0 left" in flush.stdout
    alerts, alice = server_messages(sb, "cli-")
    assert (alerts, alice) == (expected_alerts("cli-"), expected_alice("cli-"))
    assert outbox.list_entries() == []
    # drop: what is left by a dead process can be thrown away
    leave_messages_in_outbox(sb, "drop-")
    drop = subprocess.run(
        [*CLI, "outbox", "drop", "--all"], capture_output=True, text=True, timeout=60
    )
    assert drop.returncode == 0, drop.stderr
    assert "12" in drop.stdout
    assert outbox.list_entries() == []


def test_flush_outbox_counts_what_it_delivered(mattermost_env: Sandbox) -> None:
    sb = mattermost_env
    leave_messages_in_outbox(sb, "count-")
    s = mn.load_settings()
    with mn.Notify(s.token, s.url, s.team_name) as client:
        assert client.sender.deliver_outbox(60) == (12, 0)
        assert client.sender.deliver_outbox(5) == (0, 0)
    alerts, alice = server_messages(sb, "count-")
    assert (alerts, alice) == (expected_alerts("count-"), expected_alice("count-"))


HOOK_WORKER = """
    import json, os, sys, time
    from pathlib import Path
    from mattermost_notify import Notify, load_settings
    from mattermost_notify.hooks import HookStore

    k, n, barrier = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    s = load_settings()
    store = HookStore.for_key("notebooks/shared.ipynb")
    with Notify(s.token, s.url, s.team_name, hook_store=store) as client:
        for i in range(n):
            client.send(f"hook {k}-{i}", channel="alerts", id=f"p{k}-{i}")
    (barrier / f"sent-{k}").touch()
    while len(list(barrier.glob("sent-*"))) < 4:
        time.sleep(0.05)
    # a fresh client knows nothing in memory: every id comes from the shared store
    other = (k + 1) % 4
    with Notify(s.token, s.url, s.team_name, hook_store=store) as client:
        for i in range(n):
            client.send_update(f"hook {other}-{i} edited by {k}", f"p{other}-{i}")
"""


@pytest.mark.slow
def test_4_processes_share_one_notebook_hook_store(mattermost_env: Sandbox, tmp_path: Path) -> None:
    sb = mattermost_env
    n = 25
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(HOOK_WORKER), str(k), str(n), str(barrier)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(4)
    ]
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, out + err
    store = HookStore.for_key("notebooks/shared.ipynb")
    hooks = {h.id: h for h in store.list()}
    assert sorted(hooks) == sorted(f"p{k}-{i}" for k in range(4) for i in range(n))
    json.loads(Path(store.path).read_text())  # one valid JSON document
    for k in range(4):
        for i in range(n):
            post = sb.view.post(hooks[f"p{k}-{i}"].post_id)
            assert post.message == f"hook {k}-{i} edited by {(k - 1) % 4}"
            assert [e.message for e in post.edits] == [f"hook {k}-{i}"]
    alerts = [p.message for p in sb.view.posts("alerts") if p.message.startswith("hook ")]
    assert len(alerts) == 4 * n  # nothing sent twice


def test_close_while_the_outbox_thread_writes_leaves_one_file_per_message(
    mattermost_env: Sandbox,
) -> None:
    # close() writes what the outbox thread has not written yet; both once wrote a
    # message that neither had written when they looked, under two names: the next
    # process then delivered it twice.
    sb = mattermost_env
    sb.stop()
    try:
        for round_ in range(5):
            client = mn.Notify(sb.token, sb.url, sb.team)
            client.sender.hand_over_at_exit = False
            for i in range(200):
                client.sender.post(f"dup-{round_}-{i}", channel="alerts")
            client.sender.close(timeout=0)  # at once: the outbox thread is still writing
            prefix = f"dup-{round_}-"
            messages = [e.message for e in outbox.list_entries() if e.message.startswith(prefix)]
            assert sorted(messages) == sorted(f"{prefix}{i}" for i in range(200))
    finally:
        sb.start()


def test_after_close_a_late_outbox_thread_opens_no_new_spool(mattermost_env: Sandbox) -> None:
    """close() writes the queue and lets go of its outbox; an outbox thread that runs only
    afterwards (a loaded machine) once opened a new spool there, held by this live
    process. Everything close() left must be the next process's at once, in one file."""
    import threading

    sb = mattermost_env
    sb.stop()  # nothing is delivered: the message stays queued
    client = mn.Notify(sb.token, sb.url, sb.team)
    sender = client.sender
    sender.hand_over_at_exit = False
    assert sender.flush(30)  # the outbox thread has opened this sender's spool

    arrived, go = threading.Event(), threading.Event()
    disk = sender._disk
    stopped: list[threading.Thread] = []  # this sender's outbox thread (other tests' idle
    # senders may have theirs in this process too)

    class LateDisk:
        """The outbox thread stops at the disk until ``go``; other threads pass."""

        def __enter__(self) -> object:
            if threading.current_thread().name == "mattermost-notify-outbox":
                stopped.append(threading.current_thread())
                arrived.set()
                go.wait(30)
            return disk.__enter__()

        def __exit__(self, *exc: object) -> None:
            disk.__exit__(*exc)

    sender._disk = LateDisk()  # type: ignore[assignment]
    try:
        sender.post("left at close", channel="alerts")
        assert arrived.wait(30)  # the outbox thread has seen the message, not written it
        [outbox_thread] = stopped
        client.close(timeout=0)  # the sender writes it itself and lets go of the spool
        # (its last worker lets go of it when it stops, a moment later)
        wait_until(
            lambda: [e for e in outbox.list_entries() if not e.active], 30, "the spool let go"
        )
    finally:
        go.set()
        client.close(timeout=0)  # also when a check failed: no sender of this test lives on
    outbox_thread.join(30)
    assert not outbox_thread.is_alive()
    spools = [p.name for p in outbox.outbox_dir().iterdir() if p.is_dir()]
    assert len(spools) == 1, spools  # no new (empty, locked) spool of this process
    [entry] = outbox.list_entries()
    assert entry.message == "left at close" and not entry.active  # adoptable now
    sb.start()
    with mn.Notify(sb.token, sb.url, sb.team) as next_client:
        assert next_client.sender.deliver_outbox(30) == (1, 0)
    assert [p.message for p in sb.view.posts(channel="alerts")] == ["left at close"]
