"""Runs that say what happened: nothing matched, settings the mode ignores, sizes beyond the machine, a full or
read-only disk (real tmpfs mounts), each with a clear message and nothing half-written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from senprep_core import sizing
from senprep_core.cli import main
from senprep_core.config import parse_config
from senprep_core.demo.catalog import DEMO_ROI_GEOJSON
from senprep_core.outputs.run_folder import RunFolder
from senprep_core.pipeline import run
from tests.conftest import IN_CI, N_SCALE_PRODUCTS, scale_config_dict


def _config(tmp: Path, **changes: Any) -> Path:
    path = tmp / "config.json"
    path.write_text(json.dumps(scale_config_dict(**changes)))
    return path


def _swapped(geojson: dict[str, Any]) -> dict[str, Any]:
    """The ROI with latitude and longitude swapped (a common slip)."""
    ring = [[lat, lon] for lon, lat in geojson["coordinates"][0]]
    return {"type": "Polygon", "coordinates": [ring]}


def test_a_run_that_matches_nothing_says_so_with_the_roi_dates_and_sources(
    tmp_path: Path, scale_products: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outdir = tmp_path / "out"
    config = _config(tmp_path, roi=_swapped(DEMO_ROI_GEOJSON))
    code = main(["run", "--config", str(config), "--outdir", str(outdir), "--source", f"local:{scale_products}"])
    err = capsys.readouterr().err
    assert code == 0
    assert "nothing to process: no product matched (ROI lon 55.8" in err and "lat -4.2" in err
    assert "dates 2021-01-01 to 2023-12-31" in err and f"sources local:{scale_products}" in err
    assert "longitude, latitude" in err
    report = RunFolder(outdir).read_report()
    assert report["status"] == "empty" and report["plan"]["empty"].startswith("no product matched")


def test_dates_in_the_future_are_named(tmp_path: Path, scale_products: Path) -> None:
    config = parse_config(scale_config_dict(dates=["2099-01-01", "2099-01-31"]))
    result = run(config, tmp_path / "out", sources=[f"local:{scale_products}"])
    assert result.status == "empty" and result.exit_code == 0
    assert "the dates lie in the future" in (result.plan.empty_reason() or "")


def test_everything_left_out_gives_the_reasons(tmp_path: Path, demo_products: Path) -> None:
    from senprep_core.demo.catalog import demo_s1_config_dict

    data = demo_s1_config_dict(demo_products)
    data["sentinel1"] = {**data["sentinel1"], "relative_orbits": [1]}
    result = run(parse_config(data), tmp_path / "out", sources=[f"local:{demo_products}"])
    reason = result.plan.empty_reason() or ""
    assert result.status == "empty" and "products matched but none makes a unit" in reason
    assert "not in 1" in reason  # the orbit filter's reason, with its count


def test_settings_the_mode_ignores_are_warned_about(
    tmp_path: Path, scale_products: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, sentinel1={"bands": ["sigma0_VV"]}, dates=["2022-06-01", "2022-06-30"])
    code = main(["run", "--config", str(config), "--outdir", str(tmp_path / "out"), "--source",
                 f"local:{scale_products}", "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0 and "sentinel1.bands (sigma0_VV) are not used by mode s2_only" in err
    assert RunFolder(tmp_path / "out").read_report()["plan"]["warnings"]


def test_size_of_a_unit_is_estimated_from_the_grid_outline() -> None:
    config = parse_config(scale_config_dict(patches={"size": [100, 100]}))
    size = sizing.run_size(config)
    grid = config.grid()
    assert (size.grid_width, size.grid_height) == (grid.width, grid.height)
    assert size.patches == len(config.patches()) and size.bands == 6
    assert size.unit_bytes == int(size.patches * 6 * 100 * 100 * 4 * sizing.COMPRESSION)


def test_a_huge_roi_is_warned_about_and_one_beyond_memory_refused_unless_forced(
    tmp_path: Path, scale_products: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    big = sizing.RunSize(100_000, 100_000, 10.0, 600_000, 6, 128 * 128)  # a 1000 x 1000 km ROI
    warnings = sizing.size_warnings(big)
    assert any("1,000 x 1,000 km" in w for w in warnings) and any("600,000 patches" in w for w in warnings)
    monkeypatch.setattr(sizing, "available_memory", lambda: 10_000)  # as if this machine had 10 kB free
    config = _config(tmp_path)
    args = ["plan", "--config", str(config), "--source", f"local:{scale_products}"]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and "planning it needs about" in err and "--force" in err
    assert main([*args, "--force", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["units"]) == N_SCALE_PRODUCTS


# ----- real file systems: a small tmpfs, a read-only mount ------------------------------------------------


def _need_root_mounts() -> None:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        message = "mounting a tmpfs needs root and mount(8)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def _mount(path: Path, options: str) -> Iterator[Path]:
    _need_root_mounts()
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MB tmpfs."""
    yield from _mount(tmp_path / "disk", "size=24m")


