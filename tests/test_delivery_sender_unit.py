"""The BackgroundSender's own logic: ordering, coalescing, replies, retries, failures, outbox.

These use a small in-process stand-in for the client (the three methods the
sender calls), not a mocked HTTP layer: what is under test here is the
queue, not the wire. The behaviour over real HTTP is in the other
``test_delivery_*`` files.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mattermost_notify import outbox
from mattermost_notify.errors import (
    FileError,
    MattermostNotifyWarning,
    MessageError,
    NetworkError,
    NotFoundError,
    RateLimitedError,
    ServerError,
)
from mattermost_notify.sender import BackgroundSender, Ticket

URL = "http://127.0.0.1:9"


@dataclass
class Sent:
    id: str | None
    post_id: str
    channel_id: str = "c"
    root_id: str = ""
    file_ids: tuple[str, ...] = ()
    permalink: str = ""


@dataclass
class StandIn:
    """The client surface the sender uses, recording every call."""

    url: str = URL
    default_user: str | None = None
    default_channel: str | None = "town-square"
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    fail: list[BaseException] = field(default_factory=list)  # raised by the next calls, in order
    gate: threading.Event | None = None  # when set, calls wait for it
    entered: threading.Event = field(default_factory=threading.Event)
    known: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _call(self, name: str, **kw: Any) -> Sent:
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10)
        with self.lock:
            self.calls.append((name, kw))
            if self.fail:
                raise self.fail.pop(0)
            n = len(self.calls)
        if name == "send" and kw.get("id"):
            self.known.add(kw["id"])
        return Sent(kw.get("id"), post_id=f"p{n}")

    def send(self, message: str, **kw: Any) -> Sent:
        return self._call("send", message=message, **kw)

    def send_update(self, message: str, id: str, files: Any = None, **kw: Any) -> Sent:
        if id not in self.known:
            with self.lock:
                self.calls.append(("send_update", {"message": message, "id": id}))
            raise MessageError(f"unknown message id {id!r}")
        return self._call("send_update", message=message, id=id, files=files, **kw)

    def reply(self, id: str, message: str, files: Any = None, *, pending_post_id: str) -> Sent:
        if id not in self.known:
            raise MessageError(f"unknown message id {id!r}")
        return self._call(
            "reply", id=id, message=message, files=files, pending_post_id=pending_post_id
        )

    def has_message(self, id: str) -> bool:
        return id in self.known

    def resolve_target(
        self, user: str | None, channel: str | None, only: str | None = None
    ) -> tuple[str, str]:
        if user or channel:
            return ("user", user) if user else ("channel", channel)  # type: ignore[return-value]
        if self.default_user or self.default_channel:
            return (
                ("user", self.default_user)
                if self.default_user
                else ("channel", self.default_channel)
            )  # type: ignore[return-value]
        raise MessageError("no user or channel given and no default set")


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "data"
    monkeypatch.setenv("MATTERMOST_NOTIFY_DATA_DIR", str(d))
    return d


def make(client: StandIn, **kw: Any) -> BackgroundSender:
    kw.setdefault("initial_backoff", 0.01)
    kw.setdefault("max_backoff", 0.05)
    return BackgroundSender(client, **kw)  # type: ignore[arg-type]


def eventually(check: Any, timeout: float = 10.0) -> None:
    """Wait for ``check()`` (the outbox thread writes entries shortly after queueing)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.01)


def spool_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "outbox").glob("spool-*/*.json"))


# ---------------------------------------------------------------- order


def test_messages_keep_their_order_per_target() -> None:
    c = StandIn()
    s = make(c)
    targets = [{"user": "alice"}, {"channel": "alerts"}, {}]
    for i in range(300):
        s.post(f"m{i}", **targets[i % 3])
    assert s.flush(20)
    # the targets are delivered in parallel, each in the order it was queued
    for k, target in enumerate(targets):
        want = {"user": None, "channel": None, **target} if target else None
        got = [
            kw["message"]
            for name, kw in c.calls
            if name == "send"
            and (
                (kw["user"], kw["channel"]) == (want["user"], want["channel"])
                if want
                else kw["channel"] == "town-square"  # the default, resolved when queued
            )
        ]
        assert got == [f"m{i}" for i in range(k, 300, 3)]
    assert len(c.calls) == 300
    # one pending_post_id per message, all distinct
    ppids = [kw["pending_post_id"] for _, kw in c.calls]
    assert len(set(ppids)) == 300 and all(ppids)
    s.close(1)


