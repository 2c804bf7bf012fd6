"""The token is nowhere (issue #7 item 5), over real HTTP against the sandbox.

Runs sends (good ones, failing ones, background ones during an outage, hook
export, the CLI) with DEBUG logging and captures everything: log records,
stdout/stderr, exception texts and reprs, warnings, hook files, outbox
files, config reprs and CLI output. Then counts occurrences of the token
(and of a wrong token tried on the way): the count must be 0.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

import mattermost_notify as mn
from mattermost_notify import outbox
from mattermost_notify.client import Notify
from mattermost_notify.sandbox import Sandbox

WRONG_TOKEN = "wrongtoken" + "q" * 16


def collect_everything(sb: Sandbox, tmp: Path, capfd: Any | None = None) -> dict[str, str]:
    """Exercise the library and return every text it produced, by source."""
    texts: dict[str, list[str]] = {
        "logs": [],
        "exceptions": [],
        "warnings": [],
        "reprs": [],
        "hook files": [],
        "outbox files": [],
        "cli": [],
    }
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    chatty = ("mattermost_notify", "urllib3", "requests")
    old_levels = {name: logging.getLogger(name).level for name in chatty}
    for name in chatty:
        logging.getLogger(name).setLevel(logging.DEBUG)
    # urllib3 logs to stderr too when asked; make its output visible to capfd
    stream = logging.StreamHandler(sys.stderr) if capfd is not None else logging.NullHandler()
    root.addHandler(stream)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            client = Notify(sb.token, sb.url, sb.team, timeout=(1.0, 2.0))
            texts["reprs"] += [repr(client), str(client), repr(client.transport)]
            texts["reprs"].append(repr(mn.load_settings()))
            texts["reprs"].append(str(mn.load_settings()))
            # good sends, an update, files, a reply, a hook export
            f = tmp / "report.txt"
            f.write_text("numbers\n")
            client.send("secret test", channel="alerts", id="s1", files=[f])
            client.send_update("secret test, edited", "s1")
            client.reply("s1", "in the thread")
            client.send("dm", user="alice")
            hook_path = tmp / "s1.hook.json"
            client.write_message_hook_to_file("s1", hook_path)
            texts["hook files"].append(hook_path.read_text())
            texts["reprs"].append(repr(client.hooks["s1"]))
            texts["reprs"].append(repr(client.test_connection()))
            texts["reprs"].append(str(client.test_connection()))
            # failures of every kind
            failing = [
                lambda: client.send("m", user="nobody"),
                lambda: client.send("m", channel="secret"),
                lambda: client.send("m", channel="lobby"),
                lambda: client.send_update("m", "unknown"),
                lambda: client.send("m", channel="alerts", files=[tmp / "missing"]),
                lambda: Notify(WRONG_TOKEN, sb.url, sb.team).send("m", channel="alerts"),
                lambda: Notify(sb.token, "http://127.0.0.1:9", sb.team, retry=False).send(
                    "m", channel="alerts"
                ),
                lambda: Notify(sb.token, "http://chat.example.org", sb.team),
                lambda: Notify(
                    sb.token, sb.url.replace("http:", "https:"), sb.team, retry=False
                ).send("m", channel="alerts"),
            ]
            for call in failing:
                try:
                    call()
                except Exception as exc:
                    texts["exceptions"] += [str(exc), repr(exc), repr(exc.args)]
                    cause = exc.__cause__ or exc.__context__
                    while cause is not None:
                        texts["exceptions"] += [str(cause), repr(cause)]
                        cause = cause.__cause__ or cause.__context__
                else:
                    raise AssertionError("expected a failure")
            # background sends while the server is down: the outbox holds them
            sender = client.sender
            sb.stop()
            for i in range(3):
                sender.post(f"queued {i}", channel="alerts")
            sender.update("s1", "queued edit")
            sender.flush(1.5)
            for e in outbox.list_entries():
                texts["outbox files"].append(e.path.read_text())
                texts["reprs"].append(repr(e))
            sb.start()
            assert sender.flush(30)
            bad = sender.post("to nobody", user="nobody")
            sender.flush(10)
            texts["exceptions"].append(repr(bad.exception()))
            client.close()
            texts["warnings"] += [str(w.message) for w in caught]
        # the CLI, with the environment pointing at the sandbox
        cli = [sys.executable, "-m", "mattermost_notify.cli"]
        for args in (
            ["send", "--channel", "alerts", "from the cli"],
            ["send", "--user", "nobody", "fails"],
            ["test"],
            ["outbox", "list"],
            ["outbox", "flush"],
        ):
            env = {**os.environ, "MATTERMOST_NOTIFY_LOG_LEVEL": "DEBUG"}
            proc = subprocess.run(
                cli + args,
                capture_output=True,
                text=True,
                timeout=60,
                env=env,
            )
            texts["cli"] += [proc.stdout, proc.stderr]
    finally:
        root.removeHandler(handler)
        root.removeHandler(stream)
        root.setLevel(old_level)
        for name, level in old_levels.items():
            logging.getLogger(name).setLevel(level)
    texts["logs"] = [
        f"{r.name} {r.levelname} {r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in records
    ]
    if capfd is not None:
        out, err = capfd.readouterr()
        texts["stdout/stderr"] = [out, err]
    return {k: "\n".join(v) for k, v in texts.items()}


def count_secrets(texts: dict[str, str], *secrets: str) -> dict[str, int]:
    return {k: sum(v.count(s) for s in secrets) for k, v in texts.items()}


@pytest.mark.slow
def test_the_token_is_nowhere(
    mattermost_env: Sandbox, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    texts = collect_everything(mattermost_env, tmp_path, capfd)
    # the capture really captured: each source has content
    for source in ("logs", "exceptions", "reprs", "hook files", "outbox files", "cli"):
        assert texts[source].strip(), source
    assert "GET" in texts["logs"] and "/api/v4/" in texts["logs"]  # DEBUG request lines
    assert "queued 0" in texts["outbox files"]
    found = count_secrets(texts, mattermost_env.token, WRONG_TOKEN)
    assert found == dict.fromkeys(texts, 0), found


def test_outbox_and_hook_files_are_0600(mattermost_env: Sandbox, tmp_path: Path) -> None:
    client = Notify(mattermost_env.token, mattermost_env.url, mattermost_env.team)
    client.send("m", channel="alerts", id="h")
    client.write_message_hook_to_file("h", tmp_path / "h.json")
    assert (tmp_path / "h.json").stat().st_mode & 0o777 == 0o600
    mattermost_env.stop()
    client.sender.post("waiting", channel="alerts")
    deadline = time.monotonic() + 30
    while not (entries := outbox.list_entries()) and time.monotonic() < deadline:
        time.sleep(0.01)  # the sender's outbox thread writes it in a moment
    assert entries and all(e.path.stat().st_mode & 0o777 == 0o600 for e in entries)
    assert all(e.path.parent.parent.stat().st_mode & 0o777 == 0o700 for e in entries)
    mattermost_env.start()
    assert client.sender.flush(30)
    client.close()
