"""MattermostHandler over real HTTP against the sandbox: threshold, targets, formatters,
tracebacks in code blocks, coalescing of bursts (every record counted), no recursion from
the library's own logging, dictConfig, and delivery at interpreter exit (a real process)."""

from __future__ import annotations

import logging
import logging.config
import os
import re
import subprocess
import sys
import textwrap
import time
import uuid
import warnings
from collections.abc import Iterator

import pytest

import mattermost_notify as notify
from mattermost_notify.sandbox import Sandbox

MORE = re.compile(r"… and (\d+) more records? \(")


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger(f"job.{uuid.uuid4().hex[:8]}")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()


def _messages(sb: Sandbox, channel: str = "alerts") -> list[str]:
    return [p.message for p in sb.view.posts(channel=channel)]


def _records_in(message: str) -> int:
    """How many records one post accounts for: the first, plus "and N more"."""
    found = MORE.search(message)
    return 1 + (int(found.group(1)) if found else 0)


def test_warning_and_above_go_to_the_channel_by_default(
    mattermost_env: Sandbox, logger: logging.Logger
) -> None:
    handler = notify.MattermostHandler(channel="alerts", interval=0)
    assert handler.level == logging.WARNING
    logger.addHandler(handler)
    logger.info("just info")
    logger.warning("disk at %d%%", 91)
    handler.flush()
    assert _messages(mattermost_env) == [f"WARNING {logger.name}: disk at 91%"]


def test_a_user_target_gets_a_direct_message(
    mattermost_env: Sandbox, logger: logging.Logger
) -> None:
    handler = notify.MattermostHandler(logging.ERROR, user="alice", interval=0)
    logger.addHandler(handler)
    logger.warning("below the threshold")
    logger.error("run 7 diverged")
    handler.flush()
    [post] = mattermost_env.view.posts(dm_with="alice")
    assert post.message == f"ERROR {logger.name}: run 7 diverged"


def test_the_formatter_is_used(mattermost_env: Sandbox, logger: logging.Logger) -> None:
    handler = notify.MattermostHandler(channel="alerts", interval=0)
    handler.setFormatter(logging.Formatter("[%(levelname)s|%(funcName)s] %(message)s"))
    logger.addHandler(handler)
    logger.error("formatted")
    handler.flush()
    assert _messages(mattermost_env) == ["[ERROR|test_the_formatter_is_used] formatted"]


def test_a_traceback_goes_into_a_code_block(
    mattermost_env: Sandbox, logger: logging.Logger
) -> None:
    handler = notify.MattermostHandler(channel="alerts", interval=0)
    logger.addHandler(handler)
    try:
        _ = {"a": 1}["b"]
    except KeyError:
        logger.exception("lookup failed ``` with backticks")
    handler.flush()
    [message] = _messages(mattermost_env)
    head, _, rest = message.partition("\n")
    assert head == f"ERROR {logger.name}: lookup failed ``` with backticks"
    assert rest.startswith("```\nTraceback (most recent call last):\n")
    assert rest.rstrip().endswith("KeyError: 'b'\n```")


def test_a_huge_traceback_is_cut_but_keeps_its_end(
    mattermost_env: Sandbox, logger: logging.Logger
) -> None:
    handler = notify.MattermostHandler(channel="alerts", interval=0, max_chars=1000)
    logger.addHandler(handler)

    details = "\n".join(f"detail line {i}" for i in range(500))
    try:
        raise RuntimeError(f"{details}\nbottom reached")
    except RuntimeError:
        logger.exception("deep")
    handler.flush()
    [message] = _messages(mattermost_env)
    assert len(message) < 1400
    assert "characters cut)" in message
    assert message.endswith("detail line 499\nbottom reached\n```")


def test_a_burst_of_1000_records_gives_at_most_3_posts_that_count_them_all(
    mattermost_env: Sandbox, logger: logging.Logger
) -> None:
    handler = notify.MattermostHandler(channel="alerts", interval=1.0)
    logger.addHandler(handler)
    start = time.monotonic()
    for i in range(1000):
        logger.error("step %d failed", i)
        if i % 100 == 99:
            time.sleep(0.15)  # spread over about 1.5 s, as a real burst would be
    handler.flush()
    lasted = time.monotonic() - start
    messages = _messages(mattermost_env)
    # at most one post per interval: the first record at once, then at most one a second
    # while the burst lasts, and flush() sends what is left (2 or 3 posts when the burst
    # lasts under 2 s; a busy machine stretches it, never the rule)
    assert 2 <= len(messages) <= 2 + int(lasted / 1.0), (lasted, messages)
    assert sum(_records_in(m) for m in messages) == 1000
    assert messages[0].startswith(f"ERROR {logger.name}: step 0 failed")
    assert messages[-1].endswith(f"ERROR {logger.name}: step 999 failed")
    assert handler.records == 1000
    handler.close()  # its thread is done: nothing else trickles in later
    assert len(_messages(mattermost_env)) == len(messages)


def test_records_after_a_quiet_spell_go_out_at_once(
    mattermost_env: Sandbox, logger: logging.Logger
) -> None:
    handler = notify.MattermostHandler(channel="alerts", interval=0.3)
    logger.addHandler(handler)
    logger.error("one")
    deadline = time.monotonic() + 10
    while not _messages(mattermost_env) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _messages(mattermost_env) == [f"ERROR {logger.name}: one"]
    logger.error("two")
    logger.warning("three")
    handler.flush()
    second = _messages(mattermost_env)[1]
    assert second.startswith(f"ERROR {logger.name}: two\n\n… and 1 more record (WARNING 1)")
    assert second.endswith(f"WARNING {logger.name}: three")


