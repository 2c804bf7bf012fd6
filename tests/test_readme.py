"""Every code block of README.md, run as a newcomer would, against a sandbox.

The blocks run in the README's order, in one isolated "user account" (own HOME,
configuration and data directories, working directory, no MATTERMOST_NOTIFY_*
variables), with only the placeholders filled in (see PLACEHOLDERS). So the
Python examples use the configuration file that the README's ``setup`` wrote.

How each kind of block runs:

* ``python``: a fresh ``python -c`` process per block, which must exit 0 and
  make at least one post or edit on the sandbox; a block that defines
  ``test_*`` functions is run by pytest instead (with the package's plugin),
  which must report them passed.
* ``ipython``: all such blocks, in order, as cells of one IPython shell in a
  subprocess; each cell must succeed, and they must post on the sandbox.
* ``toml``: written to a file and loaded with ``load_settings``.
* ``console``: each line is a command run with bash, which must exit 0, except
  the lines matched by SKIPPED (each with its reason) and the special ones in
  INTERACTIVE (answers fed on standard input) and IN_REPOSITORY (run in the
  checkout's root rather than the user's directory).

Lines are skipped only for a reason stated here: installing with pip (the
README's install lines need the network and a fresh virtual environment:
``.ci/run`` runs them exactly as written) and ``python -m pytest`` (the suite
itself, or its quick part, and the real-server build and suite; ``.ci/run`` runs them).
A line matching nothing is run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from polling import wait_until

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

SKIPPED: dict[str, str] = {
    r"^python -m pip install ": (
        "installs from the network: .ci/run installs . and -e .[test,docs] "
        "(which includes [jupyter]) in fresh venvs"
    ),
    r"^python -m pytest$": "the test suite itself: .ci/run runs it",
    r'^python -m pytest -m "not slow" ': "the quick part of the test suite: .ci/run runs all",
    r"^python scripts/real_mattermost\.py build$": (
        "builds the real Mattermost server (minutes, Go module proxy): .ci/run runs it"
    ),
    r"^python -m pytest -m real_server$": "the real-server suite: .ci/run runs it",
}
#: contributor commands that work on the checkout itself: run in the repository's root
IN_REPOSITORY: tuple[str, ...] = (r"^python -m sphinx ",)
#: commands that ask questions: the answers fed on standard input
INTERACTIVE: dict[str, str] = {
    r"^mattermost-notify setup -i$": "{url}\n{team}\n{token}\n",
}


@dataclass
class Block:
    lang: str
    code: str
    line: int  # 1-based line of the opening fence

    @property
    def where(self) -> str:
        return f"README.md:{self.line} ({self.lang})"


def code_blocks(text: str) -> list[Block]:
    """The fenced code blocks of a Markdown text."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^```(\w*)\s*$", lines[i])
        if m:
            start = i
            i += 1
            body: list[str] = []
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            blocks.append(Block(m.group(1), "\n".join(body) + "\n", start + 1))
        i += 1
    return blocks


def placeholders(sb, files_dir: Path) -> dict[str, str]:
    """Placeholder -> value; longer names first so /path/to/file1 wins over /path/to/file."""
    files_dir.mkdir(parents=True, exist_ok=True)
    values = {
        "your_server_url": sb.url,
        "your_token": sb.token,
        "your_team_name": sb.team,
        "your_username": "alice",
        "channel_name": "alerts",
    }
    for name in ("file1", "file2", "file"):
        path = files_dir / f"{name}.txt"
        path.write_text(f"contents of {name}\n")
        values[f"/path/to/{name}"] = str(path)
    return dict(sorted(values.items(), key=lambda kv: -len(kv[0])))


