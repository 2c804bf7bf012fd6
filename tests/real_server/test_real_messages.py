"""Messages, files, updates, hooks and threads through the library, checked on the real
server as its admin sees them."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests


def unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex[:8]}"


def make_files(directory: Path, count: int, size: int = 100) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(count):
        path = directory / f"result-{number:02d}.txt"
        path.write_bytes(bytes([65 + number % 26]) * size)
        paths.append(str(path))
    return paths


def download(real_server: Any, file_id: str) -> bytes:
    answer = requests.get(
        f"{real_server.url}/api/v4/files/{file_id}",
        headers={"Authorization": f"Bearer {real_server.admin_token}"},
        timeout=30,
    )
    assert answer.status_code == 200
    return answer.content


def test_dm_first_and_warm_go_to_one_direct_channel(client: Any, admin: Any) -> None:
    first = client.send_to_user(unique("first DM"), "bob")
    warm = client.send_to_user(unique("warm DM"), "bob")
    assert first.channel_id == warm.channel_id == admin.dm_channel("bob")
    posts = admin.channel_posts(first.channel_id)
    assert [p["id"] for p in posts[-2:]] == [first.post_id, warm.post_id]
    for post in posts[-2:]:
        assert post["user_id"] == admin.server.bot_user_id
        assert post["props"].get("from_bot") == "true"
    assert first.permalink == f"{admin.server.url}/{admin.server.team}/pl/{first.post_id}"


@pytest.mark.parametrize("channel", ["bot-public", "bot-private"])
def test_channel_message(client: Any, admin: Any, channel: str) -> None:
    text = unique(f"to {channel}")
    sent = client.send_to_channel(text, channel)
    post = admin.post(sent.post_id)
    assert post["channel_id"] == admin.server.channels[channel]
    assert post["message"] == text
    assert post["root_id"] == ""


@pytest.mark.parametrize("count", [1, 3, 11])
def test_files_go_with_the_text(client: Any, admin: Any, tmp_path: Path, count: int) -> None:
    paths = make_files(tmp_path / "files", count, size=1000)
    text = unique(f"{count} files")
    sent = client.send_to_channel(text, "bot-public", files=paths)
    first = admin.post(sent.post_id)
    assert first["message"] == text
    names = [Path(p).name for p in paths]
    assert admin.file_names(first) == names[:10]
    if count > 10:
        # the eleventh file continues in the same thread
        thread = admin.thread(sent.post_id)
        assert [p["id"] for p in thread] == list(sent.post_ids)
        assert thread[1]["root_id"] == sent.post_id
        assert admin.file_names(thread[1]) == names[10:]
    else:
        assert sent.post_ids == (sent.post_id,)
    assert len(sent.file_ids) == count
    assert download(admin.server, sent.file_ids[-1]) == Path(paths[-1]).read_bytes()


def test_update_by_id_edits_the_same_post(client: Any, admin: Any) -> None:
    sent = client.send_to_user("Training: epoch 1/3", "alice", id="training")
    client.send_update("Training: epoch 2/3", id="training")
    updated = client.send_update("Training: done", id="training")
    assert updated.post_id == sent.post_id
    post = admin.post(sent.post_id)
    assert post["message"] == "Training: done"
    assert post["edit_at"] > 0
    assert admin.dm_posts("alice")[-1]["id"] == sent.post_id  # no new post


def test_update_replaces_the_files(client: Any, admin: Any, tmp_path: Path) -> None:
    # 11.4 is newer than 10.5, where the server started to honour file_ids in a patch
    before = make_files(tmp_path / "before", 2)
    after = make_files(tmp_path / "after", 1)
    Path(after[0]).rename(tmp_path / "after" / "final.txt")
    after = [str(tmp_path / "after" / "final.txt")]
    sent = client.send_to_channel("plots: draft", "bot-public", files=before, id="plots")
    assert admin.file_names(admin.post(sent.post_id)) == ["result-00.txt", "result-01.txt"]
    updated = client.send_update("plots: final", id="plots", files=after)
    post = admin.post(sent.post_id)
    assert post["message"] == "plots: final"
    assert admin.file_names(post) == ["final.txt"]
    assert list(updated.file_ids) == post["file_ids"]


def test_hook_exported_and_imported_in_another_process(
    real_server: Any, admin: Any, real_env: dict[str, str], tmp_path: Path
) -> None:
    import mattermost_notify as notify

    notify.wakeup()
    sent = notify.notify_user("job 7: running", "alice", id="job-7")
    notify.export_hook("job-7", str(tmp_path / "job-7.msg"))
    code = (
        "import mattermost_notify as notify\n"
        "notify.wakeup()\n"
        f"notify.import_hook({str(tmp_path / 'job-7.msg')!r})\n"
        "notify.send_update('job 7: done', id='job-7')\n"
    )
    subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **real_env}, check=True, timeout=60
    )
    post = admin.post(sent.post_id)
    assert post["message"] == "job 7: done"
    assert real_server.bot_token not in (tmp_path / "job-7.msg").read_text()


def test_reply_goes_into_the_thread(client: Any, admin: Any) -> None:
    root = client.send_to_channel("nightly run: started", "bot-public", id="nightly")
    reply = client.reply("nightly", "nightly run: failed at step 3")
    replied = admin.post(reply.post_id)
    assert replied["root_id"] == root.post_id
    assert [p["id"] for p in admin.thread(root.post_id)] == [root.post_id, reply.post_id]


def test_message_over_the_length_limit_is_split_into_a_thread(client: Any, admin: Any) -> None:
    limit = int(admin.get("/config/client?format=old")["MaxPostSize"])
    assert limit == 16383  # PostgreSQL schema of a new 11.x server: the rune floor
    lines = [f"line {n:05d} " + "é" * 40 for n in range(limit // 40 + 50)]
    text = "\n".join(lines)
    assert len(text) > limit
    sent = client.send_to_user(text, "alice")
    assert len(sent.post_ids) >= 2
    thread = admin.thread(sent.post_id)
    assert [p["id"] for p in thread] == list(sent.post_ids)
    assert all(len(p["message"]) <= limit for p in thread)
    parts = [thread[0]["message"]]
    for number, post in enumerate(thread[1:], start=2):
        marker = f"(continued {number}/{len(thread)})\n"
        assert post["message"].startswith(marker)
        parts.append(post["message"][len(marker) :])
    assert "\n".join(parts) == text  # split at line ends, nothing lost


def test_update_over_the_length_limit_is_cut_with_a_marker(client: Any, admin: Any) -> None:
    limit = int(admin.get("/config/client?format=old")["MaxPostSize"])
    sent = client.send_to_channel("status: short", "bot-public", id="status")
    client.send_update("x" * (limit + 500), id="status")
    post = admin.post(sent.post_id)
    assert len(post["message"]) <= limit
    assert post["message"].startswith("x" * 1000)
    assert post["message"] != "x" * limit  # the cut is marked, not silent
