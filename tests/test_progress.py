"""Progress messages over real HTTP against the sandbox (issue #6).

Every test runs a real loop with :class:`mattermost_notify.progress_bar.tqdm`
against a sandbox server and asserts what the server holds afterwards: the
messages, their final text, their replies and the number of edits. No test
asserts wall-clock speed (that is bench/bench_progress.py); where a test relies on
ordering in time it uses a server delay far larger than the loop.
"""

from __future__ import annotations

import io
import json
import re
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from tqdm.std import tqdm as plain_tqdm

from mattermost_notify import progress_bar
from mattermost_notify.client import Notify
from mattermost_notify.errors import MattermostNotifyWarning
from mattermost_notify.progress_bar import tqdm, trange
from mattermost_notify.sandbox import Sandbox

pytestmark = pytest.mark.timeout(120)

CHANNEL = "alerts"


# --------------------------------------------------------------------------- helpers
@pytest.fixture
def client(mattermost_server: Sandbox) -> Iterator[Notify]:
    c = Notify(mattermost_server.token, mattermost_server.url, mattermost_server.team)
    yield c
    c.close()


def roots(sb: Sandbox, channel: str = CHANNEL) -> list[Any]:
    return [p for p in sb.view.posts(channel=channel) if not p.root_id]


def replies(sb: Sandbox, post: Any) -> list[Any]:
    return [sb.view.post(i) for i in post.reply_ids]


def edit_requests(sb: Sandbox, post_id: str) -> list[Any]:
    return [
        r
        for r in sb.view.requests()
        if r.method == "PUT" and r.path.startswith(f"/api/v4/posts/{post_id}")
    ]


def delivered(timeout: float = 30.0) -> None:
    assert progress_bar.flush(timeout), "progress states not delivered in time"


def counts(text: str) -> tuple[int, int] | None:
    m = re.search(r"\| *(\d+)/(\d+) \[", text)
    return (int(m.group(1)), int(m.group(2))) if m else None


# --------------------------------------------------------------------------- basics
def test_one_message_edited_then_done_with_reply(mattermost_env: Sandbox) -> None:
    """Default client from the environment; one message, final text, one thread reply."""
    t0 = time.monotonic()
    for _ in tqdm(range(12), desc="train", channel=CHANNEL, min_interval=0.1, mininterval=0):
        time.sleep(0.02)
    elapsed = time.monotonic() - t0
    delivered()

    (post,) = roots(mattermost_env)
    assert post.username == mattermost_env.bot_username
    assert "✅ **train** done: 12/12" in post.message
    assert "it/s" in post.message
    assert counts(post.message) == (12, 12)
    assert post.edited  # created at the start, then edited
    # every intermediate state was a running state, in order (newest wins, never older)
    seen = [counts(e.message) for e in post.edits]
    assert all(c is not None for c in seen)
    done_counts = [c[0] for c in seen if c]
    assert done_counts == sorted(done_counts)
    assert post.edits[0].message.startswith("⏳")
    # edits bounded by elapsed / min_interval + 2 (intermediate + final)
    n_edits = len(edit_requests(mattermost_env, post.id))
    assert 1 <= n_edits <= elapsed / 0.1 + 2

    (reply,) = replies(mattermost_env, post)
    assert reply.root_id == post.id
    assert reply.message.startswith("✅ train done: 12/12")


def test_trange_and_progress_function(mattermost_env: Sandbox) -> None:
    import mattermost_notify as notify

    for _ in trange(3, desc="a", channel=CHANNEL, reply=False):
        pass
    for _ in notify.progress(range(4), desc="b", channel=CHANNEL, reply=False):
        pass
    delivered()
    texts = sorted(p.message for p in roots(mattermost_env))
    assert "✅ **a** done: 3/3" in texts[0]
    assert "✅ **b** done: 4/4" in texts[1]
    assert all(not p.reply_ids for p in roots(mattermost_env))


def test_direct_message_to_user(mattermost_env: Sandbox) -> None:
    for _ in tqdm(range(2), desc="dm", user="alice"):
        pass
    delivered()
    posts = mattermost_env.view.posts(dm_with="alice")
    root = [p for p in posts if not p.root_id]
    assert len(root) == 1
    assert "done: 2/2" in root[0].message
    assert len(posts) == 2  # the message and its reply


