"""The minimal app: its state runs the demo in the background; the served page runs it in a real browser."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from app.state import DemoJob
from tests.conftest import IN_CI, ROOT

CHROMIUM = "/usr/bin/chromium"


def _wait(job: DemoJob, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while job.running and time.time() < deadline:
        time.sleep(0.05)


def test_demo_job_runs_in_background_and_lists_patches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENPREP_CACHE", str(tmp_path / "cache"))
    job = DemoJob(outdir=str(tmp_path / "run"))
    assert job.start() is True
    assert job.start() is False  # one job per session at a time
    _wait(job)
    assert job.status == "complete", job.error
    assert job.units_done == job.units_total == 5  # 3 S2 L2A + 2 S1 GRD
    assert len(job.patches) == 20 and all(Path(p).exists() for p in job.patches)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    workdir = tmp_path_factory.mktemp("served")
    env = {**os.environ, "SENPREP_CACHE": str(workdir / "cache")}
    panel = shutil.which("panel", path=str(Path(sys.executable).parent)) or "panel"
    proc = subprocess.Popen(
        [panel, "serve", str(ROOT / "app"), "--address", "127.0.0.1", "--port", str(port),
         f"--allow-websocket-origin=127.0.0.1:{port}"],
        cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/app"
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                if requests.get(url, timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.3)
        else:
            pytest.fail("panel serve did not answer within 90 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_served_page_answers(served_app: str) -> None:
    page = requests.get(served_app, timeout=10)
    assert page.status_code == 200
    assert "senprep" in page.text


def test_browser_runs_demo_and_shows_patches(served_app: str, tmp_path: Path) -> None:
    screenshot_dir = tmp_path
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing (apt-get install chromium)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        try:
            page = browser.new_page()
            page.goto(served_app)
            page.get_by_role("button", name="Run demo").click()
            # Playwright locators pierce the shadow DOM Panel's components render into
            status = page.get_by_text(re.compile(r"Status:.*complete"))
            expect(status).to_be_visible(timeout=120_000)
            expect(status).to_contain_text("20 patches", timeout=60_000)
            expect(page.locator("img")).to_have_count(20, timeout=30_000)  # 12 S2 and 8 S1 thumbnails
            page.screenshot(path=str(screenshot_dir / "app-demo.png"), full_page=True)
        finally:
            browser.close()
