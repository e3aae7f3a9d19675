"""Sentinel-1 GRD radiometry: LUT interpolation, thermal noise removal, calibration, border noise, dB.

Pure functions on arrays. A window (:class:`~senprep_core.geo.grid.PixelWindow`) says which image
lines (rows) and pixels (columns) an array holds, so the sparse annotation LUTs are evaluated at
exactly those positions. The chain is::

    power = remove_thermal_noise(dn, image.noise, window)          # DN**2 - noise
    power = remove_border_noise(power, window, image.samples, ipf)  # IPF < 2.90 only
    sigma0 = calibrate(power, image.calibration, window, "sigma0")  # power / LUT**2
    sigma0_db = to_db(sigma0)

A :class:`RadarLattice` (chosen lines x chosen pixels, e.g. a decimated read for a preview) may stand
in for the window of the noise removal and the calibration.

Interpolation matches xarray-sentinel's ``calibrate_intensity`` (bilinear in line and pixel
between the annotation vectors) inside the LUT grid; outside it the nearest vector / sample is
used (constant extrapolation) instead of NaN.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

import numpy as np

from senprep_core.errors import ConfigError, MetadataError
from senprep_core.geo.grid import PixelWindow
from senprep_core.s1.model import Calibration, Noise, SparseLUT

logger = logging.getLogger(__name__)

#: Calibration targets and the key of their LUT in :attr:`Calibration.luts`.
CALIBRATION_TARGETS = ("sigma0", "beta0", "gamma0")
NEGATIVE_POWER = ("zero", "nodata")
#: Products processed with an IPF older than this carry border noise (ESA fixed it in IPF 2.90).
BORDER_NOISE_FIXED_IPF = 2.90


@dataclass(frozen=True)
class RadarLattice:
    """Increasing image ``lines`` x ``pixels`` (float positions): the cells of an array read from them."""

    lines: np.ndarray
    pixels: np.ndarray

    @property
    def height(self) -> int:
        return int(self.lines.size)

    @property
    def width(self) -> int:
        return int(self.pixels.size)


#: Where an array's cells lie in the image: a contiguous window, or a lattice of lines x pixels.
Cells = PixelWindow | RadarLattice


def _rows_cols(window: Cells) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(window, RadarLattice):
        return np.asarray(window.lines, dtype=np.float64), np.asarray(window.pixels, dtype=np.float64)
    if window.height < 0 or window.width < 0:
        raise ValueError(f"window size must not be negative, got {window}")
    rows = np.arange(window.row_off, window.row_stop, dtype=np.float64)
    cols = np.arange(window.col_off, window.col_stop, dtype=np.float64)
    return rows, cols


def _check_shape(array: np.ndarray, window: Cells, name: str) -> None:
    if array.shape != (window.height, window.width):
        raise ValueError(
            f"{name} has shape {array.shape} but the window is {window.height} x {window.width}; "
            "pass the window the array was read from"
        )


def _check_lut(lut: SparseLUT) -> tuple[np.ndarray, np.ndarray]:
    """The LUT's lines (float64) and the vector order sorting them; MetadataError if malformed."""
    lines = np.asarray(lut.lines, dtype=np.float64)
    if lines.ndim != 1 or lines.size == 0:
        raise MetadataError("a calibration/noise LUT has no vectors; the annotation XML is damaged, re-download it")
    if len(lut.pixels) != lines.size or len(lut.values) != lines.size:
        raise MetadataError(
            f"a LUT has {lines.size} lines but {len(lut.pixels)} pixel and {len(lut.values)} value vectors; "
            "the annotation XML is damaged, re-download it"
        )
    for pixels, values in zip(lut.pixels, lut.values, strict=True):
        if np.shape(pixels) != np.shape(values) or np.size(pixels) == 0:
            raise MetadataError(
                f"a LUT vector has {np.size(pixels)} pixels but {np.size(values)} values; "
                "the annotation XML is damaged, re-download it"
            )
    order = np.argsort(lines, kind="stable")
    return lines[order], order


