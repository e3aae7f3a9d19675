"""read_s2_window on the real L2A T29UNU SAFE, checked against direct rasterio reads."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.warp import reproject, transform_bounds

from senprep_core.bands import SCL_CLASSES
from senprep_core.errors import CorruptProductError, MetadataError
from senprep_core.geo.grid import Bounds, TargetGrid
from senprep_core.s2 import reader as reader_module
from senprep_core.s2.masks import roi_fractions
from senprep_core.s2.metadata import S2Metadata, read_s2_metadata
from senprep_core.s2.reader import read_s2_window
from tests.conftest import need_real_samples

pytestmark = pytest.mark.realdata

NAME = "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE"
GRANULE = "GRANULE/L2A_T29UNU_A038058_20221005T115407"
B04 = f"{GRANULE}/IMG_DATA/R60m/T29UNU_20221005T115411_B04_60m.jp2"
B8A = f"{GRANULE}/IMG_DATA/R60m/T29UNU_20221005T115411_B8A_60m.jp2"
SCL20 = f"{GRANULE}/IMG_DATA/R20m/T29UNU_20221005T115411_SCL_20m.jp2"
CLASSI = f"{GRANULE}/QI_DATA/MSK_CLASSI_B00.jp2"
CLDPRB20 = f"{GRANULE}/QI_DATA/MSK_CLDPRB_20m.jp2"
ULX, ULY = 499980.0, 5900040.0


@pytest.fixture(scope="module")
def safe() -> Path:
    """The SAFE with at least B04 (60 m) and SCL (20 m): the copy in tests/data/real holds only a few bands."""
    return need_real_samples("stactools-sentinel2", NAME)


def _safe_with(*members: str) -> Path:
    """The SAFE holding ``members`` too: bands the copy in tests/data/real lacks come from ../shared."""
    return need_real_samples("stactools-sentinel2", NAME, members=members)


@pytest.fixture(scope="module")
def meta(safe: Path) -> S2Metadata:
    return read_s2_metadata(safe)


@pytest.fixture(scope="module")
def b04_dn(safe: Path) -> np.ndarray:
    with rasterio.open(safe / B04) as ds:
        return ds.read(1)


@pytest.fixture(scope="module")
def scl20(safe: Path) -> np.ndarray:
    with rasterio.open(safe / SCL20) as ds:
        return ds.read(1)


def _reflectance(dn: np.ndarray) -> np.ndarray:
    out = (dn.astype(np.float32) - 1000) / 10000
    out[dn == 0] = np.nan
    return out


def _grid(res: float, row60: int, col60: int, h60: int, w60: int) -> TargetGrid:
    """A grid at ``res`` covering 60 m tile pixels [row60:row60+h60, col60:col60+w60]."""
    k = int(60 // res)
    return TargetGrid(32629, res, ULX + col60 * 60, ULY - row60 * 60, w60 * k, h60 * k)


def test_aligned_60m_is_exact_and_not_warped(
    meta: S2Metadata, b04_dn: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    warped: list[np.dtype] = []
    real = reader_module.reproject

    def spy(source: np.ndarray, *args: object, **kwargs: object) -> object:
        warped.append(source.dtype)
        return real(source, *args, **kwargs)

    monkeypatch.setattr(reader_module, "reproject", spy)
    grid = _grid(60.0, 300, 900, 120, 150)
    win = read_s2_window(meta, grid, ["B04"])
    expected = _reflectance(b04_dn[300:420, 900:1050])
    np.testing.assert_allclose(win.data[0], expected, rtol=0, atol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(win.valid, b04_dn[300:420, 900:1050] != 0)
    assert warped == [np.dtype(np.uint8)]  # only the 20 m SCL (cloud layer) is warped; B04 is sliced


def test_grid_reaching_past_the_tile(meta: S2Metadata, b04_dn: np.ndarray) -> None:
    grid = _grid(60.0, -10, 1800, 40, 50)  # 10 rows above, 20 columns right of the tile
    win = read_s2_window(meta, grid, ["B04"])
    assert np.isnan(win.data[0, :10]).all() and np.isnan(win.data[0, :, 30:]).all()
    np.testing.assert_allclose(win.data[0, 10:, :30], _reflectance(b04_dn[0:30, 1800:1830]), atol=1e-6, equal_nan=True)


def _gdal_bilinear_b04(b04_dn: np.ndarray, grid: TargetGrid) -> np.ndarray:
    """The reference: GDAL's bilinear warp of the whole 60 m B04 band onto ``grid``."""
    expected = np.full(grid.shape, np.nan, dtype=np.float32)
    reproject(
        _reflectance(b04_dn),
        expected,
        src_transform=rasterio.Affine(60, 0, ULX, 0, -60, ULY),
        src_crs="EPSG:32629",
        src_nodata=np.nan,
        dst_transform=grid.transform,
        dst_crs=grid.crs,
        dst_nodata=np.nan,
        resampling=Resampling.bilinear,
    )
    return expected


