"""Exit time of a script that sends in the background: one command, a Markdown table.

    python bench/bench_exit.py [--repeats 5]

A script queues 3 messages with ``notify_user(..., block=False)`` and exits. Its wall
time (interpreter start to exit) is measured against a healthy sandbox, a sandbox that
delays every request 2 s, a stopped one, and (for comparison, as the library behaved
before the hand-over) the slow sandbox with ``MATTERMOST_NOTIFY_DETACH_AT_EXIT=0``,
next to a script running plain tqdm over 3 items (no server at all). With a slow or
absent server the messages are handed to a detached sender process at exit; the table
also gives when the 3 messages arrived. Median of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

OURS = """
import mattermost_notify as notify
for i in range(3):
    notify.notify_user(f"message {i}", "alice", block=False)
"""
PLAIN = """
from tqdm import tqdm
for _ in tqdm(range(3)):
    pass
"""


def _run(code: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def _dm_count(sb) -> int:
    try:
        return len(sb.view.posts(dm_with="alice"))
    except KeyError:
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from mattermost_notify.sandbox import Sandbox

    rows = []
    with Sandbox(port=0) as sb, tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        env.update(
            MATTERMOST_NOTIFY_URL=sb.url,
            MATTERMOST_NOTIFY_TOKEN=sb.token,
            MATTERMOST_NOTIFY_TEAM=sb.team,
            MATTERMOST_NOTIFY_DATA_DIR=tmp,
            MATTERMOST_NOTIFY_CONFIG_DIR=tmp,
        )
        plain = statistics.median(_run(PLAIN, env) for _ in range(args.repeats))
        rows.append(("plain tqdm over 3 items (no server)", plain, None))
        scenarios = {
            "healthy": "healthy server",
            "delay": "server delaying every request 2 s",
            "stopped": "server stopped (started again 1 s after the exit)",
            "wait": "server delaying 2 s, MATTERMOST_NOTIFY_DETACH_AT_EXIT=0 (waits, as before)",
        }
        for kind, name in scenarios.items():
            times, arrivals = [], []
            for _ in range(args.repeats):
                before = _dm_count(sb)
                if kind in ("delay", "wait"):
                    sb.faults.delay(2.0)
                elif kind == "stopped":
                    sb.stop()
                start = time.perf_counter()
                run_env = dict(env, MATTERMOST_NOTIFY_DETACH_AT_EXIT="0") if kind == "wait" else env
                times.append(_run(OURS, run_env))
                if kind == "wait":  # what the exit left is delivered by the next process
                    sb.faults.clear()
                    _run("import mattermost_notify as n; n.wakeup(); n.flush(60)", env)
                if kind == "stopped":
                    time.sleep(1.0)
                    sb.start()
                deadline = time.monotonic() + 120
                while _dm_count(sb) < before + 3 and time.monotonic() < deadline:
                    time.sleep(0.05)
                arrivals.append(time.perf_counter() - start)
                sb.faults.clear()
            rows.append((name, statistics.median(times), statistics.median(arrivals)))
        total = _dm_count(sb)
    print("| script | exit time | ratio to plain tqdm | 3 messages arrived after |")
    print("| --- | --- | --- | --- |")
    for name, wall, arrived in rows:
        print(
            f"| {name} | {wall:.2f} s | {wall / plain:.2f} x | "
            + (f"{arrived:.2f} s |" if arrived is not None else "- |")
        )
    expected = 3 * 4 * args.repeats
    print(f"\nmessages delivered: {total} of {expected} (each exactly once: {total == expected})")
    return 0 if total == expected else 1


if __name__ == "__main__":
    sys.exit(main())
