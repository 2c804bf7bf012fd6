"""Differential check of the sandbox against the real server.

One scripted sequence of raw API requests (the ones the library makes, and their error
cases) is sent to a sandbox and to the real server; for each answer the status code, the
error id, the kind of body and the JSON keys the library reads (presence and type, and
for a few the value) are compared. A difference is either fixed in the sandbox or listed
in ``EXPLAINED`` with its reason, which docs/sandbox.rst repeats.

The requests run in phases, each against a fresh sandbox and the matching real server:
``defaults`` (a stock server), ``limits`` (MaxFileSize 1000, PostEditTimeLimit 1 s) and
``rate-limit`` (rate limiting on: 2 per second, bursts of 4, by user).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

Values = dict[str, Any]


@dataclass
class Step:
    """One raw request, and what of its answer is compared."""

    name: str
    method: str
    path: str  # formatted with the values captured so far
    body: Callable[[Values], Any] | None = None  # JSON body
    files: Callable[[Values], tuple[dict[str, str], list[tuple[str, bytes]]]] | None = None
    auth: str = "bot"  # "bot", "none" or "wrong"
    form: Callable[[Values], dict[str, str]] | None = None  # form-encoded body
    api: bool = True  # under /api/v4 (False: /hooks/...)
    keys: tuple[str, ...] = ()  # JSON keys the library reads: present, same type
    equal: tuple[str, ...] = ()  # ... and the same value on both servers
    counts: tuple[str, ...] = ()  # lists that must have the same length (None: null)
    capture: dict[str, str] = field(default_factory=dict)  # value name -> key
    same_as: str | None = None  # the answer's "id" must equal this captured value
    before: Callable[[], None] | None = None  # e.g. wait past the edit time limit


@dataclass
class Answer:
    status: int
    error_id: str | None
    kind: str  # "json", "text" or "empty"
    json: Any
    text: str
    headers: dict[str, str]


@dataclass
class Target:
    """One server under test: its URL, the bot's token and the names of its fixtures."""

    url: str
    token: str
    values: Values
    session: requests.Session = field(default_factory=requests.Session)

    def send(self, step: Step) -> Answer:
        headers = {}
        if step.auth == "bot":
            headers["Authorization"] = f"Bearer {self.token}"
        elif step.auth == "wrong":
            headers["Authorization"] = "Bearer " + "w" * 26
        kwargs: dict[str, Any] = {"headers": headers, "timeout": 30}
        if step.body is not None:
            kwargs["json"] = step.body(self.values)
        if step.form is not None:
            kwargs["data"] = step.form(self.values)
        if step.files is not None:
            data, files = step.files(self.values)
            kwargs["data"] = data
            kwargs["files"] = [("files", (name, content)) for name, content in files]
        url = self.url + ("/api/v4" if step.api else "") + step.path.format_map(self.values)
        response = self.session.request(step.method, url, **kwargs)
        content_type = response.headers.get("Content-Type", "")
        body: Any = None
        if "json" in content_type and response.content:
            body = response.json()
        error_id = (
            body.get("id") if isinstance(body, dict) and response.status_code >= 400 else None
        )
        kind = "json" if body is not None else ("text" if response.content else "empty")
        # header names are case-insensitive (Go writes X-Ratelimit-Limit): keep lower case
        headers = {name.lower(): value for name, value in response.headers.items()}
        return Answer(response.status_code, error_id, kind, body, response.text, headers)


def lookup(data: Any, key: str) -> tuple[bool, Any]:
    """``a.0.b`` in nested JSON: (present, value)."""
    for part in key.split("."):
        if isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        elif isinstance(data, dict) and part in data:
            data = data[part]
        else:
            return False, None
    return True, data


def json_type(value: Any) -> str:
    return type(value).__name__


