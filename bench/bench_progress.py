"""Benchmark of progress messages (issue #6): one command, a Markdown report on stdout::

    .venv/bin/python bench/bench_progress.py [--iterations 2000000] [--quick]

1. Per-iteration cost of a bare ``for`` loop, of plain ``tqdm.auto.tqdm`` and of
   ``mattermost_notify.tqdm`` sending to a sandbox (both bars write to a null file, so
   the terminal is not measured). Best of ``--repeats`` runs. Target: ours within 1.2x
   of plain tqdm.
2. Wall time of a loop of ``--steps`` x 10 ms with our bar (min_interval 0.2 s) against
   a healthy server, a server that stalls every request 2 s, and a stopped server,
   against the same loop with plain tqdm (no server at all), each run paired with a
   plain run just before it; median of ``--wall-repeats`` paired ratios. Target: within
   1.02x.
3. Edits per minute of one bar with ``min_interval=5`` (``--edit-interval``) over
   ``--edit-seconds`` (60),
   counted in the sandbox's request log. Bound: 60 / min_interval.

The sandbox runs in a child process (its HTTP threads do not share our GIL) and is
driven over a pipe.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any


class NullFile:
    def write(self, s: str) -> int:
        return len(s)

    def flush(self) -> None:
        return None


# --------------------------------------------------------------------------- sandbox
def serve(conn: Connection, options: dict[str, Any]) -> None:
    from mattermost_notify.sandbox import Sandbox

    with Sandbox(**options) as sb:
        conn.send((sb.url, sb.token, sb.team))
        while True:
            cmd, arg = conn.recv()
            if cmd == "quit":
                break
            if cmd == "delay":
                sb.faults.delay(arg)
                conn.send(None)
            elif cmd == "clear":
                sb.faults.clear()
                sb.view.clear_requests()
                conn.send(None)
            elif cmd == "stop":
                sb.stop()
                conn.send(None)
            elif cmd == "start":
                sb.start()
                conn.send(None)
            elif cmd == "edits":
                conn.send(
                    sum(
                        1
                        for r in sb.view.requests()
                        if r.method == "PUT" and r.path.startswith("/api/v4/posts/")
                    )
                )
            elif cmd == "statuses":
                conn.send([r.status for r in sb.view.requests()])


class Server:
    def __init__(self, **options: Any) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=serve, args=(child, options), daemon=True)
        self.proc.start()
        self.url, self.token, self.team = self.conn.recv()

    def __call__(self, cmd: str, arg: Any = None) -> Any:
        self.conn.send((cmd, arg))
        return self.conn.recv()

    def close(self) -> None:
        self.conn.send(("quit", None))
        self.proc.join(10)


# --------------------------------------------------------------------------- measures
def best_of(repeats: int, fn: Callable[[], None]) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--wall-repeats", type=int, default=5)
    parser.add_argument("--edit-seconds", type=float, default=60.0)
    parser.add_argument("--edit-interval", type=float, default=5.0, help="min_interval")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.iterations, args.repeats, args.steps = 200_000, 2, 100
        args.wall_repeats, args.edit_seconds, args.edit_interval = 1, 5.0, 1.0

    from tqdm.auto import tqdm as plain

    from mattermost_notify import progress_bar
    from mattermost_notify.client import Notify
    from mattermost_notify.progress_bar import tqdm as ours

    server = Server()
    client = Notify(server.token, server.url, server.team)
    n = args.iterations

    def bare() -> None:
        for _ in range(n):
            pass

    def with_plain() -> None:
        for _ in plain(range(n), file=NullFile()):
            pass

    def with_ours() -> None:
        for _ in ours(range(n), file=NullFile(), channel="alerts", client=client, min_interval=0.5):
            pass

    # interleave the three so drift in machine load hits them alike
    costs: dict[str, list[float]] = {"bare": [], "plain": [], "ours": []}
    for _ in range(args.repeats):
        costs["bare"].append(best_of(1, bare))
        costs["plain"].append(best_of(1, with_plain))
        costs["ours"].append(best_of(1, with_ours))
    progress_bar.flush(30)
    per_it = {k: min(v) / n * 1e9 for k, v in costs.items()}

    print(f"## Progress messages benchmark (Python {sys.version.split()[0]})\n")
    print(f"### Per-iteration cost ({n:,} iterations, best of {args.repeats})\n")
    print("| loop | ns / iteration | vs plain tqdm |")
    print("|---|---:|---:|")
    for name, label in (
        ("bare", "bare `for`"),
        ("plain", "plain `tqdm.auto.tqdm`"),
        ("ours", "`mattermost_notify.tqdm` (sandbox, min_interval 0.5 s)"),
    ):
        print(f"| {label} | {per_it[name]:.1f} | {per_it[name] / per_it['plain']:.3f}x |")
    ratio = per_it["ours"] / per_it["plain"]
    print(f"\nTarget within 1.2x of plain tqdm: **{'met' if ratio <= 1.2 else 'NOT met'}**\n")

    # ---- wall time under a slow or absent server
    steps = args.steps

    def loop(bar_factory: Callable[[range], Any]) -> float:
        t0 = time.perf_counter()
        for _ in bar_factory(range(steps)):
            time.sleep(0.01)
        return time.perf_counter() - t0

    def ours_bar(r: range) -> Any:
        return ours(r, file=NullFile(), channel="alerts", client=client, min_interval=0.2)

    def plain_bar(r: range) -> Any:
        return plain(r, file=NullFile())

    # Each scenario runs right after its own plain-tqdm run and is compared with it
    # (paired ratios), so drift in the load of a shared machine cancels out.
    walls: dict[str, list[float]] = {"plain": [], "healthy": [], "delay": [], "down": []}
    ratios: dict[str, list[float]] = {"healthy": [], "delay": [], "down": []}
    edits_seen: dict[str, int] = {}
    for _ in range(args.wall_repeats):
        for scenario in ("healthy", "delay", "down"):
            server("clear")
            base = loop(plain_bar)
            walls["plain"].append(base)
            if scenario == "delay":
                server("delay", 2.0)
            elif scenario == "down":
                server("stop")
            wall = loop(ours_bar)
            walls[scenario].append(wall)
            ratios[scenario].append(wall / base)
            if scenario == "down":
                server("start")
            progress_bar.flush(120)
            edits_seen[scenario] = server("edits")
    med = {k: statistics.median(v) for k, v in walls.items()}
    print(
        f"### Loop wall time ({steps} x 10 ms sleep, median of {args.wall_repeats}; "
        "our bar with min_interval 0.2 s, i.e. 25x more edits than the default 5 s)\n"
    )
    print(
        "| server | wall time (s) | median paired ratio vs plain tqdm (no server) "
        "| edits delivered (last run) |"
    )
    print("|---|---:|---:|---:|")
    print(f"| none (plain tqdm) | {med['plain']:.3f} | 1.000x | - |")
    for key, label in (
        ("healthy", "healthy"),
        ("delay", "every request delayed 2 s"),
        ("down", "stopped during the loop"),
    ):
        ratio_k = statistics.median(ratios[key])
        print(f"| {label} | {med[key]:.3f} | {ratio_k:.3f}x | {edits_seen[key]} |")
    worst = max(statistics.median(ratios["delay"]), statistics.median(ratios["down"]))
    print(
        f"\nTarget within 1.02x: **{'met' if worst <= 1.02 else 'NOT met'}** (worst {worst:.3f}x)\n"
    )

    # ---- edits per minute
    server("clear")
    min_interval = args.edit_interval
    bar = ours(
        total=None, file=NullFile(), channel="alerts", client=client, min_interval=min_interval
    )
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < args.edit_seconds:
        bar.update()
        time.sleep(0.005)
    elapsed = time.perf_counter() - t0
    bar.close()
    progress_bar.flush(30)
    edits = server("edits")  # intermediate edits + the final one
    statuses = server("statuses")
    intermediate = edits - 1
    per_minute = intermediate * 60 / elapsed
    print(f"### Edits per minute (one bar, min_interval {min_interval} s, {elapsed:.1f} s)\n")
    print(
        "| edits delivered (incl. final) | intermediate edits / minute "
        "| bound 60 / min_interval | 429 answers |"
    )
    print("|---:|---:|---:|---:|")
    print(f"| {edits} | {per_minute:.1f} | {60 / min_interval:.0f} | {statuses.count(429)} |")
    ok = per_minute <= 60 / min_interval and edits <= elapsed / min_interval + 2
    print(
        "\nBound (intermediate edits/min <= 60/min_interval, all edits <= "
        f"elapsed/min_interval + 2): **{'met' if ok else 'NOT met'}**"
    )

    client.close()
    server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
