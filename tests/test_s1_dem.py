"""DEM loading and geoid conversion for the S1 terrain correction (senprep_core.s1.dem / geoid)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer
from pyproj.transformer import TransformerGroup
from rasterio.enums import Resampling
from rasterio.warp import reproject

from senprep_core.errors import ConfigError, DEMError, GeoidError
from senprep_core.geo.grid import TargetGrid
from senprep_core.s1 import geoid as geoid_mod
from senprep_core.s1.dem import (
    DemSource,
    copernicus_tile_name,
    fill_voids,
    load_dem,
    parse_dem_source,
    resolve_geoid,
    tiles_covering,
)
from senprep_core.s1.geoid import (
    check_geoid_transformer,
    enable_system_grids,
    find_geoid_grid,
    geoid_undulation,
    undulation_on_grid,
)
from tests.conftest import need_real_samples

# 5.1 x 6 km in UTM 33N around (12.5E, 42.0N), well inside the Rome DEM (12.45-12.55E, 41.95-42.05N)
ROME_GRID = TargetGrid(32633, 30.0, 290100.0, 4656900.0, 170, 200)
# straddles the 13E tile boundary at 41.5N (x of 13E at 41.5N is about 333 km)
SEAM_GRID = TargetGrid(32633, 30.0, 329010.0, 4598010.0, 250, 150)
TILE_PX = 120  # synthetic Copernicus-style tiles: 30 arcsec pixels


def _rome_dem() -> Path:
    return need_real_samples("sarsen-testdata", "Rome-30m-DEM.tif")


def _direct(path: Path, grid: TargetGrid) -> np.ndarray:
    """Independent reference: rasterio reprojection of the whole band 1 onto ``grid`` (bilinear)."""
    out = np.full(grid.shape, np.nan, dtype=np.float32)
    with rasterio.open(path) as ds:
        reproject(rasterio.band(ds, 1), out, dst_transform=grid.transform, dst_crs=grid.crs,
                  dst_nodata=np.nan, resampling=Resampling.bilinear)  # fmt: skip
    return out


def _lonlat(grid: TargetGrid) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = grid.pixel_centres()
    gx, gy = np.meshgrid(xs, ys)
    lon, lat = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True).transform(gx, gy)
    return np.asarray(lon), np.asarray(lat)


def _surface(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """A smooth synthetic relief (metres)."""
    return (300.0 + 200.0 * np.sin(lon * 9.0) * np.cos(lat * 7.0) + 50.0 * (lat - 41.0)).astype(np.float32)


def _write(path: Path, data: np.ndarray, transform: Affine, crs: str, nodata: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
                       dtype=data.dtype, crs=crs, transform=transform, nodata=nodata) as ds:  # fmt: skip
        ds.write(data, 1)
    return path


def _copernicus_raster(lon0: float, lat0: float, nx: int, ny: int) -> tuple[np.ndarray, Affine]:
    """Heights on the Copernicus lattice (pixel centres on whole multiples of the pixel size)."""
    res = 1.0 / TILE_PX
    transform = Affine(res, 0.0, lon0 - res / 2, 0.0, -res, lat0 + ny * res + res / 2)
    cols = lon0 + np.arange(nx) * res
    rows = lat0 + (ny - np.arange(ny)) * res
    lon, lat = np.meshgrid(cols, rows)
    return _surface(lon, lat), transform


def _tile_folder(folder: Path) -> Path:
    """Two tiles N41E012 (flat layout) and N41E013 (DGED <tile>/DEM/ layout), without vertical CRS."""
    for lon0, nested in ((12, False), (13, True)):
        data, transform = _copernicus_raster(lon0, 41, TILE_PX, TILE_PX)
        stem = copernicus_tile_name(41, lon0)
        target = folder / stem / "DEM" / f"{stem}.tif" if nested else folder / f"{stem}.tif"
        _write(target, data, transform, "EPSG:4326")
    return folder


def _fake_egm2008(folder: Path, offset: float) -> Path:
    """A global 1° GTX grid named egm08_25.gtx holding EGM96 + ``offset`` (an EGM2008 stand-in)."""
    lats, lons = np.arange(-90.0, 90.5, 1.0), np.arange(-180.0, 180.5, 1.0)
    lon, lat = np.meshgrid(lons, lats)
    values = geoid_undulation(lon, lat, "egm96") + offset
    header = np.array([-90.0, -180.0, 1.0, 1.0], dtype=">f8").tobytes()
    header += np.array([len(lats), len(lons)], dtype=">i4").tobytes()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "egm08_25.gtx"
    path.write_bytes(header + values.astype(">f4").tobytes())
    return path


# ----- parsing --------------------------------------------------------------------------------


def test_parse_dem_source_kinds(tmp_path: Path) -> None:
    dem = _write(tmp_path / "dem.tif", np.zeros((4, 4), np.float32), Affine(0.1, 0, 12, 0, -0.1, 42), "EPSG:4326")
    assert parse_dem_source(str(dem)) == DemSource("file", str(dem))
    assert parse_dem_source(dem).kind == "file"
    assert parse_dem_source(str(tmp_path)) == DemSource("copernicus", str(tmp_path))
    assert parse_dem_source("flat:120.5") == DemSource("flat", None, 120.5)
    assert parse_dem_source(" flat ").height == 0.0
    assert parse_dem_source(35) == DemSource("flat", None, 35.0)
    assert parse_dem_source(None) == DemSource("flat", None, 0.0)
    assert parse_dem_source("flat:-12").label == "flat:-12"
    assert parse_dem_source("/vsizip/x.zip/dem.tif").kind == "file"


@pytest.mark.parametrize("value", ["flat:abc", "flat:nan", 1e9, True, "", "no/such/dem.tif"])
def test_parse_dem_source_rejects(value: object) -> None:
    with pytest.raises(ConfigError) as info:
        parse_dem_source(value, key="sentinel1.dem")  # type: ignore[arg-type]
    assert info.value.key == "sentinel1.dem"


def test_resolve_geoid_auto_rules(caplog: pytest.LogCaptureFixture) -> None:
    file_src = DemSource("file", "/data/srtm.tif")
    assert resolve_geoid("auto", file_src, "egm96") == "egm96"
    assert resolve_geoid("auto", file_src, "egm2008") == "egm2008"
    assert resolve_geoid("auto", file_src, "ellipsoidal") == "none"
    assert resolve_geoid("auto", DemSource("copernicus", "/tiles"), None) == "egm2008"
    assert resolve_geoid("auto", DemSource("flat", None, 5.0), None) == "none"
    assert resolve_geoid("egm96", DemSource("flat", None, 0.0), None) == "egm96"
    assert (
        resolve_geoid("auto", DemSource("file", "/d/Copernicus_DSM_COG_10_N41_00_E012_00_DEM.tif"), None) == "egm2008"
    )
    with caplog.at_level(logging.WARNING):
        assert resolve_geoid("auto", file_src, None) == "egm96"
    assert "assuming EGM96" in caplog.text
    with pytest.raises(DEMError, match="NAVD88"):
        resolve_geoid("auto", file_src, "other:NAVD88 height")
    with pytest.raises(ConfigError):
        resolve_geoid("egm84", file_src, None)


# ----- real DEM, EGM96 --------------------------------------------------------------------------


def test_rome_dem_heights_are_reprojection_plus_egm96() -> None:
    path = _rome_dem()
    dem = load_dem(parse_dem_source(str(path)), ROME_GRID, margin_px=8)
    assert dem.grid == ROME_GRID.buffered(8)
    assert dem.heights.shape == dem.grid.shape and dem.heights.dtype == np.float32
    assert dem.geoid == "EGM96 (egm96_15.gtx)" or dem.geoid.startswith("EGM96 (")
    assert dem.flat is False and dem.source == str(path)
    orthometric = _direct(path, dem.grid)
    assert np.isfinite(orthometric).all()
    lon, lat = _lonlat(dem.grid)
    undulation = geoid_undulation(lon, lat, "egm96")  # per pixel, no sub-grid
    assert undulation.min() > 46.0 and undulation.max() < 50.0
    assert undulation.max() - undulation.min() < 0.5  # constant-ish over 6 km
    np.testing.assert_allclose(dem.heights, orthometric + undulation, atol=0.01)
    # terrain is really there (Rome: ~10..140 m above the geoid here)
    assert orthometric.max() - orthometric.min() > 50.0


def test_rome_dem_geoid_none_has_no_shift() -> None:
    path = _rome_dem()
    plain = load_dem(parse_dem_source(str(path)), ROME_GRID, margin_px=2, geoid="none")
    shifted = load_dem(parse_dem_source(str(path)), ROME_GRID, margin_px=2, geoid="egm96")
    assert plain.geoid == "none"
    np.testing.assert_allclose(plain.heights, _direct(path, plain.grid), atol=1e-3)
    delta = shifted.heights - plain.heights
    assert delta.min() > 48.4 and delta.max() < 48.9  # EGM96 N near Rome: ~48.6 m


def test_undulation_subgrid_matches_per_pixel() -> None:
    grid = ROME_GRID.buffered(20)
    coarse, label = undulation_on_grid(grid, "egm96", step_m=1000.0)
    lon, lat = _lonlat(grid)
    exact = geoid_undulation(lon, lat, "egm96")
    assert label.startswith("EGM96")
    assert np.abs(coarse - exact).max() < 0.005


def test_dem_not_covering_grid_names_bounds_and_tiles() -> None:
    path = _rome_dem()
    outside = TargetGrid(32633, 30.0, 300000.0, 4656900.0, 100, 100)  # east of 12.55E, north of 42N
    with pytest.raises(DEMError) as info:
        load_dem(parse_dem_source(str(path)), outside)
    text = str(info.value)
    assert "covers (12.44986, 41.95014, 12.54986, 42.05014)" in text
    assert "needs (" in text and "Copernicus_DSM_COG_10_N42_00_E012_00_DEM" in text


# ----- synthetic files ---------------------------------------------------------------------------


def test_file_without_vertical_crs_assumes_egm96_and_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data, transform = _copernicus_raster(12, 41, 2 * TILE_PX, TILE_PX)
    path = _write(tmp_path / "srtm_like.tif", data, transform, "EPSG:4326")
    with caplog.at_level(logging.WARNING):
        dem = load_dem(parse_dem_source(str(path)), SEAM_GRID, margin_px=4)
    assert "assuming EGM96" in caplog.text
    assert dem.geoid.startswith("EGM96")
    plain = load_dem(parse_dem_source(str(path)), SEAM_GRID, margin_px=4, geoid="none")
    delta = dem.heights - plain.heights
    assert delta.min() > 40.0 and delta.max() < 50.0  # EGM96 N around 41.5N 13E


def test_voids_filled_when_tiny_and_refused_when_large(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data, transform = _copernicus_raster(12, 41, 2 * TILE_PX, TILE_PX)
    # DEM pixels of 30 arcsec are ~700 x 930 m; the grid spans 12 x 9 km, so one void pixel is ~0.6 %
    grid = TargetGrid(32633, 30.0, 327010.0, 4600010.0, 400, 300)
    small = data.copy()
    small[60, 120] = -9999.0  # one DEM pixel inside the grid: < 1 % of it
    path = _write(tmp_path / "small_void.tif", small, transform, "EPSG:4326", nodata=-9999.0)
    with caplog.at_level(logging.WARNING):
        dem = load_dem(parse_dem_source(str(path)), grid, margin_px=0, geoid="none")
    assert np.isfinite(dem.heights).all()
    assert "filled" in caplog.text
    large = data.copy()
    large[56:66, 115:126] = -9999.0
    path = _write(tmp_path / "large_void.tif", large, transform, "EPSG:4326", nodata=-9999.0)
    with pytest.raises(DEMError, match=r"nodata\) for \d+\.\d{3} % of the grid"):
        load_dem(parse_dem_source(str(path)), grid, margin_px=0, geoid="none")


def test_fill_voids_threshold_and_exact_fraction() -> None:
    heights = np.arange(100.0).reshape(10, 10)
    one = heights.copy()
    one[4, 4] = np.nan
    filled = fill_voids(one, "x")
    assert filled[4, 4] in (34.0, 43.0, 45.0, 54.0)  # a 4-neighbour
    two = heights.copy()
    two[0, :2] = np.nan
    with pytest.raises(DEMError, match=r"2\.000 % of the grid"):
        fill_voids(two, "x")


def test_flat_dem_warns_and_is_constant(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        dem = load_dem(parse_dem_source("flat:120"), ROME_GRID, margin_px=3)
    assert "terrain is IGNORED" in caplog.text
    assert dem.flat and dem.geoid == "none" and dem.source == "flat:120"
    assert dem.grid == ROME_GRID.buffered(3)
    assert np.all(dem.heights == 120.0)
    zero = load_dem(parse_dem_source(None), ROME_GRID, margin_px=0)
    assert zero.flat and np.all(zero.heights == 0.0)
    # flat:0 declared as an EGM96 height is the geoid surface: ~48.6 m above the ellipsoid near Rome
    sea = load_dem(parse_dem_source("flat:0"), ROME_GRID, margin_px=0, geoid="egm96")
    assert sea.heights.min() > 48.4 and sea.heights.max() < 48.9


# ----- Copernicus tile folders --------------------------------------------------------------------


def test_copernicus_folder_mosaics_tiles_seamlessly(tmp_path: Path) -> None:
    folder = _tile_folder(tmp_path / "glo30")
    data, transform = _copernicus_raster(12, 41, 2 * TILE_PX, TILE_PX)
    single = _write(tmp_path / "single.tif", data, transform, "EPSG:4326")
    mosaic = load_dem(parse_dem_source(str(folder)), SEAM_GRID, margin_px=5, geoid="none")
    reference = load_dem(parse_dem_source(str(single)), SEAM_GRID, margin_px=5, geoid="none")
    lon, _ = _lonlat(mosaic.grid)
    assert lon.min() < 13.0 < lon.max()  # the grid really crosses the tile boundary
    np.testing.assert_allclose(mosaic.heights, reference.heights, atol=1e-3)
    np.testing.assert_allclose(mosaic.heights, _direct(single, mosaic.grid), atol=1e-3)
    # no step at the seam: column-to-column changes there are like everywhere else
    steps = np.abs(np.diff(mosaic.heights, axis=1))
    seam_cols = np.abs(lon[:, :-1] - 13.0) < 0.01
    assert steps[seam_cols].max() <= steps.max() + 1e-6
    assert steps.max() < 20.0


def test_copernicus_folder_auto_uses_egm2008_from_senprep_geoid_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _tile_folder(tmp_path / "glo30")
    geoid_dir = tmp_path / "geoids"
    _fake_egm2008(geoid_dir, offset=0.75)
    monkeypatch.setenv("SENPREP_GEOID_DIR", str(geoid_dir))
    assert find_geoid_grid("egm2008") == geoid_dir / "egm08_25.gtx"
    dem = load_dem(parse_dem_source(str(folder)), SEAM_GRID, margin_px=2)
    plain = load_dem(parse_dem_source(str(folder)), SEAM_GRID, margin_px=2, geoid="none")
    assert dem.geoid == "EGM2008 (egm08_25.gtx)"
    lon, lat = _lonlat(dem.grid)
    expected = geoid_undulation(lon, lat, "egm2008")
    np.testing.assert_allclose(dem.heights - plain.heights, expected, atol=0.01)
    egm96 = geoid_undulation(lon, lat, "egm96")
    assert 0.0 < np.mean(expected - egm96) < 1.5  # the stand-in really is a different grid


def test_copernicus_folder_missing_tiles_are_listed(tmp_path: Path) -> None:
    folder = _tile_folder(tmp_path / "glo30")
    north = TargetGrid(32633, 30.0, 331010.0, 4652010.0, 150, 100)  # crosses 42N and 13E: needs N42 tiles too
    with pytest.raises(DEMError) as info:
        load_dem(parse_dem_source(str(folder)), north, geoid="none")
    text = str(info.value)
    assert "Copernicus_DSM_COG_10_N42_00_E012_00_DEM.tif" in text
    assert "Copernicus_DSM_COG_10_N42_00_E013_00_DEM.tif" in text
    assert "N41_00_E012" not in text  # present tiles are not listed
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DEMError, match="holds no Copernicus_DSM"):
        load_dem(parse_dem_source(str(empty)), SEAM_GRID, geoid="none")


def test_tiles_covering_and_names() -> None:
    assert tiles_covering((12.9, 41.2, 13.1, 41.8)) == [(41, 12), (41, 13)]
    assert tiles_covering((12.2, 41.0, 12.4, 42.0)) == [(41, 12)]
    assert copernicus_tile_name(-3, -60) == "Copernicus_DSM_COG_10_S03_00_W060_00_DEM"
    assert copernicus_tile_name(5, 7, code="30", cog=False) == "Copernicus_DSM_30_N05_00_E007_00_DEM"


# ----- missing geoid grids -------------------------------------------------------------------------


def test_missing_geoid_grid_raises(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SENPREP_GEOID_DIR", str(tmp_path))
    monkeypatch.setenv("PROJ_NETWORK", "OFF")
    monkeypatch.setattr(geoid_mod.pyproj.network, "is_network_enabled", lambda: False)
    monkeypatch.setattr(geoid_mod, "find_geoid_grid", lambda model, dirs=None: None)
    with pytest.raises(GeoidError) as info:
        undulation_on_grid(ROME_GRID, "egm96")
    text = str(info.value)
    assert "egm96_15.gtx" in text and "apt-get install proj-data" in text and "SENPREP_GEOID_DIR" in text
    with pytest.raises(GeoidError, match=r"us_nga_egm08_25\.tif"):
        load_dem(parse_dem_source("flat:0"), ROME_GRID, geoid="egm2008")


def test_zero_shift_transformers_are_detected() -> None:
    enable_system_grids()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        group = TransformerGroup("EPSG:4326+5773", "EPSG:4979", always_xy=True)
    ballpark = [t for t in group.transformers if "ballpark" in t.description.lower()]
    assert ballpark, "PROJ should always offer the ballpark operation"
    with pytest.raises(GeoidError, match="zero-shift"):
        check_geoid_transformer(ballpark[0], "egm96")
    noop_pipeline = "+proj=pipeline +step +proj=unitconvert +xy_in=deg +xy_out=deg"
    with pytest.raises(GeoidError, match="no shift"):
        check_geoid_transformer(Transformer.from_pipeline(noop_pipeline), "egm96")
    real, label = geoid_mod.geoid_transformer("egm96")
    check_geoid_transformer(real, "egm96")  # the real one passes
    assert real.transform(12.5, 42.0, 0.0)[2] == pytest.approx(48.61, abs=0.05)
    assert "egm96_15" in label
