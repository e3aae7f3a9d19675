"""Cut a unit's grid into blocks of patches, decide which patches to keep, and describe them (sidecars)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from senprep_core import __version__
from senprep_core.geo.grid import PixelWindow, TargetGrid
from senprep_core.geo.tiling import Patch

#: Largest block of target-grid pixels processed at once (bounds memory for any ROI size).
BLOCK_PIXELS = 1 << 22


@dataclass(frozen=True)
class Block:
    """A group of whole patch rows processed together, and the grid window they span."""

    window: PixelWindow
    patches: tuple[Patch, ...]


def plan_blocks(patches: Sequence[Patch], max_pixels: int = BLOCK_PIXELS) -> list[Block]:
    """Group patches into square-ish blocks of n x n patches (at most ``max_pixels`` each), row-major.

    Square blocks keep each block's footprint compact in every geometry: a block of whole patch
    rows across a wide grid would map onto a long skewed strip of a radar image (and a huge
    image window), where a square maps onto a compact one.
    """
    if not patches:
        return []
    height, width = patches[0].window.height, patches[0].window.width
    n = max(1, math.isqrt(max(1, max_pixels // max(1, height * width))))
    groups: dict[tuple[int, int], list[Patch]] = {}
    for p in patches:
        groups.setdefault((p.row // n, p.col // n), []).append(p)
    blocks = []
    for key in sorted(groups):
        ps = groups[key]
        r0 = min(p.window.row_off for p in ps)
        c0 = min(p.window.col_off for p in ps)
        r1 = max(p.window.row_stop for p in ps)
        c1 = max(p.window.col_stop for p in ps)
        blocks.append(Block(PixelWindow(r0, c0, r1 - r0, c1 - c0), tuple(ps)))
    return blocks


@dataclass(frozen=True)
class PatchDecision:
    """Whether a patch is written, with the fractions that decided it."""

    keep: bool
    valid_fraction: float
    cloud_fraction: float | None
    reason: str | None = None


def decide_patch(
    valid: np.ndarray, cloud: np.ndarray | None, min_valid_fraction: float, max_cloud_fraction: float | None
) -> PatchDecision:
    """Keep a patch when enough of it holds data and it is not too cloudy (fractions of pixels)."""
    n = valid.size
    n_valid = int(valid.sum())
    vf = n_valid / n if n else 0.0
    cf = None
    if cloud is not None and n_valid:
        cf = int((cloud & valid).sum()) / n_valid
    if n_valid == 0 or vf < min_valid_fraction:
        return PatchDecision(False, vf, cf, f"valid fraction {vf:.3f} < {min_valid_fraction}")
    if max_cloud_fraction is not None and cf is not None and cf > max_cloud_fraction:
        return PatchDecision(False, vf, cf, f"cloud fraction {cf:.3f} > {max_cloud_fraction}")
    return PatchDecision(True, vf, cf)


def sidecar_for(
    patch: Patch,
    modality: str,
    bands: Sequence[str],
    decision: PatchDecision,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """The JSON sidecar of a patch: products, times, bands, fractions, grid, software, config."""
    return {
        "patch_id": patch.patch_id,
        "patch_row": patch.row,
        "patch_col": patch.col,
        "modality": modality,
        "bands": list(bands),
        "valid_fraction": round(decision.valid_fraction, 6),
        "cloud_fraction": None if decision.cloud_fraction is None else round(decision.cloud_fraction, 6),
        "grid": patch.grid.to_dict(),
        "window_in_roi_grid": {
            "row_off": patch.window.row_off,
            "col_off": patch.window.col_off,
            "height": patch.window.height,
            "width": patch.window.width,
        },
        "software": {"name": "senprep", "version": __version__},
        **extra,
    }


def inside_mask(grid: TargetGrid, window: PixelWindow) -> np.ndarray:
    """Boolean array over ``window`` marking the pixels that lie inside ``grid`` (False where padded)."""
    out = np.zeros((window.height, window.width), dtype=bool)
    inner = window.intersection(PixelWindow(0, 0, grid.height, grid.width))
    if inner is not None:
        local = inner.shifted(-window.row_off, -window.col_off)
        out[local.slices()] = True
    return out