def compare(
    step: Step, sandbox: Answer, real: Answer, sb_values: Values, rs_values: Values
) -> list[str]:
    """The differences of one answer pair, as readable lines (empty when they agree)."""
    out = []
    if sandbox.status != real.status:
        out.append(f"status: sandbox {sandbox.status}, real {real.status}")
    if sandbox.error_id != real.error_id:
        out.append(f"error id: sandbox {sandbox.error_id!r}, real {real.error_id!r}")
    if sandbox.kind != real.kind:
        out.append(f"body: sandbox {sandbox.kind}, real {real.kind}")
    for header in ("x-version-id", "x-request-id", "retry-after"):
        if (header in sandbox.headers) != (header in real.headers):
            out.append(
                f"header {header}: sandbox {'has' if header in sandbox.headers else 'lacks'}"
                f" it, real {'has' if header in real.headers else 'lacks'} it"
            )
    for key in step.keys + step.equal:
        (sb_has, sb_value), (rs_has, rs_value) = lookup(sandbox.json, key), lookup(real.json, key)
        if sb_has != rs_has:
            out.append(
                f"key {key}: sandbox {'has' if sb_has else 'lacks'} it, real "
                f"{'has' if rs_has else 'lacks'} it"
            )
        elif sb_has and json_type(sb_value) != json_type(rs_value):
            out.append(f"key {key}: sandbox {json_type(sb_value)}, real {json_type(rs_value)}")
        elif sb_has and key in step.equal and sb_value != rs_value:
            out.append(f"key {key}: sandbox {sb_value!r}, real {rs_value!r}")
    for key in step.counts:
        sb_value, rs_value = lookup(sandbox.json, key)[1], lookup(real.json, key)[1]
        sb_len = len(sb_value) if isinstance(sb_value, list) else sb_value
        rs_len = len(rs_value) if isinstance(rs_value, list) else rs_value
        if sb_len != rs_len:
            out.append(f"{key}: sandbox {sb_value!r}, real {rs_value!r}")
    if step.same_as is not None:
        sb_same = lookup(sandbox.json, "id")[1] == sb_values.get(step.same_as)
        rs_same = lookup(real.json, "id")[1] == rs_values.get(step.same_as)
        if sb_same != rs_same:
            out.append(f"same id as {step.same_as}: sandbox {sb_same}, real {rs_same}")
    return out


@dataclass
class Result:
    compared: int = 0
    differences: dict[str, list[str]] = field(default_factory=dict)  # step -> lines

    def unexplained(self) -> dict[str, list[str]]:
        return {k: v for k, v in self.differences.items() if k not in EXPLAINED}

    def summary(self) -> str:
        explained = len(self.differences) - len(self.unexplained())
        return (
            f"differential check of the sandbox against the real server: "
            f"{self.compared} requests compared, {len(self.differences)} differ "
            f"({explained} explained in docs/sandbox.rst, {len(self.unexplained())} unexplained)"
        )


def run_steps(steps: list[Step], sandbox: Target, real: Target, result: Result, phase: str) -> None:
    for step in steps:
        if step.before is not None:
            step.before()
        answers = (sandbox.send(step), real.send(step))
        for target, answer in zip((sandbox, real), answers, strict=True):
            for name, key in step.capture.items():
                present, value = lookup(answer.json, key)
                if present:
                    target.values[name] = value
        result.compared += 1
        lines = compare(step, answers[0], answers[1], sandbox.values, real.values)
        if lines:
            result.differences[f"{phase}/{step.name}"] = lines


# ---- the scripted requests -----------------------------------------------------------


def _file(size: int, name: str = "result.txt") -> tuple[str, bytes]:
    return name, b"r" * size


def upload(channel: str, *files: tuple[str, bytes]) -> Callable[[Values], Any]:
    return lambda v: ({"channel_id": v[channel]}, list(files))


def post(channel: str, message: str = "differential", **extra: Any) -> Callable[[Values], Any]:
    def body(v: Values) -> dict[str, Any]:
        fields = {"channel_id": v[channel], "message": message}
        for name, value in extra.items():
            fields[name] = value(v) if callable(value) else value
        return fields

    return body


POST_KEYS = (
    "id",
    "channel_id",
    "root_id",
    "message",
    "create_at",
    "update_at",
    "edit_at",
    "user_id",
    "props",
    "file_ids",
)
USER_KEYS = ("id", "username", "delete_at")
CHANNEL_KEYS = ("id", "name", "type", "team_id", "delete_at")
PENDING = f"differential:{uuid.uuid4().hex}"


