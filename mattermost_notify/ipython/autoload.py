"""``mattermost-notify jupyter enable|disable|status``: opt-in autoload in every kernel.

IPython kernels read no ``*.d`` config folder (only Jupyter *servers* do), so the one
documented way to load an extension in every kernel is this line in the profile's
``ipython_kernel_config.py``::

    c.InteractiveShellApp.extensions.append("mattermost_notify")

``enable`` appends it inside a marked block (creating the file when needed), ``disable``
removes exactly that block, ``status`` says whether it is there. ``append`` (not ``=``)
keeps the extensions other lines of the file configure. Only kernels read that file
(terminal IPython reads ``ipython_config.py``), and loading is cheap and offline.

The same commands switch the Jupyter *server* extension that reports kernel deaths
(:mod:`mattermost_notify.jupyter_server`): ``enable`` writes
``<jupyter config dir>/jupyter_server_config.d/mattermost_notify.json`` turning it on
(installing the package already does, in ``{sys.prefix}/etc/jupyter``), ``disable``
writes the same file turning it off (a user's file wins over the installed one).

This module imports no IPython: the command line uses it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from .._files import write_private

__all__ = ["BLOCK", "add_arguments", "config_file", "disable", "enable", "is_enabled", "run"]

BEGIN = "# >>> mattermost-notify autoload >>>"
END = "# <<< mattermost-notify autoload <<<"
BLOCK = (
    f"{BEGIN}\n"
    "# managed by `mattermost-notify jupyter enable/disable`; loads %notify in every kernel\n"
    'c.InteractiveShellApp.extensions.append("mattermost_notify")\n'
    f"{END}\n"
)
HEADER = "# Configuration file for ipython-kernel.\nc = get_config()  # noqa: F821\n\n"
_BLOCK_RE = re.compile(rf"\n?{re.escape(BEGIN)}\n.*?{re.escape(END)}\n?", re.S)
_OTHER_RE = re.compile(r"""^[^#\n]*extensions.*["']mattermost_notify["']""", re.M)


SERVER_EXTENSION = "mattermost_notify.jupyter_server"
SERVER_CONFIG_NAME = "mattermost_notify.json"


def jupyter_config_dir() -> Path:
    """``$JUPYTER_CONFIG_DIR`` or ``~/.jupyter`` (what Jupyter itself uses)."""
    try:
        from jupyter_core.paths import jupyter_config_dir as _dir

        return Path(_dir())
    except ImportError:
        env = os.environ.get("JUPYTER_CONFIG_DIR")
        return Path(env).expanduser() if env else Path.home() / ".jupyter"


def server_config_file() -> Path:
    return jupyter_config_dir() / "jupyter_server_config.d" / SERVER_CONFIG_NAME


def set_server_extension(path: Path, enabled: bool) -> None:
    """Write the server config file switching the death-report extension on or off."""
    data = {"ServerApp": {"jpserver_extensions": {SERVER_EXTENSION: enabled}}}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, json.dumps(data, indent=2) + "\n", mode=0o644)


def server_extension_state() -> tuple[bool | None, Path | None]:
    """(on/off/None, the file that decides): the user's file first, then the installed one."""
    installed = Path(sys.prefix, "etc", "jupyter", "jupyter_server_config.d", SERVER_CONFIG_NAME)
    for path in (server_config_file(), installed):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            value = data["ServerApp"]["jpserver_extensions"][SERVER_EXTENSION]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        return bool(value), path
    return None, None


def ipython_dir() -> Path:
    """``$IPYTHONDIR`` or ``~/.ipython`` (what IPython itself uses)."""
    env = os.environ.get("IPYTHONDIR")
    return Path(env).expanduser() if env else Path.home() / ".ipython"


def config_file(profile: str = "default", ipython_dir_: str | Path | None = None) -> Path:
    base = Path(ipython_dir_).expanduser() if ipython_dir_ else ipython_dir()
    return base / f"profile_{profile}" / "ipython_kernel_config.py"


def is_enabled(path: Path) -> bool:
    return path.is_file() and BEGIN in path.read_text(encoding="utf-8")


def enable(path: Path) -> bool:
    """Add the block; False when it was already there."""
    text = path.read_text(encoding="utf-8") if path.is_file() else HEADER
    if BEGIN in text:
        return False
    if text and not text.endswith("\n"):
        text += "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(path, text + ("\n" if text.strip() else "") + BLOCK)
    return True


def disable(path: Path) -> bool:
    """Remove the block; False when it was not there."""
    if not is_enabled(path):
        return False
    text = path.read_text(encoding="utf-8")
    _write(path, _BLOCK_RE.sub("\n", text, count=1).rstrip("\n") + "\n")
    return True


def _write(path: Path, text: str) -> None:
    if path.is_symlink():
        # a dotfiles manager's link: edit the file it points to, keep the link
        target = path.resolve()
        if not target.parent.is_dir():
            raise OSError(
                f"{path} is a symbolic link to {target}, whose directory does not exist; "
                "fix the link, or edit the file it should point to"
            )
        path = target
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    write_private(path, text, mode=mode)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        choices=("enable", "disable", "status"),
        help="enable: load the extension in every kernel of this profile; disable: stop; "
        "status: say which",
    )
    parser.add_argument("--profile", default="default", help="IPython profile (default: default)")
    parser.add_argument(
        "--ipython-dir", default=None, help="IPython directory (default: $IPYTHONDIR or ~/.ipython)"
    )


def run(args: argparse.Namespace) -> int:
    path = config_file(args.profile, args.ipython_dir)
    server = server_config_file()
    if args.action == "enable":
        try:
            import IPython  # noqa: F401
        except ImportError:
            print(
                "mattermost-notify: error: IPython is not installed in this environment "
                f"(python -m pip install ipykernel); nothing changed in {path}",
                file=sys.stderr,
            )
            return 2
        changed = enable(path)
        set_server_extension(server, True)
        print(
            f"{'enabled' if changed else 'already enabled'}: {path}\n"
            "New kernels load mattermost_notify; restart running kernels to load it there.\n"
            f"kernel death reports: enabled in {server} (restart the Jupyter server)"
        )
        return 0
    if args.action == "disable":
        changed = disable(path)
        set_server_extension(server, False)
        print(f"disabled: {path}" if changed else f"not enabled by this tool: {path}")
        if path.is_file() and _OTHER_RE.search(path.read_text(encoding="utf-8")):
            print("note: another line of that file still loads mattermost_notify")
        print(f"kernel death reports: disabled in {server}")
        return 0
    enabled = is_enabled(path)
    other = path.is_file() and bool(_OTHER_RE.search(_BLOCK_RE.sub("", path.read_text("utf-8"))))
    if enabled:
        print(f"enabled: {path}")
    elif other:
        print(f"enabled by a line of your own in {path}")
    else:
        print(f"disabled: {path} does not load mattermost_notify")
    state, where = server_extension_state()
    word = {True: "enabled", False: "disabled", None: "not configured"}[state]
    print(
        f"kernel death reports (Jupyter server extension): {word}"
        + (f" by {where}" if where else "")
    )
    return 0
