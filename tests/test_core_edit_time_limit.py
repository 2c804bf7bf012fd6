"""A server with an edit time limit (PostEditTimeLimit 1 s here), over real HTTP: a message
updated for longer goes on in a new post in its thread, edits are never repeated once
refused, and the user is warned at most once per refusal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import warnings
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import mattermost_notify as notify
from mattermost_notify.client import Notify
from mattermost_notify.errors import MattermostNotifyWarning
from mattermost_notify.sandbox import Sandbox

PATCH = "PUT /api/v4/posts/{post_id}/patch"


@pytest.fixture
def mattermost_server_options() -> dict[str, Any]:
    return {"post_edit_time_limit": 1}


def _refused_edits(sb: Sandbox) -> int:
    time.sleep(0.05)  # the sandbox logs a request just after answering it
    return sum(
        1 for r in sb.view.requests() if f"{r.method} {r.route}" == PATCH and r.status == 400
    )


def test_notify_by_id_after_the_limit_delivers_without_raising(mattermost_env: Sandbox) -> None:
    sb = mattermost_env
    notify.wakeup(always_send_to_user="alice")
    notify.notify("training: epoch 1/2", id="job")
    time.sleep(1.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning either: the limit was known in advance
        sent = notify.notify("training: epoch 2/2", id="job")
    first, second = sb.view.posts(dm_with="alice")
    assert first.message == "training: epoch 1/2"
    assert second.message == "training: epoch 2/2" and second.root_id == first.id
    assert sent.post_id == second.id
    assert _refused_edits(sb) == 0
    # later updates edit the new post while it is young enough
    notify.send_update("training: done", id="job")
    assert sb.view.post(second.id).message == "training: done"
    assert len(sb.view.posts(dm_with="alice")) == 2


def test_young_posts_are_edited_in_place(mattermost_env: Sandbox) -> None:
    sb = mattermost_env
    with Notify(token=sb.token, url=sb.url, team_name=sb.team) as client:
        sent = client.send_to_channel("v1", "alerts", id="quick")
        client.send_update("v2", id="quick")
    [post] = sb.view.posts(channel="alerts")
    assert post.id == sent.post_id and post.message == "v2"


def test_a_refused_edit_continues_once_with_one_warning(mattermost_env: Sandbox) -> None:
    """The server does not publish its limit (so it cannot be avoided): the refusal is not
    repeated, the text goes to a new post, one warning; the limit it reveals is kept."""
    sb = mattermost_env
    sb.faults.fail_next(1000, status=404, path_prefix="/api/v4/config/client")
    with Notify(token=sb.token, url=sb.url, team_name=sb.team) as client:
        client.send_to_channel("v1", "alerts", id="blind")
        time.sleep(1.2)
        with pytest.warns(MattermostNotifyWarning, match="PostEditTimeLimit") as caught:
            sent = client.send_update("v2", id="blind")
        assert len(caught) == 1
        assert "edited for 1 s" in str(caught[0].message)
        assert _refused_edits(sb) == 1
        time.sleep(1.2)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            again = client.send_update("v3", id="blind")
    assert _refused_edits(sb) == 1  # learnt from the first refusal: never refused again
    posts = sb.view.posts(channel="alerts")
    assert [p.message for p in posts] == ["v1", "v2", "v3"]
    assert posts[1].id == sent.post_id and posts[2].id == again.post_id
    assert all(p.root_id == posts[0].id for p in posts[1:])


def test_a_continuation_is_not_posted_twice_on_retry(mattermost_env: Sandbox) -> None:
    """The server saves the continuation but the answer is lost: the retry reuses the
    de-duplication key, so one post."""
    sb = mattermost_env
    with Notify(token=sb.token, url=sb.url, team_name=sb.team) as client:
        client.send_to_channel("v1", "alerts", id="retry")
        time.sleep(1.2)
        sb.faults.drop_after(1, path_prefix="/api/v4/posts")
        client.send_update("v2", id="retry")
    assert [p.message for p in sb.view.posts(channel="alerts")] == ["v1", "v2"]


def test_replies_and_hook_files_follow_the_continuation(
    mattermost_env: Sandbox, tmp_path: Path
) -> None:
    sb = mattermost_env
    with Notify(token=sb.token, url=sb.url, team_name=sb.team) as client:
        root = client.send_to_channel("v1", "alerts", id="h")
        client.write_message_hook_to_file("h", tmp_path / "h.msg")
        time.sleep(1.5)
        client.send_update("v2", id="h")
        reply = client.reply("h", "done")
    assert sb.view.post(reply.post_id).root_id == root.post_id
    # another process with the old hook file: the post is too old, it goes on in the thread
    with Notify(token=sb.token, url=sb.url, team_name=sb.team) as other:
        other.read_message_hook_from_file(tmp_path / "h.msg")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            other.send_update("v3 from elsewhere", id="h")
    messages = [p.message for p in sb.view.posts(channel="alerts")]
    assert messages == ["v1", "v2", "done", "v3 from elsewhere"]
    assert _refused_edits(sb) == 0


def test_progress_bar_of_3_s_on_a_1_s_limit_shows_its_final_state(
    mattermost_env: Sandbox, tmp_path: Path
) -> None:
    sb = mattermost_env
    script = tmp_path / "bar.py"
    script.write_text(
        textwrap.dedent(
            """
            import time
            import mattermost_notify as notify
            from mattermost_notify import tqdm

            notify.wakeup()
            for _ in tqdm(range(30), desc="train", user="alice", id="bar", min_interval=0.3,
                          local=False):
                time.sleep(0.1)
            notify.flush(20)
            print(notify.get_client().hooks["bar"].post_id)
            """
        )
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started >= 3
    warning_lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(warning_lines) <= 4, done.stderr
    assert _refused_edits(sb) <= 2
    final = sb.view.post(done.stdout.strip())
    assert "30/30" in final.message and "done" in final.message
    posts = sb.view.posts(dm_with="alice")
    assert final.id in [p.id for p in posts]
    assert "done" in posts[-1].message  # the closing reply


def test_notify_on_done_running_message_past_the_limit(
    mattermost_env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cell that runs longer than the limit: its "running" message cannot change any
    more, so the final state goes to a new post of the thread; nothing refused, no warning."""
    pytest.importorskip("IPython")
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output
    from traitlets.config import Config

    sb = mattermost_env
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    cfg = Config()
    cfg.HistoryManager.hist_file = ":memory:"
    InteractiveShell.clear_instance()
    shell = InteractiveShell.instance(config=cfg)
    try:
        shell.run_line_magic("load_ext", "mattermost_notify")
        shell.run_line_magic("config", 'NotifyMagics.notebook_key = "tests/limit.ipynb"')
        with warnings.catch_warnings(record=True) as caught, capture_output():
            warnings.simplefilter("always")
            result = shell.run_cell("%%notify_on_done -c alerts\nimport time\ntime.sleep(1.5)")
            assert notify.flush(30)
        assert result.success
        assert not [w for w in caught if issubclass(w.category, MattermostNotifyWarning)]
    finally:
        shell.run_line_magic("unload_ext", "mattermost_notify")
        InteractiveShell.clear_instance()
    root, *rest = sb.view.posts(channel="alerts")
    assert root.message.startswith(":hourglass_flowing_sand: **Running**")  # frozen
    assert [p.root_id for p in rest] == [root.id, root.id]
    assert all(":white_check_mark: **Done**" in p.message for p in rest)
    assert _refused_edits(sb) == 0


