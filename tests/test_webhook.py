"""Webhook mode over real HTTP against the sandbox's incoming webhooks.

* with only a webhook URL configured, the seed's calls and ``mattermost-notify send`` post;
* what a webhook cannot do (edits, files, hook files, threads) is refused before any
  request, with an error that names webhook mode and what to get instead;
* a request is repeated only when it certainly did not reach the server;
* progress bars, ``%%notify_on_done`` and the logging handler degrade to new posts;
* the webhook key appears in no output, log (DEBUG included), exception, warning, repr or
  file other than the 0600 configuration.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mattermost_notify as notify
from mattermost_notify import api
from mattermost_notify.config import load_settings
from mattermost_notify.sandbox import Sandbox

CLI = [sys.executable, "-m", "mattermost_notify.cli"]


def key_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


@pytest.fixture
def hook_env(
    mattermost_server: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Sandbox]:
    """A user whose only setting is the webhook URL (in the environment)."""
    for var in list(os.environ):
        if var.startswith("MATTERMOST_NOTIFY_"):
            monkeypatch.delenv(var)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("MATTERMOST_NOTIFY_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("MATTERMOST_NOTIFY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MATTERMOST_NOTIFY_WEBHOOK_URL", mattermost_server.webhook_url)
    monkeypatch.chdir(tmp_path)
    api._reset()
    yield mattermost_server
    api._reset()


def messages(sb: Sandbox, channel: str = "alerts") -> list[str]:
    return [p.message for p in sb.view.posts(channel=channel)]


def hook_requests(sb: Sandbox) -> int:
    return sum(1 for r in sb.view.requests() if r.path.startswith("/hooks/"))


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ.copy(),
        check=False,
    )


# ------------------------------------------------------------------ what works


def test_the_seed_calls_post_with_only_a_webhook_url(hook_env: Sandbox) -> None:
    sb = hook_env
    client = notify.wakeup()
    assert isinstance(client, notify.WebhookClient)
    notify.notify_channel("Hello World!", "alerts")
    notify.notify_user("Hello Alice!", "alice")
    notify.notify("to the webhook's own channel")
    [post] = sb.view.posts(channel="alerts")
    assert post.message == "Hello World!"
    assert post.props.get("from_webhook") == "true"
    assert [p.message for p in sb.view.posts(dm_with="alice")] == ["Hello Alice!"]
    assert messages(sb, "town-square") == ["to the webhook's own channel"]


def test_the_cli_sends_with_only_a_webhook_url(hook_env: Sandbox) -> None:
    sb = hook_env
    proc = cli("send", "x", "--channel", "alerts")
    assert proc.returncode == 0, proc.stderr
    assert messages(sb) == ["x"]
    proc = cli("send", "-", "--user", "bob", stdin="from standard input\n")
    assert proc.returncode == 0, proc.stderr
    assert [p.message for p in sb.view.posts(dm_with="bob")] == ["from standard input"]
    key = key_of(sb.webhook_url)
    assert key not in proc.stdout + proc.stderr


def test_run_without_a_target_posts_to_the_webhooks_own_channel(hook_env: Sandbox) -> None:
    """As ``send``: with no --user/--channel and no default, the webhook's channel."""
    proc = cli("run", "--", sys.executable, "-c", "print('trained')")
    assert proc.returncode == 0, proc.stderr
    [message] = messages(hook_env, "town-square")
    assert "**Done**" in message and "trained" in message


