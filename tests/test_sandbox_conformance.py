"""Conformance: the OpenAPI check itself, a third-party client, and concurrent posting."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import requests
from openapi_check import COLLECTOR_KEY, OpenAPIChecker, assemble, resolve

from mattermost_notify.sandbox import Sandbox
from mattermost_notify.sandbox.view import RequestRecord

OPENAPI = Path(__file__).parent / "data" / "openapi"


def _record(method: str, path: str, status: int) -> RequestRecord:
    return RequestRecord("r" * 26, 0, method, path, "", "", status, "", 0.0, "", "application/json")


def test_assembled_document_and_refs() -> None:
    document = assemble(OPENAPI)
    assert document["openapi"].startswith("3.0")
    assert len(document["paths"]) == 212
    assert len(document["components"]["schemas"]) == 175
    resolved = resolve(document, document["paths"])
    assert "$ref" not in repr(resolved)


def test_checker_finds_violations_and_accepts_conforming_answers() -> None:
    checker = OpenAPIChecker(OPENAPI)
    post_path = "/api/v4/posts/" + "p" * 26
    good = b'{"id": "x", "create_at": 1, "message": "m", "props": {}, "file_ids": []}'
    assert checker.check(_record("GET", post_path, 200), "application/json", good) == []
    bad = checker.check(
        _record("GET", post_path, 200), "application/json", b'{"create_at": "yesterday"}'
    )
    assert len(bad) == 1 and "create_at" in bad[0].problem
    # an error status the operation does not list is still held to AppError
    err = (
        b'{"id": "a", "message": "m", "detailed_error": "", "request_id": "r", "status_code": 404}'
    )
    assert checker.check(_record("GET", post_path, 404), "application/json", err) == []
    wrong_error = checker.check(
        _record("GET", post_path, 404), "application/json", b'{"status_code": "404"}'
    )
    assert wrong_error
    # an undocumented success is a violation
    assert checker.check(_record("GET", post_path, 202), "application/json", b"{}")
    # the literal route wins over the templated one
    assert checker.operation("POST", "/api/v4/channels/direct")["operationId"] == (
        "CreateDirectChannel"
    )
    # plain text (429) is not checked
    assert (
        checker.check(_record("POST", "/api/v4/posts", 429), "text/plain", b"limit exceeded") == []
    )


def test_this_suite_checks_every_sandbox_answer(
    request: pytest.FixtureRequest, mattermost_server: Sandbox
) -> None:
    collector = request.config.stash.get(COLLECTOR_KEY, None)
    assert collector is not None, "tests/conftest.py did not set up the OpenAPI check"
    before = collector.checker.checked
    requests.get(mattermost_server.url + "/api/v4/system/ping", timeout=5)
    assert collector.check_pending() == []
    assert collector.checker.checked == before + 1


def test_mattermostdriver_against_the_sandbox(mattermost_server: Sandbox, tmp_path: Path) -> None:
    from mattermostdriver import Driver

    sb = mattermost_server
    driver = Driver(
        {
            "url": "127.0.0.1",
            "port": sb.port,
            "scheme": "http",
            "token": sb.token,
            "basepath": "/api/v4",
            "timeout": 10,
        }
    )
    me = driver.login()
    assert me["username"] == sb.bot_username and driver.client.userid == me["id"]
    team = driver.teams.get_team_by_name(sb.team)
    assert team["name"] == sb.team
    channel = driver.channels.get_channel_by_name(team["id"], "alerts")
    same = driver.channels.get_channel_by_name_and_team_name(sb.team, "alerts")
    assert channel["id"] == same["id"]
    alice = driver.users.get_user_by_username("alice")
    dm = driver.channels.create_direct_message_channel([me["id"], alice["id"]])
    assert dm["type"] == "D" and dm["name"] == "__".join(sorted([me["id"], alice["id"]]))
    report = tmp_path / "report.txt"
    report.write_text("all good\n")
    with report.open("rb") as fh:
        uploaded = driver.files.upload_file(channel["id"], {"files": ("report.txt", fh)})
    file_id = uploaded["file_infos"][0]["id"]
    post = driver.posts.create_post(
        {"channel_id": channel["id"], "message": "with file", "file_ids": [file_id]}
    )
    assert post["file_ids"] == [file_id]
    patched = driver.posts.patch_post(post["id"], {"message": "with file (edited)"})
    assert patched["edit_at"] > 0
    got = driver.posts.get_post(post["id"])
    assert got["message"] == "with file (edited)" and got["file_ids"] == [file_id]
    dm_post = driver.posts.create_post({"channel_id": dm["id"], "message": "hi alice"})
    assert sb.view.post(dm_post["id"]).message == "hi alice"
    assert driver.files.get_file(file_id).content == b"all good\n"


def test_eight_concurrent_clients_1000_posts_none_lost_none_doubled(
    mattermost_server: Sandbox,
) -> None:
    sb = mattermost_server
    channel_id = sb.view.channel_id("alerts")
    clients, per_client = 8, 125
    created: list[list[str]] = [[] for _ in range(clients)]
    errors: list[Any] = []

    def run(index: int) -> None:
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {sb.token}"
            for n in range(per_client):
                body = {
                    "channel_id": channel_id,
                    "message": f"c{index}-{n}",
                    "pending_post_id": f"{index}:{n}",
                }
                r = session.post(sb.url + "/api/v4/posts", json=body, timeout=30)
                if r.status_code != 201:
                    errors.append((index, n, r.status_code))
                else:
                    created[index].append(r.json()["id"])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    ids = [post_id for ids in created for post_id in ids]
    assert len(ids) == len(set(ids)) == clients * per_client
    posts = sb.view.posts("alerts")
    messages = sorted(p.message for p in posts)
    expected = sorted(f"c{i}-{n}" for i in range(clients) for n in range(per_client))
    assert messages == expected  # none lost, none doubled
    assert {p.id for p in posts} == set(ids)
    listing = requests.get(
        f"{sb.url}/api/v4/channels/{channel_id}/posts",
        params={"per_page": 200},
        headers={"Authorization": f"Bearer {sb.token}"},
        timeout=10,
    ).json()
    assert len(listing["order"]) == 200
