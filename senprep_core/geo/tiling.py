"""Cut a target grid into fixed-size patches with overlap and an edge policy (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from senprep_core.geo.grid import PixelWindow, TargetGrid


class EdgePolicy(str, Enum):
    """What to do with the last row/column of patches when the grid is not a whole number of strides.

    ``drop``: leave out patches that would reach past the grid.
    ``pad``: keep them; pixels past the grid are filled with no-data.
    ``shift``: move them back inside so they end on the grid edge (overlapping their
    neighbour more). A grid smaller than one patch gets one padded patch.
    """

    DROP = "drop"
    PAD = "pad"
    SHIFT = "shift"


@dataclass(frozen=True)
class Patch:
    """One patch: its index in the layout, its window in the ROI grid and its own grid."""

    row: int
    col: int
    window: PixelWindow
    grid: TargetGrid

    @property
    def patch_id(self) -> str:
        """Stable name: ``r<row>_c<col>`` with zero padding."""
        return f"r{self.row:03d}_c{self.col:03d}"


@dataclass(frozen=True)
class PatchLayout:
    """Patch size and overlap in pixels (height, width), plus the edge policy."""

    size: tuple[int, int]
    overlap: tuple[int, int] = (0, 0)
    edge: EdgePolicy = EdgePolicy.SHIFT

    def __post_init__(self) -> None:
        if min(self.size) <= 0:
            raise ValueError(f"patch size must be positive, got {self.size}")
        if min(self.overlap) < 0 or self.overlap[0] >= self.size[0] or self.overlap[1] >= self.size[1]:
            raise ValueError(f"overlap {self.overlap} must be >= 0 and smaller than size {self.size}")

    @property
    def stride(self) -> tuple[int, int]:
        return (self.size[0] - self.overlap[0], self.size[1] - self.overlap[1])


def _starts(extent: int, size: int, stride: int, edge: EdgePolicy) -> list[int]:
    if extent <= size:
        return [] if (edge is EdgePolicy.DROP and extent < size) else [0]
    starts = list(range(0, extent - size + 1, stride))
    last_end = starts[-1] + size
    if last_end < extent:
        if edge is EdgePolicy.PAD:
            starts.append(starts[-1] + stride)
        elif edge is EdgePolicy.SHIFT:
            starts.append(extent - size)
    return starts


def layout_shape(grid: TargetGrid, layout: PatchLayout) -> tuple[int, int]:
    """Rows and columns of patches the layout puts on ``grid`` (before leaving out patches outside the ROI)."""
    h, w = layout.size
    rows = _starts(grid.height, h, layout.stride[0], layout.edge)
    cols = _starts(grid.width, w, layout.stride[1], layout.edge)
    return len(rows), len(cols)


def tile_grid(grid: TargetGrid, layout: PatchLayout, roi_mask: np.ndarray | None = None) -> list[Patch]:
    """All patches of ``grid`` in row-major order.

    With ``roi_mask`` (a boolean array of the grid's shape) patches holding no ROI pixel are
    left out, so a thin or L-shaped ROI does not produce empty patches. Patch indices keep
    their position in the full layout so names stay stable.
    """
    if roi_mask is not None and roi_mask.shape != grid.shape:
        raise ValueError(f"roi_mask shape {roi_mask.shape} differs from grid shape {grid.shape}")
    h, w = layout.size
    rows = _starts(grid.height, h, layout.stride[0], layout.edge)
    cols = _starts(grid.width, w, layout.stride[1], layout.edge)
    patches = []
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            window = PixelWindow(r, c, h, w)
            if roi_mask is not None and not roi_mask[r : r + h, c : c + w].any():
                continue
            patches.append(Patch(row=i, col=j, window=window, grid=grid.subgrid(window)))
    return patches
