"""The id cache on disk, over real HTTP against the sandbox: requests per operation from
fresh processes, stale entries (archived, deleted and re-created channels, renamed users),
the file itself (0600, no token, bounded, corrupt, concurrent processes) and turning it off."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mattermost_notify import errors
from mattermost_notify.client import Notify
from mattermost_notify.idcache import MAX_ENTRIES, IdCache, cache_dir
from mattermost_notify.sandbox import Sandbox


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    with Sandbox() as server:
        yield server


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv("MATTERMOST_NOTIFY_CACHE_DIR", str(directory))
    return directory


def _calls(sb: Sandbox) -> list[tuple[str, str]]:
    time.sleep(0.05)  # the sandbox logs a request just after answering it
    return [(r.method, r.route or r.path) for r in sb.view.requests()]


def _clear(sb: Sandbox) -> None:
    time.sleep(0.05)
    sb.view.clear_requests()


def _client(sb: Sandbox, **kw: object) -> Notify:
    return Notify(token=sb.token, url=sb.url, team_name=sb.team, timeout=(2.0, 5.0), **kw)


def _env(sb: Sandbox, cache: Path, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATTERMOST_NOTIFY_")}
    env.update(
        MATTERMOST_NOTIFY_URL=sb.url,
        MATTERMOST_NOTIFY_TOKEN=sb.token,
        MATTERMOST_NOTIFY_TEAM=sb.team,
        MATTERMOST_NOTIFY_CACHE_DIR=str(cache),
        MATTERMOST_NOTIFY_DATA_DIR=str(tmp_path / "data"),
        MATTERMOST_NOTIFY_CONFIG_DIR=str(tmp_path / "config"),
        HOME=str(tmp_path),
    )
    return env


def _python(code: str, env: dict[str, str], cwd: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "mattermost_notify.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done


SEND = """
import mattermost_notify as notify
notify.wakeup()
notify.notify_user("dm {n}", "alice")
notify.notify_channel("channel {n}", "alerts")
"""


# ---------------------------------------------------------------- requests per operation


def test_fresh_processes_with_a_warm_cache_send_in_one_request(
    sb: Sandbox, cache: Path, tmp_path: Path
) -> None:
    env = _env(sb, cache, tmp_path)
    _python(SEND.format(n=1), env, tmp_path)  # cold: looks everything up once
    _clear(sb)
    _python(SEND.format(n=2), env, tmp_path)
    assert _calls(sb) == [("POST", "/api/v4/posts"), ("POST", "/api/v4/posts")]
    assert [p.message for p in sb.view.posts(dm_with="alice")] == ["dm 1", "dm 2"]
    assert [p.message for p in sb.view.posts(channel="alerts")] == ["channel 1", "channel 2"]


def test_cold_process_without_cache_looks_up_then_one_request(
    sb: Sandbox, cache: Path, tmp_path: Path
) -> None:
    env = _env(sb, cache, tmp_path)
    env["MATTERMOST_NOTIFY_ID_CACHE"] = "false"
    _python(SEND.format(n=1), env, tmp_path)
    _clear(sb)
    _python(SEND.format(n=2), env, tmp_path)
    # nothing was kept: the same look-ups again (users/me, the user, the DM, the channel)
    assert len(_calls(sb)) == 6
    assert not cache.exists()


@pytest.mark.slow
def test_cli_send_update_and_files_with_a_warm_cache(
    sb: Sandbox, cache: Path, tmp_path: Path
) -> None:
    env = _env(sb, cache, tmp_path)
    files = []
    for i in range(3):
        path = tmp_path / f"f{i}.txt"
        path.write_text(f"file {i}\n")
        files.append(str(path))
    hook = tmp_path / "run.msg"
    _cli(["send", "warm up", "--user", "alice", "--files", files[0]], env, tmp_path)
    _cli(["send", "warm up", "--channel", "alerts", "--save-hook", str(hook)], env, tmp_path)
    _clear(sb)
    # the first update ever also reads the server's edit time limit (then cached)
    _cli(["update", "warm up", "--hook", str(hook)], env, tmp_path)
    assert _calls(sb) == [
        ("GET", "/api/v4/config/client"),
        ("PUT", "/api/v4/posts/{post_id}/patch"),
    ]
    _clear(sb)
    _cli(["send", "to alice", "--user", "alice"], env, tmp_path)
    assert _calls(sb) == [("POST", "/api/v4/posts")]
    _clear(sb)
    _cli(["send", "running", "--channel", "alerts", "--save-hook", str(hook)], env, tmp_path)
    assert _calls(sb) == [("POST", "/api/v4/posts")]
    _clear(sb)
    _cli(["update", "done", "--hook", str(hook)], env, tmp_path)
    assert _calls(sb) == [("PUT", "/api/v4/posts/{post_id}/patch")]
    _clear(sb)
    _cli(["send", "three files", "--channel", "alerts", "--files", *files], env, tmp_path)
    assert _calls(sb) == [("POST", "/api/v4/files"), ("POST", "/api/v4/posts")]
    [post] = [p for p in sb.view.posts(channel="alerts") if p.message == "three files"]
    assert len(post.file_ids) == 3
    assert [p.message for p in sb.view.posts(channel="alerts")][:3] == [
        "warm up",
        "done",
        "three files",
    ]


def test_first_files_message_needs_no_config_request(sb: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("a\n")
    with _client(sb) as client:
        client.send_to_channel("warm", "alerts")
        _clear(sb)
        client.send_to_channel("with a file", "alerts", files=[str(path)])
    assert _calls(sb) == [("POST", "/api/v4/files"), ("POST", "/api/v4/posts")]


def test_update_through_a_hook_file_needs_no_users_me(
    sb: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = tmp_path / "m.msg"
    with _client(sb, id_cache=False) as client:
        client.send_to_channel("v1", "alerts", id="m")
        client.write_message_hook_to_file("m", hook)
    _clear(sb)
    with _client(sb, id_cache=False) as fresh:
        fresh.read_message_hook_from_file(hook)
        fresh.send_update("v2", id="m")
    # no cache: the edit time limit is read once (no users/me for the hook's check)
    assert _calls(sb) == [
        ("GET", "/api/v4/config/client"),
        ("PUT", "/api/v4/posts/{post_id}/patch"),
    ]
    _clear(sb)
    with _client(sb) as warm:
        warm.read_message_hook_from_file(hook)
        warm.send_update("v3", id="m")  # fills the id cache (limits)
    _clear(sb)
    with _client(sb) as fresh:
        fresh.read_message_hook_from_file(hook)
        fresh.send_update("v4", id="m")
    assert _calls(sb) == [("PUT", "/api/v4/posts/{post_id}/patch")]


def test_hook_of_another_bot_is_refused_with_or_without_a_known_bot_id(
    sb: Sandbox, tmp_path: Path
) -> None:
    hook = tmp_path / "m.msg"
    other = Notify(token=sb.user_token("bob"), url=sb.url, team_name=sb.team, id_cache=False)
    with other:
        other.send_to_channel("bob's", "alerts", id="m")
        other.write_message_hook_to_file("m", hook)
    # the bot's id is not known: no users/me for the check, the server refuses the edit
    with _client(sb, id_cache=False) as cold:
        cold.read_message_hook_from_file(hook)
        with pytest.raises(errors.PermissionDeniedError, match="not the bot's post"):
            cold.send_update("hijacked", id="m")
    # the bot's id is cached: the hook is refused before any request
    with _client(sb) as warm:
        warm.send_to_channel("warm up", "alerts")
    _clear(sb)
    with _client(sb) as client, pytest.raises(errors.HookError):
        client.read_message_hook_from_file(hook)
    assert _calls(sb) == []
    assert sb.view.posts(channel="alerts")[0].message == "bob's"


# ---------------------------------------------------------------- stale entries


def test_channel_archived_and_recreated_still_delivers_with_one_extra_look_up(
    sb: Sandbox, cache: Path
) -> None:
    with _client(sb) as client:
        client.send_to_channel("before", "alerts")
    old = sb.archive_channel("alerts")
    new = sb.create_channel("alerts")
    _clear(sb)
    with _client(sb) as fresh:
        sent = fresh.send_to_channel("after", "alerts")
    assert sent.channel_id == new != old
    assert _calls(sb) == [
        ("POST", "/api/v4/posts"),  # refused: 400 can_not_post_to_deleted
        ("GET", "/api/v4/teams/name/{team_name}/channels/name/{channel_name}"),
        ("POST", "/api/v4/posts"),
    ]
    assert [p.message for p in sb.view.posts(channel_id=new)] == ["after"]
    _clear(sb)
    with _client(sb) as again:  # the new id was cached
        again.send_to_channel("again", "alerts")
    assert _calls(sb) == [("POST", "/api/v4/posts")]


def test_channel_deleted_and_recreated_with_files_still_delivers(
    sb: Sandbox, cache: Path, tmp_path: Path
) -> None:
    path = tmp_path / "a.txt"
    path.write_text("a\n")
    with _client(sb) as client:
        client.send_to_channel("before", "alerts")
    sb.archive_channel("alerts", permanent=True)
    new = sb.create_channel("alerts")
    with _client(sb) as fresh:
        sent = fresh.send_to_channel("after", "alerts", files=[str(path)])
    assert sent.channel_id == new
    [post] = sb.view.posts(channel_id=new)
    assert post.message == "after"
    assert len(post.file_ids) == 1


def test_in_memory_ids_are_refreshed_too(sb: Sandbox, cache: Path) -> None:
    with _client(sb, id_cache=False) as client:
        client.send_to_channel("before", "alerts")
        sb.archive_channel("alerts")
        new = sb.create_channel("alerts")
        assert client.send_to_channel("after", "alerts").channel_id == new


def test_refused_channel_that_did_not_change_raises_as_without_cache(
    sb: Sandbox, cache: Path
) -> None:
    with _client(sb) as client:
        client.send_to_channel("before", "alerts")
    sb.remove_from_team(sb.bot_username)
    _clear(sb)
    with _client(sb) as fresh, pytest.raises(errors.PermissionDeniedError):
        fresh.send_to_channel("after", "alerts")
    calls = _calls(sb)
    assert calls[0] == ("POST", "/api/v4/posts")
    assert calls.count(("POST", "/api/v4/posts")) == 1  # never posted twice to a refused id


def test_user_renamed_still_delivers_with_one_extra_look_up(sb: Sandbox, cache: Path) -> None:
    with _client(sb) as client:
        first = client.send_to_user("before", "alice")
    sb.rename_user("alice", "alice.smith")
    _clear(sb)
    with _client(sb) as fresh:
        sent = fresh.send_to_user("after", "alice.smith")
    # the new name is looked up once; the direct channel with that user id is cached
    assert _calls(sb) == [("GET", "/api/v4/users/username/{username}"), ("POST", "/api/v4/posts")]
    assert sent.channel_id == first.channel_id
    assert [p.message for p in sb.view.posts(dm_with="alice.smith")] == ["before", "after"]


def test_a_name_given_to_another_user_is_looked_up_again_after_max_age(
    sb: Sandbox, cache: Path
) -> None:
    with _client(sb) as client:
        client.send_to_user("for the first alice", "alice")
    sb.rename_user("alice", "alice.old")
    sb.create_user("alice")
    # within NAME_MAX_AGE the cached name still points to the renamed user (documented);
    # once it is older, the name is looked up again and the new alice gets the message
    with _client(sb, id_cache=IdCache(sb.url, sb.token, max_age=0.0)) as late:
        late.send_to_user("for the new alice", "alice")
    assert [p.message for p in sb.view.posts(dm_with="alice")] == ["for the new alice"]
    assert [p.message for p in sb.view.posts(dm_with="alice.old")] == ["for the first alice"]


def test_user_deleted_gives_the_same_error_as_without_cache(sb: Sandbox, cache: Path) -> None:
    with _client(sb) as client:
        client.send_to_user("before", "alice")
    sb.rename_user("alice", "gone")
    with _client(sb) as fresh, pytest.raises(errors.NotFoundError, match="user 'alice'"):
        # the cached DM still works for the renamed user: ids do not change; only when
        # the cache entry is dropped does the name fail like without a cache
        fresh.id_cache.drop("user:alice")
        fresh.send_to_user("after", "alice")


# ---------------------------------------------------------------- the file


def test_cache_file_is_private_hashed_and_token_free(sb: Sandbox, cache: Path) -> None:
    with _client(sb) as client:
        client.send_to_user("x", "alice")
        client.send_to_channel("x", "alerts")
        path = client.id_cache.path
    assert path.parent == cache == cache_dir()
    assert sb.token not in path.name
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    text = path.read_text()
    assert sb.token not in text
    entries = json.loads(text)["entries"]
    assert {"bot", "user:alice", f"channel:{sb.team}/alerts"} <= set(entries)
    assert any(k.startswith("dm:") for k in entries)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{not json",
        b'{"format": 1, "url": "elsewhere", "entries": {}}',
        b"\xff\xfe" * 10,
        b'{"format": 1, "url": "%s", "entries": {"bot": "no list"}}',
    ],
)
def test_corrupt_cache_file_is_ignored_and_rewritten(
    sb: Sandbox, cache: Path, content: bytes
) -> None:
    probe = IdCache(sb.url, sb.token)
    probe.path.parent.mkdir(parents=True, exist_ok=True)
    probe.path.write_bytes(content.replace(b"%s", sb.url.encode()))
    with _client(sb) as client:
        client.send_to_channel("x", "alerts")
    assert IdCache(sb.url, sb.token).get(f"channel:{sb.team}/alerts")


def test_oversized_cache_file_is_ignored(sb: Sandbox, cache: Path) -> None:
    probe = IdCache(sb.url, sb.token)
    probe.path.parent.mkdir(parents=True, exist_ok=True)
    probe.path.write_bytes(b" " * (2 * 1024 * 1024))
    with _client(sb) as client:
        client.send_to_channel("x", "alerts")
    assert probe.path.stat().st_size < 10_000


def test_cache_is_bounded(sb: Sandbox, cache: Path) -> None:
    store = IdCache(sb.url, sb.token)
    # a full cache in one write (u0 the oldest), then 50 more through put()
    now = time.time()
    store._write({f"user:u{i}": [f"id{i}", now - MAX_ENTRIES + i] for i in range(MAX_ENTRIES)}, ())
    assert len(json.loads(store.path.read_text())["entries"]) == MAX_ENTRIES
    for i in range(MAX_ENTRIES, MAX_ENTRIES + 50):
        store._entries = None  # force the merge path through the file
        store.put(f"user:u{i}", f"id{i}")
    entries = json.loads(store.path.read_text())["entries"]
    assert len(entries) == MAX_ENTRIES
    assert f"user:u{MAX_ENTRIES + 49}" in entries
    assert "user:u0" not in entries and "user:u49" not in entries  # the oldest went first
    assert "user:u50" in entries


CONCURRENT = """
import sys
from mattermost_notify.idcache import IdCache
cache = IdCache(sys.argv[1], sys.argv[2])
for i in range(40):
    cache.put(f"user:p{sys.argv[3]}-{i}", f"id-{sys.argv[3]}-{i}")
