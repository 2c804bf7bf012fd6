"""The read-only web page at ``/``: channels and posts, refreshed automatically."""

from __future__ import annotations

import html
import re
from functools import lru_cache
from typing import TYPE_CHECKING

from .http import Response

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

    from ._store import Obj, Store

_PERMALINK = re.compile(r"^/(?P<team>[^/]+)/pl/(?P<post_id>[a-z0-9]{26})$")
_FILE = re.compile(r"^/_sandbox/files/(?P<file_id>[a-z0-9]{26})$")
REFRESH_SECONDS = 2

_STYLE = """
body{font-family:system-ui,sans-serif;margin:0;display:flex;color:#222}
nav{width:14rem;background:#1e325c;color:#fff;min-height:100vh;padding:1rem;box-sizing:border-box}
nav a{color:#ddd;display:block;text-decoration:none;padding:.15rem 0}
main{flex:1;padding:1rem 2rem;max-width:60rem}
section{margin-bottom:2rem}
.post{border-left:3px solid #ccd;padding:.3rem .8rem;margin:.6rem 0}
.post:target{background:#fff6d5}
.reply{margin-left:2rem;border-left-color:#9ab}
.meta{color:#667;font-size:.8rem}
.edited{color:#a60;font-size:.8rem}
.files a{margin-right:1rem}
.attachment{border-left:4px solid #888;padding:.2rem .6rem;margin:.3rem 0;background:#f6f6f8}
pre{background:#f3f3f3;padding:.5rem;overflow:auto}
"""


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    from markdown_it import MarkdownIt

    # "html": False escapes any raw HTML in messages.
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(
        ["table", "strikethrough"]
    )


def markdown_to_html(text: str) -> str:
    """Render a message as Markdown; raw HTML is shown escaped, never interpreted."""
    return str(_markdown().render(text))


def render(
    store: Store, team: str, method: str, path: str, query: dict[str, list[str]]
) -> Response:
    """Answer a request outside ``/api`` and ``/hooks``."""
    if method not in ("GET", "HEAD"):
        return Response(405, b"method not allowed\n", "text/plain", api=False)
    if path == "/":
        page = _page(store, team)
        return Response(
            200,
            page.encode(),
            "text/html; charset=utf-8",
            api=False,
            headers={"Cache-Control": "no-store"},
        )
    found = _PERMALINK.match(path)
    if found and found["team"] == team:
        post_id = found["post_id"]
        with store.lock:
            known = post_id in store.posts
        if known:
            return Response(302, b"", "", {"Location": f"/#post-{post_id}"}, api=False)
    found = _FILE.match(path)
    if found:
        with store.lock:
            info = store.files.get(found["file_id"])
        if info is not None and not info["delete_at"]:
            name = info["name"].replace('"', "")
            return Response(
                200,
                content_type=info["mime_type"],
                api=False,
                headers={"Content-Disposition": f'inline;filename="{name}"'},
                file_path=store.files_dir / info["id"],
            )
    return Response(404, b"<h1>Not found</h1>", "text/html; charset=utf-8", api=False)


def _time(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def _attachments(props: Obj) -> str:
    items = props.get("attachments")
    if not isinstance(items, list):
        return ""
    out = []
    for item in items:
        if not isinstance(item, dict):
            continue
        color = str(item.get("color", "#888"))
        if not re.fullmatch(r"#[0-9a-fA-F]{3,6}|good|warning|danger", color):
            color = "#888"
        color = {"good": "#2e7d32", "warning": "#ed6c02", "danger": "#c62828"}.get(color, color)
        parts = []
        for key in ("pretext", "title", "text"):
            if item.get(key):
                parts.append(markdown_to_html(str(item[key])))
        for fld in item.get("fields") or []:
            if isinstance(fld, dict):
                parts.append(
                    f"<b>{html.escape(str(fld.get('title', '')))}</b>: "
                    + markdown_to_html(str(fld.get("value", "")))
                )
        out.append(
            f'<div class="attachment" style="border-left-color:{color}">'
            + "".join(parts)
            + "</div>"
        )
    return "".join(out)


def _post_html(store: Store, team: str, post: Obj, css: str) -> str:
    user = store.users.get(post["user_id"], {})
    name = html.escape(user.get("username", "?"))
    edited = ""
    if post["edit_at"]:
        count = len(post.get("_edits", []))
        edited = f' <span class="edited" title="{count} earlier version(s)">(edited)</span>'
    files = []
    for file_id in post["file_ids"]:
        info = store.files.get(file_id)
        if info is not None:
            files.append(
                f'<a href="/_sandbox/files/{file_id}">{html.escape(info["name"])}</a>'
                f' <span class="meta">({info["size"]} bytes)</span>'
            )
    files_html = f'<div class="files">{"".join(files)}</div>' if files else ""
    link = f"/{html.escape(team)}/pl/{post['id']}"
    return (
        f'<div class="post {css}" id="post-{post["id"]}">'
        f'<div class="meta"><b>{name}</b> · <a href="{link}">{_time(post["create_at"])}</a>'
        f"{edited}</div>"
        f"{markdown_to_html(post['message'])}{_attachments(post['props'])}{files_html}</div>"
    )


def _channel_title(store: Store, channel: Obj) -> str:
    if channel["type"] == "D":
        names = [store.users[uid]["username"] for uid in channel["_members"] if uid in store.users]
        return "@ " + ", ".join(sorted(names))
    icon = "🔒 " if channel["type"] == "P" else "# "
    return icon + str(channel["display_name"] or channel["name"])


def _page(store: Store, team_name: str) -> str:
    with store.lock:
        channels = sorted(store.channels.values(), key=lambda c: (c["type"] == "D", c["name"]))
        by_channel: dict[str, list[Obj]] = {}
        for post in sorted(store.posts.values(), key=lambda p: (p["create_at"], p["_seq"])):
            if not post["delete_at"]:
                by_channel.setdefault(post["channel_id"], []).append(post)
        nav = []
        sections = []
        for channel in channels:
            posts = by_channel.get(channel["id"], [])
            if channel["type"] == "D" and not posts:
                continue
            title = html.escape(_channel_title(store, channel))
            nav.append(f'<a href="#ch-{channel["id"]}">{title} ({len(posts)})</a>')
            body: list[str] = []
            for post in posts:
                if post["root_id"]:
                    continue
                body.append(_post_html(store, team_name, post, "root"))
                for reply_id in post.get("_replies", []):
                    reply = store.posts.get(reply_id)
                    if reply is not None and not reply["delete_at"]:
                        body.append(_post_html(store, team_name, reply, "reply"))
            if not body:
                body.append('<p class="meta">No posts yet.</p>')
            sections.append(
                f'<section id="ch-{channel["id"]}"><h2>{title}</h2>' + "".join(body) + "</section>"
            )
    team = html.escape(team_name)
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<meta http-equiv='refresh' content='{REFRESH_SECONDS}'>"
        f"<title>Mattermost sandbox · {team}</title><style>{_STYLE}</style></head><body>"
        f"<nav><h3>{team}</h3>{''.join(nav)}</nav>"
        f"<main><h1>Mattermost sandbox</h1>"
        f"<p class='meta'>Read-only view, refreshed every {REFRESH_SECONDS} s.</p>"
        f"{''.join(sections)}</main></body></html>"
    )
