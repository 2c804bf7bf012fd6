"""The ``mattermost-notify`` command, over real HTTP against the sandbox.

Most cases run ``main([...])`` in this process; the original package's documented
flows and the long-running subcommands also run through the installed console
script in a subprocess. Every call checks that the token is not in the output
and that no traceback is printed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from mattermost_notify import __version__
from mattermost_notify.cli import main

SCRIPT = shutil.which("mattermost-notify", path=str(Path(sys.executable).parent)) or shutil.which(
    "mattermost-notify"
)


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def _check_clean(result: Result, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in result.out, "the token was printed on stdout"
        assert secret not in result.err, "the token was printed on stderr"
    assert "Traceback" not in result.err, result.err


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    """An isolated user: own HOME, config and data dirs, cwd; no MATTERMOST_NOTIFY_* vars."""
    for name in list(os.environ):
        if name.startswith("MATTERMOST_NOTIFY_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("MATTERMOST_NOTIFY_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("MATTERMOST_NOTIFY_DATA_DIR", str(tmp_path / "data"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def run(capsys, mattermost_server, cli_env):
    """run(*args) -> Result, through ``main`` in this process."""

    def _run(*args: str, secrets: tuple[str, ...] = ()) -> Result:
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse: --help, --version, usage errors
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        result = Result(code, captured.out, captured.err)
        _check_clean(result, [mattermost_server.token, *secrets])
        return result

    return _run


def _script_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _default_sigint() -> None:
    # a shell without job control starts background jobs with SIGINT ignored, and a
    # child inherits that; Python only installs its KeyboardInterrupt handler when
    # SIGINT is at its default, so restore it in the child
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_until_ctrl_c(args: list[str]) -> subprocess.Popen[str]:
    """Start the console script in its own session, as a terminal would for Ctrl-C."""
    return subprocess.Popen(
        [SCRIPT, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_script_env(),
        start_new_session=True,
        preexec_fn=_default_sigint,
    )


@pytest.fixture
def script(mattermost_server, cli_env):
    """script(*args, input=None) -> Result, through the installed console script."""
    assert SCRIPT, "the mattermost-notify console script is not installed next to python"

    def _script(*args: str, input: str | None = None, secrets: tuple[str, ...] = ()) -> Result:
        proc = subprocess.run(
            [SCRIPT, *args],
            input=input,
            capture_output=True,
            text=True,
            env=_script_env(),
            timeout=120,
            start_new_session=True,  # no controlling terminal: getpass reads stdin
        )
        result = Result(proc.returncode, proc.stdout, proc.stderr)
        _check_clean(result, [mattermost_server.token, *secrets])
        return result

    return _script


@pytest.fixture
def configfile(run, mattermost_server, cli_env) -> Path:
    """A configuration file written by ``setup`` with flags (no check)."""
    path = cli_env / "mm.toml"
    sb = mattermost_server
    r = run(
        "setup", "-u", sb.url, "-n", sb.team, "-t", sb.token, "-o", str(path), "--no-check"
    )  # fmt: skip
    assert r.code == 0, r.text
    return path


def _messages(posts) -> list[str]:
    return [p.message for p in posts]


def _one_line_error(result: Result) -> str:
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got: {result.err!r}"
    assert lines[0].startswith("mattermost-notify"), lines[0]
    return lines[0]


# ---------------------------------------------------------------- basics


def test_version_in_process_and_console_script(run, script):
    r = run("--version")
    assert r.code == 0
    assert r.out.strip() == f"mattermost-notify {__version__}"
    r = script("--version")
    assert r.code == 0
    assert r.out.strip() == f"mattermost-notify {__version__}"


def test_no_command_prints_help_and_exits_2(run):
    r = run()
    assert r.code == 2
    for command in ("setup", "test", "send", "update", "sandbox", "demo", "outbox", "jupyter"):
        assert command in r.out


def test_usage_error_is_one_line(run):
    r = run("send", "hello", "--channel", "alerts", "--user", "alice")
    assert r.code == 2
    line = _one_line_error(r)
    assert "not allowed with" in line


# ---------------------------------------------------------------- setup


def test_setup_with_flags_writes_0600_file_and_checks(run, mattermost_server, cli_env):
    sb = mattermost_server
    out = cli_env / "conf.toml"
    r = run("setup", "--url", sb.url, "--team-name", sb.team, "--token", sb.token, "-o", str(out))
    assert r.code == 0, r.text
    assert str(out) in r.out
    assert "Connection successful!" in r.out
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    from mattermost_notify.config import load_settings

    settings = load_settings(configfile=out)
    assert (settings.url, settings.token, settings.team_name) == (
        sb.url.rstrip("/"),
        sb.token,
        sb.team,
    )


def test_setup_default_location_then_test_finds_it(run, mattermost_server, cli_env, tmp_path):
    sb = mattermost_server
    r = run("setup", "-u", sb.url, "-n", sb.team, "-t", sb.token)
    assert r.code == 0, r.text
    expected = tmp_path / "config" / "config.toml"
    assert expected.is_file()
    assert str(expected) in r.out
    r = run("test")
    assert r.code == 0, r.text
    assert "Connection successful!" in r.out


def test_setup_output_directory_like_the_original(run, mattermost_server, cli_env):
    """``-o DIR`` writes DIR/.mattermost_notify; ``--configfile DIR`` finds it."""
    sb = mattermost_server
    target = cli_env / "somewhere"
    target.mkdir()
    r = run("setup", "-u", sb.url, "-n", sb.team, "-t", sb.token, "-o", str(target), "--no-check")
    assert r.code == 0, r.text
    assert (target / ".mattermost_notify").is_file()
    r = run("test", "--configfile", str(target))
    assert r.code == 0, r.text


def test_setup_in_cwd_is_found_by_the_search_order(run, mattermost_server, cli_env):
    sb = mattermost_server
    r = run("setup", "-u", sb.url, "-n", sb.team, "-t", sb.token, "-o", "$PWD", "--no-check")
    assert r.code == 0, r.text
    assert (cli_env / ".mattermost_notify").is_file()
    r = run("send", "found by the search order", "--channel", "alerts")
    assert r.code == 0, r.text
    assert "found by the search order" in _messages(sb.view.posts(channel="alerts"))


def test_setup_interactive_reads_token_without_echo(script, mattermost_server, cli_env):
    sb = mattermost_server
    out = cli_env / "interactive.toml"
    r = script("setup", "-i", "-o", str(out), input=f"{sb.url}\n{sb.team}\n{sb.token}\n")
    assert r.code == 0, r.text
    assert "URL of the Mattermost server" in r.out
    assert "Connection successful!" in r.out
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert sb.token in out.read_text()


def test_setup_token_from_stdin(script, mattermost_server, cli_env):
    sb = mattermost_server
    out = cli_env / "stdin.toml"
    r = script("setup", "-u", sb.url, "-n", sb.team, "-t", "-", "-o", str(out), input=sb.token)
    assert r.code == 0, r.text
    assert sb.token in out.read_text()


def test_setup_missing_token_is_a_usage_error(run, mattermost_server):
    r = run("setup", "--url", mattermost_server.url, "--team-name", "sandbox")
    assert r.code == 2
    assert "--token" in _one_line_error(r)


def test_setup_bad_url_is_a_usage_error(run):
    r = run("setup", "--url", "ftp://chat.example.org", "-n", "t", "-t", "abc", "--no-check")
    assert r.code == 2
    assert "ftp://chat.example.org" in _one_line_error(r)


def test_setup_output_in_missing_directory(run, mattermost_server, cli_env):
    sb = mattermost_server
    missing = cli_env / "no" / "such" / "dir" / "conf.toml"
    r = run("setup", "-u", sb.url, "-n", sb.team, "-t", sb.token, "-o", str(missing))
    assert r.code == 2
    assert "does not exist" in _one_line_error(r)
    assert not missing.exists()


def test_setup_wrong_token_fails_the_check_and_writes_nothing(run, mattermost_server, cli_env):
    wrong = "x" * 26
    out = cli_env / "wrong.toml"
    r = run(
        "setup", "-u", mattermost_server.url, "-n", "sandbox", "-t", wrong, "-o", str(out),
        secrets=(wrong,),
    )  # fmt: skip
    assert r.code == 1
    assert "token check failed" in _one_line_error(r)
    assert "Nothing written" in r.out and "--force" in r.out
    assert not out.exists()
    r = run(
        "setup", "-u", mattermost_server.url, "-n", "sandbox", "-t", wrong, "-o", str(out),
        "--force", secrets=(wrong,),
    )  # fmt: skip
    assert r.code == 1
    assert out.exists()  # --force: written although the check failed, as it says
    assert "--force" in r.out


@pytest.mark.parametrize(
    ("mistake", "flags"),
    [
        ("token", ["-t", "y" * 26]),
        ("team", ["-n", "no-such-team"]),
        ("port", ["-u", "http://127.0.0.1:{closed}"]),
        ("scheme", ["-u", "https://127.0.0.1:{port}"]),
    ],
)
def test_setup_mistake_keeps_the_working_configuration(
    run, mattermost_server, cli_env, mistake, flags
):
    """A bot token is shown once by Mattermost: a failed setup must not destroy it."""
    sb = mattermost_server
    out = cli_env / "config.toml"
    r = run("setup", "-u", sb.url, "-n", sb.team, "-t", sb.token, "-o", str(out))
    assert r.code == 0, r.text
    good = out.read_bytes()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    port = sb.url.rsplit(":", 1)[1].strip("/")
    values = {"-u": sb.url, "-n": sb.team, "-t": sb.token}
    values[flags[0]] = flags[1].format(closed=closed, port=port)
    args = [item for pair in values.items() for item in pair]
    r = run("setup", *args, "-o", str(out), secrets=("y" * 26,))
    assert r.code == 1, r.text
    assert "Nothing written" in r.out
    assert out.read_bytes() == good  # unchanged
    assert not out.with_name("config.toml.bak").exists()
    assert run("test", "--configfile", str(out)).code == 0


def test_setup_replacing_keeps_a_backup(run, mattermost_server, cli_env):
    sb = mattermost_server
    out = cli_env / "config.toml"
    out.write_text(
        f'url = "{sb.url}"\ntoken = "{sb.token}"\nteam_name = "{sb.team}"\n'
        'default_channel = "alerts"\n'
    )
    out.chmod(0o600)
    before = out.read_text()
    r = run("setup", "-u", sb.url, "-n", sb.team, "-t", sb.token, "-o", str(out))
    assert r.code == 0, r.text
    backup = out.with_name("config.toml.bak")
    assert backup.read_text() == before
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert str(backup) in r.out
    assert 'default_channel = "alerts"' in out.read_text()  # other settings are kept


def test_setup_interactive_prefills_the_current_values(script, mattermost_server, cli_env):
    sb = mattermost_server
    out = cli_env / "config.toml"
    out.write_text(f'url = "{sb.url}"\ntoken = "{sb.token}"\nteam_name = "{sb.team}"\n')
    out.chmod(0o600)
    r = script("setup", "-i", "-o", str(out), input="\n\n\n")  # Enter, Enter, Enter
    assert r.code == 0, r.text
    assert f"[{sb.url}]" in r.out and f"[{sb.team}]" in r.out
    assert "Enter keeps the current token" in r.out + r.err
    assert "Connection successful!" in r.out
    assert sb.token in out.read_text()


def test_allow_insecure_flag_for_plain_http_to_another_host(run, mattermost_server, cli_env):
    """The refusal names the CLI flag and the config key, and both work."""
    sb = mattermost_server
    # a non-loopback name for this machine's sandbox is not available; what matters is
    # that the flag reaches the client: a plain http URL to a host that does not resolve
    url = "http://notify-test.invalid"
    r = run("setup", "-u", url, "-n", sb.team, "-t", sb.token, "-o", str(cli_env / "c.toml"))
    assert r.code == 2
    line = _one_line_error(r)
    assert "--allow-insecure" in line and "allow_insecure = true" in line
    r = run(
        "setup", "-u", url, "-n", sb.team, "-t", sb.token, "-o", str(cli_env / "c.toml"),
        "--allow-insecure",
    )  # fmt: skip
    assert r.code == 1  # got past the refusal: now it is the DNS lookup that fails
    assert "cannot find the host notify-test.invalid" in _one_line_error(r)
    r = run(
        "setup", "-u", url, "-n", sb.team, "-t", sb.token, "-o", str(cli_env / "c.toml"),
        "--allow-insecure", "--no-check",
    )  # fmt: skip
    assert r.code == 0
    assert "allow_insecure = true" in (cli_env / "c.toml").read_text()
    for command in (["test"], ["send", "x", "-u", "alice"], ["outbox", "flush"]):
        r = run(*command, "--configfile", str(cli_env / "c.toml"))
        assert "allow_insecure" not in r.err, (command, r.err)  # the file's key is honoured
    conf = cli_env / "no-key.toml"
    conf.write_text(f'url = "{url}"\ntoken = "{sb.token}"\n')
    conf.chmod(0o600)
    r = run("test", "--configfile", str(conf))
    assert r.code == 2 and "--allow-insecure" in _one_line_error(r)
    r = run("test", "--configfile", str(conf), "--allow-insecure")
    assert r.code == 1 and "cannot find the host" in _one_line_error(r)


# ---------------------------------------------------------------- test


def test_test_reports_one_line_per_check(run, configfile, mattermost_server):
    r = run("test", "--configfile", str(configfile))
    assert r.code == 0, r.text
    for name in ("server", "token", "team"):
        assert any(line.split()[1:2] == [f"{name}:"] for line in r.out.splitlines()), r.out
    assert mattermost_server.bot_username in r.out


def test_test_without_configuration_is_a_usage_error(run):
    r = run("test")
    assert r.code == 2
    assert "no Mattermost server URL configured" in _one_line_error(r)


def test_test_missing_configfile(run, cli_env):
    r = run("test", "--configfile", str(cli_env / "nope.toml"))
    assert r.code == 2
    assert "nope.toml" in _one_line_error(r)


def test_test_malformed_configfile(run, cli_env):
    bad = cli_env / "bad.toml"
    bad.write_text("url = [unclosed\n")
    bad.chmod(0o600)
    r = run("test", "--configfile", str(bad))
    assert r.code == 2
    assert "bad.toml" in _one_line_error(r)


def test_test_unreachable_server_exits_1(run, cli_env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = cli_env / "down.toml"
    conf.write_text(f'url = "http://127.0.0.1:{port}"\ntoken = "abc"\nteam_name = "t"\n')
    conf.chmod(0o600)
    r = run("test", "--configfile", str(conf), secrets=("abc",))
    assert r.code == 1
    assert "server" in _one_line_error(r)


def test_configfile_beats_the_environment(run, configfile, monkeypatch):
    monkeypatch.setenv("MATTERMOST_NOTIFY_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("MATTERMOST_NOTIFY_TOKEN", "not-the-token")
    r = run("test", "--configfile", str(configfile), secrets=("not-the-token",))
    assert r.code == 0, r.text


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env_config(cli_env, url: str, token: str, team: str = "sandbox") -> Path:
    conf = cli_env / "mistake.toml"
    conf.write_text(f'url = "{url}"\ntoken = "{token}"\nteam_name = "{team}"\n')
    conf.chmod(0o600)
    return conf


@pytest.mark.parametrize(
    ("mistake", "says"),
    [
        # a page address pasted from the browser: refused before any request, exit 2
        ("{url}/sandbox/channels/town-square", ["page of team 'sandbox'", "url = '{url}'"]),
        # only the team in the path: the server answers the API path with a web page
        ("{url}/sandbox", ["web page, not the Mattermost API", "server's address only"]),
        ("https://127.0.0.1:{port}", ["does not speak https", "http://127.0.0.1:{port}"]),
        ("http://127.0.0.1:{closed}", ["nothing answers at 127.0.0.1:{closed}", "check the port"]),
        ("https://no-such-host.invalid", ["cannot find the host no-such-host.invalid"]),
    ],
)
def test_connection_mistakes_get_one_line_saying_what_to_do(
    run, mattermost_server, cli_env, mistake, says
):
    sb = mattermost_server
    base = sb.url.rstrip("/")
    fill = {"url": base, "port": base.rsplit(":", 1)[1], "closed": _closed_port()}
    conf = _env_config(cli_env, mistake.format(**fill), sb.token)
    for command in (["test"], ["send", "hello", "-u", "alice"]):
        r = run(*command, "--configfile", str(conf))
        assert r.code in (1, 2), r.text
        line = _one_line_error(r)  # the reason once, on stderr
        for words in says:
            assert words.format(**fill) in line, line
        assert "<" not in line  # no HTML, no urllib3 object reprs
        assert "(the server" not in line and "HTTPConnection" not in line
        assert line not in r.out
    assert not any(req.method == "POST" for req in sb.view.requests())


# ---------------------------------------------------------------- send / update


def test_send_to_user(run, configfile, mattermost_server):
    r = run("send", "Hello World!", "--user", "alice", "--configfile", str(configfile))
    assert r.code == 0, r.text
    assert "@alice" in r.out
    assert _messages(mattermost_server.view.posts(dm_with="alice")) == ["Hello World!"]


def test_send_to_channel_with_files_in_one_post(run, configfile, mattermost_server, cli_env):
    a = cli_env / "a.txt"
    b = cli_env / "b.csv"
    a.write_text("alpha\n")
    b.write_text("x,y\n1,2\n")
    r = run(
        "send", "two files", "-c", "alerts", "-f", str(a), str(b), "--configfile", str(configfile)
    )  # fmt: skip
    assert r.code == 0, r.text
    [post] = mattermost_server.view.posts(channel="alerts")
    assert post.message == "two files"
    assert sorted(f.name for f in post.files) == ["a.txt", "b.csv"]
    assert {f.read_bytes() for f in post.files} == {b"alpha\n", b"x,y\n1,2\n"}


def test_send_message_from_stdin(script, configfile, mattermost_server):
    r = script("send", "-", "-u", "bob", "--configfile", str(configfile), input="line 1\nline 2\n")
    assert r.code == 0, r.text
    assert _messages(mattermost_server.view.posts(dm_with="bob")) == ["line 1\nline 2"]


def test_send_empty_stdin_is_a_usage_error(script, configfile):
    r = script("send", "-", "-u", "bob", "--configfile", str(configfile), input="\n")
    assert r.code == 2
    assert "empty" in _one_line_error(r)


def test_send_save_hook_then_update_hook_original_flow(script, configfile, mattermost_server):
    """The original package's documented flow, through the console script."""
    hook = configfile.parent / "job.hook"
    r = script(
        "send", "job: running", "-u", "alice", "-s", str(hook), "--configfile", str(configfile)
    )  # fmt: skip
    assert r.code == 0, r.text
    assert hook.is_file()
    assert mattermost_server.token not in hook.read_text()
    r = script("update", "job: done", "-f", str(hook), "--configfile", str(configfile))
    assert r.code == 0, r.text
    [post] = mattermost_server.view.posts(dm_with="alice")
    assert post.message == "job: done"
    assert [e.message for e in post.edits] == ["job: running"]


