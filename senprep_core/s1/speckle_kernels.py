"""Compiled (numba) speckle filter kernels: the arithmetic of :mod:`senprep_core.s1.speckle`, pixel by pixel.

Each kernel takes one row strip with its context (float32, NaN = no data, ``m`` rows and columns of
context on every side) and returns the float32 interior, like the numpy kernels of
:mod:`~senprep_core.s1.speckle`. They do the same operations in the same order (box sums in float64,
column sums first; Lee Sigma's selected sums in float32, window offsets row by row), so they give the
numpy kernels' values without their full-size temporaries; the tests compare both. Kernels release the
GIL, so the strips of one image run in parallel on the caller's threads.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_jit = njit(nogil=True, cache=True, error_model="numpy")


@_jit
def _prepare(data: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Values (0 where no data), their squares (float32) and the validity (float32 1/0) of a strip."""
    values = np.empty_like(data)
    squares = np.empty_like(data)
    valid = np.empty_like(data)
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            v = data[i, j]
            if np.isfinite(v):
                values[i, j] = v
                squares[i, j] = v * v
                valid[i, j] = 1.0
            else:
                values[i, j] = 0.0
                squares[i, j] = 0.0
                valid[i, j] = 0.0
    return values, squares, valid


@_jit
def box_sum(array: np.ndarray, m: int, size: int) -> np.ndarray:
    """float64 sum over a size x size window centred on each interior pixel: column sums, then row sums.

    Loops run along rows (the innermost loop over pixels vectorises); every sum adds in the same order."""
    h, w = array.shape[0] - 2 * m, array.shape[1] - 2 * m
    r = size // 2
    columns = np.empty(w + 2 * r)
    out = np.empty((h, w))
    for i in range(h):
        first = array[m - r + i]
        for c in range(w + 2 * r):
            columns[c] = first[m - r + c]
        for k in range(1, size):
            row = array[m - r + i + k]
            for c in range(w + 2 * r):
                columns[c] += row[m - r + c]
        result = out[i]
        for j in range(w):
            result[j] = columns[j]
        for k in range(1, size):
            for j in range(w):
                result[j] += columns[j + k]
    return out


@_jit
def _mean_var(total: float, squares: float, count: float) -> tuple[float, float]:
    mean = total / count
    var = (squares - total * mean) / (count - 1.0) if count > 1.0 else 0.0
    if var < 0.0:
        var = 0.0
    return mean, var


@_jit
def _mmse(z: float, mean: float, var: float, noise2: float) -> float:
    signal = (var - mean * mean * noise2) / (1.0 + noise2)
    gain = signal / var if var > 0.0 else 0.0
    if gain < 0.0:
        gain = 0.0
    elif gain > 1.0:
        gain = 1.0
    return mean + gain * (z - mean)


@_jit
def boxcar(data: np.ndarray, m: int, size: int) -> np.ndarray:
    values, _, valid = _prepare(data)
    return (box_sum(values, m, size) / box_sum(valid, m, size)).astype(np.float32)


@_jit
def lee(data: np.ndarray, m: int, size: int, noise2: float) -> np.ndarray:
    values, squares, valid = _prepare(data)
    total, sq, count = box_sum(values, m, size), box_sum(squares, m, size), box_sum(valid, m, size)
    h, w = total.shape
    out = np.empty((h, w), dtype=np.float32)
    for i in range(h):
        for j in range(w):
            mean, var = _mean_var(total[i, j], sq[i, j], count[i, j])
            out[i, j] = _mmse(np.float64(values[m + i, m + j]), mean, var, noise2)
    return out


@_jit
def gamma_map(data: np.ndarray, m: int, size: int, looks: float, homogeneous: float) -> np.ndarray:
    values, squares, valid = _prepare(data)
    total, sq, count = box_sum(values, m, size), box_sum(squares, m, size), box_sum(valid, m, size)
    cu2 = 1.0 / looks
    h, w = total.shape
    out = np.empty((h, w), dtype=np.float32)
    for i in range(h):
        for j in range(w):
            mean, var = _mean_var(total[i, j], sq[i, j], count[i, j])
            z = np.float64(values[m + i, m + j])
            x = mean
            if mean > 0.0:
                ci2 = var / (mean * mean)
                if ci2 >= 2.0 * cu2:
                    x = z
                elif ci2 > homogeneous:
                    alpha = (1.0 + cu2) / (ci2 - cu2)
                    b = alpha - looks - 1.0
                    root = math.sqrt(max(mean * mean * b * b + 4.0 * alpha * looks * z * mean, 0.0))
                    x = (b * mean + root) / (2.0 * alpha)
            out[i, j] = x
    return out


