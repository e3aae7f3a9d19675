"""Where each target-grid pixel lies in a GRD image: (line, pixel) from the grid, the DEM and the geometry.

Range-Doppler positions are smooth in map x/y and nearly linear in height, so they are solved
exactly on a coarse lattice (every ``step`` pixels, at a few height levels spanning the block's
DEM) and interpolated: bilinear across the map, linear between height levels. The test suite
checks this against the per-pixel solution (well under 0.01 px).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from pyproj import Transformer
from scipy.ndimage import map_coordinates

from senprep_core.geo.grid import TargetGrid

# (lat, lon, h) -> (line, pixel): the range-Doppler solution of one image
Locator = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

LATTICE_STEP = 16  # pixels between exactly solved points
HEIGHT_STEP = 250.0  # metres between height levels


@dataclass(frozen=True)
class RadarPositions:
    """Fractional GRD (line, pixel) of every pixel centre of ``grid``; NaN where undefined."""

    grid: TargetGrid
    line: np.ndarray
    pixel: np.ndarray

    def radar_bounds(self, margin: int, lines: int, samples: int) -> tuple[int, int, int, int] | None:
        """(first line, first pixel, n lines, n pixels) of the image window holding every position
        plus ``margin``, clipped to the image; None when no position falls on the image."""
        ok = np.isfinite(self.line) & np.isfinite(self.pixel)
        ok &= (self.line > -1) & (self.line < lines) & (self.pixel > -1) & (self.pixel < samples)
        if not ok.any():
            return None
        l0 = max(0, int(np.floor(self.line[ok].min())) - margin)
        l1 = min(lines, int(np.ceil(self.line[ok].max())) + margin + 1)
        p0 = max(0, int(np.floor(self.pixel[ok].min())) - margin)
        p1 = min(samples, int(np.ceil(self.pixel[ok].max())) + margin + 1)
        return l0, p0, l1 - l0, p1 - p0


def lonlat_of(grid: TargetGrid, step: int = LATTICE_STEP) -> tuple[np.ndarray, np.ndarray]:
    """Longitude and latitude of every pixel centre (exact on a lattice, bilinear in between)."""
    rows, cols = lattice_indices(grid.height, step), lattice_indices(grid.width, step)
    xs = grid.left + (cols + 0.5) * grid.resolution
    ys = grid.top - (rows + 0.5) * grid.resolution
    to_ll = Transformer.from_crs(grid.epsg, 4326, always_xy=True)
    lon, lat = to_ll.transform(*np.meshgrid(xs, ys))
    return upsample_lattice(np.asarray(lon), rows, cols, grid), upsample_lattice(np.asarray(lat), rows, cols, grid)


def radar_positions(
    grid: TargetGrid, heights: np.ndarray, locate: Locator, step: int = LATTICE_STEP, exact: bool = False
) -> RadarPositions:
    """(line, pixel) of each pixel centre of ``grid`` at ellipsoidal ``heights`` (same shape as the grid).

    ``exact=True`` solves every pixel (slow; for checks).
    """
    if heights.shape != grid.shape:
        raise ValueError(f"heights {heights.shape} do not match the grid {grid.shape}")
    if exact:
        lon, lat = lonlat_of(grid, 1)
        line, pixel = locate(lat.ravel(), lon.ravel(), heights.astype(np.float64).ravel())
        return RadarPositions(grid, line.reshape(grid.shape), pixel.reshape(grid.shape))
    rows, cols = lattice_indices(grid.height, step), lattice_indices(grid.width, step)
    xs = grid.left + (cols + 0.5) * grid.resolution
    ys = grid.top - (rows + 0.5) * grid.resolution
    to_ll = Transformer.from_crs(grid.epsg, 4326, always_xy=True)
    lon, lat = (np.asarray(a) for a in to_ll.transform(*np.meshgrid(xs, ys)))
    finite = heights[np.isfinite(heights)]
    h_min, h_max = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    n_levels = max(2, int(np.ceil((h_max - h_min) / HEIGHT_STEP)) + 1)
    levels = np.linspace(h_min, h_max if h_max > h_min else h_min + 1.0, n_levels)
    coarse_line = np.empty((n_levels, *lon.shape))
    coarse_pixel = np.empty((n_levels, *lon.shape))
    for k, h in enumerate(levels):
        ln, px = locate(lat.ravel(), lon.ravel(), np.full(lat.size, h))
        coarse_line[k] = ln.reshape(lon.shape)
        coarse_pixel[k] = px.reshape(lon.shape)
    # fractional level index of each pixel's height, then per-level bilinear maps blended linearly
    f = np.clip((heights - levels[0]) / (levels[1] - levels[0]), 0, n_levels - 1)
    f = np.where(np.isfinite(f), f, 0.0)
    k0 = np.minimum(np.floor(f).astype(np.int64), n_levels - 2)
    w1 = (f - k0).astype(np.float64)
    line = np.zeros(grid.shape)
    pixel = np.zeros(grid.shape)
    for k in range(n_levels):
        weight = np.where(k0 == k, 1.0 - w1, 0.0) + np.where(k0 + 1 == k, w1, 0.0)
        if not weight.any():
            continue
        line += weight * upsample_lattice(coarse_line[k], rows, cols, grid)
        pixel += weight * upsample_lattice(coarse_pixel[k], rows, cols, grid)
    bad = ~np.isfinite(heights)
    line[bad] = np.nan
    pixel[bad] = np.nan
    return RadarPositions(grid, line, pixel)


def lattice_indices(n: int, step: int = LATTICE_STEP) -> np.ndarray:
    """Lattice indices 0, step, 2 step, ... always ending on n - 1."""
    idx = np.arange(0, n, step, dtype=np.float64)
    if idx[-1] != n - 1:
        idx = np.append(idx, n - 1)
    return idx


def upsample_lattice(coarse: np.ndarray, rows: np.ndarray, cols: np.ndarray, grid: TargetGrid) -> np.ndarray:
    """Bilinear interpolation of lattice values to every pixel of the grid."""
    if coarse.shape == grid.shape:
        return coarse
    r = np.interp(np.arange(grid.height), rows, np.arange(rows.size))
    c = np.interp(np.arange(grid.width), cols, np.arange(cols.size))
    rr, cc = np.meshgrid(r, c, indexing="ij")
    return map_coordinates(coarse, [rr, cc], order=1, mode="nearest")
