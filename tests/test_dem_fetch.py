"""Copernicus DEM GLO-30 tiles fetched for an ROI from a file server on 127.0.0.1, then read by senprep_core.s1.dem."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from affine import Affine
from pyproj import Transformer
from shapely.geometry import box

from senprep_core.fetch.dem_tiles import (
    fetch_dem_tiles,
    glo30_tile_corners,
    glo30_tile_names,
    glo30_tile_url,
    sea_tiles,
)
from senprep_core.fetch.http import HttpClient
from senprep_core.geo.grid import TargetGrid
from senprep_core.s1.dem import load_dem, parse_dem_source
from tests.servers.fileserver import serve_files

PX = 360  # synthetic tiles: 10 arc-second pixels (real GLO-30: 3600 x 3600 at 1 arc-second)
ROI = box(-4.1, 54.9, -3.9, 55.1)  # around the tile corner 55 N, 4 W (south-west Scotland)
CORNER_TILES = [
    "Copernicus_DSM_COG_10_N55_00_W005_00_DEM",
    "Copernicus_DSM_COG_10_N55_00_W004_00_DEM",
    "Copernicus_DSM_COG_10_N54_00_W005_00_DEM",
    "Copernicus_DSM_COG_10_N54_00_W004_00_DEM",
]


def height(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """A tilted plane (metres): exact under bilinear resampling, different in every tile."""
    return (200.0 + 300.0 * (lon + 5.0) + 100.0 * (lat - 54.0)).astype(np.float32)


def write_tile(folder: Path, lat: int, lon: int, name: str) -> None:
    """A GLO-30-style COG in the AWS layout ``<name>/<name>.tif``: pixel centres on whole multiples of the pixel
    size, so the tile edges sit half a pixel outside the 1° cell, as in the real tiles."""
    res = 1.0 / PX
    transform = Affine(res, 0.0, lon - res / 2, 0.0, -res, lat + 1 + res / 2)
    cols = lon + np.arange(PX) * res
    rows = lat + 1 - np.arange(PX) * res
    data = height(*np.meshgrid(cols, rows))
    plain = folder / f"{name}.plain.tif"
    profile = {"driver": "GTiff", "width": PX, "height": PX, "count": 1, "dtype": "float32", "crs": "EPSG:4326",
               "transform": transform, "tiled": True, "blockxsize": 256, "blockysize": 256}  # fmt: skip
    with rasterio.open(plain, "w", **profile) as ds:
        ds.write(data, 1)
    (folder / name).mkdir(parents=True, exist_ok=True)
    rasterio.shutil.copy(plain, folder / name / f"{name}.tif", driver="COG", compress="DEFLATE")
    plain.unlink()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The four tiles around 55 N 4 W; the cell N54 W004 is left out (sea: the bucket has no tile there)."""
    root = tmp_path_factory.mktemp("glo30-bucket")
    for name in CORNER_TILES[:3]:
        lat = int(name.split("_")[4][1:])
        lon = -int(name.split("_")[6][1:])
        write_tile(root, lat, lon, name)
    return root


def test_tile_names_and_layout() -> None:
    assert glo30_tile_names((-4.5, 55.2, -4.4, 55.3), 0.0) == ["Copernicus_DSM_COG_10_N55_00_W005_00_DEM"]
    assert glo30_tile_names((12.2, -0.6, 12.4, -0.4), 0.0) == ["Copernicus_DSM_COG_10_S01_00_E012_00_DEM"]
    assert glo30_tile_names((5.5, 3.5, 5.6, 3.6), 0.0) == ["Copernicus_DSM_COG_10_N03_00_E005_00_DEM"]
    assert glo30_tile_names((-0.5, -0.5, 0.5, 0.5), 0.0) == [
        "Copernicus_DSM_COG_10_N00_00_W001_00_DEM",
        "Copernicus_DSM_COG_10_N00_00_E000_00_DEM",
        "Copernicus_DSM_COG_10_S01_00_W001_00_DEM",
        "Copernicus_DSM_COG_10_S01_00_E000_00_DEM",
    ]
    # whole-degree edges do not pull in the neighbour; the margin does
    assert glo30_tile_names((-4.0, 55.0, -3.0, 56.0), 0.0) == ["Copernicus_DSM_COG_10_N55_00_W004_00_DEM"]
    assert glo30_tile_names(ROI.bounds, 0.05) == CORNER_TILES
    assert glo30_tile_names((8.5, 60.6, 8.6, 60.7), 0.0) == ["Copernicus_DSM_COG_10_N60_00_E008_00_DEM"]
    # the antimeridian wraps; the poles clip
    assert glo30_tile_corners((179.98, 10.2, 179.99, 10.3), 0.05) == [(10, 179), (10, -180)]
    assert glo30_tile_corners((20.2, 89.5, 20.3, 90.0), 0.05) == [(89, 20)]
    name = "Copernicus_DSM_COG_10_N55_00_W005_00_DEM"
    assert glo30_tile_url(name, "https://copernicus-dem-30m.s3.amazonaws.com/") == (
        f"https://copernicus-dem-30m.s3.amazonaws.com/{name}/{name}.tif"
    )
    with pytest.raises(ValueError):
        glo30_tile_names((1.0, 2.0, 0.0, 3.0), 0.0)


