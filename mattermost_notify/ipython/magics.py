"""``NotifyMagics``: the magics, the traitlets configuration and the cell events.

The magics are thin: ``%notify`` calls :func:`mattermost_notify.notify`, and the cell
notifications are queued on the core's background sender (``client.sender``), so the
network never holds a cell and a failed send is a warning, never an exception in it.

Configuration (``ipython_config.py``, ``ipython_kernel_config.py`` or ``%config``)::

    c.NotifyMagics.default_channel = "alerts"     # or default_user = "alice"
    c.NotifyMagics.auto_after = 120.0             # %autonotify threshold (seconds)
    c.NotifyMagics.notebook_key = "/abs/path.ipynb"  # the key of the hook store
    c.NotifyMagics.include_result = True          # put a short repr of the value in the message
    c.NotifyMagics.enabled = True                 # False: run cells, send nothing

Credentials are never traits: they come from the core configuration (environment,
config file, ``mattermost-notify setup`` or ``%notify_setup``).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from traitlets import Bool, Float, Unicode, observe

from .. import api, report
from ..errors import MattermostNotifyError, warn
from ..jobs import Job, mention_text, queue_on_sender
from .cellrun import FigureCollector, run_cell_body
from .notebook import NotebookKey, detect_notebook_key

__all__ = ["NotifyMagics", "split_notify_line"]

_AUTO_MODES = ("done", "error", "all")
_CELL_ID_PREFIX = "cell-"


def _in_magic_words(text: str) -> str:
    """The API's advice (``user_name=``) in the magics' options (``-u``/``-c``)."""
    return text.replace(
        "pass user_name= or channel_name=, or set a default "
        "(wakeup(always_send_to_user=...), default_user/default_channel)",
        "give -u USER or -c CHANNEL, or set a default (%config NotifyMagics.default_user = "
        "'alice', or default_user/default_channel in the configuration file)",
    )


@contextlib.contextmanager
def _quietly(what: str, words: Callable[[str], str] = str) -> Iterator[None]:
    """Turn any exception in the block into one warning "mattermost_notify: <what>: ..."
    (a notification problem must never become an error in the user's cell); ``words``
    rewrites the library's advice for the magics."""
    try:
        yield
    except MattermostNotifyError as exc:
        warn(f"mattermost_notify: {what}: {words(str(exc))}")
    except Exception as exc:  # a bug of ours, too
        warn(f"mattermost_notify: {what} ({type(exc).__name__}: {exc})")


# --------------------------------------------------------------------- %notify line parsing

_OPTION = re.compile(r"(--?[A-Za-z][\w-]*)(?:=(\S*)|(?=\s|$))")
_VALUE = re.compile(r"\"([^\"]*)\"|'([^']*)'|(\S+)")
# %notify's options, once: the parser below and the magic's help both use this table
_NOTIFY_OPTIONS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("-u", "--user"), "user", "user to send a direct message to"),
    (("-c", "--channel"), "channel", "channel to post in"),
    (("-f", "--file"), "files", "file to attach (repeatable)"),
    (("--id",), "id", "message id: send it again with the same id to update it"),
)
_NOTIFY_KEYS = {flag: key for flags, key, _ in _NOTIFY_OPTIONS for flag in flags}


def _notify_arguments(magic: Callable[..., Any]) -> Callable[..., Any]:
    """The ``magic_arguments`` of ``%notify`` (for its help) from ``_NOTIFY_OPTIONS``."""
    magic = argument("message", nargs="*", help="the message (Markdown); {expr} and $var expand")(
        magic
    )
    for flags, _key, text in reversed(_NOTIFY_OPTIONS):
        magic = argument(*flags, help=text)(magic)
    return magic_arguments()(magic)


def _target_arguments(magic: Callable[..., Any]) -> Callable[..., Any]:
    """``-u``, ``-c`` and ``--mention``, as %%notify_on_done and %autonotify take them."""
    magic = argument(
        "--mention",
        metavar="NAMES",
        help="users to mention in the done/failed message, e.g. alice or alice,bob "
        "(default: the mention setting, in channels)",
    )(magic)
    for flags, _key, text in reversed(_NOTIFY_OPTIONS[:2]):
        magic = argument(*flags, help=text)(magic)
    return magic


