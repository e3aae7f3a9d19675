"""DEMs under a grid across the antimeridian: Copernicus tiles on both sides, a global raster, a raster past 180."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer

from senprep_core.geo.grid import TargetGrid
from senprep_core.s1.dem import copernicus_tile_name, grid_lonlat_bounds, load_dem, parse_dem_source, tiles_covering

#: ~2.5 km x 2.3 km in UTM zone 60 at 52 N, straddling 180 (as the demo's west ROI)
GRID = TargetGrid(32660, 10.0, 704320.0, 5762540.0, 251, 233)
RES = 1.0 / 600.0  # 6 arc-seconds: small files


def _lon_of_grid() -> np.ndarray:
    xs, ys = GRID.buffered(4).pixel_centres()
    lon, _ = Transformer.from_crs(GRID.epsg, 4326, always_xy=True).transform(*np.meshgrid(xs, ys))
    return np.asarray(lon)


def _write(path: Path, west: float, north: float, width: int, height: int, values: np.ndarray | float) -> None:
    data = np.broadcast_to(np.asarray(values, dtype=np.float32), (height, width))
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 1, "dtype": "float32",
               "crs": "EPSG:4326", "transform": Affine(RES, 0.0, west, 0.0, -RES, north)}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


def test_grid_bounds_and_tiles_run_past_180() -> None:
    west, south, east, north = grid_lonlat_bounds(GRID)
    assert 179.9 < west < 180.0 < east < 180.1 and south < north
    assert tiles_covering((west, south, east, north)) == [(51, 179), (51, -180)]


def test_copernicus_tiles_on_both_sides(tmp_path: Path) -> None:
    for lon, height in ((179, 100.0), (-180, 200.0)):
        _write(tmp_path / f"{copernicus_tile_name(51, lon)}.tif", lon, 52.0, 600, 600, height)
    dem = load_dem(parse_dem_source(str(tmp_path)), GRID, margin_px=4, geoid="none", resampling="nearest")
    lon = _lon_of_grid()
    west_of_180 = (lon > 0) & (lon < 179.999)
    east_of_180 = (lon < 0) & (lon > -179.999)
    assert west_of_180.any() and east_of_180.any()
    assert np.all(dem.heights[west_of_180] == 100.0) and np.all(dem.heights[east_of_180] == 200.0)


@pytest.mark.parametrize("layout", ["past-180", "global"])
def test_single_rasters_across_180(tmp_path: Path, layout: str) -> None:
    """Heights = longitude east of 179 (continuous): a raster stored past 180, and a global one whose edge is 180."""
    path = tmp_path / "dem.tif"
    if layout == "past-180":
        cols = 1200  # 179..181
        _write(path, 179.0, 52.0, cols, 600, (179.0 + (np.arange(cols) + 0.5) * RES - 179.0) * 1000.0)
    else:
        cols = 360 * 600
        lon = -180.0 + (np.arange(cols) + 0.5) * RES
        _write(path, -180.0, 52.0, cols, 60, np.where(lon >= 0, lon - 179.0, lon + 181.0) * 1000.0)
    dem = load_dem(parse_dem_source(str(path)), GRID, margin_px=4, geoid="none", resampling="bilinear")
    lon = _lon_of_grid()
    expected = np.where(lon > 0, lon - 179.0, lon + 181.0) * 1000.0  # metres: 1000 per degree past 179
    assert np.abs(dem.heights - expected).max() < 1.0  # bilinear on a plane: exact up to float32