def test_send_with_id_and_update_with_long_flag(run, configfile, mattermost_server):
    hook = configfile.parent / "h.json"
    args = ("--configfile", str(configfile))
    r = run("send", "v1", "-c", "alerts", "--id", "status", "--save-hook", str(hook), *args)
    assert r.code == 0, r.text
    assert json.loads(hook.read_text())["id"] == "status"
    r = run("update", "v2", "--hook", str(hook), *args)
    assert r.code == 0, r.text
    assert "'status'" in r.out
    assert _messages(mattermost_server.view.posts(channel="alerts")) == ["v2"]


def test_update_reads_the_original_packages_hook_file(run, configfile, mattermost_server):
    r = run("send", "old style", "-c", "alerts", "--configfile", str(configfile))
    assert r.code == 0, r.text
    [post] = mattermost_server.view.posts(channel="alerts")
    legacy = configfile.parent / "legacy.hook"
    legacy.write_text(
        f"[Mattermost-Notify Message Hook]\nlegacy-id\n{post.channel_id}\n{post.id}"
    )  # exactly what notify-mattermost 0.1.3 wrote
    r = run("update", "new style", "-f", str(legacy), "--configfile", str(configfile))
    assert r.code == 0, r.text
    assert mattermost_server.view.post(post.id).message == "new style"


