"""ROIs that one product does not cover: split across two S2 tiles of one datatake, and across two UTM zones.

Synthetic L2A products are generated for the case; their pixels are known (``ground_truth``).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import Transformer

from senprep_core.config import parse_config
from senprep_core.demo.s2 import S2DemoSpec, ground_truth, make_s2_product
from senprep_core.pipeline import run

pytestmark = pytest.mark.integration
WHEN = datetime(2022, 5, 3, 11, 36, 19)


def _roi(epsg: int, left: float, bottom: float, right: float, top: float) -> dict[str, object]:
    to_ll = Transformer.from_crs(epsg, 4326, always_xy=True).transform
    ring = [to_ll(x, y) for x, y in [(left, bottom), (right, bottom), (right, top), (left, top), (left, bottom)]]
    return {"type": "Polygon", "coordinates": [ring]}


def _config(name: str, roi: dict[str, object]) -> dict[str, object]:
    return {
        "name": name,
        "roi": roi,
        "dates": [["2022-05-01", "2022-05-31"]],
        "mode": "s2_only",
        "patches": {"size": [100, 100], "overlap": [0, 0], "edge": "shift"},
        "sentinel2": {"bands": ["B04", "B08", "SCL"]},
    }


def test_an_roi_split_across_two_tiles_uses_both_and_each_patch_is_right(tmp_path: Path) -> None:
    west = S2DemoSpec(tile_id="30UVG", epsg=32630, ulx=418020.0, uly=6200040.0, size_10m=600, sensing_time=WHEN,
                      seed=5, nodata_edge=False, bands=("B04", "B08", "SCL"))  # fmt: skip
    east = S2DemoSpec(tile_id="30UWG", epsg=32630, ulx=424020.0, uly=6200040.0, size_10m=600, sensing_time=WHEN,
                      seed=6, nodata_edge=False, bands=("B04", "B08", "SCL"))  # fmt: skip
    folder = tmp_path / "products"
    for spec in (west, east):
        make_s2_product(spec, folder)
    # 4 km x 2 km across the tile edge at x = 424020
    config = parse_config(_config("two-tiles", _roi(32630, 422020.0, 6194040.0, 426020.0, 6196040.0)))
    result = run(config, tmp_path / "out", sources=[f"local:{folder}"])
    assert result.status == "complete"
    assert len(result.plan.units) == 2 and not result.plan.not_selected  # both tiles are needed
    written: dict[str, str] = {}
    for unit_result in result.results:
        spec = west if "T30UVG" in unit_result.unit_id else east
        for entry in result.entries(unit_result.unit_id):
            grid = entry.grid
            with rasterio.open(tmp_path / "out" / entry.files["S2"]) as ds:
                b04 = ds.read(1)
            truth = ground_truth(spec, grid, "B04")
            inside = ~np.isnan(truth)
            np.testing.assert_allclose(b04[inside], truth[inside], atol=1e-6)
            assert np.isnan(b04[~inside]).all()  # the other tile's half stays no data in this product's patch
            written.setdefault(entry.patch_id, spec.tile_id)
    assert set(written) == {p.patch_id for p in config.patches()}  # every patch comes from one tile or the other
    assert set(written.values()) == {"30UVG", "30UWG"}


def test_an_roi_across_two_utm_zones_reads_a_tile_of_either_zone_onto_one_grid(tmp_path: Path) -> None:
    lon, lat = 0.0, 52.0  # the zone 30 / 31 boundary
    x30, y30 = Transformer.from_crs(4326, 32630, always_xy=True).transform(lon, lat)
    x31, y31 = Transformer.from_crs(4326, 32631, always_xy=True).transform(lon, lat)

    def tile(tile_id: str, epsg: int, x: float, y: float, day: int, seed: int) -> S2DemoSpec:
        ulx, uly = round((x - 3000) / 60) * 60, round((y + 3000) / 60) * 60
        return S2DemoSpec(tile_id=tile_id, epsg=epsg, ulx=float(ulx), uly=float(uly), size_10m=600,
                          sensing_time=WHEN.replace(day=day), seed=seed, nodata_edge=False,
                          bands=("B04", "B08", "SCL"))  # fmt: skip

    zone30, zone31 = tile("30UYC", 32630, x30, y30, 3, 7), tile("31UCT", 32631, x31, y31, 8, 8)
    folder = tmp_path / "products"
    for spec in (zone30, zone31):
        make_s2_product(spec, folder)
    # a 1.2 km square centred on the boundary, a little more of it in zone 30
    roi = _roi(32630, x30 - 700, y30 - 600, x30 + 500, y30 + 600)
    config = parse_config(_config("two-zones", roi))
    assert config.grid().epsg == 32630  # the zone holding most of the ROI, deterministically
    result = run(config, tmp_path / "out", sources=[f"local:{folder}"])
    assert result.status == "complete" and len(result.results) == 2
    for unit_result in result.results:
        assert unit_result.patches_written == len(config.patches())
        for entry in result.entries(unit_result.unit_id):
            with rasterio.open(tmp_path / "out" / entry.files["S2"]) as ds:
                assert ds.crs.to_epsg() == 32630
                b04 = ds.read(1)
            assert np.isfinite(b04).mean() > 0.99
            if "T30UYC" in unit_result.unit_id:  # same zone: no warp, exact values
                truth = ground_truth(zone30, entry.grid, "B04")
                np.testing.assert_allclose(b04, truth, atol=1e-6)
            else:  # zone 31 reprojected: reflectance of the synthetic scene stays in its range
                assert np.nanmin(b04) >= 0.0 and np.nanmax(b04) <= 1.0
