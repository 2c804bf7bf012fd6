"""The ``mattermost-notify`` command.

Subcommands: ``setup``, ``test``, ``send``, ``update`` (the original
notify-mattermost 0.1.3 commands, with the same flags), ``sandbox``, ``demo``,
``outbox``, ``run`` and ``jupyter``.

Exit status: 0 on success; 2 for a mistake on the user's side (a bad flag, a
missing or malformed configuration, a missing file, a bad hook file), with one
line on stderr and no traceback; 1 when the server or the network failed
(unreachable, TLS, 401, 403, 404, 5xx); 130 on Ctrl-C.

Everything heavier than argparse is imported inside the subcommand that needs
it, so ``mattermost-notify --help`` is instant and each subcommand works even
when another part of the package is not installed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

from ._version import __version__

if TYPE_CHECKING:
    from .client import Notify
    from .config import Settings
    from .outbox import OutboxEntry

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "build_parser", "main", "run"]

PROG = "mattermost-notify"
EXIT_OK = 0
EXIT_FAILURE = 1  # the server or the network failed
EXIT_USAGE = 2  # the user's input is wrong (same as argparse's own usage errors)
EXIT_INTERRUPTED = 130

ORIGINAL_CONFIG_NAME = ".mattermost_notify"

CONFIGFILE_HELP = (
    "configuration file to use, or a directory holding a .mattermost_notify file "
    "(default: the usual search order, see the docs)"
)


class UsageError(Exception):
    """A mistake on the user's side that the CLI reports in one line (exit 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``prog: error: ... (see prog --help)``."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# --------------------------------------------------------------------------
# small helpers


def _out(text: str = "") -> None:
    print(text, flush=True)


def _read_message(message: str, stdin: IO[str] | None = None) -> str:
    """``-`` means: read the message from standard input."""
    if message != "-":
        return message
    stream = stdin if stdin is not None else sys.stdin
    text = stream.read()
    if text.endswith("\n"):
        text = text[:-1]
    if not text.strip():
        raise UsageError("the message read from standard input is empty")
    return text


def _expand_path(text: str) -> Path:
    """Expand ``~``, ``$HOME`` and ``$PWD`` the way the original ``setup -o`` did."""
    text = text.replace("$PWD", str(Path.cwd())).replace("${PWD}", str(Path.cwd()))
    return Path(os.path.expandvars(os.path.expanduser(text)))


def _resolve_configfile(value: str | None) -> Path | None:
    """``--configfile``: a file, or (like the original) a directory holding the file."""
    if value is None:
        return None
    path = _expand_path(value)
    if path.is_dir():
        for name in (ORIGINAL_CONFIG_NAME, "config.toml"):
            candidate = path / name
            if candidate.is_file():
                return candidate
        raise UsageError(f"no {ORIGINAL_CONFIG_NAME} or config.toml in the directory {path}")
    if not path.exists():
        raise UsageError(f"configuration file not found: {path}")
    return path


def _load_settings(args: argparse.Namespace) -> Settings:
    """Settings for a command; an explicit ``--configfile`` beats the environment."""
    from .config import load_settings

    overrides: dict[str, Any] = {"id_cache": False} if getattr(args, "no_cache", False) else {}
    configfile = _resolve_configfile(getattr(args, "configfile", None))
    if getattr(args, "allow_insecure", False):
        overrides["allow_insecure"] = True
    return load_settings(configfile=configfile, **overrides)


def _client(settings: Settings) -> Notify:
    # connect while requests and urllib3 are being imported (one round trip saved)
    from ._preconnect import start

    start(settings.url, settings.timeout[0])
    from .api import new_client

    return new_client(**settings.client_kwargs())


def _output_path(value: str | None) -> Path:
    """``setup -o``: a file, or a directory (then ``DIR/.mattermost_notify``, like the original)."""
    if value is None:  # the user configuration file
        from .config import user_config_dir

        return user_config_dir() / "config.toml"
    path = _expand_path(value)
    if path.is_dir():
        return path / ORIGINAL_CONFIG_NAME
    if value.endswith(("/", os.sep)):
        raise UsageError(f"output directory does not exist: {path}")
    if not path.parent.is_dir():
        raise UsageError(f"output directory does not exist: {path.parent}")
    return path