def test_id_gives_a_hook_and_send_update_reaches_it(mattermost_env: Sandbox) -> None:
    import mattermost_notify as notify

    for _ in tqdm(range(3), desc="job", channel=CHANNEL, id="train-run"):
        pass
    delivered()
    client = notify.get_client()
    assert client.has_message("train-run")
    (post,) = roots(mattermost_env)
    assert client.hooks["train-run"].post_id == post.id
    notify.send_update("evaluated: 0.93", id="train-run")
    assert mattermost_env.view.post(post.id).message == "evaluated: 0.93"


def test_manual_updates_and_context_manager(client: Notify, mattermost_server: Sandbox) -> None:
    with tqdm(total=100, desc="bytes", channel=CHANNEL, client=client, unit="B") as bar:
        for _ in range(10):
            bar.update(10)
    delivered()
    (post,) = roots(mattermost_server)
    assert "done: 100/100" in post.message
    assert "B/s" in post.message
    assert bar.state == "done"


def test_unknown_total(client: Notify, mattermost_server: Sandbox) -> None:
    def items() -> Iterator[int]:
        yield from range(7)

    for _ in tqdm(items(), desc="stream", channel=CHANNEL, client=client):
        pass
    delivered()
    (post,) = roots(mattermost_server)
    assert "✅ **stream** done: 7 in" in post.message


# --------------------------------------------------------------------------- endings
def test_exception_in_plain_loop_body(client: Notify, mattermost_server: Sandbox) -> None:
    with pytest.raises(ValueError, match="bad batch"):
        for i in tqdm(range(10), desc="fit", channel=CHANNEL, client=client):
            if i == 3:
                raise ValueError("bad batch")  # the line the message names
    delivered()
    (post,) = roots(mattermost_server)
    assert "❌ **fit** failed at 3/10" in post.message
    assert 'raise ValueError("bad batch")' in post.message
    assert "test_progress.py" in post.message
    if sys.version_info >= (3, 12):
        assert "ValueError: bad batch" in post.message
    (reply,) = replies(mattermost_server, post)
    assert reply.message.startswith("❌ fit failed at 3/10")
    assert 'raise ValueError("bad batch")' in reply.message


def test_exception_deep_in_a_called_function(client: Notify, mattermost_server: Sandbox) -> None:
    def step(i: int) -> None:
        if i == 2:
            {}["missing"]

    with pytest.raises(KeyError):
        for i in tqdm(range(5), desc="deep", channel=CHANNEL, client=client):
            step(i)
    delivered()
    (post,) = roots(mattermost_server)
    assert "failed at 2/5" in post.message
    assert "in step()" in post.message


def test_exception_with_context_manager_has_type_and_message(
    client: Notify, mattermost_server: Sandbox
) -> None:
    with (
        pytest.raises(ValueError),
        tqdm(range(10), desc="fit", channel=CHANNEL, client=client) as bar,
    ):
        for i in bar:
            if i == 4:
                raise ValueError("loss is nan")
    delivered()
    (post,) = roots(mattermost_server)
    assert "❌ **fit** failed at 4/10" in post.message
    assert "ValueError: loss is nan" in post.message
    (reply,) = replies(mattermost_server, post)
    assert "ValueError: loss is nan" in reply.message


def test_exception_from_the_iterable(client: Notify, mattermost_server: Sandbox) -> None:
    def loader() -> Iterator[int]:
        yield 1
        yield 2
        raise OSError("disk gone")

    with pytest.raises(OSError):
        for _ in tqdm(loader(), desc="load", channel=CHANNEL, client=client):
            pass
    delivered()
    (post,) = roots(mattermost_server)
    assert "failed at 2 after" in post.message
    assert "OSError: disk gone" in post.message


def test_keyboard_interrupt_with_form_no_reply(client: Notify, mattermost_server: Sandbox) -> None:
    with (
        pytest.raises(KeyboardInterrupt),
        tqdm(range(10), desc="fit", channel=CHANNEL, client=client) as bar,
    ):
        for i in bar:
            if i == 5:
                raise KeyboardInterrupt
    delivered()
    (post,) = roots(mattermost_server)
    assert "⏹️ **fit** interrupted at 5/10" in post.message
    assert not post.reply_ids  # the user pressed Ctrl-C: nobody to alert
    assert bar.state == "interrupted"


def test_keyboard_interrupt_inside_the_iterable(client: Notify, mattermost_server: Sandbox) -> None:
    def slow() -> Iterator[int]:
        yield 0
        raise KeyboardInterrupt  # as if Ctrl-C hit while waiting for the next item

    with pytest.raises(KeyboardInterrupt):
        for _ in tqdm(slow(), total=3, desc="wait", channel=CHANNEL, client=client):
            pass
    delivered()
    (post,) = roots(mattermost_server)
    assert "interrupted at 1/3" in post.message


