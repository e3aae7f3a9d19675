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

import contextlib
import ctypes
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


#: OpenJPEG's read buffer. Its default (1 MB) is refilled at every jump between the tile-parts of a
#: 100 MB band file, which costs ~12 % of the decoding CPU of an ROI; 64 KB reads little beyond what is used.
STREAM_BUFFER_BYTES = 1 << 16


def _file_stream(opj2: Any, path: str) -> Any:
    """An OpenJPEG read stream on ``path`` with a :data:`STREAM_BUFFER_BYTES` buffer."""
    create = opj2.OPENJP2.opj_stream_create_file_stream
    create.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int32]
    create.restype = opj2.STREAM_TYPE_P
    stream = create(os.fsencode(path), STREAM_BUFFER_BYTES, 1)
    if not stream:
        raise OSError(f"OpenJPEG cannot open {path}")
    return stream


def _decode_area(opj2: Any, path: str, window: PixelWindow, dtype: np.dtype[Any]) -> np.ndarray:
    """Decode ``window`` of component 0 of a JP2 file (image origin at 0, 0) with glymur's OpenJPEG bindings."""
    with contextlib.ExitStack() as stack:
        stream = _file_stream(opj2, path)
        stack.callback(opj2.stream_destroy, stream)
        codec = opj2.create_decompress(opj2.CODEC_JP2)
        stack.callback(opj2.destroy_codec, codec)
        opj2.setup_decoder(codec, opj2.set_default_decoder_parameters())
        image = opj2.read_header(stream, codec)
        stack.callback(opj2.image_destroy, image)
        if image.contents.x0 != 0 or image.contents.y0 != 0:
            raise ValueError(f"{path}: image origin ({image.contents.x0}, {image.contents.y0}) is not 0, 0")
        opj2.set_decode_area(codec, image, window.col_off, window.row_off, window.col_stop, window.row_stop)
        opj2.decode(codec, stream, image)
        opj2.end_decompress(codec, stream)
        comp = image.contents.comps[0]
        if (comp.h, comp.w) != (window.height, window.width):
            raise ValueError(f"{path}: OpenJPEG decoded {comp.h} x {comp.w} px for {window}")
        return np.ctypeslib.as_array(comp.data, shape=(comp.h, comp.w)).astype(dtype)  # a copy: image is freed


class Jp2AreaReader:
    """One local single-component JP2 file, read by pixel window with OpenJPEG's area decoding.

    The file is checked once (boxes, main header, one component); every :meth:`read` decodes with its
    own codec and stream, so two threads may read one reader (they never do: each band is its own file).
    """

    def __init__(self, path: str, jp2: Any, opj2: Any) -> None:
        self.path = path
        self._jp2 = jp2
        self._opj2 = opj2
        self.height, self.width = int(jp2.shape[0]), int(jp2.shape[1])
        self.dtype = np.dtype(jp2.dtype)

    def read(self, window: PixelWindow) -> np.ndarray:
        """The (1, h, w) pixels of ``window``, which must lie inside the file."""
        r0, c0 = window.row_off, window.col_off
        if r0 < 0 or c0 < 0 or window.row_stop > self.height or window.col_stop > self.width:
            raise ValueError(f"window {window} reaches outside {self.path} ({self.height} x {self.width})")
        if window.height == 0 or window.width == 0:
            return np.empty((1, window.height, window.width), dtype=self.dtype)
        try:
            return _decode_area(self._opj2, self.path, window, self.dtype)[None]
        except (AttributeError, TypeError):  # glymur's low-level bindings changed: its own reader still works
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return np.asarray(self._jp2[r0 : window.row_stop, c0 : window.col_stop])[None]


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
    return Jp2AreaReader(gdal_path, jp2, glymur.lib.openjp2)
