"""Bad S1 inputs give a clear error per product while the other products complete."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import pytest

from senprep_core.catalog.records import ProductRecord, SearchQuery, SearchResult
from senprep_core.config import parse_config
from senprep_core.demo.s1 import make_s1_product, s1_ground_truth
from senprep_core.demo.s1_spec import S1DemoSpec
from senprep_core.pipeline import make_plan, run

SPEC = S1DemoSpec(
    start_time=datetime(2022, 5, 3, 17, 41, 35),
    centre_lon=-4.25,
    centre_lat=55.86,
    lines=900,
    samples=800,
    dem="hilly",
    seed=9,
)


def _roi(truth: object, shrink: float = 0.3) -> dict:
    lons = [p[0] for p in truth.footprint]  # type: ignore[attr-defined]
    lats = [p[1] for p in truth.footprint]  # type: ignore[attr-defined]
    cx, cy = (min(lons) + max(lons)) / 2, (min(lats) + max(lats)) / 2
    hx, hy = (max(lons) - min(lons)) * shrink / 2, (max(lats) - min(lats)) * shrink / 2
    ring = [[cx - hx, cy - hy], [cx + hx, cy - hy], [cx + hx, cy + hy], [cx - hx, cy + hy], [cx - hx, cy - hy]]
    return {"type": "Polygon", "coordinates": [ring]}


def _config(truth: object, dem: Path, roi: dict | None = None) -> dict:
    return {
        "name": "bad",
        "roi": roi or _roi(truth),
        "dates": ["2022-01-01", "2022-12-31"],
        "mode": "s1_only",
        "patches": {"size": [64, 64]},
        "sentinel1": {"bands": ["sigma0_VV"], "dem": str(dem), "speckle_filter": "none"},
        "output": {"min_valid_fraction": 0.1},
    }


@pytest.fixture(scope="module")
def products(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    """A good product, one without calibration XML and one with a truncated measurement TIFF."""
    root = tmp_path_factory.mktemp("s1-bad")
    folder = root / "products"
    good = make_s1_product(SPEC, folder)
    no_cal = make_s1_product(replace(SPEC, start_time=datetime(2022, 5, 15, 17, 41, 35)), folder)
    for xml in (no_cal / "annotation" / "calibration").glob("calibration-*.xml"):
        xml.unlink()
    truncated = make_s1_product(replace(SPEC, start_time=datetime(2022, 5, 27, 17, 41, 35)), folder)
    for tiff in (truncated / "measurement").glob("*vv*.tiff"):
        data = tiff.read_bytes()
        tiff.write_bytes(data[: len(data) // 3])
    assert good.exists()
    truth = s1_ground_truth(SPEC)
    dem = truth.write_dem(root / "dem.tif")
    return folder, dem, truth


def test_missing_calibration_and_truncated_tiff_fail_alone(products: tuple[Path, Path, object], tmp_path: Path) -> None:
    folder, dem, truth = products
    result = run(parse_config(_config(truth, dem)), tmp_path / "out", sources=[f"local:{folder}"])
    by_status = {r.unit_id: r for r in result.results}
    assert len(by_status) == 3
    assert result.status == "partial" and result.exit_code == 1
    done = [r for r in result.results if r.status == "done"]
    assert len(done) == 1 and done[0].patches_written > 0
    errors = {r.error_type: r.error_message or "" for r in result.results if r.status == "failed"}
    assert "calibration" in errors["MetadataError"] and "re-download" in errors["MetadataError"]
    assert errors["CorruptProductError"] and "download" in errors["CorruptProductError"]
    report = json.loads((tmp_path / "out" / "run.json").read_text())
    assert report["counts"]["failed"] == 2 and report["counts"]["done"] == 1
    leftovers = [p for p in (tmp_path / "out" / "patches").rglob("*") if ".tmp-" in p.name]
    assert not leftovers


def test_dem_not_covering_the_roi_is_a_clear_error(products: tuple[Path, Path, object], tmp_path: Path) -> None:
    folder, _dem, truth = products
    import numpy as np
    import rasterio
    from affine import Affine

    small = tmp_path / "far-dem.tif"
    transform = Affine(0.001, 0, 10.0, 0, -0.001, 45.0)
    profile = {"driver": "GTiff", "width": 10, "height": 10, "count": 1, "dtype": "float32", "crs": "EPSG:4979"}
    profile["transform"] = transform
    with rasterio.open(small, "w", **profile) as dst:
        dst.write(np.zeros((1, 10, 10), dtype="float32"))
    result = run(parse_config(_config(truth, small)), tmp_path / "out", sources=[f"local:{folder}"])
    assert result.status == "failed"
    for unit in result.results:
        assert unit.error_type in ("DEMError", "MetadataError", "CorruptProductError")
    dem_errors = [r.error_message or "" for r in result.results if r.error_type == "DEMError"]
    assert dem_errors and all("cover" in m for m in dem_errors)


@dataclass
class _Everything:
    """A provider that offers every product whatever the ROI (like a catalogue with a loose footprint)."""

    records: tuple[ProductRecord, ...]
    name: str = "loose"

    def search(self, query: SearchQuery) -> SearchResult:
        return SearchResult(self.records)


def test_roi_outside_the_scene_is_a_clear_error(products: tuple[Path, Path, object], tmp_path: Path) -> None:
    folder, _dem, truth = products
    from senprep_core.catalog.local import _s1_record
    from senprep_core.productfs import ProductLocation

    good = sorted(p for p in folder.iterdir() if p.name.endswith(".SAFE"))[0]
    far_truth = s1_ground_truth(replace(SPEC, centre_lon=-3.2))  # the same scene shifted ~65 km east
    data = _config(truth, Path("flat:0"), roi=_roi(far_truth))
    data["sentinel1"] = {"bands": ["sigma0_VV"], "dem": "flat:0", "speckle_filter": "none"}
    config = parse_config(data)
    record = _s1_record(ProductLocation.open(good), "local")
    # with its footprint, planning leaves the product out (it covers none of the ROI)
    plan = make_plan(config, providers=[_Everything((record,))])
    assert not plan.units and "less than 0.1 % of the ROI" in plan.not_selected[0].reason
    # without one (a catalogue that gives none), the chain itself finds out
    provider = _Everything((replace(record, footprint=None),))
    result = run(config, tmp_path / "out", providers=[provider])
    assert result.status == "failed"
    (unit,) = result.results
    assert unit.error_type == "OutsideSceneError"
    assert "does not overlap" in (unit.error_message or "")
    shutil.rmtree(tmp_path / "out")
