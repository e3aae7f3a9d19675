"""The run folder: one run at a time (an OS lock naming its holder), verified completeness, an honest status."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from senprep_core.cli import main
from senprep_core.config import parse_config
from senprep_core.errors import RunFolderBusyError
from senprep_core.outputs.run_folder import RunFolder
from senprep_core.pipeline import run
from tests.conftest import N_SCALE_PRODUCTS, run_files, scale_config_dict

FEW_BANDS = {"bands": ["B02", "B03"]}


def _cli(config: dict[str, Any], outdir: Path, products: Path, tmp: Path, *extra: str) -> subprocess.Popen[str]:
    path = tmp / f"{config['name']}.json"
    path.write_text(json.dumps(config))
    cmd = [sys.executable, "-m", "senprep_core.cli", "run", "--config", str(path), "--outdir", str(outdir),
           "--source", f"local:{products}", *extra]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_holder(folder: RunFolder, timeout: float = 60.0) -> int:
    """The pid of the run that holds the folder, once one does."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        holder = folder.holder()
        if holder is not None and holder.pid:
            return holder.pid
        time.sleep(0.02)
    raise AssertionError("no run took the folder's lock")


def _big_roi() -> dict[str, Any]:
    """A 6 km square inside the demo tile: a run of the eight products takes several seconds."""
    left, bottom, right, top = 419500.0, 6190000.0, 425500.0, 6196000.0
    ring = [
        project_point(x, y) for x, y in ((left, bottom), (right, bottom), (right, top), (left, top), (left, bottom))
    ]
    return {"type": "Polygon", "coordinates": [[[round(x, 7), round(y, 7)] for x, y in ring]]}


def project_point(x: float, y: float) -> tuple[float, float]:
    from pyproj import Transformer

    lon, lat = Transformer.from_crs(32630, 4326, always_xy=True).transform(x, y)
    return float(lon), float(lat)


def _bands_written(outdir: Path) -> set[tuple[str, ...]]:
    return {tuple(json.loads(p.read_text())["bands"]) for p in outdir.glob("patches/*/*_S2.json")}


def test_a_second_run_on_a_busy_folder_exits_2_naming_the_first_and_changes_nothing(
    scale_products: Path, tmp_path: Path
) -> None:
    outdir = tmp_path / "out"
    first = _cli(scale_config_dict(name="first", roi=_big_roi()), outdir, scale_products, tmp_path)
    pid = _wait_for_holder(RunFolder(outdir))
    time.sleep(0.3)
    second = _cli(scale_config_dict(name="second", sentinel2=FEW_BANDS), outdir, scale_products, tmp_path)
    _, err = second.communicate(timeout=120)
    assert first.poll() is None, "the first run should still be running"
    assert second.returncode == 2, err
    assert f"in use by run 'first' (pid {pid} on " in err and "--wait" in err
    out, _ = first.communicate(timeout=120)
    assert first.returncode == 0 and out.startswith("complete: 8 products processed")
    folder = RunFolder(outdir)
    assert json.loads(folder.config_file.read_text())["name"] == "first" and folder.read_report()["name"] == "first"
    assert _bands_written(outdir) == {("B02", "B03", "B04", "B08", "B11", "SCL")}  # no patch of the second
    assert all(c.complete for c in folder.verify()) and len(folder.unit_ids()) == N_SCALE_PRODUCTS


def test_with_wait_the_second_run_starts_when_the_first_ends(scale_products: Path, tmp_path: Path) -> None:
    outdir = tmp_path / "out"
    first = _cli(scale_config_dict(name="first", roi=_big_roi()), outdir, scale_products, tmp_path)
    _wait_for_holder(RunFolder(outdir))
    time.sleep(0.3)
    second = _cli(scale_config_dict(name="second", sentinel2=FEW_BANDS), outdir, scale_products, tmp_path, "--wait")
    out1, _ = first.communicate(timeout=120)
    out2, err2 = second.communicate(timeout=120)
    assert first.returncode == 0 and second.returncode == 0, err2
    assert "in use by run 'first'" in err2 and "waiting for it to finish" in err2
    assert out1.startswith("complete: 8 products processed") and out2.startswith("complete: 8 products processed")
    folder = RunFolder(outdir)
    assert folder.read_report()["name"] == "second" and folder.read_report()["status"] == "complete"
    assert _bands_written(outdir) == {("B02", "B03")}  # the second run's patches replaced the first's