def test_send_without_target_uses_default_channel(run, mattermost_server, cli_env):
    sb = mattermost_server
    conf = cli_env / "default.toml"
    conf.write_text(
        f'url = "{sb.url}"\ntoken = "{sb.token}"\nteam_name = "{sb.team}"\n'
        'default_channel = "alerts"\n'
    )
    conf.chmod(0o600)
    r = run("send", "to the default", "--configfile", str(conf))
    assert r.code == 0, r.text
    assert _messages(sb.view.posts(channel="alerts")) == ["to the default"]


def test_send_without_target_or_default_is_a_usage_error(run, configfile):
    r = run("send", "where to?", "--configfile", str(configfile))
    assert r.code == 2
    assert "--channel or --user" in _one_line_error(r)


def test_send_missing_file_sends_nothing(run, configfile, mattermost_server, cli_env):
    r = run(
        "send", "with file", "-c", "alerts", "-f", str(cli_env / "missing.png"),
        "--configfile", str(configfile),
    )  # fmt: skip
    assert r.code == 2
    assert "missing.png" in _one_line_error(r)
    assert mattermost_server.view.posts(channel="alerts") == []


def test_send_unknown_user_exits_1_naming_it(run, configfile):
    r = run("send", "hi", "-u", "nobody-here", "--configfile", str(configfile))
    assert r.code == 1
    assert "nobody-here" in _one_line_error(r)


