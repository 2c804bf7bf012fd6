"""The ipywidgets, without a browser: set values, click, read the widget state."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ipywidgets")

from mattermost_notify.ipython.widgets import MessageStatus, SetupForm

pytestmark = pytest.mark.timeout(60)


def _all_state(widget: Any) -> str:
    """Every model state of the widget tree, as the frontend (and a saved notebook) sees it."""
    states = []
    stack = [widget]
    while stack:
        w = stack.pop()
        states.append(w.get_state())
        stack.extend(getattr(w, "children", ()))
    return json.dumps(states, default=str)


def test_setup_form_tests_saves_and_forgets_the_token(
    mattermost_server: Any, mattermost_env: Any, tmp_path: Path
) -> None:
    sb = mattermost_server
    path = tmp_path / "config" / "config.toml"
    form = SetupForm(config_path=path)
    form.url.value = sb.url
    form.team.value = sb.team
    # the browser sends the field's value when it is left (not per keystroke)...
    assert form.token.continuous_update is False
    form.token.value = sb.token
    # ...and it is out of the synced value at once (a notebook saved now, or autosaved,
    # does not keep it), still known to the form, so Test and Save need no retyping
    assert form.token.value == ""
    assert sb.token not in _all_state(form.widget)
    assert "entered" in form.token.placeholder

    form.test_button.click()
    assert form.status.value.startswith("&#x2705;"), form.status.value
    assert sb.bot_username in form.status.value
    assert form.token.value == ""
    assert sb.token not in _all_state(form.widget)

    form.save_button.click()
    assert form.token.value == ""
    assert sb.token not in _all_state(form.widget)
    assert sb.token not in repr(form)
    assert "saved to" in form.status.value
    assert path.stat().st_mode & 0o777 == 0o600
    from mattermost_notify.config import load_settings

    settings = load_settings(configfile=path)
    assert (settings.url.rstrip("/"), settings.team_name) == (sb.url.rstrip("/"), sb.team)
    assert settings.token == sb.token


def test_setup_form_bad_token_and_missing_fields(
    mattermost_server: Any, mattermost_env: Any, tmp_path: Path
) -> None:
    sb = mattermost_server
    form = SetupForm(config_path=tmp_path / "c.toml")
    form.save_button.click()
    assert "missing: URL, token" in form.status.value
    assert not (tmp_path / "c.toml").exists()
    form.url.value = sb.url
    form.team.value = sb.team
    form.token.value = "x" * 26
    assert form.test() is False
    assert form.status.value.startswith("&#x274C;")
    assert "x" * 26 not in form.status.value
    assert not form.test_button.disabled


def test_status_widget_follows_real_tickets(mattermost_server: Any, mattermost_env: Any) -> None:
    import mattermost_notify as notify

    client = notify.get_client()
    status = MessageStatus("run-1")
    assert "run-1: queued" in status.widget.value
    ticket = client.sender.post("hello", channel="alerts", id="run-1")
    status.watch(ticket, "running")
    assert notify.flush(timeout=30)
    deadline = time.monotonic() + 5
    while "running" not in status.widget.value and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "run-1: running" in status.widget.value
    [post] = mattermost_server.view.posts(channel="alerts")
    assert post.id in status.widget.value  # the permalink
    bad = client.sender.post("x", channel="no-such-channel")
    status.watch(bad, "sent")
    with pytest.warns(notify.MattermostNotifyWarning):
        notify.flush(timeout=30)
        bad.exception(10)
    deadline = time.monotonic() + 5
    while "failed" not in status.widget.value and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "failed" in status.widget.value


def test_status_icon_follows_the_delivered_state() -> None:
    status = MessageStatus("run-2")
    assert status.widget.value.startswith("&#x23F3;")  # queued
    status.set("running")
    assert status.widget.value.startswith("&#x23F3;")  # delivered, the cell runs
    status.set("ok")
    assert status.widget.value.startswith("&#x2705;")  # delivered, the cell is done
    status.set("failed: ZeroDivisionError")
    assert status.widget.value.startswith("&#x274C;")
