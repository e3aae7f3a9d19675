"""The served app in headless Chromium (Playwright) against ``panel serve app`` on 127.0.0.1.

Screenshots of every step go to ``test-artifacts/app`` (and, with ``SENPREP_SCREENSHOTS=docs``, to
``docs/screenshots`` for the README).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import requests

from senprep_core.demo.catalog import DEMO_ROI_GEOJSON
from tests.conftest import IN_CI, ROOT

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts" / "app"
DOCS_SHOTS = ROOT / "docs" / "screenshots"
FOOTPRINTS_JS = """() => { let n = 0;
  for (const doc of Bokeh.documents) for (const m of doc.all_models)
    if (m.data && m.data.product_id) n = Math.max(n, m.data.product_id.length);
  return n }"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served(NamedTuple):
    """The served app's address and the folder it runs in (its runs go to ``senprep-app-runs`` there)."""

    url: str
    workdir: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing (apt-get install chromium)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    port = _free_port()
    workdir = tmp_path_factory.mktemp("served")
    env = {**os.environ, "SENPREP_CACHE": str(workdir / "cache"), "SENPREP_BASEMAP": "off"}
    panel = shutil.which("panel", path=str(Path(sys.executable).parent)) or "panel"
    log = (workdir / "panel.log").open("w")
    proc = subprocess.Popen(
        [panel, "serve", str(ROOT / "app"), "--address", "127.0.0.1", "--port", str(port),
         f"--allow-websocket-origin=127.0.0.1:{port}"],
        cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/app"
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                if requests.get(url, timeout=30).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):  # not up yet, or slow to render on a busy machine
                time.sleep(0.3)
        else:
            pytest.fail("panel serve did not answer within 90 s")
        yield Served(url, workdir)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


@pytest.fixture(scope="module")
def served_app(served: Served) -> str:
    return served.url


@pytest.fixture(scope="module")
def browser(served_app: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        try:
            yield chromium
        finally:
            chromium.close()


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    if os.environ.get("SENPREP_SCREENSHOTS") == "docs":
        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOCS_SHOTS / path.name)


def _open(browser: Any, url: str) -> Any:
    from playwright.sync_api import expect

    page = browser.new_context(viewport={"width": 1500, "height": 1500}).new_page()
    page.goto(url)
    expect(page.get_by_text("6.25 km²")).to_be_visible(timeout=60_000)  # the demo ROI is preset
    return page


def _input(page: Any, label: str) -> Any:
    # Playwright's CSS engine pierces the open shadow roots Panel renders into
    return page.locator(f".bk-input-group:has(label:text-is('{label}')) input")


def _set(page: Any, label: str, value: str) -> None:
    field = _input(page, label)
    field.fill(value)
    field.press("Enter")


def _paste_roi(page: Any, geometry: dict[str, Any]) -> None:
    page.locator("textarea").first.fill(json.dumps(geometry))
    page.get_by_role("button", name="Use pasted ROI").click()


def _inner_box(fraction: float) -> dict[str, Any]:
    ring = DEMO_ROI_GEOJSON["coordinates"][0]
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    w, e, s, n = min(lons), max(lons), min(lats), max(lats)
    dx, dy = (e - w) * (1 - fraction) / 2, (n - s) * (1 - fraction) / 2
    box = [[w + dx, s + dy], [e - dx, s + dy], [e - dx, n - dy], [w + dx, n - dy], [w + dx, s + dy]]
    return {"type": "Polygon", "coordinates": [box]}


def _status(page: Any) -> str:
    return str(page.locator("p:has-text('Status:')").first.inner_text())


