"""A manual check in a real browser: a JupyterLab kernel killed with SIGKILL mid-cell.

What a user does, step by step, against the sandbox server:

1. ``mattermost-notify jupyter enable`` (in a throw-away HOME), a sandbox, its settings
   in the user's configuration file; a real ``jupyter lab`` with the server extension
   enabled by the file the package installs;
2. headless chromium opens a notebook and runs, from the keyboard, a
   ``%%notify_on_done`` cell that sleeps, then ``kill -9`` of the kernel's process:
   the reply in the cell's thread must arrive within 10 s;
3. the same with a progress bar stopped at 60 %;
4. a running cell, then *Kernel > Restart Kernel...* from the menu: no "died" message;
5. ``%autonotify -u alice``, a cell that sleeps, ``kill -9``: a new message (no thread:
   ``%autonotify`` posts nothing while a cell runs) must arrive within 10 s, naming the
   cell; then the same with *Restart Kernel...* from the menu: no message.

Screenshots of the browser and of the sandbox's web page go to ``--out``; look at
them. Needs ``jupyterlab`` and ``selenium`` (pip) and ``chromium`` + ``chromium-driver``
(apt). Not part of the test suite: it needs a browser.

    python scripts/browser_kernel_death.py --out /tmp/browser-check
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

NOTEBOOK_CELLS = [
    "%%notify_on_done -u alice\nimport time\ntime.sleep(600)",
    "from mattermost_notify import tqdm\nimport time\n"
    'bar = tqdm(total=100, desc="train", user="alice", min_interval=0.05, mininterval=0)\n'
    "for _ in range(60):\n    bar.update(1)\n"
    "time.sleep(0.2)\nbar.refresh()\ntime.sleep(600)",
    "%autonotify -u alice",
    "import time\ntime.sleep(600)",
]
JUPYTER_TOKEN = secrets.token_hex(16)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(predicate: Any, timeout: float, what: str, step: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Check:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.shots: list[str] = []
        self.lines: list[str] = []

    def say(self, text: str) -> None:
        print(text, flush=True)
        self.lines.append(text)

    def shot(self, driver: Any, name: str) -> None:
        path = self.out / f"{len(self.shots) + 1:02d}-{name}.png"
        driver.save_screenshot(str(path))
        self.shots.append(str(path))
        self.say(f"  screenshot {path}")


def write_notebook(path: Path) -> None:
    cells = [
        {
            "cell_type": "code",
            "execution_count": None,
            "id": f"cell{i}",
            "metadata": {},
            "outputs": [],
            "source": src,
        }
        for i, src in enumerate(NOTEBOOK_CELLS)
    ]
    nb = {
        "cells": cells,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(nb), encoding="utf-8")


def indent(text: str) -> str:
    return text.replace("\n", "\n    ")


def kernel_pid(runtime: Path, kernel_id: str) -> int:
    """The pid of the kernel process (what the out-of-memory killer would pick)."""
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    needle = f"kernel-{kernel_id}.json"
    pids = [int(line.split()[0]) for line in out.splitlines() if needle in line]
    if not pids:
        raise AssertionError(f"no process with {needle}")
    return min(pids)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("browser-check"))
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    check = Check(args.out)

    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from mattermost_notify.config import load_settings, write_config
    from mattermost_notify.sandbox import Sandbox

    tmp = Path(tempfile.mkdtemp(prefix="mm-browser-check-"))
    home = tmp / "home"
    root = tmp / "notebooks"
    for d in (home, root):
        d.mkdir()
    env = dict(os.environ)
    for name in list(env):
        if name.startswith(("MATTERMOST_NOTIFY_", "JUPYTER", "IPYTHON", "JPY_")):
            del env[name]
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"))
    env["XDG_DATA_HOME"] = str(home / ".local" / "share")
    env["XDG_RUNTIME_DIR"] = str(tmp / "run")
    sb = Sandbox().start()
    lab = driver = None
    try:
        # the user's configuration file, as `mattermost-notify sandbox --write-config` does
        os.environ.update(HOME=env["HOME"], XDG_CONFIG_HOME=env["XDG_CONFIG_HOME"])
        from mattermost_notify.config import user_config_path

        config = user_config_path()
        config.parent.mkdir(parents=True, exist_ok=True)
        write_config(
            config, load_settings({"url": sb.url, "token": sb.token, "team_name": sb.team})
        )
        cli = [str(Path(sys.executable).with_name("mattermost-notify"))]
        enable = subprocess.run([*cli, "jupyter", "enable"], env=env, capture_output=True)
        check.say(f"$ mattermost-notify jupyter enable\n{enable.stdout.decode().strip()}")
        assert enable.returncode == 0, enable.stderr.decode()
        write_notebook(root / "check.ipynb")

        port = free_port()
        log = (args.out / "jupyterlab.log").open("wb")
        lab = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                f"--port={port}",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.root_dir={root}",
                f"--IdentityProvider.token={JUPYTER_TOKEN}",
                "--allow-root",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=root,
        )
        base = f"http://127.0.0.1:{port}"
        import requests

        def api(method: str, path: str) -> Any:
            r = requests.request(
                method, base + path, headers={"Authorization": f"token {JUPYTER_TOKEN}"}, timeout=10
            )
            r.raise_for_status()
            return r.json() if r.text else None

        def lab_up() -> bool:
            try:
                return requests.get(base + "/api/status", timeout=2).status_code in (200, 403)
            except requests.ConnectionError:
                return False

        wait(lab_up, 90, "jupyter lab")
        check.say(f"jupyter lab at {base}, sandbox at {sb.url}")

        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
        for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
            options.add_argument(flag)
        options.add_argument("--window-size=1400,1000")
        service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
        driver = webdriver.Chrome(options=options, service=service)
        driver.get(f"{base}/lab/tree/check.ipynb?token={JUPYTER_TOKEN}")
        wait(
            lambda: driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell"),
            120,
            "the notebook in the browser",
            0.5,
        )
        wait(
            lambda: (
                "Idle" in driver.find_element(By.CSS_SELECTOR, "body").text
                or driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook-ExecutionIndicator")
            ),
            60,
            "the kernel",
            0.5,
        )
        time.sleep(3)
        check.shot(driver, "notebook-open")
        [session] = [s for s in api("GET", "/api/sessions") if s["path"] == "check.ipynb"]
        kernel_id = session["kernel"]["id"]
        runtime = Path(
            subprocess.run(
                [sys.executable, "-m", "jupyter", "--runtime-dir"],
                env=env,
                capture_output=True,
                text=True,
            ).stdout.strip()
        )

        def posts() -> list[Any]:
            try:
                return list(sb.view.posts(dm_with="alice"))
            except KeyError:
                return []

        def run_cell(index: int) -> None:
            cells = driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell")
            cells[index].find_element(By.CSS_SELECTOR, ".jp-InputArea-editor").click()
            time.sleep(0.5)
            webdriver.ActionChains(driver).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(
                Keys.SHIFT
            ).perform()

        def kill_and_wait(root_post: Any, what: str) -> Any:
            time.sleep(3)  # it runs for a while
            pid = kernel_pid(runtime, kernel_id)
            os.kill(pid, signal.SIGKILL)
            killed = time.monotonic()
            check.say(f"kill -9 {pid} ({what})")
            dialog = wait(
                lambda: driver.find_elements(By.CSS_SELECTOR, "dialog.jp-Dialog"),
                20,
                "JupyterLab's dialog",
                0.2,
            )
            check.say(f"  JupyterLab says: {' '.join(dialog[0].text.split())!r}")
            check.shot(driver, f"after-kill-{what}")
            reply = wait(
                lambda: next((p for p in posts() if p.root_id == root_post.id), None),
                10,
                f"the reply in the thread ({what})",
            )
            took = time.monotonic() - killed
            check.say(f"  reply {took:.1f} s after the kill:\n    " + indent(reply.message))
            edited = sb.view.post(root_post.id).message
            check.say("  the message, edited:\n    " + indent(edited))
            for button in driver.find_elements(By.CSS_SELECTOR, "dialog.jp-Dialog button"):
                if button.text.strip() == "Ok":
                    button.click()  # as the user does
            return reply, took

        def restart_from_menu(shot: str | None = None) -> None:
            """Kernel > Restart Kernel... and accept the dialog (a screenshot of it first)."""
            driver.find_element(
                By.XPATH, "//div[contains(@class,'lm-MenuBar-itemLabel')][text()='Kernel']"
            ).click()
            time.sleep(0.5)
            driver.find_element(
                By.XPATH,
                "//div[contains(@class,'lm-Menu-itemLabel')][starts-with(text(),'Restart Kernel')]",
            ).click()
            time.sleep(1)
            if shot:
                check.shot(driver, shot)
            driver.find_element(By.CSS_SELECTOR, "dialog.jp-Dialog button.jp-mod-accept").click()

        def wait_idle_again() -> None:
            wait(
                lambda: api("GET", f"/api/kernels/{kernel_id}")["execution_state"] == "idle",
                60,
                "the restarted kernel",
                0.5,
            )
            time.sleep(2)

        # 1. a %%notify_on_done cell, killed
        before = len(posts())
        run_cell(0)
        running = wait(lambda: len(posts()) > before and posts()[-1], 60, "the running post")
        wait(
            lambda: any(
                j.get("hook")
                for f in Path(env["XDG_DATA_HOME"]).rglob("kernels/*.json")
                for j in json.loads(f.read_text())["jobs"]
            ),
            30,
            "the kernel's record",
        )
        check.say(f"running post: {running.message.splitlines()[0]}")
        check.shot(driver, "cell-running")
        reply, took_cell = kill_and_wait(running, "cell")
        assert "The kernel died" in reply.message and "cell [1]" in reply.message
        wait_idle_again()
        check.shot(driver, "restarted-after-cell-kill")

        # 2. a progress bar at 60 %, killed
        before = len(posts())
        run_cell(1)
        bar_post = wait(lambda: len(posts()) > before and posts()[-1], 60, "the bar's post")
        wait(
            lambda: any(
                j.get("state") == "60 % (60/100)" and j.get("hook")
                for f in Path(env["XDG_DATA_HOME"]).rglob("kernels/*.json")
                for j in json.loads(f.read_text())["jobs"]
            ),
            30,
            "the bar's record at 60 %",
        )
        check.shot(driver, "bar-at-60")
        reply, took_bar = kill_and_wait(bar_post, "bar")
        assert "60 % (60/100)" in reply.message
        wait_idle_again()

        # 3. a running cell, then Kernel > Restart Kernel... from the menu
        before = len(posts())
        run_cell(0)
        running = wait(lambda: len(posts()) > before and posts()[-1], 60, "the running post")
        time.sleep(1)
        restart_from_menu("restart-dialog")
        restarted = time.monotonic()
        time.sleep(12)
        check.shot(driver, "after-ui-restart")
        later = [
            p
            for p in posts()
            if p.create_at / 1000 > time.time() - (time.monotonic() - restarted) - 1
        ]
        died = [p.message for p in later if "died" in p.message.lower()]
        waited = time.monotonic() - restarted
        check.say(f"after the UI restart ({waited:.0f} s): {len(later)} new post(s), died: {died}")
        assert not died, died
        assert "died" not in sb.view.post(running.id).message.lower()

        # 5. %autonotify: a cell killed, then a cell restarted from the menu
        def auto_record() -> bool:
            return any(
                j.get("kind") == "autonotify"
                for f in Path(env["XDG_DATA_HOME"]).rglob("kernels/*.json")
                for j in json.loads(f.read_text())["jobs"]
            )

        wait_idle_again()
        run_cell(2)
        wait_idle_again()
        before = len(posts())
        run_cell(3)
        wait(auto_record, 30, "the record of the cell under %autonotify")
        check.shot(driver, "autonotify-cell-running")
        assert len(posts()) == before, "a post at the start of a cell under %autonotify"
        time.sleep(3)
        pid = kernel_pid(runtime, kernel_id)
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        check.say(f"kill -9 {pid} (a cell under %autonotify)")
        message = wait(lambda: len(posts()) > before and posts()[-1], 10, "the new message")
        took_auto = time.monotonic() - killed
        check.say(f"  message {took_auto:.1f} s after the kill:\n    " + indent(message.message))
        assert not message.root_id and "The kernel died" in message.message
        assert "check.ipynb` cell [" in message.message
        wait(
            lambda: driver.find_elements(By.CSS_SELECTOR, "dialog.jp-Dialog"),
            20,
            "JupyterLab's dialog",
            0.2,
        )
        check.shot(driver, "after-kill-autonotify")
        for button in driver.find_elements(By.CSS_SELECTOR, "dialog.jp-Dialog button"):
            if button.text.strip() == "Ok":
                button.click()
        wait_idle_again()
        run_cell(2)
        wait_idle_again()
        before = len(posts())
        run_cell(3)
        wait(auto_record, 30, "the record of the cell under %autonotify")
        time.sleep(1)
        restart_from_menu()
        time.sleep(12)
        check.shot(driver, "after-ui-restart-autonotify")
        new = [p.message for p in posts()[before:]]
        check.say(f"after the UI restart under %autonotify: {len(new)} new post(s): {new}")
        assert not new, new

        driver.get(f"{sb.url}/")
        time.sleep(2)
        driver.set_window_size(1400, 2400)
        check.shot(driver, "sandbox-web-page")
        check.say(
            f"OK: cell reply {took_cell:.1f} s, bar reply {took_bar:.1f} s, "
            f"%autonotify message {took_auto:.1f} s after kill -9"
        )
        return 0
    except Exception:
        if driver is not None:
            check.shot(driver, "failure")
        raise
    finally:
        if driver is not None:
            driver.quit()
        if lab is not None:
            lab.send_signal(signal.SIGINT)
            try:
                lab.wait(15)
            except subprocess.TimeoutExpired:
                lab.kill()
        sb.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
