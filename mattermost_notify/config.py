"""Settings and the configuration files.

Precedence, highest first (each key is taken from the first place that sets it):

1. keyword overrides (``load_settings(url=...)``, ``wakeup(token=...)``);
2. the ``config`` mapping (``wakeup(config={"url": ..., "team_name": ..., "token": ...})``);
3. the environment: ``MATTERMOST_NOTIFY_URL``, ``MATTERMOST_NOTIFY_TOKEN``,
   ``MATTERMOST_NOTIFY_TEAM`` (and ``MATTERMOST_NOTIFY_CONFIG``, the path of a config file
   that then replaces the file search below);
4. the configuration files that exist of: ``./.mattermost_notify``,
   ``<user config dir>/config.toml``, ``~/.mattermost_notify``, combined setting by
   setting in this order.

One exception keeps a token from going to the wrong server: when the URL comes from a
file, the settings that belong to a server (``token``, ``verify``, ``allow_insecure``) are
not taken from another file that names a different server (they are listed in
``Settings.notes``).

A file is either TOML (what ``write_config`` and ``mattermost-notify setup`` write) or
the original package's ``KEY=VALUE`` lines (``URL``, ``TEAM_NAME``, ``TOKEN``), so users of
notify-mattermost 0.1.3 keep their file.
"""

from __future__ import annotations

import json
import os
import re
import stat
import unicodedata
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ._files import read_text_file, write_private
from .errors import ConfigurationError, InsecureConfigWarning

__all__ = [
    "CONFIG_FILE_NAME",
    "ENV_CONFIG",
    "ENV_DATA_DIR",
    "ENV_ID_CACHE",
    "ENV_MENTION",
    "ENV_TEAM",
    "ENV_TOKEN",
    "ENV_URL",
    "ENV_WEBHOOK_URL",
    "Settings",
    "check_webhook_url",
    "config_file_candidates",
    "load_settings",
    "parse_mentions",
    "read_config_file",
    "user_config_dir",
    "user_config_path",
    "user_data_dir",
    "write_config",
]

APP_NAME = "mattermost-notify"
CONFIG_FILE_NAME = ".mattermost_notify"
ENV_URL = "MATTERMOST_NOTIFY_URL"
ENV_TOKEN = "MATTERMOST_NOTIFY_TOKEN"  # noqa: S105 - the name of a variable, not a secret
ENV_TEAM = "MATTERMOST_NOTIFY_TEAM"
ENV_CONFIG = "MATTERMOST_NOTIFY_CONFIG"
ENV_MENTION = "MATTERMOST_NOTIFY_MENTION"
ENV_WEBHOOK_URL = "MATTERMOST_NOTIFY_WEBHOOK_URL"
ENV_DATA_DIR = "MATTERMOST_NOTIFY_DATA_DIR"
ENV_CONFIG_DIR = "MATTERMOST_NOTIFY_CONFIG_DIR"
ENV_ID_CACHE = "MATTERMOST_NOTIFY_ID_CACHE"

DEFAULT_TIMEOUT = (5.0, 30.0)
MAX_TIMEOUT = 86400.0