@pytest.fixture
def read_only_disk(tmp_path: Path) -> Iterator[Path]:
    yield from _mount(tmp_path / "ro", "ro,size=1m")


def test_a_read_only_output_folder_exits_2(
    read_only_disk: Path, tmp_path: Path, scale_products: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--config", str(_config(tmp_path)), "--outdir", str(read_only_disk), "--source",
                 f"local:{scale_products}"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "cannot be written" in err and "Traceback" not in err
    code = main(["run", "--config", str(_config(tmp_path)), "--outdir", str(read_only_disk / "new"), "--source",
                 f"local:{scale_products}"])  # fmt: skip
    assert code == 2 and "cannot create output folder" in capsys.readouterr().err


def test_too_little_disk_for_the_plan_is_refused_at_start_unless_forced(
    small_disk: Path, tmp_path: Path, scale_products: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (23 << 20))  # about 1 MB stays free
    outdir = small_disk / "out"
    args = ["run", "--config", str(_config(tmp_path)), "--outdir", str(outdir), "--source", f"local:{scale_products}"]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and "the run will write about" in err and "MB free" in err and "--force" in err
    assert not outdir.exists()


def _fill(disk: Path) -> Path:
    """Write a file until the disk is full; return it."""
    filler = disk / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
        except OSError:
            pass
    return filler


def test_a_disk_filling_mid_run_stops_the_run_cleanly_and_a_rerun_resumes(
    small_disk: Path, tmp_path: Path, scale_products: Path
) -> None:
    outdir = small_disk / "out"
    cmd = [sys.executable, "-m", "senprep_core.cli", "run", "--config", str(_config(tmp_path)), "--outdir",
           str(outdir), "--source", f"local:{scale_products}", "--quiet"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not list(outdir.glob("patches/*/*.tif")):
        time.sleep(0.01)
    filler = _fill(small_disk)  # another program fills the disk while the run writes
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "stopped: the disk holding" in err and "is full" in err and "Traceback" not in err
    assert not [p for p in outdir.rglob("*") if ".tmp-" in p.name]
    complete = {d.name for d in (outdir / "patches").iterdir() if (d / "unit.json").exists()}
    for unit_dir in (outdir / "patches").iterdir():
        assert unit_dir.name in complete or not list(unit_dir.iterdir()), f"partial files in {unit_dir}"
    assert len(complete) < N_SCALE_PRODUCTS
    filler.unlink()
    result = run(parse_config(scale_config_dict()), outdir, sources=[f"local:{scale_products}"])
    assert result.status == "complete"
    assert {r.unit_id for r in result.results if r.status == "skipped"} == complete


def test_an_unreachable_scheduler_exits_2_before_anything_is_written(
    tmp_path: Path, scale_products: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from senprep_core import executors

    monkeypatch.setattr(executors, "CONNECT_SECONDS", 2)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    outdir = tmp_path / "out"
    code = main(["run", "--config", str(_config(tmp_path)), "--outdir", str(outdir), "--source",
                 f"local:{scale_products}", "--scheduler", f"tcp://127.0.0.1:{port}"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "no Dask scheduler answers there" in err and "Traceback" not in err
    assert not outdir.exists()  # no run.json claiming "running"
