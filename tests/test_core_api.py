"""The functional API against the sandbox: wakeup from env / config mapping / the original's
file, auto wake-up, defaults, notify() updating known ids, block=False and flush."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import mattermost_notify as notify
from mattermost_notify import api, errors
from mattermost_notify.sandbox import Sandbox


@pytest.fixture
def clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for var in list(os.environ):
        if var.startswith("MATTERMOST_NOTIFY_"):
            monkeypatch.delenv(var)
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MATTERMOST_NOTIFY_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("MATTERMOST_NOTIFY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    api._reset()
    yield tmp_path
    api._reset()


@pytest.fixture
def env(sb: Sandbox, clean: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MATTERMOST_NOTIFY_URL", sb.url)
    monkeypatch.setenv("MATTERMOST_NOTIFY_TOKEN", sb.token)
    monkeypatch.setenv("MATTERMOST_NOTIFY_TEAM", sb.team)
    return clean


def _dm(sb: Sandbox, user: str = "alice") -> list:
    try:
        return sb.view.posts(dm_with=user)
    except KeyError:
        return []


def test_original_config_file_in_cwd(sb: Sandbox, clean: Path) -> None:
    path = clean / ".mattermost_notify"
    path.write_text(f"URL={sb.url}\nTEAM_NAME={sb.team}\nTOKEN={sb.token}\n")
    path.chmod(0o600)
    client = notify.wakeup()
    assert client.url == sb.url
    notify.notify_channel("from the original's file", "alerts")
    assert sb.view.posts(channel="alerts")[-1].message == "from the original's file"


def test_wakeup_with_config_mapping(sb: Sandbox, clean: Path) -> None:
    notify.wakeup(config={"url": sb.url, "team_name": sb.team, "token": sb.token})
    sent = notify.notify_user("mapping", "bob")
    assert sb.view.post(sent.post_id).message == "mapping"


def test_functions_wake_up_on_their_own(sb: Sandbox, env: Path) -> None:
    sent = notify.notify_user("no wakeup", "alice")
    assert _dm(sb)[-1].id == sent.post_id
    assert notify.get_client() is notify.get_client()


def test_defaults_exclude_each_other_and_are_used(sb: Sandbox, env: Path) -> None:
    with pytest.raises(errors.ConfigurationError, match=r"'alice'.*'alerts'"):
        notify.wakeup(always_send_to_user="alice", always_send_to_channel="alerts")
    notify.wakeup(always_send_to_channel="alerts")
    notify.notify("to the default channel")
    assert sb.view.posts(channel="alerts")[-1].message == "to the default channel"
    with pytest.raises(errors.MessageError, match="no user name given and no default user"):
        notify.notify_user("x")
    notify.wakeup(always_send_to_user="bob")
    before = len(_dm(sb, "bob"))
    notify.notify("to the default user")
    assert [p.message for p in _dm(sb, "bob")][before:] == ["to the default user"]


def test_no_target_is_a_message_error_and_a_value_error(env: Path) -> None:
    notify.wakeup()
    with pytest.raises(ValueError, match="no user or channel given"):
        notify.notify("nowhere")


def test_notify_updates_a_known_id(sb: Sandbox, env: Path) -> None:
    first = notify.notify("v1", user_name="alice", id="api-upd")
    notify.notify("v2", id="api-upd")
    assert sb.view.post(first.post_id).message == "v2"
    notify.send_update("v3", id="api-upd")
    assert sb.view.post(first.post_id).message == "v3"
    with pytest.raises(errors.MessageError, match="unknown message id 'nope'"):
        notify.send_update("x", id="nope")


def test_export_import_in_one_process(sb: Sandbox, env: Path) -> None:
    sent = notify.notify_user("hook", "alice", id="api-hook")
    notify.export_hook("api-hook", env / "h.msg")
    api._reset()
    notify.wakeup()
    with pytest.raises(errors.MessageError):
        notify.send_update("lost", id="api-hook")
    notify.import_hook(env / "h.msg")
    notify.send_update("found", id="api-hook")
    assert sb.view.post(sent.post_id).message == "found"


def test_block_false_goes_through_the_sender(sb: Sandbox, env: Path) -> None:
    ticket = notify.notify("in the background", channel_name="alerts", block=False)
    assert notify.flush(10.0)
    result = ticket.result(5.0)
    assert sb.view.post(result.post_id).message == "in the background"


def test_wakeup_missing_settings_is_a_configuration_error(clean: Path) -> None:
    with pytest.raises(errors.ConfigurationError, match="no Mattermost server URL"):
        notify.wakeup()
    with pytest.raises(errors.ConfigurationError, match="no Mattermost server URL"):
        notify.notify_user("x", "alice")


def test_notify_with_a_queued_id_edits_instead_of_posting_twice(sb: Sandbox, env: Path) -> None:
    # the sandbox holds every request 0.3 s: the first post is still queued or on the
    # wire when the same id comes again
    sb.faults.delay(0.3)
    try:
        notify.notify("queued v1", channel_name="alerts", id="api-queued", block=False)
        notify.notify("queued v2", channel_name="alerts", id="api-queued", block=False)
        assert notify.flush(20.0)
    finally:
        sb.faults.clear()
    mine = [p for p in sb.view.posts(channel="alerts") if p.message.startswith("queued v")]
    assert [p.message for p in mine] == ["queued v2"]
    # a blocking call with the id waits for the queued post, then edits it
    notify.notify("queued v3", channel_name="alerts", id="api-queued2", block=False)
    sent = notify.notify("queued v4", id="api-queued2")
    assert sb.view.post(sent.post_id).message == "queued v4"
    assert [p.message for p in sb.view.posts(channel="alerts")][-1] == "queued v4"


def test_second_wakeup_keeps_hooks_and_hook_store(sb: Sandbox, env: Path) -> None:
    first = notify.wakeup()
    first.hook_store = notify.HookStore(env / "store.json")
    sent = notify.notify_user("kept", "alice", id="api-kept")
    second = notify.wakeup(always_send_to_channel="alerts")
    assert second is notify.current_client() and second is not first
    assert second.hook_store is first.hook_store
    notify.send_update("kept v2", id="api-kept")
    assert sb.view.post(sent.post_id).message == "kept v2"


def test_current_client_never_wakes_up(clean: Path) -> None:
    assert notify.current_client() is None  # no settings: nothing raised, nothing created


def test_forget_drops_memory_and_store(sb: Sandbox, env: Path) -> None:
    client = notify.wakeup()
    client.hook_store = notify.HookStore(env / "store.json")
    first = notify.notify_user("forget me", "alice", id="api-forget")
    assert client.forget("api-forget") is True
    assert "api-forget" not in client.hook_store and not client.has_message("api-forget")
    assert client.forget("api-forget") is False
    second = notify.notify_user("new message", "alice", id="api-forget")
    assert second.post_id != first.post_id
    assert sb.view.post(first.post_id).message == "forget me"


def test_flush_waits_for_progress_messages(sb: Sandbox, env: Path) -> None:
    notify.wakeup()
    for _ in notify.progress(range(3), desc="flushed", channel="alerts", local=False):
        pass
    assert notify.flush(20.0)
    assert "flushed" in sb.view.posts(channel="alerts")[-1].message


def test_threads_waking_up_at_once_share_one_client(sb: Sandbox, env: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        clients = list(pool.map(lambda _: notify.get_client(), range(8)))
    assert len({id(c) for c in clients}) == 1 and clients[0] is notify.current_client()
