"""End to end on the synthetic demo: patches equal the ground truth, on the expected grid, with a valid STAC catalog."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from pystac.validation.stac_validator import JsonSchemaSTACValidator
from scipy.ndimage import binary_dilation

from senprep_core.cli import main
from senprep_core.config import parse_config
from senprep_core.demo.catalog import build_demo_catalog, demo_config_dict, demo_specs
from senprep_core.demo.s2 import ground_truth
from senprep_core.geo.grid import TargetGrid


@pytest.fixture(scope="module")
def demo_run(demo_products: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("demo") / "run"
    code = main(["demo", "--outdir", str(outdir), "--products", str(demo_products), "--quiet"])
    assert code == 0
    return outdir / "s2"


def _patch_files(outdir: Path) -> list[Path]:
    return sorted(outdir.glob("patches/*/*_S2.tif"))


def test_demo_writes_patches_for_every_l2a_product(demo_run: Path) -> None:
    report = json.loads((demo_run / "run.json").read_text())
    l2a = [s for s in demo_specs() if s.level == "L2A"]
    assert report["status"] == "complete"
    assert report["counts"]["done"] + report["counts"]["rejected"] == len(l2a)
    assert report["counts"]["failed"] == 0
    assert report["counts"]["patches_written"] == len(_patch_files(demo_run)) > 0


def test_patch_grid_matches_config_grid(demo_run: Path) -> None:
    config = parse_config(demo_config_dict())
    grid = config.grid()
    for tif in _patch_files(demo_run):
        sidecar = json.loads(tif.with_suffix(".json").read_text())
        with rasterio.open(tif) as src:
            assert src.crs.to_epsg() == grid.epsg
            assert (src.height, src.width) == tuple(config.patch.size)
            t = src.transform
            assert t.a == grid.resolution and t.e == -grid.resolution
            # aligned on the ROI grid's pixel lattice, at the offset the sidecar states
            w = sidecar["window_in_roi_grid"]
            assert t.c == pytest.approx(grid.left + w["col_off"] * grid.resolution, abs=1e-6)
            assert t.f == pytest.approx(grid.top - w["row_off"] * grid.resolution, abs=1e-6)
            assert list(src.descriptions) == list(config.bands_s2)
            assert np.isnan(src.nodata)
            assert src.profile["compress"] == "zstd"


def test_patch_pixels_equal_ground_truth(demo_run: Path) -> None:
    config = parse_config(demo_config_dict())
    specs = {s.product_id: s for s in demo_specs()}
    checked = 0
    for tif in _patch_files(demo_run):
        sidecar = json.loads(tif.with_suffix(".json").read_text())
        spec = specs[sidecar["product_ids"][0]]
        grid = TargetGrid.from_dict(sidecar["grid"])
        with rasterio.open(tif) as src:
            data = src.read()
        for index, band in enumerate(config.bands_s2):
            truth = ground_truth(spec, grid, band)
            got = data[index]
            # interpolation may use a no-data neighbour within one coarse pixel (6 px at 60 m) of the edge
            near_edge = binary_dilation(np.isnan(truth), iterations=7)
            assert not np.isnan(got[~near_edge]).any(), f"{tif.name} {band}: unexpected no-data"
            assert np.isnan(got[np.isnan(truth)]).all(), f"{tif.name} {band}: data where the product has none"
            compare = ~near_edge
            assert compare.sum() > 0.3 * got.size
            np.testing.assert_allclose(got[compare], truth[compare], atol=1e-4, err_msg=f"{tif.name} {band}")
            checked += 1
    assert checked >= len(config.bands_s2)


def test_sidecar_records_products_fractions_and_config(demo_run: Path) -> None:
    config = parse_config(demo_config_dict())
    tif = _patch_files(demo_run)[0]
    sidecar = json.loads(tif.with_suffix(".json").read_text())
    assert sidecar["config_fingerprint"] == config.fingerprint()
    assert sidecar["bands"] == list(config.bands_s2)
    assert 0.5 <= sidecar["valid_fraction"] <= 1.0
    assert sidecar["cloud_fraction"] is None or 0.0 <= sidecar["cloud_fraction"] <= 1.0
    assert sidecar["software"]["name"] == "senprep"
    assert sidecar["reflectance"]["quantification_value"] == 10000


def test_stac_catalog_is_valid_and_lists_every_patch(demo_run: Path) -> None:
    catalog = pystac.Catalog.from_file(str(demo_run / "catalog.json"))
    items = list(catalog.get_items(recursive=True))
    assert len(items) == len(_patch_files(demo_run))
    validator = JsonSchemaSTACValidator()
    validator.validate_core(catalog.to_dict(), pystac.STACObjectType.CATALOG, pystac.get_stac_version())
    for item in items:
        validator.validate_core(item.to_dict(), pystac.STACObjectType.ITEM, pystac.get_stac_version(), item.id)
        assert item.properties["proj:code"].startswith("EPSG:326")
        assert item.properties["proj:shape"] == [128, 128]
        href = item.assets["S2"].get_absolute_href()
        assert href is not None and Path(href).exists()


def test_demo_catalog_generation_is_cached(demo_products: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in demo_products.rglob("*") if p.is_file()}
    build_demo_catalog(demo_products)
    after = {p: p.stat().st_mtime_ns for p in demo_products.rglob("*") if p.is_file()}
    assert before == after


def test_demo_s1_run_writes_terrain_corrected_patches(demo_run: Path) -> None:
    """The demo's Sentinel-1 run: both GRDs give dB patches near the truth, with sidecars and STAC items."""
    import numpy as np
    import pystac
    import rasterio
    from pyproj import Transformer

    from senprep_core.demo.catalog import demo_s1_specs
    from senprep_core.demo.s1 import s1_ground_truth

    s1_run = demo_run.parent / "s1"
    report = json.loads((s1_run / "run.json").read_text())
    assert report["status"] == "complete" and report["counts"]["done"] == len(demo_s1_specs()) == 2
    tifs = sorted(s1_run.glob("patches/*/*_S1.tif"))
    assert len(tifs) == report["counts"]["patches_written"] > 0
    truth = s1_ground_truth(demo_s1_specs()[0])
    for tif in tifs:
        sidecar = json.loads(tif.with_suffix(".json").read_text())
        assert sidecar["processing"]["geoid"] == "none"  # the demo DEM holds ellipsoidal heights
        assert sidecar["processing"]["orbit"] == "annotation"
        with rasterio.open(tif) as src:
            assert src.descriptions == ("sigma0_VV_dB", "sigma0_VH_dB", "local_incidence_angle")
            vv_db = src.read(1)
            xs = src.transform.c + (np.arange(src.width) + 0.5) * src.transform.a
            ys = src.transform.f + (np.arange(src.height) + 0.5) * src.transform.e
            lon, lat = Transformer.from_crs(src.crs, 4326, always_xy=True).transform(*np.meshgrid(xs, ys))
        expected = truth.sigma0("VV", lat, lon)
        grass = np.isfinite(vv_db) & (expected == 0.05)
        if grass.sum() > 2000:  # speckle-filtered grassland: the mean of linear values within 0.5 dB
            assert abs(10 * np.log10(np.mean(10 ** (vv_db[grass] / 10)) / 0.05)) < 0.5
    catalog = pystac.Catalog.from_file(str(s1_run / "catalog.json"))
    items = list(catalog.get_items(recursive=True))
    assert items and all(i.properties["constellation"] == "sentinel-1" for i in items)
    validator = pystac.validation.stac_validator.JsonSchemaSTACValidator()  # core schemas ship with pystac
    for item in items:
        validator.validate_core(item.to_dict(), pystac.STACObjectType.ITEM, pystac.get_stac_version(), item.id)