def test_default_target_is_frozen_at_queue_time() -> None:
    c = StandIn(gate=threading.Event())
    s = make(c)
    s.post("before")
    c.default_channel = "alerts"
    s.post("after")
    c.gate.set()
    assert s.flush(5)
    assert [kw["channel"] for _, kw in c.calls] == ["town-square", "alerts"]
    s.close(1)


def test_many_threads_one_sender_each_thread_in_order() -> None:
    c = StandIn()
    s = make(c)

    def work(t: int) -> None:
        for i in range(200):
            s.post(f"{t}:{i}", channel=f"ch{t}")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert s.flush(30)
    seen: dict[str, list[int]] = {}
    for _, kw in c.calls:
        t, i = kw["message"].split(":")
        seen.setdefault(t, []).append(int(i))
    assert seen == {str(t): list(range(200)) for t in range(8)}
    s.close(1)


# ---------------------------------------------------------------- coalescing


def test_waiting_updates_coalesce_newest_wins() -> None:
    c = StandIn(known={"bar"}, gate=threading.Event())
    s = make(c)
    first = s.update("bar", "0%")
    assert c.entered.wait(5)  # "0%" is on the wire, blocked
    tickets = [s.update("bar", f"{i}%") for i in range(1, 101)]
    assert s.pending() == 2  # one running, one waiting: never more
    c.gate.set()
    assert s.flush(5)
    assert [kw["message"] for _, kw in c.calls] == ["0%", "100%"]
    assert first.result(1) is not None
    results = {id(t.result(1)) for t in tickets}
    assert len(results) == 1  # every superseded ticket resolves with the newest update
    assert all(t.done() and t.exception() is None for t in tickets)
    s.close(1)


def test_coalesced_update_keeps_older_files_and_props(tmp_path: Path) -> None:
    f = tmp_path / "plot.png"
    f.write_bytes(b"png")
    c = StandIn(known={"x"}, gate=threading.Event())
    s = make(c)
    s.update("x", "zero")  # on the wire; the next two wait behind it and merge
    assert c.entered.wait(5)
    s.update("x", "one", files=[f], props={"a": 1})
    s.update("x", "two")
    c.gate.set()
    assert s.flush(5)
    name, kw = c.calls[-1]
    assert (name, kw["message"], kw["files"], kw["props"]) == (
        "send_update",
        "two",
        [str(f)],
        {"a": 1},
    )
    assert len(c.calls) == 2
    s.close(1)


def test_updates_of_different_ids_do_not_coalesce() -> None:
    c = StandIn(known={"a", "b"}, gate=threading.Event())
    s = make(c)
    s.update("a", "a-first")  # on the wire (each id is a lane of its own here)
    s.update("b", "b-first")
    eventually(lambda: s.pending() == 2 and len(s._inflight) == 2)
    for i in range(3):
        s.update("a", f"a{i}")
        s.update("b", f"b{i}")
    c.gate.set()
    assert s.flush(5)
    sent = [kw["message"] for _, kw in c.calls]
    assert sorted(sent) == ["a-first", "a2", "b-first", "b2"]
    assert sent.index("a-first") < sent.index("a2") and sent.index("b-first") < sent.index("b2")
    s.close(1)


def test_update_after_its_post_is_queued_waits_for_the_post() -> None:
    c = StandIn(gate=threading.Event())
    s = make(c)
    s.post("first", channel="alerts")
    assert c.entered.wait(5)
    s.post("0%", channel="alerts", id="bar")
    for i in range(1, 11):
        s.update("bar", f"{i * 10}%")
    c.gate.set()
    assert s.flush(5)
    assert [(n, kw["message"]) for n, kw in c.calls] == [
        ("send", "first"),
        ("send", "0%"),
        ("send_update", "100%"),
    ]
    s.close(1)