def split_notify_line(line: str) -> tuple[dict[str, Any], str]:
    """Split ``%notify`` options from the message, which is kept verbatim.

    Options come first; everything after them (or after ``--``) is the message, with its
    quotes, apostrophes and spacing untouched (``%notify it's done`` works).
    """
    opts: dict[str, Any] = {"user": None, "channel": None, "files": [], "id": None}
    rest = line.strip()
    while rest:
        if rest == "--" or rest.startswith("-- "):
            rest = rest[2:].strip()
            break
        m = _OPTION.match(rest)
        if m is None:
            break
        name = m.group(1)
        if name not in _NOTIFY_KEYS:
            raise UsageError(
                f"%notify: unknown option {name} (put `--` before a message starting with '-')"
            )
        key = _NOTIFY_KEYS[name]
        if m.group(2) is not None:
            value, rest = m.group(2), rest[m.end() :].strip()
        else:
            rest = rest[m.end() :].strip()
            v = _VALUE.match(rest)
            if v is None:
                raise UsageError(f"%notify: option {name} needs a value")
            value = next(g for g in v.groups() if g is not None)
            rest = rest[v.end() :].strip()
        if key == "files":
            opts["files"].append(value)
        else:
            opts[key] = value
    if opts["user"] and opts["channel"]:
        raise UsageError("%notify: give -u USER or -c CHANNEL, not both")
    return opts, rest


@dataclass
class _Armed:
    info: Any
    started: float
    context: report.CellContext | None = None
    record_id: str | None = None  # the cell's job record under %autonotify


def _optional_text(help: str) -> Any:
    """A configurable text trait whose default is None."""
    return Unicode(None, allow_none=True, help=help).tag(config=True)


