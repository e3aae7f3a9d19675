"""Sentinel-1 GRD radiometry against xarray-sentinel on a real product's LUTs, plus synthetic edge cases."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from xarray_sentinel import sentinel1 as xs

from senprep_core.errors import ConfigError, MetadataError
from senprep_core.geo.grid import PixelWindow
from senprep_core.s1.metadata import read_s1_metadata
from senprep_core.s1.model import Calibration, Noise, SparseLUT
from senprep_core.s1.radiometry import (
    azimuth_noise,
    calibrate,
    interpolate_lut,
    needs_border_noise_removal,
    remove_border_noise,
    remove_thermal_noise,
    to_db,
)
from tests.conftest import need_real_samples

ROME = "S1B_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993_5371.SAFE"
LINES, SAMPLES = 16705, 26102
# near the image start, in the middle across the IW1/IW2 seam (pixel 8889/8890), at the far-range end
WINDOWS = (
    PixelWindow(0, 0, 300, 400),
    PixelWindow(8000, 8700, 300, 400),
    PixelWindow(LINES - 300, SAMPLES - 400, 300, 400),
)
XS_LUT = {"sigma0": "sigmaNought", "beta0": "betaNought", "gamma0": "gamma"}


class RealProduct:
    """The Rome GRD's calibration and noise: ours (read_s1_metadata) and xarray-sentinel's datasets."""

    def __init__(self, safe: Path) -> None:
        folder = safe / "annotation" / "calibration"
        self.calibration_xml = next(folder.glob("calibration-*.xml"))
        self.noise_xml = next(folder.glob("noise-*.xml"))
        self.xs_calibration = xs.open_calibration_dataset(self.calibration_xml)
        self.xs_noise_range = xs.open_noise_range_dataset(self.noise_xml)
        self.xs_noise_azimuth = xs.open_noise_azimuth_dataset(self.noise_xml)
        image = read_s1_metadata(safe).image("VV")
        assert image.calibration is not None and image.noise is not None
        self.calibration: Calibration = image.calibration
        self.noise: Noise = image.noise


@pytest.fixture(scope="module")
def rome() -> RealProduct:
    return RealProduct(need_real_samples("sarsen-testdata", ROME))


def _synthetic_dn(window: PixelWindow, high: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(1, high, size=(window.height, window.width), dtype=np.uint16)


def _data_array(dn: np.ndarray, window: PixelWindow) -> xr.DataArray:
    coords = {"line": np.arange(window.row_off, window.row_stop), "pixel": np.arange(window.col_off, window.col_stop)}
    return xr.DataArray(dn, dims=("line", "pixel"), coords=coords)


def _reference_azimuth_gain(noise_xml: Path, window: PixelWindow) -> np.ndarray:
    """Azimuth noise gain computed pixel block by pixel block straight from the XML."""
    gain = np.ones((window.height, window.width))
    rows = np.arange(window.row_off, window.row_stop)
    for vector in ET.parse(noise_xml).getroot().iter("noiseAzimuthVector"):
        lines = np.array((vector.findtext("line") or "").split(), dtype=float)
        values = np.array((vector.findtext("noiseAzimuthLut") or "").split(), dtype=float)
        l0, l1 = int(vector.findtext("firstAzimuthLine") or ""), int(vector.findtext("lastAzimuthLine") or "")
        p0, p1 = int(vector.findtext("firstRangeSample") or ""), int(vector.findtext("lastRangeSample") or "")
        for j, col in enumerate(range(window.col_off, window.col_stop)):
            if p0 <= col <= p1:
                inside = (rows >= l0) & (rows <= l1)
                gain[inside, j] = np.interp(rows[inside], lines, values)
    return gain


@pytest.mark.realdata
@pytest.mark.parametrize("target", ["sigma0", "beta0", "gamma0"])
@pytest.mark.parametrize("window", WINDOWS, ids=["start", "middle", "far-end"])
def test_calibration_matches_xarray_sentinel(rome: RealProduct, target: str, window: PixelWindow) -> None:
    dn = _synthetic_dn(window, 2000, seed=window.row_off)
    ours = calibrate(dn.astype(np.float32) ** 2, rome.calibration, window, target)
    reference = xs.calibrate_intensity(_data_array(dn, window), rome.xs_calibration[XS_LUT[target]]).values
    assert ours.dtype == np.float32 and np.isfinite(ours).all()
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=0)


@pytest.mark.realdata
def test_calibration_lut_varies_over_windows(rome: RealProduct) -> None:
    """The sigma0 LUT differs across the swath, so the comparisons above exercise the interpolation."""
    near = interpolate_lut(rome.calibration.luts["sigma0"], WINDOWS[0])
    far = interpolate_lut(rome.calibration.luts["sigma0"], WINDOWS[2])
    assert near.mean() > far.mean() * 1.1
    assert np.ptp(near[0]) > 0.5  # varies along pixels inside a window


@pytest.mark.realdata
@pytest.mark.parametrize("window", WINDOWS, ids=["start", "middle", "far-end"])
def test_noise_removal_matches_independent_reference(rome: RealProduct, window: PixelWindow) -> None:
    dn = _synthetic_dn(window, 120, seed=window.col_off + 1)
    range_lut = rome.xs_noise_range["noiseRangeLut"].interp(line=_data_array(dn, window).line,
                                                           pixel=_data_array(dn, window).pixel)  # fmt: skip
    azimuth = _reference_azimuth_gain(rome.noise_xml, window)
    dn2 = dn.astype(np.float64) ** 2
    noise = range_lut.values * azimuth
    expected = dn2 - noise
    tolerance = 1e-5 * (dn2 + noise)
    assert (expected < -tolerance).sum() > 100 and (expected > tolerance).sum() > 100  # both signs occur

    zeroed = remove_thermal_noise(dn, rome.noise, window)
    assert zeroed.dtype == np.float32
    assert np.all(np.abs(zeroed - np.maximum(expected, 0.0)) <= tolerance)

    nodata = remove_thermal_noise(dn, rome.noise, window, negative="nodata")
    clear = np.abs(expected) > tolerance
    np.testing.assert_array_equal(np.isnan(nodata)[clear], (expected < 0)[clear])
    valid = ~np.isnan(nodata)
    assert np.all(np.abs(nodata[valid] - expected[valid]) <= tolerance[valid])


@pytest.mark.realdata
def test_azimuth_noise_blocks(rome: RealProduct) -> None:
    window = WINDOWS[1]  # crosses the IW1 / IW2 block seam
    gain = azimuth_noise(rome.noise, window)
    np.testing.assert_allclose(gain, _reference_azimuth_gain(rome.noise_xml, window), rtol=1e-6)
    seam = 8890 - window.col_off
    assert not np.allclose(gain[:, seam - 1], gain[:, seam], rtol=1e-3)  # different blocks either side
    # xarray-sentinel reads the first block (IW1) only: it must agree there
    rows = np.arange(window.row_off, window.row_stop)
    first_block = rome.xs_noise_azimuth["noiseAzimuthLut"].interp(line=rows).values
    np.testing.assert_allclose(gain[:, 0], first_block, rtol=1e-6)
    uncovered = PixelWindow(0, SAMPLES, 10, 20)  # beyond the last block's pixels
    np.testing.assert_array_equal(azimuth_noise(rome.noise, uncovered), 1.0)


@pytest.mark.realdata
def test_range_only_noise_and_no_noise(rome: RealProduct) -> None:
    window = WINDOWS[0]
    dn = _synthetic_dn(window, 200, seed=7)
    old_style = Noise(range=rome.noise.range)  # IPF < 2.90: no azimuth blocks
    np.testing.assert_array_equal(azimuth_noise(old_style, window), 1.0)
    range_lut = rome.xs_noise_range["noiseRangeLut"].interp(line=_data_array(dn, window).line,
                                                           pixel=_data_array(dn, window).pixel).values  # fmt: skip
    expected = np.maximum(dn.astype(np.float64) ** 2 - range_lut, 0.0)
    result = remove_thermal_noise(dn, old_style, window)
    assert np.all(np.abs(result - expected) <= 1e-5 * (dn.astype(np.float64) ** 2 + range_lut))
    np.testing.assert_array_equal(remove_thermal_noise(dn, None, window), dn.astype(np.float32) ** 2)


@pytest.mark.realdata
def test_interpolate_lut_speed(rome: RealProduct) -> None:
    window = PixelWindow(5000, 9000, 3000, 3000)
    best = np.inf
    for _ in range(3):
        start = time.perf_counter()
        dense = interpolate_lut(rome.calibration.luts["sigma0"], window)
        best = min(best, time.perf_counter() - start)
    print(f"interpolate_lut 3000 x 3000: {best * 1000:.1f} ms")
    assert dense.shape == (3000, 3000) and dense.dtype == np.float32
    assert best < 1.0


def test_interpolate_lut_ragged_vectors_is_bilinear_and_clamped() -> None:
    """Vectors with their own pixel positions; a plane a + b*line + c*pixel is reproduced exactly."""

    def plane(line: np.ndarray | float, pixel: np.ndarray | float) -> np.ndarray:
        return 100.0 + 0.01 * np.asarray(line) - 0.002 * np.asarray(pixel)

    lines = np.array([-5.0, 40.0, 95.0, 160.0])
    pixels = (np.array([0.0, 50.0, 130.0, 200.0]), np.array([0.0, 77.0, 200.0]),
              np.array([0.0, 10.0, 20.0, 140.0, 200.0]), np.array([0.0, 200.0]))  # fmt: skip
    lut = SparseLUT(lines, pixels, tuple(plane(line, p) for line, p in zip(lines, pixels, strict=True)))
    window = PixelWindow(0, 0, 160, 201)
    dense = interpolate_lut(lut, window)
    rows, cols = np.mgrid[0:160, 0:201]
    np.testing.assert_allclose(dense, plane(rows, cols), rtol=1e-6)

    # beyond the last vector and beyond the last pixel: the nearest value is kept
    outside = interpolate_lut(lut, PixelWindow(170, 190, 5, 20))
    cols = np.minimum(np.arange(190, 210), 200)
    np.testing.assert_allclose(outside, np.broadcast_to(plane(160.0, cols), (5, 20)), rtol=1e-6)

    # vectors given out of line order give the same result
    shuffled = SparseLUT(lines[::-1], pixels[::-1], lut.values[::-1])
    np.testing.assert_array_equal(interpolate_lut(shuffled, window), dense)


def test_interpolate_lut_single_vector_and_errors() -> None:
    lut = SparseLUT(np.array([10.0]), (np.array([0.0, 10.0]),), (np.array([1.0, 3.0]),))
    dense = interpolate_lut(lut, PixelWindow(0, 0, 3, 11))
    np.testing.assert_allclose(dense, np.broadcast_to(1.0 + 0.2 * np.arange(11), (3, 11)), rtol=1e-6)
    with pytest.raises(MetadataError, match="re-download"):
        interpolate_lut(SparseLUT(np.array([]), (), ()), PixelWindow(0, 0, 2, 2))
    with pytest.raises(MetadataError):
        interpolate_lut(SparseLUT(np.array([0.0]), (np.arange(3.0),), (np.arange(2.0),)), PixelWindow(0, 0, 2, 2))


def test_input_checks() -> None:
    lut = SparseLUT(np.array([0.0, 10.0]), (np.array([0.0, 9.0]),) * 2, (np.array([2.0, 2.0]),) * 2)
    calibration = Calibration(luts={"sigma0": lut})
    window = PixelWindow(0, 0, 4, 5)
    power = np.full((4, 5), 8.0, dtype=np.float32)
    np.testing.assert_allclose(calibrate(power, calibration, window), 2.0)
    with pytest.raises(MetadataError, match=r"calibration-\*\.xml"):
        calibrate(power, None, window)
    with pytest.raises(MetadataError, match="beta0"):
        calibrate(power, calibration, window, "beta0")
    with pytest.raises(ConfigError, match="sigma0"):
        calibrate(power, calibration, window, "sigma1")
    with pytest.raises(ConfigError, match="negative_power"):
        remove_thermal_noise(np.ones((4, 5), np.uint16), Noise(range=lut), window, negative="drop")
    with pytest.raises(ValueError, match="window"):
        remove_thermal_noise(np.ones((5, 4), np.uint16), Noise(range=lut), window)


def _old_grd(rows: int, samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic noise-removed power with dark, speckled border strips; returns (power, strip mask)."""
    rng = np.random.default_rng(seed)
    power = rng.uniform(100.0, 1000.0, size=(rows, samples)).astype(np.float32)
    strip = np.zeros_like(power, dtype=bool)
    bright = np.zeros_like(power, dtype=bool)
    for r in range(rows):
        near, far = 100 + (7 * r) % 50, 60 + r % 20
        strip[r, :near] = strip[r, samples - far :] = True
        # isolated bright noise pixels, none within 8 px of where the data starts
        bright[r, 1 : near - 8 : 17] = bright[r, samples - far + 3 : samples - 1 : 13] = True
    power[strip] = 0.0
    power[bright] = 600.0
    power[:, 1500:1600] = 0.0  # a dark interior area, farther than border_limit from both edges
    return power, strip


