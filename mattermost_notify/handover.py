"""Starting the detached sender (:mod:`mattermost_notify.detached_sender`) at exit.

Kept apart from the detached sender itself so that the background sender can start one
without importing the client (no import cycle). The settings, the token included, go
to the child through a pipe on its standard input, never on its command line or in
its environment.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["ENV_DETACHED", "client_settings", "spawn_detached_sender"]

log = logging.getLogger("mattermost_notify.sender")

#: set in the detached sender's environment: it never starts another one
ENV_DETACHED = "MATTERMOST_NOTIFY_DETACHED_SENDER"


def client_settings(client: Any) -> dict[str, Any] | None:
    """What a new process needs to talk to ``client``'s server; None for other objects."""
    try:
        transport = client.transport
        url = str(client.url)
        return {
            "url": url,
            "token": str(transport._token),
            "team_name": client.team_name,
            "verify": transport.session.verify,
            "timeout": list(transport.timeout),
            # the parent was allowed to use this URL; plain http elsewhere needed the flag
            "allow_insecure": url.startswith("http://"),
        }
    except Exception:
        return None


def spawn_detached_sender(settings: dict[str, Any], outbox_root: Path | None) -> bool:
    """Start the detached sender in a new session; False when it could not start."""
    if os.environ.get(ENV_DETACHED):
        return False  # we are the detached sender: never a chain of them
    try:
        payload = {"settings": settings, "outbox_root": outbox_root}
        data = json.dumps(payload, default=str).encode("utf-8")
        env = dict(os.environ)
        env[ENV_DETACHED] = "1"
        proc = subprocess.Popen(
            [sys.executable, "-m", "mattermost_notify.detached_sender"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # not killed with our process group or terminal
            close_fds=True,
            env=env,
        )
        assert proc.stdin is not None
        proc.stdin.write(data)
        proc.stdin.close()
        proc.returncode = 0  # it outlives us on purpose: no ResourceWarning
        return True
    except Exception as exc:
        log.warning("cannot start the detached sender: %s", exc)
        return False
