"""Patch thumbnails as PNG bytes (no Panel): S2 true colour, S1 VV/VH false colour, mask overlays."""

from __future__ import annotations

import io

import numpy as np
import rasterio
from PIL import Image

MASK_BANDS = (
    "scl_cloud_shadow",
    "scl_cloud_medium_proba",
    "scl_cloud_high_proba",
    "scl_thin_cirrus",
    "opaque_clouds",
    "cirrus_clouds",
)
MASK_COLOUR = np.array([255, 40, 40], dtype=np.float32)


def _stretch(values: np.ndarray) -> np.ndarray:
    """2-98 % percentile stretch of finite values to 0..1 (NaN stays NaN)."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return np.full(values.shape, np.nan, dtype=np.float32)
    low, high = np.percentile(finite, [2, 98])
    return np.clip((values - low) / max(float(high - low), 1e-6), 0.0, 1.0).astype(np.float32)


def _find(names: list[str], *candidates: str) -> int | None:
    for candidate in candidates:
        for index, name in enumerate(names):
            if name == candidate or name.startswith(candidate):
                return index
    return None


def patch_rgb(path: str, size: int = 128, masks: bool = True) -> np.ndarray:
    """An (size, size, 3) uint8 picture of a patch.

    S2: B04/B03/B02 reflectance scaled by 1/0.3; S1: red VV, green VH, blue VV - VH (dB, each
    stretched); anything else: the first band in grey. With ``masks``, pixels flagged by a
    cloud / shadow mask band are tinted red.
    """
    with rasterio.open(path) as src:
        names = [d or "" for d in src.descriptions]
        data = src.read(out_shape=(src.count, size, size), resampling=rasterio.enums.Resampling.nearest)
    data = data.astype(np.float32)  # senprep patches mark no data with NaN
    red, green, blue = (_find(names, b) for b in ("B04", "B03", "B02"))
    vv, vh = (
        _find(names, "sigma0_VV", "gamma0_VV", "beta0_VV", "gamma0T_VV"),
        _find(names, "sigma0_VH", "gamma0_VH", "beta0_VH", "gamma0T_VH"),
    )
    if red is not None and green is not None and blue is not None:
        rgb = np.clip(np.stack([data[red], data[green], data[blue]]) / 0.3, 0.0, 1.0)
    elif vv is not None and vh is not None:
        vv_db, vh_db = data[vv], data[vh]
        if not names[vv].endswith("_dB"):
            with np.errstate(divide="ignore", invalid="ignore"):
                vv_db, vh_db = 10 * np.log10(vv_db), 10 * np.log10(vh_db)
        rgb = np.stack([_stretch(vv_db), _stretch(vh_db), _stretch(vv_db - vh_db)])
    else:
        grey = _stretch(data[0])
        rgb = np.stack([grey, grey, grey])
    image = np.nan_to_num(np.moveaxis(rgb, 0, -1), nan=0.0) * 255.0
    if masks:
        flagged = np.zeros((size, size), dtype=bool)
        for index, name in enumerate(names):
            if name in MASK_BANDS:
                flagged |= data[index] > 0.5
        image[flagged] = 0.45 * image[flagged] + 0.55 * MASK_COLOUR
    return image.astype(np.uint8)


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def quicklook_png(href: str, size: int = 256) -> bytes | None:
    """PNG bytes of a product's own quicklook (S2 PVI, S1 quick-look), or None when it has none or is not
    a local product."""
    from senprep_core.errors import SenprepError
    from senprep_core.quicklook import read_quicklook

    try:
        image = read_quicklook(href, size)
    except (SenprepError, OSError):
        return None
    return None if image is None else png_bytes(image)


def thumbnail_png(path: str, size: int = 128, masks: bool = True) -> bytes:
    """PNG bytes of :func:`patch_rgb`."""
    return png_bytes(patch_rgb(path, size, masks))