# ---------------------------------------------------------------- replies


def test_reply_to_is_resolved_when_sent() -> None:
    c = StandIn(gate=threading.Event())
    s = make(c)
    s.post("root", channel="alerts", id="job")
    t = s.post("child", reply_to="job")  # "job" is not known to the client yet
    c.gate.set()
    assert s.flush(5)
    assert t.exception(1) is None
    assert [n for n, _ in c.calls] == ["send", "reply"]
    assert c.calls[1][1]["id"] == "job" and c.calls[1][1]["pending_post_id"]
    s.close(1)


def test_reply_to_a_failed_message_fails_without_a_request() -> None:
    c = StandIn(fail=[NotFoundError("user 'nobody' not found", status_code=404)])
    s = make(c)
    with pytest.warns(MattermostNotifyWarning) as rec:
        s.post("root", user="nobody", id="job")
        t = s.post("child", reply_to="job")
        u = s.update("job", "edited")
        assert s.flush(5)
    assert isinstance(t.exception(1), MessageError) and "'job'" in str(t.exception())
    assert isinstance(u.exception(1), MessageError)
    assert [n for n, _ in c.calls] == ["send"]
    # one warning: the message that failed; its reply and edit fail quietly (tickets say why)
    assert len(rec) == 1 and "nobody" in str(rec[0].message)
    s.close(1)


# ---------------------------------------------------------------- failures


@pytest.mark.parametrize(
    "exc",
    [
        NetworkError("connection refused by 127.0.0.1:9"),
        ServerError("503 from the server", status_code=503),
        RateLimitedError("429", retry_after=0.01, status_code=429),
        ConnectionResetError("reset"),
    ],
    ids=["network", "5xx", "429", "oserror"],
)
def test_transient_failures_are_retried_with_the_same_pending_post_id(exc: Exception) -> None:
    c = StandIn(fail=[exc, exc, exc])
    s = make(c)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MattermostNotifyWarning)  # no warning for a retry
        a = s.post("a", channel="alerts")
        b = s.post("b", channel="alerts")
        assert s.flush(10)
    sends = [kw for _, kw in c.calls]
    assert [k["message"] for k in sends] == ["a"] * 4 + ["b"]
    assert len({k["pending_post_id"] for k in sends[:4]}) == 1
    assert a.result(1) is not None and b.result(1) is not None
    s.close(1)


def test_permanent_failure_is_a_warning_and_the_queue_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="mattermost_notify")
    c = StandIn(fail=[NotFoundError("user 'ghost' not found on http://x", status_code=404)])
    s = make(c)
    with pytest.warns(MattermostNotifyWarning, match="ghost"):
        bad = s.post("hello", user="ghost")
        good = s.post("next", channel="alerts")
        assert s.flush(5)
    assert isinstance(bad.exception(1), NotFoundError)
    assert bad.result(0) is None
    assert good.result(1) is not None
    # the log keeps it at INFO: on a console without logging set up it is shown once,
    # as the warning, not twice
    assert any("ghost" in r.getMessage() for r in caplog.records if r.levelname == "INFO")
    assert not any(r.levelname == "WARNING" for r in caplog.records)
    assert s.failed == 1 and s.delivered == 1
    assert spool_files(Path(os.environ["MATTERMOST_NOTIFY_DATA_DIR"])) == []
    s.close(1)


def test_warnings_as_errors_do_not_kill_the_worker() -> None:
    c = StandIn(fail=[MessageError("id 'x' reused for another target")])
    s = make(c)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t1 = s.post("one", channel="alerts")
        t2 = s.post("two", channel="alerts")
        assert s.flush(5)
    assert isinstance(t1.exception(1), MessageError)
    assert t2.result(1) is not None
    s.close(1)


def test_a_failing_done_callback_is_contained() -> None:
    c = StandIn()
    s = make(c)
    t = s.post("x")
    t.add_done_callback(lambda _t: 1 / 0)
    t2 = s.post("y")
    assert s.flush(5) and t2.result(1) is not None
    got: list[Ticket] = []
    t.add_done_callback(got.append)  # already done: called at once
    assert got == [t]
    s.close(1)


