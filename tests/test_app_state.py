"""The app's state classes drive whole flows with no browser: ROI, options, search, run, gallery, sessions."""

from __future__ import annotations

import json
import os
import re
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from app.render import patch_rgb, quicklook_png, thumbnail_png
from app.state import AppState, RoiState, SessionRegistry, patch_info
from app.state.folder import FolderCheck
from app.state.search import NOT_USED
from senprep_core.cli import main as senprep
from senprep_core.config import load_config
from senprep_core.demo.catalog import DEMO_DEM, DEMO_ROI_GEOJSON, demo_config_dict
from senprep_core.outputs.run_folder import LOCK_FILE, WRITERS_FILE, RunFolder

MODES = ("s2_only", "s1_only", "s2_with_closest_s1", "s1_with_closest_s2", "s1_multitemporal", "time_series")


@pytest.fixture()
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppState:
    monkeypatch.setenv("SENPREP_CACHE", str(tmp_path / "cache"))
    s = AppState.with_demo_defaults()
    s.options.outdir = str(tmp_path / "runs")
    return s


def _wait(predicate, seconds: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.time() + seconds
    while not predicate() and time.time() < deadline:
        time.sleep(0.02)


def test_whole_flow_roi_search_run_gallery(state: AppState) -> None:
    w, s, e, n = state.roi.bounds()  # type: ignore[misc]
    assert state.roi.set_box(w + 0.005, s + 0.003, e - 0.005, n - 0.003)  # a box inside the demo ROI
    state.options.patch_size = 64
    assert state.start_search()
    state.search.wait()
    assert state.search.status == "done", state.search.error
    assert len(state.search.rows) == 3 and {r["family"] for r in state.search.rows} == {"S2"}
    row = state.search.rows[0]
    assert row["footprint"] and 99.0 <= row["coverage"] <= 100.0 and row["cloud"] is not None
    assert quicklook_png(row["href"]).startswith(b"\x89PNG")  # type: ignore[union-attr]
    assert state.start_run()
    assert not state.start_run()  # one job per session
    assert "already" in state.message
    state.job.wait()
    job = state.job
    assert job.status == "complete", (job.error, job.log)
    assert job.units_done == job.units_total == 3 and job.fraction == 1.0
    assert job.patches_written == len(job.patches) > 0
    written = job.patches_written
    assert job.stages["process"] == (3, 3)
    assert any("complete" in line for line in job.log)
    gallery = state.gallery
    assert len(gallery.items) == job.patches_written
    assert {i["modality"] for i in gallery.items} == {"S2"} and all(len(i["outline"]) == 5 for i in gallery.items)
    first_date = gallery.dates()[0]
    gallery.date = first_date
    assert {i["date"] for i in gallery.filtered()} == {first_date}
    gallery.date = "all"
    gallery.page_size = 5
    assert len(gallery.page_items()) == 5 and gallery.n_pages == -(-len(gallery.items) // 5)
    meta = gallery.select(gallery.items[0]["path"])
    assert meta["patch_id"] == gallery.items[0]["patch_id"] and gallery.selected_item() is gallery.items[0]
    # the folder now holds a run: a second Run asks first; resumed, every unit is found complete and the
    # gallery still shows its patches
    assert not state.start_run() and state.folder.asking
    assert state.choose_folder("resume")
    state.job.wait()
    assert state.job.status == "complete" and state.job.patches_written == 0
    assert len(state.gallery.items) == written


def test_invalid_roi_keeps_the_previous_one_and_says_why(state: AppState) -> None:
    before = state.roi.geojson
    assert not state.roi.set_polygon([0, 1, 0, 1], [0, 1, 1, 0])  # a bow tie
    assert "crossing" in state.roi.error and state.roi.geojson == before
    assert not state.roi.set_text("{not json")
    assert "GeoJSON" in state.roi.error
    assert not state.roi.set_text(json.dumps({"type": "Point", "coordinates": [0, 0]}))
    assert not state.roi.set_box(-10, 30, 30, 70)  # far too big for the app
    assert "km²" in state.roi.error
    assert state.roi.set_text(json.dumps(DEMO_ROI_GEOJSON)) and state.roi.error == ""


def test_roi_from_pasted_configs(state: AppState) -> None:
    legacy = demo_config_dict()
    roi = RoiState()
    assert roi.set_text(json.dumps(legacy)) and roi.area_km2 == pytest.approx(6.25, rel=0.02)
    modern = {
        "name": "m",
        "roi": {"type": "Feature", "geometry": DEMO_ROI_GEOJSON},
        "dates": ["2021-01-01", "2021-02-01"],
    }
    assert roi.set_text(json.dumps(modern))
    assert not roi.set_text(json.dumps({"name": "x", "dates": ["2021-01-01", "2021-02-01"]}))


def test_invalid_dates_and_options_give_an_error_state(state: AppState) -> None:
    state.options.date_windows = [("2022-05-01", "2022-04-01")]
    assert state.config() is None and "dates" in state.message
    assert not state.start_search() and not state.start_run()
    assert state.search.status == "idle" and state.job.status == "idle"
    state.options.date_windows = [("2021-05-01", "2022-08-31")]
    state.options.source = "local"
    state.options.local_folder = "/nonexistent/products"  # said at once, before any search starts
    assert not state.start_search() and "is not a folder on this machine" in state.message
    assert state.search.status == "idle"
    state.roi.clear()
    assert state.config() is None and "ROI" in state.message


def test_date_windows_add_remove(state: AppState) -> None:
    options = state.options
    options.add_window()
    assert len(options.date_windows) == 2 and options.date_windows[1][0] == "2022-09-01"
    options.add_window("2023-01-01", "2023-01-31")
    options.remove_window(1)
    assert [w[0] for w in options.date_windows] == ["2021-05-01", "2023-01-01"]
    options.remove_window(0)
    options.remove_window(0)  # the last window stays: a run needs dates
    assert options.date_windows == [("2023-01-01", "2023-01-31")]
    config = state.config()
    assert config is not None and [w.label for w in config.date_windows] == ["20230101-20230131"]


def test_config_round_trip_both_forms_without_credentials(state: AppState, tmp_path: Path) -> None:
    state.options.source = "cdse"
    state.options.username, state.options.password = "someone", "s3cret-pass"
    state.options.patch_size, state.options.overlap = 96, 16
    for form in ("modern", "legacy"):
        path = tmp_path / f"{form}.json"
        assert state.save_config(path, form=form), state.message
        text = path.read_text()
        assert "s3cret-pass" not in text and "someone" not in text
        assert "s3cret-pass" not in state.config_text(form)
        config = load_config(path)
        assert config.patch.size == (96, 96) and config.patch.overlap == (16, 16)
        other = AppState()
        assert other.load_config_text(text), other.message
        assert other.options.patch_size == 96 and other.roi.area_km2 == pytest.approx(state.roi.area_km2, rel=1e-6)
        assert other.options.s2_bands == state.options.s2_bands


def test_legacy_cloud_mask_filtering_loads_as_the_roi_cloud_threshold() -> None:
    """A legacy config with ``cloud_mask_filtering`` keeps its ROI cloud threshold through the app."""
    other = AppState()
    legacy = {**demo_config_dict(), "cloudcover": [0, 30], "cloud_mask_filtering": True}
    assert other.load_config_text(json.dumps(legacy)), other.message
    assert other.options.roi_cloud_max == 30
    config = other.config()
    assert config is not None and config.roi_cloud_threshold == 30


def test_s1_options_map_to_bands_and_run_on_the_demo(state: AppState) -> None:
    options = state.options
    options.param.update(
        mode="s1_only",
        polarisations=["VV"],
        calibration="gamma0",
        db=False,
        terrain_flattening=True,
        s1_layers=["local_incidence_angle"],
        speckle_filter="refined_lee",
    )
    assert options.s1_bands() == ["gamma0T_VV", "local_incidence_angle"]
    config = state.config()
    assert config is not None, state.message
    assert config.bands_s1 == ("gamma0T_VV", "local_incidence_angle")
    assert config.s1.speckle_params()["name"] == "refined_lee" and config.s1.dem and config.s1.dem.endswith(".tif")
    options.param.update(
        calibration="sigma0", terrain_flattening=False, db=True, polarisations=["VV", "VH"], run_name="s1-app"
    )
    assert state.start_run()
    state.job.wait()
    assert state.job.status == "complete", (state.job.error, state.job.log)
    assert {i["modality"] for i in state.gallery.items} == {"S1"}
    image = patch_rgb(state.gallery.items[0]["path"])  # VV / VH false colour
    assert image.shape == (128, 128, 3) and image.std() > 5


def test_cancel_stops_the_job_and_leaves_no_partial_unit(state: AppState) -> None:
    state.options.patch_size = 16  # hundreds of small patches: the run lasts long enough to cancel
    state.options.run_name = "cancel-me"
    assert state.start_run()
    _wait(lambda: state.job.patches_written > 0)
    state.cancel_run()
    state.job.wait()
    assert state.job.status == "cancelled"
    outdir = Path(state.job.outdirs[0])
    report = json.loads((outdir / "run.json").read_text())
    assert report["status"] == "cancelled"
    for unit in (outdir / "patches").iterdir():
        assert (unit / "unit.json").exists() or not list(unit.iterdir())


def test_progress_moves_in_patches_within_a_unit_and_cancel_says_cancelling_at_once(state: AppState) -> None:
    state.options.patch_size = 16  # 256 patches per unit: the bar moves within each unit
    state.options.run_name = "progress"
    seen: list[tuple[float, int]] = []
    state.job.param.watch(lambda e: seen.append((state.job.fraction, state.job.units_done)), ["patches_done"])
    assert state.start_run()
    state.job.wait()
    job = state.job
    assert job.status == "complete", (job.error, job.log)
    assert job.patches_total == 3 * 256 and job.patches_done == job.patches_total and job.fraction == 1.0
    within_first_unit = {f for f, units in seen if units == 0 and 0 < f < 1 / 3}
    assert within_first_unit, f"the bar did not move before the first unit finished: {seen}"
    assert job.patches_kept == job.patches_written and job.running_units == {}
    # a second run, cancelled: "cancelling" at once, "cancelled" with the patches kept once stopped
    state.options.run_name = "progress-cancel"
    assert state.start_run()
    _wait(lambda: state.job.patches_done > 0)
    t0 = time.monotonic()
    state.cancel_run()
    assert state.job.status == "cancelling" and time.monotonic() - t0 < 0.5
    state.job.wait()
    assert state.job.status == "cancelled" and time.monotonic() - t0 < 5.0
    assert state.job.patches_kept <= state.job.patches_written
    assert all(Path(i["path"]).exists() for i in state.gallery.items)  # the cancelled unit's patches left


def test_patch_layout_overlay_follows_size_and_overlap(state: AppState) -> None:
    assert len(state.patch_outlines()) == 4  # 256 x 256 px at 128
    state.options.patch_size = 64
    assert len(state.patch_outlines()) == 16
    state.options.overlap = 32
    assert len(state.patch_outlines()) == 49
    ring = state.patch_outlines()[0]
    assert len(ring) == 5 and ring[0] == ring[-1]


def test_session_registry_reattaches_and_expires() -> None:
    registry = SessionRegistry(grace=0.2)
    sid, first = registry.attach(None)
    assert registry.attach(sid)[1] is first  # a reload gets the same state (and job)
    other_sid, other = registry.attach(None)
    assert other is not first and other_sid != sid
    registry.detach(sid)
    registry.detach(sid)
    assert registry.attach(sid)[1] is first  # back within the grace period
    registry.detach(sid)
    time.sleep(0.3)
    registry.detach(other_sid)  # any later call drops sessions gone for longer than the grace period
    assert registry.attach(sid)[1] is not first


def test_thumbnails_true_colour_and_mask_overlay(state: AppState) -> None:
    assert state.start_run()
    state.job.wait()
    info = next(i for i in state.gallery.items if i["cloud"] and i["cloud"] > 0.2)
    plain, masked = patch_rgb(info["path"], masks=False), patch_rgb(info["path"], masks=True)
    assert (masked[..., 0] >= plain[..., 0]).all() and (masked != plain).any()
    assert thumbnail_png(info["path"]).startswith(b"\x89PNG")
    assert patch_info(Path(info["path"]).with_name("missing.tif")) is None
    assert np.isfinite(info["valid"])


def test_a_failing_product_shows_its_error_and_the_others_finish(state: AppState, tmp_path: Path) -> None:
    import shutil

    from senprep_core.demo.catalog import build_demo_catalog, default_demo_folder

    build_demo_catalog(default_demo_folder())
    folder = tmp_path / "products"
    folder.mkdir()
    products = sorted(
        p
        for p in default_demo_folder().iterdir()
        if p.name.startswith("S2") and "L2A" in p.name and p.suffix == ".SAFE"
    )
    for product in products:
        shutil.copytree(product, folder / product.name)
    band = next((folder / products[0].name).rglob("*_B04_10m.jp2"))
    band.write_bytes(band.read_bytes()[:2000])  # truncated: this product fails
    state.options.param.update(source="local", local_folder=str(folder), run_name="one-broken")
    assert state.start_run()
    state.job.wait()
    job = state.job
    assert job.status == "partial", job.log
    assert len(products) == 2 and job.units_failed == 1 and job.units_done == job.units_total == 2
    assert len(job.failures) == 1 and products[0].name.removesuffix(".SAFE") in job.failures[0]
    assert len(state.gallery.items) == job.patches_written > 0


def test_state_classes_do_not_import_panel() -> None:
    import subprocess
    import sys

    code = "import sys, app.state, app.render; sys.exit('panel' in sys.modules or 'bokeh' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[1]).returncode == 0


def test_pairing_mode_preview_lists_pairs_with_their_time_difference(state: AppState) -> None:
    state.options.mode = "s2_with_closest_s1"
    assert state.start_search(), state.message
    state.search.wait()
    assert state.search.status == "done", state.search.error
    families = sorted(r["family"] for r in state.search.rows)
    assert families.count("S2") == 3 and families.count("S1") >= 1
    pairs = {p["primary"][:26]: p for p in state.search.pairs}
    assert len(state.search.pairs) == 3
    april = pairs["S2B_MSIL2A_20220420T113619"]
    assert april["secondary"].startswith("S1A_IW_GRDH_1SDV_20220421") and 18 < april["dt_hours"] < 20
    lonely = [p for p in state.search.pairs if p["secondary"] is None]
    assert len(lonely) == 2 and all("no S1" in p["reason"] for p in lonely)
    assert state.search.paired_ids() == {april["primary"], april["secondary"]}


def test_account_fields_reach_the_provider_in_a_private_file_that_is_removed(
    state: AppState, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import stat

    import app.state.search as search_module
    from senprep_core.catalog.records import SearchResult
    from senprep_core.fetch.credentials import CredentialFiles

    seen: list[tuple[str, CredentialFiles, dict[str, str] | None, int]] = []

    class _Empty:
        name = "cdse"

        def search(self, query: object) -> SearchResult:
            return SearchResult(())

    def fake_open(source: str, credentials: CredentialFiles | None = None) -> _Empty:
        files = CredentialFiles.of(credentials)
        path = files.earthdata if source == "asf" else files.copernicus
        data = json.loads(Path(path).read_text()) if path else None
        mode = stat.S_IMODE(os.stat(path).st_mode) if path else 0
        seen.append((source, files, data, mode))
        return _Empty()

    monkeypatch.setattr(search_module, "open_provider", fake_open)
    state.options.username, state.options.password = "me@example.org", "s3cret-pass"
    for source, kind in (("cdse", "copernicus"), ("asf", "earthdata")):  # asf's account is an Earthdata Login
        state.options.source = source
        assert state.start_search()
        state.search.wait()
        (seen_source, files, data, mode) = seen[-1]
        path = files.given().get(kind)
        assert seen_source == source and list(files.given()) == [kind]
        assert data == {"username": "me@example.org", "password": "s3cret-pass"}
        assert mode == 0o600 and path is not None and not Path(path).exists()  # only the owner, and gone after
    assert "s3cret-pass" not in json.dumps(state.options.config_dict(DEMO_ROI_GEOJSON))


# ----- one pairing: the preview plans as `senprep plan` does ----------------------------------------------


@pytest.fixture(scope="module")
def multitemporal_products(demo_products: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo products and one more S1 acquisition, 12 days before the descending one on its relative orbit
    (the demo's two S1 products are on two orbits: alone they make no multitemporal unit)."""
    from dataclasses import replace
    from datetime import timedelta

    from senprep_core.demo.catalog import demo_s1_specs
    from senprep_core.demo.s1 import make_s1_product

    folder = tmp_path_factory.mktemp("multitemporal-products")
    for product in demo_products.iterdir():
        (folder / product.name).symlink_to(product)
    spec = demo_s1_specs()[1]
    make_s1_product(replace(spec, start_time=spec.start_time - timedelta(days=12), seed=spec.seed + 1), folder)
    return folder


@pytest.mark.parametrize("mode", MODES)
def test_preview_gives_the_units_of_senprep_plan_in_every_mode(
    state: AppState,
    demo_products: Path,
    multitemporal_products: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    mode: str,
) -> None:
    folder = multitemporal_products if mode == "s1_multitemporal" else demo_products
    state.options.param.update(mode=mode, source="local", local_folder=str(folder), dem=str(folder / DEMO_DEM))
    config = state.config()
    assert config is not None, state.message
    state.search.run_now(config, [state.options.source_spec()])
    assert state.search.status == "done", state.search.error
    assert state.save_config(tmp_path / "app.json"), state.message  # the CLI plans the app's own config
    capsys.readouterr()
    assert senprep(["plan", "--config", str(tmp_path / "app.json"), "--source", f"local:{folder}", "--json"]) == 0
    planned = json.loads(capsys.readouterr().out)
    expected = [(u["unit_id"], u["kind"]) for u in planned["units"]]
    assert expected, f"no {mode} unit on the demo products: the comparison would mean nothing"
    assert [(u["unit_id"], u["kind"]) for u in state.search.units] == expected
    # every product found is a row: used by a unit, or left out with the plan's reason
    rows = {r["product_id"]: r for r in state.search.rows}
    used = {p["product_id"] for u in planned["units"] for p in u["products"]}
    assert {pid for pid, r in rows.items() if r["used"]} == used and used <= set(rows)
    reasons = {d["product_id"]: d["reason"] for d in planned["not_selected"]}
    assert all(r["why"] == reasons.get(pid, NOT_USED) for pid, r in rows.items() if not r["used"])
    assert all(r["why"] == "" and r["units"] for r in rows.values() if r["used"])
    pairs = {(p["primary"], p["secondary"]) for p in state.search.pairs if p["secondary"] is not None}
    assert pairs == {tuple(p["product_id"] for p in u["products"]) for u in planned["units"] if len(u["products"]) > 1}


# ----- the run folder: one per session, never shared, asked before it is reused ------------------------------


def test_each_session_has_its_own_default_run_folder() -> None:
    first, second = AppState.with_demo_defaults(), AppState.with_demo_defaults()
    assert re.fullmatch(r"app-demo-[0-9a-f]{6}", first.options.run_name)
    assert first.options.run_name != second.options.run_name
    assert AppState().options.run_name != AppState().options.run_name
    assert first.config() is not None and second.config() is not None  # valid run names
    registry = SessionRegistry()
    sid, state = registry.attach(None)
    assert state.session_id == sid and state.options.run_name == f"app-demo-{sid[:6]}"
    _, odd = registry.attach("not/a hex id")  # an id from a URL: the run name takes a hash of it
    assert re.fullmatch(r"app-demo-[0-9a-f]{6}", odd.options.run_name)


def test_a_folder_in_use_is_reported_with_its_holder_and_nothing_starts(
    state: AppState, demo_products: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import app.state.session as session_module

    state.options.param.update(source="local", local_folder=str(demo_products), workers=0)
    outdir = Path(state.options.outdir) / state.options.run_name
    outdir.mkdir(parents=True)
    lock = RunFolder(outdir).lock("cli-run")
    lock.acquire()  # a CLI run (or a tab that chose the same name) holds the folder
    holder = f"run 'cli-run' (pid {os.getpid()} on {socket.gethostname()}, started "
    try:
        assert not state.start_run()
        assert holder in state.folder.notice and not state.folder.asking and holder in state.message
        assert state.job.status == "idle" and not state.job.running
        assert not state.choose_folder("overwrite")  # no question is open: nothing to overwrite
        # taken between the app's look and the run's own lock: the job says who, and goes back to idle
        monkeypatch.setattr(session_module, "check_folder", lambda _outdir: FolderCheck("free"))
        assert state.start_run()
        state.job.wait()
        job = state.job
        assert job.status == "idle" and holder in job.error and job.outdirs == [] and job.units_total == 0
        assert holder in state.folder.notice
        assert [p.name for p in outdir.iterdir()] == [LOCK_FILE]  # nothing written
    finally:
        lock.release()
    monkeypatch.undo()
    assert state.start_run()  # the holder is gone: the same session runs there
    state.job.wait()
    assert state.job.status == "complete" and state.folder.notice == ""


def _report(outdir: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((outdir / "run.json").read_text())


def _statuses(outdir: Path) -> dict[str, str]:
    return {u["unit_id"]: u["status"] for u in _report(outdir)["units"]}


def test_a_folder_holding_a_run_asks_then_resumes_overwrites_or_takes_a_new_name(
    state: AppState, demo_products: Path
) -> None:
    options = state.options
    options.param.update(source="local", local_folder=str(demo_products), workers=0)
    outdir = Path(options.outdir) / options.run_name
    assert state.start_run()
    state.job.wait()
    assert state.job.status == "complete"
    units = sorted(_statuses(outdir))
    assert len(units) == 3
    # the folder holds a run: nothing starts until the user chooses
    assert not state.start_run()
    assert state.folder.asking and state.folder.pending == str(outdir) and "complete run" in state.folder.notice
    assert state.job.status == "complete" and not state.job.running
    # resume: complete units are verified and kept ("skipped"), a damaged one is redone
    damaged = sorted((outdir / "patches" / units[0]).glob("*.tif"))[0]
    damaged.write_bytes(damaged.read_bytes()[:100])
    assert state.choose_folder("resume")
    state.job.wait()
    assert state.job.status == "complete" and not state.folder.asking
    assert _statuses(outdir) == {units[0]: "done", units[1]: "skipped", units[2]: "skipped"}
    # overwrite: a fresh run, none of the old files left
    stale = outdir / "patches" / "an-old-unit"
    stale.mkdir()
    (stale / "x.tif").write_bytes(b"old")
    old = time.time() - 10 * 365 * 86400
    old_files = [p for p in outdir.rglob("*") if p.is_file() and p.name not in (LOCK_FILE, WRITERS_FILE)]
    for path in old_files:
        os.utime(path, (old, old))
    assert not state.start_run() and state.folder.asking
    assert state.choose_folder("overwrite")
    state.job.wait()
    assert state.job.status == "complete" and not stale.exists(), (state.job.error, state.job.log)
    assert _statuses(outdir) == dict.fromkeys(units, "done")
    left = [p for p in outdir.rglob("*") if p.is_file() and p.stat().st_mtime < old + 1 and p.name != WRITERS_FILE]
    assert left == [] and len(old_files) > 10
    # new name: the first free <name>-N; the folder that held the run stays as it was
    before = (outdir / "run.json").read_bytes()
    assert not state.start_run() and state.folder.asking
    assert state.choose_folder("new_name")
    other = outdir.parent / f"{outdir.name}-2"
    assert options.run_name == other.name and state.job.outdirs == [str(other)]
    state.job.wait()
    assert state.job.status == "complete" and _report(other)["status"] == "complete"
    assert (outdir / "run.json").read_bytes() == before
    assert sorted(_statuses(other)) == units


def test_fields_say_at_once_what_is_wrong(tmp_path: Path) -> None:
    from app.state.options import check_local_folder, check_overlap, check_patch_size, check_window

    assert check_patch_size(128) == "" and check_overlap(0, 128) == ""
    for bad in (0, -5, 100000, None):
        assert "16 to 4096 px" in check_patch_size(bad)
    assert "smaller than the patch size" in check_overlap(128, 128) and "0 px or more" in check_overlap(-1, 128)
    assert check_window("2021-05-01", "2021-06-01") == ""
    assert "before the start" in check_window("2021-06-01", "2021-05-01")
    assert "YYYY-MM-DD" in check_window(None, "2021-05-01")
    assert "not a folder" in check_local_folder(str(tmp_path / "missing"))
    assert "give the folder" in check_local_folder("  ")
    assert "holds no .SAFE" in check_local_folder(str(tmp_path))
    (tmp_path / "S2A_MSIL2A_X.SAFE").mkdir()
    assert check_local_folder(str(tmp_path)) == ""


def test_results_go_when_the_roi_changes_and_the_grid_count_is_not_capped(state: AppState) -> None:
    assert state.start_search()
    state.search.wait()
    assert state.search.status == "done" and state.search.rows
    state.search.selected = state.search.rows[0]["product_id"]
    w, s, e, n = state.roi.bounds()  # type: ignore[misc]
    assert state.roi.set_box(w + 0.005, s + 0.003, e - 0.005, n - 0.003)
    assert state.search.status == "idle" and state.search.rows == [] and state.search.selected == ""
    state.roi.set_box(w, s, e, n)
    state.options.param.update(patch_size=16, overlap=12)  # 62 x 62 patches over the 2.5 km demo box
    assert state.n_patches() == 62 * 62 == len(state.patch_outlines()) > 2000
    # a local source without a usable folder is refused with the reason, not a command-line hint
    state.options.param.update(source="local", local_folder="/no/such/folder")
    assert state.config() is None and "is not a folder" in state.message


def test_radar_products_have_no_cloud_cell() -> None:
    from app.views.preview import _cells

    cells = _cells({"product_id": "S1A_IW_GRDH_X", "cloud": None, "coverage": 99.04})
    assert cells["cloud"] == "–" and cells["coverage"] == "99.0"
