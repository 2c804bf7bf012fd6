"""Progress messages from real child processes against the sandbox.

* a script that ends right after its loop (no flush): the final state and the reply
  still arrive (the bar's states reach the sender before its bounded exit flush);
* a script whose top-level loop raises, uncaught: the message says failed;
* the notebook flavour (``tqdm.auto`` resolved to ``tqdm.notebook``, an ipywidgets
  bar), which has its own ``__iter__``/``close``/``display``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from mattermost_notify.sandbox import Sandbox

pytestmark = pytest.mark.timeout(120)


def run(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The script in a child process whose SIGINT acts as in a terminal (a background
    job inherits it ignored)."""
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(code), encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=90,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def roots(sb: Sandbox, count: int = 1, replies: int = 0, timeout: float = 60.0) -> list[Any]:
    """The root posts, once ``count`` of them show a final state and ``replies`` replies
    arrived: an exiting child may leave its last messages to a detached sender."""
    deadline = time.monotonic() + timeout
    while True:
        posts = sb.view.posts(channel="alerts")
        tops = [p for p in posts if not p.root_id]
        final = len(tops) >= count and not any(p.message.startswith("⏳") for p in tops)
        if (final and len(posts) - len(tops) >= replies) or time.monotonic() > deadline:
            return tops
        time.sleep(0.05)


