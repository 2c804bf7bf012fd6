"""The background sender delivers to different targets in parallel, each target in order,
nothing lost or doubled; one slow or failing target does not hold up the others.
Over real HTTP against the sandbox; no timed assertions (overlap is read from the
sandbox's request log, order from what the server stored)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from mattermost_notify.client import Notify
from mattermost_notify.sandbox import Sandbox
from mattermost_notify.sender import DEFAULT_WORKERS

TARGETS = [f"target-{i}" for i in range(8)]


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    with Sandbox(channels=("town-square", "alerts", *TARGETS)) as server:
        yield server


def _client(sb: Sandbox, **kw: object) -> Notify:
    return Notify(token=sb.token, url=sb.url, team_name=sb.team, timeout=(2.0, 10.0), **kw)


def _posts_in_flight(sb: Sandbox) -> int:
    """The most ``POST /posts`` the server was applying at the same moment."""
    time.sleep(0.1)
    spans = [
        (r.time, r.time + r.duration_ms)
        for r in sb.view.requests()
        if r.method == "POST" and r.path.startswith("/api/v4/posts")
    ]
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    now = peak = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


def _check_delivery(sb: Sandbox, sent: dict[str, list[str]]) -> None:
    for target, messages in sent.items():
        got = [p.message for p in sb.view.posts(channel=target)]
        assert got == messages, target  # every message, once, in order


def test_targets_in_parallel_each_in_order(sb: Sandbox) -> None:
    sb.faults.delay(0.2, path_prefix="/api/v4/posts", method="POST")
    sent: dict[str, list[str]] = {t: [] for t in TARGETS}
    with _client(sb) as client:
        for i in range(40):
            target = TARGETS[i % len(TARGETS)]
            text = f"{target} #{i // len(TARGETS)}"
            client.sender.post(text, channel=target)
            sent[target].append(text)
        assert client.sender.flush(timeout=120)
    _check_delivery(sb, sent)
    peak = _posts_in_flight(sb)
    assert 2 <= peak <= DEFAULT_WORKERS


def test_one_target_is_never_sent_to_twice_at_once(sb: Sandbox) -> None:
    sb.faults.delay(0.1, path_prefix="/api/v4/posts", method="POST")
    with _client(sb) as client:
        for i in range(12):
            client.sender.post(f"only #{i}", channel="alerts")
        assert client.sender.flush(timeout=120)
    assert [p.message for p in sb.view.posts(channel="alerts")] == [f"only #{i}" for i in range(12)]
    assert _posts_in_flight(sb) == 1


def test_updates_and_replies_follow_their_message(sb: Sandbox) -> None:
    sb.faults.delay(0.05, path_prefix="/api/v4/posts", method="POST")
    with _client(sb) as client:
        sender = client.sender
        for t in TARGETS[:4]:
            sender.post(f"{t}: started", channel=t, id=f"job-{t}")
        for step in range(5):
            for t in TARGETS[:4]:
                sender.update(f"job-{t}", f"{t}: step {step}")
        for t in TARGETS[:4]:
            sender.post(f"{t}: done", reply_to=f"job-{t}")
        assert sender.flush(timeout=120)
        assert sender.failed == 0
    for t in TARGETS[:4]:
        posts = sb.view.posts(channel=t)
        assert [p.message for p in posts] == [f"{t}: step 4", f"{t}: done"]
        assert posts[1].root_id == posts[0].id


def test_a_stalled_target_does_not_hold_up_the_others(sb: Sandbox) -> None:
    # the look-up of one channel hangs for a while; the other targets go on meanwhile
    slow = f"/api/v4/teams/name/{sb.team}/channels/name/{TARGETS[0]}"
    sb.faults.delay(1.5, path_prefix=slow)
    with _client(sb) as client:
        client.sender.post("slow one", channel=TARGETS[0])
        for t in TARGETS[1:4]:
            client.sender.post(f"to {t}", channel=t)
        assert client.sender.flush(timeout=60)
    time.sleep(0.1)
    order = [
        r.time
        for r in sb.view.requests()
        if r.method == "POST" and r.path.startswith("/api/v4/posts")
    ]
    assert len(order) == 4
    posts = {t: sb.view.posts(channel=t)[0] for t in TARGETS[:4]}
    slow_at = posts[TARGETS[0]].create_at
    assert all(posts[t].create_at < slow_at for t in TARGETS[1:4])


def test_a_failing_target_backs_off_alone(sb: Sandbox) -> None:
    # every look-up of one channel fails (503) for now: that message waits and is
    # retried with the same pending_post_id; the other targets are delivered at once
    failing = f"/api/v4/teams/name/{sb.team}/channels/name/{TARGETS[0]}"
    sb.faults.fail_next(10_000, 503, path_prefix=failing)
    with _client(sb, retry=False) as client:
        sender = client.sender
        first = sender.post("waits for its channel", channel=TARGETS[0])
        second = sender.post("behind it, same channel", channel=TARGETS[0])
        others = [sender.post(f"to {t}", channel=t) for t in TARGETS[1:4]]
        assert all(t.result(timeout=30) is not None for t in others)
        assert not first.done() and not second.done()
        sb.faults.clear()
        assert sender.flush(timeout=60)
        assert first.exception() is None and second.exception() is None
    assert [p.message for p in sb.view.posts(channel=TARGETS[0])] == [
        "waits for its channel",
        "behind it, same channel",
    ]


def test_single_worker_keeps_the_old_strict_order(sb: Sandbox) -> None:
    from mattermost_notify.sender import BackgroundSender

    sb.faults.delay(0.05, path_prefix="/api/v4/posts", method="POST")
    with _client(sb) as client:
        sender = BackgroundSender(client, workers=1, spool=False)
        for i in range(8):
            sender.post(f"m{i}", channel=TARGETS[i % 4])
        assert sender.flush(timeout=60)
        sender.close()
    assert _posts_in_flight(sb) == 1


def test_faults_on_every_target_lose_nothing_double_nothing_keep_order(sb: Sandbox) -> None:
    # a quarter of the posts fail while 8 targets are delivered at once: refused (503),
    # dropped before the server applied them, or applied and then dropped unanswered
    # (the retry must not post twice: the same pending_post_id)
    sb.faults.fail_fraction(
        0.25,
        seed=16,
        statuses=(503,),
        modes=("drop_before", "drop_after"),
        path_prefix="/api/v4/posts",
        method="POST",
    )
    sb.faults.delay(0.02, path_prefix="/api/v4/posts", method="POST")
    sent: dict[str, list[str]] = {t: [] for t in TARGETS}
    with _client(sb) as client:
        sender = client.sender
        sender.initial_backoff, sender.max_backoff = 0.05, 0.5
        tickets = []
        for i in range(64):
            target = TARGETS[i % len(TARGETS)]
            text = f"{target} #{i // len(TARGETS)}"
            tickets.append(sender.post(text, channel=target))
            sent[target].append(text)
        assert sender.flush(timeout=300)
        assert all(t.exception() is None for t in tickets)
    faulted = [r for r in sb.view.requests() if r.fault]
    assert faulted  # the attack happened
    _check_delivery(sb, sent)  # each target: every message once, in order
    assert _posts_in_flight(sb) >= 2
