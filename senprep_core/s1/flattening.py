"""Radiometric terrain flattening: beta0 -> gamma0_T by the area-based method of Small (2011).

The DEM around a block is cut into facets on a grid ``oversampling`` times finer than the
target grid (heights interpolated bilinearly), so that many facets fall into every radar pixel
even where slopes compress the terrain. Each facet is illuminated over its surface area
projected onto the plane perpendicular to the look direction, ``r**2 * cos(local incidence) /
n_up`` (``n_up`` is the vertical part of its unit normal), unless it is in shadow. Summing those
areas into the radar pixels the facets fall in (bilinear splatting) over the block's radar
window gives the reference area ``A_gamma`` of every radar pixel; the beta0 reference area is
the slant-range plane cell ``A_beta = d_az * d_gr * sin(theta_ellipsoid)``. Then ``gamma0_T =
beta0 * A_beta / A_gamma``.

Shadow and layover are decided per facet in radar geometry (:func:`layover_and_shadow`): along
each azimuth bin, ordered by distance from the ground track, a facet is in shadow when a nearer
facet hides it (the ray from the satellite through it meets the reference surface nearer to the
track than some nearer facet's ray: self-shadow on steep back slopes and cast shadow behind
them), and in layover when its range is not monotonic with ground distance (a farther facet
appears at nearer range or a nearer one at farther range: the fore slope and the ground sharing
its radar pixels). Shadowed facets contribute no area.

On flat terrain this reduces to ``beta0 * tan(theta)``, the ellipsoid gamma0 (checked in the
tests). Radar pixels that receive almost no facet area (shadow, or a sum less than
``MIN_AREA_FRACTION`` of ``A_beta``) are no data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import map_coordinates

from senprep_core.geo.grid import PixelWindow, TargetGrid
from senprep_core.s1.model import S1Image
from senprep_core.s1.positions import RadarPositions

MIN_AREA_FRACTION = 0.05
LAYOVER_TOLERANCE = 0.5  # GRD pixels of range overlap (or of shadow ray offset) below which nothing is flagged
FLAG_FRACTION = 0.5  # a grid cell is flagged when at least this fraction of its facets is

#: (grid, heights on the grid) -> radar positions of its pixel centres
PositionsOf = Callable[[TargetGrid, np.ndarray], RadarPositions]
#: (grid, heights on the grid) -> unit vectors towards the satellite in east/north/up, (3, h, w)
LookOf = Callable[[TargetGrid, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class FacetModel:
    """The DEM facets around a block: their grid, radar positions, illuminated areas and flags."""

    grid: TargetGrid  #: the facet grid (``oversampling`` times finer than the target grid)
    oversampling: int
    positions: RadarPositions  #: GRD (line, pixel) of every facet centre
    area: np.ndarray  #: A_gamma of every facet (m²), 0 in shadow
    layover: np.ndarray  #: bool per facet
    shadow: np.ndarray  #: bool per facet

    def flags_on(self, grid: TargetGrid) -> tuple[np.ndarray, np.ndarray]:
        """Layover and shadow on the (coarser, aligned) ``grid``: cells where >= FLAG_FRACTION of the facets are."""
        k = self.oversampling
        coarse = TargetGrid(self.grid.epsg, self.grid.resolution * k, self.grid.left, self.grid.top,
                            self.grid.width // k, self.grid.height // k)  # fmt: skip
        rows, cols = coarse.window_of(grid).slices()
        out = []
        for flag in (self.layover, self.shadow):
            fraction = flag.reshape(coarse.height, k, coarse.width, k).mean(axis=(1, 3))
            out.append(fraction[rows, cols] >= FLAG_FRACTION)
        return out[0], out[1]


def oversample_heights(heights: np.ndarray, factor: int) -> np.ndarray:
    """Heights on a grid ``factor`` times finer (bilinear), from heights with a one-pixel border.

    ``heights`` is (h + 2, w + 2) for a grid of h x w cells; the result is (h k + 2, w k + 2) for
    the fine grid with its own one-pixel border.
    """
    if factor == 1:
        return heights
    h, w = heights.shape[0] - 2, heights.shape[1] - 2
    # fine cell centre i (from -1) sits at coarse index (i + 0.5) / k - 0.5, plus 1 for the border
    rows = (np.arange(-1, h * factor + 1) + 0.5) / factor + 0.5
    cols = (np.arange(-1, w * factor + 1) + 0.5) / factor + 0.5
    valid = np.isfinite(heights)
    filled = np.where(valid, heights, 0.0)
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    out = map_coordinates(filled, [rr, cc], order=1, mode="nearest")
    ok = map_coordinates(valid.astype(np.float64), [rr, cc], order=1, mode="nearest") > 0.999
    return np.where(ok, out, np.nan)


def fine_grid(grid: TargetGrid, factor: int) -> TargetGrid:
    """``grid`` with pixels ``factor`` times smaller (same extent)."""
    return TargetGrid(grid.epsg, grid.resolution / factor, grid.left, grid.top, grid.width * factor,
                      grid.height * factor)  # fmt: skip


def build_facets(
    grid: TargetGrid,
    heights: np.ndarray,
    factor: int,
    positions_of: PositionsOf,
    look_of: LookOf,
    range_spacing: float,
) -> FacetModel:
    """The facets of ``grid`` (``heights`` on it plus a one-pixel border), ``factor`` times oversampled.

    ``range_spacing``: the GRD's ground-range pixel spacing (m).
    """
    fine = fine_grid(grid, factor)
    fine_heights = oversample_heights(heights, factor)
    inner = fine_heights[1:-1, 1:-1]
    positions = positions_of(fine, inner)
    look = look_of(fine, inner)
    finite = inner[np.isfinite(inner)]
    h_ref = float(np.median(finite)) if finite.size else 0.0
    horizontal = np.hypot(look[0], look[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        # a facet above the reference height appears (h - h_ref) / tan(theta) nearer in ground range than
        # the point below it; the ray through it meets the reference height (h - h_ref) tan(theta) farther
        nearer = (inner - h_ref) * look[2] / horizontal / range_spacing
        farther = (inner - h_ref) * horizontal / look[2] / range_spacing
    flat_pixel = positions.pixel + nearer
    layover, shadow = layover_and_shadow(positions.line, positions.pixel, flat_pixel, flat_pixel + farther, factor)
    area = facet_areas(fine.resolution, fine_heights, look)
    area[shadow] = 0.0
    return FacetModel(fine, factor, positions, area, layover, shadow)


def _max_before(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """For values sorted by (group, order): the maximum of the earlier values of the same group (-inf if none)."""
    if values.size == 0:
        return values.copy()
    low = float(values.min())
    span = float(values.max()) - low + 1.0
    base = groups * span
    key = base + (values - low)
    running = np.maximum.accumulate(key)
    prev = np.concatenate([[-np.inf], running[:-1]])
    return np.where(prev >= base, prev - base + low, -np.inf)


def layover_and_shadow(
    line: np.ndarray, pixel: np.ndarray, pixel_flat: np.ndarray, ray_pixel: np.ndarray, bins_per_line: int
) -> tuple[np.ndarray, np.ndarray]:
    """Layover and shadow flags of facets from their radar positions.

    ``line``/``pixel``: where each facet appears; ``pixel_flat``: where it would appear at the
    reference height (orders facets by distance from the track); ``ray_pixel``: where the ray
    from the satellite through the facet meets the reference height. Facets are grouped in
    azimuth bins of ``1 / bins_per_line`` lines.
    """
    out_layover = np.zeros(line.shape, dtype=bool)
    out_shadow = np.zeros(line.shape, dtype=bool)
    ok = np.isfinite(line) & np.isfinite(pixel) & np.isfinite(pixel_flat) & np.isfinite(ray_pixel)
    if not ok.any():
        return out_layover, out_shadow
    idx = np.flatnonzero(ok.ravel())
    bins = np.floor(line.ravel()[idx] * bins_per_line)
    flat = pixel_flat.ravel()[idx]
    # one sort key: the bin, then the flat-ground position within it (exact in float64 for any GRD)
    key = (bins - bins.min()) * (float(flat.max() - flat.min()) + 1.0) + (flat - flat.min())
    order = np.argsort(key)
    idx = idx[order]
    sorted_bins = bins[order]
    groups = np.concatenate([[0.0], np.cumsum(sorted_bins[1:] != sorted_bins[:-1])]).astype(np.float64)
    ray = ray_pixel.ravel()[idx]
    shadow = ray < _max_before(ray, groups) - LAYOVER_TOLERANCE
    p = pixel.ravel()[idx]
    nearer_max = _max_before(p, groups)
    farther_min = -_max_before(-p[::-1], groups[::-1].max() - groups[::-1])[::-1]
    layover = (p < nearer_max - LAYOVER_TOLERANCE) | (p > farther_min + LAYOVER_TOLERANCE)
    out_shadow.ravel()[idx] = shadow
    out_layover.ravel()[idx] = layover
    return out_layover, out_shadow


def facet_areas(resolution: float, heights: np.ndarray, look_enu: np.ndarray) -> np.ndarray:
    """Illuminated area of each grid cell projected perpendicular to the look direction (m²).

    ``heights`` covers the cells plus one pixel on each side; ``look_enu`` (3, h, w) are unit
    vectors towards the satellite in local east/north/up.
    """
    dz_dx = (heights[1:-1, 2:] - heights[1:-1, :-2]) / (2 * resolution)
    dz_dy = (heights[:-2, 1:-1] - heights[2:, 1:-1]) / (2 * resolution)
    norm = np.sqrt(dz_dx**2 + dz_dy**2 + 1.0)
    cos_lia = (-dz_dx * look_enu[0] - dz_dy * look_enu[1] + look_enu[2]) / norm
    n_up = 1.0 / norm
    area = resolution**2 * np.clip(cos_lia, 0.0, None) / n_up
    return np.where(np.isfinite(area), area, 0.0)


def splat_areas(positions: RadarPositions, areas: np.ndarray, window: PixelWindow) -> np.ndarray:
    """Sum facet ``areas`` into the radar pixels of ``window`` with bilinear weights."""
    out = np.zeros(window.height * window.width, dtype=np.float64)
    r = positions.line.ravel() - window.row_off
    c = positions.pixel.ravel() - window.col_off
    a = areas.ravel()
    ok = np.isfinite(r) & np.isfinite(c) & (a > 0)
    r, c, a = r[ok], c[ok], a[ok]
    r0, c0 = np.floor(r).astype(np.int64), np.floor(c).astype(np.int64)
    fr, fc = r - r0, c - c0
    for dr, dc, w in ((0, 0, (1 - fr) * (1 - fc)), (0, 1, (1 - fr) * fc), (1, 0, fr * (1 - fc)), (1, 1, fr * fc)):
        rr, cc = r0 + dr, c0 + dc
        inside = (rr >= 0) & (rr < window.height) & (cc >= 0) & (cc < window.width)
        out += np.bincount(rr[inside] * window.width + cc[inside], weights=(a * w)[inside], minlength=out.size)
    return out.reshape(window.height, window.width)


def ellipsoid_incidence(image: S1Image, window: PixelWindow) -> np.ndarray:
    """The ellipsoid incidence angle (radians) of every column of ``window``, from the tie points, (1, w)."""
    gg = image.geolocation
    pixels = np.unique(gg.pixel)
    incidence = np.array([np.mean(gg.incidence_angle[gg.pixel == p]) for p in pixels])
    cols = np.arange(window.col_off, window.col_off + window.width)
    return np.radians(np.interp(cols, pixels, incidence))[None, :]


def beta_area(image: S1Image, window: PixelWindow) -> np.ndarray:
    """The beta0 reference area of each radar pixel of ``window`` (slant-plane cell, m²), per column."""
    theta = ellipsoid_incidence(image, window)
    return image.azimuth_pixel_spacing * image.range_pixel_spacing * np.sin(theta)


def flat_gamma_area(image: S1Image, window: PixelWindow) -> np.ndarray:
    """A_gamma of each radar pixel of ``window`` on the flat ellipsoid (``d_az d_gr cos theta``), per column."""
    theta = ellipsoid_incidence(image, window)
    return image.azimuth_pixel_spacing * image.range_pixel_spacing * np.cos(theta)


def flatten_gamma0(beta0: np.ndarray, a_gamma: np.ndarray, a_beta: np.ndarray) -> np.ndarray:
    """gamma0_T = beta0 * A_beta / A_gamma; NaN where the illuminated reference area is too small."""
    a_beta_full = np.broadcast_to(a_beta, beta0.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = beta0 * a_beta_full / a_gamma
    out[a_gamma < MIN_AREA_FRACTION * a_beta_full] = np.nan
    return out.astype(np.float32)
