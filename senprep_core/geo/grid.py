"""The target grid and pixel windows: value objects, no I/O.

A :class:`TargetGrid` is a north-up raster grid in a projected CRS whose corners sit on
multiples of its resolution (a global origin at 0, 0), so re-runs and neighbouring ROIs
share pixel edges exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from affine import Affine
from shapely.geometry.base import BaseGeometry

_EPS = 1e-6


@dataclass(frozen=True)
class Bounds:
    """An axis-aligned rectangle in a CRS: left, bottom, right, top."""

    left: float
    bottom: float
    right: float
    top: float

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.top - self.bottom

    def intersects(self, other: Bounds) -> bool:
        """True when the two rectangles share an area (touching edges do not count)."""
        return (
            self.left < other.right and other.left < self.right and self.bottom < other.top and other.bottom < self.top
        )

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.left, self.bottom, self.right, self.top)


@dataclass(frozen=True)
class PixelWindow:
    """A rectangle of pixels: row/column offsets and size. Offsets may be negative."""

    row_off: int
    col_off: int
    height: int
    width: int

    @property
    def row_stop(self) -> int:
        return self.row_off + self.height

    @property
    def col_stop(self) -> int:
        return self.col_off + self.width

    def intersection(self, other: PixelWindow) -> PixelWindow | None:
        """The shared pixels, or None when the windows do not overlap."""
        r0, c0 = max(self.row_off, other.row_off), max(self.col_off, other.col_off)
        r1, c1 = min(self.row_stop, other.row_stop), min(self.col_stop, other.col_stop)
        if r1 <= r0 or c1 <= c0:
            return None
        return PixelWindow(r0, c0, r1 - r0, c1 - c0)

    def shifted(self, row: int, col: int) -> PixelWindow:
        """The same window moved by (row, col) pixels."""
        return PixelWindow(self.row_off + row, self.col_off + col, self.height, self.width)

    def slices(self) -> tuple[slice, slice]:
        """Numpy slices (rows, cols) for a window that lies inside its array."""
        return slice(self.row_off, self.row_stop), slice(self.col_off, self.col_stop)

    def to_rasterio(self) -> Any:
        """This window as a ``rasterio.windows.Window``."""
        from rasterio.windows import Window

        return Window(self.col_off, self.row_off, self.width, self.height)


@dataclass(frozen=True)
class TargetGrid:
    """A north-up grid: CRS (EPSG code), square pixel size, top-left corner and size in pixels."""

    epsg: int
    resolution: float
    left: float
    top: float
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.resolution <= 0 or self.width < 0 or self.height < 0:
            raise ValueError(f"grid needs a positive resolution and non-negative size, got {self}")

    @classmethod
    def covering(cls, bounds: Bounds, epsg: int, resolution: float = 10.0) -> TargetGrid:
        """The smallest aligned grid (corners on multiples of ``resolution``) holding ``bounds``."""
        left = math.floor(bounds.left / resolution + _EPS) * resolution
        top = math.ceil(bounds.top / resolution - _EPS) * resolution
        right = math.ceil(bounds.right / resolution - _EPS) * resolution
        bottom = math.floor(bounds.bottom / resolution + _EPS) * resolution
        width = max(1, round((right - left) / resolution))
        height = max(1, round((top - bottom) / resolution))
        return cls(
            epsg=epsg, resolution=float(resolution), left=float(left), top=float(top), width=width, height=height
        )

    @classmethod
    def for_geometry(cls, geometry: BaseGeometry, epsg: int, resolution: float = 10.0) -> TargetGrid:
        """The aligned grid covering a geometry already expressed in ``epsg``."""
        return cls.covering(Bounds(*geometry.bounds), epsg, resolution)

    @property
    def crs(self) -> str:
        return f"EPSG:{self.epsg}"

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def transform(self) -> Affine:
        return Affine(self.resolution, 0.0, self.left, 0.0, -self.resolution, self.top)

    @property
    def bounds(self) -> Bounds:
        return Bounds(
            self.left, self.top - self.height * self.resolution, self.left + self.width * self.resolution, self.top
        )

    def window_of(self, other: TargetGrid) -> PixelWindow:
        """Where ``other`` (same CRS and resolution, aligned) sits in this grid's pixels."""
        if other.epsg != self.epsg or abs(other.resolution - self.resolution) > _EPS:
            raise ValueError("window_of needs grids with the same CRS and resolution")
        col = (other.left - self.left) / self.resolution
        row = (self.top - other.top) / self.resolution
        if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
            raise ValueError("grids are not aligned on the same pixel lattice")
        return PixelWindow(round(row), round(col), other.height, other.width)

    def subgrid(self, window: PixelWindow) -> TargetGrid:
        """The grid of a pixel window of this grid (the window may reach outside)."""
        return TargetGrid(
            epsg=self.epsg,
            resolution=self.resolution,
            left=self.left + window.col_off * self.resolution,
            top=self.top - window.row_off * self.resolution,
            width=window.width,
            height=window.height,
        )

    def buffered(self, pixels: int) -> TargetGrid:
        """This grid grown by ``pixels`` on every side (still aligned)."""
        return self.subgrid(PixelWindow(-pixels, -pixels, self.height + 2 * pixels, self.width + 2 * pixels))

    def pixel_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """1-D arrays of pixel-centre x (columns) and y (rows) coordinates."""
        xs = self.left + (np.arange(self.width) + 0.5) * self.resolution
        ys = self.top - (np.arange(self.height) + 0.5) * self.resolution
        return xs, ys

    def rasterize(self, geometry: BaseGeometry, all_touched: bool = False) -> np.ndarray:
        """Boolean mask of the pixels whose centre lies inside ``geometry`` (in this grid's CRS)."""
        from rasterio.features import geometry_mask

        if geometry.is_empty:
            return np.zeros(self.shape, dtype=bool)
        return ~geometry_mask([geometry], out_shape=self.shape, transform=self.transform, all_touched=all_touched)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (used in sidecars and run reports)."""
        return {
            "crs": self.crs,
            "epsg": self.epsg,
            "resolution": self.resolution,
            "transform": list(self.transform)[:6],
            "width": self.width,
            "height": self.height,
            "bounds": list(self.bounds.as_tuple()),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetGrid:
        """Inverse of :meth:`to_dict`."""
        t = data["transform"]
        return cls(
            int(data["epsg"]),
            float(data["resolution"]),
            float(t[2]),
            float(t[5]),
            int(data["width"]),
            int(data["height"]),
        )