# ---------------------------------------------------------------- invalid calls


@pytest.mark.parametrize(
    ("kwargs", "exc", "names"),
    [
        ({"message": 42}, MessageError, "int"),
        ({"message": None}, MessageError, "NoneType"),
        ({"message": b"bytes"}, MessageError, "bytes"),
        ({"message": ""}, MessageError, "empty"),
        ({"message": "  \n"}, MessageError, "empty"),
        ({"message": "m", "user": "alice", "channel": "alerts"}, MessageError, "alice"),
        ({"message": "m", "reply_to": "x", "channel": "alerts"}, MessageError, "'x'"),
        ({"message": "m", "reply_to": "x", "id": "y"}, MessageError, "id"),
        ({"message": "m", "id": ""}, MessageError, "id"),
        ({"message": "m", "id": 7}, MessageError, "id"),
        ({"message": "m", "files": "/does/not/exist.png"}, FileError, "/does/not/exist.png"),
        ({"message": "m", "files": ["/"]}, FileError, "is a directory"),
        ({"message": "m", "files": [3]}, FileError, "int"),
        ({"message": "m", "files": 3}, FileError, "int"),
        ({"message": "m", "props": [1]}, MessageError, "props"),
    ],
)
def test_invalid_calls_raise_at_once_and_queue_nothing(
    kwargs: dict[str, Any], exc: type[Exception], names: str, data_dir: Path
) -> None:
    c = StandIn()
    s = make(c)
    message = kwargs.pop("message")
    with pytest.raises(exc, match=names.replace("(", r"\(")):
        s.post(message, **kwargs)
    assert s.pending() == 0 and spool_files(data_dir) == []
    assert s.flush(1) and c.calls == []
    s.close(1)


@pytest.mark.parametrize(
    ("args", "exc", "names"),
    [
        (("", "m"), MessageError, "id"),
        ((None, "m"), MessageError, "id"),
        (("x", 5), MessageError, "int"),
    ],
)
def test_invalid_updates_raise_at_once(
    args: tuple[Any, Any], exc: type[Exception], names: str
) -> None:
    s = make(StandIn())
    with pytest.raises(exc, match=names):
        s.update(*args)
    assert s.pending() == 0
    s.close(1)


# ---------------------------------------------------------------- the outbox


def test_entries_are_private_json_without_the_token(data_dir: Path) -> None:
    c = StandIn(gate=threading.Event(), known={"bar"})
    s = make(c)
    for i in range(5):
        s.post(f"m{i}", channel="alerts")
    s.update("bar", "50%")
    assert c.calls == []  # the client is held: all six wait, and are written to disk
    eventually(lambda: len(spool_files(data_dir)) == 6)
    files = spool_files(data_dir)
    assert stat.S_IMODE((data_dir / "outbox").stat().st_mode) == 0o700
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
        entry = outbox.entry_from_json(f.read_bytes())
        assert entry.server_url == URL
        assert "token" not in f.read_text()
    c.gate.set()
    assert s.flush(5)
    assert spool_files(data_dir) == []
    s.close(1)
    assert list((data_dir / "outbox").iterdir()) == []  # the empty spool is removed


def test_undelivered_messages_are_adopted_by_the_next_sender(data_dir: Path) -> None:
    down = StandIn(fail=[NetworkError("down")] * 1000)
    s1 = make(down)
    for i in range(20):
        s1.post(f"m{i}", channel="alerts" if i % 2 else None, id="x" if i == 0 else None)
    s1.update("x", "late")  # waits behind its message m0
    assert not s1.close(0.2)  # the server is away: nothing delivered
    left = outbox.list_entries()
    assert len(left) == 21 and not any(e.active for e in left)
    assert [e.message for e in left] == [f"m{i}" for i in range(20)] + ["late"]
    ppids = [e.pending_post_id for e in left[:20]]

    up = StandIn(known={"x"})
    s2 = make(up)  # adopts at creation
    assert s2.flush(10)
    sent = [kw["message"] for _, kw in up.calls]
    # each target in its order (targets in parallel); the update after its message
    assert [m for m in sent if m != "late" and int(m[1:]) % 2] == [f"m{i}" for i in range(1, 20, 2)]
    assert [m for m in sent if m != "late" and not int(m[1:]) % 2] == [
        f"m{i}" for i in range(0, 20, 2)
    ]
    assert sent.index("late") > sent.index("m0")
    by_message = {kw["message"]: kw.get("pending_post_id") for _, kw in up.calls}
    assert [by_message[f"m{i}"] for i in range(20)] == ppids
    assert outbox.list_entries() == []
    s2.close(1)