@pytest.mark.slow
def test_cli_update_past_the_limit_continues_and_updates_the_hook_file(
    mattermost_env: Sandbox, tmp_path: Path
) -> None:
    """A job's hook file from a post made 200 s ago, on a server whose edit limit is 120 s:
    ``update`` goes on in a new post and points the hook file at it; the next ``update``
    edits that post. No step waits for the clock: the post and its hook are made old (on
    the server and in the file), and the new post has the whole 120 s (less the margin)
    for the last command, however slowly a loaded machine starts it."""
    sb = mattermost_env
    sb.post_edit_time_limit = 120
    hook = tmp_path / "backup.msg"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mattermost_notify.cli", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=dict(os.environ),
            cwd=tmp_path,
        )

    assert (
        cli("send", "backup: running", "--channel", "alerts", "--save-hook", str(hook)).returncode
        == 0
    )
    saved = json.loads(hook.read_text())
    posted = datetime.fromisoformat(saved["created_at"]) - timedelta(seconds=200)
    saved["created_at"] = posted.strftime("%Y-%m-%dT%H:%M:%S%z")
    hook.write_text(json.dumps(saved))
    sb._store.posts[saved["post_id"]]["create_at"] -= 200_000  # the server's edit limit too
    done = cli("update", "backup: copying", "--hook", str(hook))
    assert done.returncode == 0, done.stderr
    assert "continued in a new post" in done.stdout and done.stderr == ""
    assert json.loads(hook.read_text())["post_id"] != saved["post_id"]
    done = cli("update", "backup: done", "--hook", str(hook))  # edits the new post
    assert done.returncode == 0, done.stderr
    assert "continued" not in done.stdout
    root, continued = sb.view.posts(channel="alerts")
    assert root.message == "backup: running"
    assert continued.root_id == root.id and continued.message == "backup: done"
    assert json.loads(hook.read_text())["post_id"] == continued.id
    assert _refused_edits(sb) == 0
