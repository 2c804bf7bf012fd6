"""Reliability figures (issue #7) in one command.

    .venv/bin/python bench/report_reliability.py [--quick] [--outage SECONDS]

Against fresh local sandboxes, over real HTTP, it runs the same scenarios as
``tests/test_delivery_*.py`` and prints:

* messages sent / delivered / lost / doubled under ~30 % faults, through a
  60 s outage (``--outage`` to change), and with 8 threads x 200;
* every bad input tried and how it was answered (a table);
* every attack from outside (hostile servers, FIFOs, /dev/zero, real processes) and
  whether the promise held (a table, from ``tests/test_delivery_attacks.py``);
* occurrences of the token in logs, exceptions, files and CLI output (must be 0).

``--quick`` runs 200 messages and a 10 s outage. Exit status 1 when a figure
is off (anything lost, doubled, unanswered, or a token found).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))


def _isolate() -> Path:
    tmp = Path(tempfile.mkdtemp(prefix="mn-reliability-"))
    for name in ("home", "data", "config", "cwd"):
        (tmp / name).mkdir()
    os.environ["HOME"] = str(tmp / "home")
    os.environ["XDG_CONFIG_HOME"] = str(tmp / "config")
    os.environ["MATTERMOST_NOTIFY_DATA_DIR"] = str(tmp / "data")
    os.environ.pop("MATTERMOST_NOTIFY_CONFIG", None)
    os.chdir(tmp / "cwd")
    return tmp


def _env_for(sb: object) -> None:
    os.environ["MATTERMOST_NOTIFY_URL"] = sb.url  # type: ignore[attr-defined]
    os.environ["MATTERMOST_NOTIFY_TOKEN"] = sb.token  # type: ignore[attr-defined]
    os.environ["MATTERMOST_NOTIFY_TEAM"] = sb.team  # type: ignore[attr-defined]
    import mattermost_notify.api as api

    api._reset()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 messages, 10 s outage")
    parser.add_argument("--outage", type=float, default=None, help="outage length in seconds")
    args = parser.parse_args(argv)
    n = 200 if args.quick else 1000
    outage = args.outage if args.outage is not None else (10.0 if args.quick else 60.0)

    tmp = _isolate()
    import test_delivery_attacks as attacks
    import test_delivery_bad_input as bad
    import test_delivery_faults as faults
    import test_delivery_secrets as secrets

    from mattermost_notify.sandbox import Sandbox

    warnings.simplefilter("ignore")
    problems = 0

    print("== Delivery (real HTTP, local sandbox) ==")
    header = f"{'scenario':<44} {'sent':>6} {'delivered':>9} {'lost':>5} {'doubled':>7} order"
    print(header)
    print("-" * len(header))
    runs = []
    with Sandbox(port=0) as sb:
        _env_for(sb)
        f = faults.run_fault_scenario(sb, n=n)
        runs.append((f"{n} msgs, {f['fault_fraction']:.0%} of requests faulted", f))
    with Sandbox(port=0) as sb:
        _env_for(sb)
        runs.append(
            (f"loop through a {outage:.0f} s outage", faults.run_outage_scenario(sb, outage))
        )
    for background in (False, True):
        with Sandbox(port=0) as sb:
            _env_for(sb)
            name = "8 threads x 200, " + ("background sender" if background else "send()")
            runs.append((name, faults.run_threads_scenario(sb, background=background)))
    for name, f in runs:
        order = f.get("in_order", True) and f.get("per_thread_order", True)
        print(
            f"{name:<44} {f['sent']:>6} {f['delivered']:>9} {f['lost']:>5} {f['doubled']:>7} "
            f"{'kept' if order else 'BROKEN'}"
        )
        if f["lost"] or f["doubled"] or not order:
            problems += 1
    fault_run = runs[0][1]
    print(
        f"\nfaults injected in the {n}-message run: "
        + ", ".join(f"{k} x{v}" for k, v in sorted(fault_run["faults"].items()))
        + f"; {fault_run['requests']} requests, {fault_run['seconds']} s;"
        f" progress message edited {fault_run['progress_edits']} times for"
        f" {n // 5 + 1} updates (coalesced), final text"
        f" {'right' if fault_run['progress_final'] else 'WRONG'}"
    )
    o = runs[1][1]
    print(
        f"outage: {o['sent_while_down']} messages queued while down,"
        f" {o['spooled_during_outage']} on disk at mid-outage, drained {o['drained_seconds']} s"
        " after the server came back"
    )

    print("\n== Bad input ==")
    rows = []
    with Sandbox(port=0) as sb:
        _env_for(sb)
        for i, case in enumerate(bad.CASES):
            rows.append(bad.run_case(case, sb, tmp / "bad" / str(i)))
    w = max(len(r["case"]) for r in rows)
    print(f"{'input':<{w}}  {'answer':<24} ok  message")
    for r in rows:
        msg = " ".join(r["message"].split())
        msg = msg if len(msg) <= 90 else msg[:87] + "..."
        print(f"{r['case']:<{w}}  {r['answer']:<24} {'yes' if r['ok'] else 'NO '} {msg}")
    n_err = sum(1 for c in bad.CASES if c.expected is not None)
    n_ok = sum(1 for r in rows if r["ok"])
    print(
        f"\n{len(rows)} inputs tried ({n_err} must raise, {len(rows) - n_err} accepted by design);"
        f" {n_ok} answered as expected; nothing partial on the server:"
        f" {sum(1 for r in rows if r['nothing_partial'])}/{len(rows)}"
    )
    problems += len(rows) - n_ok

    print("\n== Attacks from outside (hostile servers, bad local files, processes) ==")
    held = 0
    with Sandbox(port=0) as sb:
        _env_for(sb)
        w = max(len(a.name) for a in attacks.ATTACKS)
        for i, attack in enumerate(attacks.ATTACKS):
            work = tmp / "attacks" / str(i)
            work.mkdir(parents=True)
            try:
                detail, ok = attack.run(attacks.Ctx(sb, work)), True
            except BaseException as exc:  # an AssertionError: the promise broke
                detail, ok = f"{type(exc).__name__}: {exc}", False
            held += ok
            detail = " ".join(detail.split())
            detail = detail if len(detail) <= 100 else detail[:97] + "..."
            print(f"{attack.item:<6} {attack.name:<{w}}  {'held' if ok else 'BROKE'}  {detail}")
    print(f"\n{len(attacks.ATTACKS)} attacks tried; {held} held")
    problems += len(attacks.ATTACKS) - held

    print("\n== Secrets ==")
    with Sandbox(port=0) as sb:
        _env_for(sb)
        texts = secrets.collect_everything(
            sb, tmp / "secrets" if (tmp / "secrets").mkdir() is None else tmp
        )
        found = secrets.count_secrets(texts, sb.token, secrets.WRONG_TOKEN)
    for source, count in found.items():
        print(f"{source:<14} {len(texts[source]):>8} chars searched, token found {count} time(s)")
    total = sum(found.values())
    print(f"secrets found: {total}")
    problems += total
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