def test_send_private_channel_without_bot_exits_1_naming_it(run, configfile):
    r = run("send", "hi", "-c", "secret", "--configfile", str(configfile))
    assert r.code == 1
    assert "secret" in _one_line_error(r)


def test_send_wrong_token_exits_1(run, mattermost_server, cli_env):
    wrong = "w" * 26
    conf = cli_env / "wrong.toml"
    conf.write_text(f'url = "{mattermost_server.url}"\ntoken = "{wrong}"\nteam_name = "sandbox"\n')
    conf.chmod(0o600)
    r = run("send", "hi", "-c", "alerts", "--configfile", str(conf), secrets=(wrong,))
    assert r.code == 1
    _one_line_error(r)


def test_update_missing_hook_file(run, configfile, cli_env):
    r = run("update", "x", "--hook", str(cli_env / "nohook"), "--configfile", str(configfile))
    assert r.code == 2
    assert "nohook" in _one_line_error(r)


def test_update_corrupt_hook_file(run, configfile, cli_env):
    bad = cli_env / "corrupt.hook"
    bad.write_text('{"id": "x", "version": 1')
    r = run("update", "x", "--hook", str(bad), "--configfile", str(configfile))
    assert r.code == 2
    assert "corrupt.hook" in _one_line_error(r)