def interpolate_lut(lut: SparseLUT, window: Cells) -> np.ndarray:
    """Dense float32 values of a sparse LUT at every line (row) and pixel (column) of ``window``.

    Bilinear, as xarray-sentinel does: each vector is first interpolated linearly along its own
    pixel positions (vectors may differ in positions and length), then rows are interpolated
    linearly between the two vectors bracketing their line. Outside the sampled lines or pixels
    the nearest vector / sample value is used (constant extrapolation). Only the vectors
    bracketing the window's lines are evaluated, and rows sharing a bracket pair are filled
    with one broadcast operation, so a 3000 x 3000 window takes a few tens of milliseconds.
    """
    rows, cols = _rows_cols(window)
    lines, order = _check_lut(lut)
    out = np.empty((window.height, window.width), dtype=np.float32)
    if out.size == 0:
        return out
    if lines.size == 1:
        out[:] = _vector_at(lut, int(order[0]), cols)[None, :]
        return out
    lower = np.clip(np.searchsorted(lines, rows, side="right") - 1, 0, lines.size - 2)
    span = lines[lower + 1] - lines[lower]
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(span > 0, (rows - lines[lower]) / span, 0.0)
    weight = np.clip(weight, 0.0, 1.0).astype(np.float32)
    cache: dict[int, np.ndarray] = {}

    def vector(k: int) -> np.ndarray:
        if k not in cache:
            cache[k] = _vector_at(lut, int(order[k]), cols).astype(np.float32)
        return cache[k]

    # rows sharing the same bracketing pair are contiguous (rows and lines are both sorted)
    starts = np.flatnonzero(np.diff(lower)) + 1
    bounds = [0, *starts.tolist(), rows.size]
    for r0, r1 in itertools.pairwise(bounds):
        k = int(lower[r0])
        first, second = vector(k), vector(k + 1)
        block = out[r0:r1]
        np.multiply(weight[r0:r1, None], (second - first)[None, :], out=block)
        block += first[None, :]
    return out


def _vector_at(lut: SparseLUT, index: int, cols: np.ndarray) -> np.ndarray:
    """Vector ``index`` of the LUT interpolated linearly at pixel positions ``cols`` (float64)."""
    pixels = np.asarray(lut.pixels[index], dtype=np.float64)
    values = np.asarray(lut.values[index], dtype=np.float64)
    if pixels.size > 1 and np.any(np.diff(pixels) < 0):
        sort = np.argsort(pixels, kind="stable")
        pixels, values = pixels[sort], values[sort]
    return np.interp(cols, pixels, values)


def azimuth_noise(noise: Noise, window: Cells) -> np.ndarray:
    """The azimuth noise gain (float32) at every line/pixel of ``window``; 1.0 where no block covers.

    Each :class:`~senprep_core.s1.model.AzimuthNoiseBlock` covers lines
    ``first_line..last_line`` and pixels ``first_pixel..last_pixel`` (inclusive); inside it the
    gain is its LUT interpolated linearly along lines (constant beyond its first/last sample)
    and constant along pixels. Products before IPF 2.90 have no blocks: the result is all 1.
    """
    rows, cols = _rows_cols(window)
    out = np.ones((window.height, window.width), dtype=np.float32)
    for block in noise.azimuth:
        row_sel = (rows >= block.first_line) & (rows <= block.last_line)
        col_sel = (cols >= block.first_pixel) & (cols <= block.last_pixel)
        if not row_sel.any() or not col_sel.any():
            continue
        lines = np.asarray(block.lines, dtype=np.float64)
        values = np.asarray(block.values, dtype=np.float64)
        if lines.size != values.size:
            size = min(lines.size, values.size)
            logger.warning(
                "azimuth noise block of lines %d-%d has %d lines but %d values; using the first %d",
                block.first_line, block.last_line, lines.size, values.size, size,
            )  # fmt: skip
            lines, values = lines[:size], values[:size]
        if lines.size == 0:
            continue
        gain = np.interp(rows[row_sel], lines, values).astype(np.float32)
        r = np.flatnonzero(row_sel)
        c = np.flatnonzero(col_sel)
        # blocks are rectangles: the selected rows/columns are contiguous ranges
        out[r[0] : r[-1] + 1, c[0] : c[-1] + 1] = gain[:, None]
    return out


