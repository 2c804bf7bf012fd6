"""Report a kernel that died: the reply in the running message's thread.

Used by the Jupyter server extension (:mod:`mattermost_notify.jupyter_server`) and by
the watcher process (:mod:`mattermost_notify.watcher`), from the record the kernel left
(:mod:`mattermost_notify.job_records`). Plain Python; all sending goes through the
client's background sender.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

from . import report
from .job_records import JobRecord, KernelRecord

__all__ = ["CellOutputTail", "autonotify_reports", "late_note", "report_kernel_death"]

log = logging.getLogger("mattermost_notify.kernel_death")

CELL_OUTPUT_LINES = 10  # lines of the running cell's output in a death report
CELL_OUTPUT_KEPT = 8192  # characters of it kept in memory


class CellOutputTail:
    """What a kernel's running cell wrote to stdout and stderr, fed its IOPub messages
    (by the Jupyter server extension and the watcher): emptied when a cell starts
    (``execute_input``), the last CELL_OUTPUT_KEPT characters kept. Only a ``stream``
    message's content is decoded; the others' header only."""

    def __init__(self) -> None:
        self._text = ""
        self._lock = threading.Lock()

    def feed(self, session: Any, frames: list[Any]) -> None:
        """One IOPub message: its frames, read with the kernel's jupyter_client session."""
        try:
            _idents, fed = session.feed_identities(frames)
            msg_type = session.deserialize(fed, content=False)["header"]["msg_type"]
            if msg_type == "execute_input":
                with self._lock:
                    self._text = ""
            elif msg_type == "stream":
                text = session.deserialize(fed)["content"].get("text")
                if isinstance(text, str):
                    with self._lock:
                        self._text = (self._text + text)[-CELL_OUTPUT_KEPT:]
        except Exception as exc:  # a message we cannot read: keep what we have
            log.debug("mattermost_notify: IOPub message not read: %s", exc)

    def take(self) -> str | None:
        """The last lines written since the cell started (then forgotten), or None."""
        with self._lock:
            text, self._text = self._text, ""
        return report.output_tail(text, CELL_OUTPUT_LINES)


def late_note(entry: Any) -> str | None:
    """The line added to a message that a dead process left in the outbox."""
    if entry.kind == "update" or not entry.message:
        return None
    queued = datetime.fromtimestamp(float(entry.created_at), UTC).strftime("%H:%M:%S UTC")
    return f"_(delivered late: queued at {queued} by a process that died)_"


def _alert(client: Any, job: JobRecord, mention: str) -> str:
    """``"@alice "``: the job's --mention, else the client's mention setting (channels)."""
    try:
        names = mention or job.mention or None
        return str(client.mention_text(job.user, job.channel, mention=names))
    except Exception as exc:
        log.warning("no mention in the death report: %s", exc)
        return ""


def _context(job: JobRecord, notebook: str | None) -> report.CellContext:
    kwargs: dict[str, Any] = {}
    if job.host:
        kwargs["host"] = job.host
    return report.CellContext(
        first_line=job.first_line,
        title=job.title,
        notebook=notebook or job.notebook,
        started_at=datetime.fromtimestamp(job.started_at, UTC),
        what="a progress bar" if job.kind == "progress" else "a cell",
        cell_number=job.cell_number if job.kind != "progress" else None,
        **kwargs,
    )


def autonotify_reports(job: JobRecord, elapsed: float) -> bool:
    """Whether ``%autonotify`` reports the death of its cell ``job`` after ``elapsed`` s.

    A death is a failure, and ``%autonotify`` reports failures as it does at a cell's
    end: always with ``--on all`` (the default) or ``--on error``; with ``--on done``
    (long cells only) when the cell ran at least the threshold.
    """
    if job.on == "done":
        return job.after is None or elapsed >= job.after
    return True


