"""Message hooks: JSON round trip, 0600, the original 4-line format, bad files, HookStore."""

from __future__ import annotations

import json
import multiprocessing
import stat
from pathlib import Path

import pytest

from mattermost_notify.errors import HookError
from mattermost_notify.hooks import HookStore, MessageHook, read_hook, write_hook

CH = "abcdefghijkmnopqrstuwxyz12"
POST = "bcdefghijkmnopqrstuwxyz123"
BOT = "cdefghijkmnopqrstuwxyz1234"


def _hook(id: str = "my-test-message", server: str = "https://chat.example.org") -> MessageHook:
    return MessageHook(
        id=id,
        server_url=server,
        bot_user_id=BOT,
        channel_id=CH,
        post_id=POST,
        root_id=None,
        created_at="2025-01-01T00:00:00+0000",
    )


def test_round_trip_and_mode(tmp_path: Path) -> None:
    path = write_hook(tmp_path / "a.msg", _hook())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["schema"] == "mattermost-notify/message-hook" and data["version"] == 1
    assert "token" not in path.read_text().lower()
    assert read_hook(path) == _hook()


def test_reads_the_original_format(tmp_path: Path) -> None:
    path = tmp_path / "old.msg"
    path.write_text(f"[Mattermost-Notify Message Hook]\nmy-test-message\n{CH}\n{POST}")
    hook = read_hook(path)
    assert (hook.id, hook.channel_id, hook.post_id) == ("my-test-message", CH, POST)
    assert hook.server_url is None and hook.bot_user_id is None


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("", "is empty"),
        ("[Mattermost-Notify Message Hook]\nmy-id\n" + CH, "truncated"),
        ("[Mattermost-Notify Message Hook]\nmy-id\nnot an id\n" + POST, "channel_id"),
        ('{"schema": "mattermost-notify/message-hook", "version": 1, "id": "x"', "not valid JSON"),
        ("hello world", "neither JSON nor the original format"),
        ('{"schema": "other", "version": 1}', "not a message hook"),
        (
            json.dumps({**_hook().to_dict(), "version": 2}),
            "version 2; this mattermost-notify reads version 1",
        ),
        (json.dumps({**_hook().to_dict(), "post_id": 5}), "'post_id' has the wrong type"),
        (json.dumps({k: v for k, v in _hook().to_dict().items() if k != "channel_id"}), "missing"),
        (json.dumps({**_hook().to_dict(), "token": "x"}), "unknown fields: token"),
        (json.dumps({**_hook().to_dict(), "id": ""}), "message id is empty"),
    ],
)
def test_bad_hook_files_name_the_file(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "bad.msg"
    path.write_text(content)
    with pytest.raises(HookError, match=match) as info:
        read_hook(path)
    assert str(path) in str(info.value)


def test_missing_hook_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(HookError, match="does not exist"):
        read_hook(tmp_path / "nope.msg")
    with pytest.raises(HookError, match="is a directory"):
        read_hook(tmp_path)


def test_foreign_server_and_bot_named() -> None:
    hook = _hook()
    with pytest.raises(HookError, match=r"https://chat\.example\.org.*https://other\.example"):
        hook.check_matches("https://other.example", BOT, source="f")
    other_bot = "zzzzhijkmnopqrstuwxyz12345"
    with pytest.raises(HookError, match=f"{BOT}.*{other_bot}"):
        hook.check_matches("https://chat.example.org", other_bot, source="f")
    hook.check_matches("https://CHAT.example.org/", BOT, source="f")


def test_store_put_get_remove_list(tmp_path: Path) -> None:
    store = HookStore(tmp_path / "s" / "hooks.json")
    assert store.get("a") is None and store.list() == []
    store.put(_hook("a"))
    store.put(_hook("b"))
    assert store.get("a") == _hook("a")
    assert {h.id for h in store.list()} == {"a", "b"}
    assert store.remove("a") and not store.remove("a")
    assert "b" in store and "a" not in store
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_store_for_key_under_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MATTERMOST_NOTIFY_DATA_DIR", str(tmp_path))
    a = HookStore.for_key("/home/u/notebook.ipynb")
    assert a.path.parent == tmp_path / "hooks" and len(a.path.stem) == 16
    assert HookStore.for_key("/home/u/notebook.ipynb").path == a.path
    assert HookStore.for_key("/home/u/other.ipynb").path != a.path


def test_corrupt_store_is_an_error_not_data_loss(tmp_path: Path) -> None:
    path = tmp_path / "hooks.json"
    path.write_text('{"schema": "mattermost-notify/hook-store", "version": 1, "hooks": {')
    store = HookStore(path)
    with pytest.raises(HookError, match="corrupt") as info:
        store.get("x")
    assert str(path) in str(info.value)
    with pytest.raises(HookError):
        store.put(_hook())
    assert path.read_text().endswith("{")  # not overwritten


def _writer(path: str, worker: int, n: int) -> None:
    store = HookStore(path)
    for i in range(n):
        store.put(_hook(f"w{worker}-{i}"))


@pytest.mark.slow
def test_store_concurrent_processes_lose_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "hooks.json")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 25)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    ids = {h.id for h in HookStore(path).list()}
    assert ids == {f"w{w}-{i}" for w in range(4) for i in range(25)}