def test_roi_search_run_gallery_and_cancel(served_app: str, browser: Any) -> None:
    from playwright.sync_api import expect

    page = _open(browser, served_app)
    _shot(page, "01-start")
    # paste an ROI; an invalid one is rejected with a message
    _paste_roi(page, {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [0, 1], [1, 0], [0, 0]]]})
    expect(page.get_by_text(re.compile("ROI rejected"))).to_be_visible(timeout=10_000)
    _paste_roi(page, _inner_box(0.8))
    expect(page.get_by_text(re.compile(r"ROI 4\.\d\d km²"))).to_be_visible(timeout=10_000)
    _set(page, "Patch size (px)", "32")
    expect(page.get_by_text("patches of 32² px")).to_be_visible(timeout=10_000)
    _shot(page, "02-roi")
    # search: table rows and footprints on the map
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("3 products found")).to_be_visible(timeout=60_000)
    expect(page.locator(".tabulator-row")).to_have_count(3)
    assert page.evaluate(FOOTPRINTS_JS) == 3
    page.locator(".tabulator-row").first.click()  # a product's own quicklook
    expect(page.get_by_text(re.compile("Quicklook of"))).to_be_visible(timeout=10_000)
    _shot(page, "03-search")
    # run: progress advances, then the gallery fills
    page.get_by_role("button", name="Run", exact=True).click()
    seen = set()
    deadline = time.time() + 120
    while time.time() < deadline:
        status = _status(page)
        seen.add(re.search(r"(\d+)/3 units", status).group(1) if re.search(r"(\d+)/3 units", status) else "")
        if "complete" in status:
            break
        time.sleep(0.1)
    assert "complete" in _status(page), _status(page)
    assert len(seen - {""}) >= 2, f"progress never advanced: {seen}"
    written = int(re.search(r"(\d+) patches written", _status(page)).group(1))  # type: ignore[union-attr]
    expect(page.get_by_text(re.compile(rf"page 1 / \d+ · {written} patches"))).to_be_visible(timeout=30_000)
    expect(page.get_by_role("button", name="Open", exact=True)).to_have_count(24, timeout=30_000)  # first page
    page.get_by_text(re.compile(r"page 1 / \d+ ·")).scroll_into_view_if_needed()
    time.sleep(1.0)  # thumbnails fill in over a few refresh ticks
    _shot(page, "04-run-gallery")
    page.get_by_role("button", name="Open").first.click()
    expect(page.get_by_text("(outlined on the map)")).to_be_visible(timeout=10_000)
    page.get_by_text("(outlined on the map)").scroll_into_view_if_needed()
    expect(page.get_by_text(re.compile("config_fingerprint"))).to_be_visible(timeout=10_000)
    _shot(page, "05-patch-opened")
    with page.expect_download(timeout=60_000) as download:  # the whole run as one zip
        page.get_by_role("button", name="Download the run (zip)").click()
    with zipfile.ZipFile(download.value.path()) as archive:
        names = archive.namelist()
    assert sum(n.endswith(".tif") for n in names) == written and any(n.endswith("run.json") for n in names)
    # a second run, cancelled mid-way; the UI answers a widget change within 1 s meanwhile
    _set(page, "Run name", "second-run")
    _set(page, "Patch size (px)", "16")
    _set(page, "Overlap (px)", "8")  # thousands of patches: the run lasts long enough to cancel
    expect(page.get_by_text(re.compile(r"\d+ patches of 16² px"))).to_be_visible(timeout=10_000)
    before = page.get_by_text(re.compile(r"\d+ patches of 16² px")).inner_text()
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_text(re.compile(r"Status:\*{0,2} running"))).to_be_visible(timeout=60_000)
    info = page.get_by_text(re.compile(r"\d+ patches of 16² px"))
    _set(page, "Overlap (px)", "4")
    t0 = time.monotonic()  # from the change leaving the browser to the server's answer showing in it
    while info.inner_text() == before and time.monotonic() - t0 < 10:
        time.sleep(0.03)
    responded = time.monotonic() - t0
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_text(re.compile(r"Status:\*{0,2} cancelled"))).to_be_visible(timeout=30_000)
    _shot(page, "06-cancelled")
    (ARTIFACTS / "responsiveness.json").write_text(json.dumps({"widget_change_seconds_during_run": responded}))
    assert responded < 1.0, f"a widget change took {responded:.2f} s to show while a job ran"


def test_two_sessions_keep_their_own_roi_and_job(served_app: str, browser: Any) -> None:
    from playwright.sync_api import expect

    first, second = _open(browser, served_app), _open(browser, served_app)
    _paste_roi(first, _inner_box(0.5))
    expect(first.get_by_text(re.compile(r"ROI 1\.\d\d km²"))).to_be_visible(timeout=10_000)
    _paste_roi(second, _inner_box(0.9))
    expect(second.get_by_text(re.compile(r"ROI 5\.\d\d km²"))).to_be_visible(timeout=10_000)
    _set(first, "Run name", "first-session")
    first.get_by_role("button", name="Run", exact=True).click()
    expect(first.get_by_text(re.compile(r"Status:\*{0,2} complete"))).to_be_visible(timeout=120_000)
    expect(second.get_by_text(re.compile(r"ROI 5\.\d\d km²"))).to_be_visible()
    assert "idle" in _status(second)
    expect(first.get_by_text(re.compile(r"ROI 1\.\d\d km²"))).to_be_visible()
    _shot(first, "07-session-a")
    _shot(second, "08-session-b")


