"""Which notebook is this kernel running? (the key of the per-notebook hook store)

Sources, in order (looked up lazily, at first use, because VS Code sets its variable
only after the kernel started):

1. an explicit key (``c.NotifyMagics.notebook_key``, or ``MATTERMOST_NOTIFY_NOTEBOOK``);
2. VS Code's ``__vsc_ipynb_file__`` in the user namespace;
3. ``JPY_SESSION_NAME`` (Jupyter Server >= 2.0.7 sets the absolute path; older ones a
   path relative to the server root; ipykernel mirrors it as ``__session__``);
4. optionally, the sessions API of the Jupyter server that started this kernel
   (the ipynbname approach; short timeout, loopback only, best effort);
5. nothing: the caller keeps hooks in memory and warns once.
"""

from __future__ import annotations

import json
import logging
import os
import re
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ENV_NOTEBOOK", "NotebookKey", "detect_notebook_key", "query_jupyter_server"]

ENV_NOTEBOOK = "MATTERMOST_NOTIFY_NOTEBOOK"
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_DRIVE = re.compile(r"^[A-Za-z][A-Za-z0-9_]+:")  # "RTC:" (jupyter-collaboration), not "C:"
SERVER_TIMEOUT = 0.5
log = logging.getLogger("mattermost_notify.ipython")


@dataclass(frozen=True)
class NotebookKey:
    key: str
    source: str  # "notebook_key", "env", "vscode", "JPY_SESSION_NAME", "jupyter-server"


def _normalise_path(path: str, cwd: str | None = None) -> str | None:
    path = _DRIVE.sub("", path.strip())
    if not path or _UUID.match(Path(path).stem or ""):
        return None  # a session whose path is still a UUID is not a notebook path yet
    p = Path(path).expanduser()
    if not p.is_absolute():
        # relative to the server root, which we do not know; the kernel's cwd is the
        # notebook's folder, so the file name joined to it is the best guess
        p = Path(cwd or os.getcwd()) / p.name
    return os.path.realpath(p)


def detect_notebook_key(
    user_ns: Mapping[str, Any],
    explicit: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    query_server: bool = False,
) -> NotebookKey | None:
    """The key of the notebook of this kernel, or ``None`` when it cannot be known."""
    env = os.environ if environ is None else environ
    if explicit:
        return NotebookKey(explicit, "notebook_key")
    if env.get(ENV_NOTEBOOK):
        return NotebookKey(env[ENV_NOTEBOOK], "env")
    vsc = user_ns.get("__vsc_ipynb_file__")
    if isinstance(vsc, str) and vsc:
        path = _normalise_path(vsc)
        if path:
            return NotebookKey(path, "vscode")
    for name in (env.get("JPY_SESSION_NAME"), user_ns.get("__session__")):
        if isinstance(name, str) and name:
            path = _normalise_path(name)
            if path:
                return NotebookKey(path, "JPY_SESSION_NAME")
    if query_server:
        path = query_jupyter_server()
        if path:
            return NotebookKey(path, "jupyter-server")
    return None


def _kernel_id() -> str | None:
    from ..process_record import connection_file

    stem = Path(connection_file() or "").stem
    return stem.split("-", 1)[1] if "-" in stem else None


def query_jupyter_server(timeout: float = SERVER_TIMEOUT) -> str | None:
    """Ask the local Jupyter server(s) which notebook owns this kernel (best effort).

    Reads ``jpserver-*.json`` in the Jupyter runtime dir and asks ``/api/sessions`` of each
    server on a loopback address, newest first. Returns the absolute path or ``None``.
    The server's token is sent only to that server and is never logged or kept.
    """
    kernel_id = _kernel_id()
    if not kernel_id:
        return None
    try:
        from jupyter_core.paths import jupyter_runtime_dir

        runtime = Path(jupyter_runtime_dir())
        files = sorted(
            runtime.glob("jpserver-*.json"), key=lambda p: p.stat().st_mtime, reverse=True
        )
    except Exception:
        return None
    for file in files[:5]:
        try:
            info = json.loads(file.read_text())
            url = str(info["url"])
            host = urllib.parse.urlsplit(url).hostname or ""
            scheme = urllib.parse.urlsplit(url).scheme
            if scheme not in {"http", "https"} or host not in {"localhost", "127.0.0.1", "::1"}:
                continue
            request = urllib.request.Request(  # noqa: S310 - http(s) on loopback only
                urllib.parse.urljoin(url, "api/sessions")
            )
            if info.get("token"):
                request.add_header("Authorization", f"token {info['token']}")
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                sessions = json.load(response)
            for session in sessions:
                if session.get("kernel", {}).get("id") == kernel_id:
                    root = info.get("root_dir") or info.get("notebook_dir") or ""
                    return os.path.realpath(Path(root) / session["path"])
        except Exception as exc:  # stale file, password-only server, proxy... best effort
            log.debug("jupyter server %s: no session found (%s)", file.name, type(exc).__name__)
    return None
