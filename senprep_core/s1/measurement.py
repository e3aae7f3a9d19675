"""Read windows of a Sentinel-1 GRD measurement TIFF (amplitude DN) in place, folder or zip."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioError

from senprep_core.errors import CorruptProductError, OutsideSceneError
from senprep_core.geo.grid import PixelWindow
from senprep_core.s1.model import S1Metadata

log = logging.getLogger(__name__)


def clip_window(meta: S1Metadata, polarisation: str, window: PixelWindow) -> PixelWindow | None:
    """The part of ``window`` (rows = lines, cols = pixels) inside the image, or None when outside."""
    image = meta.image(polarisation)
    return window.intersection(PixelWindow(0, 0, image.lines, image.samples))


def read_dn(meta: S1Metadata, polarisation: str, window: PixelWindow) -> np.ndarray:
    """The float32 amplitude DN of ``window`` clipped to the image (see :func:`clip_window`).

    Rows are image lines, columns pixels; the result has the clipped window's shape. Raises
    :class:`OutsideSceneError` when the window misses the image and :class:`CorruptProductError`
    when the measurement TIFF is missing, truncated, unreadable or not the annotated size.
    """
    image = meta.image(polarisation)
    inside = clip_window(meta, polarisation, window)
    if inside is None:
        raise OutsideSceneError(
            f"pixel window {window} lies outside the {image.lines} x {image.samples} {polarisation} image of "
            f"{meta.product_id}; the ROI does not overlap this product"
        )
    member = image.measurement
    name = f"{member} of {meta.location.path.name}"
    if member not in meta.location.members():
        raise CorruptProductError(
            f"{meta.product_id} lacks its {polarisation} measurement file {member}; "
            "the product is incomplete: download it again"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)  # GRD TIFFs carry GCPs, not a transform
            with rasterio.open(meta.location.gdal_path(member)) as src:
                if (src.height, src.width) != (image.lines, image.samples) or src.count < 1:
                    raise CorruptProductError(
                        f"{name} is {src.height} x {src.width} pixels but the annotation says "
                        f"{image.lines} x {image.samples}; the product is damaged: download it again"
                    )
                data = src.read(1, window=inside.to_rasterio())
    except RasterioError as exc:
        raise CorruptProductError(
            f"cannot read {name} ({exc}); the file is truncated or damaged: download the product again"
        ) from exc
    log.debug("read %s window %s from %s", polarisation, inside, name)
    return np.asarray(data, dtype=np.float32)
