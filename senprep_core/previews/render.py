"""Pictures of a preview: S2 true / false colour with clouds tinted, S1 VV, VH, VV/VH ratio (dB) or all three.

Pure functions from a :class:`~senprep_core.previews.model.Preview` to RGBA arrays (transparent where the
product holds no data); the same picture in the CLI's PNG and over the app's map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from senprep_core.bands import parse_s1_bands
from senprep_core.errors import PreviewError
from senprep_core.geo.grid import TargetGrid
from senprep_core.previews.model import Preview, ProductPreview

S2_RENDERINGS = ("true_colour", "false_colour")
S1_RENDERINGS = ("vv", "vh", "ratio", "composite")
RENDERINGS = (*S2_RENDERINGS, *S1_RENDERINGS)
#: Reflectance shown from black to white: true colour, false colour (NIR is brighter).
REFLECTANCE_RANGE = {"true_colour": (0.0, 0.3), "false_colour": (0.0, 0.5)}
#: dB shown from black to white.
DB_RANGE = {"vv": (-25.0, 0.0), "vh": (-30.0, -5.0), "ratio": (0.0, 15.0)}
CLOUD_TINT = np.array([255, 60, 200], dtype=np.float32)  # clouds: half way to magenta
CLOUD_WEIGHT = 0.5


@dataclass(frozen=True, eq=False)
class Picture:
    """An RGBA picture (rows, cols, 4) uint8 of one product's preview on ``grid``."""

    rgba: np.ndarray
    grid: TargetGrid
    rendering: str
    product_id: str


def render(view: Preview, rendering: str = "auto", index: int = 0) -> Picture:
    """The picture ``rendering`` of product ``index`` of ``view`` ("auto": true colour for S2, VV for S1)."""
    if not 0 <= index < len(view.products):
        raise PreviewError(f"the preview holds {len(view.products)} products; choose one from 0 to "
                           f"{len(view.products) - 1}")  # fmt: skip
    product = view.products[index]
    if rendering == "auto":
        rendering = S2_RENDERINGS[0] if product.family == "S2" else S1_RENDERINGS[0]
    allowed = S2_RENDERINGS if product.family == "S2" else S1_RENDERINGS
    if rendering not in allowed:
        raise PreviewError(f"{product.family} previews render as {', '.join(allowed)}, not {rendering!r}")
    rgb = _s2_rgb(product, rendering) if product.family == "S2" else _s1_rgb(product, rendering)
    alpha = np.where(product.valid & np.isfinite(rgb).all(axis=0), 255, 0).astype(np.uint8)
    pixels = np.nan_to_num(np.clip(rgb, 0.0, 255.0)).round().astype(np.uint8)
    rgba = np.concatenate([np.moveaxis(pixels, 0, -1), alpha[..., None]], axis=-1)
    return Picture(rgba, view.grid, rendering, product.product_id)


def _stretch(values: np.ndarray, low: float, high: float) -> np.ndarray:
    return (values.astype(np.float32) - low) / (high - low) * 255.0


def _s2_rgb(product: ProductPreview, rendering: str) -> np.ndarray:
    names = ("B04", "B03", "B02") if rendering == "true_colour" else ("B08", "B04", "B03")
    low, high = REFLECTANCE_RANGE[rendering]
    rgb = np.stack([_stretch(product.band(n), low, high) for n in names])
    if product.cloud is not None:
        cloud = product.cloud & product.valid
        tinted = (1 - CLOUD_WEIGHT) * np.clip(rgb, 0, 255) + CLOUD_WEIGHT * CLOUD_TINT[:, None, None]
        rgb = np.where(cloud[None], tinted, rgb)
    return rgb


def backscatter_db(product: ProductPreview, polarisation: str) -> np.ndarray:
    """The first backscatter layer of ``polarisation`` in dB (converted when the run keeps linear values)."""
    for band in parse_s1_bands(product.bands):
        if band.polarisation == polarisation and band.is_backscatter:
            layer = product.band(band.name)
            if band.db:
                return layer
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.asarray(10 * np.log10(layer), dtype=np.float32)
    raise PreviewError(f"the preview of {product.product_id} has no {polarisation} backscatter layer (it has "
                       f"{', '.join(product.bands)}); add one to sentinel1.bands")  # fmt: skip


def _s1_rgb(product: ProductPreview, rendering: str) -> np.ndarray:
    if rendering in ("vv", "vh"):
        grey = _stretch(backscatter_db(product, rendering.upper()), *DB_RANGE[rendering])
        return np.stack([grey, grey, grey])
    vv, vh = backscatter_db(product, "VV"), backscatter_db(product, "VH")
    ratio = _stretch(vv - vh, *DB_RANGE["ratio"])
    if rendering == "ratio":
        return np.stack([ratio, ratio, ratio])
    return np.stack([_stretch(vv, *DB_RANGE["vv"]), _stretch(vh, *DB_RANGE["vh"]), ratio])


def warp_picture(picture: Picture, epsg: int) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """``picture`` resampled (nearest) into ``epsg`` (e.g. 3857 for a web map): RGBA and its (left, bottom,
    right, top) there; transparent outside the picture."""
    from affine import Affine
    from rasterio.warp import Resampling, reproject, transform_bounds

    grid = picture.grid
    left, bottom, right, top = transform_bounds(grid.crs, f"EPSG:{epsg}", *grid.bounds.as_tuple(), densify_pts=21)
    width = max(grid.width, grid.height)  # about the picture's own pixels along its longer side
    height = max(1, round(width * (top - bottom) / (right - left)))
    if height > width:
        width, height = max(1, round(width * (right - left) / (top - bottom))), width
    transform = Affine((right - left) / width, 0.0, left, 0.0, -(top - bottom) / height, top)
    out = np.zeros((4, height, width), dtype=np.uint8)
    reproject(np.moveaxis(picture.rgba, -1, 0), out, src_transform=grid.transform, src_crs=grid.crs,
              dst_transform=transform, dst_crs=f"EPSG:{epsg}", resampling=Resampling.nearest)  # fmt: skip
    return np.moveaxis(out, 0, -1), (left, bottom, right, top)