"""


def test_concurrent_processes_keep_each_others_entries(sb: Sandbox, cache: Path) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT, sb.url, sb.token, str(n)], env=os.environ.copy()
        )
        for n in range(4)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    entries = json.loads(IdCache(sb.url, sb.token).path.read_text())["entries"]
    assert {f"user:p{n}-{i}" for n in range(4) for i in range(40)} <= set(entries)


def test_unwritable_cache_dir_never_fails_a_send(
    sb: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("MATTERMOST_NOTIFY_CACHE_DIR", str(blocker / "cache"))
    with _client(sb) as client:
        client.send_to_user("x", "alice")
    assert [p.message for p in sb.view.posts(dm_with="alice")] == ["x"]


def test_cli_no_cache_writes_nothing(sb: Sandbox, cache: Path, tmp_path: Path) -> None:
    env = _env(sb, cache, tmp_path)
    _cli(["send", "x", "--channel", "alerts", "--no-cache"], env, tmp_path)
    assert not cache.exists()
    _cli(["send", "y", "--channel", "alerts"], env, tmp_path)
    assert any(cache.iterdir())


def test_id_cache_setting_from_a_config_file(sb: Sandbox, cache: Path, tmp_path: Path) -> None:
    from mattermost_notify.config import load_settings

    config = tmp_path / "c.toml"
    config.write_text(f'url = "{sb.url}"\ntoken = "{sb.token}"\nid_cache = false\n')
    config.chmod(0o600)
    settings = load_settings(configfile=config)
    assert settings.id_cache is False
    with Notify(**settings.client_kwargs()) as client:
        assert not client.id_cache.enabled
    with pytest.raises(errors.ConfigurationError, match="id_cache"):
        load_settings(configfile=config, id_cache="maybe")