def test_break_is_stopped_not_failed(client: Notify, mattermost_server: Sandbox) -> None:
    for i in tqdm(range(10), desc="search", channel=CHANNEL, client=client):
        if i == 6:
            break
    delivered()
    (post,) = roots(mattermost_server)
    assert "⏹️ **search** stopped at 6/10" in post.message
    assert "failed" not in post.message
    (reply,) = replies(mattermost_server, post)
    assert "stopped at 6/10" in reply.message


def test_exception_caught_around_manual_close(client: Notify, mattermost_server: Sandbox) -> None:
    bar = tqdm(total=4, desc="manual", channel=CHANNEL, client=client)
    with pytest.raises(RuntimeError):
        try:
            bar.update(1)
            raise RuntimeError("step failed")
        finally:
            bar.close()
    delivered()
    (post,) = roots(mattermost_server)
    assert "failed at 1/4" in post.message
    assert "RuntimeError: step failed" in post.message


def test_loop_inside_an_except_block_is_done(client: Notify, mattermost_server: Sandbox) -> None:
    """A handled outer exception is not the loop's: the loop completes normally."""
    try:
        raise LookupError("earlier, handled")
    except LookupError:
        for _ in tqdm(range(3), desc="retry", channel=CHANNEL, client=client):
            pass
    delivered()
    (post,) = roots(mattermost_server)
    assert "done: 3/3" in post.message


def test_reply_off_and_mention(client: Notify, mattermost_server: Sandbox) -> None:
    for _ in tqdm(range(2), desc="quiet", channel=CHANNEL, client=client, reply=False):
        pass
    for _ in tqdm(range(2), desc="loud", channel=CHANNEL, client=client, mention="@alice"):
        pass
    delivered()
    quiet, loud = roots(mattermost_server)
    assert not quiet.reply_ids
    (reply,) = replies(mattermost_server, loud)
    assert reply.message.startswith("@alice ✅ loud done: 2/2")


# --------------------------------------------------------------------------- nested bars
def test_nested_transient_inner_bar_reuses_one_message(
    client: Notify, mattermost_server: Sandbox
) -> None:
    for _ in tqdm(range(3), desc="epoch", channel=CHANNEL, client=client):
        for _ in tqdm(range(4), desc="batch", channel=CHANNEL, client=client, leave=False):
            pass
    delivered()
    posts = roots(mattermost_server)
    assert len(posts) == 2  # one per position, like the terminal's lines
    by_name = {("epoch" if "epoch" in p.message else "batch"): p for p in posts}
    assert "✅ **epoch** done: 3/3" in by_name["epoch"].message
    assert "✅ **batch** done: 4/4" in by_name["batch"].message
    assert len(replies(mattermost_server, by_name["epoch"])) == 1
    assert not by_name["batch"].reply_ids  # only the outermost bar alerts


def test_nested_kept_inner_bars_keep_a_message_each(
    client: Notify, mattermost_server: Sandbox
) -> None:
    for _ in tqdm(range(2), desc="epoch", channel=CHANNEL, client=client):
        for _ in tqdm(range(3), desc="batch", channel=CHANNEL, client=client, leave=True):
            pass
    delivered()
    posts = roots(mattermost_server)
    assert len(posts) == 3  # the outer bar + one per inner bar (leave=True keeps them)
    assert sum("✅ **batch** done: 3/3" in p.message for p in posts) == 2
    assert sum(len(p.reply_ids) for p in posts) == 1


def test_explicit_positions_run_side_by_side(client: Notify, mattermost_server: Sandbox) -> None:
    a = tqdm(total=2, position=0, desc="left", channel=CHANNEL, client=client)
    b = tqdm(total=2, position=1, desc="right", channel=CHANNEL, client=client)
    for _ in range(2):
        a.update()
        b.update()
    b.close()
    a.close()
    delivered()
    texts = sorted(p.message for p in roots(mattermost_server))
    assert len(texts) == 2
    assert "**left** done: 2/2" in texts[0]
    assert "**right** done: 2/2" in texts[1]


