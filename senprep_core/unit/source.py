"""What a sensor chain gives a work unit: blocks of the target grid, read onto it, and ROI statistics.

The S1 and S2 chains differ only in how a block of the target grid is read (:class:`UnitSource`);
deciding, writing and recording patches is the runner's (:mod:`senprep_core.unit.runner`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from senprep_core.geo.grid import TargetGrid

#: The reason every source gives for a product with no valid pixel in the ROI.
NO_VALID_PIXEL = "no valid pixel of the product inside the ROI"


@dataclass(frozen=True)
class BlockData:
    """A block of the target grid as read by a source: (bands, rows, cols) float32 and masks."""

    data: np.ndarray
    valid: np.ndarray
    cloud: np.ndarray | None = None


@dataclass(frozen=True)
class RoiStats:
    """Valid and cloud fractions of a product over the ROI."""

    valid_fraction: float
    cloud_fraction: float | None


class UnitSource(Protocol):
    """What a modality chain provides to the unit runner."""

    modality: str  # "S1" | "S2" | "S1_previous": the suffix of patch files and the key of their assets
    bands: list[str]
    extra: dict[str, Any]  # sidecar fields shared by every patch (must hold sensing_time and platform)

    def read_block(self, grid: TargetGrid) -> BlockData:
        """Read every band of a block of the target grid."""
        ...

    def roi_stats(self) -> RoiStats | None:
        """Cheap ROI fractions before the full read (None: take them from the blocks)."""
        ...

    def rejection(self, stats: RoiStats) -> str | None:
        """Why the product is not used for this ROI (None: use it)."""
        ...

    def close(self) -> None:
        """Release the product's open files."""
        ...


def no_valid_pixel(stats: RoiStats) -> str | None:
    """The rejection every chain shares: nothing valid in the ROI."""
    return NO_VALID_PIXEL if stats.valid_fraction == 0 else None
