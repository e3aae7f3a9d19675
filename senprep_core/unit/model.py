"""The work unit and what the plan decides for it, once: value objects, no I/O.

A :class:`WorkUnit` is one product, or a primary with its partner, over the ROI. Its
:class:`UnitSpec` holds everything the unit needs that is the same for a whole run — the target
grid, the ROI mask, the patch layout, the config fingerprint and the per-sensor settings — computed
by the plan and passed on, so no unit derives them again (and no unit sees the configuration).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from shapely.geometry.base import BaseGeometry

from senprep_core.catalog.records import ProductRecord
from senprep_core.geo.grid import TargetGrid
from senprep_core.geo.tiling import Patch
from senprep_core.outputs.cube_layout import UnitCubeTarget
from senprep_core.outputs.records import PatchEntry, UnitResult
from senprep_core.s1.multitemporal import QueganFilter
from senprep_core.s1.options import S1Options

__all__ = [
    "PatchEntry",
    "PatchRules",
    "RoiMask",
    "S1Settings",
    "S2Settings",
    "UnitResult",
    "UnitSpec",
    "WorkUnit",
]


@dataclass(frozen=True)
class RoiMask:
    """The grid pixels whose centre lies in the ROI, stored packed (a whole scene's mask ships in kilobytes)."""

    shape: tuple[int, int]
    packed: bytes = field(repr=False)

    @classmethod
    def from_array(cls, mask: np.ndarray) -> RoiMask:
        flat = np.packbits(np.asarray(mask, dtype=bool).ravel())
        return cls((int(mask.shape[0]), int(mask.shape[1])), zlib.compress(flat.tobytes(), 6))

    def array(self) -> np.ndarray:
        """The boolean mask (rows, cols)."""
        bits = np.frombuffer(zlib.decompress(self.packed), dtype=np.uint8)
        return np.unpackbits(bits, count=self.shape[0] * self.shape[1]).astype(bool).reshape(self.shape)


@dataclass(frozen=True)
class PatchRules:
    """Which patches are written, and how: the valid / cloud fractions that keep one, and the compression."""

    min_valid_fraction: float = 0.5
    max_patch_cloud: float | None = None
    compress: str = "zstd"


@dataclass(frozen=True)
class S2Settings:
    """What the Sentinel-2 chain reads: canonical bands, level, reflectance resampling, ROI cloud threshold (%)."""

    bands: tuple[str, ...] = ()
    level: str = "L2A"
    resampling: str = "bilinear"
    roi_cloud_threshold: float | None = None


@dataclass(frozen=True)
class S1Settings:
    """What the Sentinel-1 chain makes: canonical bands, the chain's options and the multi-temporal filter
    applied across the products of a stack unit (None: none)."""

    bands: tuple[str, ...] = ()
    options: S1Options = field(default_factory=S1Options)
    stack_filter: QueganFilter | None = None


@dataclass(frozen=True)
class UnitSpec:
    """Everything a run's units share, computed once by the plan."""

    run_name: str
    fingerprint: str
    grid: TargetGrid
    roi_mask: RoiMask
    roi_lonlat: BaseGeometry  # the ROI in lon/lat (what auxiliary data such as DEM tiles must cover)
    patches: tuple[Patch, ...]
    rules: PatchRules = field(default_factory=PatchRules)
    s2: S2Settings = field(default_factory=S2Settings)
    s1: S1Settings = field(default_factory=S1Settings)
    stac: bool = True  # each unit writes the STAC items of its patches


@dataclass(frozen=True)
class WorkUnit:
    """One independent piece of work: one product, or a primary with its partner, over the ROI.

    ``roles`` are the modality keys of the products (patch file suffixes and asset keys): ``S2``,
    ``S1``, ``S1_previous`` for the earlier acquisition of a multitemporal pair, ``S1_t1``, ``S1_t2``... for
    the older members of an S1 stack (newest first).
    """

    unit_id: str
    kind: str  # "s2", "s1", "s2+s1", "s1+s2", "s1+s1", "s2+s1+s1", "s1_stack"
    products: tuple[ProductRecord, ...]
    spec: UnitSpec = field(repr=False, compare=False)
    roles: tuple[str, ...] = ()
    delta_t_hours: float | None = None
    cube: UnitCubeTarget | None = field(default=None, repr=False, compare=False)  # the Zarr cube slots it fills
    legacy_dir: str | None = field(default=None, compare=False)  # its ROI<n> folder of the 2022 layout

    def __post_init__(self) -> None:
        if not self.roles:
            object.__setattr__(self, "roles", tuple(p.family for p in self.products))

    def describe(self) -> str:
        return f"{self.kind} {', '.join(p.product_id for p in self.products)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "unit_id": self.unit_id,
            "kind": self.kind,
            "roles": list(self.roles),
            "delta_t_hours": self.delta_t_hours,
            "products": [p.to_dict() for p in self.products],
        }