@magics_class
class NotifyMagics(Magics):
    """Send Mattermost notifications from IPython: ``%notify``, ``%%notify_on_done``,
    ``%autonotify``, ``%notify_hooks``, ``%notify_setup``."""

    default_user = _optional_text(
        "User to send to when a magic names no -u/-c (wins over default_channel)."
    )
    default_channel = _optional_text("Channel to send to when a magic names no -u/-c.")
    auto_after = Float(
        60.0, help="%autonotify: notify after cells that ran longer than this (seconds)."
    ).tag(config=True)
    notebook_key = _optional_text(
        "Key of this notebook's hook store (default: detected notebook path)."
    )
    include_result = Bool(
        True, help="Put a short repr of the cell's value in the 'done' message."
    ).tag(config=True)
    enabled = Bool(True, help="False: magics run cells as usual but send nothing.").tag(config=True)
    query_jupyter_server = Bool(
        True,
        help="Ask the local Jupyter server for the notebook path when no other source has it.",
    ).tag(config=True)
    reuse_ids_within = Float(
        3600.0,
        help="After a kernel restart, notify(id=...)/%notify --id edit a stored message of "
        "the previous kernel only if it was active this many seconds before (send_update "
        "always does); else they post a new message.",
    ).tag(config=True)
    status_widget = Bool(False, help="Show an ipywidgets status line under notified cells.").tag(
        config=True
    )
    death_watcher = Bool(
        True,
        help="Outside a Jupyter server (VS Code, jupyter console, terminal IPython): start a "
        "watcher process that reports the kernel's death during a notified cell.",
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self._key: NotebookKey | None = None
        self._key_checked = False
        self._tried_default_client = False
        self._store: Any = None
        self._attached_to: Any = None
        self._our_stores: list[Any] = []
        self._warned: set[str] = set()
        self._stack: list[_Armed] = []
        self._auto: Any = None  # the options of %autonotify while it is on
        self._skip_auto: set[int] = set()  # id(info) of cells notified by %%notify_on_done
        self._tmpdirs: list[tuple[list[Any], str]] = []
        self._recorder: Any = None  # CellRecorder of this kernel (server-started kernels)
        self._recorder_checked = False

    # ------------------------------------------------------------------ plumbing
    @property
    def _shell(self) -> Any:
        assert self.shell is not None
        return self.shell

    def _warn_once(self, key: str, text: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warn(text)

    @observe("reuse_ids_within")
    def _reuse_ids_within_changed(self, change: Any) -> None:
        if self._store is not None:
            self._store.set_reuse_within(change["new"])

    @observe("notebook_key")
    def _notebook_key_changed(self, change: Any) -> None:
        self._key_checked = False
        self._key = None
        self._store = None
        self._attached_to = None

    def notebook(self, *, query_server: bool | None = None) -> NotebookKey | None:
        """The notebook key (detected lazily, once found cached)."""
        if not self._key_checked:
            query = self.query_jupyter_server if query_server is None else query_server
            self._key = detect_notebook_key(
                self._shell.user_ns, self.notebook_key, query_server=query
            )
            # a miss without the server query may still be found later (VS Code sets its
            # variable after start): only a full detection is final
            self._key_checked = self._key is not None or query
        return self._key

    def hook_store(self) -> Any:
        """The notebook's :class:`~mattermost_notify.hooks.HookStore`, or ``None``."""
        if self._store is None:
            key = self.notebook()
            if key is not None:
                from .sessions import NotebookHookStore

                self._store = NotebookHookStore.for_notebook(
                    key.key, reuse_within=self.reuse_ids_within
                )
        return self._store

    def client(self, *, keeps_id: bool = False) -> Any:
        """The core's default client, wired to this notebook's hook store.

        ``keeps_id``: the caller sends with an id of the user's, which should survive a
        restart; warn (once) when there is no notebook key to keep it under.
        """
        client = api.get_client()
        self._attach(client)
        if keeps_id and self._key is None:
            self._warn_once(
                "no-key",
                "mattermost_notify: the notebook's path is unknown here, so message ids are "
                "kept in memory only and will not survive a kernel restart. Set "
                "%config NotifyMagics.notebook_key = '<a name for this notebook>' to keep them.",
            )
        return client

    def _attach(self, client: Any, *, query_server: bool | None = None) -> None:
        if self._attached_to is client:
            return
        if self.notebook(query_server=query_server) is None and not self._key_checked:
            return  # try again with the full detection later
        store = self.hook_store()
        current = getattr(client, "hook_store", None)
        # never replace a store the user gave the client; replace ours after a key change
        if store is not None and (current is None or current in self._our_stores):
            client.hook_store = store  # hooks are written through to it and read back
            self._our_stores.append(store)
            # ids the client sent before it had the store (the notebook's first message,
            # sent with the plain API) are kept too
            with contextlib.suppress(Exception):
                for mid, hook in dict(client.hooks).items():
                    if store.get(mid) is None:
                        store.put(hook)
        self._attached_to = client

    def _attach_default_client(self) -> None:
        """Before each cell: give the default client this notebook's store.

        So that after a kernel restart ``notify.send_update(..., id="x")`` finds the hook
        of "x" even before any magic ran. Cheap: no server query, no network; the default
        client is created here when this notebook's store exists on disk, or (once per
        kernel) when some notebook's store does, so that an unknown id can be traced to
        the store of a renamed notebook.
        """
        if not self.enabled:
            return
        client = api.current_client()
        if client is None:
            key = self.notebook(query_server=False)
            if key is None:
                return
            store = self.hook_store()
            if store is None:
                return
            if not store.path.exists():
                if self._tried_default_client or not any(store.path.parent.glob("*.json")):
                    return
                self._tried_default_client = True
            try:
                client = api.get_client()
            except Exception:  # not configured yet: the user's own call will say so
                return
        self._attach(client, query_server=False)

    def _target(self, user: str | None, channel: str | None) -> dict[str, str | None]:
        if user or channel:
            return {"user": user or None, "channel": channel or None}
        if self.default_user and self.default_channel:
            self._warn_once(
                "both-defaults",
                "mattermost_notify: NotifyMagics.default_user and default_channel are both "
                "set; sending to the user",
            )
        if self.default_user:
            return {"user": self.default_user, "channel": None}
        if self.default_channel:
            return {"user": None, "channel": self.default_channel}
        return {"user": None, "channel": None}  # the client's own defaults

    def _cleanup_tmp(self, force: bool = False) -> None:
        keep = []
        for tickets, path in self._tmpdirs:
            if force or all(t.done() for t in tickets):
                shutil.rmtree(path, ignore_errors=True)
            else:
                keep.append((tickets, path))
        self._tmpdirs = keep

    def close(self) -> None:
        """Called at unload: stop auto-notify, drop temporary files already sent."""
        self._auto = None
        for armed in self._stack:
            self._forget_auto_record(armed)
        self._stack.clear()
        self._cleanup_tmp()

    def _context(
        self, cell: str, title: str | None, number: int | None = None
    ) -> report.CellContext:
        key = None
        with contextlib.suppress(Exception):
            key = self.notebook()
        notebook = key.key if key is not None and key.key.endswith(".ipynb") else None
        if number is None:
            with contextlib.suppress(Exception):
                number = self._cell_number()
        return report.CellContext(
            first_line=report.first_line(cell), title=title, notebook=notebook, cell_number=number
        )

    # ------------------------------------------------------------------ %notify
    @_notify_arguments
    @line_magic
    def notify(self, line: str) -> None:
        """Send a message: a thin layer over :func:`mattermost_notify.notify`.

        The message is the rest of the line, verbatim; ``{expr}`` and ``$var`` are expanded
        by IPython. With ``--id`` a second ``%notify`` of the same id edits the message.
        Delivery runs in the background: a failure is a warning, never an error in the cell.
        """
        opts, message = split_notify_line(line)
        if not message and not opts["files"]:
            raise UsageError(
                "%notify: nothing to send (usage: %notify [-u USER|-c CHANNEL] MESSAGE)"
            )
        if not self.enabled:
            return None
        target = self._target(opts["user"], opts["channel"])
        mid = opts["id"]
        with _quietly("%notify not sent", _in_magic_words):
            self.client(keeps_id=mid is not None)  # wires the notebook's hook store
            api.notify(
                message,
                user_name=target["user"],
                channel_name=target["channel"],
                files=opts["files"] or None,
                id=mid,
                block=False,
            )
        return None

    # ------------------------------------------------------------------ %%notify_on_done
    @magic_arguments()
    @_target_arguments
    @argument(
        "-m",
        "--message",
        help="a title for the messages (default: the notebook's name and the cell's number)",
    )
    @argument("--id", help="message id of the start message (use it with notify.send_update)")
    @argument("--after", type=float, help="only notify when the cell runs longer (seconds)")
    @argument("--attach", nargs="+", action="extend", default=[], help="files to attach at the end")
    @argument("--figures", action="store_true", help="attach the images the cell displayed")
    @cell_magic
    def notify_on_done(self, line: str, cell: str) -> Any:
        """Run the cell and tell Mattermost when it is done, failed or was interrupted.

        A "running" message is posted when the cell starts; when it ends, a reply in its
        thread (a new post, so you get alerted) gives the status, the elapsed time, a short
        repr of the value or the error and the tail of its traceback (the full traceback is
        attached when long), and the start message is edited to its final state.

        The body runs like ``%%time`` does: an exception reaches you once and unchanged, so
        Run All stops; a KeyboardInterrupt is reported and re-raised. Top-level ``await`` is
        not supported in the body.
        """
        __tracebackhide__ = True
        args = _parse(self.notify_on_done, line)
        _check_options(args, "%%notify_on_done")
        job = self._start_job(args, cell)
        collector = FigureCollector(self._shell) if args.figures else None
        started = time.perf_counter()
        try:
            with collector.collect() if collector is not None else contextlib.nullcontext():
                value = run_cell_body(self._shell, cell, self._cell_number())
        except BaseException as exc:
            self._finish_job(job, args, collector, time.perf_counter() - started, exc=exc)
            raise
        self._finish_job(job, args, collector, time.perf_counter() - started, value=value)
        return value

    def _cell_number(self) -> int:
        """The count of the running cell (run_cell already incremented it if stored)."""
        count = int(self._shell.execution_count)
        if self._stack and getattr(self._stack[0].info, "store_history", False):
            return max(count - 1, 0)
        return count

    def _start_job(self, args: Any, cell: str) -> Job | None:
        if not self.enabled:
            return None
        if self._stack:  # %autonotify must not send a second message for this cell
            self._skip_auto.add(id(self._stack[0].info))
            self._forget_auto_record(self._stack[0])  # nor a second death report
        with _quietly("notification not started"):
            self._cleanup_tmp()
            job = Job(
                client=self.client,
                ctx=self._context(cell, args.message),
                target=self._target(args.user, args.channel),
                message_id=args.id or f"{_CELL_ID_PREFIX}{uuid.uuid4().hex[:12]}",
                after=args.after,
                mention=args.mention,
            )
            if args.id:
                self.client(keeps_id=True)  # the warning, now, if the id cannot be kept
            if self.status_widget:
                status = self._show_status(job.message_id)
                if status is not None:
                    job.on_ticket = status.watch
            recorder = self._cell_recorder()
            if recorder is not None:
                recorder.start(job, self._cell_number(), self.client)
            job.start()
            return job
        return None

    def _finish_job(
        self,
        job: Job | None,
        args: Any,
        collector: FigureCollector | None,
        elapsed: float,
        *,
        value: Any = None,
        exc: BaseException | None = None,
    ) -> None:
        """Queue the end messages. Never raises: the cell's own outcome must win."""
        if job is None:
            return
        with _quietly("notification not finished"):
            outcome = report.outcome_of(exc, elapsed, value, include_result=self.include_result)
            tmpdir = None
            files: list[str] = []
            notes: list[str] = []
            will_send = job.posted or job.after is None or elapsed >= job.after
            if will_send:
                for name in args.attach:
                    if Path(name).expanduser().is_file():
                        files.append(str(Path(name).expanduser()))
                    else:
                        notes.append(f"(attachment {report._inline_code(name)} not found)")
                images: list[bytes] = []
                if collector is not None:
                    images = collector.images + collector.matplotlib_figures()
                if images or outcome.traceback_is_long:
                    tmpdir = tempfile.mkdtemp(prefix="mattermost_notify-")
                    for i, png in enumerate(images, 1):
                        path = Path(tmpdir, f"figure-{i}.png")
                        path.write_bytes(png)
                        files.append(str(path))
                    if outcome.traceback_is_long and outcome.traceback:
                        path = Path(tmpdir, "traceback.txt")
                        path.write_text(outcome.traceback, encoding="utf-8")
                        files.insert(0, str(path))
            job.finish(outcome, files, notes)
            if tmpdir is not None:
                self._tmpdirs.append((job.tickets, tmpdir))
        if self._recorder is not None:  # never raises
            self._recorder.finish(job)

    def _cell_recorder(self) -> Any:
        """This kernel's record of running cells (for death reports), or None."""
        if not self._recorder_checked:
            self._recorder_checked = True
            from .kernel_record import CellRecorder

            self._recorder = CellRecorder.for_this_kernel(self.shell, watcher=self.death_watcher)
        return self._recorder

    def _show_status(self, message_id: str) -> Any:
        try:
            from IPython.display import display

            from .widgets import MessageStatus

            status = MessageStatus(message_id)
            display(status.widget)
            return status
        except Exception as exc:
            self._warn_once("widget", f"mattermost_notify: no status widget ({exc})")
            return None

    # ------------------------------------------------------------------ %autonotify
    @magic_arguments()
    @argument(
        "--after", type=float, help="seconds a cell must run to be notified (default: auto_after)"
    )
    @argument(
        "--on",
        choices=_AUTO_MODES,
        default="all",
        help="done: cells longer than --after; error: failed cells; all: both (default)",
    )
    @argument("--off", action="store_true", help="stop notifying")
    @_target_arguments
    @line_magic
    def autonotify(self, line: str) -> None:
        """Notify after every cell that ran longer than a threshold, or failed."""
        args = _parse(self.autonotify, line)
        if args.off:
            self._auto = None
            print("autonotify: off")
            return
        if args.after is not None and args.after < 0:
            raise UsageError("%autonotify: --after must be >= 0")
        _check_options(args, "%autonotify")
        if self._stack and self._auto is None:
            # the cell that turns it on is not a job to report
            self._skip_auto.add(id(self._stack[0].info))
        args.target = self._target(args.user, args.channel)
        self._auto = args
        print(f"autonotify: on ({self._describe_auto()})")
        self._prepare_auto_records()

    def _describe_auto(self) -> str:
        after = self._effective_after()
        if self._auto.on == "done":
            return f"cells that run longer than {after:g} s"
        if self._auto.on == "error":
            return "cells that fail"
        return f"cells that run longer than {after:g} s, or fail"

    def _effective_after(self) -> float:
        return self.auto_after if self._auto.after is None else float(self._auto.after)

    def _prepare_auto_records(self) -> None:
        """When %autonotify is turned on: what its cells' job records need, found now
        (the notebook's path, which may ask the Jupyter server; the client; outside a
        Jupyter server the watcher process), so that a cell's start only writes a file."""
        if not self.enabled:
            return
        with contextlib.suppress(Exception):
            self.notebook()
        recorder = self._cell_recorder()
        if recorder is None:
            return
        with contextlib.suppress(Exception):  # not configured yet: the cells will say so
            client = self.client()
            if recorder.record.with_watcher:
                recorder.record.start_watcher(client)

    def _record_auto_cell(self, armed: _Armed) -> None:
        """At a cell's start under %autonotify: its job record, so that the kernel's
        death during the cell is reported. No request, no I/O but one small file."""
        if self._auto is None or not self.enabled:
            return
        recorder = self._cell_recorder()
        if recorder is None:
            return
        key = self._key if self._key_checked else self.notebook(query_server=False)
        notebook = key.key if key is not None and key.key.endswith(".ipynb") else None
        armed.record_id = recorder.start_auto(
            cell_number=self._cell_number(),
            first_line=report.first_line(getattr(armed.info, "raw_cell", "") or ""),
            notebook=notebook,
            target=self._auto.target,
            mention=self._auto.mention,
            after=self._effective_after(),
            on=self._auto.on,
            client=api.current_client(),
        )

    def _forget_auto_record(self, armed: _Armed) -> None:
        if armed.record_id is not None and self._recorder is not None:
            self._recorder.finish_auto(armed.record_id)
        armed.record_id = None

    def pre_run_cell(self, info: Any) -> None:
        """Event ``pre_run_cell(info)``: remember when the (outermost) cell started."""
        armed = _Armed(info=info, started=time.perf_counter())
        self._stack.append(armed)
        if len(self._stack) == 1:
            try:
                self._attach_default_client()
            except Exception as exc:
                self._warn_once("attach", f"mattermost_notify: hook store not used ({exc})")
            try:
                self._record_auto_cell(armed)
            except Exception as exc:
                self._warn_once("record", f"mattermost_notify: cell not recorded ({exc})")

    def post_run_cell(self, result: Any) -> None:
        """Event ``post_run_cell(result)``: nested run_cell and missing pre events are safe."""
        try:
            self._post_run_cell(result)
        except Exception as exc:  # never an "Error in callback" traceback for the user
            self._warn_once("post-run", f"mattermost_notify: autonotify failed ({exc})")

    def _post_run_cell(self, result: Any) -> None:
        # a client the cell created (notify.notify_user(..., id=...)) gets the store now
        with contextlib.suppress(Exception):
            self._attach_default_client()
        info = getattr(result, "info", None)
        index = next((i for i, a in enumerate(self._stack) if a.info is info), None)
        if index is None:
            return  # no pre event for this cell (an empty cell, or loaded mid-cell)
        armed = self._stack[index]
        for left in self._stack[index:]:
            self._forget_auto_record(left)
        del self._stack[index:]  # this cell and anything left over above it
        if index != 0:
            return  # a nested run_cell: only the outermost cell counts
        skip = id(info) in self._skip_auto
        self._skip_auto.clear()
        if skip or self._auto is None or not self.enabled:
            return
        elapsed = time.perf_counter() - armed.started
        exc = getattr(result, "error_in_exec", None)
        failed = exc is not None and not isinstance(exc, KeyboardInterrupt)
        long = elapsed >= self._effective_after()
        mode = self._auto.on
        if not ((mode in ("done", "all") and long) or (mode in ("error", "all") and failed)):
            return
        cell = getattr(info, "raw_cell", "") or ""
        outcome = report.outcome_of(
            exc, elapsed, getattr(result, "result", None), include_result=self.include_result
        )
        number = getattr(result, "execution_count", None) or getattr(info, "execution_count", None)
        ctx = replace(
            self._context(cell, None, number),
            started_at=outcome.finished_at - timedelta(seconds=elapsed),
        )
        alert = mention_text(self.client, self._auto.target, self._auto.mention)
        message = alert + report.standalone_message(ctx, outcome)
        queue_on_sender(self.client, [], "post", message, **self._auto.target)

    # ------------------------------------------------------------------ %notify_hooks
    @magic_arguments()
    @argument("action", nargs="?", default="list", choices=("list", "forget", "export"))
    @argument("args", nargs="*", help="forget ID | export ID FILE")
    @line_magic
    def notify_hooks(self, line: str) -> Any:
        """The message ids of this notebook: ``list``, ``forget ID``, ``export ID FILE``.

        They live in a store keyed by the notebook's path, so that after a kernel restart
        ``notify.send_update(..., id=ID)`` edits the same message.
        """
        args = _parse(self.notify_hooks, line)
        store = self.hook_store()
        if args.action == "list":
            if args.args:
                raise UsageError("%notify_hooks list takes no argument")
            return self._list_hooks(store)
        if args.action == "forget":
            if len(args.args) != 1:
                raise UsageError("usage: %notify_hooks forget ID")
            (mid,) = args.args
            removed = store.remove(mid) if store is not None else False
            client = self._client_or_none()
            with contextlib.suppress(Exception):
                removed = (client is not None and client.forget(mid)) or removed
            print(f"forgot {mid}" if removed else f"no message with id {mid!r}")
            return None
        if len(args.args) != 2:
            raise UsageError("usage: %notify_hooks export ID FILE")
        mid, path = args.args
        hook = store.get(mid) if store is not None else None
        if hook is None:
            client = self._client_or_none()
            hook = client.hooks.get(mid) if client is not None else None
        if hook is None:
            raise UsageError(f"no message with id {mid!r} in this notebook")
        from ..hooks import write_hook

        written = write_hook(path, hook)
        print(f"exported {mid} to {written}")
        return None

    def _client_or_none(self) -> Any:
        try:
            return self.client()
        except Exception:
            return None

    def _list_hooks(self, store: Any) -> None:
        hooks: dict[str, Any] = {}
        client = self._client_or_none()
        if client is not None:
            with contextlib.suppress(Exception):
                hooks.update(dict(client.hooks))
        stored = {hook.id: hook for hook in store.list()} if store is not None else {}
        hooks.update(stored)
        key = self._key
        where = f"store of {key.key} ({key.source})" if key else "memory only"
        if not hooks:
            print(f"no message ids yet ({where})")
            return
        print(f"{len(hooks)} message id(s), {where}:")
        width = max(len(h) for h in hooks)
        for mid in sorted(hooks):
            h = hooks[mid]
            memory = "" if mid in stored else "  (in memory only)"
            print(
                f"  {mid:<{width}}  post {h.post_id}  channel {h.channel_id}  "
                f"{h.created_at or ''}{memory}"
            )

    # ------------------------------------------------------------------ %notify_setup
    @line_magic
    def notify_setup(self, line: str) -> Any:
        """Show a form to enter the server URL, team and token, test them and save them."""
        from IPython.display import display

        from .widgets import SetupForm

        form = SetupForm()
        display(form.widget)
        return None


def _check_options(args: Any, magic: str) -> None:
    """One target at most, and mention names that are names: before the cell runs."""
    from ..config import parse_mentions

    if args.user and args.channel:
        raise UsageError(f"{magic}: give -u USER or -c CHANNEL, not both")
    try:
        parse_mentions(args.mention, "--mention")
    except MattermostNotifyError as exc:
        raise UsageError(f"{magic}: {exc}") from None


def _unquote(value: Any) -> Any:
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _parse(magic: Any, line: str) -> Any:
    """``parse_argstring``, with the quotes IPython's non-POSIX split keeps removed."""
    args = parse_argstring(magic, line)
    for name, value in vars(args).items():
        setattr(args, name, _unquote(value))
    return args
