"""Sandbox benchmark: start time, posts/s with 8 concurrent clients, memory of a 100 MiB upload.

Run: ``.venv/bin/python bench/bench_sandbox.py``. Prints a Markdown table.
The throughput and memory figures use a sandbox in a separate process
(``python -m mattermost_notify.sandbox``), so the clients do not share its GIL.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import requests
from requests_toolbelt import MultipartEncoder

from mattermost_notify.sandbox import Sandbox

MiB = 1024 * 1024
TOKEN = "benchtoken0000000000000000"


def in_process_start_seconds(runs: int = 20) -> float:
    """Median time of ``Sandbox()`` + ``start()`` until the first ping is answered."""
    Sandbox().close()  # imports done
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        sandbox = Sandbox().start()
        requests.get(sandbox.url + "/api/v4/system/ping", timeout=5)
        times.append(time.perf_counter() - started)
        sandbox.close()
    return statistics.median(times)


def start_process() -> tuple[subprocess.Popen[str], str, float]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mattermost_notify.sandbox", "--port", "0", "--token", TOKEN],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = re.search(r"http://[\d.]+:\d+", proc.stdout.readline())
    assert url, "no URL printed"
    requests.get(url.group(0) + "/api/v4/system/ping", timeout=5)
    return proc, url.group(0), time.perf_counter() - started


def posts_per_second(url: str, clients: int = 8, per_client: int = 250) -> float:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    channel = requests.get(
        url + "/api/v4/teams/name/sandbox/channels/name/alerts", headers=auth, timeout=5
    ).json()["id"]
    failures: list[int] = []

    def run(index: int) -> None:
        with requests.Session() as session:
            session.headers.update(auth)
            for n in range(per_client):
                body = {
                    "channel_id": channel,
                    "message": f"bench {index}-{n}",
                    "pending_post_id": f"bench:{index}:{n}",
                }
                r = session.post(url + "/api/v4/posts", json=body, timeout=30)
                if r.status_code != 201:
                    failures.append(r.status_code)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    assert not failures, failures[:5]
    return clients * per_client / elapsed


def _rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


def _peak_rss(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(found.group(1)) * 1024 if found else None


def upload_memory(url: str, pid: int, size: int = 100 * MiB) -> tuple[int, int, float]:
    """(idle RSS, peak RSS during the upload, seconds) of the sandbox process."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    channel = requests.get(
        url + "/api/v4/teams/name/sandbox/channels/name/alerts", headers=auth, timeout=5
    ).json()["id"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.bin"
        with path.open("wb") as fh:
            block = b"\x5a" * MiB
            for _ in range(size // MiB):
                fh.write(block)
        time.sleep(0.2)
        idle = _rss(pid)
        try:  # reset the kernel's peak-RSS counter (Linux), so VmHWM is this upload's peak
            Path(f"/proc/{pid}/clear_refs").write_text("5")
            use_hwm = True
        except OSError:
            use_hwm = False
        polled = [idle]
        done = threading.Event()

        def poll() -> None:
            while not done.is_set():
                polled.append(_rss(pid))
                time.sleep(0.005)

        poller = threading.Thread(target=poll)
        poller.start()
        started = time.perf_counter()
        with path.open("rb") as fh:
            encoder = MultipartEncoder(
                fields=[
                    ("channel_id", channel),
                    ("files", ("big.bin", fh, "application/octet-stream")),
                ]
            )
            r = requests.post(
                url + "/api/v4/files",
                data=encoder,
                timeout=300,
                headers={**auth, "Content-Type": encoder.content_type},
            )
        elapsed = time.perf_counter() - started
        done.set()
        poller.join()
        assert r.status_code == 201, r.text
        assert r.json()["file_infos"][0]["size"] == size
        peak = max(polled)
        if use_hwm:
            hwm = _peak_rss(pid)
            if hwm is not None:
                peak = max(peak, hwm)
        return idle, peak, elapsed


def main() -> None:
    start_in_process = in_process_start_seconds()
    proc, url, start_cold = start_process()
    try:
        throughput = posts_per_second(url)
        idle, peak, upload_seconds = upload_memory(url, proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    rows = [
        (
            "start, in process (Sandbox() + start() + first ping), median of 20",
            f"{start_in_process * 1000:.1f} ms",
            "< 500 ms",
        ),
        (
            "start, new process (`python -m mattermost_notify.sandbox` until first ping)",
            f"{start_cold * 1000:.0f} ms",
            "< 500 ms",
        ),
        (
            "posts/s, 8 concurrent clients x 250 posts (sandbox in its own process)",
            f"{throughput:.0f}",
            "-",
        ),
        ("sandbox RSS idle", f"{idle / MiB:.1f} MiB", "-"),
        (
            "sandbox peak RSS above idle while receiving a 100 MiB upload",
            f"{(peak - idle) / MiB:.1f} MiB",
            "< 20 MiB",
        ),
        ("100 MiB upload time", f"{upload_seconds:.2f} s", "-"),
    ]
    print("| measure | value | target |")
    print("| --- | --- | --- |")
    for name, value, target in rows:
        print(f"| {name} | {value} | {target} |")


if __name__ == "__main__":
    main()