def test_run_api_refuses_a_busy_folder(scale_products: Path, tmp_path: Path) -> None:
    folder = RunFolder(tmp_path / "out")
    folder.create()
    lock = folder.lock("holder")
    lock.acquire()
    try:
        with pytest.raises(RunFolderBusyError, match="in use by run 'holder'"):
            run(parse_config(scale_config_dict()), folder.root, sources=[f"local:{scale_products}"])
    finally:
        lock.release()
    assert not folder.run_file.exists()


def _damage(outdir: Path) -> tuple[str, str, str, str]:
    """Truncate a patch of one unit and flip a byte in a patch of another; (unit, file) of each."""
    units = sorted(p for p in (outdir / "patches").iterdir())
    truncated = units[1] / "r001_c001_S2.tif"
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    flipped = units[4] / "r000_c002_S2.tif"
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0xFF
    flipped.write_bytes(bytes(data))
    return units[1].name, truncated.name, units[4].name, flipped.name


def test_verify_names_truncated_and_altered_patches_and_a_rerun_redoes_exactly_them(
    scale_products: Path, scale_serial_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outdir = Path(shutil.copytree(scale_serial_run, tmp_path / "run"))
    unit_a, file_a, unit_b, file_b = _damage(outdir)
    assert main(["status", str(outdir), "--verify", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    damaged = {u: c for u, c in summary["verified"].items() if c["state"] != "complete"}
    assert set(damaged) == {unit_a, unit_b} and set(summary["to_redo"]) == {unit_a, unit_b}
    assert f"{file_a} has " in damaged[unit_a]["problems"][0] and "bytes instead of" in damaged[unit_a]["problems"][0]
    assert f"{file_b} was altered" in damaged[unit_b]["problems"][0]
    result = run(parse_config(scale_config_dict()), outdir, sources=[f"local:{scale_products}"])
    assert {r.unit_id for r in result.results if r.status == "done"} == {unit_a, unit_b}
    assert sum(r.status == "skipped" for r in result.results) == N_SCALE_PRODUCTS - 2
    assert run_files(outdir) == run_files(scale_serial_run)
    assert all(c.complete for c in RunFolder(outdir).verify())


def test_a_manifest_from_another_config_is_not_complete(scale_serial_run: Path) -> None:
    folder = RunFolder(scale_serial_run)
    unit = folder.unit_ids()[0]
    assert folder.check_unit(unit, folder.read_report()["config_fingerprint"]).complete
    assert folder.check_unit(unit, "0" * 16).state == "stale"


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_log_line(
    scale_products: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    folder = RunFolder(tmp_path / "out")
    folder.create()
    holder = {"pid": int(dead.stdout), "host": os.uname().nodename, "started": "2026-01-01T00:00:00Z", "run": "old"}
    (folder.root / ".senprep.lock").write_text(json.dumps(holder))
    with caplog.at_level(logging.WARNING, logger="senprep_core.outputs.folder_lock"):
        result = run(parse_config(scale_config_dict(dates=["2022-06-01", "2022-06-30"])), folder.root,
                     sources=[f"local:{scale_products}"])  # fmt: skip
    assert result.status == "complete"
    assert any("taking over the lock of run 'old'" in r.getMessage() for r in caplog.records)
    holder = json.loads((folder.root / ".senprep.lock").read_text())
    assert holder["pid"] == os.getpid() and holder["released"]


def test_status_says_interrupted_when_the_running_process_is_gone(scale_serial_run: Path, tmp_path: Path) -> None:
    outdir = Path(shutil.copytree(scale_serial_run, tmp_path / "run"))
    report = json.loads((outdir / "run.json").read_text())
    (outdir / "run.json").write_text(json.dumps({**report, "status": "running"}))
    assert RunFolder(outdir).summary().status == "interrupted"


def test_a_run_that_fails_before_writing_leaves_no_folder(tmp_path: Path) -> None:
    outdir = tmp_path / "never"
    assert main(["run", "--config", str(_write(tmp_path, scale_config_dict())), "--outdir", str(outdir),
                 "--source", f"local:{tmp_path / 'no-such-folder'}", "--quiet"]) == 2  # fmt: skip
    assert not outdir.exists()


def _write(tmp: Path, config: dict[str, Any]) -> Path:
    path = tmp / "config.json"
    path.write_text(json.dumps(config))
    return path