def progress_died_message(
    ctx: report.CellContext, job: JobRecord, *, elapsed: float, exit_detail: str | None
) -> str:
    """The reply when the process died under an open progress bar."""
    at = f" at {job.state}" if job.state else ""
    cell = f" in cell [{job.cell_number}]" if job.cell_number else ""
    who = "kernel" if job.cell_number or job.notebook else "process"  # a plain script
    lines = [
        f"{report._ICON['died']} **The {who} died** while the progress bar "
        f"**{job.title or 'progress'}** was{at}{cell}",
        f"{ctx.where}, started {report._when(ctx.started_at)}, "
        f"running for {report.format_elapsed(elapsed)}",
    ]
    if exit_detail:
        lines.append(f"**{exit_detail}**")
    return "\n".join(lines)


def progress_died_edit(job: JobRecord, *, elapsed: float, exit_detail: str | None) -> str:
    """The bar's message, edited to say the process died: its last meter and a headline."""
    at = f" at {job.state}" if job.state else ""
    why = f" ({exit_detail})" if exit_detail else ""
    headline = (
        f"{report._ICON['died']} **{job.title or 'progress'}** died{at} "
        f"after {report.format_elapsed(elapsed)}{why}"
    )
    return f"{job.meter}\n{headline}" if job.meter else headline


def report_kernel_death(
    client: Any,
    record: KernelRecord,
    *,
    returncode: int | None,
    died_at: float | None = None,
    notebook: str | None = None,
    cell_output: str | None = None,
    mention: str = "",
    exit_detail: str | None = None,
) -> list[Any]:
    """Queue the messages that say ``record``'s kernel died; returns their tickets.

    First hands what dead processes left in the outbox for this server to delivery
    (marked as late), so that a "running" post still queued there is created before the
    reply to it. Then, for every job of the record: a reply in its message's thread
    (which alerts) and an edit of that message to its final state (a progress bar's
    message keeps its last meter); a job whose message was never posted gets one
    message to its target, and so does a cell under ``%autonotify`` (which posts nothing
    before its cell ends), when :func:`autonotify_reports` says so. ``exit_detail``
    says how it ended when ``returncode`` is not known; ``cell_output``, the last lines
    the running cell wrote (when the reporter saw them), goes into a cell's report.
    """
    died_at = time.time() if died_at is None else died_at
    sender = client.sender
    tickets: list[Any] = []
    try:
        tickets += sender.resume_outbox(mark_late=late_note)
    except Exception as exc:
        log.warning("cannot resume the outbox: %s", exc)
    if returncode is not None:
        exit_detail = report.describe_exit(returncode)
    for job in record.jobs.values():
        ctx = _context(job, notebook)
        elapsed = max(0.0, died_at - job.started_at)
        if job.kind == "autonotify" and not autonotify_reports(job, elapsed):
            continue
        alert = _alert(client, job, mention)
        if job.kind == "progress":
            text = progress_died_message(ctx, job, elapsed=elapsed, exit_detail=exit_detail)
            edit = progress_died_edit(job, elapsed=elapsed, exit_detail=exit_detail)
        else:
            text = report.kernel_died_message(
                ctx,
                elapsed=elapsed,
                cell_number=job.cell_number,
                exit_detail=exit_detail,
                cell_output=cell_output,
            )
            outcome = report.Outcome("died", elapsed, error=exit_detail or "the kernel died")
            edit = report.final_edit_message(ctx, outcome)
        text = alert + text
        try:
            if job.hook is not None:
                from .hooks import MessageHook

                client.add_hook(MessageHook.from_dict(job.hook), source="the kernel's record")
            if job.kind != "autonotify" and (job.hook is not None or sender.knows(job.message_id)):
                tickets.append(sender.post(text, reply_to=job.message_id))
                tickets.append(sender.update(job.message_id, edit))
            else:
                tickets.append(sender.post(text, user=job.user, channel=job.channel))
        except Exception as exc:
            log.warning("cannot report the death of kernel %s: %s", record.key, exc)
    return tickets