@dataclass(frozen=True)
class Settings:
    """Everything needed to build a client. ``repr`` never shows the token."""

    url: str
    token: str = field(repr=False)
    team_name: str | None = None
    verify: bool | str = True
    timeout: tuple[float, float] = DEFAULT_TIMEOUT
    allow_insecure: bool = False
    default_user: str | None = None
    default_channel: str | None = None
    mention: tuple[str, ...] = ()
    """Users (or groups) the library's own completion and failure messages in channels
    mention, so that they are alerted."""
    id_cache: bool = True
    """Keep looked-up ids on disk (see :mod:`mattermost_notify.idcache`)."""
    webhook_url: str | None = field(default=None, repr=False)
    """Webhook mode: the incoming webhook to post through (then ``token`` is empty and
    ``url`` is the server the webhook belongs to). A credential, like the token."""
    source: str | None = field(default=None, compare=False)
    """Where the settings came from (for messages; never contains the token)."""
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    """Where each setting came from: ``{"url": "config file ...", ...}``."""
    notes: tuple[str, ...] = field(default=(), compare=False, repr=False)
    """Settings that were found but not used, and why."""

    def __repr__(self) -> str:
        return (
            f"Settings(url={self.url!r}, token='***', team_name={self.team_name!r}, "
            f"verify={self.verify!r}, timeout={self.timeout!r}, "
            f"allow_insecure={self.allow_insecure!r}, default_user={self.default_user!r}, "
            f"default_channel={self.default_channel!r}, mention={self.mention!r}, "
            f"id_cache={self.id_cache!r}"
            + (", webhook_url='***'" if self.webhook_url else "")
            + ")"
        )

    __str__ = __repr__

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :class:`mattermost_notify.client.Notify`, or in webhook
        mode (``webhook_url`` set) for :class:`mattermost_notify.webhook.WebhookClient`."""
        common = {
            "verify": self.verify,
            "timeout": self.timeout,
            "allow_insecure": self.allow_insecure,
            "default_user": self.default_user,
            "default_channel": self.default_channel,
            "mention": self.mention,
        }
        if self.webhook_url:
            return {"webhook_url": self.webhook_url, **common}
        token = {"token": self.token, "url": self.url, "team_name": self.team_name}
        return {**token, **common, "id_cache": self.id_cache}


# ---------------------------------------------------------------- directories


#: the settings, in order: the keys of a config file or mapping (any case)
KEYS: tuple[str, ...] = tuple(
    f.name for f in fields(Settings) if f.name not in ("source", "sources", "notes")
)


def user_data_dir() -> Path:
    """The per-user data directory (hooks, outbox); ``MATTERMOST_NOTIFY_DATA_DIR`` wins."""
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def user_config_dir() -> Path:
    """The per-user config directory; ``MATTERMOST_NOTIFY_CONFIG_DIR`` wins."""
    env = os.environ.get(ENV_CONFIG_DIR)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def user_config_path() -> Path:
    """The TOML file ``mattermost-notify setup`` writes: ``<user config dir>/config.toml``."""
    return user_config_dir() / "config.toml"


def config_file_candidates() -> list[Path]:
    """The files searched, in order, when no explicit file is given."""
    return [
        Path.cwd() / CONFIG_FILE_NAME,
        user_config_path(),
        Path.home() / CONFIG_FILE_NAME,
    ]


# ---------------------------------------------------------------- reading


def _check_permissions(path: Path) -> None:
    if os.name != "posix":
        return
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRWXG | stat.S_IRWXO) and (path, mode) not in _warned_readable:
        _warned_readable.add((path, mode))  # once per process, however often it is read
        # one line without a source line; raised under "-W error", as warnings are
        warnings.warn_explicit(
            f"the config file {path} holds an access token and is readable by others "
            f"(mode {stat.S_IMODE(mode):o}); run: chmod 600 {path}",
            InsecureConfigWarning,
            "mattermost-notify",
            0,
            "mattermost_notify.config",
        )


_warned_readable: set[tuple[Path, int]] = set()


def _parse_key_value(text: str, path: Path) -> dict[str, Any]:
    """The original package's format: ``KEY=VALUE`` lines (URL, TEAM_NAME, TOKEN)."""
    data: dict[str, Any] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            # never echo the line: it may be the token
            raise ConfigurationError(
                f"malformed config file {path}, line {number}: expected KEY=VALUE "
                "(for example URL=https://chat.example.org) or TOML"
            )
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        data[key] = value
    return data


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read one config file (TOML or the original ``KEY=VALUE`` lines) into a dict.

    Keys are normalised to :class:`Settings` field names; unknown keys raise
    :class:`ConfigurationError` naming the key and the file. :func:`load_settings`
    warns (:class:`InsecureConfigWarning`) when the token it uses comes from a file that
    group or others can read.
    """
    p = Path(path).expanduser()
    text = read_text_file(p, f"config file {p}", ConfigurationError, encoding="utf-8-sig")
    import tomllib  # only when a file is read

    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # the original's format writes KEY=VALUE with no space before "="
        if p.suffix == ".toml" or not re.search(r"(?m)^[A-Za-z_]+=", text):
            # the message of tomllib names line and column, never the value
            raise ConfigurationError(f"malformed TOML in config file {p}: {exc}") from None
        data = _parse_key_value(text, p)
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = key.lower()
        if name not in KEYS:
            known = ", ".join(sorted(KEYS))
            raise ConfigurationError(f"unknown key {key!r} in config file {p} (known: {known})")
        out[name] = value
    return out


# ---------------------------------------------------------------- validation


def _normalise_url(url: Any, source: str) -> str:
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError(f"the server URL from {source} is empty or not a string")
    url = url.strip()
    parts = urlsplit(url)
    # A value without "://" is never shown: it may be the token, swapped by mistake.
    shown = (
        repr(url if len(url) < 200 else url[:200] + "...")
        if "://" in url
        else f"(not shown, in case it is the token: {len(url)} characters without '://')"
    )
    if parts.scheme.lower() not in ("http", "https"):
        raise ConfigurationError(
            f"the server URL {shown} from {source} must start with https:// (or http://)"
        )
    if not parts.hostname:
        raise ConfigurationError(
            f"the server URL {shown} from {source} has no host name "
            "(it should look like https://chat.example.org)"
        )
    if parts.username or parts.password:
        raise ConfigurationError(
            f"the server URL from {source} carries credentials (user:password@); "
            "use the token setting instead"
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(
            f"the server URL {parts.scheme}://{parts.netloc}{parts.path} from {source} "
            "must not have a query or fragment"
        )
    path = parts.path.rstrip("/")
    _refuse_page_address(parts.scheme.lower(), parts.netloc.lower(), path, source)
    if path.endswith("/api/v4"):
        path = path[: -len("/api/v4")]
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{path}"


# path segments of the web app's pages: <server>/<team>/channels/town-square, ...
_TEAM_PAGES = {"channels", "messages", "pl", "threads", "integrations", "emoji", "drafts"}
_PAGES = {"login", "admin_console", "landing", "select_team", "signup_user_complete"}


def _refuse_page_address(scheme: str, netloc: str, path: str, source: str) -> None:
    """A URL copied from the browser's address bar names a page, not the server."""
    segments = [s for s in path.split("/") if s]
    for i, segment in enumerate(segments):
        if segment in _TEAM_PAGES and i >= 1:
            base, team = "/".join(segments[: i - 1]), segments[i - 1]
            server = f"{scheme}://{netloc}" + (f"/{base}" if base else "")
            raise ConfigurationError(
                f"the server URL from {source} is the address of a page of team {team!r} "
                f"(copied from the browser?): use url = {server!r} and team_name = {team!r}"
            )
        if segment in _PAGES:
            base = "/".join(segments[:i])
            server = f"{scheme}://{netloc}" + (f"/{base}" if base else "")
            raise ConfigurationError(
                f"the server URL from {source} is the address of a page "
                f"(copied from the browser?): use url = {server!r}"
            )