def test_reload_reattaches_to_the_running_job(served_app: str, browser: Any) -> None:
    from playwright.sync_api import expect

    page = _open(browser, served_app)
    _set(page, "Run name", "reload-run")
    _set(page, "Patch size (px)", "16")
    _set(page, "Overlap (px)", "8")  # about 3000 patches: the job outlasts the reload
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_text(re.compile(r"Status:\*{0,2} running"))).to_be_visible(timeout=60_000)
    url = page.evaluate("window.location.href")
    assert "session=" in url
    page.goto(url)  # reload: the same session, its job still running, Run disabled
    expect(page.get_by_text(re.compile(r"Status:\*{0,2} running"))).to_be_visible(timeout=30_000)
    expect(page.get_by_role("button", name="Run", exact=True)).to_be_disabled()
    expect(page.get_by_text("patches of 16² px")).to_be_visible()  # the session's options came back too
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_text(re.compile(r"Status:\*{0,2} cancelled"))).to_be_visible(timeout=30_000)
    log = page.get_by_text(re.compile(r"run reload-run: \d+ units")).count()
    assert log == 1  # one run started, not two


def test_draw_a_box_on_the_map(served_app: str, browser: Any) -> None:
    from playwright.sync_api import expect

    page = _open(browser, served_app)
    canvas = page.locator(".bk-Canvas").first.bounding_box()
    x0, y0 = canvas["x"] + canvas["width"] * 0.45, canvas["y"] + canvas["height"] * 0.45

    def area() -> float:
        text = page.locator("p:has-text('km²')").first.inner_text()
        return float(re.search(r"ROI ([\d.,]+) km²", text).group(1).replace(",", ""))  # type: ignore[union-attr]

    def wait_for_area_change(old: float) -> float:
        deadline = time.time() + 10
        while area() == old and time.time() < deadline:
            time.sleep(0.05)
        return area()

    before = area()
    page.locator(".bk-tool-icon-box-edit").first.click()  # Box edit tool: shift + drag draws a box
    page.keyboard.down("Shift")
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0 + 80, y0 + 60, steps=10)
    page.mouse.up()
    page.keyboard.up("Shift")
    boxed = wait_for_area_change(before)
    assert 0.1 < boxed < before
    expect(page.get_by_text(re.compile(r"ROI 0\.\d\d km² · 1 patches"))).to_be_visible(timeout=5_000)
    _shot(page, "09-drawn-box")


def _wait_for_run(folder: Path, seconds: float = 180.0) -> dict[str, Any]:
    """The run report in ``folder`` once it says complete (or whatever it says at the deadline)."""
    deadline = time.time() + seconds
    report: dict[str, Any] = {}
    while time.time() < deadline:
        try:
            report = json.loads((folder / "run.json").read_text())
        except (OSError, ValueError):
            report = {}
        if report.get("status") == "complete":
            break
        time.sleep(0.2)
    return report


def test_two_tabs_on_default_settings_run_at_once_into_their_own_folders(served: Served, browser: Any) -> None:
    from playwright.sync_api import expect

    pages = [_open(browser, served.url), _open(browser, served.url)]
    names = [_input(page, "Run name").input_value() for page in pages]
    assert names[0] != names[1] and all(re.fullmatch(r"app-demo-[0-9a-f]{6}", n) for n in names), names
    for page in pages:  # both Run buttons pressed at once
        page.get_by_role("button", name="Run", exact=True).click()
    for page in pages:
        expect(page.get_by_text(re.compile(r"Status:\*{0,2} complete"))).to_be_visible(timeout=180_000)
    runs = served.workdir / "senprep-app-runs"
    for name in names:  # on disk: two run folders, each with its complete run
        report = _wait_for_run(runs / name, seconds=10)
        assert report.get("status") == "complete" and report.get("name") == name, report
    # Run again on the first tab: its folder holds a run, so the app asks; "New name" runs into <name>-2
    first = pages[0]
    first.get_by_role("button", name="Run", exact=True).click()
    expect(first.get_by_text(re.compile(rf"'{names[0]}' already holds a complete run")).first).to_be_visible(
        timeout=10_000
    )
    for label in ("Resume", "Overwrite", "New name"):
        expect(first.get_by_role("button", name=label, exact=True)).to_be_visible()
    _shot(first, "10-run-folder-choices")
    first.get_by_role("button", name="New name", exact=True).click()
    expect(_input(first, "Run name")).to_have_value(f"{names[0]}-2", timeout=10_000)
    assert _wait_for_run(runs / f"{names[0]}-2").get("status") == "complete"
