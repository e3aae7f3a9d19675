"""The separable resampler gives GDAL's bilinear / nearest results on shared-CRS north-up grids."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from rasterio.enums import Resampling
from rasterio.warp import reproject

from senprep_core.resample import AxisMap, bilinear, nearest


def _gdal(src: np.ndarray, src_t: Affine, dst_shape: tuple[int, int], dst_t: Affine, how: Resampling) -> np.ndarray:
    out = np.full(dst_shape, np.nan, np.float32)
    reproject(src, out, src_transform=src_t, src_crs="EPSG:32630", src_nodata=np.nan, dst_transform=dst_t,
              dst_crs="EPSG:32630", dst_nodata=np.nan, resampling=how)  # fmt: skip
    return out


def _maps(shape: tuple[int, int], dst_t: Affine, src_shape: tuple[int, int], src_t: Affine) -> tuple[AxisMap, AxisMap]:
    cols = AxisMap.build(shape[1], dst_t.c, dst_t.a, src_t.c, src_t.a, src_shape[1])
    rows = AxisMap.build(shape[0], -dst_t.f, -dst_t.e, -src_t.f, -src_t.e, src_shape[0])
    return rows, cols


@pytest.mark.parametrize(("src_res", "offset"), [(20.0, 0.0), (60.0, 10.0), (20.0, 30.0), (30.0, 0.0), (10.0, 0.0)])
def test_bilinear_matches_gdal_with_nodata(src_res: float, offset: float) -> None:
    rng = np.random.default_rng(int(src_res + offset))
    src = rng.random((40, 50)).astype(np.float32)
    src[5:9, 7:20] = np.nan
    src[30, 30] = np.nan
    src_t = Affine(src_res, 0, 500000.0, 0, -src_res, 6200000.0)
    dst_t = Affine(10.0, 0, 500000.0 + src_res * 2 + offset, 0, -10.0, 6200000.0 - src_res * 2 - offset)
    shape = (int(30 * src_res / 10) // 2, int(40 * src_res / 10) // 2)
    rows, cols = _maps(shape, dst_t, src.shape, src_t)
    ours = bilinear(src, rows, cols)
    gdal = _gdal(src, src_t, shape, dst_t, Resampling.bilinear)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(gdal))
    np.testing.assert_allclose(ours, gdal, atol=1e-5, equal_nan=True)


def test_nearest_matches_gdal_for_classes() -> None:
    rng = np.random.default_rng(3)
    src = rng.integers(0, 12, (30, 30)).astype(np.float32)
    src_t = Affine(20.0, 0, 400000.0, 0, -20.0, 6000000.0)
    dst_t = Affine(10.0, 0, 400010.0, 0, -10.0, 5999990.0)
    rows, cols = _maps((50, 50), dst_t, src.shape, src_t)
    np.testing.assert_array_equal(
        nearest(src, rows, cols, np.nan), _gdal(src, src_t, (50, 50), dst_t, Resampling.nearest)
    )


def test_target_pixels_outside_the_source_are_no_data() -> None:
    src = np.ones((4, 4), np.float32)
    src_t = Affine(20.0, 0, 0.0, 0, -20.0, 80.0)
    dst_t = Affine(10.0, 0, -20.0, 0, -10.0, 80.0)
    rows, cols = _maps((8, 12), dst_t, src.shape, src_t)
    out = bilinear(src, rows, cols)
    assert np.isnan(out[:, :2]).all() and not np.isnan(out[:, 2:10]).any() and np.isnan(out[:, 10:]).all()
