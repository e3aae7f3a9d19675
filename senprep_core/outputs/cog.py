"""Write patches as Cloud-Optimized GeoTIFFs (band descriptions, nodata, compression)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import rasterio

from senprep_core.errors import OutputError
from senprep_core.geo.grid import TargetGrid
from senprep_core.outputs.atomic import atomic_path


def write_cog(
    path: Path,
    data: np.ndarray,
    grid: TargetGrid,
    band_names: Sequence[str],
    tags: Mapping[str, str] | None = None,
    compress: str = "zstd",
) -> None:
    """Write ``data`` (bands, rows, cols; float32 with NaN as no-data) as a COG on ``grid``.

    The file appears under ``path`` only once complete. Bytes are deterministic for the same
    inputs (no timestamps), so different executors produce identical files.
    """
    if data.ndim != 3 or data.shape[1:] != grid.shape or data.shape[0] != len(band_names):
        raise OutputError(f"patch array {data.shape} does not match grid {grid.shape} and {len(band_names)} bands")
    block = 256 if min(grid.shape) >= 256 else max(16, 1 << (min(grid.shape).bit_length() - 1))
    profile = {
        "driver": "COG",
        "width": grid.width,
        "height": grid.height,
        "count": data.shape[0],
        "dtype": "float32",
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": float("nan"),
        "compress": compress.upper(),
        "predictor": 3 if compress.lower() in ("deflate", "lzw", "zstd") else 1,
        "blocksize": block,
        # fast levels: patches are small and written once; size grows ~10 % over the default level
        "level": 1 if compress.lower() in ("deflate", "zstd") else None,
        "overviews": "auto" if min(grid.shape) > 2 * block else "none",
    }
    profile = {k: v for k, v in profile.items() if v is not None}
    try:
        with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
            dst.write(data.astype("float32", copy=False))
            for index, name in enumerate(band_names, start=1):
                dst.set_band_description(index, name)
            if tags:
                dst.update_tags(**{k: str(v) for k, v in tags.items()})
    except rasterio.errors.RasterioIOError as exc:
        raise OutputError(f"cannot write {path}: {exc}; check the output folder is writable and has space") from exc
