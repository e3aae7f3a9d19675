"""Resampling between north-up grids that share a pixel lattice (pure numpy).

When the target resolution divides the source resolution and both grids share pixel edges
(Sentinel-2 20 m / 60 m bands onto a 10 m grid aligned to the tile), bilinear and nearest
resampling are separable and need no warper. These functions give GDAL's results (bilinear
weights renormalised over valid neighbours; a target pixel holds data only where its nearest
source pixel does) at a fraction of the cost; anything else goes through ``rasterio.warp``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_EPS = 1e-6


@dataclass(frozen=True)
class AxisMap:
    """For each target pixel along one axis: its two bilinear source indices, weights and nearest index."""

    lower: np.ndarray  # int, clipped to the source
    upper: np.ndarray
    w_lower: np.ndarray  # float32, 0 where the index fell outside the source
    w_upper: np.ndarray
    nearest: np.ndarray  # int, -1 where outside

    @classmethod
    def build(cls, n_target: int, target_start: float, target_res: float, source_start: float, source_res: float,
              n_source: int) -> AxisMap:  # fmt: skip
        """Coordinates grow with the index on both axes (pass distances from the top for rows)."""
        centres = target_start + (np.arange(n_target) + 0.5) * target_res
        u = (centres - source_start) / source_res - 0.5
        i0 = np.floor(u + _EPS).astype(np.int64)
        frac = (u - i0).astype(np.float32)
        frac[np.abs(frac) < _EPS] = 0.0
        i1 = i0 + 1
        w0 = np.where((i0 >= 0) & (i0 < n_source), 1.0 - frac, 0.0).astype(np.float32)
        w1 = np.where((i1 >= 0) & (i1 < n_source), frac, 0.0).astype(np.float32)
        near = np.floor((centres - source_start) / source_res + _EPS).astype(np.int64)
        near[(near < 0) | (near >= n_source)] = -1
        return cls(np.clip(i0, 0, n_source - 1), np.clip(i1, 0, n_source - 1), w0, w1, near)


def nearest(source: np.ndarray, rows: AxisMap, cols: AxisMap, fill: float) -> np.ndarray:
    """Nearest-neighbour resampling of ``source`` (..., h, w) onto the target axes."""
    out = source[..., np.maximum(rows.nearest, 0)[:, None], np.maximum(cols.nearest, 0)[None, :]]
    outside = (rows.nearest < 0)[:, None] | (cols.nearest < 0)[None, :]
    if outside.any():
        out = out.copy()
        out[..., outside] = fill
    return out


def _axis(values: np.ndarray, m: AxisMap, axis: int) -> np.ndarray:
    """Interpolate along one axis (in place on the gathered copies: no further temporaries)."""
    a = np.take(values, m.lower, axis=axis)
    b = np.take(values, m.upper, axis=axis)
    shape = [1] * values.ndim
    shape[axis] = -1
    a *= m.w_lower.reshape(shape)
    b *= m.w_upper.reshape(shape)
    a += b
    return a


def bilinear(source: np.ndarray, rows: AxisMap, cols: AxisMap) -> np.ndarray:
    """Bilinear resampling of float ``source`` (..., h, w) with NaN as no data.

    Weights are renormalised over the valid neighbours (as GDAL does), and a target pixel is
    no data when its nearest source pixel is.
    """
    valid = np.isfinite(source)
    if valid.all():  # common case: weights are separable, no renormalisation per pixel
        out = _axis(_axis(source.astype(np.float32, copy=False), cols, -1), rows, -2)
        row_sum, col_sum = rows.w_lower + rows.w_upper, cols.w_lower + cols.w_upper
        if not (np.all(row_sum == 1) and np.all(col_sum == 1)):  # only at the source's edges
            with np.errstate(invalid="ignore", divide="ignore"):
                out /= np.outer(row_sum, col_sum)
        outside = (rows.nearest < 0)[:, None] | (cols.nearest < 0)[None, :]
        if outside.any():
            out[..., outside] = np.nan
        return out.astype(np.float32, copy=False)
    values = np.where(valid, source, 0.0).astype(np.float32)
    num = _axis(_axis(values, cols, -1), rows, -2)
    den3 = _axis(_axis(valid.astype(np.float32), cols, -1), rows, -2)
    with np.errstate(invalid="ignore", divide="ignore"):
        result = np.where(den3 > 0, num / den3, np.nan).astype(np.float32)
    near_valid = nearest(valid, rows, cols, fill=False)
    result[~near_valid] = np.nan
    return result