# --------------------------------------------------------------------------
# setup


def _prompt(label: str, default: str | None = None) -> str:
    suffix = f" [{default}]" if default else ""
    try:
        answer = input(f"{label}{suffix}: ").strip()
    except EOFError:
        answer = ""
    return answer or (default or "")


def _from_stdin(value: str | None, flag: str, what: str) -> str | None:
    """``-`` means: the first line of standard input."""
    if value != "-":
        return value
    text = sys.stdin.readline().strip()
    if not text:
        raise UsageError(f"no {what} on standard input ({flag} -)")
    return text


def _read_token(value: str | None, interactive: bool, current: str | None = None) -> str:
    value = _from_stdin(value, "--token", "token")
    if value:
        return value
    if interactive:
        import getpass

        keep = " [******** (Enter keeps the current token)]" if current else ""
        try:
            answer = getpass.getpass(f"Access token of the bot (input hidden){keep}: ").strip()
        except EOFError:
            answer = ""
        return answer or (current or "")
    return current or os.environ.get("MATTERMOST_NOTIFY_TOKEN", "")


def _current_config(path: Path) -> dict[str, Any]:
    """The settings in the file ``setup`` is about to replace ({} when none or unreadable)."""
    import warnings

    from .config import read_config_file
    from .errors import MattermostNotifyError

    if not path.is_file():
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return read_config_file(path)
    except MattermostNotifyError:
        return {}


def _backup(path: Path) -> Path:
    """Copy ``path`` to ``path.bak`` (mode 0600) before it is replaced."""
    from ._files import write_private

    backup = path.with_name(path.name + ".bak")
    write_private(backup, path.read_bytes())
    return backup


# what setup writes anew; the other settings of the file it replaces are kept
_SERVER_KEYS = ("url", "token", "team_name", "webhook_url")


def _token_flags(args: argparse.Namespace, current: dict[str, Any]) -> dict[str, Any]:
    """``--url``, ``--token`` and ``--team-name``: given, asked (``-i``) or kept from the file."""
    interactive = args.interactive or not any((args.url, args.team_name, args.token))
    if interactive and not args.url:
        args.url = _prompt(
            "URL of the Mattermost server (e.g. https://chat.example.org)", current.get("url")
        )
    if interactive and not args.team_name:
        args.team_name = _prompt(
            "Name of the team (the bot must be a member)", current.get("team_name")
        )
    flags = {
        "--url": ("url", args.url or current.get("url")),
        "--token": ("token", _read_token(args.token, interactive, current.get("token"))),
        "--team-name": ("team_name", args.team_name or current.get("team_name")),
    }
    missing = [flag for flag, (_key, value) in flags.items() if not value]
    if missing:
        raise UsageError(f"setup needs {', '.join(missing)} (or run: {PROG} setup -i)")
    return flags


def _webhook_flags(args: argparse.Namespace) -> dict[str, Any]:
    """``--webhook-url URL`` (``-``: read it from standard input): webhook mode."""
    if args.url or args.token or args.team_name:
        raise UsageError(
            "--webhook-url replaces --url, --token and --team-name (webhook mode): give one or "
            "the others"
        )
    url = _from_stdin(args.webhook_url, "--webhook-url", "webhook URL")
    return {"--webhook-url": ("webhook_url", url)}


