"""JPEG 2000 windows decoded by OpenJPEG's sub-tile decoding (through glymur), where it is available.

GDAL's JPEG 2000 driver decodes whole JP2 tiles (1024 x 1024 px in Sentinel-2 band files): a window
pays for every tile it touches. OpenJPEG >= 2.3 decodes only the code-blocks that intersect a
requested area (``opj_set_decode_area``), so an ROI window costs in proportion to its own size; for
a 20 km ROI of a 10 m band that is about half the CPU of GDAL's read (``benchmarks/bench_s2_roi.py``).
The pixels are the same (the code is lossless and reversible either way; tests compare both paths).

Used for local, single-component JP2 files (the band and SCL files of a SAFE folder). Zip members and
remote files, and any file this path cannot open, are read by GDAL. The library OpenJPEG is found
as glymur finds it (Debian: ``libopenjp2-7``; conda-forge: ``openjpeg``). ``SENPREP_JP2_DECODER=gdal``
turns this path off.
"""

from __future__ import annotations

import logging
import os
import warnings
from functools import lru_cache
from typing import Any

import numpy as np

from senprep_core.geo.grid import PixelWindow

logger = logging.getLogger(__name__)

ENV_DECODER = "SENPREP_JP2_DECODER"
MIN_OPENJPEG = (2, 3, 0)  # sub-tile decoding


@lru_cache(maxsize=1)
def _glymur() -> Any | None:
    """The glymur module when it has an OpenJPEG with sub-tile decoding, else None (logged once)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # glymur warns at import when it finds no library
            import glymur
    except ImportError:
        logger.info("glymur is not installed: JPEG 2000 windows are decoded by GDAL (whole tiles)")
        return None
    version = getattr(glymur.version, "openjpeg_version_tuple", None) or (0, 0, 0)
    if tuple(version) < MIN_OPENJPEG:
        logger.info(
            "no OpenJPEG >= 2.3 library for glymur (found %s): JPEG 2000 windows are decoded by GDAL "
            "(install libopenjp2-7 or conda's openjpeg for ROI-sized decoding)",
            ".".join(map(str, version)) if any(version) else "none",
        )
        return None
    return glymur


def area_decoding_available() -> bool:
    """True when local JPEG 2000 windows can be decoded by area (glymur + OpenJPEG >= 2.3, not disabled)."""
    if os.environ.get(ENV_DECODER, "auto").strip().lower() == "gdal":
        return False
    return _glymur() is not None


class Jp2AreaReader:
    """One local single-component JP2 file, read by pixel window with OpenJPEG's area decoding.

    The file's boxes and main header are parsed once; every :meth:`read` decodes with its own codec,
    so two threads may read one reader (they never do: each band is its own file).
    """

    def __init__(self, path: str, jp2: Any) -> None:
        self.path = path
        self._jp2 = jp2
        self.height, self.width = int(jp2.shape[0]), int(jp2.shape[1])

    def read(self, window: PixelWindow) -> np.ndarray:
        """The (1, h, w) pixels of ``window``, which must lie inside the file."""
        r0, c0 = window.row_off, window.col_off
        if r0 < 0 or c0 < 0 or window.row_stop > self.height or window.col_stop > self.width:
            raise ValueError(f"window {window} reaches outside {self.path} ({self.height} x {self.width})")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = self._jp2[r0 : window.row_stop, c0 : window.col_stop]
        return np.asarray(data)[None]


def open_area_reader(gdal_path: str) -> Jp2AreaReader | None:
    """A :class:`Jp2AreaReader` for a local single-component ``.jp2`` file, else None (GDAL reads it)."""
    glymur = _glymur() if area_decoding_available() else None
    if glymur is None or gdal_path.startswith("/vsi") or not gdal_path.lower().endswith(".jp2"):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            jp2 = glymur.Jp2k(gdal_path)
            shape = jp2.shape
    except Exception as exc:  # any parse problem: GDAL reads the file and reports what is wrong
        logger.debug("OpenJPEG area decoding not used for %s: %s", gdal_path, exc)
        return None
    if len(shape) != 2:  # several components (MSK_CLASSI): GDAL
        return None
    return Jp2AreaReader(gdal_path, jp2)
