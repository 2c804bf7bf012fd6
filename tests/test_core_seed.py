"""Every code block of docs/use_api.rst, executed as written against the sandbox.

Only the placeholders are filled in (your_token, your_server_url, your_team_name,
your_username, "channel_name", /path/to/file...). The cross-session examples run their
two halves in two separate processes. After each block the sandbox is checked for what
the block promises.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from mattermost_notify import api
from mattermost_notify.sandbox import Sandbox

DOC = Path(__file__).resolve().parent.parent / "docs" / "use_api.rst"
SESSION_SPLIT = re.compile(r"\n# -+\n# in a new session\n# -+\n")


def code_blocks() -> list[str]:
    text = DOC.read_text()
    blocks = []
    for match in re.finditer(r"^\.\. code(?:-block)?:: python\n\n((?:[ \t]+.*\n|\n)+)", text, re.M):
        blocks.append(textwrap.dedent(match.group(1)).strip() + "\n")
    return blocks


@pytest.fixture
def env(sb: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    for var in list(os.environ):
        if var.startswith("MATTERMOST_NOTIFY_"):
            monkeypatch.delenv(var)
    home = tmp_path / "home"
    home.mkdir()
    values = {
        "MATTERMOST_NOTIFY_URL": sb.url,
        "MATTERMOST_NOTIFY_TOKEN": sb.token,
        "MATTERMOST_NOTIFY_TEAM": sb.team,
        "MATTERMOST_NOTIFY_CONFIG_DIR": str(tmp_path / "config"),
        "MATTERMOST_NOTIFY_DATA_DIR": str(tmp_path / "data"),
        "HOME": str(home),
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    api._reset()
    yield values
    api._reset()


def fill(code: str, sb: Sandbox, files: dict[str, str]) -> str:
    code = code.replace("your_token", sb.token).replace("your_server_url", sb.url)
    code = code.replace("your_team_name", sb.team).replace("your_username", "alice")
    code = code.replace('"channel_name"', '"alerts"')
    for placeholder in sorted(files, key=len, reverse=True):
        code = code.replace(placeholder, files[placeholder])
    return code


def test_the_page_has_the_expected_blocks() -> None:
    blocks = code_blocks()
    assert len(blocks) == 10
    assert sum(bool(SESSION_SPLIT.search(b)) for b in blocks) == 2


def test_every_block_runs_as_written(sb: Sandbox, env: dict[str, str], tmp_path: Path) -> None:
    files = {}
    for name in ("/path/to/file", "/path/to/file1", "/path/to/file2"):
        real = tmp_path / Path(name).name
        real.write_text(f"content of {real.name}\n")
        files[name] = str(real)

    def dm() -> list:
        try:
            return sb.view.posts(dm_with="alice")
        except KeyError:  # no DM channel yet
            return []

    def alerts() -> list:
        return sb.view.posts(channel="alerts")

    namespace: dict = {}
    for index, block in enumerate(code_blocks()):
        code = fill(block, sb, files)
        assert "your_" not in code and "/path/to" not in code
        dm_before, alerts_before = len(dm()), len(alerts())
        if SESSION_SPLIT.search(code):
            first, second = SESSION_SPLIT.split(code)
            prelude = "import mattermost_notify as notify\n"
            for part in (first, second):
                subprocess.run(
                    [sys.executable, "-c", prelude + part],
                    cwd=tmp_path,
                    env={**os.environ, **env},
                    check=True,
                    timeout=60,
                )
            post = dm()[-1]
            assert len(dm()) == dm_before + 1, f"block {index}"
            assert post.message == "Hello World! (updated)" and post.edited, f"block {index}"
            hook = (tmp_path / "my-test-message.msg").read_text()
            assert sb.token not in hook
            continue
        exec(compile(code, f"use_api.rst block {index}", "exec"), namespace)
        new_dm, new_alerts = dm()[dm_before:], alerts()[alerts_before:]
        if index == 0:
            assert [p.message for p in new_dm] == ["Hello World!"]
            assert [p.message for p in new_alerts] == ["Hello World!"]
            assert [f.name for f in new_alerts[0].files] == ["file"]
        elif index in (1, 4):
            assert [p.message for p in new_dm] == ["Hello World!"], f"block {index}"
        elif index == 2:
            assert [p.message for p in new_alerts] == ["Hello World!"]
        elif index == 3:
            assert [f.name for f in new_alerts[0].files] == ["file1", "file2"]
        elif index == 6:
            # the id is already known from block 5: notify() updates that message (the seed's
            # rule), first back to "Hello World!", then to the updated text
            assert new_dm == []
            post = dm()[-1]
            assert post.message == "Hello World! (updated)"
            assert [e.message for e in post.edits] == [
                "Hello World!",
                "Hello World! (updated)",
                "Hello World!",
            ]
        elif index in (5, 7):
            # one new DM, edited once to the updated text
            assert len(new_dm) == 1, f"block {index}"
            assert new_dm[0].message == "Hello World! (updated)", f"block {index}"
            assert [e.message for e in new_dm[0].edits] == ["Hello World!"], f"block {index}"
