"""Ctrl-C under load: the script of ``test_ctrl_c_handled_in_the_body_then_a_value_error``
run many times side by side, with busy processes taking the CPU.

    python tests/stress_ctrl_c.py [RUNS] [AT_ONCE] [BUSY]     (defaults: 48 4 2)

Each child prints ``ready`` inside ``time.sleep(60)`` in its loop body and is sent SIGINT.
A child that has not ended 40 s later is hung: its threads' stacks are dumped
(``faulthandler`` on SIGUSR1) and printed, and the script exits with status 1. Before
the library's threads blocked SIGINT, about one child in eight hung on a two-core
machine: the kernel had given the signal to a sender thread, so the main thread's sleep
was not interrupted. Not a pytest test: it needs minutes and a loaded machine to say
anything.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

from test_progress_process import CTRL_C_CAUGHT_THEN_VALUE_ERROR

from mattermost_notify.sandbox import Sandbox

# the test's script, its threads' stacks dumped on SIGUSR1
CHILD = (
    "import faulthandler, signal\n"
    "faulthandler.register(signal.SIGUSR1, all_threads=True)\n" + CTRL_C_CAUGHT_THEN_VALUE_ERROR
)


def one(script: str, env: dict[str, str], results: list[tuple[str, str]]) -> None:
    proc = subprocess.Popen(
        [sys.executable, script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        results.append(("no ready line", proc.communicate()[1]))
        return
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)  # the stacks of every thread, to stderr
        time.sleep(2)
        proc.kill()
        out, err = proc.communicate()
        results.append(("HUNG", out + err))
        return
    ok = proc.returncode == 1 and "skipped" in out and "ValueError: loss is nan" in err
    results.append(("ok", "") if ok else (f"exit status {proc.returncode}", out + err))


def main() -> int:
    given = [int(a) for a in sys.argv[1:4]]
    runs, at_once, busy = given + [48, 4, 2][len(given) :]
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    results: list[tuple[str, str]] = []
    try:
        with Sandbox(port=0) as sb, tempfile.TemporaryDirectory() as tmp:
            env = dict(
                os.environ,
                HOME=tmp,
                XDG_CONFIG_HOME=tmp,
                XDG_DATA_HOME=tmp,
                MATTERMOST_NOTIFY_DATA_DIR=tmp,
                MATTERMOST_NOTIFY_CACHE_DIR=tmp,
                MATTERMOST_NOTIFY_URL=sb.url,
                MATTERMOST_NOTIFY_TOKEN=sb.token,
                MATTERMOST_NOTIFY_TEAM=sb.team,
            )
            env.pop("MATTERMOST_NOTIFY_CONFIG", None)
            script = os.path.join(tmp, "job.py")
            with open(script, "w", encoding="utf-8") as f:
                f.write(CHILD)
            while len(results) < runs:
                batch = [
                    threading.Thread(target=one, args=(script, env, results))
                    for _ in range(min(at_once, runs - len(results)))
                ]
                for t in batch:
                    t.start()
                for t in batch:
                    t.join()
                bad = [r for r in results if r[0] != "ok"]
                print(f"{len(results)} runs, {len(bad)} not ok", flush=True)
                if bad:
                    for what, text in bad:
                        print(f"--- {what}\n{text[-6000:]}")
                    return 1
    finally:
        for b in burners:
            b.kill()
            b.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