def test_inner_failure_reaches_outer(client: Notify, mattermost_server: Sandbox) -> None:
    with pytest.raises(ZeroDivisionError):
        for e in tqdm(range(3), desc="epoch", channel=CHANNEL, client=client):
            for b in tqdm(range(3), desc="batch", channel=CHANNEL, client=client, leave=False):
                if e == 1 and b == 2:
                    _ = 1 / 0
    delivered()
    posts = roots(mattermost_server)
    epoch = next(p for p in posts if "epoch" in p.message)
    batch = next(p for p in posts if "batch" in p.message)
    assert "❌ **epoch** failed at 1/3" in epoch.message
    assert "❌ **batch** failed at 2/3" in batch.message
    (reply,) = replies(mattermost_server, epoch)
    assert "failed" in reply.message


# --------------------------------------------------------------------------- never block
@pytest.mark.slow
def test_delayed_server_does_not_hold_the_loop(client: Notify, mattermost_server: Sandbox) -> None:
    """With every request stalled 2 s, a 0.3 s loop ends before the server has a post."""
    mattermost_server.faults.delay(2.0)
    for _ in tqdm(range(15), desc="slow", channel=CHANNEL, client=client, min_interval=0.05):
        time.sleep(0.02)
    # the loop is over and not even the creation of the message has been committed:
    # the loop did not wait for the server
    assert roots(mattermost_server) == []
    delivered(60)
    (post,) = roots(mattermost_server)
    assert "✅ **slow** done: 15/15" in post.message  # newest state won, after the delay


def test_dead_server_then_back(client: Notify, mattermost_server: Sandbox) -> None:
    """Server down during the whole loop: no exception; the final state arrives later."""
    client.test_connection()  # the client knows the server before it goes away
    mattermost_server.stop()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even a warning reaches the loop thread
        for _ in tqdm(range(10), desc="offline", channel=CHANNEL, client=client, min_interval=0.01):
            time.sleep(0.01)
    assert roots(mattermost_server) == []
    mattermost_server.start()
    delivered(60)
    (post,) = roots(mattermost_server)
    assert "✅ **offline** done: 10/10" in post.message