def default_steps() -> list[Step]:
    by_name = "/teams/{team_id}/channels/name/"
    by_team_name = "/teams/name/{team}/channels/name/"
    return [
        Step("ping", "GET", "/system/ping", auth="none", keys=("status",)),
        Step(
            "me", "GET", "/users/me", keys=(*USER_KEYS, "is_bot", "roles"), capture={"bot_id": "id"}
        ),
        Step("me: wrong token", "GET", "/users/me", auth="wrong"),
        Step("me: no token", "GET", "/users/me", auth="none"),
        Step(
            "client config",
            "GET",
            "/config/client?format=old",
            keys=("Version", "BuildNumber"),
            equal=(
                "MaxFileSize",
                "MaxPostSize",
                "PostEditTimeLimit",
                "RestrictDirectMessage",
                "CollapsedThreads",
                "EnableFileAttachments",
            ),
        ),
        Step(
            "user by name",
            "GET",
            "/users/username/{alice}",
            keys=(*USER_KEYS, "is_bot"),
            capture={"alice_id": "id"},
        ),
        Step(
            "user by name: outsider",
            "GET",
            "/users/username/{outsider}",
            keys=USER_KEYS,
            capture={"outsider_id": "id"},
        ),
        Step("user by name: unknown", "GET", "/users/username/nosuchuser"),
        Step("user by name: upper case", "GET", "/users/username/Alice"),
        Step(
            "team by name",
            "GET",
            "/teams/name/{team}",
            keys=("id", "name", "type"),
            capture={"team_id": "id"},
        ),
        Step("team by name: unknown", "GET", "/teams/name/nosuchteam"),
        Step(
            "team member: bot",
            "GET",
            "/teams/{team_id}/members/{bot_id}",
            keys=("team_id", "user_id", "delete_at"),
        ),
        Step("team member: outsider", "GET", "/teams/{team_id}/members/{outsider_id}"),
        Step(
            "channel: public member",
            "GET",
            by_team_name + "{pub_in}",
            keys=CHANNEL_KEYS,
            capture={"pub_in_id": "id"},
        ),
        Step("channel by team id: public member", "GET", by_name + "{pub_in}", keys=CHANNEL_KEYS),
        Step(
            "channel: private member",
            "GET",
            by_team_name + "{priv_in}",
            keys=CHANNEL_KEYS,
            capture={"priv_in_id": "id"},
        ),
        Step(
            "channel: public non-member",
            "GET",
            by_team_name + "{pub_out}",
            keys=CHANNEL_KEYS,
            capture={"pub_out_id": "id"},
        ),
        Step("channel: private non-member", "GET", by_team_name + "{priv_out}"),
        Step("channel: unknown", "GET", by_team_name + "no-such-channel"),
        Step("channel: unknown team", "GET", "/teams/name/nosuchteam/channels/name/{pub_in}"),
        Step(
            "channel member: bot",
            "GET",
            "/channels/{pub_in_id}/members/{bot_id}",
            keys=("channel_id", "user_id"),
        ),
        Step(
            "channel member: bot, public non-member",
            "GET",
            "/channels/{pub_out_id}/members/{bot_id}",
        ),
        Step(
            "channel member: bot, private channel",
            "GET",
            "/channels/{priv_in_id}/members/{bot_id}",
            keys=("channel_id", "user_id"),
        ),
        Step(
            "dm: create",
            "POST",
            "/channels/direct",
            body=lambda v: [v["bot_id"], v["alice_id"]],
            keys=CHANNEL_KEYS,
            capture={"dm_id": "id"},
        ),
        Step(
            "dm: again",
            "POST",
            "/channels/direct",
            body=lambda v: [v["bot_id"], v["alice_id"]],
            keys=CHANNEL_KEYS,
            same_as="dm_id",
        ),
        Step(
            "dm: outsider",
            "POST",
            "/channels/direct",
            body=lambda v: [v["bot_id"], v["outsider_id"]],
            keys=CHANNEL_KEYS,
        ),
        Step(
            "dm: unknown user", "POST", "/channels/direct", body=lambda v: [v["bot_id"], "u" * 26]
        ),
        Step(
            "dm: without the caller",
            "POST",
            "/channels/direct",
            body=lambda v: [v["alice_id"], v["outsider_id"]],
        ),
        Step(
            "post: dm",
            "POST",
            "/posts?set_online=false",
            body=post("dm_id", pending_post_id=PENDING),
            keys=(*POST_KEYS, "pending_post_id"),
            capture={"dm_post_id": "id"},
        ),
        Step(
            "post: dm, same pending_post_id",
            "POST",
            "/posts?set_online=false",
            body=post("dm_id", pending_post_id=PENDING),
            keys=POST_KEYS,
            same_as="dm_post_id",
        ),
        Step(
            "post: channel",
            "POST",
            "/posts?set_online=false",
            body=post("pub_in_id"),
            keys=POST_KEYS,
            capture={"root_post_id": "id"},
        ),
        Step(
            "post: private channel",
            "POST",
            "/posts?set_online=false",
            body=post("priv_in_id"),
            keys=POST_KEYS,
        ),
        Step(
            "post: reply",
            "POST",
            "/posts?set_online=false",
            body=post("pub_in_id", root_id=lambda v: v["root_post_id"]),
            keys=POST_KEYS,
            capture={"reply_id": "id"},
        ),
        Step(
            "post: reply to a reply",
            "POST",
            "/posts?set_online=false",
            body=post("pub_in_id", root_id=lambda v: v["reply_id"]),
        ),
        Step(
            "post: root in another channel",
            "POST",
            "/posts?set_online=false",
            body=post("pub_in_id", root_id=lambda v: v["dm_post_id"]),
        ),
        Step("post: public non-member", "POST", "/posts?set_online=false", body=post("pub_out_id")),
        Step(
            "post: unknown channel",
            "POST",
            "/posts?set_online=false",
            body=lambda v: {"channel_id": "c" * 26, "message": "x"},
        ),
        Step(
            "post: 16383 characters",
            "POST",
            "/posts?set_online=false",
            body=post("pub_in_id", "é" * 16383),
            keys=POST_KEYS,
        ),
        Step(
            "post: 16384 characters",
            "POST",
            "/posts?set_online=false",
            body=post("pub_in_id", "é" * 16384),
        ),
        Step("post: empty message", "POST", "/posts?set_online=false", body=post("pub_in_id", "")),
        Step(
            "upload: one file",
            "POST",
            "/files",
            files=upload("pub_in_id", _file(100)),
            keys=("file_infos.0.id", "file_infos.0.name", "file_infos.0.size", "client_ids"),
            equal=("file_infos.0.name", "file_infos.0.size"),
            capture={"file_1": "file_infos.0.id"},
        ),
        Step(
            "upload: three files",
            "POST",
            "/files",
            files=upload("pub_in_id", _file(10, "a.txt"), _file(20, "b.txt"), _file(30, "c.txt")),
            keys=("file_infos.2.id", "file_infos.2.name"),
            equal=("file_infos.2.size",),
            capture={"file_2": "file_infos.0.id", "file_3": "file_infos.1.id"},
        ),
        Step(
            "upload: eleven files",
            "POST",
            "/files",
            files=upload("pub_in_id", *[_file(5, f"f{n}.txt") for n in range(11)]),
            keys=("file_infos.10.id",),
            capture={"eleven": "file_infos"},
        ),
        Step("upload: public non-member", "POST", "/files", files=upload("pub_out_id", _file(10))),
        Step("upload: no channel", "POST", "/files", files=lambda v: ({}, [_file(10)])),
        Step(
            "post: with files",
            "POST",
            "/posts?set_online=false",
            body=post("pub_in_id", file_ids=lambda v: [v["file_1"]]),
            keys=POST_KEYS,
            capture={"files_post_id": "id"},
        ),
        Step(
            "post: eleven file ids",
            "POST",
            "/posts?set_online=false",
            body=post("pub_in_id", file_ids=lambda v: [f["id"] for f in v["eleven"]]),
        ),
        Step(
            "post: a file of another post",
            "POST",
            "/posts?set_online=false",
            body=post("pub_in_id", file_ids=lambda v: [v["file_1"]]),
            keys=POST_KEYS,
            counts=("file_ids",),
        ),
        Step(
            "upload: to the private channel",
            "POST",
            "/files",
            files=upload("priv_in_id", _file(10), _file(20, "b.txt")),
            capture={"private_file": "file_infos.0.id", "private_file_2": "file_infos.1.id"},
        ),
        Step(
            "post: a file uploaded to another channel",
            "POST",
            "/posts?set_online=false",
            body=post("pub_in_id", file_ids=lambda v: [v["private_file"]]),
            keys=POST_KEYS,
            counts=("file_ids",),
            capture={"moved_post_id": "id"},
        ),
        Step(
            "file info: moved to the post's channel",
            "GET",
            "/files/{private_file}/info",
            keys=("id", "channel_id", "post_id"),
        ),
        Step(
            "patch: a file uploaded to another channel",
            "PUT",
            "/posts/{moved_post_id}/patch",
            body=lambda v: {"message": "moved", "file_ids": [v["private_file_2"]]},
            keys=POST_KEYS,
            counts=("file_ids",),
        ),
        Step(
            "patch: a file of another post",
            "PUT",
            "/posts/{moved_post_id}/patch",
            body=lambda v: {"message": "taken", "file_ids": [v["file_2"]]},
            keys=POST_KEYS,
            counts=("file_ids",),
        ),
        Step(
            "patch: message",
            "PUT",
            "/posts/{root_post_id}/patch",
            body=lambda v: {"message": "edited"},
            keys=POST_KEYS,
            equal=("message",),
        ),
        Step(
            "patch: files",
            "PUT",
            "/posts/{files_post_id}/patch",
            body=lambda v: {"message": "new files", "file_ids": [v["file_2"], v["file_3"]]},
            keys=POST_KEYS,
        ),
        Step(
            "patch: unknown post",
            "PUT",
            "/posts/" + "p" * 26 + "/patch",
            body=lambda v: {"message": "x"},
        ),
        Step(
            "get post", "GET", "/posts/{files_post_id}", keys=(*POST_KEYS, "metadata.files.0.name")
        ),
        Step("get post: unknown", "GET", "/posts/" + "p" * 26),
        Step("thread", "GET", "/posts/{root_post_id}/thread", keys=("order", "posts")),
        Step("file info", "GET", "/files/{file_1}/info", keys=("id", "name", "size")),
    ]