def test_10m_bilinear_matches_whole_band_reproject(meta: S2Metadata, b04_dn: np.ndarray) -> None:
    grid = _grid(10.0, 400, 1000, 40, 50)
    grid = TargetGrid(grid.epsg, 10.0, grid.left + 25, grid.top - 35, grid.width, grid.height)  # off the 60 m lattice
    win = read_s2_window(meta, grid, ["B04"], resampling="bilinear")
    expected = _gdal_bilinear_b04(b04_dn, grid)
    assert np.isfinite(expected).mean() > 0.5
    np.testing.assert_allclose(win.data[0], expected, rtol=0, atol=1e-4, equal_nan=True)


def test_scl_masks_are_nearest_class_masks(meta: S2Metadata, scl20: np.ndarray) -> None:
    grid = _grid(10.0, 250, 700, 30, 40)  # 10 m grid, aligned with the 20 m SCL pixels
    names = list(SCL_CLASSES)
    win = read_s2_window(meta, grid, ["SCL", *names])
    r0, c0 = 250 * 3, 700 * 3
    scl = scl20[r0 : r0 + 90, c0 : c0 + 120].repeat(2, axis=0).repeat(2, axis=1)
    valid = scl != 0
    np.testing.assert_array_equal(win.valid, valid)
    np.testing.assert_array_equal(win.data[0][valid], scl[valid])
    for i, name in enumerate(names, start=1):
        np.testing.assert_array_equal(win.data[i][valid], (scl == SCL_CLASSES[name])[valid].astype(np.float32))
        assert np.isnan(win.data[i][~valid]).all()


def test_roi_cloud_fraction_matches_direct_count(meta: S2Metadata, scl20: np.ndarray) -> None:
    grid = _grid(20.0, 500, 1200, 60, 60)
    win = read_s2_window(meta, grid, ["scl_cloud_shadow"])
    yy, xx = np.mgrid[0 : grid.height, 0 : grid.width]
    roi = (yy - 90) ** 2 + (xx - 90) ** 2 < 80**2
    r0, c0 = 1500, 3600
    scl = scl20[r0 : r0 + grid.height, c0 : c0 + grid.width]
    n_valid = int(((scl != 0) & roi).sum())
    n_cloud = int((np.isin(scl, (8, 9, 10)) & roi).sum())
    assert win.cloud is not None and n_valid > 0
    fractions = roi_fractions(win.valid, win.cloud, roi)
    assert fractions.n_valid == n_valid and fractions.n_cloud == n_cloud
    assert fractions.cloud_fraction == pytest.approx(n_cloud / n_valid)


