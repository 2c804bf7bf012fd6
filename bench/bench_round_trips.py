"""Round trips: requests per operation, CLI one-shot time, many targets, block=False cost.

    python bench/bench_round_trips.py [--quick] [--delay-ms 20] [--pairs 15]

Side by side in one run, against one sandbox, directly and behind a loopback proxy that
adds ``--delay-ms`` in each direction (bench/latency_proxy.py; opening a connection costs
a round trip there too), with mattermost-notify, notify-mattermost 0.1.3 (installed on
first use into bench/.cache/original), mattermostdriver, apprise (bot mode: channels
only) and curl:

1. requests per operation (the sandbox's request log counts them): a fresh process with
   no cache, a fresh process with a warm cache (ours: the id cache; apprise: its
   persistent store), and a warm process (the second operation in one process);
2. CLI one-shot wall time at ``--delay-ms``: ``mattermost-notify send`` to a user and to
   a channel (warm id cache, and ``--no-cache``), apprise's CLI, the original's CLI and
   curl posting to a known channel id; medians of paired runs and the ratio to curl;
3. 200 messages to 1 target and spread over 8 targets at ``--delay-ms``: the background
   sender, one blocking send at a time, and mattermostdriver one at a time; each
   target's order, lost and doubled messages checked on the server;
4. ``notify(..., block=False)`` cost per call on the local server (no proxy).

Processes run without PYTHONDONTWRITEBYTECODE, as an installed package runs (compiled
modules), after one warm-up run each.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_library import ORIGINAL, ensure_original  # noqa: E402
from latency_proxy import LatencyProxy  # noqa: E402

REPO = HERE.parent
BIN = Path(sys.executable).parent


class Env:
    """One sandbox, its proxy, and the directories every process gets."""

    def __init__(self, sb: Any, proxy: LatencyProxy, tmp: Path) -> None:
        self.sb, self.proxy, self.tmp = sb, proxy, tmp
        self.cache = tmp / "id-cache"
        self.apprise_store = tmp / "apprise"
        self.original_dir = tmp / "original-cwd"
        self.original_dir.mkdir()
        self.files = []
        for i in range(3):
            path = tmp / f"file{i}.txt"
            path.write_bytes(os.urandom(20_000))
            self.files.append(str(path))

    def url(self, far: bool) -> str:
        return f"http://127.0.0.1:{self.proxy.port}" if far else self.sb.url

    def environ(self, far: bool, *, original: bool = False) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MATTERMOST_NOTIFY_")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.update(
            MATTERMOST_NOTIFY_URL=self.url(far),
            MATTERMOST_NOTIFY_TOKEN=self.sb.token,
            MATTERMOST_NOTIFY_TEAM=self.sb.team,
            MATTERMOST_NOTIFY_CACHE_DIR=str(self.cache),
            MATTERMOST_NOTIFY_DATA_DIR=str(self.tmp / "data"),
            MATTERMOST_NOTIFY_CONFIG_DIR=str(self.tmp / "config"),
            HOME=str(self.tmp),
        )
        if original:
            env["PYTHONPATH"] = str(ORIGINAL)
            (self.original_dir / ".mattermost_notify").write_text(
                f"URL={self.url(far)}\nTEAM_NAME={self.sb.team}\nTOKEN={self.sb.token}\n"
            )
        return env

    def setup_environ(self, far: bool) -> dict[str, str]:
        """As after ``mattermost-notify setup``: no variable of ours, the settings in the
        user's config.toml and the id cache in the user's cache directory (platformdirs,
        under a HOME of its own)."""
        home = self.tmp / "setup-home"
        config = home / ".config" / "mattermost-notify" / "config.toml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(
            f'url = "{self.url(far)}"\ntoken = "{self.sb.token}"\nteam_name = "{self.sb.team}"\n'
        )
        config.chmod(0o600)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MATTERMOST_NOTIFY_")}
        for name in ("PYTHONDONTWRITEBYTECODE", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
            env.pop(name, None)
        env["HOME"] = str(home)
        return env

    def requests(self) -> int:
        time.sleep(0.05)  # the sandbox logs a request just after answering it
        return len(self.sb.view.requests())

    def clear(self) -> None:
        time.sleep(0.05)
        self.sb.view.clear_requests()


# ------------------------------------------------------------------ 1. requests per op

# the operations of ours and of the original: the same API, so the same calls
_SAME_OPS = """
def op(i):
    if OP == "dm": c.send_to_user(f"dm {i}", "alice")
    elif OP == "channel": c.send_to_channel(f"channel {i}", "alerts")
    elif OP == "files": c.send_to_channel(f"files {i}", "alerts", files=FILES)
    elif OP == "update":
        c.read_message_hook_from_file(HOOK)
        c.send_update(f"update {i}", id="bench-hook")