def test_a_live_senders_entries_are_not_adopted(data_dir: Path) -> None:
    c1 = StandIn(gate=threading.Event())
    s1 = make(c1)
    s1.post("mine", channel="alerts")
    assert c1.entered.wait(5)
    s1.post("mine too", channel="alerts")
    eventually(lambda: len(outbox.list_entries()) == 2)
    c2 = StandIn()
    s2 = make(c2)
    assert s2.resume_outbox() == []
    assert all(e.active for e in outbox.list_entries())
    assert outbox.drop_entries() == 0  # never drops a live process's messages
    c1.gate.set()
    assert s1.flush(5)
    assert c2.calls == []
    s1.close(1)
    s2.close(1)


def test_entries_for_another_server_stay(data_dir: Path) -> None:
    s1 = make(StandIn(url="http://other.example:8065", fail=[NetworkError("down")] * 100))
    s1.post("for the other server", channel="alerts")
    s1.close(0.1)
    c2 = StandIn()
    s2 = make(c2)
    assert s2.flush(2) and c2.calls == []
    assert [e.server_url for e in outbox.list_entries()] == ["http://other.example:8065"]
    assert outbox.drop_entries() == 1
    assert outbox.list_entries() == []
    s2.close(1)


def test_drop_by_id_prefix(data_dir: Path) -> None:
    s1 = make(StandIn(fail=[NetworkError("down")] * 100))
    for i in range(3):
        s1.post(f"m{i}", channel="alerts")
    s1.close(0.1)
    entries = outbox.list_entries()
    assert outbox.drop_entries([entries[1].entry_id[:30]]) == 1
    assert [e.message for e in outbox.list_entries()] == ["m0", "m2"]
    assert outbox.drop_entries(["no-such-entry"]) == 0


def test_invalid_entry_files_are_set_aside_not_delivered(data_dir: Path) -> None:
    s1 = make(StandIn(fail=[NetworkError("down")] * 100))
    s1.post("good", channel="alerts")
    s1.close(0.1)
    [good] = spool_files(data_dir)
    spool = good.parent
    bad = {
        "00000000000000000001-a.json": b'{"version": 1, "kind": "post"',  # truncated
        "00000000000000000002-b.json": b"\x80\x04\x95pickle",  # not JSON
        "00000000000000000003-c.json": json.dumps(
            {**json.loads(good.read_text()), "version": 2}
        ).encode(),  # future version
    }
    for name, data in bad.items():
        (spool / name).write_bytes(data)
        os.chmod(spool / name, 0o600)
    assert [e.message for e in outbox.list_entries()] == ["good"]
    c = StandIn()
    s2 = make(c)
    assert s2.flush(5)
    assert [kw["message"] for _, kw in c.calls] == ["good"]
    s2.close(1)