def fill(code: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        code = code.replace(key, value)
    return code


def user_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATTERMOST_NOTIFY_")}
    env.update(
        HOME=str(home),
        MATTERMOST_NOTIFY_CONFIG_DIR=str(home / "config"),
        MATTERMOST_NOTIFY_DATA_DIR=str(home / "data"),
        IPYTHONDIR=str(home / "ipython"),
        PYTHONUNBUFFERED="1",
        # the console script and python of this environment first
        PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
    )
    return env


def writes(sb) -> int:
    """Successful post creations and edits the sandbox has seen so far."""
    return sum(
        1
        for r in sb.view.requests()
        if r.method in ("POST", "PUT") and r.path.startswith("/api/v4/posts") and r.status < 300
    )


def wait_delivered(env: dict[str, str], timeout: float = 120) -> None:
    """Wait until the user's outbox is empty. A script that exits with messages still
    queued (a slow or loaded machine) hands them to a detached sender, which delivers
    them after the script has ended: only then can the server show them."""
    outbox = Path(env["MATTERMOST_NOTIFY_DATA_DIR"], "outbox")
    wait_until(
        lambda: not any(outbox.glob("spool-*/*.json")), timeout, f"the outbox {outbox} to empty"
    )


def run_console_line(
    line: str, *, cwd: Path, env: dict[str, str], stdin: str | None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["bash", "-c", line],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        start_new_session=True,  # no terminal: getpass reads the piped answers
    )
    assert proc.returncode == 0, f"{line!r} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


IPYTHON_DRIVER = """\
import json, sys
from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance()
for number, cell in enumerate(json.load(open(sys.argv[1]))):
    result = shell.run_cell(cell, store_history=True)
    if not result.success:
        print(f"cell {number} failed: {result.error_before_exec or result.error_in_exec!r}")
        sys.exit(1)
import mattermost_notify as notify
notify.flush(timeout=30)
"""


def run_ipython_cells(cells: list[str], tmp_path: Path, work: Path, env: dict[str, str]) -> None:
    """Run ``cells`` in one IPython shell in a child process, as a user would; all must pass."""
    path = tmp_path / "cells.json"
    path.write_text(json.dumps(cells))
    proc = subprocess.run(
        [sys.executable, "-c", IPYTHON_DRIVER, str(path)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"ipython cells:\n{proc.stdout}\n{proc.stderr}"


def test_readme_blocks_are_all_known_kinds():
    kinds = {b.lang for b in code_blocks(README.read_text(encoding="utf-8"))}
    assert kinds <= {"console", "python", "ipython", "toml"}, kinds


def test_readme_keeps_the_ci_commands():
    """.ci/run runs the README's two first-steps blocks as written."""
    text = README.read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = (
        'python -m pip install -e ".[test,docs]"',
        "python -m pytest",
        "python -m pip install .",
        "mattermost-notify demo",
        "python scripts/real_mattermost.py build",
        "python -m pytest -m real_server",
    )
    for command in commands:
        assert command in text
        assert command in ci


@pytest.mark.slow
def test_readme_code_blocks_run_against_the_sandbox(mattermost_server, tmp_path):
    sb = mattermost_server
    home = tmp_path / "home"
    work = home / "work"
    work.mkdir(parents=True)
    env = user_env(home)
    values = placeholders(sb, tmp_path / "files")
    blocks = code_blocks(README.read_text(encoding="utf-8"))
    ran: list[str] = []
    skipped: list[str] = []
    ipython_cells: list[str] = []

    for block in blocks:
        code = fill(block.code, values)
        if block.lang == "console":
            for raw in block.code.splitlines():
                line = raw.strip()
                if not line:
                    continue
                reason = next((r for p, r in SKIPPED.items() if re.search(p, line)), None)
                if (
                    re.search(r"^python -m sphinx ", line)
                    and importlib.util.find_spec("sphinx") is None
                ):
                    reason = "sphinx is not installed (the docs extra)"
                if reason:
                    skipped.append(f"{line}  # {reason}")
                    continue
                answers = next((a for p, a in INTERACTIVE.items() if re.search(p, line)), None)
                stdin = (
                    answers.format(url=sb.url, team=sb.team, token=sb.token) if answers else None
                )
                before = writes(sb)
                cwd = ROOT if any(re.search(p, line) for p in IN_REPOSITORY) else work
                proc = run_console_line(fill(line, values), cwd=cwd, env=env, stdin=stdin)
                assert sb.token not in proc.stdout + proc.stderr, f"{line!r} printed the token"
                if line.startswith(("mattermost-notify send", "mattermost-notify update")):
                    assert writes(sb) > before, f"{line!r} posted nothing"
                ran.append(line)
        elif block.lang == "python":
            before = writes(sb)
            if re.search(r"^def test_", code, re.M):
                test_file = work / "test_from_readme.py"
                test_file.write_text(code)
                proc = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "pytest",
                        "-q",
                        "-p",
                        "no:cacheprovider",
                        test_file.name,
                    ],
                    cwd=work,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
                assert proc.returncode == 0, f"{block.where}:\n{proc.stdout}\n{proc.stderr}"
                assert re.search(r"\b1 passed\b", proc.stdout), proc.stdout
            else:
                proc = subprocess.run(
                    [sys.executable, "-c", code],
                    cwd=work,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
                assert proc.returncode == 0, f"{block.where}:\n{proc.stderr}"
                wait_delivered(env)
                assert writes(sb) > before, f"{block.where} posted nothing on the sandbox"
            ran.append(block.where)
        elif block.lang == "ipython":
            ipython_cells.append(code)
        elif block.lang == "toml":
            from mattermost_notify.config import load_settings

            conf = tmp_path / "readme.toml"
            conf.write_text(code)
            conf.chmod(0o600)
            settings = load_settings(configfile=conf)
            assert settings.url == sb.url.rstrip("/")
            assert settings.team_name == sb.team
            ran.append(block.where)

    assert ipython_cells, "the README shows the magics"
    before = writes(sb)
    run_ipython_cells(ipython_cells, tmp_path, work, env)
    assert writes(sb) > before, "the magics posted nothing"
    ran.append(f"{len(ipython_cells)} ipython cells")

    # the rule is honest: the demo and the first-steps commands ran, only SKIPPED was skipped
    assert "mattermost-notify demo" in ran
    assert "mattermost-notify setup -i" in ran
    assert "mattermost-notify test" in ran
    print("ran:", *ran, "skipped:", *skipped, sep="\n  ")
