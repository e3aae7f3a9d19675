"""Runs across the antimeridian and north of 84° N on synthetic products (demo.places).

An S2 tile of UTM zone 60 and a clean S1 scene both straddle 180° over the Aleutians; two S2 tiles lie far
away (longitude ~0 and ~-170). Each ROI straddling 180° is given split at ±180 (RFC 7946) and as one
polygon with longitudes past 180: both must find only the two products there, pick zone 60 (ROI mostly
west of 180°) or zone 1 (mostly east), fill every patch, give the synthetic truth (S2 planes, S1 sigma0
and point targets, a smooth local incidence angle across 180°) and write STAC geometries split at 180°.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from scipy.ndimage import maximum_filter, minimum_filter
from shapely.geometry import shape

from senprep_core.config import Config, parse_config
from senprep_core.demo.places import (
    ANTIMERIDIAN_DATES,
    antimeridian_roi,
    antimeridian_s1_spec,
    antimeridian_s2_spec,
    far_side_s2_specs,
    polar_roi,
    polar_s2_spec,
)
from senprep_core.demo.s1 import make_s1_product, s1_ground_truth
from senprep_core.demo.s2 import S2DemoSpec, ground_truth, make_s2_product
from senprep_core.geo.antimeridian import unwrap_longitudes
from senprep_core.geo.grid import TargetGrid
from senprep_core.pipeline import RunResult, run
from senprep_core.planning import make_plan
from senprep_core.s1.positions import lonlat_of

S2_BANDS = ["B04", "B05", "B11"]
PLANE_BANDS = ("B05", "B11")


@pytest.fixture(scope="module")
def products(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("am-products")
    for spec in (antimeridian_s2_spec(), *far_side_s2_specs()):
        make_s2_product(spec, folder)
    s1 = antimeridian_s1_spec()
    make_s1_product(s1, folder)
    s1_ground_truth(s1).write_dem(folder.parent / "am-dem.tif")  # a lon/lat DEM running past 180
    return folder


def _config(products: Path, roi: dict[str, Any], mode: str = "s2_with_closest_s1", **more: Any) -> Config:
    return parse_config(
        {
            "name": "am",
            "roi": roi,
            "dates": [list(ANTIMERIDIAN_DATES)],
            "mode": mode,
            "patches": {"size": [128, 128], "overlap": [0, 0], "edge": "shift"},
            "sentinel2": {"bands": S2_BANDS},
            "sentinel1": {
                "bands": ["sigma0_VV", "local_incidence_angle"],
                "dem": str(products.parent / "am-dem.tif"),
                "speckle_filter": "none",
                "geoid": "none",
            },
            "sources": [f"local:{products}"],
            **more,
        }
    )


def _mosaic(outdir: Path, grid: TargetGrid, suffix: str, bands: int) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """The patches of one modality put back on the ROI grid, and their sidecars."""
    out = np.full((bands, grid.height, grid.width), np.nan)
    sidecars = []
    for tif in sorted(outdir.glob(f"patches/*/*_{suffix}.tif")):
        sidecar = json.loads(tif.with_suffix(".json").read_text())
        w = sidecar["window_in_roi_grid"]
        with rasterio.open(tif) as src:
            assert src.crs.to_epsg() == grid.epsg
            out[:, w["row_off"] : w["row_off"] + w["height"], w["col_off"] : w["col_off"] + w["width"]] = src.read()
        sidecars.append(sidecar)
    return out, sidecars


def _plane_truth(spec: S2DemoSpec, grid: TargetGrid, band: str) -> np.ndarray:
    """A 20 m band's plane at the grid's pixel centres (any CRS): what bilinear resampling must give."""
    xs, ys = grid.pixel_centres()
    gx, gy = np.meshgrid(xs, ys)
    tx, ty = Transformer.from_crs(grid.epsg, spec.epsg, always_xy=True).transform(gx, gy)
    scene = spec.scene()
    a, b, c = scene.planes[band]
    return a + b * scene.u(tx) + c * scene.v(ty)


@pytest.fixture(scope="module", params=[("west", "split"), ("west", "beyond"), ("east", "split"), ("east", "beyond")],
                ids=lambda p: "-".join(p))  # fmt: skip
def am_run(request: pytest.FixtureRequest, products: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    side, form = request.param
    config = _config(products, antimeridian_roi(side, form))
    outdir = tmp_path_factory.mktemp(f"am-{side}-{form}") / "run"
    return side, config, run(config, outdir)


def test_search_finds_only_the_products_at_180(am_run: tuple[str, Config, RunResult]) -> None:
    result = am_run[2]
    found = {r.product_id for r in result.plan.found}
    assert found == {antimeridian_s2_spec().product_id, antimeridian_s1_spec().product_id}
    assert not any(s.product_id in found for s in far_side_s2_specs())
    assert len(result.plan.units) == 1 and result.plan.not_selected == ()


def test_grid_zone_follows_the_larger_side(am_run: tuple[str, Config, RunResult]) -> None:
    side, _config, result = am_run
    assert result.plan.grid.epsg == (32660 if side == "west" else 32601)
    grid = result.plan.grid
    assert grid.width * grid.resolution < 3000 and grid.height * grid.resolution < 3000  # the ROI, not a band


def test_every_patch_is_full_and_s2_matches_the_truth(am_run: tuple[str, Config, RunResult]) -> None:
    side, _config, result = am_run
    assert result.status == "complete"
    grid = result.plan.grid
    data, sidecars = _mosaic(result.outdir, grid, "S2", len(S2_BANDS))
    assert len(sidecars) == len(result.plan.spec.patches) == 4
    assert all(s["valid_fraction"] == 1.0 for s in sidecars)
    spec = antimeridian_s2_spec()
    assert np.isfinite(data).all()
    for band in PLANE_BANDS:  # exact for bilinear resampling, in the tile's zone or reprojected to zone 1
        got = data[S2_BANDS.index(band)]
        assert np.abs(got - _plane_truth(spec, grid, band)).max() < 2e-4, band
    if side == "west":  # the grid is in the tile's CRS: every band equals the generator's truth
        truth = ground_truth(spec, grid, "B04")
        np.testing.assert_allclose(data[0], truth, atol=1e-6)


def test_s1_matches_the_truth_across_180(am_run: tuple[str, Config, RunResult]) -> None:
    result = am_run[2]
    grid = result.plan.grid
    data, sidecars = _mosaic(result.outdir, grid, "S1", 2)
    assert all(s["valid_fraction"] == 1.0 for s in sidecars)
    sigma0, lia = data
    lon, lat = lonlat_of(grid)
    assert lon.min() < 180.0 < lon.max()  # the grid straddles 180 with continuous longitudes
    truth = s1_ground_truth(antimeridian_s1_spec())
    expected = truth.sigma0("VV", lat, lon)
    flat = maximum_filter(expected, size=7) == minimum_filter(expected, size=7)
    checked = 0
    for value in np.unique(expected[flat]):
        sel = flat & (expected == value)
        if sel.sum() >= 500:
            assert abs(10 * np.log10(float(np.mean(sigma0[sel])) / value)) < 0.05, value
            checked += 1
    assert checked >= 1
    # the local incidence angle on the flat DEM changes smoothly: no seam where the longitudes wrap
    assert np.isfinite(lia).all() and np.nanmin(lia) > 25.0 and np.nanmax(lia) < 45.0
    assert np.abs(np.diff(lia, axis=1)).max() < 0.01 and np.abs(np.diff(lia, axis=0)).max() < 0.01


def test_point_targets_land_where_the_truth_puts_them(am_run: tuple[str, Config, RunResult]) -> None:
    result = am_run[2]
    grid = result.plan.grid
    data, _ = _mosaic(result.outdir, grid, "S1", 2)
    to_map = Transformer.from_crs(4326, grid.epsg, always_xy=True).transform
    seen = 0
    for lon, lat in s1_ground_truth(antimeridian_s1_spec()).point_targets:
        x, y = to_map(lon, lat)
        col, row = (x - grid.left) / grid.resolution - 0.5, (grid.top - y) / grid.resolution - 0.5
        r0, c0 = round(row), round(col)
        if not (4 <= r0 < grid.height - 4 and 4 <= c0 < grid.width - 4):
            continue
        win = np.nan_to_num(
            data[0][r0 - 3 : r0 + 4, c0 - 3 : c0 + 4] - np.nanmedian(data[0][r0 - 6 : r0 + 7, c0 - 6 : c0 + 7])
        )
        win = np.clip(win, 0, None)
        rr, cc = np.mgrid[-3:4, -3:4]
        peak_r, peak_c = r0 + float((win * rr).sum() / win.sum()), c0 + float((win * cc).sum() / win.sum())
        assert np.hypot(peak_r - row, peak_c - col) < 0.5, (lon, lat)
        seen += 1
    assert seen >= 1


def test_stac_items_are_split_at_180(am_run: tuple[str, Config, RunResult]) -> None:
    result = am_run[2]
    items = [json.loads(p.read_text()) for p in sorted(result.outdir.glob("items/*.json"))]
    assert len(items) == 4
    crossing = [i for i in items if i["geometry"]["type"] == "MultiPolygon"]
    assert crossing, "a patch straddles 180: its geometry must be split"
    for item in items:
        geometry = shape(item["geometry"])
        lons = [x for part in getattr(geometry, "geoms", [geometry]) for x, _ in part.exterior.coords]
        assert min(lons) >= -180.0 and max(lons) <= 180.0
        west, _south, east, _north = item["bbox"]
        assert (west > east) == (item in crossing)  # RFC 7946 §5.2: west > east across the antimeridian
        assert unwrap_longitudes(geometry).bounds[2] - unwrap_longitudes(geometry).bounds[0] < 0.05
    collection = json.loads(next(result.outdir.glob("collections/*/collection.json")).read_text())
    west, _south, east, _north = collection["extent"]["spatial"]["bbox"][0]
    assert west > east and 179.9 < west < 180.0 and -180.0 < east < -179.9


def test_far_side_products_are_never_matched(products: Path) -> None:
    """Every ROI form, searched on a folder holding products at longitude ~0 and ~-170: none of those."""
    far = {s.product_id for s in far_side_s2_specs()}
    for form in ("split", "beyond"):
        plan = make_plan(_config(products, antimeridian_roi("west", form), mode="s2_only"))
        assert {r.product_id for r in plan.found} == {antimeridian_s2_spec().product_id}
        assert not far & {r.product_id for r in plan.found}


# ----- north of 84° N ---------------------------------------------------------------------------------


def test_polar_roi_runs_on_a_ups_grid(tmp_path: Path) -> None:
    spec = polar_s2_spec()
    folder = tmp_path / "products"
    make_s2_product(spec, folder)
    config = parse_config({
        "name": "polar", "roi": polar_roi(), "dates": [["2026-06-20", "2026-06-22"]], "mode": "s2_only",
        "patches": {"size": [128, 128], "overlap": [0, 0], "edge": "shift"},
        "sentinel2": {"bands": S2_BANDS}, "sources": [f"local:{folder}"],
    })  # fmt: skip
    assert config.grid().epsg == 32661
    result = run(config, tmp_path / "run")
    assert result.status == "complete"
    grid = result.plan.grid
    data, sidecars = _mosaic(result.outdir, grid, "S2", len(S2_BANDS))
    assert len(sidecars) == len(result.plan.spec.patches) >= 4
    assert all(s["valid_fraction"] == 1.0 for s in sidecars)
    assert np.isfinite(data).all()
    for band in PLANE_BANDS:
        assert np.abs(data[S2_BANDS.index(band)] - _plane_truth(spec, grid, band)).max() < 2e-4, band
    # 10 m reflectance: the UTM tile's texture reprojected onto UPS stays within the tile's value range
    b04 = data[0]
    native = ground_truth(spec, spec.grid(10), "B04")
    assert np.nanmin(native) - 1e-3 <= b04.min() and b04.max() <= np.nanmax(native) + 1e-3
    # and a tile-CRS grid at the ROI shows the same mean (what is read is the right place)
    assert float(b04.mean()) == pytest.approx(_tile_mean_over_roi(spec, config), abs=2e-3)
    item = json.loads(next((result.outdir / "items").glob("*.json")).read_text())
    assert item["properties"]["proj:code"] == "EPSG:32661" or item["properties"].get("proj:epsg") == 32661


def _tile_mean_over_roi(spec: S2DemoSpec, config: Config) -> float:
    roi_utm = config.roi.projected(spec.epsg)
    grid = TargetGrid.for_geometry(roi_utm, spec.epsg, 10.0)
    truth = ground_truth(spec, grid, "B04")
    mask = grid.rasterize(roi_utm)
    return float(np.nanmean(truth[mask]))


def test_both_roi_forms_are_one_run(products: Path) -> None:
    """Same region, same grid and fingerprint (so a re-run in the other form resumes); the saved config is
    RFC 7946 (split) and reads back to the same ROI."""
    split, beyond = (_config(products, antimeridian_roi("east", form)) for form in ("split", "beyond"))
    assert split.fingerprint() == beyond.fingerprint()
    assert split.grid() == beyond.grid()
    assert (split.roi_mask() == beyond.roi_mask()).all()
    saved = beyond.to_dict()["roi"]
    assert saved["type"] == "MultiPolygon"
    assert parse_config({**beyond.to_dict(), "sources": []}).roi.geometry.equals(beyond.roi.geometry)