@pytest.mark.parametrize(
    ("mutate", "names"),
    [
        (lambda e: e.update(token="secret"), "token"),
        (lambda e: e.update(version=2), "version 2"),
        (lambda e: e.update(version=True), "version"),
        (lambda e: e.update(kind="delete"), "delete"),
        (lambda e: e.pop("server_url"), "server_url"),
        (lambda e: e.update(server_url="file:///etc/passwd"), "server_url"),
        (lambda e: e.update(message=3), "message"),
        (lambda e: e.update(files="/etc/passwd"), "files"),
        (lambda e: e.update(files=[1]), "files"),
        (lambda e: e.update(props="x"), "props"),
        (lambda e: e.pop("pending_post_id"), "pending_post_id"),
        (lambda e: e.update(user="a", channel="b"), "both"),
        (lambda e: e.update(kind="update", id=None), "'id'"),
        (lambda e: e.update(kind="reply"), "reply_to"),
        (lambda e: e.update(attempts="1"), "attempts"),
    ],
)
def test_entry_schema_refuses(mutate: Any, names: str) -> None:
    entry = {
        "version": 1,
        "kind": "post",
        "server_url": URL,
        "created_at": 1.0,
        "message": "m",
        "channel": "alerts",
        "pending_post_id": "abc",
        "attempts": 0,
    }
    outbox.validate_entry(dict(entry))
    mutate(entry)
    with pytest.raises(outbox.InvalidEntry, match=names):
        outbox.validate_entry(entry)


def test_an_entry_readable_by_others_warns(data_dir: Path) -> None:
    s1 = make(StandIn(fail=[NetworkError("down")] * 100))
    s1.post("m", channel="alerts")
    s1.close(0.1)
    [f] = spool_files(data_dir)
    os.chmod(f, 0o644)
    with pytest.warns(MattermostNotifyWarning, match="readable by other users"):
        outbox.list_entries()


def test_after_close_at_exit_a_late_message_is_still_delivered(data_dir: Path) -> None:
    # At interpreter exit (atexit has closed the sender) a message from an atexit handler
    # that runs later is delivered within what is left of the exit budget.
    import mattermost_notify.sender as sender_mod

    c = StandIn()
    s = make(c)
    s.close(1)
    sender_mod._exiting = True
    sender_mod._exit_deadline = time.monotonic() + 2.0
    try:
        t = s.post("late", channel="alerts")
    finally:
        sender_mod._exiting = False
    assert t.done() and [kw["message"] for _, kw in c.calls] == ["late"]
    assert outbox.list_entries() == []


def test_after_close_at_exit_an_undeliverable_message_stays_in_the_outbox(
    data_dir: Path,
) -> None:
    import mattermost_notify.sender as sender_mod

    c = StandIn(gate=threading.Event())  # the server never answers within the budget
    s = make(c)
    s.close(1)
    sender_mod._exiting = True
    sender_mod._exit_deadline = time.monotonic() + 0.3
    try:
        t = s.post("late", channel="alerts")
    finally:
        sender_mod._exiting = False
    assert not t.done()
    assert [e.message for e in outbox.list_entries()] == ["late"]
    c.gate.set()


# ---------------------------------------------------------------- exit


EXIT_SCRIPT = textwrap.dedent(
    """
    import sys, time, threading
    sys.path.insert(0, {tests!r})
    from test_delivery_sender_unit import StandIn
    from mattermost_notify.sender import BackgroundSender

    class Slow(StandIn):
        def _call(self, name, **kw):
            time.sleep({delay})
            with open({log!r}, "a") as fh:
                fh.write(kw["message"] + "\\n")
            return super()._call(name, **kw)

    s = BackgroundSender(Slow(), exit_timeout={exit_timeout})
    for i in range(5):
        s.post(f"m{{i}}", channel="alerts")
    print("queued", flush=True)
    """
)


@pytest.mark.parametrize(
    ("delay", "exit_timeout", "delivered", "left"),
    [(0.1, 5.0, 5, 0), (60.0, 0.5, 0, 5)],
    ids=["flushed-at-exit", "bounded-exit"],
)
def test_exit_flushes_with_a_bound(
    tmp_path: Path,
    data_dir: Path,
    delay: float,
    exit_timeout: float,
    delivered: int,
    left: int,
) -> None:
    log = tmp_path / "log.txt"
    script = EXIT_SCRIPT.format(
        tests=str(Path(__file__).parent),
        delay=delay,
        log=str(log),
        exit_timeout=exit_timeout,
    )
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    assert elapsed < 30  # bounded: a stuck server does not hold the interpreter
    lines = log.read_text().split() if log.exists() else []
    # a call in progress at exit is not counted as delivered
    assert lines[:delivered] == [f"m{i}" for i in range(delivered)]
    assert len(outbox.list_entries()) == left
