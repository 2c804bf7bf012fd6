"""The sandbox HTTP server: a subset of Mattermost's REST API v4 on a local port."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import selectors
import signal
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ._store import Obj, Store, new_id, now_ms
from .api import PENDING_TTL, Api
from .faults import Fault, Faults
from .http import (
    CHUNK,
    MAX_POST_RUNES,
    ApiError,
    Body,
    Ctx,
    MiB,
    Response,
    error_response,
    parse_token,
)
from .ratelimit import RateLimiter
from .view import RequestLog, RequestRecord, View

log = logging.getLogger("mattermost_notify.sandbox")

ResponseObserver = Callable[[RequestRecord, str, bytes], None]
_observers: list[ResponseObserver] = []


def add_response_observer(callback: ResponseObserver) -> Callable[[], None]:
    """Call ``callback(record, content_type, body)`` after every answered API request.

    Applies to every sandbox in this process (the project's tests use it to check
    every JSON answer against the OpenAPI document). Returns a function that
    removes the observer. Downloads are passed with an empty body.
    """
    _observers.append(callback)

    def remove() -> None:
        with contextlib.suppress(ValueError):
            _observers.remove(callback)

    return remove


_DROPPED = Response(0, content_type="")  # what the log says of a connection closed unanswered


_ASYNC_SIGNALS = {
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM")
    if hasattr(signal, name)
}


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    sandbox: Sandbox

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        # shutdown() wakes the serving loop through this pair at once (the standard loop
        # sees a shutdown only at its next poll: every stop took a poll interval)
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._stopping = False
        self._stopped = threading.Event()
        super().__init__(address, _Handler)

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self, selectors.EVENT_READ)
                selector.register(self._wake_reader, selectors.EVENT_READ)
                while not self._stopping:
                    ready = selector.select(poll_interval)
                    if self._stopping:
                        break
                    if any(key.fileobj is self for key, _ in ready):
                        self._handle_request_noblock()
                    self.service_actions()
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        self._stopping = True
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"\0")
        self._stopped.wait()

    def server_close(self) -> None:
        super().server_close()
        self._wake_reader.close()
        self._wake_writer.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "MattermostSandbox"
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.sockets_lock:
            self.server.open_sockets.add(self.connection)

    def finish(self) -> None:
        with self.server.sockets_lock:
            self.server.open_sockets.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        # never the request line: its query string may carry an access_token
        # (an unparsable request, say a TLS handshake, has no command or path yet)
        path = urlsplit(getattr(self, "path", None) or "").path
        if path.startswith("/hooks/"):  # an incoming webhook's key is its credential
            path = "/hooks/***"
        log.debug("%s %s %s", self.address_string(), self.command, path)

    def do_GET(self) -> None:
        try:
            self.server.sandbox._handle(self)
        except (ConnectionError, TimeoutError, OSError):
            self.close_connection = True  # the client went away mid-request

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    # ---- writing -------------------------------------------------------
    def write_response(self, response: Response, extra_headers: dict[str, str]) -> None:
        self.send_response(response.status)
        length = response.file_path.stat().st_size if response.file_path else len(response.body)
        headers = {**extra_headers, **response.headers}
        if response.content_type:
            headers["Content-Type"] = response.content_type
        headers["Content-Length"] = str(length)
        for name, value in headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return
        if response.file_path is not None:
            with response.file_path.open("rb") as fh:
                while True:
                    data = fh.read(CHUNK)
                    if not data:
                        break
                    self.wfile.write(data)
        elif response.body:
            self.wfile.write(response.body)

    def drop(self) -> None:
        """Close the connection without answering."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class Sandbox:
    """A local Mattermost server speaking a subset of REST API v4.

    ``with Sandbox() as sb:`` starts it on a free port of 127.0.0.1; ``sb.url``,
    ``sb.token``, ``sb.team`` and ``sb.bot_username`` are what a client needs.
    ``sb.view`` reads the state, ``sb.faults`` injects failures; ``stop()`` then
    ``start()`` restarts on the same port with the same state.
    """

    def __init__(
        self,
        port: int = 0,
        token: str | None = None,
        team: str = "sandbox",
        bot_username: str = "notify-bot",
        users: Iterable[str] = ("alice", "bob"),
        channels: Iterable[str] = ("town-square", "alerts"),
        private_channels: Iterable[str] = ("bot-private",),
        db: str | Path | None = None,
        rate_limit: bool = False,
        max_file_size: int = 100 * MiB,
        post_edit_time_limit: int | None = None,
        version: str = "10.6.0",
        *,
        max_post_size: int = MAX_POST_RUNES,
        restrict_direct_message: str = "any",
        collapsed_threads: str = "always_on",
        host: str = "127.0.0.1",
        rate_limit_per_sec: float = 10.0,
        rate_limit_burst: int = 100,
        rate_limit_by_user: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.version = version
        self.build_number = "0"
        self.max_file_size = int(max_file_size)
        self.post_edit_time_limit = post_edit_time_limit
        #: ServiceSettings.MaxPostSize in runes (4000 on servers with an old PostgreSQL column)
        self.max_post_size = int(max_post_size)
        if restrict_direct_message not in ("any", "team"):
            raise ValueError(
                f"restrict_direct_message must be 'any' or 'team', not {restrict_direct_message!r}"
            )
        #: TeamSettings.RestrictDirectMessage: "any", or "team" (DMs only between users
        #: who share a team; see ``dm_restriction_covers_bots``)
        self.restrict_direct_message = restrict_direct_message
        #: ServiceSettings.CollapsedThreads, published only (the sandbox sends no notifications)
        self.collapsed_threads = collapsed_threads
        #: seconds a pending_post_id is remembered (the server's 30 s; tests may shorten it)
        self.pending_post_id_ttl = PENDING_TTL
        self.faults = Faults()
        self.rate_limiter = (
            RateLimiter(rate_limit_per_sec, rate_limit_burst) if rate_limit else None
        )
        #: RateLimitSettings.VaryByUser: one bucket per token instead of per address
        self.rate_limit_by_user = rate_limit_by_user
        self._store = Store(db)
        self._finalizer = weakref.finalize(self, self._store.close)
        self._seed(token, team, bot_username, list(users), list(channels), list(private_channels))
        self.build_hash = hashlib.sha1(  # noqa: S324 - not security, a config fingerprint
            f"{version}{self.max_file_size}{post_edit_time_limit}{max_post_size}"
            f"{restrict_direct_message}{collapsed_threads}".encode()
        ).hexdigest()
        self.version_id = f"{version}.{self.build_number}.{self.build_hash}.false"
        self._log = RequestLog()
        self.view = View(self._store, self._log, self.bot_user_id)
        self._api = Api(self._store, self)
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def dm_restriction_covers_bots(self) -> bool:
        """From 11.1 the bot is no longer exempt from RestrictDirectMessage = team, and
        posts, edits and uploads in existing DMs are checked too."""
        parts = re.findall(r"\d+", self.version)[:2]
        major_minor = tuple(int(p) for p in parts) + (0,) * (2 - len(parts))
        return major_minor >= (11, 1)

    # ---- fixture data --------------------------------------------------
    def _seed(
        self,
        token: str | None,
        team_name: str,
        bot_username: str,
        users: list[str],
        channels: list[str],
        private_channels: list[str],
    ) -> None:
        store = self._store
        with store.lock:
            if store.meta.get("seeded"):
                self.bot_user_id = store.meta["bot_user_id"]
                self.team = store.meta["team"]
                self.bot_username = store.users[self.bot_user_id]["username"]
                self.user_tokens = dict(store.meta["user_tokens"])
                if token is not None and token != store.meta["token"]:
                    store.tokens.pop(store.meta["token"], None)
                    store.tokens[token] = self.bot_user_id
                    store.meta["token"] = token
                    store.save_many([("meta", "token"), ("token", token)])
                self.token = store.meta["token"]
                self.webhook_key = store.meta["webhook_key"]
                return
            now = now_ms()
            bot = store.new_user(bot_username, is_bot=True, now=now)
            people = [store.new_user(name, now=now) for name in users]
            self.bot_user_id = bot["id"]
            self.bot_username = bot_username
            self.team = team_name
            self.token = token if token is not None else new_id()
            store.tokens[self.token] = bot["id"]
            self.user_tokens = {}
            for person in people:
                user_token = new_id()
                store.tokens[user_token] = person["id"]
                self.user_tokens[person["username"]] = user_token
            everyone = {bot["id"]} | {p["id"] for p in people}
            people_ids = {p["id"] for p in people}
            team: Obj = {
                "id": new_id(),
                "create_at": now,
                "update_at": now,
                "delete_at": 0,
                "display_name": team_name.replace("-", " ").title(),
                "name": team_name,
                "description": "",
                "email": f"admin@{team_name}.invalid",
                "type": "I",
                "company_name": "",
                "allowed_domains": "",
                "invite_id": new_id(),
                "allow_open_invite": False,
                "scheme_id": "",
                "group_constrained": False,
                "_members": sorted(everyone),
            }
            store.teams[team["id"]] = team
            creator = people[0]["id"] if people else bot["id"]

            def display(name: str) -> str:
                return name.replace("-", " ").replace("_", " ").title()

            # (name, type, members): the listed channels with the bot in them, then
            # "secret" (private) and "lobby" (public) that the bot is not a member of
            specs = [(name, "O", everyone) for name in channels]
            specs += [(name, "P", everyone) for name in private_channels]
            specs += [("secret", "P", people_ids), ("lobby", "O", people_ids)]
            seen: set[str] = set()
            first_channel = None
            for name, kind, members in specs:
                if name in seen:
                    continue
                seen.add(name)
                ch = store.new_channel(
                    team["id"],
                    name,
                    display(name),
                    kind,
                    members=members,
                    now=now,
                    creator_id=creator,
                )
                if kind == "O" and members is everyone and first_channel is None:
                    first_channel = ch
            hook_channel = first_channel or next(iter(store.channels.values()))
            self.webhook_key = self.create_webhook(hook_channel["name"], _save=False)
            store.meta.update(
                seeded=True,
                bot_user_id=bot["id"],
                team=team_name,
                token=self.token,
                user_tokens=self.user_tokens,
                webhook_key=self.webhook_key,
            )
            saves = [("meta", k) for k in store.meta]
            saves += [("user", u) for u in store.users] + [("token", t) for t in store.tokens]
            saves += [("team", t) for t in store.teams] + [("channel", c) for c in store.channels]
            saves += [("hook", h) for h in store.hooks]
            store.save_many(saves)

    def create_webhook(self, channel: str, *, locked: bool = False, _save: bool = True) -> str:
        """Create an incoming webhook posting (as the bot) to ``channel``; returns its key."""
        store = self._store
        with store.lock:
            target = store.channel_by_name(self._team_obj()["id"], channel)
            if target is None:
                raise KeyError(f"no channel {channel!r}")
            key = new_id()
            store.hooks[key] = {
                "id": key,
                "channel_id": target["id"],
                "user_id": self.bot_user_id,
                "team_id": target["team_id"],
                "channel_locked": locked,
                "display_name": "sandbox hook",
            }
            if _save:
                store.save("hook", key)
        return key

    @property
    def webhook_url(self) -> str:
        """URL of the seeded incoming webhook (posts to the first public channel)."""
        return f"{self.url}/hooks/{self.webhook_key}"

    def remove_from_team(self, username: str) -> None:
        """Take ``username`` (the bot too) out of the team and its channels, as an admin can.

        For trying what a client does when its bot was never added to the team.
        """
        store = self._store
        with store.lock:
            user = store.user_by_name(username)
            team = store.team_by_name(self.team)
            if user is None or team is None:
                raise KeyError(f"no user {username!r} in team {self.team!r}")
            changed = [("team", team["id"])]
            if user["id"] in team["_members"]:
                team["_members"].remove(user["id"])
            for ch in store.channels.values():
                if ch["team_id"] == team["id"] and user["id"] in ch["_members"]:
                    ch["_members"].remove(user["id"])
                    changed.append(("channel", ch["id"]))
            store.save_many(changed)

    # ---- admin changes (what an administrator does behind a client's back) ----
    def _team_obj(self) -> Obj:
        team = self._store.team_by_name(self.team)
        if team is None:
            raise KeyError(f"no team {self.team!r}")
        return team

    def archive_channel(self, name: str, *, permanent: bool = False) -> str:
        """Archive channel ``name`` of the team (``permanent``: delete it); returns its id.

        An archived channel is not found by name any more and refuses posts (400
        ``api.post.create_post.can_not_post_to_deleted.error``); a deleted one is gone
        (posts to its id get 403). Either way its name can be used again.
        """
        store = self._store
        with store.lock:
            team = self._team_obj()
            channel = store.channel_by_name(team["id"], name)
            if channel is None:
                raise KeyError(f"no channel {name!r} in team {self.team!r}")
            if permanent:
                store.delete("channel", channel["id"])
            else:
                channel["delete_at"] = channel["update_at"] = now_ms()
                channel["name"] = f"{name}--archived-{channel['id'][:8]}"
                store.save("channel", channel["id"])
            return str(channel["id"])

    def create_channel(self, name: str, *, private: bool = False, bot_member: bool = True) -> str:
        """Create channel ``name`` in the team (every user in it; the bot too unless
        ``bot_member=False``); returns the new id."""
        store = self._store
        with store.lock:
            team = self._team_obj()
            if store.channel_by_name(team["id"], name) is not None:
                raise ValueError(f"channel {name!r} exists in team {self.team!r}")
            members = {uid for uid in team["_members"] if bot_member or uid != self.bot_user_id}
            channel = store.new_channel(
                team["id"],
                name,
                name.replace("-", " ").title(),
                "P" if private else "O",
                members=members,
                now=now_ms(),
            )
            store.save("channel", channel["id"])
            return str(channel["id"])

    def rename_user(self, username: str, new_username: str) -> str:
        """Give user ``username`` the name ``new_username`` (its id stays); returns the id."""
        store = self._store
        with store.lock:
            user = store.user_by_name(username)
            if user is None:
                raise KeyError(f"no user {username!r}")
            if store.user_by_name(new_username) is not None:
                raise ValueError(f"user name {new_username!r} is taken")
            user["username"] = new_username
            user["update_at"] = now_ms()
            store.save("user", user["id"])
            return str(user["id"])

    def create_user(self, username: str) -> str:
        """A new user ``username`` in the team; returns its id."""
        store = self._store
        with store.lock:
            if store.user_by_name(username) is not None:
                raise ValueError(f"user name {username!r} is taken")
            team = self._team_obj()
            user = store.new_user(username, now=now_ms())
            team["_members"] = sorted({*team["_members"], user["id"]})
            store.save_many([("user", user["id"]), ("team", team["id"])])
            return str(user["id"])

    def user_token(self, username: str) -> str:
        """The access token of a seeded (non-bot) user, for tests acting as that user."""
        return self.user_tokens[username]

    # ---- life cycle ----------------------------------------------------
    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> Sandbox:
        """Start serving (on ``port``; after a stop, on the same port as before)."""
        if self._server is not None:
            return self
        if self._finalizer is None or not self._finalizer.alive:
            raise RuntimeError("this sandbox was closed")
        server = _HTTPServer((self.host, self.port), self)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"mattermost-sandbox:{self.port}",
            daemon=True,
        )
        # The server's threads (and the request threads it starts, which inherit the
        # mask) leave Ctrl-C and SIGTERM to the main thread: the process may pick any
        # thread that does not block a signal, and only the main thread acts on it.
        masked = hasattr(signal, "pthread_sigmask")
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, _ASYNC_SIGNALS) if masked else None
        try:
            self._thread.start()
        finally:
            if previous is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        return self

    def stop(self) -> None:
        """Stop serving and close open connections; the state is kept."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with server.sockets_lock:
            sockets = list(server.open_sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def close(self) -> None:
        """Stop and free the state (temporary files, database connection)."""
        self.stop()
        self._finalizer()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Sandbox {self.url} team={self.team!r} bot={self.bot_username!r} {state}>"

    # ---- request handling ----------------------------------------------
    def _handle(self, handler: _Handler) -> None:
        started = time.perf_counter()
        arrived = now_ms()
        request_id = new_id()
        split = urlsplit(handler.path)
        path = split.path
        method = handler.command
        body = Body(handler.rfile, handler.headers)
        is_api = path.startswith(("/api/", "/hooks/"))
        stalled = [False]

        def stall() -> None:
            if not stalled[0]:
                stalled[0] = True
                seconds = self.faults.stall_seconds(method, path)
                if seconds > 0:
                    time.sleep(seconds)

        ctx = Ctx(
            method,
            path,
            parse_qs(split.query, keep_blank_values=True),
            handler.headers,
            body,
            request_id,
            handler.client_address[0],
            stall,
        )
        fault: Fault | None = self.faults.choose(method, path) if is_api else None
        fault_name = ""
        extra: dict[str, str] = {}
        route = ""
        if fault is not None:
            fault_name = fault.mode if fault.mode != "status" else f"status:{fault.status}"
        if fault is not None and fault.mode == "drop_before":
            body.drain()
            # logged before hanging up, as an answer is: a client that saw the drop finds it
            self._record(ctx, route, fault_name, started, arrived, _DROPPED)
            handler.drop()
            return
        if fault is not None and fault.mode == "status":
            body.drain()
            response = self._fault_response(fault.status)
        elif is_api and self.rate_limiter is not None:
            header = ctx.headers.get("Authorization", "") if self.rate_limit_by_user else ""
            token = parse_token(header) if header else ""
            decision = self.rate_limiter.check(f"token:{token}" if token else ctx.client)
            headers = decision.headers()
            if token and not decision.limited:
                # as the real server with VaryByUser: the API handler's own per-user limiter
                # writes a second copy of each X-RateLimit-* header ("5, 5" once combined)
                headers = {
                    k: f"{v}, {v}" if k.startswith("X-RateLimit") else v for k, v in headers.items()
                }
            extra.update(headers)
            if decision.limited:
                body.drain()
                response = Response(
                    429, b"limit exceeded\n", "text/plain; charset=utf-8", api=False
                )
            else:
                response, route = self._run(ctx)
        elif is_api:
            response, route = self._run(ctx)
        else:
            response = self._web(ctx)
        if not body.done and not body.drain(limit=self.max_file_size + MiB):
            handler.close_connection = True
        if fault is not None and fault.mode == "drop_after":
            self._record(ctx, route, fault_name, started, arrived, _DROPPED)
            handler.drop()
            return
        if response.api:
            extra["X-Request-Id"] = request_id
            extra["X-Version-Id"] = self.version_id
            extra["X-Content-Type-Options"] = "nosniff"
            extra["Referrer-Policy"] = "no-referrer"
            if method == "GET":
                extra["Expires"] = "0"
        if is_api:  # logged before answering: a client that got its answer finds it in the log
            self._record(ctx, route, fault_name, started, arrived, response)
        try:
            handler.write_response(response, extra)
        except OSError:
            handler.close_connection = True

    def _run(self, ctx: Ctx) -> tuple[Response, str]:
        try:
            return self._api.dispatch(ctx)
        except ApiError as err:
            return error_response(err, ctx.request_id), self._api.route_template(
                ctx.method, ctx.path
            )
        except ConnectionError:
            raise
        except Exception:
            log.exception("sandbox: unexpected error in %s %s", ctx.method, ctx.path)
            internal = ApiError(500, "sandbox.internal.app_error")
            return error_response(internal, ctx.request_id), ""

    def _fault_response(self, status: int) -> Response:
        if status == 429:
            return Response(
                429,
                b"limit exceeded\n",
                "text/plain; charset=utf-8",
                {"Retry-After": "1"},
                api=False,
            )
        return error_response(ApiError(status, "sandbox.fault.injected"))

    def _record(
        self, ctx: Ctx, route: str, fault: str, started: float, arrived: int, answer: Response
    ) -> None:
        """Log the request (status 0: dropped unanswered) and tell the observers."""
        query = [f"{k}={v}" for k, vs in ctx.query.items() if k != "access_token" for v in vs]
        record = RequestRecord(
            request_id=ctx.request_id,
            time=arrived,
            method=ctx.method,
            path=ctx.path,
            query=urlsplit("?" + "&".join(query)).query,
            route=route,
            status=answer.status,
            user_id=str(ctx.user["id"]) if ctx.user else "",
            duration_ms=(time.perf_counter() - started) * 1000,
            fault=fault,
            content_type=answer.content_type,
        )
        self._log.append(record)
        for observer in list(_observers):
            try:
                observer(record, answer.content_type, answer.body)
            except Exception:
                log.exception("sandbox: response observer failed")

    # ---- the web page --------------------------------------------------
    def _web(self, ctx: Ctx) -> Response:
        from .web import render

        ctx.body.drain()
        return render(self._store, self.team, ctx.method, ctx.path, ctx.query)
