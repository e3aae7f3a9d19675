"""What a preview is: processed layers of one or two products on a coarse grid aligned with the run's grid.

Value objects, no I/O. :func:`preview_grid` decides the grid once: the run's CRS, a whole multiple of the run's
resolution, corners on the run's pixel lattice, covering the asked area.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from rasterio.warp import transform_bounds

from senprep_core.errors import PreviewError
from senprep_core.geo.grid import Bounds, TargetGrid

#: The largest preview grid (pixels); a screen is about 1-4 million.
MAX_PREVIEW_PIXELS = 16_000_000
_EPS = 1e-9


@dataclass(frozen=True, eq=False)
class ProductPreview:
    """One product's layers on the preview grid: ``data`` (bands, rows, cols) float32, NaN where no data.

    ``valid`` is True where the product holds data; ``cloud`` (S2) is True on the pixels the run's cloud mask
    flags (SCL 8/9/10 for L2A, the opaque / cirrus masks for L1C), None when the product has no cloud layer.
    """

    product_id: str
    family: str  # "S1" | "S2"
    role: str  # "S2", "S1", "S1_previous": as in a run's patches
    bands: tuple[str, ...]
    data: np.ndarray
    valid: np.ndarray
    cloud: np.ndarray | None = None

    def band(self, name: str) -> np.ndarray:
        """The layer ``name`` (rows, cols); :class:`PreviewError` naming the layers there are otherwise."""
        if name not in self.bands:
            raise PreviewError(f"the preview of {self.product_id} has no layer {name} (it has {', '.join(self.bands)})")
        return self.data[self.bands.index(name)]


@dataclass(frozen=True, eq=False)
class Preview:
    """The preview of a product or pair: each product's layers on ``grid``, made in ``seconds``."""

    grid: TargetGrid
    run_resolution: float
    products: tuple[ProductPreview, ...]
    seconds: float

    @property
    def factor(self) -> int:
        """Run pixels per preview pixel along each axis."""
        return round(self.grid.resolution / self.run_resolution)

    def product(self, family: str) -> ProductPreview:
        """The first product of ``family`` ("S1" or "S2")."""
        for p in self.products:
            if p.family == family:
                return p
        raise PreviewError(f"this preview holds no {family} product (it holds {', '.join(self.families)})")

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p.family for p in self.products))


def lonlat_to(bounds: Bounds, epsg: int) -> Bounds:
    """``bounds`` (lon/lat degrees) in ``epsg`` (the box holding the densified edges)."""
    if not (-180 <= bounds.left < bounds.right <= 180 and -90 <= bounds.bottom < bounds.top <= 90):
        raise PreviewError(
            f"preview bounds {bounds.as_tuple()} are not west < east and south < north in degrees; "
            "give them as west, south, east, north in longitude / latitude"
        )
    return Bounds(*transform_bounds(4326, epsg, *bounds.as_tuple(), densify_pts=21))


def preview_grid(bounds: Bounds, epsg: int, run_resolution: float, resolution: float) -> TargetGrid:
    """The grid covering ``bounds`` (lon/lat) in ``epsg`` at the smallest whole multiple of ``run_resolution`` not
    finer than ``resolution`` (metres), its corners on the run's pixel lattice."""
    if not (math.isfinite(resolution) and resolution > 0):
        raise PreviewError(f"preview resolution {resolution!r} is not a positive number of metres; give e.g. 60")
    factor = max(1, math.ceil(resolution / run_resolution - _EPS))
    grid = TargetGrid.covering(lonlat_to(bounds, epsg), epsg, factor * run_resolution)
    if grid.width * grid.height > MAX_PREVIEW_PIXELS:
        raise PreviewError(
            f"a preview of {grid.width} x {grid.height} pixels at {grid.resolution:g} m is too large (at most "
            f"{MAX_PREVIEW_PIXELS:,} pixels); give a coarser resolution or a smaller area"
        )
    return grid


def resolution_for(bounds: Bounds, epsg: int, run_resolution: float, screen_pixels: int) -> float:
    """The finest preview resolution (a whole multiple of ``run_resolution``) at which ``bounds`` (lon/lat) fits in
    ``screen_pixels`` along its longer side."""
    if screen_pixels < 1:
        raise PreviewError(f"a screen of {screen_pixels} pixels cannot show a preview; give at least 1")
    box = lonlat_to(bounds, epsg)
    side = max(box.width, box.height)
    return max(1, math.ceil(side / (screen_pixels * run_resolution) - _EPS)) * run_resolution
