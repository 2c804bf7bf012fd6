"""Delivery under faults, over real HTTP against the sandbox (issue #7, items 3 and 6).

* 1000 messages while about 30 % of requests fail (503, connection dropped
  before the server applied the request, dropped after it applied it, stalls
  past the read timeout, 429 bursts): every message arrives exactly once, in
  order per target.
* The server is down for 60 s while a loop keeps sending in the background:
  everything arrives, in order, once it is back.
* 8 threads x 200 messages through one client.

The scenario functions return the figures and are reused by
``bench/report_reliability.py``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest

from mattermost_notify import outbox
from mattermost_notify.client import Notify
from mattermost_notify.sandbox import Sandbox
from mattermost_notify.transport import default_retry

TARGETS: list[dict[str, str]] = [
    {"channel": "alerts"},
    {"channel": "town-square"},
    {"user": "alice"},
    {"user": "bob"},
]


def make_client(sb: Sandbox, *, read_timeout: float = 1.0) -> Notify:
    """A client with short timeouts and a quick backoff, so faults cost little time."""
    retry = default_retry().new(backoff_factor=0.02, backoff_max=0.3)
    return Notify(sb.token, sb.url, sb.team, timeout=(2.0, read_timeout), retry=retry)


def target_key(target: dict[str, str]) -> str:
    return f"@{target['user']}" if "user" in target else f"~{target['channel']}"


def posts_by_target(sb: Sandbox, prefix: str) -> dict[str, list[str]]:
    """Messages starting with ``prefix`` on the server, per target, oldest first."""
    out: dict[str, list[str]] = {}
    for t in TARGETS:
        posts = sb.view.posts(dm_with=t["user"]) if "user" in t else sb.view.posts(t["channel"])
        out[target_key(t)] = [p.message for p in posts if p.message.startswith(prefix)]
    return out


def tally(sb: Sandbox, prefix: str, expected: dict[str, list[str]]) -> dict[str, Any]:
    """Sent / delivered / lost / doubled / out-of-order, from what the server holds."""
    got = posts_by_target(sb, prefix)
    sent = sum(len(v) for v in expected.values())
    counts = Counter(m for msgs in got.values() for m in msgs)
    wanted = {m for msgs in expected.values() for m in msgs}
    delivered = sum(1 for m in wanted if counts[m] >= 1)
    doubled = sum(c - 1 for m, c in counts.items() if c > 1)
    stray = sum(1 for m in counts if m not in wanted)
    misplaced = sum(
        1 for key, msgs in got.items() for m in msgs if m in wanted and m not in expected[key]
    )
    in_order = all(
        [m for m in got[key] if m in set(msgs)] == msgs for key, msgs in expected.items()
    )
    return {
        "sent": sent,
        "delivered": delivered,
        "lost": sent - delivered,
        "doubled": doubled,
        "stray": stray,
        "misplaced": misplaced,
        "in_order": in_order,
    }


def warm_up(client: Notify, prefix: str) -> None:
    """Resolve every target once (ids cached) before the faults start."""
    for t in TARGETS:
        client.send(f"warm-up {prefix}", **t)


# ---------------------------------------------------------------- 1000 messages, 30 % faults


def run_fault_scenario(
    sb: Sandbox, n: int = 1000, p_random: float = 0.27, seed: int = 7
) -> dict[str, Any]:
    """Send ``n`` messages through the background sender while requests fail.

    A seeded fraction ``p_random`` of all requests gets a 503, a drop before
    the server applied it, or a drop after it applied it; on top, every
    100 delivered messages one post stalls past the client's read timeout,
    and every 200 a burst of three 429s arrives. One message is also
    edited 200 times (coalesced updates under the same faults).
    """
    prefix = f"f{seed}-"
    client = make_client(sb, read_timeout=1.0)
    try:
        warm_up(client, prefix)
        sender = client.sender
        sb.view.clear_requests()
        sb.faults.fail_fraction(
            p_random, seed=seed, statuses=(503,), modes=("drop_before", "drop_after")
        )
        done = threading.Event()
        injected = Counter[str]()

        def chaos() -> None:
            k = 1
            while not done.is_set() and k * 100 < n:
                if sender.delivered >= k * 100:
                    sb.faults.delay(1.6, n=1, path_prefix="/api/v4/posts", method="POST")
                    injected["stall past read timeout"] += 1
                    if k % 2 == 0:
                        sb.faults.fail_next(3, 429)
                        injected["429"] += 3
                    k += 1
                time.sleep(0.05)

        chaos_thread = threading.Thread(target=chaos, daemon=True)
        chaos_thread.start()
        expected: dict[str, list[str]] = {target_key(t): [] for t in TARGETS}
        progress_id = f"{prefix}progress"
        final = f"{prefix}progress final"
        sender.post(f"{prefix}progress 0", channel="alerts", id=progress_id)
        expected["~alerts"].append(final)  # the post, as its last update left it
        started = time.monotonic()
        for i in range(n):
            t = TARGETS[i % len(TARGETS)]
            text = f"{prefix}{i:04d}"
            sender.post(text, **t)
            expected[target_key(t)].append(text)
            if i % 5 == 0:
                sender.update(progress_id, f"{prefix}progress {i // 5 + 1}")
        sender.update(progress_id, final)
        flushed = sender.flush(timeout=900)
        elapsed = time.monotonic() - started
        done.set()
        chaos_thread.join(5)
        sb.faults.clear()
        records = sb.view.requests()
        figures = tally(sb, prefix, expected)
        progress_post = next(
            p for p in sb.view.posts("alerts") if p.message.startswith(f"{prefix}progress")
        )
        figures.update(
            flushed=flushed,
            seconds=round(elapsed, 1),
            requests=len(records),
            faults=dict(
                Counter(r.fault for r in records if r.fault)
                + Counter({k: v for k, v in injected.items()})
            ),
            fault_fraction=round(
                (sum(1 for r in records if r.fault) + injected["stall past read timeout"])
                / max(1, len(records)),
                3,
            ),
            progress_final=progress_post.message == final,
            progress_edits=len(progress_post.edits),
            sender_failed=sender.failed,
        )
        return figures
    finally:
        sb.faults.clear()
        client.close(timeout=5)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_1000_messages_under_30_percent_faults_arrive_exactly_once_in_order(
    mattermost_env: Sandbox,
) -> None:
    f = run_fault_scenario(mattermost_env, n=1000)
    assert f["flushed"], f
    assert f["fault_fraction"] >= 0.25, f  # the faults really happened
    for mode in ("status:503", "drop_before", "drop_after", "status:429"):
        assert f["faults"].get(mode, 0) > 0, (mode, f)
    assert f["faults"]["stall past read timeout"] >= 5, f
    assert (f["sent"], f["delivered"], f["lost"], f["doubled"]) == (1001, 1001, 0, 0), f
    assert f["stray"] == 0 and f["misplaced"] == 0, f
    assert f["in_order"], f
    assert f["sender_failed"] == 0, f
    assert f["progress_final"], f  # newest update won
    assert f["progress_edits"] < 200, f  # updates were coalesced, not all queued
    assert outbox.list_entries() == []


# ---------------------------------------------------------------- 60 s outage


def run_outage_scenario(sb: Sandbox, down_for: float = 60.0) -> dict[str, Any]:
    """A loop sends in the background; the server is down ``down_for`` s in the middle."""
    prefix = "out-"
    client = make_client(sb, read_timeout=2.0)
    try:
        warm_up(client, prefix)
        sender = client.sender
        expected: dict[str, list[str]] = {target_key(t): [] for t in TARGETS}
        stop = threading.Event()
        sent_while_down = 0
        down = threading.Event()

        def loop() -> None:
            nonlocal sent_while_down
            i = 0
            while not stop.is_set():
                t = TARGETS[i % len(TARGETS)]
                text = f"{prefix}{i:04d}"
                sender.post(text, **t)
                expected[target_key(t)].append(text)
                if down.is_set():
                    sent_while_down += 1
                i += 1
                time.sleep(0.2)

        worker = threading.Thread(target=loop, daemon=True)
        worker.start()
        time.sleep(2)
        sb.stop()
        down.set()
        time.sleep(down_for / 2)
        spooled = outbox.list_entries()  # while down, the messages wait on disk
        time.sleep(down_for / 2)
        down.clear()
        sb.start()
        back = time.monotonic()
        time.sleep(3)
        stop.set()
        worker.join(5)
        flushed = sender.flush(timeout=120)
        figures = tally(sb, prefix, expected)
        figures.update(
            flushed=flushed,
            sent_while_down=sent_while_down,
            spooled_during_outage=len(spooled),
            spooled_active=all(e.active for e in spooled),
            drained_seconds=round(time.monotonic() - back, 1),
        )
        return figures
    finally:
        if not sb.running:
            sb.start()
        client.close(timeout=5)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_server_down_60s_while_a_loop_keeps_sending(mattermost_env: Sandbox) -> None:
    f = run_outage_scenario(mattermost_env, down_for=60.0)
    assert f["flushed"], f
    assert f["sent_while_down"] >= 250, f
    assert f["spooled_during_outage"] >= 100 and f["spooled_active"], f
    assert f["lost"] == 0 and f["doubled"] == 0 and f["stray"] == 0, f
    assert f["misplaced"] == 0 and f["in_order"], f
    assert outbox.list_entries() == []


# ---------------------------------------------------------------- 8 threads x 200


def run_threads_scenario(sb: Sandbox, *, background: bool) -> dict[str, Any]:
    prefix = "bg-" if background else "sync-"
    client = make_client(sb, read_timeout=5.0)
    errors: list[BaseException] = []
    try:
        warm_up(client, prefix)
        expected: dict[str, list[str]] = {target_key(t): [] for t in TARGETS}
        per_thread: dict[int, list[str]] = {}
        barrier = threading.Barrier(8)

        def work(k: int) -> None:
            t = TARGETS[k % len(TARGETS)]
            texts = [f"{prefix}{k}-{i:03d}" for i in range(200)]
            per_thread[k] = texts
            barrier.wait()
            try:
                for text in texts:
                    if background:
                        client.sender.post(text, **t)
                    else:
                        client.send(text, **t)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(300)
        flushed = client.sender.flush(300) if background else True
        got = posts_by_target(sb, prefix)
        for key in expected:  # the order within one target is per thread
            expected[key] = list(got[key])
        figures = tally(sb, prefix, expected)
        counts = Counter(m for msgs in got.values() for m in msgs)
        figures["delivered"] = sum(1 for texts in per_thread.values() for m in texts if counts[m])
        figures["sent"] = sum(len(v) for v in per_thread.values())
        figures["lost"] = figures["sent"] - figures["delivered"]
        figures["per_thread_order"] = all(
            [m for m in got[target_key(TARGETS[k % len(TARGETS)])] if m.startswith(f"{prefix}{k}-")]
            == texts
            for k, texts in per_thread.items()
        )
        figures["errors"] = [repr(e) for e in errors]
        figures["flushed"] = flushed
        return figures
    finally:
        client.close(timeout=5)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("background", [False, True], ids=["send", "sender"])
def test_8_threads_x_200_messages_through_one_client(
    mattermost_env: Sandbox, background: bool
) -> None:
    f = run_threads_scenario(mattermost_env, background=background)
    assert f["errors"] == [], f
    assert f["flushed"], f
    assert (f["sent"], f["delivered"], f["lost"], f["doubled"]) == (1600, 1600, 0, 0), f
    assert f["per_thread_order"], f
