"""The real-server harness without a real server: the script's checks, and how pytest
treats the real-server suite when it is not asked for or cannot run."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_script():
    spec = importlib.util.spec_from_file_location(
        "real_mattermost_harness", ROOT / "scripts" / "real_mattermost.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


script = load_script()


def test_the_pinned_versions_are_one_commit() -> None:
    versions = script.pinned_versions()
    server, public = versions[script.SERVER_MODULE], versions[script.PUBLIC_MODULE]
    assert server.endswith("-" + script.COMMIT[:12])
    assert script.pinned_revision() == script.COMMIT[:12]
    assert public.startswith("v0.")  # server/public at the same day's commit
    assert "20260113" in server and "20260113" in public


def test_a_server_go_mod_with_lines_the_wrapper_lacks_is_refused() -> None:
    wrapper = (ROOT / "scripts" / "mattermost-server" / "go.mod").read_text()
    server = (
        "module github.com/mattermost/mattermost/server/v8\n"
        "replace github.com/olekukonko/tablewriter => github.com/olekukonko/tablewriter v0.0.5\n"
    )
    script._check_wrapper_against(server, wrapper)  # the pinned commit's lines: fine
    bumped = server + "exclude (\n\tgithub.com/RoaringBitmap/roaring v0.7.0\n)\n"
    with pytest.raises(script.RealServerError, match=r"exclude github\.com/RoaringBitmap/roaring"):
        script._check_wrapper_against(bumped, wrapper)
    local = server + "replace github.com/x/y => ./y\n"
    with pytest.raises(script.RealServerError, match="local path"):
        script._check_wrapper_against(local, wrapper)


def run_pytest(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATTERMOST_NOTIFY_")}
    env["MATTERMOST_NOTIFY_REAL_SERVER_CACHE"] = str(cache)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_not_asked_for_the_suite_is_left_out_with_one_line(tmp_path: Path) -> None:
    proc = run_pytest("tests/real_server", cache=tmp_path)
    lines = [line for line in proc.stdout.splitlines() if "real-server tests not run" in line]
    assert len(lines) == 1, proc.stdout
    assert "python scripts/real_mattermost.py build" in lines[0]
    assert "python -m pytest -m real_server" in lines[0]
    assert "passed" not in proc.stdout and "error" not in proc.stdout.lower()


@pytest.mark.slow
def test_asked_for_without_a_built_server_is_an_error_not_a_skip(tmp_path: Path) -> None:
    proc = run_pytest(
        "-m", "real_server", "tests/real_server/test_real_errors.py", cache=tmp_path / "empty"
    )
    assert proc.returncode == 1, proc.stdout
    assert "skipped" not in proc.stdout
    assert "the server is not built" in proc.stdout
    assert "python scripts/real_mattermost.py build" in proc.stdout