def limit_steps() -> list[Step]:
    by_team_name = "/teams/name/{team}/channels/name/"
    return [
        Step("me", "GET", "/users/me", capture={"bot_id": "id"}),
        Step(
            "client config",
            "GET",
            "/config/client?format=old",
            equal=("MaxFileSize", "PostEditTimeLimit"),
        ),
        Step("channel", "GET", by_team_name + "{pub_in}", capture={"pub_in_id": "id"}),
        Step(
            "upload: under MaxFileSize",
            "POST",
            "/files",
            files=upload("pub_in_id", _file(900)),
            keys=("file_infos.0.id",),
        ),
        Step("upload: over MaxFileSize", "POST", "/files", files=upload("pub_in_id", _file(1001))),
        Step(
            "post",
            "POST",
            "/posts?set_online=false",
            body=post("pub_in_id", "v1"),
            capture={"post_id": "id"},
        ),
        Step(
            "patch: within the edit time limit",
            "PUT",
            "/posts/{post_id}/patch",
            body=lambda v: {"message": "v2"},
            equal=("message",),
        ),
        Step(
            "patch: past the limit",
            "PUT",
            "/posts/{post_id}/patch",
            body=lambda v: {"message": "v3"},
            before=lambda: time.sleep(1.6),
        ),
        Step(
            "patch: past the limit, same text",
            "PUT",
            "/posts/{post_id}/patch",
            body=lambda v: {"message": "v2"},
        ),
        Step(
            "patch: past the limit, props only",
            "PUT",
            "/posts/{post_id}/patch",
            body=lambda v: {"props": {"state": "done"}},
            keys=("props",),
        ),
        Step(
            "update: past the limit, same text",
            "PUT",
            "/posts/{post_id}",
            body=lambda v: {"id": v["post_id"], "message": "v2"},
        ),
        Step(
            "update: past the limit, new text",
            "PUT",
            "/posts/{post_id}",
            body=lambda v: {"id": v["post_id"], "message": "v4"},
        ),
    ]