"""

# one script per library; OP and PHASE are filled in; "warm" does the op once first
SCRIPTS = {
    "ours": """
import mattermost_notify as m
c = m.Notify(token=TOKEN, url=URL, team_name=TEAM, id_cache=CACHE_ON)
"""
    + _SAME_OPS,
    "original": """
from mattermost_notify.client import Notify
c = Notify(url=URL, token=TOKEN, team_name=TEAM)
"""
    + _SAME_OPS,
    "driver": """
import os
from urllib.parse import urlsplit
from mattermostdriver import Driver
p = urlsplit(URL)
d = Driver({"url": p.hostname, "port": p.port, "scheme": "http", "token": TOKEN,
            "basepath": "/api/v4", "timeout": 30})
d.login()
me = d.client.userid
ids = {}
def chan():
    if "c" not in ids:
        ids["c"] = d.channels.get_channel_by_name_and_team_name(TEAM, "alerts")["id"]
    return ids["c"]
def dm():
    if "d" not in ids:
        uid = d.users.get_user_by_username("alice")["id"]
        ids["d"] = d.channels.create_direct_message_channel([me, uid])["id"]
    return ids["d"]
def op(i):
    if OP == "dm": d.posts.create_post({"channel_id": dm(), "message": f"dm {i}"})
    elif OP == "channel": d.posts.create_post({"channel_id": chan(), "message": f"c {i}"})
    elif OP == "files":
        cid = chan()
        hs = [open(f, "rb") for f in FILES]
        up = d.files.upload_file(cid, [("files", (os.path.basename(f), h))
                                       for f, h in zip(FILES, hs)])
        d.posts.create_post({"channel_id": cid, "message": f"files {i}",
                             "file_ids": [x["id"] for x in up["file_infos"]]})
    elif OP == "update":
        import json
        hook = json.load(open(HOOK))
        d.posts.patch_post(hook["post_id"], {"message": f"update {i}"})
""",
    "apprise": """
import apprise
from urllib.parse import urlsplit
p = urlsplit(URL)
asset = apprise.AppriseAsset(storage_path=STORE, storage_mode="flush" if CACHE_ON else "memory")
a = apprise.Apprise(asset=asset)
a.add(f"mmost://{p.hostname}:{p.port}/{TOKEN}?mode=bot&team={TEAM}&to=%23alerts")
def op(i):
    if OP == "channel": ok = a.notify(body=f"channel {i}")
    elif OP == "files": ok = a.notify(body=f"files {i}", attach=FILES)
    else: raise SystemExit("n/a")
    assert ok, "apprise failed"
""",
}

RUNNER = """
import sys
{script}
if PHASE == "warm":
    op(0)
    print("ready", flush=True)
    sys.stdin.readline()
