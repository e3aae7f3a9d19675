"""Product quicklooks: the small preview image a product carries (S2 ``QI_DATA/*_PVI.jp2``, S1
``preview/quick-look.png``), read from a folder or a zip."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from senprep_core.productfs import ProductLocation

#: Where products keep their preview image (case-insensitive globs, first match wins).
QUICKLOOK_PATTERNS = ("GRANULE/*/QI_DATA/*_PVI.jp2", "*QI_DATA/*_PVI.jp2", "preview/quick-look.png")


def quicklook_member(location: ProductLocation) -> str | None:
    """The member holding the product's quicklook, or None when it has none."""
    for pattern in QUICKLOOK_PATTERNS:
        found = location.find(pattern)
        if found:
            return found[0]
    return None


def read_quicklook(product: str | Path, size: int = 256) -> np.ndarray | None:
    """The product's quicklook as an RGB uint8 array of at most ``size`` pixels a side (None without one).

    A one-band preview is returned as grey. Raises :class:`~senprep_core.errors.SenprepError` subclasses
    when the product itself cannot be opened.
    """
    import rasterio
    from rasterio.enums import Resampling

    location = ProductLocation.open(product)
    member = quicklook_member(location)
    if member is None:
        return None
    try:
        with warnings.catch_warnings():  # PNG previews carry no georeferencing
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            src = rasterio.open(location.gdal_path(member))
        with src:
            scale = min(1.0, size / max(src.width, src.height))
            shape = (max(1, round(src.height * scale)), max(1, round(src.width * scale)))
            bands = [1, 2, 3] if src.count >= 3 else [1, 1, 1]
            data = src.read(bands, out_shape=(3, *shape), resampling=Resampling.average)
    except rasterio.errors.RasterioIOError as exc:
        from senprep_core.errors import CorruptProductError

        raise CorruptProductError(f"cannot read the quicklook {member} of {location.path}: {exc}") from exc
    if data.dtype != np.uint8:
        high = float(np.percentile(data, 99)) or 1.0
        data = np.clip(data.astype(np.float64) / high * 255.0, 0, 255)
    return np.moveaxis(data.astype(np.uint8), 0, -1)


__all__ = ["QUICKLOOK_PATTERNS", "quicklook_member", "read_quicklook"]