@pytest.mark.parametrize("filtering", [False, True])
def test_legacy_cloud_mask_filtering_rejects_products_cloudier_over_the_roi(
    demo_products: Path, tmp_path: Path, filtering: bool
) -> None:
    """``cloud_mask_filtering: true`` makes the ``cloudcover`` maximum an ROI-level threshold, judged from SCL.

    The demo tiles' metadata say 24.6, 16.1 and 29.9 % cloud; over the ROI their SCL says 34.6, 3.9 and
    73.7 %. With ``cloudcover: [0, 30]`` every tile passes the metadata filter; the ROI threshold then
    keeps only the 2022-04-20 product.
    """
    from senprep_core.pipeline import run

    config = parse_config({**demo_config_dict(), "cloudcover": [0, 30], "cloud_mask_filtering": filtering})
    result = run(config, tmp_path / "out", sources=[f"local:{demo_products}"])
    status = {r.unit_id[:19]: (r.status, r.reason) for r in result.results}
    assert len(status) == 3
    assert status["S2B_MSIL2A_20220420"][0] == "done"
    for unit in ("S2A_MSIL2A_20210511", "S2B_MSIL2A_20220729"):
        if filtering:
            assert status[unit][0] == "rejected"
            assert "ROI cloud" in str(status[unit][1]) and "> 30 %" in str(status[unit][1])
        else:
            assert status[unit][0] == "done"


def test_units_report_their_patches_as_they_go_in_process(demo_products: Path, tmp_path: Path) -> None:
    """Serial runs send PatchProgress too (processes and Dask: tests/test_scaleout.py, tests/test_app_state.py)."""
    import time

    from senprep_core.events import PatchProgress, RunStarted, UnitFinished
    from senprep_core.pipeline import run

    data = demo_config_dict()
    data.update(size=[16, 16], overlap=[8, 8], name="progress")  # 961 patches per unit
    received: list[tuple[float, object]] = []
    result = run(parse_config(data), tmp_path / "out", sources=[f"local:{demo_products}"],
                 callback=lambda e: received.append((time.monotonic(), e)))  # fmt: skip
    assert result.status == "complete"
    per_unit = next(e for _, e in received if isinstance(e, RunStarted)).patches_per_unit
    assert per_unit == 961
    first = result.plan.units[0].unit_id
    steps = [e.done for _, e in received if isinstance(e, PatchProgress) and e.unit_id == first]
    ended = next(t for t, e in received if isinstance(e, UnitFinished) and e.unit_id == first)
    before_end = [e.done for t, e in received if isinstance(e, PatchProgress) and e.unit_id == first and t < ended]
    assert steps == sorted(steps) and steps[-1] == per_unit
    assert len({d for d in before_end if 0 < d < per_unit}) >= 2, steps  # the count moves within the unit
