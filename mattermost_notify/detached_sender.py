"""The detached sender: what a process could not deliver before it exited.

At interpreter exit the background sender waits a moment (``EXIT_GRACE``) for what is
still queued. If the server is slow or away, the process does not wait longer: it
leaves its outbox entries on disk and starts this short-lived process in a new
session, which adopts them (the outbox's exactly-once rules: an entry is moved, never
copied; a post keeps its ``pending_post_id``), delivers them, and exits when done or
after ``MAX_LIFETIME`` seconds; anything left is then delivered by the next process
that sends, or by ``mattermost-notify outbox flush``.

It is started by :func:`mattermost_notify.handover.spawn_detached_sender`; the settings
(the token included) reach it through a pipe on its standard input, never on its
command line or in its environment.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from pathlib import Path

from ._threads import unblock_signals

__all__ = ["MAX_LIFETIME", "main"]

log = logging.getLogger("mattermost_notify.sender")

MAX_LIFETIME = 600.0


def _log_file() -> Path | None:
    with contextlib.suppress(Exception):
        from .config import user_data_dir

        path = Path(user_data_dir()) / "detached-sender.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path
    return None


def main() -> int:
    """The detached process: adopt, deliver, exit (at most ``MAX_LIFETIME`` seconds)."""
    unblock_signals()  # started from a thread of ours: SIGTERM must work
    payload = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    sys.stdin.close()
    path = _log_file()
    if path is not None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        handler = logging.StreamHandler(os.fdopen(fd, "a", encoding="utf-8"))
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s detached sender {os.getpid()}: %(message)s")
        )
        logging.getLogger("mattermost_notify").addHandler(handler)
        logging.getLogger("mattermost_notify").setLevel(logging.INFO)
    import warnings

    warnings.simplefilter("ignore")  # failures are in the log
    from .client import Notify
    from .sender import BackgroundSender

    with Notify(**payload["settings"]) as client:
        root = payload.get("outbox_root")
        sender = BackgroundSender(client, outbox_root=root) if root else client.sender
        client._sender = sender
        tickets = sender.resume_outbox()
        done = sender.flush(MAX_LIFETIME)
        delivered = sum(1 for t in tickets if t.done() and t.exception(timeout=0) is None)
        log.info(
            "%d of %d message(s) delivered%s",
            delivered,
            len(tickets),
            "" if done else f"; the rest stays in the outbox after {MAX_LIFETIME:g} s",
        )
        sender.close(timeout=0)
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a separate process
    sys.exit(main())
