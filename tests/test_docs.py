"""The documentation's examples, run against a sandbox.

What runs (with only the placeholders filled in, as in test_readme):

* every console and bash block of ``docs/cli.rst``, line by line (the bash
  script block as one script, with a ``./train.sh`` that succeeds);
* every ``python`` block of the other pages except ``use_api.rst`` (the core's
  tests run that page's blocks): each in a fresh process whose environment
  points at the sandbox; a block defining ``test_*`` functions is run by pytest;
  a block captioned as an IPython config file gets a traitlets ``c``;
* the ``ipython`` blocks of ``docs/jupyter.rst``, as cells of one IPython shell.

Console lines on the other pages show example hosts (chat.example.org) or
installs, so they are not run here; the same commands run from ``cli.rst`` and
the README. The whole docs build (``sphinx -W``) runs in the README test.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_readme import (
    fill,
    placeholders,
    run_console_line,
    run_ipython_cells,
    user_env,
    wait_delivered,
    writes,
)

DOCS = Path(__file__).resolve().parent.parent / "docs"


@dataclass
class RstBlock:
    page: str
    lang: str
    code: str
    caption: str
    line: int

    @property
    def where(self) -> str:
        return f"docs/{self.page}:{self.line} ({self.lang})"


def rst_blocks(page: str) -> list[RstBlock]:
    lines = (DOCS / page).read_text(encoding="utf-8").splitlines()
    out: list[RstBlock] = []
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)\.\. code(?:-block)?::\s*(\S+)\s*$", lines[i])
        if not m:
            i += 1
            continue
        start, indent = i, len(m.group(1))
        i += 1
        caption = ""
        while i < len(lines) and re.match(r"^\s+:\w+:", lines[i]):
            if ":caption:" in lines[i]:
                caption = lines[i].split(":caption:", 1)[1].strip()
            i += 1
        body: list[str] = []
        while i < len(lines) and (
            not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent
        ):
            body.append(lines[i])
            i += 1
        text = "\n".join(body).strip("\n")
        pad = min((len(s) - len(s.lstrip()) for s in text.splitlines() if s.strip()), default=0)
        code = "\n".join(s[pad:] for s in text.splitlines()) + "\n"
        out.append(RstBlock(page, m.group(2), code, caption, start + 1))
    return out


PAGES = sorted(p.name for p in DOCS.glob("*.rst"))
PYTHON_PAGES = [
    p
    for p in PAGES
    if p != "use_api.rst" and any(b.lang in ("python", "python3") for b in rst_blocks(p))
]


@pytest.fixture
def user(mattermost_server, tmp_path):
    """An isolated user whose configuration points at the sandbox (as after ``setup``)."""
    sb = mattermost_server
    home = tmp_path / "home"
    work = home / "work"
    work.mkdir(parents=True)
    env = user_env(home)
    config = home / "config"
    config.mkdir()
    conf = config / "config.toml"
    conf.write_text(f'url = "{sb.url}"\ntoken = "{sb.token}"\nteam_name = "{sb.team}"\n')
    conf.chmod(0o600)
    return sb, work, env, placeholders(sb, tmp_path / "files")


def test_the_pages_with_examples_are_found():
    assert {"sandbox.rst", "progress.rst", "configuration.rst", "setup_package.rst"} <= set(
        PYTHON_PAGES
    )


def test_every_page_is_in_a_toctree():
    index = (DOCS / "index.rst").read_text(encoding="utf-8")
    for page in PAGES:
        if page != "index.rst":
            assert f"   {page[:-4]}\n" in index, f"{page} is not in the index's toctree"


@pytest.mark.slow
def test_cli_page_examples(user):
    sb, work, env, values = user
    train = work / "train.sh"
    train.write_text("#!/bin/sh\necho training\n")
    train.chmod(0o755)
    (work / "train.log").write_text("log\n")
    ran = []
    for block in rst_blocks("cli.rst"):
        if block.lang == "bash":
            before = writes(sb)
            run_console_line(fill(block.code, values), cwd=work, env=env, stdin=None)
            assert writes(sb) > before, f"{block.where} posted nothing"
            ran.append(block.where)
            continue
        assert block.lang == "console", block.where
        for line in block.code.splitlines():
            if not line.strip():
                continue
            before = writes(sb)
            proc = run_console_line(fill(line, values), cwd=work, env=env, stdin=None)
            assert sb.token not in proc.stdout + proc.stderr
            if re.match(r"mattermost-notify (send|update|run(?!.* --after))", line):
                assert writes(sb) > before, f"{line!r} posted nothing"
            ran.append(line)
    assert any(r.startswith("mattermost-notify update") for r in ran)
    assert any(r.startswith("mattermost-notify setup") for r in ran)
    posts = sb.view.posts(dm_with="alice")
    assert "Backup: done" in [p.message for p in posts]


# pages whose examples take more than ~10 s (they run pytest sessions of their own)
SLOW_PAGES = {"sandbox.rst"}


@pytest.mark.parametrize(
    "page",
    [pytest.param(p, marks=pytest.mark.slow) if p in SLOW_PAGES else p for p in PYTHON_PAGES],
)
def test_python_blocks(user, page):
    sb, work, env, values = user
    blocks = [b for b in rst_blocks(page) if b.lang in ("python", "python3")]
    for block in blocks:
        code = fill(block.code, values)
        if "ipython_kernel_config.py" in block.caption:
            code = "from traitlets.config import Config\nc = Config()\n" + code
            code += "\nassert c.NotifyMagics\n"
        before = writes(sb)
        if re.search(r"^def test_", code, re.M):
            test_file = work / f"test_doc_{page[:-4]}_{block.line}.py"
            test_file.write_text(code)
            cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)]
        else:
            cmd = [sys.executable, "-c", code]
        proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{block.where}:\n{proc.stdout}\n{proc.stderr}"
        sends = re.search(
            r"\bnotify_(user|channel)\(|\btqdm\(|\.progress\(|send_to_|\bon_done\(", code
        )
        own_server = "Sandbox()" in code or "def test_" in code
        if sends and not own_server:
            wait_delivered(env)
            assert writes(sb) > before, f"{block.where} posted nothing on the sandbox"


def test_jupyter_page_cells(user, tmp_path):
    sb, work, env, values = user
    cells = [fill(b.code, values) for b in rst_blocks("jupyter.rst") if b.lang == "ipython"]
    assert len(cells) >= 2
    before = writes(sb)
    run_ipython_cells(cells, tmp_path, work, env)
    assert writes(sb) > before
    replies = [p for p in sb.view.posts(dm_with="alice") if p.root_id]
    assert replies, "%%notify_on_done posted no reply in the thread"


# words of the people who build the package, not of the people who use it
INTERNAL_WORDS = re.compile(
    r"\bseed(?: page|'s)|\bthe seed\b|\bissue \d+|ARCHITECTURE\.md|\bTODO\b|\bFIXME\b", re.I
)


def test_the_api_reference_speaks_to_users():
    """Every docstring the API reference renders is written for users."""
    import importlib
    import inspect

    text = (DOCS / "reference.rst").read_text(encoding="utf-8")
    modules = re.findall(r"^\.\. automodule:: (\S+)", text, re.M)
    assert modules
    found = []
    for name in modules:
        module = importlib.import_module(name)
        docs = [(name, module.__doc__ or "")]
        for attr, obj in vars(module).items():
            if attr.startswith("_") or getattr(obj, "__module__", name) != name:
                continue
            docs.append((f"{name}.{attr}", inspect.getdoc(obj) or ""))
            for sub, member in vars(obj).items() if inspect.isclass(obj) else ():
                if not sub.startswith("_") or sub == "__init__":
                    docs.append((f"{name}.{attr}.{sub}", inspect.getdoc(member) or ""))
        found += [(where, m.group()) for where, doc in docs for m in INTERNAL_WORDS.finditer(doc)]
    assert not found, found