def test_border_noise_masks_old_ipf_strips_only() -> None:
    power, strip = _old_grd(60, 3000, seed=3)
    window = PixelWindow(0, 0, 60, 3000)
    assert needs_border_noise_removal("002.84") and not needs_border_noise_removal("003.40")
    out = remove_border_noise(power, window, 3000, "002.84")
    np.testing.assert_array_equal(np.isnan(out), strip)
    np.testing.assert_array_equal(out[~strip], power[~strip])

    same = remove_border_noise(power, window, 3000, "003.40")
    np.testing.assert_array_equal(same, power)
    assert not np.isnan(same).any()


def test_border_noise_windows() -> None:
    power, strip = _old_grd(40, 3000, seed=5)
    interior = PixelWindow(0, 1200, 40, 600)  # far from both range edges: untouched
    np.testing.assert_array_equal(remove_border_noise(power[:, 1200:1800], interior, 3000, 2.84), power[:, 1200:1800])
    far_part = PixelWindow(0, 2500, 40, 500)  # holds the far edge only
    out = remove_border_noise(power[:, 2500:], far_part, 3000, 2.84)
    np.testing.assert_array_equal(np.isnan(out), strip[:, 2500:])
    beyond = PixelWindow(0, 2900, 40, 150)  # reaches past the image's last column: those stay as given
    padded = np.hstack([power[:, 2900:], np.full((40, 50), 7.0, np.float32)])
    out = remove_border_noise(padded, beyond, 3000, 2.84)
    np.testing.assert_array_equal(np.isnan(out[:, :100]), strip[:, 2900:])
    np.testing.assert_array_equal(out[:, 100:], 7.0)


