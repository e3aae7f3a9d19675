"""Read windows of a Sentinel-1 GRD measurement TIFF (amplitude DN) in place, folder or zip."""

from __future__ import annotations

import itertools
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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
    with _measurement(meta, polarisation) as src:
        data = src.read(1, window=inside.to_rasterio())
    log.debug("read %s window %s of %s", polarisation, inside, meta.product_id)
    return np.asarray(data, dtype=np.float32)


def read_dn_lattice(meta: S1Metadata, polarisation: str, lines: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """The float32 amplitude DN at image ``lines`` x ``pixels`` (increasing indices inside the image).

    Each run of consecutive lines is read in one window spanning the pixels, and only those are kept:
    a decimated read (a preview) costs the lines it keeps, not the whole area. Errors as :func:`read_dn`.
    """
    lines, pixels = np.asarray(lines, dtype=np.int64), np.asarray(pixels, dtype=np.int64)
    out = np.empty((lines.size, pixels.size), dtype=np.float32)
    if out.size == 0:
        return out
    p0 = int(pixels[0])
    cols = pixels - p0
    starts = np.flatnonzero(np.diff(lines) != 1) + 1
    bounds = [0, *starts.tolist(), lines.size]
    with _measurement(meta, polarisation) as src:
        for a, b in itertools.pairwise(bounds):
            run = PixelWindow(int(lines[a]), p0, b - a, int(cols[-1]) + 1)
            out[a:b] = src.read(1, window=run.to_rasterio())[:, cols]
    return out


@contextmanager
def _measurement(meta: S1Metadata, polarisation: str) -> Iterator[Any]:
    """The open measurement TIFF of ``polarisation``, checked against the annotation; read errors become
    :class:`CorruptProductError`."""
    image = meta.image(polarisation)
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
                yield src
    except RasterioError as exc:
        raise CorruptProductError(
            f"cannot read {name} ({exc}); the file is truncated or damaged: download the product again"
        ) from exc
