"""Re-runs skip complete work, --rebuild redoes it, and a killed run resumes cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pystac
import pytest

from senprep_core.cli import main
from senprep_core.errors import OutputError, RunFolderBusyError
from senprep_core.outputs.run_folder import LOCK_FILE, RunFolder

RUNS = ("s2", "s1")  # senprep demo writes one run per mission


def _outputs(outdir: Path) -> dict[Path, int]:
    return {
        p: p.stat().st_mtime_ns
        for p in outdir.rglob("*")
        if p.is_file() and p.name not in ("run.json", ".senprep.lock")
    }


def _demo(outdir: Path, products: Path, *extra: str) -> int:
    return main(["demo", "--outdir", str(outdir), "--products", str(products), "--quiet", *extra])


def test_second_run_rewrites_nothing_and_rebuild_rewrites(demo_products: Path, tmp_path: Path) -> None:
    outdir = tmp_path / "run"
    assert _demo(outdir, demo_products) == 0
    first = _outputs(outdir)
    assert any(p.suffix == ".tif" for p in first)
    time.sleep(0.05)
    assert _demo(outdir, demo_products) == 0
    assert _outputs(outdir) == first
    for run_name in RUNS:
        report = json.loads((outdir / run_name / "run.json").read_text())
        assert report["counts"]["skipped"] == len(report["units"]) > 0 and report["counts"]["done"] == 0

    assert _demo(outdir, demo_products, "--rebuild", "true") == 0
    rebuilt = _outputs(outdir)
    tifs = [p for p in first if p.suffix == ".tif"]
    assert set(rebuilt) == set(first)
    assert all(rebuilt[p] > first[p] for p in tifs)


def test_killed_run_resumes_to_a_complete_valid_output(demo_products: Path, tmp_path: Path) -> None:
    outdir = tmp_path / "run"
    cmd = [sys.executable, "-m", "senprep_core.cli", "demo", "--outdir", str(outdir), "--products", str(demo_products),
           "--quiet"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    first_run = outdir / "s2"
    while time.time() < deadline and not list(first_run.glob("patches/*/*.tif")):
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list(first_run.glob("patches/*/*.tif")), "the run ended before it could be killed mid-way"
    assert (
        not (first_run / "catalog.json").exists()
        or json.loads((first_run / "run.json").read_text())["status"] != "complete"
    )

    assert _demo(outdir, demo_products) == 0
    assert not [p for p in outdir.rglob("*") if ".tmp-" in p.name]
    for run_name, modality in zip(RUNS, ("S2", "S1"), strict=True):
        run_dir = outdir / run_name
        report = json.loads((run_dir / "run.json").read_text())
        assert report["status"] == "complete"
        catalog = pystac.Catalog.from_file(str(run_dir / "catalog.json"))
        items = list(catalog.get_items(recursive=True))
        tifs = sorted(run_dir.glob(f"patches/*/*_{modality}.tif"))
        in_manifests = sum(len(json.loads(m.read_text())["patches"]) for m in run_dir.glob("patches/*/unit.json"))
        assert len(items) == len(tifs) == in_manifests > 0


def test_stale_temp_files_are_removed(demo_products: Path, tmp_path: Path) -> None:
    outdir = tmp_path / "run"
    assert _demo(outdir, demo_products) == 0
    stale = next((outdir / "s2").glob("patches/*")) / "r000_c000_S2.tmp-12345.tif"
    stale.write_bytes(b"half a file")
    assert _demo(outdir, demo_products) == 0
    assert not stale.exists()


def test_clear_deletes_a_run_only_in_a_free_senprep_run_folder(tmp_path: Path) -> None:
    """RunFolder.clear (the app's "overwrite"): the run's files go, the lock file stays; a folder in use,
    one without a run or one holding other files is left untouched."""
    folder = RunFolder(tmp_path / "run")
    folder.create()
    with pytest.raises(OutputError, match="holds no senprep run"):
        folder.clear()
    folder.write_report({"name": "run", "status": "complete"})
    folder.write_config({"name": "run"})
    folder.unit_dir("u1").mkdir(parents=True)
    (folder.unit_dir("u1") / "p_S2.tif").write_bytes(b"x")
    with folder.lock("someone"), pytest.raises(RunFolderBusyError, match="run 'someone'"):
        folder.clear()
    (folder.root / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match=r"did not write \(notes.txt\)"):
        folder.clear()
    assert folder.is_run() and (folder.unit_dir("u1") / "p_S2.tif").exists()
    (folder.root / "notes.txt").unlink()
    assert folder.clear("fresh") == ["config.json", "patches", "run.json"]
    assert [p.name for p in folder.root.iterdir()] == [LOCK_FILE] and folder.holder() is None
