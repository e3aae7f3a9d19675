"""Radiometric terrain flattening: beta0 -> gamma0_T by the area-based method of Small (2011).

Each DEM facet (a target-grid cell) is illuminated over its surface area projected onto the
plane perpendicular to the look direction: ``r**2 * cos(local incidence) / n_up`` (``n_up``
is the vertical part of its unit normal; zero in shadow). Summing those areas into the radar
pixels the facets fall in (bilinear splatting) gives the reference area ``A_gamma`` of every
radar pixel; the beta0 reference area is the slant-range plane cell ``A_beta = d_az * d_gr *
sin(theta_ellipsoid)``. Then ``gamma0_T = beta0 * A_beta / A_gamma``.

On flat terrain this reduces to ``beta0 * tan(theta)``, the ellipsoid gamma0 (checked in the
tests). Radar pixels that receive almost no facet area (shadow, or a sum less than
``MIN_AREA_FRACTION`` of ``A_beta``) are no data.
"""

from __future__ import annotations

import numpy as np

from senprep_core.geo.grid import PixelWindow
from senprep_core.s1.model import S1Image
from senprep_core.s1.positions import RadarPositions

MIN_AREA_FRACTION = 0.05


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


def beta_area(image: S1Image, window: PixelWindow) -> np.ndarray:
    """The beta0 reference area of each radar pixel of ``window`` (slant-plane cell, m²), per column."""
    gg = image.geolocation
    pixels = np.unique(gg.pixel)
    incidence = np.array([np.mean(gg.incidence_angle[gg.pixel == p]) for p in pixels])
    cols = np.arange(window.col_off, window.col_off + window.width)
    theta = np.radians(np.interp(cols, pixels, incidence))
    return image.azimuth_pixel_spacing * image.range_pixel_spacing * np.sin(theta)[None, :]


def flatten_gamma0(beta0: np.ndarray, a_gamma: np.ndarray, a_beta: np.ndarray) -> np.ndarray:
    """gamma0_T = beta0 * A_beta / A_gamma; NaN where the illuminated reference area is too small."""
    a_beta_full = np.broadcast_to(a_beta, beta0.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = beta0 * a_beta_full / a_gamma
    out[a_gamma < MIN_AREA_FRACTION * a_beta_full] = np.nan
    return out.astype(np.float32)