def cmd_setup(args: argparse.Namespace) -> int:
    """write the configuration file (server URL, team, bot token) and check it

    Write the configuration file (mode 0600) and check the connection. Without
    --url/--team-name/--token it asks interactively; the token is read without echo.
    """
    from .config import make_settings, write_config

    output = _output_path(args.output)
    current = _current_config(output)
    flags = _webhook_flags(args) if args.webhook_url else _token_flags(args, current)
    if args.ca_bundle:
        flags["--ca-bundle"] = ("verify", args.ca_bundle)
    if args.allow_insecure:
        flags["--allow-insecure"] = ("allow_insecure", True)
    values = {k: v for k, v in current.items() if k not in _SERVER_KEYS}
    sources = {key: f"config file {output}" for key in values}
    for flag, (key, value) in flags.items():
        values[key], sources[key] = value, flag
    settings = make_settings(values, sources)

    status = EXIT_OK
    if args.no_check:
        _out("Not checked (--no-check).")
    else:
        if args.webhook_url:
            _out(f"Checking the incoming webhook on {settings.url} (nothing is posted) ...")
        else:
            _out(f"Checking the connection to {settings.url} ...")
        status = _print_report(_client(settings))
        if status != EXIT_OK and not args.force:
            kept = f"{output} is unchanged" if output.exists() else f"{output} was not created"
            _out(
                f"Nothing written: {kept}. Fix the problem above and run setup again, "
                "or write it anyway with --force."
            )
            return status

    backup = _backup(output) if output.exists() else None
    write_config(output, settings)
    mode = ", webhook mode" if args.webhook_url else ""
    done = f"the configuration file {output} (mode 0600){mode}"
    _out(f"Replaced {done}; the previous one is kept as {backup}." if backup else f"Wrote {done}.")
    if args.no_check:
        _out(f"Check it with: {PROG} test --configfile {output}")
    elif status != EXIT_OK:
        _out(f"Written anyway (--force); fix the problem above and run: {PROG} test")
    return status


# --------------------------------------------------------------------------
# test


def _print_report(client: Notify) -> int:
    """One line per check on stdout; the failing check (the last) once, on stderr."""
    with client:
        report = client.test_connection()
    for check in report.checks:
        if check.ok is False:
            print(f"{PROG}: {check.name} check failed: {check.detail}", file=sys.stderr, flush=True)
        else:
            _out(f"  {check}")
    if report.ok:
        _out("Connection successful!")
        return EXIT_OK
    return EXIT_FAILURE


def _print_sources(settings: Settings) -> None:
    """Where each setting came from (the token's value is never shown)."""
    from .config import KEYS

    for name in (key for key in KEYS if key in settings.sources):
        value = "(hidden)" if name in ("token", "webhook_url") else getattr(settings, name)
        if isinstance(value, tuple):
            value = list(value)
        _out(f"  {name} = {value}  (from {settings.sources[name]})")
    for note in settings.notes:
        _out(f"  note: {note}")


def cmd_test(args: argparse.Namespace) -> int:
    """check the server, TLS, token, bot and team, one line per check

    Check reachability, TLS, the token, the bot's identity, its team membership, the
    server version and limits. Exit 1 with the reason on failure.
    """
    settings = _load_settings(args)
    _out("Settings:")
    _print_sources(settings)
    _out(f"Checking the connection to {settings.url} ...")
    return _print_report(_client(settings))


# --------------------------------------------------------------------------
# send / update


def _check_files(files: Sequence[str] | None) -> list[str] | None:
    from ._checks import check_files

    return [str(spec.path) for spec in check_files(files)] or None


def _check_hook_target(path: Path) -> None:
    """Refuse a --save-hook path that could not be written, before anything is sent
    (sending first and failing after would make the user send the message twice)."""
    if path.is_dir():
        raise UsageError(f"--save-hook {path} is a directory: name a file in it")
    if path.exists() and not path.is_file():
        raise UsageError(f"--save-hook {path} exists and is not a regular file")
    if not path.parent.is_dir():
        raise UsageError(f"directory for --save-hook does not exist: {path.parent}")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise UsageError(f"--save-hook {path}: the directory {path.parent} is not writable")


def resolve_target(
    client: Notify, user: str | None, channel: str | None, command: str
) -> tuple[str, str | None]:
    """``client.resolve_target``; no target and no default is a usage error naming the flags."""
    from .errors import MessageError

    try:
        return client.resolve_target(user, channel)
    except MessageError:
        if user is not None or channel is not None:
            raise  # a bad name: its own message says what is wrong
        raise UsageError(
            f"{command} needs --channel or --user (or default_channel/default_user in the config)"
        ) from None


def _print_sent(kind: str, name: str, permalink: str | None) -> None:
    where = f"{'@' if kind == 'user' else '~'}{name.lstrip('@~#')}"
    _out(f"Sent to {where}: {permalink}" if permalink else f"Sent to {where}.")


