"""ipywidgets for notebooks: a setup form and a status line for a sent message.

:class:`SetupForm` takes the server URL, team and token, tests them
(``Notify.test_connection``) and saves them to the user's config file (mode 0600).
The token field is cleared as soon as the token is used (tested or saved): the form keeps
it in a private attribute, so it is not in the widget state a saved notebook may keep.

:class:`MessageStatus` shows the state of a notification (queued, sent with a link,
failed) and when it last changed; it follows the core sender's tickets.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as w

if TYPE_CHECKING:
    from ..sender import Ticket

__all__ = ["MessageStatus", "SetupForm"]


def _status_html(ok: bool | None, text: str) -> str:
    icon = {True: "&#x2705;", False: "&#x274C;", None: "&#x23F3;"}[ok]
    return f"{icon} {html.escape(text)}"


class SetupForm:
    """URL, team and token; "Test connection" and "Save". Callbacks never raise."""

    def __init__(self, *, config_path: str | Path | None = None) -> None:
        from ..config import user_config_dir

        self.config_path = Path(config_path) if config_path else user_config_dir() / "config.toml"
        self.url = w.Text(description="Server URL", placeholder="https://chat.example.org")
        self.team = w.Text(description="Team", placeholder="your team's name")
        # sent by the browser only when the field is left (not per keystroke), then moved
        # out of the synced value at once: a saved notebook's widget state never has it
        self.token = w.Password(
            description="Token", placeholder="a bot's access token", continuous_update=False
        )
        self._token = ""  # the token once entered: kept here, not in the synced widget value
        self.token.observe(lambda _change: self._take_token(), names="value")
        self.test_button = w.Button(description="Test connection", icon="plug")
        self.save_button = w.Button(description="Save", icon="save", button_style="primary")
        self.status = w.HTML(value="")
        self.test_button.on_click(self.test)
        self.save_button.on_click(self.save)
        self.widget = w.VBox(
            [
                w.HTML("<b>mattermost-notify setup</b>"),
                self.url,
                self.team,
                self.token,
                w.HBox([self.test_button, self.save_button]),
                self.status,
            ]
        )

    def __repr__(self) -> str:  # nbval compares text/plain: no values in it
        return f"<SetupForm config_path={str(self.config_path)!r}>"

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def _take_token(self) -> str:
        """Move an entered token out of the widget (whose value a saved notebook may keep)."""
        typed = self.token.value.strip()
        if typed:
            self._token = typed
            self.token.value = ""
            self.token.placeholder = "entered (hidden); type again to replace it"
        return self._token

    def _values(self) -> tuple[str, str, str] | None:
        url, team, token = self.url.value.strip(), self.team.value.strip(), self._take_token()
        missing = [n for n, v in (("URL", url), ("token", token)) if not v]
        if missing:
            self.status.value = _status_html(False, f"missing: {', '.join(missing)}")
            return None
        return url, team, token

    def test(self, _button: Any = None) -> bool:
        """Check the entered settings against the server; show the result."""
        values = self._values()
        if values is None:
            return False
        url, team, token = values
        self.test_button.disabled = True
        self.status.value = _status_html(None, "testing…")
        try:
            from ..client import Notify

            with Notify(token, url, team or None) as client:
                report = client.test_connection()
            if report.ok:
                bot = f" as {report.bot_name}" if report.bot_name else ""
                text = f"connected to {url}{bot}"
            else:
                text = f"connection failed: {report.error or 'see mattermost-notify test'}"
            self.status.value = _status_html(report.ok, _scrub(text, token))
            return report.ok
        except Exception as exc:
            self.status.value = _status_html(False, _scrub(f"{type(exc).__name__}: {exc}", token))
            return False
        finally:
            self.test_button.disabled = False

    def save(self, _button: Any = None) -> Path | None:
        """Write the settings to the config file (0600), clear the token field."""
        values = self._values()
        if values is None:
            return None
        url, team, token = values
        try:
            from ..config import Settings, write_config

            path = write_config(
                self.config_path, Settings(url=url, token=token, team_name=team or None)
            )
        except Exception as exc:
            self.status.value = _status_html(False, _scrub(f"not saved: {exc}", token))
            return None
        finally:
            self._token = ""  # saved (or refused): the form forgets it
            self.token.value = ""
            self.token.placeholder = "a bot's access token"
        self.status.value = _status_html(True, f"saved to {path}")
        return Path(path)


def _scrub(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text


class MessageStatus:
    """A one-line status of a notification: state, link and time of the last change."""

    def __init__(self, message_id: str) -> None:
        self.message_id = message_id
        self.state = "queued"
        self.permalink: str | None = None
        self.updated_at = datetime.now(UTC)
        self.widget = w.HTML()
        self._render()

    def __repr__(self) -> str:
        return f"<MessageStatus {self.message_id} {self.state}>"

    def _render(self) -> None:
        state = self.state.split(":", 1)[0]
        if state in ("queued", "running"):
            ok: bool | None = None  # on its way, or the cell still runs
        else:  # delivered: the cell's outcome (ok, sent) or a failure
            ok = state not in ("failed", "interrupted")
        link = (
            f' <a href="{html.escape(self.permalink)}" target="_blank">open</a>'
            if self.permalink
            else ""
        )
        when = self.updated_at.astimezone().strftime("%H:%M:%S")
        self.widget.value = (
            f"{_status_html(ok, f'{self.message_id}: {self.state}')}{link} "
            f"<small>(updated {when})</small>"
        )

    def set(self, state: str, permalink: str | None = None) -> None:
        self.state = state
        if permalink:
            self.permalink = permalink
        self.updated_at = datetime.now(UTC)
        self._render()

    def watch(self, ticket: Ticket, state: str) -> None:
        """Show ``state`` (with the link) once ``ticket`` is delivered, or its failure."""

        def done(t: Ticket) -> None:
            exc, sent = t.exception(0), t.result(0)
            if exc is not None:
                self.set(f"failed: {exc}")
            else:
                self.set(state, sent.permalink if sent is not None else None)

        ticket.add_done_callback(done)