def restricted_dm_steps(restrict: Callable[[], None]) -> list[Step]:
    """``TeamSettings.RestrictDirectMessage`` switched to ``team`` by ``restrict`` after a DM
    with ``{outsider}`` (in no team of the bot) exists; ``{newcomer}`` is another one."""
    return [
        Step("me", "GET", "/users/me", capture={"bot_id": "id"}),
        Step("user: outsider", "GET", "/users/username/{outsider}", capture={"outsider_id": "id"}),
        Step("user: newcomer", "GET", "/users/username/{newcomer}", capture={"newcomer_id": "id"}),
        Step("user: alice", "GET", "/users/username/{alice}", capture={"alice_id": "id"}),
        Step(
            "dm: outsider, unrestricted",
            "POST",
            "/channels/direct",
            body=lambda v: [v["bot_id"], v["outsider_id"]],
            capture={"outsider_dm": "id"},
        ),
        Step(
            "post: outsider, unrestricted",
            "POST",
            "/posts?set_online=false",
            body=post("outsider_dm"),
            capture={"outsider_post": "id"},
        ),
        Step(
            "client config: restricted",
            "GET",
            "/config/client?format=old",
            equal=("RestrictDirectMessage",),
            before=restrict,
        ),
        Step(
            "dm: outsider, existing",
            "POST",
            "/channels/direct",
            body=lambda v: [v["bot_id"], v["outsider_id"]],
            keys=CHANNEL_KEYS,
            same_as="outsider_dm",
        ),
        Step(
            "post: existing restricted dm",
            "POST",
            "/posts?set_online=false",
            body=post("outsider_dm"),
        ),
        Step(
            "patch: existing restricted dm",
            "PUT",
            "/posts/{outsider_post}/patch",
            body=lambda v: {"message": "edited"},
        ),
        Step(
            "upload: existing restricted dm",
            "POST",
            "/files",
            files=upload("outsider_dm", _file(10)),
        ),
        Step(
            "dm: newcomer",
            "POST",
            "/channels/direct",
            body=lambda v: [v["bot_id"], v["newcomer_id"]],
        ),
        Step(
            "dm: a team member",
            "POST",
            "/channels/direct",
            body=lambda v: [v["bot_id"], v["alice_id"]],
            keys=CHANNEL_KEYS,
            capture={"alice_dm": "id"},
        ),
        Step(
            "post: a team member",
            "POST",
            "/posts?set_online=false",
            body=post("alice_dm"),
            keys=POST_KEYS,
        ),
    ]


