"""Settings: precedence, both file formats, validation, 0600 writing, no token in repr."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import pytest

from mattermost_notify.config import (
    Settings,
    load_settings,
    read_config_file,
    user_data_dir,
    write_config,
)
from mattermost_notify.errors import ConfigurationError, InsecureConfigWarning

TOKEN = "tok3nS3cr3tValue0123456789"


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No environment, an empty cwd, home and config dir."""
    for var in list(os.environ):
        if var.startswith("MATTERMOST_NOTIFY_"):
            monkeypatch.delenv(var)
    home = tmp_path / "home"
    cwd = tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("MATTERMOST_NOTIFY_CONFIG_DIR", str(tmp_path / "confdir"))
    monkeypatch.chdir(cwd)
    return tmp_path


def _private(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_original_key_value_file_in_home_is_read(isolated: Path) -> None:
    _private(
        isolated / "home" / ".mattermost_notify",
        f"URL=https://chat.example.org/\nTEAM_NAME=research\nTOKEN={TOKEN}\n",
    )
    s = load_settings()
    assert (s.url, s.team_name, s.token) == ("https://chat.example.org", "research", TOKEN)


def test_cwd_file_wins_over_user_config_and_home(isolated: Path) -> None:
    _private(isolated / "home" / ".mattermost_notify", f"URL=https://home.example\nTOKEN={TOKEN}\n")
    _private(
        isolated / "confdir" / "config.toml", f'url = "https://toml.example"\ntoken = "{TOKEN}"\n'
    )
    assert load_settings().url == "https://toml.example"
    _private(
        isolated / "cwd" / ".mattermost_notify",
        f'url = "https://cwd.example"\ntoken = "x{TOKEN}"\n',
    )
    s = load_settings()
    assert s.url == "https://cwd.example"
    assert s.token == "x" + TOKEN  # the first file that sets a setting gives it


def test_env_beats_files_and_arguments_beat_env(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _private(
        isolated / "cwd" / ".mattermost_notify",
        f"URL=https://file.example\nTOKEN={TOKEN}\nTEAM_NAME=a\n",
    )
    monkeypatch.setenv("MATTERMOST_NOTIFY_URL", "https://env.example")
    monkeypatch.setenv("MATTERMOST_NOTIFY_TEAM", "envteam")
    s = load_settings()
    assert (s.url, s.team_name, s.token) == ("https://env.example", "envteam", TOKEN)
    s = load_settings({"url": "https://mapping.example"}, team_name="argteam")
    assert (s.url, s.team_name) == ("https://mapping.example", "argteam")


def test_env_config_path_replaces_the_search(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = _private(
        isolated / "elsewhere.toml", f'url = "https://other.example"\ntoken = "{TOKEN}"\n'
    )
    _private(isolated / "cwd" / ".mattermost_notify", f"URL=https://cwd.example\nTOKEN={TOKEN}\n")
    monkeypatch.setenv("MATTERMOST_NOTIFY_CONFIG", str(other))
    assert load_settings().url == "https://other.example"
    monkeypatch.setenv("MATTERMOST_NOTIFY_CONFIG", str(isolated / "missing.toml"))
    with pytest.raises(ConfigurationError, match=r"missing\.toml does not exist"):
        load_settings()


def test_wakeup_style_config_mapping(isolated: Path) -> None:
    s = load_settings({"url": "https://chat.example.org", "team_name": "t", "token": TOKEN})
    assert s.team_name == "t"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("URL https://x\n", r"malformed TOML"),
        (f"URL=https://x\nTOKEN {TOKEN}\n", r"line 2: expected KEY=VALUE"),
        (f"URL=https://x\nTOKEN={TOKEN}\nCOLOUR=red\n", r"unknown key 'colour'"),
        ('url = "https://x"\ntoken = [\n', "malformed TOML"),
    ],
)
def test_malformed_file_names_file_and_line_not_the_token(
    isolated: Path, text: str, match: str | None
) -> None:
    path = _private(isolated / "cwd" / ".mattermost_notify", text)
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    assert str(path) in str(info.value)
    if match:
        assert info.match(match)
    assert TOKEN not in str(info.value)


def test_malformed_toml_named(isolated: Path) -> None:
    path = _private(isolated / "confdir" / "config.toml", f'url = "https://x"\ntoken = {TOKEN}\n')
    with pytest.raises(ConfigurationError, match="malformed TOML") as info:
        load_settings()
    assert str(path) in str(info.value)
    assert TOKEN not in str(info.value)


def test_missing_url_and_token(isolated: Path) -> None:
    with pytest.raises(ConfigurationError, match="no Mattermost server URL"):
        load_settings()
    with pytest.raises(ConfigurationError, match="no access token"):
        load_settings(url="https://x.example")


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("ftp://x.example", "must start with https://"),
        ("chat.example.org", "must start with https://"),
        ("https://", "no host name"),
        ("https://user:pw@x.example", "carries credentials"),
        ("https://x.example/?a=1", "query or fragment"),
        (42, "empty or not a string"),
    ],
)
def test_bad_urls(isolated: Path, url: object, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        load_settings(url=url, token=TOKEN)


def test_url_normalised() -> None:
    s = load_settings(url="HTTPS://Chat.Example.org/mm/api/v4/", token=TOKEN)
    assert s.url == "https://chat.example.org/mm"


@pytest.mark.parametrize("timeout", [0, -1, "5", (1, 2, 3), (1, -2), True])
def test_bad_timeouts(isolated: Path, timeout: object) -> None:
    with pytest.raises(ConfigurationError, match="timeout"):
        load_settings(url="https://x.example", token=TOKEN, timeout=timeout)


def test_timeout_forms(isolated: Path) -> None:
    assert load_settings(url="https://x.example", token=TOKEN, timeout=3).timeout == (3.0, 3.0)
    assert load_settings(url="https://x.example", token=TOKEN, timeout=[1, 9]).timeout == (1.0, 9.0)


def test_token_with_whitespace_refused_without_echo(isolated: Path) -> None:
    with pytest.raises(ConfigurationError, match="whitespace") as info:
        load_settings(url="https://x.example", token="abc def")
    assert "abc def" not in str(info.value)


def test_settings_repr_hides_token() -> None:
    s = Settings(url="https://x.example", token=TOKEN, team_name="t")
    assert TOKEN not in repr(s)
    assert TOKEN not in str(s)
    assert "***" in repr(s)


def test_write_config_is_0600_toml_and_round_trips(isolated: Path) -> None:
    s = Settings(
        url="https://x.example",
        token=TOKEN,
        team_name='te"am',
        timeout=(2.0, 7.0),
        default_channel="alerts",
    )
    path = write_config(isolated / "deep" / "config.toml", s)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = tomllib.loads(path.read_text())
    assert data["token"] == TOKEN and data["team_name"] == 'te"am'
    back = load_settings(configfile=path)
    assert back == s


def test_readable_config_file_warns(isolated: Path) -> None:
    path = isolated / "cwd" / ".mattermost_notify"
    path.write_text(f"URL=https://x.example\nTOKEN={TOKEN}\n")
    path.chmod(0o644)
    with pytest.warns(InsecureConfigWarning, match="chmod 600") as record:
        load_settings()
    assert str(path) in str(record[0].message)
    path.chmod(0o600)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_settings()
    assert read_config_file(path)["token"] == TOKEN


def test_data_dir_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MATTERMOST_NOTIFY_DATA_DIR", str(tmp_path / "d"))
    assert user_data_dir() == tmp_path / "d"


def test_http_to_remote_host_refused_loopback_allowed() -> None:
    from mattermost_notify.client import Notify

    with pytest.raises(ConfigurationError, match=r"plain http to chat\.example\.org") as info:
        Notify(token=TOKEN, url="http://chat.example.org")
    assert TOKEN not in str(info.value)
    Notify(token=TOKEN, url="http://chat.example.org", allow_insecure=True).close()
    for url in ("http://localhost:8065", "http://127.0.0.5", "http://[::1]:80"):
        Notify(token=TOKEN, url=url).close()


def test_original_positional_order_is_accepted() -> None:
    from mattermost_notify.client import Notify

    client = Notify("https://chat.example.org", TOKEN, "team")  # type: ignore[arg-type]
    assert client.url == "https://chat.example.org"
    assert TOKEN not in repr(client)
    client.close()


def test_import_is_lazy() -> None:
    code = (
        "import sys, mattermost_notify as m; "
        "bad = [x for x in ('requests', 'IPython', 'tqdm', 'ipywidgets', 'urllib3') "
        "if x in sys.modules]; "
        "m.Notify; m.wakeup; "
        "bad += [x for x in ('IPython', 'tqdm', 'ipywidgets', 'mattermost_notify.sender', "
        "'mattermost_notify.cli', 'mattermost_notify.sandbox') if x in sys.modules]; "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- files combined


def test_files_are_combined_setting_by_setting(isolated: Path) -> None:
    """The docs promise it: each setting from the first place that sets it."""
    _private(
        isolated / "confdir" / "config.toml",
        f'url = "https://chat.example.org"\ntoken = "{TOKEN}"\nteam_name = "research"\n',
    )
    _private(isolated / "cwd" / ".mattermost_notify", 'default_channel = "alerts"\n')
    s = load_settings()
    assert (s.url, s.token, s.team_name, s.default_channel) == (
        "https://chat.example.org",
        TOKEN,
        "research",
        "alerts",
    )
    assert s.sources["default_channel"] == f"config file {isolated / 'cwd' / '.mattermost_notify'}"
    assert s.sources["token"] == f"config file {isolated / 'confdir' / 'config.toml'}"


def test_a_file_for_another_server_lends_it_no_token(isolated: Path) -> None:
    """A ./.mattermost_notify naming another server (a cloned repository, say) must not
    receive the token of the user's own file."""
    _private(
        isolated / "confdir" / "config.toml",
        f'url = "https://chat.example.org"\ntoken = "{TOKEN}"\nteam_name = "research"\n',
    )
    _private(isolated / "cwd" / ".mattermost_notify", 'url = "https://evil.example"\n')
    with pytest.raises(ConfigurationError, match="no access token"):
        load_settings()
    # the same server, written differently, is the same server
    _private(isolated / "cwd" / ".mattermost_notify", 'url = "HTTPS://Chat.Example.org/"\n')
    s = load_settings()
    assert s.token == TOKEN and not s.notes


def test_readable_file_warns_only_when_its_token_is_used(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    legacy = isolated / "home" / ".mattermost_notify"
    legacy.write_text(f"URL=https://x.example\nTOKEN={TOKEN}\nTEAM_NAME=t\n")
    legacy.chmod(0o644)
    monkeypatch.setenv("MATTERMOST_NOTIFY_URL", "https://x.example")
    monkeypatch.setenv("MATTERMOST_NOTIFY_TOKEN", "other" + TOKEN)
    monkeypatch.setenv("MATTERMOST_NOTIFY_TEAM", "t")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_settings().token == "other" + TOKEN  # the file's token is not used
    monkeypatch.delenv("MATTERMOST_NOTIFY_TOKEN")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        load_settings()
    assert [type(w.message) for w in record] == [InsecureConfigWarning]


def test_cli_test_prints_where_each_setting_came_from(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mattermost_notify.cli import main
    from mattermost_notify.sandbox import Sandbox

    with Sandbox() as sb:
        user_file = _private(
            isolated / "confdir" / "config.toml", f'url = "{sb.url}"\ntoken = "{sb.token}"\n'
        )
        cwd_file = _private(isolated / "cwd" / ".mattermost_notify", 'default_channel = "alerts"\n')
        monkeypatch.setenv("MATTERMOST_NOTIFY_TEAM", sb.team)
        assert main(["test"]) == 0
        out = capsys.readouterr().out
    assert sb.token not in out
    lines = out.splitlines()

    def line(name: str) -> str:
        return next(x for x in lines if x.strip().startswith(f"{name} = "))

    assert f"config file {user_file}" in line("url")
    assert "(hidden)" in line("token") and f"config file {user_file}" in line("token")
    assert "MATTERMOST_NOTIFY_TEAM" in line("team_name")
    assert f"config file {cwd_file}" in line("default_channel")