def cmd_send(args: argparse.Namespace) -> int:
    """send a message (and files) to a channel or a user

    Send a message to a channel or a user. MESSAGE '-' reads it from standard input.
    """
    message = _read_message(args.message)
    files = _check_files(args.files)
    settings = _load_settings(args)
    msg_id = args.id
    if msg_id is None and args.save_hook:
        import uuid

        msg_id = str(uuid.uuid4())
    if args.save_hook:
        hook_path = _expand_path(args.save_hook)
        _check_hook_target(hook_path)
    handover = None
    if not files and msg_id is None:
        # one request without importing requests, when the id cache knows the target
        from ._preconnect import start

        start(settings.url, settings.timeout[0])
        from .one_shot import Posted, try_send

        outcome = try_send(settings, args.user, args.channel, message)
        if isinstance(outcome, Posted):
            _print_sent(outcome.kind, outcome.name, outcome.permalink)
            return EXIT_OK
        handover = outcome
    with _client(settings) as client:
        kind, name = resolve_target(client, args.user, args.channel, "send")
        pending = None
        if handover is not None:
            # the same message again: retries start within the window of the first attempt
            pending = handover.pending_post_id
            client.transport.max_retry_time = max(0.0, handover.retry_until - time.monotonic())
        sent = client.send(message, files=files, id=msg_id, pending_post_id=pending, **{kind: name})
        if name is None:  # webhook mode: the webhook's own channel, no permalink
            _out("Sent to the webhook's channel.")
        else:
            _print_sent(kind, name, sent.permalink)
        if args.save_hook:
            client.write_message_hook_to_file(msg_id, str(hook_path))
            _out(
                f"Saved the message hook to {hook_path}"
                f" (update it with: {PROG} update NEW_TEXT --hook {hook_path})"
            )
    return EXIT_OK


def cmd_update(args: argparse.Namespace) -> int:
    """edit a message sent earlier, through its hook file

    Replace the text of a message saved with 'send --save-hook FILE'.
    """
    from .errors import HookError

    message = _read_message(args.message)
    files = _check_files(args.files)
    hook_path = _expand_path(args.hook)
    if not hook_path.is_file():
        raise UsageError(f"hook file not found: {hook_path}")
    settings = _load_settings(args)
    with _client(settings) as client:
        try:
            hook = client.read_message_hook_from_file(str(hook_path))
        except HookError as exc:
            raise UsageError(
                f"{exc} (in 'update', -f means --hook, as in the original package; "
                "attach files with --files)"
            ) from None
        sent = client.send_update(message, id=hook.id, files=files)
        if sent.post_id != hook.post_id:
            # past the server's edit time limit the message went on in a new post: later
            # updates through this hook file must edit that one
            client.write_message_hook_to_file(hook.id, str(hook_path))
            _out(
                f"Message {hook.id!r} can no longer be edited (the server's edit time limit): "
                f"continued in a new post of its thread, {sent.permalink}; {hook_path} updated"
            )
            return EXIT_OK
        _out(f"Updated message {hook.id!r}: {sent.permalink}")
    return EXIT_OK


# --------------------------------------------------------------------------
# demo, outbox


def cmd_demo(args: argparse.Namespace) -> int:
    """see everything work against an embedded sandbox (no server needed)

    Start a sandbox in this process and walk through the examples: a direct message, a
    channel post with a file, an update by id, and a hook used from a second process.
    """
    from .demo import run_demo

    return run_demo(keep=args.keep)