op(1)
print("done", flush=True)
"""


def run_script(
    env: Env, lib: str, op: str, phase: str, *, cache_on: bool, hook: str, far: bool = False
) -> int | str:
    """Requests one operation cost (after the warm-up op when ``phase`` is "warm")."""
    consts = {
        "URL": env.url(far),
        "TOKEN": env.sb.token,
        "TEAM": env.sb.team,
        "OP": op,
        "PHASE": phase,
        "FILES": env.files,
        "HOOK": hook,
        "CACHE_ON": cache_on,
        "STORE": str(env.apprise_store),
    }
    head = "".join(f"{k} = {v!r}\n" for k, v in consts.items())
    code = head + RUNNER.format(script=textwrap.dedent(SCRIPTS[lib]))
    environ = env.environ(far, original=lib == "original")
    cwd = env.original_dir if lib == "original" else env.tmp
    env.clear()
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environ,
        cwd=cwd,
    )
    assert proc.stdin and proc.stdout
    if phase == "warm":
        if proc.stdout.readline().strip() != "ready":
            proc.kill()
            return _failure(proc)
        env.clear()
        proc.stdin.write("go\n")
        proc.stdin.flush()
    line = proc.stdout.readline().strip()
    proc.stdin.close()
    proc.wait(120)
    if line != "done":
        return _failure(proc)
    return env.requests()


def _failure(proc: subprocess.Popen[str]) -> str:
    err = (proc.stderr.read() if proc.stderr else "").strip().splitlines()
    last = err[-1] if err else "no output"
    return "n/a" if "n/a" in last else f"failed ({last[:60]})"


def make_hooks(env: Env) -> dict[str, str]:
    """A message with a hook file for each library that has hooks."""
    hooks = {}
    ours = env.tmp / "ours.msg"
    code = (
        "import mattermost_notify as m\n"
        f"c = m.Notify(token={env.sb.token!r}, url={env.sb.url!r}, team_name={env.sb.team!r})\n"
        "c.send_to_channel('to update', 'alerts', id='bench-hook')\n"
        f"c.write_message_hook_to_file('bench-hook', {str(ours)!r})\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=env.environ(False), cwd=env.tmp)
    hooks["ours"] = hooks["driver"] = str(ours)
    original = env.tmp / "original.msg"
    code = (
        "from mattermost_notify.client import Notify\n"
        f"c = Notify(url={env.sb.url!r}, token={env.sb.token!r}, team_name={env.sb.team!r})\n"
        "c.send_to_channel('to update', 'alerts', id='bench-hook')\n"
        f"c.write_message_hook_to_file('bench-hook', {str(original)!r})\n"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        env=env.environ(False, original=True),
        cwd=env.original_dir,
    )
    hooks["original"] = str(original)
    hooks["apprise"] = ""
    return hooks


def requests_per_operation(env: Env) -> list[str]:
    hooks = make_hooks(env)
    ops = [("dm", "DM"), ("channel", "channel message"), ("update", "update via hook file")]
    ops.append(("files", "message + 3 files"))
    libs = [
        ("ours", "mattermost-notify"),
        ("original", "notify-mattermost 0.1.3"),
        ("driver", "mattermostdriver"),
        ("apprise", "apprise (bot mode)"),
    ]
    out = [
        "| operation | library | fresh process, no cache | fresh process, warm cache "
        "| warm process |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for op, label in ops:
        for lib, name in libs:
            shutil.rmtree(env.cache, ignore_errors=True)
            shutil.rmtree(env.apprise_store, ignore_errors=True)
            cold = run_script(env, lib, op, "cold", cache_on=False, hook=hooks[lib])
            if lib in ("ours", "apprise"):
                run_script(env, lib, op, "cold", cache_on=True, hook=hooks[lib])  # fills it
                warm_cache: int | str = run_script(
                    env, lib, op, "cold", cache_on=True, hook=hooks[lib]
                )
            else:
                warm_cache = "no cache"
            warm = run_script(env, lib, op, "warm", cache_on=True, hook=hooks[lib])
            out.append(f"| {label} | {name} | {cold} | {warm_cache} | {warm} |")
        curl = {"dm": 1, "channel": 1, "update": 1, "files": 2}[op]
        out.append(f"| {label} | curl (ids known) | {curl} | {curl} | {curl} |")
    # the CLI from a fresh process
    out.append("")
    out.append("| `mattermost-notify` command | no cache (`--no-cache`) | warm cache |")
    out.append("| --- | ---: | ---: |")
    hook = env.tmp / "cli.msg"
    subprocess.run(
        [*cli_ours(), "send", "x", "--channel", "alerts", "--save-hook", str(hook)],
        env=env.environ(False),
        cwd=env.tmp,
        check=True,
        capture_output=True,
    )
    for label, argv in (
        ("send --user alice", ["send", "x", "--user", "alice"]),
        ("send --channel alerts", ["send", "x", "--channel", "alerts"]),
        ("update --hook FILE", ["update", "x", "--hook", str(hook)]),
        (
            "send --channel alerts --files (3)",
            ["send", "x", "--channel", "alerts", "--files", *env.files],
        ),
    ):
        counts = []
        for flag in (["--no-cache"], []):
            shutil.rmtree(env.cache, ignore_errors=True)
            if not flag:
                subprocess.run(
                    [*cli_ours(), *argv],
                    env=env.environ(False),
                    cwd=env.tmp,
                    check=True,
                    capture_output=True,
                )
            env.clear()
            subprocess.run(
                [*cli_ours(), *argv, *flag],
                env=env.environ(False),
                cwd=env.tmp,
                check=True,
                capture_output=True,
            )
            counts.append(env.requests())
        out.append(f"| `{label}` | {counts[0]} | {counts[1]} |")
    return out


# ------------------------------------------------------------------ 2. CLI one-shot


def cli_ours() -> list[str]:
    script = BIN / "mattermost-notify"
    return [str(script)] if script.exists() else [sys.executable, "-m", "mattermost_notify.cli"]


def known_ids(env: Env) -> tuple[str, str]:
    from mattermost_notify.client import Notify

    with Notify(token=env.sb.token, url=env.sb.url, team_name=env.sb.team, id_cache=False) as c:
        return c._channel_id("alerts"), c._dm_channel("alice")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str], environ: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one run of ``argv``."""
    cpu = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run(argv, env=environ, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{argv[:3]} failed: {done.stderr.strip()[-200:]}")
    return elapsed, _children_cpu() - cpu


CLI_TARGET = 2.2
"""`mattermost-notify send` to a user or a channel, warm cache: at most this times curl."""

MANY_TARGET = 4.0
"""200 messages over 8 targets: the background sender at least this much faster than
one blocking send at a time."""


def cli_one_shot(env: Env, pairs: int, delay_ms: float) -> list[str]:
    channel_id, _ = known_ids(env)
    far = env.environ(True)
    base = env.url(True)
    curl = [
        "curl", "-s", "-f", "-o", "/dev/null", "-X", "POST",
        "-H", f"Authorization: Bearer {env.sb.token}",
        "-H", "Content-Type: application/json",
        "-d", json.dumps({"channel_id": channel_id, "message": "curl"}),
        f"{base}/api/v4/posts",
    ]  # fmt: skip
    p = f"mmost://127.0.0.1:{env.proxy.port}/{env.sb.token}?mode=bot&team={env.sb.team}"
    apprise = [str(BIN / "apprise"), "-S", str(env.apprise_store), "-b", "apprise",
               f"{p}&to=%23alerts"]  # fmt: skip
    original = [sys.executable, str(ORIGINAL / "bin" / "mattermost-notify")]
    cases = {
        "curl, known channel id": (curl, far, env.tmp),
        "mattermost-notify send --user (warm cache)": (
            [*cli_ours(), "send", "x", "--user", "alice"], far, env.tmp),
        "mattermost-notify send --channel (warm cache)": (
            [*cli_ours(), "send", "x", "--channel", "alerts"], far, env.tmp),
        "mattermost-notify send --channel (warm cache; settings and cache as after `setup`)": (
            [*cli_ours(), "send", "x", "--channel", "alerts"], env.setup_environ(True), env.tmp),
        "mattermost-notify send --user --no-cache": (
            [*cli_ours(), "send", "x", "--user", "alice", "--no-cache"], far, env.tmp),
        "mattermost-notify send --channel --no-cache": (
            [*cli_ours(), "send", "x", "--channel", "alerts", "--no-cache"], far, env.tmp),
        "apprise (bot mode, persistent store warm)": (apprise, far, env.tmp),
        "notify-mattermost 0.1.3 send --user": (
            [*original, "send", "x", "--user", "alice"],
            env.environ(True, original=True), env.original_dir),
        "notify-mattermost 0.1.3 send --channel": (
            [*original, "send", "x", "--channel", "alerts"],
            env.environ(True, original=True), env.original_dir),
        "python -c 'import requests' (no request: the floor of a requests-based CLI)": (
            [sys.executable, "-c", "import requests"], far, env.tmp),
        "python -c pass (no request: the floor of any Python CLI)": (
            [sys.executable, "-c", "pass"], far, env.tmp),
    }  # fmt: skip
    samples: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    ratios: dict[str, list[float]] = {name: [] for name in cases}
    for argv, environ, cwd in cases.values():
        timed(argv, environ, cwd)  # warm-up: compiled modules, the caches filled
    for _ in range(pairs):
        reference = None
        for name, (argv, environ, cwd) in cases.items():
            seconds, used = timed(argv, environ, cwd)
            samples[name].append(seconds)
            cpu[name].append(used)
            if reference is None:
                reference = seconds
            ratios[name].append(seconds / reference)
    out = [
        f"| command ({delay_ms:g} ms each way, {pairs} paired runs) | median wall time "
        "| median ratio to curl (paired) | median CPU time (user + system) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name in cases:
        med = statistics.median(samples[name]) * 1000
        ratio = statistics.median(ratios[name])
        target = ""
        if name.startswith("mattermost-notify") and "warm cache" in name:
            target = f" (target <= {CLI_TARGET}: {'met' if ratio <= CLI_TARGET else 'NOT met'})"
        used = statistics.median(cpu[name]) * 1000
        out.append(f"| {name} | {med:.0f} ms | {ratio:.2f}{target} | {used:.0f} ms |")
    out += ["", *cli_phases(far, env.tmp, pairs)]
    return out


# the CLI's main() with two time stamps (CLOCK_MONOTONIC is one clock for all processes)
PHASES = """
import json, os, sys, time
from mattermost_notify import _preconnect
from mattermost_notify.cli import run
marks = {}
start, exit = _preconnect.start, os._exit
def early(*args):
    marks.setdefault("connect", time.monotonic())
    start(*args)
def done(code):
    marks["sent"] = time.monotonic()
    sys.stdout.write(json.dumps(marks) + "\\n")
    sys.stdout.flush()
    exit(code)
_preconnect.start, os._exit = early, done
sys.argv[0] = "mattermost-notify"
run()
"""


def cli_phases(environ: dict[str, str], cwd: Path, runs: int) -> list[str]:
    """Where the time of ``send --channel`` (warm cache) goes: when the connection is
    opened, when the answer is read and printed (the exit begins), when the process is
    gone; the command runs as its console script does (``cli.run``)."""
    marks: dict[str, list[float]] = {"connect": [], "sent": [], "gone": []}
    argv = [sys.executable, "-c", PHASES, "send", "x", "--channel", "alerts"]
    for _ in range(runs):
        spawned = time.monotonic()
        done = subprocess.run(argv, env=environ, cwd=cwd, capture_output=True, text=True)
        gone = time.monotonic()
        if done.returncode != 0:
            raise RuntimeError(f"phases: {done.stderr.strip()[-200:]}")
        stamps = json.loads(done.stdout.strip().splitlines()[-1])
        marks["connect"].append(stamps["connect"] - spawned)
        marks["sent"].append(stamps["sent"] - spawned)
        marks["gone"].append(gone - spawned)
    ms = {k: statistics.median(v) * 1000 for k, v in marks.items()}
    return [
        f"phases of `send --channel` (warm cache, {runs} runs, medians from the start of the "
        f"process): connection opened at {ms['connect']:.0f} ms (Python, argparse, the "
        f"settings), answer read and printed at {ms['sent']:.0f} ms, process gone at "
        f"{ms['gone']:.0f} ms"
    ]


# ------------------------------------------------------------------ 3. many targets

MANY = """
import json, sys, time
MODE, URL, TOKEN, TEAM, N, TARGETS = sys.argv[1:7]
N, TARGETS = int(N), TARGETS.split(",")
msgs = [(TARGETS[i % len(TARGETS)], f"m{i:04d}") for i in range(N)]
if MODE in ("sender", "blocking"):
    import mattermost_notify as m
    c = m.Notify(token=TOKEN, url=URL, team_name=TEAM)
    for t in TARGETS:  # the ids are looked up before the clock starts, for every mode
        c._channel_id(t)
    start = time.perf_counter()
    if MODE == "sender":
        for t, text in msgs:
            c.sender.post(text, channel=t)
        ok = c.sender.flush(timeout=600)
    else:
        for t, text in msgs:
            c.send_to_channel(text, t)
        ok = True
    elapsed = time.perf_counter() - start
    c.close()
else:
    from urllib.parse import urlsplit
    from mattermostdriver import Driver
    p = urlsplit(URL)
    d = Driver({"url": p.hostname, "port": p.port, "scheme": "http", "token": TOKEN,
                "basepath": "/api/v4", "timeout": 30})
    d.login()
    ids = {t: d.channels.get_channel_by_name_and_team_name(TEAM, t)["id"] for t in TARGETS}
    start = time.perf_counter()
    for t, text in msgs:
        d.posts.create_post({"channel_id": ids[t], "message": text})
    elapsed = time.perf_counter() - start
    ok = True
print(json.dumps({"elapsed": elapsed, "ok": ok}))
"""


def many_targets(env: Env, n: int, targets: list[str], delay_ms: float) -> list[str]:
    out = [
        f"| {n} messages at {delay_ms:g} ms each way | 1 target | {len(targets)} targets "
        "| lost / doubled / order kept |",
        "| --- | ---: | ---: | --- |",
    ]
    rows: dict[str, list[str]] = {}
    times: dict[tuple[str, int], float] = {}
    for mode, label in (
        ("sender", "background sender (`block=False`)"),
        ("blocking", "one blocking send at a time"),
        ("driver", "mattermostdriver, one at a time"),
    ):
        checks = []
        for chosen in (targets[:1], targets):
            before = {t: len(env.sb.view.posts(channel=t)) for t in chosen}
            done = subprocess.run(
                [sys.executable, "-c", MANY, mode, env.url(True), env.sb.token, env.sb.team,
                 str(n), ",".join(chosen)],
                capture_output=True, text=True, env=env.environ(True), cwd=env.tmp, timeout=900,
            )  # fmt: skip
            if done.returncode != 0:
                raise RuntimeError(f"{mode}: {done.stderr.strip()[-300:]}")
            result = json.loads(done.stdout)
            times[(mode, len(chosen))] = result["elapsed"]
            lost = doubled = 0
            ordered = True
            for i, t in enumerate(chosen):
                got = [p.message for p in env.sb.view.posts(channel=t)][before[t] :]
                want = [f"m{j:04d}" for j in range(i, n, len(chosen))]
                lost += len(set(want) - set(got))
                doubled += len(got) - len(set(got))
                ordered = ordered and [m for m in got if m in want] == want
            checks.append(f"{lost}/{doubled}/{'yes' if ordered else 'NO'}")
        rows[label] = [
            f"{times[(mode, 1)]:.2f} s",
            f"{times[(mode, len(targets))]:.2f} s",
            " and ".join(checks),
        ]
    for label, cells in rows.items():
        out.append(f"| {label} | {' | '.join(cells)} |")
    speedup = times[("blocking", len(targets))] / times[("sender", len(targets))]
    met = "met" if speedup >= MANY_TARGET else "NOT met"
    out.append(
        f"\nbackground sender over {len(targets)} targets: {speedup:.1f}x faster than one "
        f"blocking send at a time (target >= {MANY_TARGET:g}x: {met})"
    )
    return out


# ------------------------------------------------------------------ 4. block=False

NONBLOCKING = """
import json, statistics, sys, time
import mattermost_notify as notify
N = int(sys.argv[1])
notify.wakeup(always_send_to_channel="alerts")
notify.notify("warm-up")  # blocking: ids known, connection open
costs = []
for i in range(N):
    t = time.perf_counter()
    notify.notify(f"nb {i}", block=False)
    costs.append(time.perf_counter() - t)
ok = notify.flush(timeout=600)
blocking = []
for i in range(min(N, 200)):
    t = time.perf_counter()
    notify.notify(f"b {i}")
    blocking.append(time.perf_counter() - t)
costs.sort()
print(json.dumps({"median": statistics.median(costs), "p90": costs[int(0.9 * N)],
                  "p99": costs[int(0.99 * N)], "blocking": statistics.median(blocking),
                  "ok": ok}))
"""


def nonblocking(env: Env, n: int) -> list[str]:
    before = len(env.sb.view.posts(channel="alerts"))
    done = subprocess.run(
        [sys.executable, "-c", NONBLOCKING, str(n)],
        capture_output=True,
        text=True,
        env=env.environ(False),
        cwd=env.tmp,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip()[-300:])
    r = json.loads(done.stdout)
    posts = [p.message for p in env.sb.view.posts(channel="alerts")][before:]
    delivered = sum(1 for m in posts if m.startswith("nb "))
    return [
        "| `notify(..., block=False)`, local server | value |",
        "| --- | ---: |",
        f"| median cost per call ({n} calls) | {r['median'] * 1000:.3f} ms |",
        f"| 90th / 99th percentile | {r['p90'] * 1000:.3f} / {r['p99'] * 1000:.3f} ms |",
        f"| a blocking `notify()` for comparison (median) | {r['blocking'] * 1000:.2f} ms |",
        f"| delivered after flush | {delivered} / {n} |",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--pairs", type=int, default=15, help="paired CLI runs (default 15)")
    parser.add_argument(
        "--only", choices=["requests", "cli", "targets", "nonblocking"], action="append"
    )
    args = parser.parse_args()
    pairs = 3 if args.quick else args.pairs
    n_many = 40 if args.quick else 200
    n_nonblocking = 200 if args.quick else 2000
    only = set(args.only or ["requests", "cli", "targets", "nonblocking"])

    from mattermost_notify.sandbox import Sandbox

    ensure_original()
    targets = [f"target-{i}" for i in range(8)]
    tmp = Path(tempfile.mkdtemp(prefix="mmn-round-trips-"))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    today = time.strftime("%Y-%m-%d")
    print(f"## Round trips ({today}, {os.cpu_count()} cores, load average {load:.1f})\n")
    try:
        with (
            Sandbox(bot_username="notify", channels=("town-square", "alerts", *targets)) as sb,
            LatencyProxy(sb.port, delay=args.delay_ms / 1000) as proxy,
        ):
            env = Env(sb, proxy, tmp)
            sections = [
                ("requests", "### Requests per operation", lambda: requests_per_operation(env)),
                ("cli", "### CLI one-shot", lambda: cli_one_shot(env, pairs, args.delay_ms)),
                (
                    "targets",
                    "### Many messages, many targets",
                    lambda: many_targets(env, n_many, targets, args.delay_ms),
                ),
                ("nonblocking", "### Cost of block=False", lambda: nonblocking(env, n_nonblocking)),
            ]
            for key, title, run in sections:
                if key not in only:
                    continue
                load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
                print(f"{title} (load average {load:.1f})\n", flush=True)
                try:
                    print("\n".join(run()) + "\n", flush=True)
                except Exception as exc:  # one failing section must not hide the others
                    print(f"failed: {exc}\n", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