def test_wakeup_and_config_keys_select_webhook_mode(
    hook_env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = hook_env
    monkeypatch.delenv("MATTERMOST_NOTIFY_WEBHOOK_URL")
    client = notify.wakeup(webhook_url=sb.webhook_url, always_send_to_channel="alerts")
    notify.notify("by wakeup(webhook_url=...)")
    assert messages(sb) == ["by wakeup(webhook_url=...)"]
    assert client.default_channel == "alerts"
    conf = tmp_path / "hook.toml"
    conf.write_text(f'webhook_url = "{sb.webhook_url}"\ndefault_user = "bob"\n')
    conf.chmod(0o600)
    monkeypatch.setenv("MATTERMOST_NOTIFY_CONFIG", str(conf))
    notify.wakeup()
    notify.notify("by the config file")
    assert [p.message for p in sb.view.posts(dm_with="bob")] == ["by the config file"]


def test_a_token_and_a_webhook_url_the_higher_source_wins(
    hook_env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = hook_env
    conf = tmp_path / "bot.toml"
    conf.write_text(f'url = "{sb.url}"\ntoken = "{sb.token}"\nteam_name = "{sb.team}"\n')
    conf.chmod(0o600)
    monkeypatch.setenv("MATTERMOST_NOTIFY_CONFIG", str(conf))
    # the environment's webhook URL ranks above the file's token
    assert load_settings().webhook_url == sb.webhook_url
    # an argument ranks above both
    assert load_settings(token=sb.token).webhook_url is None
    assert isinstance(notify.wakeup(token=sb.token), notify.Notify)
    both = tmp_path / "both.toml"
    both.write_text(f'url = "{sb.url}"\ntoken = "{sb.token}"\nwebhook_url = "{sb.webhook_url}"\n')
    both.chmod(0o600)
    with pytest.raises(notify.ConfigurationError, match="both a token and a webhook_url") as err:
        load_settings(configfile=both)
    assert key_of(sb.webhook_url) not in str(err.value) and sb.token not in str(err.value)


def test_a_malformed_webhook_url_is_named_without_its_key() -> None:
    for bad in (
        "https://chat.example.org/hooks/",
        "https://chat.example.org/api/v4/hooks/abc123secret",
        "ftp://chat.example.org/hooks/abc123secret",
        "https://chat.example.org/hooks/abc123secret?x=1",
        "https://user:pw@chat.example.org/hooks/abc123secret",
        "https://chat.example.org/hooks/abc-123secret",
    ):
        with pytest.raises(notify.ConfigurationError, match="webhook URL from") as err:
            load_settings(webhook_url=bad)
        assert "abc123secret" not in str(err.value) and "123secret" not in str(err.value)
    with pytest.raises(notify.ConfigurationError, match="plain http"):
        notify.WebhookClient("http://chat.example.org/hooks/abc123secret")


@pytest.mark.parametrize(
    ("setting", "value"),
    [("timeout", 0), ("verify", "/no/such/ca.pem"), ("allow_insecure", "maybe"), ("mention", "A!")],
)
def test_a_bad_setting_of_a_webhook_client_is_named_at_construction(
    setting: str, value: Any
) -> None:
    # checked as Notify checks its own, before anything is sent (not at the first request)
    url = "https://chat.example.org/hooks/abc123secret"
    with pytest.raises(notify.ConfigurationError, match=rf"WebhookClient\({setting}=") as err:
        notify.WebhookClient(url, **{setting: value})
    assert "abc123secret" not in str(err.value)


# ------------------------------------------------------------------ what is refused


def test_send_update_fails_before_sending_and_names_webhook_mode(hook_env: Sandbox) -> None:
    sb = hook_env
    notify.notify("Training: epoch 1/3", channel_name="alerts", id="training")
    before = len(sb.view.requests())
    with pytest.raises(notify.WebhookModeError, match="not possible in webhook mode") as err:
        notify.send_update("Training: done", id="training")
    assert "bot account's token" in str(err.value)
    with pytest.raises(notify.WebhookModeError, match="webhook mode"):
        notify.notify("Training: epoch 2/3", id="training")  # a known id means an edit
    with pytest.raises(notify.WebhookModeError, match="webhook mode"):
        notify.send_update("x", id="training", block=False)
    (Path.cwd() / "plot.png").write_bytes(b"png")
    with pytest.raises(notify.WebhookModeError, match="cannot upload"):
        notify.notify_channel("with a file", "alerts", files=["plot.png"])
    with pytest.raises(notify.WebhookModeError, match="cannot upload"):
        notify.notify_channel("with a file", "alerts", files=["plot.png"], block=False)
    with pytest.raises(notify.WebhookModeError, match="webhook mode"):
        notify.export_hook("training", "training.msg")
    with pytest.raises(notify.WebhookModeError, match="webhook mode"):
        api.get_client().send("in a thread", channel="alerts", root_id="p" * 26)
    assert len(sb.view.requests()) == before
    assert not Path("training.msg").exists()
    assert messages(sb) == ["Training: epoch 1/3"]


def test_the_cli_update_is_refused_with_webhook_mode_named(hook_env: Sandbox) -> None:
    (Path.cwd() / "x.msg").write_text("{}")
    proc = cli("update", "done", "--hook", "x.msg")
    assert proc.returncode != 0
    assert "webhook mode" in proc.stderr
    proc = cli("send", "x", "--channel", "alerts", "--files", "x.msg")
    assert proc.returncode == 2, proc.stderr
    assert "webhook mode" in proc.stderr
    assert hook_requests(hook_env) == 0


def test_targets_the_server_refuses_are_explained(mattermost_server: Sandbox) -> None:
    sb = mattermost_server
    locked = f"{sb.url}/hooks/{sb.create_webhook('alerts', locked=True)}"
    with notify.WebhookClient(locked) as client:
        client.send("to its own channel")
        with pytest.raises(notify.PermissionDeniedError, match="locked to its own channel"):
            client.send("elsewhere", channel="town-square")
    with notify.WebhookClient(sb.webhook_url) as client:
        with pytest.raises(notify.NotFoundError, match="no such channel"):
            client.send("x", channel="no-such-channel")
        with pytest.raises(notify.PermissionDeniedError):
            client.send("x", channel="secret")
        with pytest.raises(notify.APIError, match="no such user") as err:
            client.send("x", user="nobody")
        assert err.value.status_code == 400
    assert messages(sb) == ["to its own channel"]


# ------------------------------------------------------------------ retries


def test_a_refused_connection_is_retried_and_posts_once(mattermost_server: Sandbox) -> None:
    sb = mattermost_server
    sb.stop()
    timer = threading.Timer(0.6, sb.start)
    timer.start()
    try:
        with notify.WebhookClient(sb.webhook_url) as client:
            client.send("after the restart", channel="alerts")
    finally:
        timer.join()
    assert messages(sb) == ["after the restart"]


def test_an_unreachable_proxy_is_retried_and_says_nothing_was_posted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the proxy refuses the connection: the request never left this machine, so repeating
    # it cannot post twice, and the error must not say "may have been posted"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for var in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
    failing = pytest.raises(notify.NetworkError, match="connection failed")
    with (
        notify.WebhookClient("https://chat.example.invalid/hooks/abc123") as client,
        failing as failed,
    ):
        client.send("through a proxy that is down")
    assert "after 4 attempt(s)" in str(failed.value)
    assert "nothing was posted" in str(failed.value)
    assert not isinstance(failed.value, notify.DeliveryUnknownError)


@pytest.mark.parametrize("fault", ["drop_after", "drop_before", "503", "read_timeout"])
def test_a_request_that_may_have_arrived_is_not_repeated(
    mattermost_server: Sandbox, fault: str
) -> None:
    sb = mattermost_server
    timeout: tuple[float, float] = (5.0, 30.0)
    if fault == "drop_after":
        sb.faults.drop_after(1)
    elif fault == "drop_before":
        sb.faults.drop_before(1)
    elif fault == "503":
        sb.faults.fail_next(1, status=503)
    else:
        sb.faults.delay(1.5)
        timeout = (5.0, 0.5)
    uncertain = pytest.raises(notify.DeliveryUnknownError, match="may or may not have been posted")
    with notify.WebhookClient(sb.webhook_url, timeout=timeout) as client, uncertain:
        client.send("once at most", channel="alerts")
    sb.faults.clear()
    time.sleep(1.2 if fault == "read_timeout" else 0)
    assert hook_requests(sb) == 1
    expected = ["once at most"] if fault in ("drop_after", "read_timeout") else []
    assert messages(sb) == expected


def test_a_429_is_retried(mattermost_server: Sandbox) -> None:
    sb = mattermost_server
    sb.faults.fail_next(1, status=429)
    with notify.WebhookClient(sb.webhook_url) as client:
        client.send("after a 429", channel="alerts")
    assert hook_requests(sb) == 2
    assert messages(sb) == ["after a 429"]


def test_the_background_sender_does_not_repeat_an_uncertain_post(
    mattermost_server: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MATTERMOST_NOTIFY_DATA_DIR", str(tmp_path))
    sb = mattermost_server
    sb.faults.drop_after(1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with notify.WebhookClient(sb.webhook_url) as client:
            ticket = client.sender.post("exactly once", channel="alerts")
            client.sender.post("the next one", channel="alerts")
            assert client.sender.flush(20)
    assert isinstance(ticket.exception(), notify.DeliveryUnknownError)
    assert messages(sb) == ["exactly once", "the next one"]
    texts = [str(w.message) for w in caught]
    assert any("may or may not have been posted" in t for t in texts)
    assert all(key_of(sb.webhook_url) not in t for t in texts)


def test_the_background_sender_waits_out_an_outage(
    mattermost_server: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MATTERMOST_NOTIFY_DATA_DIR", str(tmp_path))
    sb = mattermost_server
    sb.stop()
    with notify.WebhookClient(sb.webhook_url) as client:
        tickets = [client.sender.post(f"queued {i}", channel="alerts") for i in range(3)]
        time.sleep(1.0)
        outbox = [p.read_text() for p in (tmp_path / "outbox").rglob("*.json")]
        assert len(outbox) == 3
        assert all(key_of(sb.webhook_url) not in text for text in outbox)
        sb.start()
        assert client.sender.flush(60)
    assert [t.exception() for t in tickets] == [None, None, None]
    assert messages(sb) == ["queued 0", "queued 1", "queued 2"]


# ------------------------------------------------------------------ degraded features


def test_a_progress_bar_posts_start_and_final_state(hook_env: Sandbox) -> None:
    sb = hook_env
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with open(os.devnull, "w") as null:
            for _ in notify.tqdm(range(50), desc="training", channel="alerts", file=null):
                time.sleep(0.002)
        assert notify.flush(30)
    posted = messages(sb)
    assert len(posted) == 2, posted
    assert "training" in posted[0]
    assert "done" in posted[1] and "50/50" in posted[1]
    assert [str(w.message) for w in caught if "mattermost" in str(w.message)] == []


def test_the_logging_handler_posts_through_a_webhook(mattermost_server: Sandbox) -> None:
    sb = mattermost_server
    handler = notify.MattermostHandler(channel="alerts", webhook_url=sb.webhook_url, interval=0)
    log = logging.getLogger("webhook-job")
    log.addHandler(handler)
    try:
        log.error("through the webhook")
        handler.flush()
    finally:
        log.removeHandler(handler)
        handler.close()
    assert messages(sb) == ["ERROR webhook-job: through the webhook"]


# ------------------------------------------------------------------ the key is a secret


def test_test_checks_the_webhook_without_posting(
    hook_env: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = hook_env
    proc = cli("test")
    assert proc.returncode == 0, proc.stderr
    assert "webhook" in proc.stdout and "exists (checked without posting)" in proc.stdout
    monkeypatch.setenv("MATTERMOST_NOTIFY_WEBHOOK_URL", f"{sb.url}/hooks/{'x' * 26}")
    proc = cli("test")
    assert proc.returncode == 1
    assert "does not know this webhook" in proc.stderr
    assert sb.view.posts() == [p for p in sb.view.posts() if p.channel_name != "town-square"]
    assert messages(sb, "town-square") == []
    assert "x" * 26 not in proc.stdout + proc.stderr


def test_setup_writes_the_webhook_url_to_a_private_file(
    hook_env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = hook_env
    monkeypatch.delenv("MATTERMOST_NOTIFY_WEBHOOK_URL")
    proc = cli("setup", "--webhook-url", "-", stdin=sb.webhook_url + "\n")
    assert proc.returncode == 0, proc.stderr
    written = tmp_path / "config" / "config.toml"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert f'webhook_url = "{sb.webhook_url}"' in written.read_text()
    assert "token" not in written.read_text()
    key = key_of(sb.webhook_url)
    assert key not in proc.stdout + proc.stderr
    assert cli("send", "after setup").returncode == 0
    assert messages(sb, "town-square") == ["after setup"]


def test_setup_switching_to_a_bot_token_drops_the_webhook_url(
    hook_env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One setup for both modes: replacing a webhook configuration with a bot token leaves
    no webhook URL in the file, and the CLI then posts as the bot."""
    sb = hook_env
    monkeypatch.delenv("MATTERMOST_NOTIFY_WEBHOOK_URL")
    assert cli("setup", "--webhook-url", sb.webhook_url, "--no-check").returncode == 0
    written = tmp_path / "config" / "config.toml"
    proc = cli("setup", "-u", sb.url, "-n", sb.team, "-t", "-", stdin=sb.token + "\n")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "webhook_url" not in written.read_text()
    assert "webhook mode" not in proc.stdout
    assert cli("send", "by the bot", "-c", "alerts").returncode == 0
    [post] = sb.view.posts(channel="alerts")
    assert post.message == "by the bot" and "from_webhook" not in post.props


def test_the_key_is_in_no_log_exception_or_repr(
    hook_env: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    sb = hook_env
    key = key_of(sb.webhook_url)
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    client = notify.wakeup()
    texts += [repr(client), str(client), repr(load_settings()), str(client.sender)]
    notify.notify_channel("logged", "alerts")
    for call in (
        lambda: notify.notify_channel("x", "no-such-channel"),
        lambda: notify.send_update("x", id="nope"),
        lambda: client.send("x", user="nobody"),
    ):
        with pytest.raises(notify.MattermostNotifyError) as err:
            call()
        texts += [str(err.value), repr(err.value)]
    sb.faults.drop_after(1)
    with pytest.raises(notify.DeliveryUnknownError) as uncertain:
        client.send("dropped", channel="alerts")
    texts += [str(uncertain.value), repr(uncertain.value)]
    sb.stop()
    with pytest.raises(notify.NetworkError) as down:
        client.send("down", channel="alerts")
    texts.append(str(down.value))
    sb.start()
    log_text = caplog.text
    assert "POST /hooks/*** 200" in log_text
    assert '"POST /hooks/*** HTTP/1.1" 200' in log_text  # urllib3's own DEBUG line
    for text in [*texts, log_text]:
        assert key not in text
    assert all(key not in str(vars(r)) for r in caplog.records)


def check_no_key(sb: Sandbox, *texts: Any) -> None:
    key = key_of(sb.webhook_url)
    for text in texts:
        assert key not in str(text)


def test_notify_on_done_posts_start_and_final_state(
    hook_env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("IPython")
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.delenv("MATTERMOST_NOTIFY_NOTEBOOK", raising=False)
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    InteractiveShell.clear_instance()
    ip = InteractiveShell.instance(config=config)
    try:
        ip.run_line_magic("load_ext", "mattermost_notify")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = ip.run_cell("%%notify_on_done -c alerts\nimport time\ntime.sleep(0.3)\n40 + 2")
            assert result.success
            assert notify.flush(30)
    finally:
        ip.run_line_magic("unload_ext", "mattermost_notify")
        InteractiveShell.clear_instance()
    posted = messages(hook_env)
    assert len(posted) == 2, posted
    assert "running" in posted[0].lower()
    assert "42" in posted[1]
    ours = [
        str(w.message) for w in caught if issubclass(w.category, notify.MattermostNotifyWarning)
    ]
    assert ours == []
    assert sum(1 for r in hook_env.view.requests() if r.method == "PUT") == 0


def test_a_readable_file_holding_a_webhook_url_is_warned_about(
    hook_env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = hook_env
    monkeypatch.delenv("MATTERMOST_NOTIFY_WEBHOOK_URL")
    conf = tmp_path / "shared.toml"
    conf.write_text(f'webhook_url = "{sb.webhook_url}"\n')
    conf.chmod(0o644)
    with pytest.warns(notify.errors.InsecureConfigWarning, match="chmod 600") as caught:
        settings = load_settings(configfile=conf)
    assert settings.webhook_url == sb.webhook_url
    assert "webhook_url='***'" in repr(settings)
    assert all(key_of(sb.webhook_url) not in str(w.message) for w in caught)


def test_run_reports_a_command_through_the_webhook(hook_env: Sandbox) -> None:
    proc = cli("run", "--channel", "alerts", "--", sys.executable, "-c", "print('hi')")
    assert proc.returncode == 0, proc.stderr
    [message] = messages(hook_env)
    assert "ok" in message.lower() or "done" in message.lower() or "finished" in message.lower()
    assert key_of(hook_env.webhook_url) not in proc.stdout + proc.stderr


def test_a_channel_send_without_a_name_goes_to_the_webhooks_channel_not_the_default_user(
    hook_env: Sandbox,
) -> None:
    """With only a default user set, ``send_to_channel()``/``notify_channel()`` without a
    channel name still post to a channel: the webhook's own (they once went to the default
    user). ``send``/``notify`` without a target follow the default user; ``send_to_user``
    without a name and without a default user is an error naming the missing user."""
    sb = hook_env
    client = notify.wakeup(always_send_to_user="bob")
    client.send_to_channel("send_to_channel()")
    notify.notify_channel("notify_channel()")
    notify.notify_channel("notify_channel(block=False)", block=False)
    client.send("send()")
    notify.notify("notify()")
    client.send_to_user("send_to_user()")
    assert notify.flush(30)
    assert messages(sb, "town-square") == [
        "send_to_channel()",
        "notify_channel()",
        "notify_channel(block=False)",
    ]
    assert [p.message for p in sb.view.posts(dm_with="bob")] == [
        "send()",
        "notify()",
        "send_to_user()",
    ]
    channel_only = notify.wakeup(always_send_to_channel="alerts")
    with pytest.raises(notify.MessageError, match="no user name given and no default user"):
        channel_only.send_to_user("to nobody")
    with pytest.raises(notify.MessageError, match="no user name given and no default user"):
        notify.notify_user("to nobody", block=False)
    assert hook_requests(sb) == 6