def test_update_requires_hook(run):
    r = run("update", "x")
    assert r.code == 2
    assert "--hook" in _one_line_error(r)


# ---------------------------------------------------------------- demo


def test_demo_walks_through_and_checks_on_the_server(run):
    started = time.perf_counter()
    r = run("demo")
    elapsed = time.perf_counter() - started
    assert r.code == 0, r.text
    for step in ("1. A direct message", "2. A channel post", "3. An update", "4. A hook"):
        assert step in r.out
    assert "All 4 steps done and checked on the server" in r.out
    assert "second process" in r.out
    # without --keep the sandbox is gone: no address of a stopped server to click on
    assert "http://127.0.0.1:" not in r.out.split("All 4 steps done")[1]
    assert "has stopped" in r.out and "demo --keep" in r.out
    print(f"demo run time: {elapsed:.2f} s")  # a figure for the report, not an assertion


def test_demo_keep_stays_up_until_ctrl_c(mattermost_server, cli_env):
    proc = _start_until_ctrl_c(["demo", "--keep"])
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C" in line:
                break
        assert any("web page: http://127.0.0.1:" in line for line in lines), lines
        url = next(w for line in lines for w in line.split() if w.startswith("http://"))
        import requests

        assert requests.get(url.rstrip("/") + "/api/v4/system/ping", timeout=10).ok
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err


