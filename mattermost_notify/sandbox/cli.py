"""``mattermost-notify sandbox``: run the sandbox server in the foreground."""

from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

MiB = 1024 * 1024


def _number(
    kind: type[int] | type[float], low: float, high: float | None = None, *, low_open: bool = False
) -> Any:
    """An argparse ``type`` accepting ``kind`` values in ``[low, high]`` (``(low, ...`` when
    ``low_open``); anything else is a one-line usage error naming the range."""
    if high is None:
        wanted = f"a number greater than {low:g}" if low_open else f"a number >= {low:g}"
    else:
        wanted = f"a number from {low:g} to {high:g}"
    if kind is int:
        wanted = wanted.replace("a number", "a whole number")

    def convert(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {wanted}") from None
        too_low = value <= low if low_open else value < low
        if too_low or (high is not None and value > high) or value != value:
            raise argparse.ArgumentTypeError(f"{text!r} is not {wanted}")
        return value

    return convert


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``sandbox`` subcommand's options to ``parser``."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=_number(int, 0, 65535), default=8065, help="port (default 8065; 0: any free)"
    )
    parser.add_argument("--token", help="the bot's access token (default: random)")
    parser.add_argument("--team", default="sandbox", help="team name (default sandbox)")
    parser.add_argument("--bot-username", default="notify-bot", help="the bot's user name")
    parser.add_argument(
        "--user",
        action="append",
        dest="users",
        metavar="NAME",
        help="a user (repeatable; default alice and bob)",
    )
    parser.add_argument(
        "--channel",
        action="append",
        dest="channels",
        metavar="NAME",
        help="a public channel with the bot in it (repeatable; default town-square and alerts)",
    )
    parser.add_argument(
        "--private-channel",
        action="append",
        dest="private_channels",
        metavar="NAME",
        help="a private channel with the bot in it (repeatable; default bot-private)",
    )
    parser.add_argument("--db", metavar="FILE", help="keep the state in this SQLite file")
    parser.add_argument("--rate-limit", action="store_true", help="enable rate limiting")
    parser.add_argument(
        "--rate-limit-per-sec", type=_number(float, 0, low_open=True), default=10.0, metavar="N"
    )
    parser.add_argument("--rate-limit-burst", type=_number(int, 1), default=100, metavar="N")
    parser.add_argument(
        "--max-file-size",
        type=_number(int, 1),
        default=100 * MiB,
        metavar="BYTES",
        help="FileSettings.MaxFileSize (default 100 MiB)",
    )
    parser.add_argument(
        "--post-edit-time-limit",
        type=_number(int, 0),
        default=None,
        metavar="SECONDS",
        help="reject edits of the message this long after the post (default: unlimited)",
    )
    parser.add_argument(
        "--max-post-size",
        type=int,
        default=16383,
        metavar="RUNES",
        help="ServiceSettings.MaxPostSize: the longest message (default 16383; old servers 4000)",
    )
    parser.add_argument(
        "--restrict-direct-message",
        choices=("any", "team"),
        default="any",
        help="TeamSettings.RestrictDirectMessage (team: DMs only between users sharing a team;"
        " the bot is not exempt with --server-version 11.1 or later)",
    )
    parser.add_argument("--server-version", default="10.6.0", help="version to report")
    parser.add_argument(
        "--write-config",
        metavar="FILE",
        help="write a configuration file (TOML, mode 0600) that wakeup() can use",
    )
    faults = parser.add_argument_group("fault injection")
    for flag, kind, default, metavar, text in (
        ("--fail-next", _number(int, 0), 0, "N", "answer the next N requests with --fail-status"),
        ("--fail-fraction", _number(float, 0, 1), 0.0, "P", "fail a seeded fraction P of requests"),
        ("--fail-status", _number(int, 400, 599), 503, "STATUS", None),
        ("--fault-seed", int, 0, "SEED", None),
        ("--drop-before", _number(int, 0), 0, "N", "drop the next N requests, unapplied"),
        ("--drop-after", _number(int, 0), 0, "N", "apply the next N requests, then drop them"),
        ("--delay", _number(float, 0), 0.0, "SECONDS", "stall every request this long"),
        ("--fault-path", str, None, "PREFIX", "faults only for paths starting with PREFIX"),
    ):
        faults.add_argument(flag, type=kind, default=default, metavar=metavar, help=text)


