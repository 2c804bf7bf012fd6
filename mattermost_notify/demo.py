"""``mattermost-notify demo``: the whole package at work, with no server to set up.

It starts a sandbox server in this process, points a client at it and walks
through the examples of the user's guide: a direct message, a channel post
with a file, an update by id, and a message hook exported here and used by a
second Python process. What the server received is read back from the
sandbox and printed, with the address of the sandbox's web page.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

__all__ = ["run_demo"]

# The second process: the API page's "in a new session" example, as written,
# configured through the environment.
SECOND_PROCESS = """\
import os, sys
import mattermost_notify as notify

notify.wakeup()
notify.import_hook(sys.argv[1])
notify.send_update(
    f"Training finished: 3/3 epochs (updated by a second process, pid {os.getpid()})",
    id="training",
)
notify.flush()
"""


def _quote(text: str, limit: int = 70) -> str:
    text = " ".join(str(text).split())
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def run_demo(keep: bool = False, out: IO[str] | None = None) -> int:
    """Run the walk-through; returns 0 when every step was seen on the server, else 1."""
    from .client import Notify
    from .sandbox import Sandbox

    def say(text: str = "") -> None:
        print(text, file=out or sys.stdout, flush=True)

    started = time.perf_counter()
    problems: list[str] = []

    def expect(condition: bool, what: str) -> None:
        if not condition:
            problems.append(what)
            say(f"     !! not as expected: {what}")

    with tempfile.TemporaryDirectory(prefix="mattermost-notify-demo-") as tmp, Sandbox() as sb:
        work = Path(tmp)
        say(f"Started a sandbox Mattermost server at {sb.url}")
        say(f"  team {sb.team!r}, bot @{sb.bot_username}, users @alice and @bob, channel ~alerts")
        say()

        client = Notify(token=sb.token, url=sb.url, team_name=sb.team)
        with client:
            # 1. a direct message -------------------------------------------
            say('1. A direct message:  client.send_to_user("Hello World!", "alice")')
            sent = client.send_to_user("Hello World!", "alice")
            dm = sb.view.posts(dm_with="alice")
            expect(any(p.message == "Hello World!" for p in dm), "the DM to @alice")
            say(f"   -> post {sent.post_id} in the direct channel of @{sb.bot_username} and @alice")
            say()

            # 2. a channel post with a file ----------------------------------
            results = work / "results.csv"
            results.write_text("epoch,loss\n1,0.93\n2,0.61\n3,0.42\n", encoding="utf-8")
            say(
                "2. A channel post with a file:  "
                'client.send_to_channel("Run 42 finished", "alerts", files=["results.csv"])'
            )
            sent = client.send_to_channel("Run 42 finished", "alerts", files=[str(results)])
            post = sb.view.post(sent.post_id)
            names = [f.name for f in post.files]
            expect(post.message == "Run 42 finished", "the post in ~alerts")
            expect(len(names) == 1, "one file attached to the same post")
            say(f"   -> post {sent.post_id} in ~alerts, with the file(s) {', '.join(names)}")
            say("      (text and file in one post, uploaded in one request)")
            say()

            # 3. an update by id ---------------------------------------------
            say(
                "3. An update by id:  "
                'client.send_to_user("Training: epoch 1/3", "alice", id="training")'
            )
            say('                     client.send_update("Training: epoch 2/3", id="training")')
            first = client.send_to_user("Training: epoch 1/3", "alice", id="training")
            client.send_update("Training: epoch 2/3", id="training")
            post = sb.view.post(first.post_id)
            expect(post.message == "Training: epoch 2/3", "the edited message")
            text = post.message
            say(f"   -> post {first.post_id} now reads {_quote(text)}")
            say()

            # 4. a hook used by a second process -----------------------------
            hook_file = work / "training.msg"
            client.write_message_hook_to_file("training", str(hook_file))
            say(
                '4. A hook across processes:  client.write_message_hook_to_file("training", '
                '"training.msg")'
            )
            say("   then, in a second Python process:")
            for line in SECOND_PROCESS.splitlines()[3:-1]:
                if line.strip():
                    say(f"     {line.replace('sys.argv[1]', repr(hook_file.name))}")
            env = {k: v for k, v in os.environ.items() if not k.startswith("MATTERMOST_NOTIFY_")}
            env.update(
                MATTERMOST_NOTIFY_URL=sb.url,
                MATTERMOST_NOTIFY_TOKEN=sb.token,
                MATTERMOST_NOTIFY_TEAM=sb.team,
                MATTERMOST_NOTIFY_DATA_DIR=str(work / "data"),
            )
            child = subprocess.run(
                [sys.executable, "-c", SECOND_PROCESS, str(hook_file)],
                env=env,
                cwd=work,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if child.returncode != 0:
                tail = (child.stderr.strip().splitlines() or ["(no output)"])[-1]
                expect(False, f"the second process failed: {tail}")
            post = sb.view.post(first.post_id)
            text = post.message
            expect("second process" in text, "the edit made by the second process")
            say(f"   -> post {first.post_id} now reads {_quote(text)}")
            say()

        elapsed = time.perf_counter() - started
        if problems:
            say(f"The demo found {len(problems)} problem(s): {'; '.join(problems)}")
        else:
            say(f"All 4 steps done and checked on the server in {elapsed:.1f} s.")
        if keep:
            try:  # a Ctrl-C right after the line that asks for it is a stop too
                say(f"See the messages on the sandbox's web page: {sb.url}/")
                say("The sandbox stays up (--keep); press Ctrl-C to stop it.")
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                say("Stopped.")
        else:
            say(
                "The sandbox has stopped. Run 'mattermost-notify demo --keep' to keep it up "
                "and see the messages on its web page."
            )
        say()
        say("Next: connect to your own server with 'mattermost-notify setup -i'.")
    return 1 if problems else 0
