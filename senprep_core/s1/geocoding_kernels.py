"""Compiled (numba) per-pixel steps of geocoding: lattice interpolation of the radar positions and the
(zero-Doppler time, slant range) -> (line, pixel) conversion of a GRD.

They do what the numpy code they replace did (:func:`senprep_core.s1.positions.radar_positions`,
:meth:`senprep_core.s1.geometry.RadarGeometry.image_coordinates`) in one pass over the pixels, without
full-size temporaries; the tests compare them with that code. Kernels release the GIL.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_jit = njit(nogil=True, cache=True, error_model="numpy")

VALID_WEIGHT = 1.0 - 1e-9  # a pixel is interpolated when lattice nodes holding data weigh at least this


@_jit
def _lattice_row(coarse: np.ndarray, lower: int, frac: float, out: np.ndarray, valid: np.ndarray) -> None:
    """One row of lattice values interpolated between lattice rows ``lower`` and the next (NaN nodes
    count as 0), and the weight of the nodes holding data."""
    upper = min(lower + 1, coarse.shape[0] - 1)  # a one-row lattice has frac 0
    for b in range(coarse.shape[1]):
        total, weight = 0.0, 0.0
        first, second = coarse[lower, b], coarse[upper, b]
        if np.isfinite(first):
            total += (1.0 - frac) * first
            weight += 1.0 - frac
        if np.isfinite(second):
            total += frac * second
            weight += frac
        out[b] = total
        valid[b] = weight


@_jit
def _bilinear(rows: np.ndarray, weights: np.ndarray, lower: int, upper: int, frac: float) -> float:
    """Interpolate one lattice-interpolated row at a pixel; NaN where data weigh too little."""
    if (1.0 - frac) * weights[lower] + frac * weights[upper] < VALID_WEIGHT:
        return np.nan
    return (1.0 - frac) * rows[lower] + frac * rows[upper]


@_jit
def quadratic_positions(
    coefficients: np.ndarray,
    row_lower: np.ndarray,
    row_frac: np.ndarray,
    col_lower: np.ndarray,
    col_frac: np.ndarray,
    t: np.ndarray,
) -> np.ndarray:
    """``a0 + t (a1 + t a2)`` per pixel, the ``a`` bilinear between lattice nodes.

    ``coefficients`` (3, rows, cols) holds a0, a1, a2 on the lattice; ``row_lower`` / ``row_frac``
    (per grid row) and ``col_lower`` / ``col_frac`` (per grid column) the lower node and the fraction
    towards the next; ``t`` the normalised height of each pixel. NaN where the nodes holding data weigh
    less than :data:`VALID_WEIGHT` for any coefficient.
    """
    height, width = t.shape
    last = coefficients.shape[2] - 1
    rows = np.empty((3, last + 1))
    weights = np.empty((3, last + 1))
    out = np.empty((height, width))
    for i in range(height):
        for k in range(3):
            _lattice_row(coefficients[k], row_lower[i], row_frac[i], rows[k], weights[k])
        for j in range(width):
            lower, frac = col_lower[j], col_frac[j]
            upper = min(lower + 1, last)
            a0 = _bilinear(rows[0], weights[0], lower, upper, frac)
            a1 = _bilinear(rows[1], weights[1], lower, upper, frac)
            a2 = _bilinear(rows[2], weights[2], lower, upper, frac)
            tt = t[i, j]
            out[i, j] = a0 + tt * (a1 + tt * a2)
    return out


@_jit
def _horner(coefficients: np.ndarray, x: float) -> float:
    n = coefficients.shape[0]
    result = coefficients[n - 1] + x * 0.0
    for d in range(n - 2, -1, -1):
        result = coefficients[d] + result * x
    return result


@_jit
def _record(edges: np.ndarray, t: float) -> int:
    """The first index whose edge is >= t (``np.searchsorted(edges, t)``: NaN sorts last)."""
    if np.isnan(t):
        return edges.shape[0]
    lo, hi = 0, edges.shape[0]
    while lo < hi:
        mid = (lo + hi) // 2
        if edges[mid] < t:
            lo = mid + 1
        else:
            hi = mid
    return lo


@_jit
def _ground(
    slant: float,
    t: float,
    edges: np.ndarray,
    sr0: np.ndarray,
    srgr: np.ndarray,
    gr0: np.ndarray,
    grsr: np.ndarray,
    slope: np.ndarray,
    iterations: int,
) -> float:
    k = _record(edges, t)
    ground = _horner(srgr[k], slant - sr0[k])
    for _ in range(iterations):
        x = ground - gr0[k]
        ground = ground - (_horner(grsr[k], x) - slant) / _horner(slope[k], x)
    return ground


@_jit
def slant_to_ground(
    slant: np.ndarray,
    t: np.ndarray,
    edges: np.ndarray,
    sr0: np.ndarray,
    srgr: np.ndarray,
    gr0: np.ndarray,
    grsr: np.ndarray,
    slope: np.ndarray,
    iterations: int,
) -> np.ndarray:
    """Ground range of 1-D slant ranges at azimuth times ``t``: the nearest record's slant -> ground
    polynomial, then Newton steps on its ground -> slant one (``slope``: its derivative)."""
    out = np.empty(slant.shape[0])
    for n in range(slant.shape[0]):
        out[n] = _ground(slant[n], t[n], edges, sr0, srgr, gr0, grsr, slope, iterations)
    return out


@_jit
def image_coordinates(
    t_zd: np.ndarray,
    slant: np.ndarray,
    bistatic: bool,
    tau_mid: float,
    speed_of_light: float,
    first_line_time: float,
    azimuth_time_interval: float,
    range_pixel_spacing: float,
    edges: np.ndarray,
    conversion: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    iterations: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(line, pixel) of 1-D zero-Doppler times and one-way slant ranges: bistatic shift, then the
    nearest conversion record (``conversion``: sr0, srgr, gr0, grsr, grsr slope)."""
    sr0, srgr, gr0, grsr, slope = conversion
    line = np.empty(t_zd.shape[0])
    pixel = np.empty(t_zd.shape[0])
    for n in range(t_zd.shape[0]):
        t_line = t_zd[n]
        if bistatic:
            t_line = t_line + -(2.0 * slant[n] / speed_of_light - tau_mid) / 2.0
        line[n] = (t_line - first_line_time) / azimuth_time_interval
        if np.isfinite(t_line):
            ground = _ground(slant[n], t_line, edges, sr0, srgr, gr0, grsr, slope, iterations)
            pixel[n] = ground / range_pixel_spacing
        else:
            pixel[n] = np.nan
    return line, pixel


