"""Terrain correction of a GRD straight onto a block of the target grid (range-Doppler, backward).

For every pixel of the block: DEM height -> (line, pixel) in the GRD (:mod:`positions`), then
the calibrated, noise-removed, speckle-filtered intensity is sampled there. Radiometry and
speckle filtering run in radar geometry on just the image window the block needs, plus the
filter's margin, so a block's result does not depend on where the block starts and memory
stays bounded for any ROI size (the pipeline splits large grids into blocks).
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.ndimage import map_coordinates

from senprep_core.geo.grid import PixelWindow, TargetGrid
from senprep_core.s1 import geocoding_kernels as kernels
from senprep_core.s1.model import S1Metadata
from senprep_core.s1.positions import RadarPositions
from senprep_core.threads import run_in_strips

log = logging.getLogger(__name__)

_ORDER = {"nearest": 0, "bilinear": 1, "bicubic": 3}
SAMPLING_MARGIN = 2  # image pixels around the needed window for bicubic sampling


def sample(image: np.ndarray, positions: RadarPositions, window: PixelWindow, method: str) -> np.ndarray:
    """Sample a radar-geometry ``image`` (covering ``window`` of the GRD) at the grid's positions.

    NaN where a position falls outside the image window or touches no-data.
    """
    order = _ORDER[method]
    if order == 1:
        image = np.ascontiguousarray(image, dtype=np.float32)
        line, pixel = (np.ascontiguousarray(a, dtype=np.float64) for a in (positions.line, positions.pixel))
        out = np.empty(line.shape, dtype=np.float32)

        def strip(start: int, stop: int) -> None:
            rows = slice(start, stop)
            out[rows] = kernels.bilinear_sample(image, line[rows], pixel[rows], window.row_off, window.col_off)

        run_in_strips(strip, line.shape[0])
        return out
    rows = positions.line - window.row_off
    cols = positions.pixel - window.col_off
    finite = np.isfinite(rows) & np.isfinite(cols)
    inside = finite & (rows >= -0.5) & (rows <= window.height - 0.5) & (cols >= -0.5) & (cols <= window.width - 0.5)
    out = np.full(positions.line.shape, np.nan, dtype=np.float32)
    if not inside.any():
        return out
    r, c = rows[inside], cols[inside]
    if order == 3:
        # cubic spline on filled data; pixels whose nearest neighbourhood holds no data stay no-data
        valid = np.isfinite(image)
        filled = np.where(valid, image, 0.0).astype(np.float64)
        values = map_coordinates(filled, [r, c], order=3, mode="nearest")
        near_ok = map_coordinates(valid.astype(np.float32), [r, c], order=1, mode="nearest") > 0.999
        values = np.where(near_ok, values, np.nan)
    else:
        values = map_coordinates(image.astype(np.float32, copy=False), [r, c], order=order, mode="nearest")
    out[inside] = values
    return out


def block_window(positions: RadarPositions, margin: int, meta: S1Metadata, polarisation: str) -> PixelWindow | None:
    """The GRD window a block needs (positions plus ``margin``), or None when the block misses the image."""
    image = meta.image(polarisation)
    bounds = positions.radar_bounds(margin + SAMPLING_MARGIN, image.lines, image.samples)
    if bounds is None:
        return None
    l0, p0, nl, npx = bounds
    return PixelWindow(l0, p0, nl, npx)


def local_incidence(
    grid: TargetGrid, heights: np.ndarray, look_enu: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local incidence angle (degrees), and layover and shadow masks, from DEM slopes and look directions.

    ``heights`` is on ``grid`` plus one pixel on each side; ``look_enu`` (3, h, w) holds the unit
    vectors from each ground pixel towards the satellite in local east/north/up. Shadow: the
    surface faces away from the radar (cos < 0). Layover: the slope towards the radar is steeper
    than the look direction's elevation complement (the terrain rises faster than the wavefront).
    """
    res = grid.resolution
    dz_dx = (heights[1:-1, 2:] - heights[1:-1, :-2]) / (2 * res)
    dz_dy = (heights[:-2, 1:-1] - heights[2:, 1:-1]) / (2 * res)  # rows run southwards
    normal = np.stack([-dz_dx, -dz_dy, np.ones_like(dz_dx)])
    normal /= np.linalg.norm(normal, axis=0)
    cos_lia = np.sum(normal * look_enu, axis=0)
    lia = np.degrees(np.arccos(np.clip(cos_lia, -1.0, 1.0))).astype(np.float32)
    shadow = cos_lia <= 0
    # slope along the horizontal look direction, towards the sensor (positive = facing the radar)
    horiz = look_enu[:2] / np.maximum(np.linalg.norm(look_enu[:2], axis=0), 1e-12)
    slope_towards = np.arctan(-(dz_dx * horiz[0] + dz_dy * horiz[1]))  # terrain falls towards the sensor
    incidence = np.arccos(np.clip(look_enu[2], -1.0, 1.0))  # look angle from the vertical
    layover = slope_towards >= incidence
    return lia, layover, shadow


def to_enu(vectors: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """ECEF vectors (3, ...) into local east/north/up components at lat/lon (degrees)."""
    phi, lam = np.radians(lat), np.radians(lon)
    sp, cp, sl, cl = np.sin(phi), np.cos(phi), np.sin(lam), np.cos(lam)
    x, y, z = vectors
    east = -sl * x + cl * y
    north = -sp * cl * x - sp * sl * y + cp * z
    up = cp * cl * x + cp * sl * y + sp * z
    return np.stack([east, north, up])