def test_border_noise_first_lines() -> None:
    rng = np.random.default_rng(11)
    power = rng.uniform(100.0, 1000.0, size=(50, 3000)).astype(np.float32)
    power[:6, :] = 0.0  # dark first lines of a datatake
    window = PixelWindow(0, 0, 50, 3000)
    range_only = remove_border_noise(power, window, 3000, 2.5)  # dark rows are masked in the range strips only
    assert np.isnan(range_only[:6, :1000]).all() and np.isnan(range_only[:6, 2000:]).all()
    np.testing.assert_array_equal(range_only[:6, 1000:2000], 0.0)
    assert not np.isnan(range_only[6:]).any()
    out = remove_border_noise(power, window, 3000, 2.5, image_lines=50)
    assert np.isnan(out[:6]).all() and not np.isnan(out[6:]).any()


def test_to_db_floor_and_nan() -> None:
    values = np.array([1.0, 0.1, 0.0, -1.0, np.nan, 1e-6, 100.0], dtype=np.float32)
    out = to_db(values)
    np.testing.assert_allclose(out, [0.0, -10.0, -40.0, -40.0, np.nan, -40.0, 20.0], atol=1e-5)
    assert out.dtype == np.float32
    np.testing.assert_allclose(to_db(values, floor_db=-70.0)[[2, 5]], [-70.0, -60.0], atol=1e-4)
