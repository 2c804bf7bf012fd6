"""The caller's cost of ``logger.error(...)`` with ``MattermostHandler``, against peers::

    python bench/bench_logging.py [--records 20000] [--quick]

Each handler sits alone on a fresh logger; the time of every ``logger.error("step %d
failed: %s", i, reason)`` call is taken with ``perf_counter_ns`` and the median and
99th percentile are printed, side by side with:

* ``NullHandler``: what the logging machinery itself costs (the floor);
* ``QueueHandler`` (standard library): the usual non-blocking pattern, a queue and a
  listener thread (here writing to a null stream);
* ``HTTPHandler`` (standard library): one blocking HTTP request per record, the shape
  of the simple "POST every record to a webhook" handlers; fewer records (``--http``).

The sandbox runs in a child process (its HTTP threads do not share our GIL). Our
handler posts with ``interval=10``; the number of posts it made for all the records is
printed too. Target: our median below 50 µs.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import logging.handlers
import multiprocessing as mp
import os
import queue
import statistics
import sys
import time
from multiprocessing.connection import Connection
from urllib.parse import urlsplit


def serve(conn: Connection) -> None:
    from mattermost_notify.sandbox import Sandbox

    # HTTPHandler drops each connection after its answer; socketserver prints every reset
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the life of this process
    with Sandbox() as sb:
        conn.send((sb.url, sb.token, sb.team, sb.webhook_url))
        while True:
            cmd = conn.recv()
            if cmd == "quit":
                break
            if cmd == "posts":
                conn.send(len(sb.view.posts(channel="alerts")))


class WebhookHTTPHandler(logging.handlers.HTTPHandler):
    """The standard HTTPHandler with the form field an incoming webhook reads."""

    def mapLogRecord(self, record: logging.LogRecord) -> dict[str, str]:
        return {"payload": json.dumps({"text": self.format(record), "channel": "alerts"})}


def measure(handler: logging.Handler, records: int) -> list[int]:
    log = logging.getLogger(f"bench.{id(handler)}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    timer = time.perf_counter_ns
    costs = []
    try:
        for i in range(records):
            t0 = timer()
            log.error("step %d failed: %s", i, "loss is nan")
            costs.append(timer() - t0)
    finally:
        log.removeHandler(handler)
    return costs


def row(name: str, costs: list[int], note: str = "") -> tuple[str, float, float, str]:
    ordered = sorted(costs)
    median = statistics.median(ordered) / 1000
    p99 = ordered[int(len(ordered) * 0.99) - 1] / 1000
    return name, median, p99, note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--http", type=int, default=300, help="records for HTTPHandler")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.records, args.http = 2000, 50

    parent, child = mp.Pipe()
    proc = mp.Process(target=serve, args=(child,), daemon=True)
    proc.start()
    url, token, team, webhook_url = parent.recv()
    try:
        import mattermost_notify as notify

        rows = [row("NullHandler (logging itself)", measure(logging.NullHandler(), args.records))]

        sink = logging.StreamHandler(io.StringIO())
        q: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        listener = logging.handlers.QueueListener(q, sink)
        listener.start()
        costs = measure(logging.handlers.QueueHandler(q), args.records)
        listener.stop()
        rows.append(row("QueueHandler + listener (stdlib)", costs))

        client = notify.Notify(token=token, url=url, team_name=team)
        ours = notify.MattermostHandler(channel="alerts", interval=10, client=client)
        costs = measure(ours, args.records)
        ours.flush(timeout=30)
        posts = parent.send("posts") or parent.recv()
        ours.close()
        client.close()
        rows.append(
            row(
                "MattermostHandler (ours)",
                costs,
                f"{posts} posts for {args.records} records",
            )
        )

        parts = urlsplit(webhook_url)
        http = WebhookHTTPHandler(parts.netloc, parts.path, method="POST")
        before = parent.send("posts") or parent.recv()
        costs = measure(http, args.http)
        posts = (parent.send("posts") or parent.recv()) - before
        rows.append(
            row(
                "HTTPHandler to a webhook (stdlib)",
                costs,
                f"{posts} posts for {args.http} records",
            )
        )
    finally:
        parent.send("quit")
        proc.join(10)

    floor = rows[0][1]
    print(f"\n{args.records} records per handler (HTTPHandler: {args.http})\n")
    print("| handler | median µs per record | p99 µs | ratio to NullHandler | |")
    print("| --- | --- | --- | --- | --- |")
    for name, median, p99, note in rows:
        print(f"| {name} | {median:.1f} | {p99:.1f} | {median / floor:.1f} | {note} |")
    ours_median = rows[2][1]
    verdict = "ok" if ours_median < 50 else "ABOVE TARGET"
    print(f"\nours: median {ours_median:.1f} µs per record (target < 50 µs: {verdict})")


if __name__ == "__main__":
    main()
