"""Warnings and advice as a user sees them in a real process: each said once, in one
line (no source line of the library, no traceback), in the words of the API in use."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mattermost_notify.sandbox import Sandbox


def run(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(code), encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp_path,
        env={**os.environ, **env},
    )


@pytest.mark.slow
def test_a_failed_background_send_is_one_line_once(mattermost_env: Sandbox, tmp_path: Path) -> None:
    proc = run(
        """
        import time
        import mattermost_notify as notify
        from mattermost_notify import tqdm
        for i in tqdm(range(3), desc="job", channel="alerts"):
            if i == 1:
                notify.notify("to nobody", user_name="nobody", block=False)
                notify.flush(30)
        assert notify.flush(30)
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "nobody" in line]
    assert len(lines) == 1, proc.stderr  # not a log line and a warning
    assert "Traceback" not in proc.stderr
    # no source line of the library under the warning
    assert "warnings.warn" not in proc.stderr and "_warn(" not in proc.stderr


def test_tqdm_without_target_advises_tqdm_arguments_once(
    mattermost_env: Sandbox, tmp_path: Path
) -> None:
    proc = run(
        """
        import mattermost_notify as notify
        from mattermost_notify import tqdm
        for i in tqdm(range(3), desc="job"):
            pass
        notify.flush(30)
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    advice = [line for line in proc.stderr.splitlines() if "no user or channel" in line]
    assert len(advice) == 1, proc.stderr
    assert "pass user= or channel= to tqdm()" in advice[0]
    assert "user_name=" not in proc.stderr
    assert "Traceback" not in proc.stderr and "unknown message id" not in proc.stderr


def test_unknown_id_points_to_import_hook(mattermost_env: Sandbox, tmp_path: Path) -> None:
    proc = run(
        """
        import mattermost_notify as notify
        try:
            notify.send_update("done", id="never-sent")
        except notify.MessageError as exc:
            print(exc)
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "import_hook(" in proc.stdout


def test_readable_config_warning_once_and_one_line(tmp_path: Path) -> None:
    with Sandbox() as sb:
        conf = tmp_path / "config.toml"
        conf.write_text(f'url = "{sb.url}"\ntoken = "{sb.token}"\nteam_name = "{sb.team}"\n')
        conf.chmod(0o644)
        proc = run(
            """
            import mattermost_notify as notify
            notify.wakeup()
            notify.wakeup()  # a set-up cell run twice
            notify.notify_channel("hello", "alerts")
            """,
            tmp_path,
            MATTERMOST_NOTIFY_CONFIG=str(conf),
            MATTERMOST_NOTIFY_URL="",
            MATTERMOST_NOTIFY_TOKEN="",
            MATTERMOST_NOTIFY_TEAM="",
            MATTERMOST_NOTIFY_DATA_DIR=str(tmp_path / "data"),
        )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "chmod 600" in lines[0], proc.stderr
    assert sb.token not in proc.stderr