def cmd_outbox(args: argparse.Namespace) -> int:
    """list, deliver or drop background messages that were not delivered yet

    Background messages that could not be delivered are kept on disk and sent by the
    next process; this command shows, sends or drops them.
    """
    from . import outbox

    if args.action == "list":
        entries = list(outbox.list_entries())
        if not entries:
            _out("The outbox is empty.")
            return EXIT_OK
        for entry in entries:
            _out(_describe_entry(entry))
        _out(f"{len(entries)} message(s) waiting.")
        return EXIT_OK
    if args.action == "drop":
        if not args.ids and not args.all:
            raise UsageError(
                "outbox drop needs the IDs of the entries to drop (see: "
                f"{PROG} outbox list), or --all to drop every entry"
            )
        if args.ids and args.all:
            raise UsageError("outbox drop takes IDs or --all, not both")
        count = outbox.drop_entries(ids=args.ids or None)
        _out(f"Dropped {count} message(s) from the outbox.")
        return EXIT_OK
    if args.ids:
        raise UsageError("outbox flush delivers everything; IDs are only for 'outbox drop'")
    return _flush_outbox(_load_settings(args), args.timeout)


def _flush_outbox(settings: Settings, timeout: float) -> int:
    """Deliver what exited processes left for this server, within ``timeout`` seconds.

    Counts come from this run's own tickets: sent, refused for good (removed, one line
    each), left (still in the outbox). Exit 1 when anything was not delivered.
    """
    import logging
    import warnings

    from . import outbox

    url = settings.url.rstrip("/")
    # entries another live process holds: neither ours to send nor "failed"
    busy = sum(1 for e in outbox.list_entries() if e.server_url.rstrip("/") == url and e.active)
    library_log = logging.getLogger("mattermost_notify")
    level = library_log.level
    client = _client(settings)
    tickets: list[Any] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # this command reports every failure itself, once: no log line or warning twice
        library_log.setLevel(logging.CRITICAL)
        try:
            sender = client.sender
            sender.exit_timeout = 0.0  # the exit flush must not stretch --timeout
            sender.hand_over_at_exit = False  # what is left stays in the outbox, as asked
            tickets = sender.resume_outbox()
            sender.flush(timeout)
            sender.close(timeout=0)
        finally:
            if all(t.done() for t in tickets):
                library_log.setLevel(level)
            # else the exit of this process says again what is left: it was said here
    done = [t for t in tickets if t.done()]
    failed = [t for t in done if t.exception(timeout=0) is not None]
    sent = len(done) - len(failed)
    left = len(tickets) - len(done)
    if not left:
        client.close()  # else a request is still on the wire: its entry stays on disk
    reasons = [_one_line(t.exception(timeout=0)) for t in failed]  # type: ignore[arg-type]
    for reason in dict.fromkeys(reasons):  # each once
        print(f"{PROG}: refused for good, removed from the outbox: {reason}", file=sys.stderr)
    summary = (
        f"{len(tickets)} message(s) were waiting for {url}; {sent} sent, "
        + (f"{len(failed)} refused for good, " if failed else "")
        + f"{left} left in the outbox."
    )
    if busy:
        summary += f" {busy} more were being sent by another process."
    _out(summary)
    if left:
        print(
            f"{PROG}: {left} message(s) for {url} could not be delivered within {timeout:g} s; "
            f"they stay in the outbox (try again: {PROG} outbox flush)",
            file=sys.stderr,
        )
    return EXIT_FAILURE if left or failed else EXIT_OK


def _describe_entry(entry: OutboxEntry) -> str:
    import datetime as dt

    when = dt.datetime.fromtimestamp(entry.created_at).strftime("%Y-%m-%d %H:%M:%S")
    text = " ".join(str(entry.message or "").split())
    if len(text) > 50:
        text = text[:47] + "..."
    state = " (being sent by a running process)" if entry.active else ""
    tries = f", {entry.attempts} attempt(s)" if entry.attempts else ""
    files = f", {len(entry.files)} file(s)" if entry.files else ""
    return (
        f"  {entry.entry_id}  {when}  {entry.kind} {entry.target} on {entry.server_url}: "
        f"{text!r}{files}{tries}{state}"
    )


# --------------------------------------------------------------------------
# subcommands provided by other modules (sandbox, jupyter)


def _delegate(parser: argparse.ArgumentParser, module: str, what: str) -> None:
    """The flags and the function of a subcommand that ``module`` provides."""
    import importlib

    try:
        mod = importlib.import_module(f"mattermost_notify.{module}")
    except ImportError as exc:
        parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        parser.set_defaults(func=_missing(what, exc))
        return
    mod.add_arguments(parser)
    parser.set_defaults(func=mod.run)


