"""``notify.on_done``: decorator and context manager, over real HTTP against the sandbox."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
import warnings

import pytest

import mattermost_notify as notify
from mattermost_notify.errors import MattermostNotifyWarning, MessageError


def _thread(sb, user: str = "alice"):
    notify.flush(30)
    try:
        return sb.view.posts(dm_with=user)
    except KeyError:  # no direct channel yet: nothing was sent to the user
        assert sb.view.posts() == []
        return []


def test_decorator_success_posts_running_then_a_done_reply(mattermost_env):
    @notify.on_done(user="alice")
    def train(epochs):
        return {"epochs": epochs, "loss": 0.25}

    assert train(3) == {"epochs": 3, "loss": 0.25}
    root, reply = _thread(mattermost_env)
    assert reply.root_id == root.id
    assert "**Done**" in reply.message
    assert "`train()`" in reply.message
    assert "Result: `{'epochs': 3, 'loss': 0.25}`" in reply.message
    # the start post was edited to its final state
    assert "**Done**" in root.message and "finished" in root.message


def test_decorator_failure_reraises_the_same_exception(mattermost_env):
    error = ValueError("bad batch 17")

    @notify.on_done(user="alice", title="training run")
    def train():
        raise error

    with pytest.raises(ValueError) as info:
        train()
    assert info.value is error
    _root, reply = _thread(mattermost_env)
    assert "**Failed**" in reply.message and "training run" in reply.message
    assert "**ValueError: bad batch 17**" in reply.message
    assert "raise error" in reply.message  # the traceback's tail


def test_decorator_keyboard_interrupt_is_reported_and_reraised(mattermost_env):
    @notify.on_done(user="alice")
    def loop():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        loop()
    _root, reply = _thread(mattermost_env)
    assert "**Interrupted**" in reply.message


def test_context_manager_and_bare_decorator(mattermost_env):
    notify.wakeup(always_send_to_user="bob")

    @notify.on_done
    def step():
        return 7

    assert step() == 7
    with pytest.raises(ZeroDivisionError), notify.on_done(channel="alerts", mention="carol"):
        1 / 0  # noqa: B018
    notify.flush(30)
    _root, reply = mattermost_env.view.posts(dm_with="bob")
    assert "Result: `7`" in reply.message
    root, reply = mattermost_env.view.posts(channel="alerts")
    assert "test_on_done.py:" in root.message  # where the with block is
    assert "ZeroDivisionError" in reply.message
    assert "@carol" in reply.message


def test_async_function(mattermost_env):
    @notify.on_done(user="alice")
    async def fetch():
        await asyncio.sleep(0)
        return "ok"

    assert asyncio.run(fetch()) == "ok"
    _root, reply = _thread(mattermost_env)
    assert "Result: `'ok'`" in reply.message


def test_after_sends_nothing_for_a_short_job(mattermost_env):
    @notify.on_done(user="alice", after=30)
    def quick():
        return 1

    assert quick() == 1
    assert _thread(mattermost_env) == []


def test_failed_send_does_not_change_result_or_exception(mattermost_env):
    @notify.on_done(user="no-such-user")
    def ok():
        return 42

    @notify.on_done(user="no-such-user")
    def bad():
        raise KeyError("k")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert ok() == 42
        with pytest.raises(KeyError):
            bad()
        notify.flush(30)
    assert any(issubclass(w.category, MattermostNotifyWarning) for w in caught)


def test_server_down_does_not_block_or_raise(mattermost_env):
    mattermost_env.stop()

    @notify.on_done(user="alice")
    def ok():
        return 1

    started = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ok() == 1
    assert time.monotonic() - started < 5  # nothing waited for the server
    # the server comes back: what was queued arrives (and no request outlives this test)
    mattermost_env.start()
    assert notify.flush(90)
    assert len(mattermost_env.view.posts(dm_with="alice")) == 2


def test_unconfigured_is_a_warning_not_an_error(monkeypatch, tmp_path):
    for name in list(os.environ):  # no setting at all (a config file or webhook URL included)
        if name.startswith("MATTERMOST_NOTIFY_") and not name.endswith("_DIR"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MATTERMOST_NOTIFY_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.chdir(tmp_path)
    from mattermost_notify import api

    api._reset()

    @notify.on_done(user="alice")
    def ok():
        return 5

    with pytest.warns(MattermostNotifyWarning, match="not sent"):
        assert ok() == 5


def test_unconfigured_says_it_once_per_job(tmp_path):
    """No configuration and no target: one warning per job (not "no mention" and "not
    sent" for the start, the reply and the edit), as a user's script shows it."""
    script = tmp_path / "job.py"
    script.write_text(
        textwrap.dedent(
            """
            import time
            import mattermost_notify as notify

            @notify.on_done
            def train():
                return 1

            train()
            with notify.on_done(channel="alerts", mention="alice"):
                pass
            with notify.on_done(after=0.01):  # its start is posted from a timer
                time.sleep(0.2)
            """
        ),
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MATTERMOST_", "XDG_", "HOME"))}
    env.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "MattermostNotifyWarning" in line]
    assert len(lines) == 3, proc.stderr
    assert all("not sent: no Mattermost server URL configured" in line for line in lines)
    assert "no mention" not in proc.stderr


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"user": "a", "channel": "b"}, "not both"),
        ({"user": ""}, "user must be a non-empty string"),
        ({"after": -1}, "after must be seconds >= 0"),
        ({"after": "10"}, "after must be seconds >= 0"),
        ({"mention": ["ok", "not a name!"]}, "mention"),
    ],
)
def test_bad_arguments_raise_at_once(kwargs, needle):
    with pytest.raises(Exception, match=needle) as info:
        notify.on_done(**kwargs)
    assert isinstance(info.value, notify.MattermostNotifyError)


def test_decorating_a_non_function_is_an_error():
    with pytest.raises(MessageError, match="decorates a function"):
        notify.on_done(user="a")(42)


def test_rank_other_than_zero_sends_only_failures_once_per_host(mattermost_env, monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "run-under-test")

    @notify.on_done(user="alice", title="ddp training")
    def work(fail):
        if fail:
            raise RuntimeError("NCCL timeout")
        return 1

    assert work(False) == 1
    assert _thread(mattermost_env) == []
    for _ in range(2):  # two ranks of this host failing: one message
        with pytest.raises(RuntimeError):
            work(True)
    [message] = [p.message for p in _thread(mattermost_env)]
    assert "ddp training (rank 3)" in message
    assert "NCCL timeout" in message


def test_rank_zero_sends(mattermost_env, monkeypatch):
    monkeypatch.setenv("RANK", "0")

    @notify.on_done(user="alice")
    def work():
        return 1

    work()
    assert len(_thread(mattermost_env)) == 2