@_jit
def _select(
    row: np.ndarray,
    row_values: np.ndarray,
    row_squares: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    count: np.ndarray,
    total: np.ndarray,
    squares: np.ndarray,
) -> None:
    """Add the pixels of one window offset inside ``[lo, hi]`` to the row's sums (float32, like numpy)."""
    for j in range(row.size):
        sample = row[j]
        inside = np.float32((sample >= lo[j]) & (sample <= hi[j]))
        count[j] += inside
        total[j] += row_values[j] * inside
        squares[j] += row_squares[j] * inside


@_jit
def _count_bright(row: np.ndarray, z98: np.ndarray, bright: np.ndarray) -> None:
    for j in range(row.size):
        bright[j] += np.float32(row[j] >= z98[j])


@_jit
def lee_sigma(
    data: np.ndarray,
    m: int,
    size: int,
    target: int,
    looks: float,
    low: float,
    high: float,
    eta2: float,
    q98: float,
    min_bright: int,
) -> np.ndarray:
    """Improved Lee Sigma (see :mod:`senprep_core.s1.speckle`); ``q98`` is the 98th percentile of unit-mean
    L-look speckle, ``min_bright`` the bright pixels of the target window that make a point target.

    Row by row: per-pixel row buffers, window offsets outside, pixels innermost (vectorised)."""
    values, squares, valid = _prepare(data)
    total_t, sq_t, count_t = box_sum(values, m, target), box_sum(squares, m, target), box_sum(valid, m, target)
    local_mean = box_sum(values, m, size) / box_sum(valid, m, size)
    h, w = total_t.shape
    r, rt = size // 2, target // 2
    noise2 = 1.0 / looks
    out = np.empty((h, w), dtype=np.float32)
    prior = np.empty(w)
    z98, lo, hi = np.empty(w, np.float32), np.empty(w, np.float32), np.empty(w, np.float32)
    bright = np.empty(w, np.float32)
    total, sq, count = np.empty(w, np.float32), np.empty(w, np.float32), np.empty(w, np.float32)
    for i in range(h):
        z = values[m + i]
        for j in range(w):
            mean_t, var_t = _mean_var(total_t[i, j], sq_t[i, j], count_t[i, j])
            prior[j] = _mmse(np.float64(z[m + j]), mean_t, var_t, noise2)
            z98[j] = np.float32(q98 * local_mean[i, j])
            lo[j] = np.float32(low * prior[j])
            hi[j] = np.float32(high * prior[j])
        bright[:] = 0
        for di in range(-rt, rt + 1):
            row = data[m + i + di]  # whole rows: contiguous, so the pixel loops vectorise
            for dj in range(m - rt, m + rt + 1):
                _count_bright(row[dj : dj + w], z98, bright)
        total[:] = 0.0
        sq[:] = 0.0
        count[:] = 0.0
        for di in range(-r, r + 1):
            row, row_values, row_squares = data[m + i + di], values[m + i + di], squares[m + i + di]
            for dj in range(m - r, m + r + 1):
                _select(row[dj : dj + w], row_values[dj : dj + w], row_squares[dj : dj + w], lo, hi, count, total, sq)
        result = out[i]
        for j in range(w):
            if z[m + j] >= z98[j] and bright[j] >= min_bright:
                result[j] = z[m + j]
            elif count[j] > 0:
                mean_s, var_s = _mean_var(np.float64(total[j]), np.float64(sq[j]), np.float64(count[j]))
                result[j] = _mmse(np.float64(z[m + j]), mean_s, var_s, eta2)
            else:
                result[j] = prior[j]
    return out