def _missing(what: str, exc: ImportError) -> Callable[[argparse.Namespace], int]:
    def run(_args: argparse.Namespace) -> int:
        raise UsageError(f"{what} is not available in this installation ({exc})")

    return run


# --------------------------------------------------------------------------
# the parser


def _add_allow_insecure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-insecure",
        action="store_true",
        help="allow a plain http:// URL to another machine (the token crosses the network "
        "in clear text; only on a trusted network)",
    )


def _add_connection_flags(parser: argparse.ArgumentParser, *, cache: bool = False) -> None:
    parser.add_argument("--configfile", help=CONFIGFILE_HELP)
    _add_allow_insecure(parser)
    if cache:
        parser.add_argument(
            "--no-cache",
            action="store_true",
            help="do not read or write the id cache on disk (user, channel and bot ids; "
            "same as id_cache = false in the configuration)",
        )


class _NotChosen:
    """Takes the flags of a subcommand that is not on this command line: argparse would
    check each one (tens of milliseconds for all of them, before a one-shot ``send``)."""

    def add_argument(self, *args: Any, **kwargs: Any) -> None:
        pass

    def add_mutually_exclusive_group(self, *args: Any, **kwargs: Any) -> _NotChosen:
        return self


def _subcommand(
    sub: Any, func: Callable[[argparse.Namespace], int], chosen: str | None
) -> argparse.ArgumentParser:
    """The parser of ``func`` (``cmd_NAME``): its docstring is the help (first line) and
    the description (the rest). Its flags are added only when ``chosen`` (the subcommand
    on the command line) is this one or none."""
    name = func.__name__[4:]
    help, _, description = (func.__doc__ or "").partition("\n\n")
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help, description=description)
    parser.set_defaults(func=func)
    if chosen is not None and chosen != name:
        return _NotChosen()  # type: ignore[return-value]
    return parser


