"""Every benchmark in one command, one after the other (they must not share the CPU).

    python bench/run_all.py [--quick]

Runs ``bench_library.py``, ``bench_sandbox.py``, ``bench_progress.py``,
``bench_round_trips.py`` (peers and a latency proxy),
``bench_logging.py``, ``report_reliability.py``, ``bench_exit.py`` and
times ``mattermost-notify demo``;
each prints its own Markdown table. ``--quick`` passes ``--quick`` (or small sizes) to
those that take it.
Exit status 1 when one of them failed. Full run: about 12 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _machine() -> str:
    """CPU model, cores and Python version: what the figures were measured on."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def _load() -> str:
    """The 1-minute load average (the machine may be shared: figures vary with it)."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:  # pragma: no cover - not on every platform
        return "n/a"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    args = parser.parse_args()
    quick = ["--quick"] if args.quick else []
    runs = [
        ("library", [str(HERE / "bench_library.py"), *(["--n", "10"] if args.quick else [])]),
        ("sandbox", [str(HERE / "bench_sandbox.py")]),
        ("progress", [str(HERE / "bench_progress.py"), *quick]),
        ("logging", [str(HERE / "bench_logging.py"), *quick]),
        ("round trips", [str(HERE / "bench_round_trips.py"), *quick]),
        ("reliability", [str(HERE / "report_reliability.py"), *quick]),
        ("exit", [str(HERE / "bench_exit.py"), *(["--repeats", "1"] if args.quick else [])]),
        ("demo", ["-m", "mattermost_notify.cli", "demo"]),
    ]
    failed = []
    print(f"# Benchmarks, {time.strftime('%Y-%m-%d %H:%M %Z')}: {_machine()}", flush=True)
    for name, argv in runs:
        shown = " ".join(Path(a).name if a.endswith(".py") else a for a in argv)
        print(f"\n## {name}: python {shown}\n", flush=True)
        start = time.perf_counter()
        before = _load()
        code = subprocess.call([sys.executable, *argv])
        print(
            f"\n({name}: {time.perf_counter() - start:.1f} s, exit status {code}; "
            f"load average before / after: {before} / {_load()})",
            flush=True,
        )
        if code:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