def _toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def write_config_file(path: str | Path, url: str, token: str, team: str) -> Path:
    """Write the TOML configuration of ARCHITECTURE.md with mode 0600."""
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    text = (
        "# written by `mattermost-notify sandbox`\n"
        f"url = {_toml_string(url)}\n"
        f"token = {_toml_string(token)}\n"
        f"team_name = {_toml_string(team)}\n"
    )
    tmp = target.with_name(target.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, target)
    return target


def build_sandbox(args: argparse.Namespace) -> Any:
    """The :class:`Sandbox` described by parsed arguments (not started)."""
    from .server import Sandbox

    names = ("port", "host", "token", "team", "bot_username", "db", "rate_limit")
    names += ("rate_limit_per_sec", "rate_limit_burst", "max_file_size", "post_edit_time_limit")
    options: dict[str, Any] = {name: getattr(args, name) for name in names}
    options.update(
        max_post_size=args.max_post_size,
        restrict_direct_message=args.restrict_direct_message,
        version=args.server_version,
    )
    for name in ("users", "channels", "private_channels"):
        if getattr(args, name):
            options[name] = tuple(getattr(args, name))
    sandbox = Sandbox(**options)
    path = args.fault_path
    if args.fail_next:
        sandbox.faults.fail_next(args.fail_next, args.fail_status, path_prefix=path)
    if args.drop_before:
        sandbox.faults.drop_before(args.drop_before, path_prefix=path)
    if args.drop_after:
        sandbox.faults.drop_after(args.drop_after, path_prefix=path)
    if args.fail_fraction:
        sandbox.faults.fail_fraction(
            args.fail_fraction, args.fault_seed, (args.fail_status,), path_prefix=path
        )
    if args.delay:
        sandbox.faults.delay(args.delay, path_prefix=path)
    return sandbox


def run(args: argparse.Namespace) -> int:
    """Run the sandbox until Ctrl-C (or SIGTERM); returns the exit status."""
    try:
        sandbox = build_sandbox(args)
        sandbox.start()
    except OSError as err:
        hint = ""
        if err.errno == errno.EADDRINUSE:
            hint = f" (port {args.port} is busy: pick another, or --port 0 for any free port)"
        reason = err.strerror or str(err)
        print(f"mattermost-notify sandbox: cannot start: {reason}{hint}", file=sys.stderr)
        return 1
    stop = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        store = sandbox._store
        with store.lock:
            public_channels = sorted(c["name"] for c in store.channels.values() if c["type"] == "O")
            private_channels = sorted(
                c["name"] for c in store.channels.values() if c["type"] == "P"
            )
        users = sorted(sandbox.user_tokens)
        lines = [
            f"Mattermost sandbox running at {sandbox.url}  (web page: {sandbox.url}/)",
            f"  token:            {sandbox.token}",
            f"  team:             {sandbox.team}",
            f"  bot:              {sandbox.bot_username}",
            f"  users:            {', '.join(users)}",
            f"  channels:         {', '.join(public_channels)}",
            f"  private channels: {', '.join(private_channels)}",
            f"  incoming webhook: {sandbox.webhook_url}",
            f"  state:            {args.db or 'in memory'}",
        ]
        if args.write_config:
            target = write_config_file(args.write_config, sandbox.url, sandbox.token, sandbox.team)
            lines.append(f"  config written:   {target}")
        lines.append("Press Ctrl-C to stop.")
        print("\n".join(lines), flush=True)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print("Mattermost sandbox stopped.", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m mattermost_notify.sandbox``."""
    parser = argparse.ArgumentParser(
        prog="python -m mattermost_notify.sandbox",
        description="Run a local Mattermost server (REST API v4 subset) for tests and demos.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