def _first_positional(argv: Sequence[str]) -> str | None:
    for token in argv:
        if not token.startswith("-"):
            return token
    return None


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The argument parser. ``argv`` decides which delegated subcommand gets its flags loaded."""
    parser = _Parser(
        prog=PROG,
        description="Send notifications to Mattermost from scripts and notebooks.",
        epilog=f"Start with: {PROG} demo (no server needed), then {PROG} setup -i.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    chosen = _first_positional(argv)

    # setup ---------------------------------------------------------------
    p = _subcommand(sub, cmd_setup, chosen)
    p.add_argument("-i", "--interactive", action="store_true", help="ask for the missing values")
    p.add_argument(
        "-u", "--url", help="URL of the Mattermost server, e.g. https://chat.example.org"
    )
    p.add_argument("-n", "--team-name", help="name of the team (the bot must be a member)")
    p.add_argument(
        "-t",
        "--token",
        help="access token of the bot; '-' reads it from standard input "
        "(keeps it out of the shell history)",
    )
    p.add_argument(
        "-o",
        "--output",
        help="file to write, or a directory (then DIR/.mattermost_notify, like the original); "
        "default: the user configuration file",
    )
    p.add_argument(
        "--webhook-url",
        metavar="URL",
        help="webhook mode: the URL of an incoming webhook instead of --url/--token/"
        "--team-name (no edits or files); '-' reads it from standard input",
    )
    p.add_argument("--ca-bundle", metavar="PEM", help="CA bundle to verify the server's TLS with")
    _add_allow_insecure(p)
    p.add_argument("--no-check", action="store_true", help="write without testing the connection")
    p.add_argument(
        "--force",
        action="store_true",
        help="write the file even when the connection test fails (default: write only "
        "a configuration that passed)",
    )

    # test ----------------------------------------------------------------
    p = _subcommand(sub, cmd_test, chosen)
    _add_connection_flags(p)

    # send ----------------------------------------------------------------
    p = _subcommand(sub, cmd_send, chosen)
    p.add_argument("message", metavar="MESSAGE", help="the message (Markdown); '-' for stdin")
    dest = p.add_mutually_exclusive_group()
    dest.add_argument("-c", "--channel", help="name of the channel (the bot must be a member)")
    dest.add_argument("-u", "--user", help="user name to send a direct message to")
    p.add_argument("-f", "--files", nargs="+", metavar="FILE", help="files to attach")
    p.add_argument("--id", help="your id for the message, to update it later")
    p.add_argument(
        "-s",
        "--save-hook",
        metavar="FILE",
        help="save the message hook to FILE, for a later 'update --hook FILE'",
    )
    _add_connection_flags(p, cache=True)

    # update --------------------------------------------------------------
    p = _subcommand(sub, cmd_update, chosen)
    p.add_argument("message", metavar="MESSAGE", help="the new message; '-' for stdin")
    p.add_argument(
        "-f", "--hook", required=True, metavar="FILE", help="hook file written by send --save-hook"
    )
    p.add_argument("--files", nargs="+", metavar="FILE", help="files replacing the attached ones")
    _add_connection_flags(p, cache=True)

    # demo ----------------------------------------------------------------
    p = _subcommand(sub, cmd_demo, chosen)
    p.add_argument("--keep", action="store_true", help="keep the sandbox up until Ctrl-C")

    # outbox --------------------------------------------------------------
    p = _subcommand(sub, cmd_outbox, chosen)
    p.add_argument("action", choices=("list", "flush", "drop"), help="what to do")
    p.add_argument("ids", nargs="*", metavar="ID", help="drop: the entries to drop")
    p.add_argument("--all", action="store_true", help="drop: every entry")
    p.add_argument("--timeout", type=float, default=30.0, help="flush: seconds (default 30)")
    _add_connection_flags(p)

    # subcommands of other modules: their flags are loaded only when chosen --
    for name, module, what, help, description in (
        (
            "sandbox",
            "sandbox.cli",
            "the sandbox",
            "run a local Mattermost-compatible server for offline use and tests",
            "Run the sandbox server in the foreground until Ctrl-C.",
        ),
        (
            "run",
            "runner",
            "run",
            "run a command and post when it ends (status, duration, last output lines)",
            "Run COMMAND with its output passing through unchanged and post when it ends: its "
            "exit status or the signal that killed it, how long it ran, the host and the last "
            "lines of its output. Exits with the command's own status (128 + N when killed by "
            "signal N).",
        ),
        (
            "jupyter",
            "ipython.autoload",
            "the Jupyter extension",
            "load the IPython extension in every kernel: enable | disable | status",
            "Add or remove mattermost_notify in c.InteractiveShellApp.extensions of your "
            "IPython profile.",
        ),
    ):
        p = sub.add_parser(name, help=help, description=description)
        if chosen == name:
            _delegate(p, module, what)
    return parser


# --------------------------------------------------------------------------
# main


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (the console script exits with it)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list)
    args = parser.parse_args(args_list)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(func(args) or 0)
    except UsageError as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        from .errors import APIError, MattermostNotifyError, NetworkError

        if isinstance(exc, MattermostNotifyError):  # the server's or the network's, or ours
            print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
            return EXIT_FAILURE if isinstance(exc, APIError | NetworkError) else EXIT_USAGE
        if isinstance(exc, OSError):
            # a file we were asked to read or write: the user's side
            where = f": {exc.filename}" if exc.filename else ""
            print(f"{PROG}: error: {exc.strerror or exc}{where}", file=sys.stderr)
            return EXIT_USAGE
        raise


# commands that leave nothing behind once main() returned (no thread, no queued message)
_QUICK_EXIT = frozenset({"send", "update"})
_STATELESS_THREADS = frozenset({"mattermost-notify-deadlines", "mattermost-notify-connect"})


def run() -> NoReturn:
    """The console script: :func:`main`, then exit with its status.

    ``send`` and ``update`` skip the interpreter's teardown (tens of milliseconds for the
    modules of requests and urllib3): their client is closed and nothing else runs.
    """
    code = main()
    if _first_positional(sys.argv[1:]) in _QUICK_EXIT:
        import threading

        # the transport's deadline thread and the early connection's thread hold nothing
        others = [
            t
            for t in threading.enumerate()
            if t is not threading.current_thread() and t.name not in _STATELESS_THREADS
        ]
        if not others:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