# ---------------------------------------------------------------- sandbox


def test_sandbox_subcommand_runs_until_ctrl_c(cli_env):
    conf = cli_env / "sandbox.toml"
    proc = _start_until_ctrl_c(["sandbox", "--port", "0", "--write-config", str(conf)])
    try:
        deadline = time.monotonic() + 60
        while not conf.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert conf.exists(), proc.stderr.read() if proc.poll() is not None else "no config"
        send = subprocess.run(
            [SCRIPT, "send", "via the sandbox command", "-u", "alice", "--configfile", str(conf)],
            capture_output=True,
            text=True,
            env=_script_env(),
            timeout=60,
        )
        assert send.returncode == 0, send.stderr
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "http://127.0.0.1:" in out
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--port", "99999"], "--port"),
        (["--port", "-1"], "--port"),
        (["--fail-fraction", "2"], "--fail-fraction"),
        (["--rate-limit-per-sec", "0"], "--rate-limit-per-sec"),
        (["--rate-limit-burst", "0"], "--rate-limit-burst"),
        (["--delay", "-3"], "--delay"),
        (["--fail-status", "200"], "--fail-status"),
    ],
)
def test_sandbox_bad_option_is_one_line_and_exit_2(run, flags, named):
    r = run("sandbox", *flags)
    assert r.code == 2, r.text
    [line] = r.err.strip().splitlines()
    assert named in line and flags[1] in line
    assert r.out == ""


