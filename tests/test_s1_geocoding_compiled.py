"""The compiled geocoding kernels against the numpy code they replaced (kept here as the reference):
lattice interpolation of radar positions, slant -> ground range and (line, pixel), bilinear sampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from senprep_core.geo.grid import PixelWindow, TargetGrid
from senprep_core.s1.geometry import GROUND_RANGE_ITERATIONS, RadarGeometry
from senprep_core.s1.metadata import read_s1_metadata
from senprep_core.s1.model import SPEED_OF_LIGHT
from senprep_core.s1.positions import lattice_indices, radar_positions, upsample_lattice
from senprep_core.s1.terrain import sample
from tests.conftest import need_real_samples

GRID = TargetGrid(epsg=32633, resolution=10.0, left=290000.0, top=4650000.0, width=301, height=263)
ROME = ("sarsen-testdata", "S1B_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993_5371.SAFE")


def _locator(lat: np.ndarray, lon: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    line = (42.0 - lat) * 11000.0 + 0.02 * h + 2e-7 * h**2
    pixel = (lon - 12.4) * 8200.0 + 0.15 * h + 40.0 * (lat - 41.95) ** 2
    return line, np.where(line > 1500.0, np.nan, pixel)  # a NaN corner on the lattice


def reference_quadratic(grid: TargetGrid, heights: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
    """The numpy lattice path of ``radar_positions`` before the kernel (separable matrix products)."""
    from senprep_core.s1.positions import _lattice_lonlat

    rows, cols = lattice_indices(grid.height, step), lattice_indices(grid.width, step)
    lon, lat = (a.ravel() for a in _lattice_lonlat(grid, rows, cols))
    finite = heights[np.isfinite(heights)]
    h_min, h_max = float(finite.min()), float(finite.max())
    centre, half = (h_min + h_max) / 2, max((h_max - h_min) / 2, 1.0)
    solved = [_locator(lat, lon, np.full(lat.size, centre + k * half)) for k in (-1, 0, 1)]
    t = np.nan_to_num((heights - centre) / half)
    out = []
    for which in (0, 1):
        low, mid, high = (solved[k][which].reshape(rows.size, cols.size) for k in range(3))
        a0, a1, a2 = (upsample_lattice(c, rows, cols, grid) for c in (mid, (high - low) / 2, (high + low) / 2 - mid))
        value = a0 + t * (a1 + t * a2)
        value[~np.isfinite(heights)] = np.nan
        out.append(value)
    return out[0], out[1]


@pytest.mark.parametrize("step", [1, 16, 32, 400])
def test_lattice_kernel_equals_the_matrix_interpolation(step: int) -> None:
    rng = np.random.default_rng(step)
    yy, xx = np.mgrid[0 : GRID.height, 0 : GRID.width]
    heights = 400 + 300 * np.sin(xx / 37.0) * np.cos(yy / 23.0) + rng.normal(0, 5, GRID.shape)
    heights[5:9, 40:60] = np.nan
    fast = radar_positions(GRID, heights, _locator, step=step)
    line, pixel = reference_quadratic(GRID, heights, step)
    for got, want in ((fast.line, line), (fast.pixel, pixel)):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        assert np.isnan(want).any() and np.isfinite(want).any()
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)


def reference_ground(geometry: RadarGeometry, slant: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The numpy slant -> ground range before the kernel: nearest record, srgr, Newton on grsr."""
    c = geometry._conversion
    k = np.searchsorted(geometry._record_edges, t)

    def polyval(coefficients: np.ndarray, x: np.ndarray) -> np.ndarray:
        rows = coefficients[k]
        result = rows[..., -1].copy()
        for degree in range(coefficients.shape[1] - 2, -1, -1):
            result *= x
            result += rows[..., degree]
        return result

    ground = polyval(c.srgr, slant - c.sr0[k])
    for _ in range(GROUND_RANGE_ITERATIONS):
        x = ground - c.gr0[k]
        ground = ground - (polyval(c.grsr, x) - slant) / polyval(geometry._grsr_slope, x)
    return ground


def reference_image_coordinates(geometry: RadarGeometry, t_zd: np.ndarray, slant: np.ndarray) -> tuple[np.ndarray, ...]:
    """The numpy (line, pixel) conversion before the kernel."""
    t_line = t_zd + geometry.bistatic_shift(2.0 * slant / SPEED_OF_LIGHT)
    ground = reference_ground(geometry, slant, np.where(np.isfinite(t_line), t_line, 0.0))
    pixel = np.where(np.isfinite(t_line), ground / geometry.image.range_pixel_spacing, np.nan)
    return geometry.time_to_line(t_line), pixel


@pytest.mark.realdata
def test_image_coordinates_kernel_equals_the_numpy_conversion() -> None:
    path: Path = need_real_samples(*ROME)
    image = read_s1_metadata(path).image("VV")
    geometry = RadarGeometry(image)
    rng = np.random.default_rng(3)
    n = 20_000
    t_zd = geometry.line_to_time(rng.uniform(-200, image.lines + 200, n))  # spans every conversion record
    ground = rng.uniform(-1000, image.samples * image.range_pixel_spacing + 1000, n)
    slant = geometry.ground_to_slant_range(ground, t_zd)
    t_zd[:5] = np.nan
    slant[5:10] = np.nan
    line, pixel = geometry.image_coordinates(t_zd.reshape(100, 200), slant.reshape(100, 200))
    want_line, want_pixel = reference_image_coordinates(geometry, t_zd, slant)
    np.testing.assert_array_equal(line.ravel(), want_line)
    np.testing.assert_array_equal(pixel.ravel(), want_pixel)
    got = geometry.slant_to_ground_range(slant, t_zd)  # NaN times take the last record, like searchsorted
    np.testing.assert_array_equal(got, reference_ground(geometry, slant, t_zd))
    np.testing.assert_allclose(got[10:], ground[10:], atol=1e-6)


@pytest.mark.parametrize("with_nan", [False, True])
def test_bilinear_kernel_equals_map_coordinates(with_nan: bool) -> None:
    rng = np.random.default_rng(5)
    image = rng.gamma(2.0, 0.05, (120, 90)).astype(np.float32)
    if with_nan:
        image[30:33, 40:45] = np.nan
        image[:, 0] = np.nan
    window = PixelWindow(1000, 2000, 120, 90)
    line = rng.uniform(995, 1125, (70, 80))
    pixel = rng.uniform(1995, 2095, (70, 80))
    line[0, :10] = np.floor(line[0, :10])  # whole positions: the zero-weight neighbour still counts
    pixel[1, :10] = np.round(pixel[1, :10])
    line[2, 0] = np.nan
    pixel[2, 1] = np.inf
    line[3, :4] = [999.5, 1119.5, 999.49, 1119.51]  # the half-pixel border
    grid = TargetGrid(32633, 10.0, 0.0, 0.0, 80, 70)
    from senprep_core.s1.positions import RadarPositions

    got = sample(image, RadarPositions(grid, line, pixel), window, "bilinear")
    rows, cols = line - window.row_off, pixel - window.col_off
    inside = np.isfinite(rows) & np.isfinite(cols) & (rows >= -0.5) & (rows <= 119.5) & (cols >= -0.5) & (cols <= 89.5)
    want = np.full(line.shape, np.nan, dtype=np.float32)
    want[inside] = map_coordinates(image, [rows[inside], cols[inside]], order=1, mode="nearest")
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = np.isfinite(want)
    np.testing.assert_allclose(got[ok], want[ok], rtol=1e-6)
