"""Where each target-grid pixel lies in a GRD image: (line, pixel) from the grid, the DEM and the geometry.

Range-Doppler positions are smooth in map x/y and nearly linear in height, so they are solved
exactly on a coarse lattice (every ``step`` pixels, at three heights spanning the block's DEM) and
interpolated: bilinear across the map, quadratic in height. The test suite
checks this against the per-pixel solution (well under 0.01 px).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from senprep_core.geo.antimeridian import unwrap_near
from senprep_core.geo.grid import TargetGrid
from senprep_core.geo.projection import transformer
from senprep_core.s1 import geocoding_kernels as kernels
from senprep_core.threads import run_in_strips

# (lat, lon, h) -> (line, pixel): the range-Doppler solution of one image
Locator = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
# (zero-Doppler time, slant range) -> (line, pixel)
ImageMapping = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

LATTICE_STEP = 16  # pixels between exactly solved points


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
    """Longitude and latitude of every pixel centre (exact on a lattice, bilinear in between).

    Longitudes are continuous over the grid: across the antimeridian they run on past 180."""
    rows, cols = lattice_indices(grid.height, step), lattice_indices(grid.width, step)
    lon, lat = _lattice_lonlat(grid, rows, cols)
    return upsample_lattice(lon, rows, cols, grid), upsample_lattice(lat, rows, cols, grid)


def _lattice_lonlat(grid: TargetGrid, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xs = grid.left + (cols + 0.5) * grid.resolution
    ys = grid.top - (rows + 0.5) * grid.resolution
    lon, lat = transformer(grid.epsg, 4326).transform(*np.meshgrid(xs, ys))
    lon = np.asarray(lon)
    # continuous across the antimeridian, so interpolating between lattice nodes stays on the ground
    return (unwrap_near(lon, float(lon.flat[0])) if lon.size else lon), np.asarray(lat)


def radar_positions(
    grid: TargetGrid,
    heights: np.ndarray,
    locate: Locator,
    step: int = LATTICE_STEP,
    exact: bool = False,
    to_image: ImageMapping | None = None,
) -> RadarPositions:
    """(line, pixel) of each pixel centre of ``grid`` at ellipsoidal ``heights`` (same shape as the grid).

    ``locate`` maps (lat, lon, h) to two smooth coordinates: (line, pixel) directly, or, with
    ``to_image``, (zero-Doppler time, slant range), which ``to_image`` turns into (line, pixel)
    per pixel (GRD pixels jump where the slant/ground-range record changes, so that step must
    not be interpolated). They are solved exactly on the lattice at three heights spanning the
    block's heights; per node, a quadratic in height through them; bilinear between nodes.
    ``exact=True`` solves every pixel (slow; for checks).
    """
    if heights.shape != grid.shape:
        raise ValueError(f"heights {heights.shape} do not match the grid {grid.shape}")
    if exact:
        lon, lat = lonlat_of(grid, 1)
        a, b = locate(lat.ravel(), lon.ravel(), heights.astype(np.float64).ravel())
        line, pixel = to_image(a, b) if to_image is not None else (a, b)
        return RadarPositions(grid, np.asarray(line).reshape(grid.shape), np.asarray(pixel).reshape(grid.shape))
    rows, cols = lattice_indices(grid.height, step), lattice_indices(grid.width, step)
    lon, lat = (a.ravel() for a in _lattice_lonlat(grid, rows, cols))
    finite = heights[np.isfinite(heights)]
    h_min, h_max = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    centre, half = (h_min + h_max) / 2, max((h_max - h_min) / 2, 1.0)
    solved = [locate(lat, lon, np.full(lat.size, centre + k * half)) for k in (-1, 0, 1)]
    t = np.ascontiguousarray(np.nan_to_num((heights - centre) / half), dtype=np.float64)
    row_weights, col_weights = interpolation_weights(grid.height, rows), interpolation_weights(grid.width, cols)
    out = []
    for which in (0, 1):  # line, pixel
        low, mid, high = (solved[k][which].reshape(rows.size, cols.size) for k in range(3))
        coefficients = np.stack((mid, (high - low) / 2, (high + low) / 2 - mid)).astype(np.float64)
        value = np.empty(grid.shape)

        def strip(start: int, stop: int, value: np.ndarray = value, coefficients: np.ndarray = coefficients) -> None:
            lower, frac = (w[start:stop] for w in row_weights)
            value[start:stop] = kernels.quadratic_positions(coefficients, lower, frac, *col_weights, t[start:stop])

        run_in_strips(strip, grid.height)  # bilinear between lattice nodes, then the quadratic in height
        out.append(value)
    line, pixel = to_image(out[0], out[1]) if to_image is not None else (out[0], out[1])
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


def interpolation_weights(n: int, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation from lattice nodes to 0..n-1: each index's lower node and its fraction
    towards the next node (0 on a one-node lattice)."""
    position = np.interp(np.arange(n), nodes, np.arange(nodes.size))
    lower = np.minimum(np.floor(position).astype(np.int64), max(nodes.size - 2, 0))
    return lower, position - lower


def _interpolation_matrix(n: int, nodes: np.ndarray) -> np.ndarray:
    """(n, len(nodes)) weights of linear interpolation from lattice nodes to 0..n-1."""
    lower, frac = interpolation_weights(n, nodes)
    matrix = np.zeros((n, nodes.size))
    matrix[np.arange(n), lower] = 1.0 - frac
    if nodes.size > 1:
        matrix[np.arange(n), lower + 1] += frac
    return matrix


def upsample_lattice(coarse: np.ndarray, rows: np.ndarray, cols: np.ndarray, grid: TargetGrid) -> np.ndarray:
    """Bilinear interpolation of lattice values to every pixel of the grid (separable; NaN nodes stay no data)."""
    if coarse.shape == grid.shape:
        return coarse
    r = _interpolation_matrix(grid.height, rows)
    c = _interpolation_matrix(grid.width, cols)
    valid = np.isfinite(coarse)
    out = r @ np.where(valid, coarse, 0.0) @ c.T
    if not valid.all():
        out[(r @ valid.astype(np.float64) @ c.T) < 1.0 - 1e-9] = np.nan
    return out