def test_sandbox_on_a_busy_port_suggests_port_0(run):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = run("sandbox", "--port", str(port))
    assert r.code == 1, r.text
    [line] = r.err.strip().splitlines()
    assert "--port 0" in line and str(port) in line


# ---------------------------------------------------------------- outbox


def _leave_an_undelivered_message(mattermost_server, cli_env) -> None:
    """A process sends in the background while every connection is dropped, then exits."""
    sb = mattermost_server
    code = (
        "import mattermost_notify as notify\n"
        f"notify.wakeup(url={sb.url!r}, token={sb.token!r}, team_name={sb.team!r})\n"
        "notify.notify('from the outbox', user_name='alice', block=False)\n"
        "notify.flush(timeout=0.5)\n"
        "notify.get_client().sender.exit_timeout = 0.2  # do not wait out the exit flush\n"
        "notify.get_client().sender.hand_over_at_exit = False  # left for outbox flush\n"
    )
    sb.faults.drop_before(10_000)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env=_script_env(),
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
    finally:
        sb.faults.clear()


def test_outbox_list_flush_drop(run, configfile, mattermost_server, cli_env):
    r = run("outbox", "list")
    assert r.code == 0, r.text
    assert "empty" in r.out

    _leave_an_undelivered_message(mattermost_server, cli_env)
    r = run("outbox", "list")
    assert r.code == 0, r.text
    assert "from the outbox" in r.out
    assert "@alice" in r.out

    r = run("outbox", "flush", "--configfile", str(configfile))
    assert r.code == 0, r.text
    assert "1 message(s) were waiting" in r.out
    assert "1 sent, 0 left" in r.out
    assert _messages(mattermost_server.view.posts(dm_with="alice")) == ["from the outbox"]
    assert "empty" in run("outbox", "list").out

    _leave_an_undelivered_message(mattermost_server, cli_env)
    r = run("outbox", "drop")  # nothing dropped without IDs or --all
    assert r.code == 2 and "--all" in _one_line_error(r)
    assert "from the outbox" in run("outbox", "list").out
    r = run("outbox", "drop", "--all")
    assert r.code == 0, r.text
    assert "Dropped 1 message(s)" in r.out
    assert "empty" in run("outbox", "list").out


@pytest.mark.slow
def test_outbox_flush_with_the_server_down_keeps_its_timeout_and_says_what_is_left(
    script, configfile, mattermost_server, cli_env
):
    sb = mattermost_server
    _leave_an_undelivered_message(sb, cli_env)
    sb.stop()  # the server is down
    try:
        started = time.monotonic()
        r = script("outbox", "flush", "--timeout", "1", "--configfile", str(configfile))
        took = time.monotonic() - started
    finally:
        sb.start()
    assert r.code == 1, r.text  # something is left: not a success
    assert "; 0 sent, 1 left in the outbox" in r.out, r.out
    assert "failed" not in r.out and "refused" not in r.out
    # said once, in one line, not again by every close
    assert len([line for line in r.err.splitlines() if "outbox" in line]) == 1, r.err
    # the timeout holds: 1 s of trying plus the start of a Python process, not 11 s
    assert took < 8, f"outbox flush --timeout 1 took {took:.1f} s"
    assert "from the outbox" in script("outbox", "list").out  # still there
    r = script("outbox", "flush", "--timeout", "30", "--configfile", str(configfile))
    assert r.code == 0, r.text
    assert "1 sent, 0 left" in r.out
    assert _messages(sb.view.posts(dm_with="alice")) == ["from the outbox"]


# ---------------------------------------------------------------- jupyter