@_jit
def bilinear_sample(image: np.ndarray, line: np.ndarray, pixel: np.ndarray, row_off: int, col_off: int) -> np.ndarray:
    """Bilinear samples (float32) of ``image`` (its first row / column is GRD line ``row_off`` / pixel
    ``col_off``) at GRD positions ``line`` / ``pixel`` (2-D, the grid's shape).

    Like ``scipy.ndimage.map_coordinates(order=1, mode="nearest")``: both neighbours always take part
    (a NaN neighbour makes NaN, even at weight 0) and indices beyond the edges repeat the edge. NaN where
    a position is not finite or lies more than half a pixel outside the image.
    """
    height, width = image.shape
    out = np.empty(line.shape, dtype=np.float32)
    for i in range(line.shape[0]):
        for j in range(line.shape[1]):
            r = line[i, j] - row_off
            c = pixel[i, j] - col_off
            if not (r >= -0.5 and r <= height - 0.5 and c >= -0.5 and c <= width - 0.5):  # NaN too
                out[i, j] = np.nan
                continue
            r0, c0 = int(np.floor(r)), int(np.floor(c))
            fr, fc = r - r0, c - c0
            r1, c1 = min(max(r0 + 1, 0), height - 1), min(max(c0 + 1, 0), width - 1)
            r0, c0 = min(max(r0, 0), height - 1), min(max(c0, 0), width - 1)
            top = (1.0 - fc) * image[r0, c0] + fc * image[r0, c1]
            bottom = (1.0 - fc) * image[r1, c0] + fc * image[r1, c1]
            out[i, j] = (1.0 - fr) * top + fr * bottom
    return out