def test_the_librarys_own_logging_never_comes_back(
    mattermost_env: Sandbox, logger: logging.Logger
) -> None:
    """On the root logger at DEBUG, the transport's DEBUG lines, urllib3's lines from the
    sender thread, and a failed send's warning (captured into logging) are not posted."""
    root = logging.getLogger()
    old_level = root.level
    handler = notify.MattermostHandler(logging.DEBUG, channel="secret", interval=0.2)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    logging.captureWarnings(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            logger.propagate = True
            logger.error("the only record")  # the bot is not in 'secret': 403, warned
            handler.flush()
            time.sleep(1.0)  # several intervals: a loop would have posted again by now
            handler.flush()
    finally:
        logging.captureWarnings(False)
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()
    lookups = [r for r in mattermost_env.view.requests() if r.path.endswith("/name/secret")]
    assert len(lookups) == 1
    assert handler.records == 1


def test_emit_never_raises_and_a_broken_setup_is_warned_once(
    mattermost_env: Sandbox, logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MATTERMOST_NOTIFY_TOKEN")
    handler = notify.MattermostHandler(channel="alerts", interval=0)
    logger.addHandler(handler)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(5):
            logger.error("record %d", i)
            handler.flush()
    ours = notify.MattermostNotifyWarning
    texts = [str(w.message) for w in caught if issubclass(w.category, ours)]
    assert len(texts) == 1
    assert "no access token" in texts[0]
    assert mattermost_env.token not in texts[0]


def test_bad_arguments_fail_at_construction() -> None:
    with pytest.raises(notify.ConfigurationError, match="not both"):
        notify.MattermostHandler(user="alice", channel="alerts")
    with pytest.raises(notify.ConfigurationError, match="interval"):
        notify.MattermostHandler(channel="alerts", interval=-1)
    with pytest.raises(notify.ConfigurationError, match="channel must be a non-empty name"):
        notify.MattermostHandler(channel="  ")


def test_dictconfig_builds_it(mattermost_env: Sandbox) -> None:
    name = f"svc.{uuid.uuid4().hex[:8]}"
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"short": {"format": "%(levelname)s: %(message)s"}},
            "handlers": {
                "mattermost": {
                    "class": "mattermost_notify.MattermostHandler",
                    "level": "ERROR",
                    "formatter": "short",
                    "channel": "alerts",
                    "interval": 30,
                },
            },
            "loggers": {name: {"handlers": ["mattermost"], "level": "INFO", "propagate": False}},
        }
    )
    log = logging.getLogger(name)
    [handler] = log.handlers
    try:
        assert isinstance(handler, notify.MattermostHandler)
        assert (handler.level, handler.interval) == (logging.ERROR, 30.0)
        log.warning("not this")
        log.error("nightly import failed")
        handler.flush()
        assert _messages(mattermost_env) == ["ERROR: nightly import failed"]
    finally:
        log.removeHandler(handler)
        handler.close()


def test_dictconfig_with_its_own_server_settings(
    mattermost_server: Sandbox, tmp_path: os.PathLike[str]
) -> None:
    name = f"svc.{uuid.uuid4().hex[:8]}"
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {
            "mattermost": {
                "class": "mattermost_notify.MattermostHandler",
                "user": "bob",
                "url": mattermost_server.url,
                "token": mattermost_server.token,
                "team_name": mattermost_server.team,
            },
        },
        "loggers": {name: {"handlers": ["mattermost"], "propagate": False}},
    }
    logging.config.dictConfig(config)
    log = logging.getLogger(name)
    [handler] = log.handlers
    try:
        log.critical("own settings")
        handler.flush()
        [post] = mattermost_server.view.posts(dm_with="bob")
        assert post.message == f"CRITICAL {name}: own settings"
    finally:
        log.removeHandler(handler)
        handler.close()
    config["handlers"]["mattermost"]["timeout"] = "soon"
    with pytest.raises(ValueError, match="Unable to configure handler 'mattermost'") as failed:
        logging.config.dictConfig(config)
    assert isinstance(failed.value.__cause__, notify.ConfigurationError)
    assert "timeout from the arguments must be" in str(failed.value.__cause__)


AT_EXIT = """
    import logging, time
    import mattermost_notify as notify

    log = logging.getLogger("nightly")
    log.addHandler(notify.MattermostHandler(channel="alerts", interval=3600))
    log.error("first")
    time.sleep(1.0)  # posted at once; what follows waits for the interval (an hour)
    for i in range(40):
        log.error("later %d", i)
    print("logged", flush=True)
    # no flush, no shutdown call: the interpreter exits
"""


def test_records_waiting_at_exit_are_posted_by_the_exiting_process(
    mattermost_env: Sandbox,
) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(AT_EXIT)],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ.copy(),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    messages = _messages(mattermost_env)
    assert messages[0] == "ERROR nightly: first"
    assert len(messages) == 2
    assert messages[1].startswith("ERROR nightly: later 0\n\n… and 39 more records (ERROR 39)")
    assert messages[1].endswith("ERROR nightly: later 39")
    assert sum(_records_in(m) for m in messages) == 41
