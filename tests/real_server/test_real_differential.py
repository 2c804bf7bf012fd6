"""The sandbox held against the real server: the same raw requests to both, compared
(see differential.py). Prints how many requests were compared and how many differ."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import differential
from differential import Result, Target

from mattermost_notify.sandbox import Sandbox

DOCS = Path(__file__).resolve().parents[2] / "docs" / "sandbox.rst"


@contextmanager
def sandbox(version: str, **options: Any) -> Iterator[Target]:
    with Sandbox(
        team="research",
        bot_username="notifybot",
        users=("alice", "bob", "carol", "dave"),
        channels=("town-square", "bot-public"),
        private_channels=("bot-private",),
        version=version,
        **options,
    ) as sb:
        for outsider in ("carol", "dave"):  # as on the real server: users in no team of the bot
            sb.remove_from_team(outsider)
        values = {
            "team": sb.team,
            "alice": "alice",
            "outsider": "carol",
            "newcomer": "dave",
            "pub_in": "bot-public",
            "priv_in": "bot-private",
            "pub_out": "lobby",
            "priv_out": "secret",
        }
        values["hook"] = sb.create_webhook("bot-public")
        target = Target(sb.url, sb.token, values)
        target.sandbox = sb  # type: ignore[attr-defined]
        yield target


def real(server: Any, hook: str = "") -> Target:
    values = {
        "hook": hook,
        "team": server.team,
        "alice": "alice",
        "outsider": "carol",
        "pub_in": "bot-public",
        "priv_in": "bot-private",
        "pub_out": "public-no-bot",
        "priv_out": "private-no-bot",
    }
    return Target(server.url, server.bot_token, values)


def test_the_sandbox_answers_as_the_real_server(
    real_server: Any,
    admin: Any,
    rate_limited_server: Any,
    server_settings: Any,
    differential_results: list[str],
) -> None:
    version = real_server.server_version
    result = Result()
    hook = admin.call(
        "POST",
        "/hooks/incoming",
        {"channel_id": real_server.channels["bot-public"], "display_name": "differential"},
        expect=201,
    )["id"]
    with sandbox(version) as sb:
        target = real(real_server, hook)
        differential.run_steps(differential.default_steps(), sb, target, result, "defaults")
        differential.run_steps(differential.webhook_steps(), sb, target, result, "webhooks")
    server_settings(
        {"FileSettings": {"MaxFileSize": 1000}, "ServiceSettings": {"PostEditTimeLimit": 1}}
    )
    with sandbox(version, max_file_size=1000, post_edit_time_limit=1) as sb:
        differential.run_steps(differential.limit_steps(), sb, real(real_server), result, "limits")
    # restricted DMs: a new outsider on the real server (the DM with carol may exist already)
    newcomer = admin.create_user("newcomer", join_team=False)
    outsider = admin.create_user("outsider", join_team=False)
    with sandbox(version) as sb:
        target = real(real_server)
        target.values.update(outsider=outsider, newcomer=newcomer)

        def restrict() -> None:
            sb.sandbox.restrict_direct_message = "team"  # type: ignore[attr-defined]
            server_settings({"TeamSettings": {"RestrictDirectMessage": "team"}})

        steps = differential.restricted_dm_steps(restrict)
        differential.run_steps(steps, sb, target, result, "restricted DMs")
    with sandbox(
        version, rate_limit=True, rate_limit_per_sec=2, rate_limit_burst=4, rate_limit_by_user=True
    ) as sb:
        target = real(rate_limited_server)
        answers: tuple[list, list] = ([], [])
        for step in differential.rate_limit_steps():
            if step.before is not None:
                step.before()
            answers[0].append(sb.send(step))
            answers[1].append(target.send(step))
            result.compared += 1
        lines = differential.compare_rate_limit(answers[0][1:], answers[1][1:])
        if lines:
            result.differences["rate-limit/burst"] = lines

    print(result.summary())
    differential_results.append(result.summary())
    unexplained = result.unexplained()
    report = "\n".join(
        f"{name}:\n" + "\n".join(f"    {line}" for line in lines)
        for name, lines in unexplained.items()
    )
    assert not unexplained, f"{len(unexplained)} unexplained differences:\n{report}"
    docs = DOCS.read_text()
    for name in differential.EXPLAINED:
        assert name in result.differences, f"{name} is explained but no longer differs"
        assert re.search(re.escape(name.split("/", 1)[1]), docs), f"{name} not in {DOCS.name}"