def noise_power(noise: Noise, window: Cells) -> np.ndarray:
    """The thermal noise power (float32, DN**2 units): range LUT x azimuth gain over ``window``."""
    power = interpolate_lut(noise.range, window)
    if noise.azimuth:
        power *= azimuth_noise(noise, window)
    return power


def remove_thermal_noise(dn: np.ndarray, noise: Noise | None, window: Cells, negative: str = "zero") -> np.ndarray:
    """Noise-removed power ``DN**2 - noise_range * noise_azimuth`` as float32.

    ``dn`` holds the GRD digital numbers of ``window`` (rows = lines, columns = pixels).
    Subtracting the noise leaves some pixels negative (weak returns below the noise floor);
    ``negative`` says what they become: ``"zero"`` (default, what SNAP's ThermalNoiseRemoval
    does) sets them to 0, ``"nodata"`` sets them to NaN. With ``noise=None`` (product without
    noise annotation) ``DN**2`` is returned unchanged; the caller records that noise was not
    removed. DN == 0 (no data outside the swath) is not treated specially here.
    """
    if negative not in NEGATIVE_POWER:
        raise ConfigError("sentinel1.negative_power", negative, f"use one of {', '.join(NEGATIVE_POWER)}")
    _check_shape(dn, window, "dn")
    amplitude = np.asarray(dn).astype(np.float32, copy=False)
    power = np.square(amplitude, dtype=np.float32)
    if noise is None:
        return power
    power -= noise_power(noise, window)
    below = power < 0
    if below.any():
        power[below] = 0.0 if negative == "zero" else np.nan
    return power


def calibrate(power: np.ndarray, calibration: Calibration | None, window: Cells, target: str = "sigma0") -> np.ndarray:
    """Calibrated intensity ``power / lut**2`` (float32) with ``lut`` the target's calibration LUT.

    ``power`` is the (noise-removed) ``DN**2`` of ``window``; ``target`` is ``"sigma0"``
    (sigmaNought LUT), ``"beta0"`` (betaNought) or ``"gamma0"`` (gamma). The LUTs already hold
    the absolute calibration constant, which is therefore not applied again (as ESA's
    calibration note and xarray-sentinel do). NaN stays NaN.
    """
    key = target.strip().lower() if isinstance(target, str) else target
    if key not in CALIBRATION_TARGETS:
        fix = f"calibrate to one of {', '.join(CALIBRATION_TARGETS)} (gamma0T comes from beta0 by terrain flattening)"
        raise ConfigError("sentinel1.bands", target, fix)
    if calibration is None:
        raise MetadataError(
            "the product lacks annotation/calibration/calibration-*.xml for this polarisation, "
            "so it cannot be calibrated; re-download the complete product"
        )
    lut = calibration.luts.get(key)
    if lut is None:
        raise MetadataError(
            f"the calibration annotation has no {key} LUT (it has {', '.join(sorted(calibration.luts)) or 'none'}); "
            "the calibration XML is damaged, re-download the product"
        )
    _check_shape(power, window, "power")
    dense = interpolate_lut(lut, window)
    np.square(dense, out=dense)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.divide(np.asarray(power, dtype=np.float32), dense, dtype=np.float32)


def _ipf_number(ipf_version: str | float) -> float | None:
    try:
        return float(ipf_version)
    except (TypeError, ValueError):
        return None


def needs_border_noise_removal(ipf_version: str | float) -> bool:
    """True for products processed before IPF 2.90 (or with an unreadable IPF version)."""
    number = _ipf_number(ipf_version)
    return number is None or number < BORDER_NOISE_FIXED_IPF - 1e-9


