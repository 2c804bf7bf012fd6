"""Every code block of docs/use_api.rst, executed as written against the real server.

Only the placeholders are filled in: the real server's URL, the bot's token, the team,
``alice`` and the public channel the bot is in. The cross-session examples run their two
halves in two separate processes. After each block the server is asked (as the admin)
for what the block promises.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parents[2] / "docs" / "use_api.rst"
SESSION_SPLIT = re.compile(r"\n# -+\n# in a new session\n# -+\n")
CHANNEL = "bot-public"


def code_blocks() -> list[str]:
    text = DOC.read_text()
    pattern = r"^\.\. code(?:-block)?:: python\n\n((?:[ \t]+.*\n|\n)+)"
    return [textwrap.dedent(m.group(1)).strip() + "\n" for m in re.finditer(pattern, text, re.M)]


def fill(code: str, server: Any, files: dict[str, str]) -> str:
    code = code.replace("your_token", server.bot_token).replace("your_server_url", server.url)
    code = code.replace("your_team_name", server.team).replace("your_username", "alice")
    code = code.replace('"channel_name"', f'"{CHANNEL}"')
    for placeholder in sorted(files, key=len, reverse=True):
        code = code.replace(placeholder, files[placeholder])
    return code


def test_every_block_of_the_api_page_runs_as_written(
    real_server: Any, admin: Any, real_env: dict[str, str], tmp_path: Path
) -> None:
    files = {}
    for name in ("/path/to/file", "/path/to/file1", "/path/to/file2"):
        real = tmp_path / Path(name).name
        real.write_text(f"content of {real.name}\n")
        files[name] = str(real)
    channel = real_server.channels[CHANNEL]

    def dm() -> list[dict[str, Any]]:
        return admin.dm_posts("alice")

    def channel_posts() -> list[dict[str, Any]]:
        return admin.channel_posts(channel)

    namespace: dict = {}
    blocks = code_blocks()
    assert len(blocks) == 10
    for index, block in enumerate(blocks):
        code = fill(block, real_server, files)
        assert "your_" not in code and "/path/to" not in code
        dm_before, channel_before = len(dm()), len(channel_posts())
        if SESSION_SPLIT.search(code):
            first, second = SESSION_SPLIT.split(code)
            prelude = "import mattermost_notify as notify\n"
            for part in (first, second):
                subprocess.run(
                    [sys.executable, "-c", prelude + part],
                    cwd=tmp_path,
                    env={**os.environ, **real_env},
                    check=True,
                    timeout=60,
                )
            new = dm()[dm_before:]
            assert [p["message"] for p in new] == ["Hello World! (updated)"], f"block {index}"
            assert new[0]["edit_at"] > 0, f"block {index}"
            hook = (tmp_path / "my-test-message.msg").read_text()
            assert real_server.bot_token not in hook
            continue
        exec(compile(code, f"use_api.rst block {index}", "exec"), namespace)
        new_dm, new_channel = dm()[dm_before:], channel_posts()[channel_before:]
        if index == 0:
            assert [p["message"] for p in new_dm] == ["Hello World!"]
            assert [p["message"] for p in new_channel] == ["Hello World!"]
            assert admin.file_names(new_channel[0]) == ["file"]
        elif index in (1, 4):
            assert [p["message"] for p in new_dm] == ["Hello World!"], f"block {index}"
        elif index == 2:
            assert [p["message"] for p in new_channel] == ["Hello World!"]
        elif index == 3:
            assert [p["message"] for p in new_channel] == ["Hello World!"]
            assert admin.file_names(new_channel[0]) == ["file1", "file2"]
        elif index == 6:
            # the id is known from block 5: notify() updates that message, not a new one
            assert new_dm == []
            assert dm()[-1]["message"] == "Hello World! (updated)"
        elif index in (5, 7):
            assert [p["message"] for p in new_dm] == ["Hello World! (updated)"], f"block {index}"
            assert new_dm[0]["edit_at"] > 0, f"block {index}"
    assert namespace, "no block ran in this process"
