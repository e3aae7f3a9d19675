"""Compare a preview with the full run it previews: the run's patches placed on the preview grid and averaged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio

from senprep_core.geo.grid import TargetGrid


def run_on_preview_grid(folder: Path, suffix: str, grid: TargetGrid, factor: int) -> np.ndarray:
    """The patches ``*_<suffix>.tif`` of one unit folder on ``grid`` at ``factor`` times its resolution:
    (bands, rows * factor, cols * factor), NaN where no patch."""
    res = grid.resolution / factor
    height, width = grid.height * factor, grid.width * factor
    out: np.ndarray | None = None
    for path in sorted(folder.glob(f"*_{suffix}.tif")):
        with rasterio.open(path) as src:
            data = src.read().astype(np.float64)
            if out is None:
                out = np.full((src.count, height, width), np.nan)
            col = round((src.transform.c - grid.left) / res)
            row = round((grid.top - src.transform.f) / res)
            r0, c0 = max(row, 0), max(col, 0)
            r1, c1 = min(row + src.height, height), min(col + src.width, width)
            if r1 > r0 and c1 > c0:
                out[:, r0:r1, c0:c1] = data[:, r0 - row : r1 - row, c0 - col : c1 - col]
    assert out is not None, f"no *_{suffix}.tif patch in {folder}"
    return out


def block_mean(fine: np.ndarray, factor: int) -> np.ndarray:
    """The mean of each ``factor x factor`` block of (bands, H, W); NaN where a block is not complete."""
    bands, height, width = fine.shape
    blocks = fine.reshape(bands, height // factor, factor, width // factor, factor)
    full = np.isfinite(blocks).all(axis=(0, 2, 4))
    return np.where(full, blocks.mean(axis=(2, 4)), np.nan)


def db_block_mean(fine_db: np.ndarray, factor: int) -> np.ndarray:
    """Block means of dB layers taken in linear power, back in dB."""
    return 10 * np.log10(block_mean(10 ** (fine_db / 10), factor))