def remove_border_noise(
    power: np.ndarray,
    window: PixelWindow,
    image_samples: int,
    ipf_version: str | float,
    *,
    image_lines: int | None = None,
    border_limit: int = 1000,
    threshold: float = 0.5,
    run: int = 8,
) -> np.ndarray:
    """Mask (NaN) the border noise of GRDs processed with IPF < 2.90; a no-op from IPF 2.90 on.

    Old GRDs carry strips of low, noisy DN along the near and far range edges (and at the
    first/last lines of a datatake). After thermal noise removal these pixels are at or near 0.
    Method, per row and per range edge: within ``border_limit`` pixels of the image edge, the
    valid data starts at the first pixel (counted from the edge inward) that begins ``run``
    consecutive pixels all above ``threshold`` (noise-removed DN**2 units; NaN counts as below);
    every pixel of the strip before it is set to NaN. An isolated bright noise pixel therefore
    does not stop the strip, and a row with no such run is masked over the whole strip. With
    ``image_lines`` given the same is done along columns at the first/last lines. Pixels more
    than ``border_limit`` from an edge are never changed.

    ``power`` is the float array of ``window`` (noise-removed ``DN**2`` or calibrated intensity;
    lower ``threshold`` for the latter). A window that cuts into a strip without reaching the
    image edge is scanned from its own first/last column, so read windows that reach the edge
    for results identical to whole-image processing. Returns a float32 copy (the input itself
    when nothing applies). Known limit: dark surfaces (calm water in cross-polarisation) inside
    the strip can be masked too.
    """
    _check_shape(power, window, "power")
    if not needs_border_noise_removal(ipf_version):
        return power
    if border_limit <= 0 or run <= 0:
        raise ValueError(f"border_limit and run must be > 0, got {border_limit} and {run}")
    out = np.array(power, dtype=np.float32, copy=True)
    _mask_range_edges(out, window.col_off, image_samples, border_limit, threshold, run)
    if image_lines is not None:
        _mask_range_edges(out.T, window.row_off, image_lines, border_limit, threshold, run)
    return out


def _mask_range_edges(out: np.ndarray, offset: int, size: int, limit: int, threshold: float, run: int) -> None:
    """Mask the near and far edge strips of each row of ``out`` in place.

    Column ``j`` of ``out`` is image column ``offset + j``; the image has ``size`` columns.
    """
    width = out.shape[1]
    begin = max(0, -offset)  # first window column inside the image
    near_stop = min(width, min(limit, size) - offset)  # window columns [begin, near_stop) are in the near strip
    if near_stop > begin:
        _mask_strip(out[:, begin:], near_stop - begin, threshold, run)
    last = min(width, size - offset)  # window columns < last are inside the image
    far_start = max(begin, size - limit - offset)  # window columns [far_start, last) are in the far strip
    if last > far_start:
        _mask_strip(out[:, begin:last][:, ::-1], last - far_start, threshold, run)


def _mask_strip(view: np.ndarray, strip: int, threshold: float, run: int) -> None:
    """Mask columns ``[0, start)`` of each row of ``view`` where ``start`` begins the first good run.

    Runs may extend past the strip into the rest of ``view``; beyond the view's end they are
    padded with good pixels (the data continues outside the window).
    """
    if strip <= 0 or view.shape[0] == 0:
        return
    span = min(view.shape[1], strip + run - 1)
    good = np.ones((view.shape[0], strip + run - 1), dtype=np.int32)
    good[:, :span] = view[:, :span] > threshold  # NaN compares False
    csum = np.zeros((view.shape[0], good.shape[1] + 1), dtype=np.int32)
    np.cumsum(good, axis=1, out=csum[:, 1:])
    full = (csum[:, run : run + strip] - csum[:, :strip]) == run  # run starting at column j is all good
    has = full.any(axis=1)
    start = np.where(has, np.argmax(full, axis=1), strip)
    masked = np.arange(strip)[None, :] < start[:, None]
    view[:, :strip][masked] = np.nan


def to_db(intensity: np.ndarray, floor_db: float = -40.0) -> np.ndarray:
    """``10 * log10(intensity)`` as float32, never below ``floor_db``; values <= 0 give ``floor_db``, NaN stays NaN."""
    values = np.asarray(intensity, dtype=np.float32)
    out = np.full(values.shape, np.float32(floor_db), dtype=np.float32)
    positive = values > 0
    np.log10(values, out=out, where=positive)
    np.multiply(out, np.float32(10.0), out=out, where=positive)
    np.maximum(out, np.float32(floor_db), out=out)
    out[np.isnan(values)] = np.nan
    return out