def test_jupyter_enable_status_disable(run, cli_env, monkeypatch, tmp_path):
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "jupyter"))
    server_file = tmp_path / "jupyter" / "jupyter_server_config.d" / "mattermost_notify.json"
    r = run("jupyter", "enable")
    assert r.code == 0, r.text
    extensions = json.loads(server_file.read_text())["ServerApp"]["jpserver_extensions"]
    assert extensions == {"mattermost_notify.jupyter_server": True}
    config_files = list((tmp_path / "ipython").rglob("ipython_kernel_config.py"))
    assert config_files, "enable wrote no kernel config"
    assert "mattermost_notify" in config_files[0].read_text()
    r = run("jupyter", "status")
    assert r.code == 0, r.text
    assert "enabled" in r.out.lower()
    assert f"death reports (Jupyter server extension): enabled by {server_file}" in r.out
    r = run("jupyter", "disable")
    assert r.code == 0, r.text
    extensions = json.loads(server_file.read_text())["ServerApp"]["jpserver_extensions"]
    assert extensions == {"mattermost_notify.jupyter_server": False}
    r = run("jupyter", "status")
    assert r.code == 0, r.text
    assert "not enabled" in r.out.lower() or "disabled" in r.out.lower()
    assert "death reports (Jupyter server extension): disabled" in r.out


def test_jupyter_enable_edits_the_target_of_a_symlinked_config(run, cli_env, monkeypatch, tmp_path):
    """Dotfiles managers link ipython_kernel_config.py: the link must stay a link."""
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    target = dotfiles / "ipython_kernel_config.py"
    target.write_text("c = get_config()  # noqa\nc.IPKernelApp.matplotlib = 'inline'\n")
    profile = tmp_path / "ipython" / "profile_default"
    profile.mkdir(parents=True)
    link = profile / "ipython_kernel_config.py"
    link.symlink_to(target)
    assert run("jupyter", "enable").code == 0
    assert link.is_symlink() and link.resolve() == target
    text = target.read_text()
    assert "matplotlib = 'inline'" in text and "mattermost_notify" in text
    assert run("jupyter", "disable").code == 0
    assert link.is_symlink() and "mattermost_notify" not in target.read_text()


def test_jupyter_enable_without_ipython_says_so_and_changes_nothing(cli_env, tmp_path):
    code = (
        "import sys\n"
        "sys.modules['IPython'] = None  # as in an environment without IPython\n"
        "from mattermost_notify.cli import main\n"
        "sys.exit(main(['jupyter', 'enable']))\n"
    )
    env = _script_env()
    env["IPYTHONDIR"] = str(tmp_path / "ipython")
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "IPython is not installed" in proc.stderr
    assert "enabled" not in proc.stdout
    assert not (tmp_path / "ipython").exists()


# ---------------------------------------------------------------- typing mistakes


def test_targets_as_people_type_them(run, configfile, mattermost_server):
    sb = mattermost_server
    r = run("send", "to a user", "-u", "@alice", "--configfile", str(configfile))
    assert r.code == 0, r.text
    assert "Sent to @alice:" in r.out and "@@" not in r.out
    for name in ("~alerts", "#alerts"):
        r = run("send", f"to {name}", "-c", name, "--configfile", str(configfile))
        assert r.code == 0, r.text
        assert "Sent to ~alerts:" in r.out and "~~" not in r.out
    assert _messages(sb.view.posts(channel="alerts")) == ["to ~alerts", "to #alerts"]
    r = run("send", "x", "-c", "Town Square", "--configfile", str(configfile))
    assert r.code == 2
    assert "did you mean 'town-square'?" in _one_line_error(r)


def test_save_hook_hint_and_update_f_confusion(run, configfile, mattermost_server, cli_env):
    hook = cli_env / "job.msg"
    r = run("send", "job", "-u", "alice", "-s", str(hook), "--configfile", str(configfile))
    assert r.code == 0, r.text
    assert f"--hook {hook}" in r.out and "FILE" not in r.out
    picture = cli_env / "plot.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    # `send -f` attaches files; `update -f` is --hook (the original's flags): say so
    r = run("update", "job: done", "-f", str(picture), "--configfile", str(configfile))
    assert r.code == 2
    line = _one_line_error(r)
    assert "-f means --hook" in line and "--files" in line


def test_python_dash_m_is_the_command(mattermost_env):
    """``python -m mattermost_notify`` works where the console script is not on PATH."""
    proc = subprocess.run(
        [sys.executable, "-m", "mattermost_notify", "send", "via python -m", "-u", "alice"],
        capture_output=True,
        text=True,
        env=_script_env(),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Sent to @alice" in proc.stdout
    assert mattermost_env.token not in proc.stdout + proc.stderr
    assert [p.message for p in mattermost_env.view.posts(dm_with="alice")] == ["via python -m"]