def _check_token(token: Any, source: str) -> str:
    if not isinstance(token, str) or not token.strip():
        raise ConfigurationError(
            f"no access token in {source}: set {ENV_TOKEN}, pass token=..., "
            "or run `mattermost-notify setup`"
        )
    token = token.strip()
    # An HTTP header holds ASCII only: a pasted "…" or smart quote would fail deep in
    # http.client with the whole "Bearer <token>" in the error. Say where, never what.
    for position, ch in enumerate(token, 1):
        if ch.isspace() or not ch.isprintable() or not ch.isascii():
            what = "whitespace" if ch.isspace() else "a control character"
            if not ch.isascii() and ch.isprintable():
                what = "the non-ASCII character " + unicodedata.name(ch, f"U+{ord(ch):04X}")
            raise ConfigurationError(
                f"the access token from {source} contains {what} at position {position} of "
                f"{len(token)}: copy the token again (tokens are ASCII letters and digits)"
            )
    return token


def _check_timeout(value: Any, source: str) -> tuple[float, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        pair: tuple[Any, ...] = (value, value)
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        pair = tuple(value)
    else:
        raise ConfigurationError(
            f"timeout from {source} must be a number or a pair (connect, read), got {value!r}"
        )
    out = []
    for item in pair:
        if isinstance(item, bool) or not isinstance(item, (int, float)) or not item > 0:
            raise ConfigurationError(
                f"timeout from {source} must be positive numbers of seconds, got {value!r}"
            )
        if not item <= MAX_TIMEOUT:  # also inf and nan
            raise ConfigurationError(
                f"timeout from {source} must be at most {MAX_TIMEOUT:g} seconds "
                f"(a day), got {value!r}"
            )
        out.append(float(item))
    return out[0], out[1]


def _check_bool(value: Any, name: str, source: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off", ""):
        return False
    raise ConfigurationError(f"{name} from {source} must be true or false, got {value!r}")


def _check_verify(value: Any, source: str) -> bool | str:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("true", "yes", "1"):
            return True
        if low in ("false", "no", "0"):
            return False
        path = Path(value).expanduser()
        if not path.exists():
            raise ConfigurationError(f"verify= CA bundle {path} from {source} does not exist")
        return str(path)
    if isinstance(value, os.PathLike):
        return _check_verify(os.fspath(value), source)
    raise ConfigurationError(
        f"verify from {source} must be true, false or a CA bundle path, got {value!r}"
    )


def _optional_name(value: Any, name: str, source: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{name} from {source} must be a non-empty string")
    value = value.strip()
    if value.strip(".") == "" or "/" in value or "\\" in value:
        # "." and ".." would be dot segments of the request path
        raise ConfigurationError(
            f"{name} {value[:80]!r} from {source} is not a name: use the name (handle) "
            "of the team, user or channel"
        )
    return value


_MENTION_NAME = re.compile(r"^[a-z0-9.\-_]{1,64}$")


def parse_mentions(value: Any, source: str) -> tuple[str, ...]:
    """User (or group) names to mention: ``"alice"``, ``"@alice, @bob"`` or a list.

    Returned without ``@``, lower case, in order, each once; ``None`` or ``""``: none.
    """
    if value is None:
        return ()
    if isinstance(value, str):
        items: list[Any] = re.split(r"[,\s]+", value)
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ConfigurationError(
            f"mention from {source} must be a user name or a list of them, "
            f"got {type(value).__name__}"
        )
    names: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigurationError(
                f"mention from {source} must list user names, got {type(item).__name__}"
            )
        name = item.strip().lstrip("@").lower()
        if not name:
            continue
        if not _MENTION_NAME.match(name):
            raise ConfigurationError(
                f"mention {item.strip()[:80]!r} from {source} is not a user name "
                "(letters, digits, '.', '_' and '-')"
            )
        if name not in names:
            names.append(name)
    return tuple(names)


_HOOK_PATH = re.compile(r"^(?P<prefix>(?:/[^/]+)*?)/hooks/(?P<key>[A-Za-z0-9]+)/?$")


def check_webhook_url(value: Any, source: str = "the settings") -> tuple[str, str]:
    """``(server URL, key)`` of an incoming webhook URL, or :class:`ConfigurationError`
    naming ``source`` and the host (never the key: the URL is a credential)."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"the webhook URL from {source} is empty or not a string")
    parts = urlsplit(value.strip())
    host = parts.hostname or ""
    shape = "https://chat.example.org/hooks/<key>"
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise ConfigurationError(
            f"the webhook URL from {source} must look like {shape} (copy it from "
            "Integrations > Incoming Webhooks)"
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigurationError(
            f"the webhook URL from {source} (host {host}) must not carry user:password@, "
            f"a query or a fragment: it looks like {shape}"
        )
    match = _HOOK_PATH.match(parts.path)
    if match is None or match.group("prefix").endswith("/api/v4"):
        raise ConfigurationError(
            f"the webhook URL from {source} (host {host}) must end in /hooks/<key> with a "
            f"key of letters and digits, like {shape}"
        )
    base = f"{parts.scheme.lower()}://{parts.netloc.lower()}{match.group('prefix')}"
    return base, match.group("key")


def make_settings(values: Mapping[str, Any], sources: Mapping[str, str]) -> Settings:
    """Validate merged values (``sources`` names where each came from) into Settings.

    With a ``webhook_url`` and no ``token`` the settings are for webhook mode."""

    def src(key: str) -> str:
        return sources.get(key, "the settings")

    if values.get("webhook_url") is not None and values.get("token") is None:
        base, key = check_webhook_url(values["webhook_url"], src("webhook_url"))
        mode: dict[str, Any] = {"url": base, "token": "", "webhook_url": f"{base}/hooks/{key}"}
    elif "url" not in values:
        raise ConfigurationError(
            "no Mattermost server URL configured: set "
            f"{ENV_URL}, pass url=..., write ./{CONFIG_FILE_NAME} or run `mattermost-notify setup`"
        )
    else:
        mode = {
            "url": _normalise_url(values["url"], src("url")),
            "token": _check_token(values.get("token"), src("token")),
        }
    return Settings(
        **mode,
        team_name=_optional_name(values.get("team_name"), "team_name", src("team_name")),
        verify=_check_verify(values.get("verify", True), src("verify")),
        timeout=_check_timeout(values.get("timeout", DEFAULT_TIMEOUT), src("timeout")),
        allow_insecure=_check_bool(
            values.get("allow_insecure", False), "allow_insecure", src("allow_insecure")
        ),
        default_user=_optional_name(
            values.get("default_user"), "default_user", src("default_user")
        ),
        default_channel=_optional_name(
            values.get("default_channel"), "default_channel", src("default_channel")
        ),
        mention=parse_mentions(values.get("mention"), src("mention")),
        id_cache=_check_bool(values.get("id_cache", True), "id_cache", src("id_cache")),
        source=", ".join(sorted(set(sources.values()))) or None,
        sources=dict(sources),
    )


def load_settings(
    config: Mapping[str, Any] | None = None,
    *,
    configfile: str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> Settings:
    """Collect settings from arguments, environment and files (see the module doc).

    ``configfile`` names the file to read instead of searching; it ranks above the
    environment. Overrides whose value
    is ``None`` are ignored, so callers can pass optional arguments straight through.
    """
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    ranks: dict[str, int] = {}  # the layer each setting came from (0 = the arguments)
    notes: list[str] = []

    def layer(data: Mapping[str, Any], source: str) -> None:
        ranks["_layers"] = ranks.get("_layers", 0) + 1
        for key, value in data.items():
            if value is None:
                continue
            name = str(key).lower()
            if name not in KEYS:
                raise ConfigurationError(f"unknown setting {key!r} in {source}")
            if name not in values:
                values[name] = value
                sources[name] = source
                ranks[name] = ranks["_layers"]

    layer(overrides, "the arguments")
    if config is not None:
        if not isinstance(config, Mapping):
            raise ConfigurationError(
                "config must be a mapping with url, team_name and token, "
                f"got {type(config).__name__}"
            )
        layer(config, "the config mapping")
    token_file: Path | None = None

    def layer_file(path: Path) -> None:
        nonlocal token_file
        data = read_config_file(path)
        url_from_file = sources.get("url", "").startswith("config file ")
        if "url" in data and url_from_file and _same_server(values["url"], data["url"]) is False:
            for name in _SERVER_BOUND:
                if name in data and name not in values:
                    notes.append(f"{name} in {path} is not used: that file is for {data['url']}")
                data.pop(name, None)
        if any(k in data and k not in values for k in ("token", "webhook_url")):
            token_file = path
        layer(data, f"config file {path}")

    if configfile is not None:
        # a file named explicitly (``--configfile``) beats the environment and the search
        layer_file(Path(configfile).expanduser())
    env_names = (
        (ENV_URL, "url"),
        (ENV_TOKEN, "token"),
        (ENV_TEAM, "team_name"),
        (ENV_WEBHOOK_URL, "webhook_url"),
    )
    for var, name in (*env_names, (ENV_MENTION, "mention"), (ENV_ID_CACHE, "id_cache")):
        layer({name: os.environ.get(var) or None}, f"the environment ({var})")
    if configfile is None:
        env_file = os.environ.get(ENV_CONFIG)
        paths = [Path(env_file).expanduser()] if env_file else config_file_candidates()
        for path in paths:
            if env_file or path.is_file():
                layer_file(path)
    if token_file is not None:
        _check_permissions(token_file)
    if "token" in values and "webhook_url" in values:
        # one mode: the setting from the higher place wins; both from one place is an error
        if ranks["webhook_url"] == ranks["token"]:
            raise ConfigurationError(
                f"both a token and a webhook_url in {sources['token']}: keep one (a bot's or "
                "a personal access token, or the URL of an incoming webhook)"
            )
        loser, winner = ("token", "webhook_url")
        if ranks["token"] < ranks["webhook_url"]:
            loser, winner = winner, loser
        notes.append(
            f"{loser} from {sources[loser]} is not used: {winner} from {sources[winner]} wins"
        )
        del values[loser], sources[loser]
    return replace(make_settings(values, sources), notes=tuple(notes))


_SERVER_BOUND = ("token", "verify", "allow_insecure")


def _same_server(a: Any, b: Any) -> bool | None:
    """Whether two configured URLs name the same server (None when one is not a URL)."""
    try:
        return _normalise_url(a, "") == _normalise_url(b, "")
    except ConfigurationError:
        return None


# ---------------------------------------------------------------- writing


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(float(value))
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    # a JSON string is a valid TOML basic string (same escapes)
    return json.dumps(str(value), ensure_ascii=False)


def write_config(path: str | os.PathLike[str], settings: Settings) -> Path:
    """Write ``settings`` as TOML to ``path`` (mode 0600, atomic). Returns the path."""
    p = Path(path).expanduser()
    if settings.webhook_url:
        lines = [
            "# mattermost-notify configuration (holds a webhook URL, a credential: keep it "
            "private)",
            f"webhook_url = {_toml_value(settings.webhook_url)}",
        ]
    else:
        lines = [
            "# mattermost-notify configuration (holds an access token: keep it private)",
            f"url = {_toml_value(settings.url)}",
            f"token = {_toml_value(settings.token)}",
        ]
    if settings.team_name:
        lines.append(f"team_name = {_toml_value(settings.team_name)}")
    if settings.verify is not True:
        lines.append(f"verify = {_toml_value(settings.verify)}")
    if tuple(settings.timeout) != DEFAULT_TIMEOUT:
        lines.append(f"timeout = {_toml_value(list(settings.timeout))}")
    if settings.allow_insecure:
        lines.append("allow_insecure = true")
    if settings.default_user:
        lines.append(f"default_user = {_toml_value(settings.default_user)}")
    if settings.default_channel:
        lines.append(f"default_channel = {_toml_value(settings.default_channel)}")
    if settings.mention:
        lines.append(f"mention = {_toml_value(list(settings.mention))}")
    if not settings.id_cache:
        lines.append("id_cache = false")
    write_private(p, "\n".join(lines) + "\n")
    return p