def test_failed_send_is_a_warning_not_an_exception(
    client: Notify, mattermost_server: Sandbox
) -> None:
    """The bot is not in channel 'secret': every send fails; the loop completes."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        total = 0
        for i in tqdm(range(5), desc="nope", channel="secret", client=client):
            total += i
        delivered()
    assert total == 10
    ours = [w for w in caught if issubclass(w.category, MattermostNotifyWarning)]
    assert len(ours) == 1, [str(w.message) for w in ours]  # one, not one per edit or reply
    assert "'secret'" in str(ours[0].message)
    assert all(mattermost_server.token not in str(w.message) for w in caught)
    assert mattermost_server.view.posts(channel="secret") == []


def test_not_configured_is_a_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, mattermost_env: Sandbox
) -> None:
    monkeypatch.delenv("MATTERMOST_NOTIFY_TOKEN")
    from mattermost_notify import api

    api._reset()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        seen = [i for i in tqdm(range(4), desc="x", channel=CHANNEL)]
    assert seen == [0, 1, 2, 3]
    assert any("progress messages are off" in str(w.message) for w in caught)
    assert mattermost_env.view.posts(channel=CHANNEL) == []


def test_iteration_path_does_no_io(client: Notify, mattermost_server: Sandbox) -> None:
    """Audit events on the loop's thread: no open(), no socket, no os.* while it runs
    (the bar's job record is written when it opens and closes, and by the sender)."""
    main = threading.get_ident()
    events: list[str] = []
    active = [False]

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if (
            active[0]
            and threading.get_ident() == main
            and event.startswith(
                ("open", "socket.", "os.", "subprocess", "shutil", "urllib", "http")
            )
        ):
            events.append(event)

    sys.addaudithook(hook)  # cannot be removed; inert once active[0] is False
    for _ in plain_tqdm(range(3), file=io.StringIO()):  # warm up tqdm's own lazy imports
        pass

    def items():  # the window: from the first iteration to the last one
        active[0] = True
        yield from range(200)
        active[0] = False  # before the bar closes (and removes its job record)

    try:
        for _ in tqdm(
            items(),
            total=200,
            desc="io",
            channel=CHANNEL,
            client=client,
            min_interval=0.001,
            mininterval=0,
            file=io.StringIO(),
        ):
            time.sleep(0.001)
    finally:
        active[0] = False
    assert events == []
    delivered()
    (post,) = roots(mattermost_server)
    assert "done: 200/200" in post.message
    assert len(post.edits) >= 2  # it did edit meanwhile (from another thread)


# --------------------------------------------------------------------------- job record
def _bar_job(message_id: str) -> dict[str, Any] | None:
    from mattermost_notify.process_record import this_process

    record = this_process()
    assert record is not None
    try:
        data = json.loads(record.recorder.path.read_text())
    except FileNotFoundError:
        return None
    return next((j for j in data["jobs"] if j["message_id"] == message_id), None)


def test_an_open_bar_keeps_a_job_record_for_a_death_report(
    client: Notify, mattermost_server: Sandbox
) -> None:
    """Open: what it is and where its message is; the state of the last delivered edit
    (written by the sender's thread); closed: gone."""
    bar = tqdm(
        total=10,
        desc="rec",
        channel=CHANNEL,
        client=client,
        min_interval=0.01,
        mininterval=0,
        file=io.StringIO(),
    )
    assert bar.message_id is not None
    job = _bar_job(bar.message_id)
    assert job is not None
    assert (job["kind"], job["title"], job["channel"]) == ("progress", "rec", CHANNEL)
    assert job["state"] == "0 % (0/10)"
    bar.update(6)
    time.sleep(0.05)
    bar.refresh()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        job = _bar_job(bar.message_id) or {}
        if job.get("hook") and job.get("state") == "60 % (6/10)":
            break
        time.sleep(0.05)
    assert job.get("state") == "60 % (6/10)", job
    assert "6/10" in job["meter"]
    assert job["hook"]["post_id"] == roots(mattermost_server)[0].id
    assert mattermost_server.token not in json.dumps(job)
    bar.close()
    assert _bar_job(bar.message_id) is None


# --------------------------------------------------------------------------- local bar
def test_local_bar_shows_and_can_be_turned_off(client: Notify, mattermost_server: Sandbox) -> None:
    shown = io.StringIO()
    for _ in tqdm(range(3), desc="vis", channel=CHANNEL, client=client, file=shown):
        pass
    hidden = io.StringIO()
    for _ in tqdm(range(3), desc="hid", channel=CHANNEL, client=client, file=hidden, local=False):
        pass
    delivered()
    assert "vis: 100%" in shown.getvalue()
    assert hidden.getvalue() == ""
    assert len(roots(mattermost_server)) == 2


def test_disable_sends_nothing(client: Notify, mattermost_server: Sandbox) -> None:
    for _ in tqdm(range(3), channel=CHANNEL, client=client, disable=True):
        pass
    for _ in tqdm(range(3), desc="control", channel=CHANNEL, client=client):
        pass
    delivered()
    (post,) = roots(mattermost_server)  # only the control bar
    assert "control" in post.message


# --------------------------------------------------------------------------- ranks
@pytest.mark.parametrize(
    ("env", "sends"),
    [
        ({"RANK": "1"}, False),
        ({"RANK": "0"}, True),
        ({"LOCAL_RANK": "0", "NODE_RANK": "1"}, False),
        ({"LOCAL_RANK": "0", "NODE_RANK": "0"}, True),
        ({"SLURM_PROCID": "3"}, False),
        ({"OMPI_COMM_WORLD_RANK": "2"}, False),
        ({"PMI_RANK": "0"}, True),
    ],
)
def test_only_rank_zero_sends(
    env: dict[str, str],
    sends: bool,
    client: Notify,
    mattermost_server: Sandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    for name in ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    for _ in tqdm(range(3), desc="ranked", channel=CHANNEL, client=client):
        pass
    for _ in tqdm(range(3), desc="every", channel=CHANNEL, client=client, rank_zero_only=False):
        pass
    delivered()
    texts = [p.message for p in roots(mattermost_server)]
    assert any("every" in t for t in texts)  # the control always sends
    assert any("ranked" in t for t in texts) is sends


# --------------------------------------------------------------------------- rate limits
@pytest.mark.parametrize(
    "mattermost_server_options",
    [{"rate_limit": True, "rate_limit_per_sec": 5.0, "rate_limit_burst": 3}],
)
def test_no_429_with_rate_limiting(client: Notify, mattermost_server: Sandbox) -> None:
    """Three bars editing as fast as allowed against 5 requests/s: no 429 reaches anyone."""
    for _ in tqdm(range(4), desc="outer", channel=CHANNEL, client=client, min_interval=0.01):
        for _ in tqdm(
            range(10), desc="inner", channel=CHANNEL, client=client, leave=True, min_interval=0.01
        ):
            time.sleep(0.01)
    delivered(120)
    statuses = [r.status for r in mattermost_server.view.requests()]
    # more requests than the burst allows at once, so the limiter was in play
    assert len(statuses) > 3 * 3
    assert 429 not in statuses
    posts = roots(mattermost_server)
    assert len(posts) == 5
    assert all("done:" in p.message for p in posts)