def _grid_around(lon: float, lat: float, half_m: float = 1500.0) -> TargetGrid:
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:32630", always_xy=True).transform(lon, lat)
    return TargetGrid(32630, 30.0, round((x - half_m) / 30) * 30, round((y + half_m) / 30) * 30,
                      int(2 * half_m / 30), int(2 * half_m / 30))  # fmt: skip


def _lonlat_of(grid: TargetGrid) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = grid.pixel_centres()
    lon, lat = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True).transform(*np.meshgrid(xs, ys))
    return np.asarray(lon), np.asarray(lat)


def test_fetch_corner_tiles_read_by_the_dem_reader_and_cached(served: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with serve_files(served) as server:
        client = HttpClient(name="dem-test", retries=1, backoff=0.01)
        folder = fetch_dem_tiles(ROI, cache, base_url=server.url + "/", client=client)
        first_bytes = server.total_bytes
        requested = {path for _method, path, _range in server.requests}
        assert {f"/{n}/{n}.tif" for n in CORNER_TILES} <= requested
        assert first_bytes == sum((served / n / f"{n}.tif").stat().st_size for n in CORNER_TILES[:3])
        assert sorted(p.name for p in folder.glob("*.tif")) == sorted(f"{n}.tif" for n in CORNER_TILES[:3])
        # the missing cell is recorded as sea and written as a 0 m tile the DEM reader finds
        assert sea_tiles(folder) == [CORNER_TILES[3]]
        assert (folder / "sea" / f"{CORNER_TILES[3]}.tif").is_file()
        manifest = json.loads((folder / "tiles.json").read_text())
        assert manifest["tiles"][CORNER_TILES[0]]["status"] == "downloaded"

        # second call for the same ROI: nothing requested, nothing transferred
        count = len(server.requests)
        again = fetch_dem_tiles(ROI, cache, base_url=server.url + "/", client=client)
        assert again == folder
        assert len(server.requests) == count and server.total_bytes == first_bytes

    # the folder is a Copernicus tile folder for senprep_core.s1.dem: heights across the corner match the tiles
    source = parse_dem_source(str(folder))
    assert source.kind == "copernicus"
    grid = _grid_around(-4.0, 55.0, half_m=3000.0)
    dem = load_dem(source, grid, margin_px=0, geoid="none")
    lon, lat = _lonlat_of(dem.grid)
    seam = 3.0 / PX  # bilinear kernels next to the sea cell mix in its 0 m pixels
    land = ~((lon > -4.0 - seam) & (lat < 55.0 + seam))
    expected = height(lon, lat)
    assert land.sum() > 0.4 * land.size  # three of the four quadrants, less the seam band
    np.testing.assert_allclose(dem.heights[land], expected[land], atol=0.5)
    # inside the sea cell (away from the half-pixel seam): 0 m
    sea = (lon > -4.0 + seam) & (lat < 55.0 - seam)
    assert sea.sum() > 0.1 * sea.size
    np.testing.assert_allclose(dem.heights[sea], 0.0, atol=1e-6)
    # a few single points, one in each land tile
    for plon, plat in [(-4.02, 55.02), (-3.98, 55.03), (-4.03, 54.97)]:
        inside = np.hypot((lon - plon) * 0.57, lat - plat)
        row, col = np.unravel_index(np.argmin(inside), inside.shape)
        assert dem.heights[row, col] == pytest.approx(float(height(lon[row, col], lat[row, col])), abs=0.5)


def test_sea_tile_is_not_requested_again_and_other_errors_raise(served: Path, tmp_path: Path) -> None:
    from senprep_core.errors import DownloadError

    cache = tmp_path / "cache"
    sea_only = box(-3.6, 54.4, -3.5, 54.5)  # inside the missing cell N54 W004
    with serve_files(served) as server:
        client = HttpClient(name="dem-test", retries=1, backoff=0.01)
        folder = fetch_dem_tiles(sea_only, cache, base_url=server.url, client=client)
        assert sea_tiles(folder) == [CORNER_TILES[3]]
        (folder / "sea" / f"{CORNER_TILES[3]}.tif").unlink()  # even removed, the known sea tile needs no request
        count = len(server.requests)
        fetch_dem_tiles(sea_only, cache, base_url=server.url, client=client)
        assert len(server.requests) == count
        assert (folder / "sea" / f"{CORNER_TILES[3]}.tif").is_file()
    dem = load_dem(parse_dem_source(str(folder)), _grid_around(-3.55, 54.45), margin_px=0, geoid="none")
    assert np.all(dem.heights == 0.0)
    # a server that is down is an error, not sea
    with serve_files(served) as server:
        url = server.url
    with pytest.raises(DownloadError):
        fetch_dem_tiles(box(-4.6, 55.4, -4.5, 55.5), tmp_path / "other", base_url=url,
                        client=HttpClient(name="dem-test", retries=1, backoff=0.01, timeout=2))  # fmt: skip
