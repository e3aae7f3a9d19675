"""A preview on disk: its picture as PNG, its layers as a GeoTIFF on the preview grid. Written atomically."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning

from senprep_core.atomic import atomic_path
from senprep_core.errors import OutputError
from senprep_core.previews.model import Preview
from senprep_core.previews.render import Picture, render


def write_png(picture: Picture, path: str | Path) -> Path:
    """``picture`` as an RGBA PNG at ``path`` (transparent where the product holds no data)."""
    path = Path(path)
    rows, cols, _ = picture.rgba.shape
    profile = {"driver": "PNG", "width": cols, "height": rows, "count": 4, "dtype": "uint8"}
    return _write(path, profile, np.moveaxis(picture.rgba, -1, 0), ())


def write_geotiff(view: Preview, path: str | Path) -> Path:
    """Every layer of ``view`` as float32 bands of a GeoTIFF on the preview grid (NaN = no data), named
    ``<role>:<band>``; S2 products add their cloud mask (1 cloud, 0 clear) as ``<role>:cloud``."""
    layers: list[np.ndarray] = []
    names: list[str] = []
    for product in view.products:
        for band, data in zip(product.bands, product.data, strict=True):
            layers.append(data)
            names.append(f"{product.role}:{band}")
        if product.cloud is not None:
            layers.append(np.where(product.valid, product.cloud, np.nan).astype(np.float32))
            names.append(f"{product.role}:cloud")
    grid = view.grid
    profile = {"driver": "GTiff", "width": grid.width, "height": grid.height, "count": len(layers),
               "dtype": "float32", "crs": grid.crs, "transform": grid.transform, "nodata": float("nan"),
               "compress": "deflate", "tiled": grid.width >= 256 and grid.height >= 256}  # fmt: skip
    return _write(Path(path), profile, np.stack(layers).astype(np.float32), tuple(names))


def write_preview(
    view: Preview, png: str | Path | None, tif: str | Path | None, rendering: str = "auto", s1_rendering: str = "auto"
) -> list[Path]:
    """``view`` as a GeoTIFF (``tif``) and pictures (``png``; a pair gets one per product, ``_<role>`` added to the
    name), S2 rendered as ``rendering`` and S1 as ``s1_rendering``; the paths written."""
    written = [write_geotiff(view, tif)] if tif else []
    for i, product in enumerate(view.products if png else ()):
        path = Path(str(png))
        if len(view.products) > 1:
            path = path.with_name(f"{path.stem}_{product.role}{path.suffix}")
        written.append(write_png(render(view, rendering if product.family == "S2" else s1_rendering, i), path))
    return written


def _write(path: Path, profile: dict[str, object], data: np.ndarray, names: tuple[str, ...]) -> Path:
    try:
        with atomic_path(path) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a PNG is a picture, not a map
            with rasterio.open(tmp, "w", **profile) as dst:
                dst.write(data)
                for i, name in enumerate(names, start=1):
                    dst.set_band_description(i, name)
            for sidecar in tmp.parent.glob(f"{tmp.name}.aux.xml"):  # GDAL's PAM file of a PNG, not wanted
                sidecar.unlink()
    except (OSError, rasterio.errors.RasterioError) as exc:
        raise OutputError(f"cannot write the preview {path}: {exc}; choose a writable path") from None
    return path