def test_swath_edge_valid_fraction(b04_dn: np.ndarray) -> None:
    meta = read_s2_metadata(_safe_with(B8A))
    nodata = (b04_dn == 0).astype(np.float64)
    size = 60
    best = None
    for r in range(0, 1830 - size, size):
        for c in range(0, 1830 - size, size):
            share = nodata[r : r + size, c : c + size].mean()
            if 0.3 < share < 0.7:
                best = (r, c)
                break
        if best:
            break
    assert best is not None, "the swath edge crosses this tile"
    r, c = best
    grid = _grid(60.0, r, c, size, size)
    win = read_s2_window(meta, grid, ["B04", "B8A"])
    roi = np.ones(grid.shape, dtype=bool)
    direct = (b04_dn[r : r + size, c : c + size] != 0).mean()
    assert roi_fractions(win.valid, win.cloud, roi).valid_fraction == pytest.approx(direct)
    assert 0.3 < direct < 0.7


def test_neighbouring_utm_zone(meta: S2Metadata, b04_dn: np.ndarray) -> None:
    left, top = ULX + 60 * 300, ULY - 60 * 300
    bounds = transform_bounds("EPSG:32629", "EPSG:32630", left, top - 3000, left + 3000, top)
    grid = TargetGrid.covering(Bounds(*bounds), 32630, 20.0)
    win = read_s2_window(meta, grid, ["B04", "scl_vegetation"])
    expected = _gdal_bilinear_b04(b04_dn, grid)
    assert np.isfinite(expected).mean() > 0.9
    np.testing.assert_allclose(win.data[0], expected, rtol=0, atol=1e-4, equal_nan=True)
    assert win.cloud is not None and win.cloud.shape == grid.shape


def test_zip_reads_identically(tmp_path: Path) -> None:
    safe = _safe_with(B8A, CLASSI, CLDPRB20)
    meta = read_s2_metadata(safe)
    zpath = tmp_path / f"{NAME}.zip"
    with zipfile.ZipFile(zpath, "w", compression=zipfile.ZIP_STORED) as zf:
        for f in sorted(safe.rglob("*")):
            if f.is_file():
                zf.write(f, f"{NAME}/{f.relative_to(safe).as_posix()}")
    zmeta = read_s2_metadata(zpath)
    assert zmeta.location is not None and zmeta.location.is_zip
    assert zmeta.band_files == meta.band_files and zmeta.tile_id == "29UNU"
    grid = _grid(20.0, 600, 800, 30, 30)
    bands = ["B04", "B8A", "SCL", "opaque_clouds", "cloud_probability"]
    a, b = read_s2_window(meta, grid, bands), read_s2_window(zmeta, grid, bands)
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(a.valid, b.valid)


def _partial_copy(safe: Path, dest: Path, members: list[str]) -> Path:
    out = dest / NAME
    for member in members:
        target = out / member
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(safe / member, target)
    return out


def test_truncated_jp2_is_corrupt(safe: Path, tmp_path: Path) -> None:
    copy = _partial_copy(safe, tmp_path, ["MTD_MSIL2A.xml", f"{GRANULE}/MTD_TL.xml", B04, SCL20])
    band = copy / B04
    band.write_bytes(band.read_bytes()[: band.stat().st_size // 2])
    meta = read_s2_metadata(copy)
    with pytest.raises(CorruptProductError, match="B04"):
        read_s2_window(meta, _grid(60.0, 0, 0, 1830, 1830), ["B04"])


def test_missing_band_is_corrupt(safe: Path, tmp_path: Path) -> None:
    copy = _partial_copy(safe, tmp_path, ["MTD_MSIL2A.xml", f"{GRANULE}/MTD_TL.xml", B04])
    meta = read_s2_metadata(copy)
    with pytest.raises(CorruptProductError, match=r"band B8A") as info:
        read_s2_window(meta, _grid(60.0, 0, 0, 10, 10), ["B04", "B8A"])
    assert NAME.removesuffix(".SAFE") in str(info.value)


def test_malformed_mtd_is_metadata_error(safe: Path, tmp_path: Path) -> None:
    copy = _partial_copy(safe, tmp_path, ["MTD_MSIL2A.xml", f"{GRANULE}/MTD_TL.xml"])
    mtd = copy / "MTD_MSIL2A.xml"
    mtd.write_bytes(mtd.read_bytes()[:5000])
    with pytest.raises(MetadataError, match=r"MTD_MSIL2A\.xml"):
        read_s2_metadata(copy)