def test_script_exits_right_after_the_loop(mattermost_env: Sandbox, tmp_path: Path) -> None:
    proc = run(
        """
        from mattermost_notify import tqdm
        for _ in tqdm(range(5), desc="job", channel="alerts"):
            pass
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert mattermost_env.token not in proc.stderr + proc.stdout
    (post,) = roots(mattermost_env, replies=1)
    assert "✅ **job** done: 5/5" in post.message  # type: ignore[attr-defined]
    assert len(post.reply_ids) == 1  # type: ignore[attr-defined]


def test_script_exits_with_a_bar_still_open(mattermost_env: Sandbox, tmp_path: Path) -> None:
    """A bar never closed (manual updates, then the script ends): the exit does not hang
    in the interpreter's shutdown, and the message says where it stopped."""
    proc = run(
        """
        from mattermost_notify import tqdm
        bar = tqdm(total=10, desc="job", channel="alerts")
        bar.update(5)
        raise SystemExit(0)
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    (post,) = roots(mattermost_env)
    assert "**job** stopped at 5/10" in post.message  # type: ignore[attr-defined]


def test_uncaught_exception_in_a_script(mattermost_env: Sandbox, tmp_path: Path) -> None:
    proc = run(
        """
        from mattermost_notify import tqdm
        for i in tqdm(range(5), desc="job", channel="alerts"):
            if i == 3:
                raise RuntimeError("out of memory")
        """,
        tmp_path,
    )
    assert proc.returncode == 1
    assert "RuntimeError: out of memory" in proc.stderr  # the user's traceback is intact
    (post,) = roots(mattermost_env, replies=1)
    text = post.message  # type: ignore[attr-defined]
    assert "❌ **job** failed at 3/5" in text
    assert 'at job.py:5 in <module>(): raise RuntimeError("out of memory")' in text


def test_notebook_flavour(mattermost_env: Sandbox, tmp_path: Path) -> None:
    proc = run(
        """
        import ipykernel.zmqshell  # what tqdm.autonotebook looks for
        from mattermost_notify import progress_bar
        from tqdm.notebook import tqdm_notebook
        assert issubclass(progress_bar.tqdm, tqdm_notebook), progress_bar.tqdm.__mro__
        bar = progress_bar.tqdm
        for _ in bar(range(4), desc="nb-done", channel="alerts"):
            pass
        try:
            with bar(range(4), desc="nb-fail", channel="alerts") as b:
                for i in b:
                    if i == 2:
                        raise ValueError("nan")
        except ValueError:
            pass
        for i in bar(range(4), desc="nb-break", channel="alerts", local=False):
            if i == 1:
                break
        assert progress_bar.flush(30)
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    texts = sorted(p.message for p in roots(mattermost_env, count=3))  # type: ignore[attr-defined]
    assert len(texts) == 3, texts
    by = {name: next(t for t in texts if name in t) for name in ("nb-done", "nb-fail", "nb-break")}
    assert "✅ **nb-done** done: 4/4" in by["nb-done"]
    assert "❌ **nb-fail** failed at 2/4" in by["nb-fail"]
    assert "ValueError: nan" in by["nb-fail"]
    assert "⏹️ **nb-break** stopped at 1/4" in by["nb-break"]


def start(code: str, tmp_path: Path) -> subprocess.Popen[str]:
    """The script in a child process whose SIGINT acts as in a terminal (a background
    job inherits it ignored)."""
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(code), encoding="utf-8")
    return subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def ctrl_c_at_ready(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """Wait for the child's ``ready`` line, send it SIGINT, collect its output."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", line + proc.communicate(timeout=60)[1]
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return line + out, err


def test_ctrl_c_in_a_plain_loop_reads_interrupted(mattermost_env: Sandbox, tmp_path: Path) -> None:
    """The README's form, ``for x in tqdm(...)``, sent SIGINT from outside: interrupted, not
    failed, no alerting reply (Python 3.11 too, where the exception leaving the loop is not
    visible when the bar closes)."""
    proc = start(
        """
        import time
        from mattermost_notify import tqdm
        for i in tqdm(range(100), desc="job", channel="alerts"):
            if i == 3:
                print("ready", flush=True)
                time.sleep(60)
        """,
        tmp_path,
    )
    _, err = ctrl_c_at_ready(proc)
    assert proc.returncode != 0
    assert "KeyboardInterrupt" in err  # Python's own handling is untouched
    (post,) = roots(mattermost_env)
    text = post.message  # type: ignore[attr-defined]
    assert "⏹️ **job** interrupted at 3/100" in text, text
    assert "failed" not in text
    assert not post.reply_ids  # type: ignore[attr-defined]  # no alerting reply


# (also run side by side under load by tests/stress_ctrl_c.py)
CTRL_C_CAUGHT_THEN_VALUE_ERROR = """
import time
from mattermost_notify import tqdm
for i in tqdm(range(100), desc="job", channel="alerts"):
    if i == 3:
        try:
            print("ready", flush=True)
            time.sleep(60)
        except KeyboardInterrupt:
            print("skipped", flush=True)
    if i == 5:
        raise ValueError("loss is nan")
"""


def test_ctrl_c_handled_in_the_body_then_a_value_error(
    mattermost_env: Sandbox, tmp_path: Path
) -> None:
    """A Ctrl-C the loop body caught does not make a later ValueError read interrupted.

    (It once hung under load: the SIGINT went to a sender thread, so the body's
    ``time.sleep(60)`` was not interrupted; see the test below.)"""
    proc = start(CTRL_C_CAUGHT_THEN_VALUE_ERROR, tmp_path)
    out, err = ctrl_c_at_ready(proc)
    assert "skipped" in out
    assert proc.returncode == 1
    assert "ValueError: loss is nan" in err
    (post,) = roots(mattermost_env, replies=1)
    text = post.message  # type: ignore[attr-defined]
    assert "❌ **job** failed at 5/100" in text, text
    assert "ValueError: loss is nan" in text
    (reply,) = [p for p in mattermost_env.view.posts(channel="alerts") if p.root_id]
    assert "ValueError: loss is nan" in reply.message


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="no per-thread signal masks")
def test_a_ctrl_c_goes_to_the_main_thread_not_to_ours(
    mattermost_env: Sandbox, tmp_path: Path
) -> None:
    """The kernel gives a process's SIGINT to any thread that does not block it, often a
    running one. Python handles it in the main thread only, and only the thread that got
    it has its blocking call interrupted: a Ctrl-C that landed in a sender thread left a
    ``time.sleep(60)`` in the loop body running for a minute. Every thread the library
    starts (sender, outbox, deadlines, logging handler, tqdm's monitor) blocks it: with
    the main thread blocking it too, a SIGINT sent to the process stays pending."""
    proc = run(
        """
        import logging, os, signal, threading
        from mattermost_notify import MattermostHandler, notify, tqdm, flush
        log = logging.getLogger("job")
        log.addHandler(MattermostHandler(channel="alerts", interval=0.1))
        for i in tqdm(range(3), desc="job", channel="alerts", min_interval=0.01):
            notify(f"step {i}", channel_name="alerts", block=False)
            log.error("step %d", i)
        assert flush(30)
        ours = [t for t in threading.enumerate() if t is not threading.main_thread()]
        open_mask = []
        for t in ours:
            with open(f"/proc/self/task/{t.native_id}/status") as status:
                blocked = next(l for l in status if l.startswith("SigBlk:")).split()[1]
            if not int(blocked, 16) >> (signal.SIGINT - 1) & 1:
                open_mask.append(t.name)
        print("threads", sorted(t.name for t in ours))
        print("sigint open in", open_mask)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        pending = None
        try:
            os.kill(os.getpid(), signal.SIGINT)  # to the process, as a terminal's Ctrl-C
            pending = signal.SIGINT in signal.sigpending()  # no thread took it
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # the main thread's
        except KeyboardInterrupt:
            print("interrupted; it was pending:", pending)
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for name in ("sender", "outbox", "deadlines", "logging"):  # they ran
        assert f"'mattermost-notify-{name}'" in out, out
    assert "'tqdm_monitor'" in out, out
    assert "sigint open in []" in out, out
    assert "interrupted; it was pending: True" in out, out


@pytest.mark.parametrize(
    ("where", "code"),
    [
        (
            "uncaught",
            """
            for i in tqdm(range(9), desc="job", channel="alerts"):
                if i == 4:
                    raise ValueError(f"bad batch {i}")
            """,
        ),
        (
            "caught by the caller",
            """
            def train():
                for i in tqdm(range(9), desc="job", channel="alerts"):
                    if i == 4:
                        raise ValueError(f"bad batch {i}")
            try:
                train()
            except ValueError:
                print("caught")
            """,
        ),
        (
            "caught in the same frame",
            """
            try:
                for i in tqdm(range(9), desc="job", channel="alerts"):
                    if i == 4:
                        raise ValueError(f"bad batch {i}")
            except ValueError:
                print("caught")
            """,
        ),
        (
            "in a with block that lets it through",
            """
            import contextlib
            with contextlib.suppress(KeyError):
                for i in tqdm(range(9), desc="job", channel="alerts"):
                    if i == 4:
                        raise ValueError(f"bad batch {i}")
            """,
        ),
        (
            "in a thread",
            """
            import threading
            def train():
                for i in tqdm(range(9), desc="job", channel="alerts"):
                    if i == 4:
                        raise ValueError(f"bad batch {i}")
            t = threading.Thread(target=train)
            t.start()
            t.join()
            """,
        ),
    ],
)
def test_value_error_in_a_plain_loop_is_named(
    mattermost_env: Sandbox, tmp_path: Path, where: str, code: str
) -> None:
    """``for x in tqdm(...)`` whose body raises: the report names the exception (Python
    3.11 too), wherever it is caught."""
    proc = run("from mattermost_notify import tqdm\n" + textwrap.dedent(code), tmp_path)
    assert "ValueError: bad batch 4" in proc.stderr or "caught" in proc.stdout, proc.stderr
    (post,) = roots(mattermost_env, replies=1)
    text = post.message  # type: ignore[attr-defined]
    assert "❌ **job** failed at 4/9" in text, text
    assert "ValueError: bad batch 4" in text, text
    assert 'raise ValueError(f"bad batch {i}")' in text
    (reply,) = [p for p in mattermost_env.view.posts(channel="alerts") if p.root_id]
    assert "ValueError: bad batch 4" in reply.message


@pytest.mark.parametrize(
    ("statement", "status", "headline", "text"),
    [
        ("sys.exit()", 0, "⏹️ **job** stopped at 2/10", "(SystemExit)"),
        ("raise SystemExit", 0, "⏹️ **job** stopped at 2/10", "(SystemExit)"),
        ("sys.exit(ok)", 0, "⏹️ **job** stopped at 2/10", "(SystemExit)"),
        ("sys.exit(3)", 3, "❌ **job** failed at 2/10", "SystemExit: 3"),
        ("exit(2)", 2, "❌ **job** failed at 2/10", "SystemExit: 2"),
        ('sys.exit("loss diverged")', 1, "❌ **job** failed at 2/10", "SystemExit: loss diverged"),
        ("raise SystemExit(bad)", 4, "❌ **job** failed at 2/10", "SystemExit: 4"),
    ],
)
@pytest.mark.parametrize("where", ["top of the script", "in a function"])
def test_sys_exit_in_a_plain_loop(
    mattermost_env: Sandbox,
    tmp_path: Path,
    statement: str,
    status: int,
    headline: str,
    text: str,
    where: str,
) -> None:
    """``sys.exit()`` leaving ``for x in tqdm(...)``, uncaught: exit status 0 reads
    stopped (the script chose to end there), any other status failed, with the
    ``SystemExit`` named, on Python 3.11 (where Python shows it to no hook when the loop is
    at the top of the script) as on 3.12."""
    loop = f"""
    for i in tqdm(range(10), desc="job", channel="alerts"):
        if i == 2:
            {statement}
    """
    if where == "in a function":
        loop = "def train():" + textwrap.indent(textwrap.dedent(loop), "    ") + "train()\n"
    code = "import sys\nfrom mattermost_notify import tqdm\nok, bad = 0, 4\n"
    proc = run(code + textwrap.dedent(loop), tmp_path)
    assert proc.returncode == status, proc.stderr
    (post,) = roots(mattermost_env, replies=1)
    message = post.message  # type: ignore[attr-defined]
    assert headline in message and text in message, message
    if status:
        assert f"{statement}" in message, message  # where it was raised
    (reply,) = [p for p in mattermost_env.view.posts(channel="alerts") if p.root_id]
    assert text in reply.message, reply.message


def test_sys_exit_with_a_computed_status(mattermost_env: Sandbox, tmp_path: Path) -> None:
    """A status Python 3.11 does not show and the statement does not tell (a call) at the
    top of a script: failed, ``SystemExit`` named, the status said to be unknown."""
    proc = run(
        """
        import sys
        from mattermost_notify import tqdm
        for i in tqdm(range(10), desc="job", channel="alerts"):
            if i == 2:
                sys.exit(int("5"))
        """,
        tmp_path,
    )
    assert proc.returncode == 5, proc.stderr
    (post,) = roots(mattermost_env, replies=1)
    message = post.message  # type: ignore[attr-defined]
    assert "❌ **job** failed at 2/10" in message, message
    known = "SystemExit: 5" if sys.version_info >= (3, 12) else "SystemExit (exit status not known)"
    assert known in message, message
    assert 'sys.exit(int("5"))' in message, message


def test_a_debugger_s_trace_function_is_left_alone(mattermost_env: Sandbox, tmp_path: Path) -> None:
    """With a trace function set (a debugger, coverage) the bar does not replace it: a
    failure still says failed, with where; a Ctrl-C still reads interrupted (a SIGINT
    handler chained to the previous one, then put back)."""
    proc = run(
        """
        import signal, sys
        from mattermost_notify import tqdm
        def tracer(frame, event, arg):
            return None
        sys.settrace(tracer)
        try:
            for i in tqdm(range(9), desc="job", channel="alerts"):
                if i == 4:
                    raise ValueError("bad batch")
        except ValueError:
            pass
        try:
            for i in tqdm(range(9), desc="fit", channel="alerts"):
                if i == 2:
                    signal.raise_signal(signal.SIGINT)  # Ctrl-C
        except KeyboardInterrupt:
            print("interrupted")
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert sys.gettrace() is tracer
        print("tracer kept")
        """,
        tmp_path,
    )
    assert "tracer kept" in proc.stdout and "interrupted" in proc.stdout, proc.stderr
    job, fit = sorted(roots(mattermost_env, count=2, replies=1), key=lambda p: "fit" in p.message)
    assert "❌ **job** failed at 4/9" in job.message, job.message
    assert 'raise ValueError("bad batch")' in job.message
    assert "⏹️ **fit** interrupted at 2/9" in fit.message, fit.message
    assert not fit.reply_ids


def test_sigint_handler_is_restored_after_the_bar(mattermost_env: Sandbox, tmp_path: Path) -> None:
    """Under a tracer (where the bar watches SIGINT itself) the user's own SIGINT handler
    is called for each Ctrl-C and is back in place after the bar."""
    proc = run(
        """
        import signal, sys
        from mattermost_notify import tqdm
        sys.settrace(lambda frame, event, arg: None)
        def mine(signum, frame):
            print("my handler ran")
        signal.signal(signal.SIGINT, mine)
        for i in tqdm(range(3), desc="job", channel="alerts"):
            # the bar's, chained (3.11 under a tracer; from 3.12 on the bar needs none)
            assert (signal.getsignal(signal.SIGINT) is not mine) == (sys.version_info < (3, 12))
            signal.raise_signal(signal.SIGINT)  # chained to the user's handler
        assert signal.getsignal(signal.SIGINT) is mine
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("my handler ran") == 3
    (post,) = roots(mattermost_env, replies=1)
    assert "done: 3/3" in post.message  # type: ignore[attr-defined]


def test_no_sigint_handler_of_ours_without_a_tracer(
    mattermost_env: Sandbox, tmp_path: Path
) -> None:
    """Without a tracer the bar leaves SIGINT alone: a Ctrl-C's traceback has no frame
    of ours."""
    proc = start(
        """
        import signal, time
        from mattermost_notify import tqdm
        for i in tqdm(range(100), desc="job", channel="alerts"):
            assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
            if i == 3:
                print("ready", flush=True)
                time.sleep(60)
        """,
        tmp_path,
    )
    _, err = ctrl_c_at_ready(proc)
    assert "KeyboardInterrupt" in err and "progress_bar.py" not in err, err
    (post,) = roots(mattermost_env)
    assert "⏹️ **job** interrupted at 3/100" in post.message, post.message


def test_tqdm_imported_through_a_symbolic_link(mattermost_env: Sandbox, tmp_path: Path) -> None:
    """tqdm found through a linked directory (a linked virtual environment, a dotfiles
    manager's link): the loop's exception is still named, not read as stopped."""
    import tqdm

    linked = tmp_path / "linked-site-packages"
    linked.symlink_to(Path(tqdm.__file__).resolve().parent.parent, target_is_directory=True)
    script = tmp_path / "job.py"
    script.write_text(
        textwrap.dedent(
            """
            import tqdm
            assert "linked-site-packages" in tqdm.__file__, tqdm.__file__
            from mattermost_notify import tqdm
            for i in tqdm(range(5), desc="job", channel="alerts"):
                if i == 3:
                    raise RuntimeError("out of memory")
            """
        ),
        encoding="utf-8",
    )
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "PYTHONPATH": str(linked)},
    )
    assert proc.returncode == 1, proc.stderr
    (post,) = roots(mattermost_env, replies=1)
    assert "❌ **job** failed at 3/5" in post.message  # type: ignore[attr-defined]