def webhook_steps() -> list[Step]:
    """Incoming webhooks: ``{hook}`` posts to the public channel the bot is in."""

    def hook(name: str, body: Any = None, **kw: Any) -> Step:
        return Step(name, "POST", "/hooks/{hook}", body=body, auth="none", api=False, **kw)

    return [
        hook("webhook: text", lambda v: {"text": "from a webhook"}),
        hook(
            "webhook: markdown and attachments",
            lambda v: {
                "text": "**done**",
                "attachments": [{"fallback": "done", "color": "good", "text": "all fine"}],
            },
        ),
        hook("webhook: attachments only", lambda v: {"attachments": [{"text": "only"}]}),
        hook("webhook: no text", lambda v: {"username": "x"}),
        hook("webhook: channel by name", lambda v: {"text": "x", "channel": v["pub_in"]}),
        hook("webhook: unknown channel", lambda v: {"text": "x", "channel": "no-such-channel"}),
        hook("webhook: a user's DM", lambda v: {"text": "x", "channel": "@" + v["alice"]}),
        hook("webhook: invalid JSON", None, form=None),
        Step(
            "webhook: form payload",
            "POST",
            "/hooks/{hook}",
            auth="none",
            api=False,
            form=lambda v: {"payload": '{"text": "from a form"}'},
        ),
        Step(
            "webhook: unknown hook",
            "POST",
            "/hooks/" + "h" * 26,
            auth="none",
            api=False,
            body=lambda v: {"text": "x"},
        ),
    ]


def rate_limit_steps() -> list[Step]:
    steps = [Step(f"burst {n + 1}", "GET", "/users/me") for n in range(10)]
    return [
        Step(
            "wait for a full bucket",
            "GET",
            "/system/ping",
            auth="none",
            before=lambda: time.sleep(3),
        ),
        *steps,
    ]


def compare_rate_limit(sandbox: list[Answer], real: list[Answer]) -> list[str]:
    """The burst's answers are timing-dependent: compare their kinds, not their order."""
    out = []
    for who, answers in (("sandbox", sandbox), ("real", real)):
        statuses = {a.status for a in answers}
        if statuses != {200, 429}:
            out.append(f"{who}: burst statuses {sorted(statuses)}, expected 200 and 429")
    for status in (200, 429):
        sb = next((a for a in sandbox if a.status == status), None)
        rs = next((a for a in real if a.status == status), None)
        if sb is None or rs is None:
            continue
        sb_names = {k.lower() for k in sb.headers if k.lower().startswith(("x-ratelimit", "retry"))}
        rs_names = {k.lower() for k in rs.headers if k.lower().startswith(("x-ratelimit", "retry"))}
        if sb_names != rs_names:
            out.append(f"{status} headers: sandbox {sorted(sb_names)}, real {sorted(rs_names)}")
        for name in ("x-ratelimit-limit",):
            if sb.headers.get(name) != rs.headers.get(name):
                out.append(
                    f"{status} {name}: sandbox {sb.headers.get(name)!r}, "
                    f"real {rs.headers.get(name)!r}"
                )
        if status == 429 and (sb.kind, sb.text.strip()) != (rs.kind, rs.text.strip()):
            out.append(f"429 body: sandbox {sb.text.strip()!r}, real {rs.text.strip()!r}")
    return out


#: Differences that stay, with the reason (docs/sandbox.rst lists the same).
EXPLAINED: dict[str, str] = {}
