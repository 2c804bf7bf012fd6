"""Progress bars on the real server: one message edited in place, its final state, and
a reply in its thread."""

from __future__ import annotations

import time
from typing import Any

import pytest

import mattermost_notify as notify
from mattermost_notify import progress_bar
from mattermost_notify.progress_bar import tqdm


def final_post(admin: Any, message_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    assert progress_bar.flush(30), "progress states not delivered in time"
    hook = notify.get_client().hooks[message_id]
    thread = admin.thread(hook.post_id)
    return thread[0], thread[1:]


def test_progress_bar_to_a_dm_ends_done_with_a_reply(admin: Any, real_env: Any) -> None:
    for _ in tqdm(range(6), desc="epochs", user="alice", id="bar-dm", min_interval=0.2):
        time.sleep(0.1)
    post, replies = final_post(admin, "bar-dm")
    assert post["channel_id"] == admin.dm_channel("alice")
    assert "✅ **epochs** done: 6/6" in post["message"]
    assert post["edit_at"] > 0  # created at the start, then edited
    assert [r["message"].split(":")[0] for r in replies] == ["✅ epochs done"]


def test_progress_bar_to_a_channel_ends_failed_with_a_reply(admin: Any, real_env: Any) -> None:
    with (
        pytest.raises(RuntimeError),
        tqdm(total=10, desc="fit", channel="bot-public", id="bar-ch", min_interval=0.2) as bar,
    ):
        for step in range(10):
            if step == 3:
                raise RuntimeError("loss is nan")
            time.sleep(0.1)
            bar.update(1)
    post, replies = final_post(admin, "bar-ch")
    assert post["channel_id"] == admin.server.channels["bot-public"]
    assert "❌ **fit** failed at 3/10" in post["message"]
    assert "RuntimeError: loss is nan" in post["message"]
    assert len(replies) == 1
    assert replies[0]["message"].startswith("❌ fit failed at 3/10")
