"""Benchmark of the core library against mattermostdriver and notify-mattermost 0.1.3.

One command, one sandbox, one Markdown report on stdout::

    .venv/bin/python bench/bench_library.py [--n 30]

* requests per message and median latency per message for a warm DM, a channel
  message and a channel message with 3 files, for this library, mattermostdriver and
  the original notify-mattermost 0.1.3 (installed on first use into bench/.cache/original
  with ``pip install --no-deps --target``; its import name clashes with ours, so every
  client runs in its own subprocess; the sandbox's request log counts the requests);
* import time of ``import mattermost_notify`` (and of ``mattermost_notify.Notify``, which
  pulls in requests) against ``import requests`` (subprocesses, median of many);
* peak memory growth of the client process while uploading a 200 MiB file.

The original hard-codes a bot named "notify", so the sandbox runs with that bot name.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
ORIGINAL = CACHE / "original"
REPO = HERE.parent

WORKER = textwrap.dedent(
    r"""
    import json, os, sys, time
    lib, url, token, team, n, files, op = sys.argv[1:8]
    n, files = int(n), files.split(",")
    user, channel = "alice", "alerts"

    if lib == "ours":
        import mattermost_notify as m
        client = m.Notify(token=token, url=url, team_name=team)
        def dm(text): client.send_to_user(text, user)
        def chan(text): client.send_to_channel(text, channel)
        def chan_files(text): client.send_to_channel(text, channel, files=files)
    elif lib == "original":
        from mattermost_notify.client import Notify
        client = Notify(url=url, token=token, team_name=team)
        def dm(text): client.send_to_user(text, user)
        def chan(text): client.send_to_channel(text, channel)
        def chan_files(text): client.send_to_channel(text, channel, files=files)
    else:
        from urllib.parse import urlsplit
        from mattermostdriver import Driver
        parts = urlsplit(url)
        d = Driver({"url": parts.hostname, "port": parts.port, "scheme": parts.scheme,
                    "token": token, "basepath": "/api/v4", "timeout": 30})
        d.login()
        me = d.users.get_user("me")["id"]
        cache = {}
        def dm_channel():
            if "dm" not in cache:
                uid = d.users.get_user_by_username(user)["id"]
                cache["dm"] = d.channels.create_direct_message_channel([me, uid])["id"]
            return cache["dm"]
        def chan_id():
            if "ch" not in cache:
                cache["ch"] = d.channels.get_channel_by_name_and_team_name(team, channel)["id"]
            return cache["ch"]
        def dm(text): d.posts.create_post({"channel_id": dm_channel(), "message": text})
        def chan(text): d.posts.create_post({"channel_id": chan_id(), "message": text})
        def chan_files(text):
            cid = chan_id()
            handles = [open(f, "rb") for f in files]
            try:
                parts = [("files", (os.path.basename(f), h)) for f, h in zip(files, handles)]
                up = d.files.upload_file(cid, parts)
            finally:
                for h in handles: h.close()
            ids = [i["id"] for i in up["file_infos"]]
            d.posts.create_post({"channel_id": cid, "message": text, "file_ids": ids})

    fn = {"dm": dm, "channel": chan, "files": chan_files}[op]
    fn("warm-up")
    print("ready", flush=True)
    sys.stdin.readline()
    lat = []
    for i in range(n):
        t = time.perf_counter()
        fn(f"{lib} {op} {i}")
        lat.append(time.perf_counter() - t)
    print(json.dumps(lat), flush=True)
    """
)

MEMORY = textwrap.dedent(
    r"""
    import os, sys, threading, time
    import mattermost_notify as m
    url, token, team, path = sys.argv[1:5]
    client = m.Notify(token=token, url=url, team_name=team)
    client.send_to_channel("memory warm-up", "alerts")
    small = path + ".small"
    with open(small, "wb") as fh: fh.write(b"x" * 1000)
    client.send_to_channel("memory warm-up", "alerts", files=[small])
    def rss():
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    base = rss(); peak = base; stop = False
    def sample():
        global peak
        while not stop:
            peak = max(peak, rss()); time.sleep(0.002)
    t = threading.Thread(target=sample); t.start()
    t0 = time.perf_counter()
    client.send_to_channel("200 MiB", "alerts", files=[path])
    dt = time.perf_counter() - t0
    stop = True; t.join()
    print(peak - base, dt)
    """
)

IMPORT = "import time; t = time.perf_counter(); {stmt}; print(time.perf_counter() - t)"


def ensure_original() -> Path:
    if not (ORIGINAL / "mattermost_notify" / "client.py").exists():
        ORIGINAL.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--no-deps",
                "--target",
                str(ORIGINAL),
                "notify-mattermost==0.1.3",
            ],
            check=True,
        )
    return ORIGINAL


def run_worker(sb, lib: str, op: str, n: int, files: list[str]) -> tuple[float, float]:
    """(requests per message, median latency ms) of ``n`` messages after a warm-up."""
    env = dict(os.environ)
    for var in list(env):
        if var.startswith("MATTERMOST_NOTIFY_"):
            del env[var]
    if lib == "original":
        env["PYTHONPATH"] = str(ORIGINAL)
        cwd = str(CACHE)  # not the repo: our package must not shadow the original
    else:
        cwd = str(REPO)
    errfile = tempfile.TemporaryFile("w+")  # noqa: SIM115 - lives as long as the worker
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            WORKER,
            lib,
            sb.url,
            sb.token,
            sb.team,
            str(n),
            ",".join(files),
            op,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=errfile,
        text=True,
        env=env,
        cwd=cwd,
    )
    assert proc.stdin and proc.stdout
    line = proc.stdout.readline().strip()
    if line != "ready":
        proc.kill()
        errfile.seek(0)
        last = (errfile.read().strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(last)
    sb.view.clear_requests()
    proc.stdin.write("go\n")
    proc.stdin.flush()
    lat = json.loads(proc.stdout.readline())
    proc.wait(60)
    count = len(sb.view.requests())
    return count / n, statistics.median(lat) * 1000


def import_times(reps: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, stmt in (
        ("import requests", "import requests"),
        ("import mattermost_notify", "import mattermost_notify"),
        (
            "import mattermost_notify; mattermost_notify.Notify",
            "import mattermost_notify; mattermost_notify.Notify",
        ),
        (
            "import mattermost_notify; mattermost_notify.Notify(...)",
            "import mattermost_notify as m; m.Notify(token='t', url='http://localhost:1').close()",
        ),
    ):
        samples = []
        for _ in range(reps):
            res = subprocess.run(
                [sys.executable, "-c", IMPORT.format(stmt=stmt)],
                capture_output=True,
                text=True,
                check=True,
                cwd=str(REPO),
            )
            samples.append(float(res.stdout) * 1000)
        out[name] = statistics.median(samples)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=30, help="messages per case (default 30)")
    parser.add_argument("--import-reps", type=int, default=40)
    parser.add_argument("--upload-mib", type=int, default=200)
    args = parser.parse_args()

    try:
        from mattermost_notify.sandbox import Sandbox
    except ImportError:  # the package facade of the sandbox not there yet
        from mattermost_notify.sandbox.server import Sandbox

    ensure_original()
    tmp = Path(tempfile.mkdtemp(prefix="mmn-bench-"))
    files = []
    for i in range(3):
        path = tmp / f"file{i}.txt"
        path.write_bytes(os.urandom(20_000))
        files.append(str(path))

    rows = []
    big = tmp / "big.bin"
    with big.open("wb") as fh:
        fh.truncate(args.upload_mib << 20)
    with Sandbox(bot_username="notify", max_file_size=(args.upload_mib + 10) << 20) as sb:
        for op, label in (
            ("dm", "warm DM"),
            ("channel", "channel message"),
            ("files", "message + 3 files"),
        ):
            for lib, name in (
                ("ours", "mattermost-notify"),
                ("driver", "mattermostdriver"),
                ("original", "notify-mattermost 0.1.3"),
            ):
                try:
                    reqs, ms = run_worker(sb, lib, op, args.n, files)
                    rows.append((label, name, f"{reqs:.2f}", f"{ms:.1f}"))
                except RuntimeError as exc:
                    rows.append((label, name, f"failed: {exc}", "-"))
        mem = subprocess.run(
            [sys.executable, "-c", MEMORY, sb.url, sb.token, sb.team, str(big)],
            capture_output=True,
            text=True,
            cwd=str(REPO),
            check=True,
        ).stdout.split()
    imports = import_times(args.import_reps)

    print(
        f"## Library benchmark ({args.n} messages per case, one sandbox, "
        f"{time.strftime('%Y-%m-%d')})\n"
    )
    print("| case | library | requests / message | median latency (ms) |")
    print("| --- | --- | ---: | ---: |")
    for label, name, reqs, ms in rows:
        print(f"| {label} | {name} | {reqs} | {ms} |")
    base = imports["import requests"]
    print(f"\n### Import time (median of {args.import_reps} subprocesses)\n")
    print("| statement | ms | ratio to `import requests` |")
    print("| --- | ---: | ---: |")
    for name, ms in imports.items():
        print(f"| `{name}` | {ms:.1f} | {ms / base:.2f} |")
    grow, secs = int(mem[0]), float(mem[1])
    print(f"\n### Upload of a {args.upload_mib} MiB file\n")
    print("| peak RSS growth of the client (MiB) | time (s) |")
    print("| ---: | ---: |")
    print(f"| {grow / 2**20:.1f} | {secs:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
