"""Read the window of a Sentinel-2 product that covers a target grid, resampled onto it.

Only the pixels of each file covering the grid (plus a small margin for interpolation) are read.
A file whose grid matches the target (same CRS and resolution, pixel-aligned) is sliced with no
warp; otherwise GDAL (``rasterio.warp.reproject``) resamples it. Reflectance is converted from DN
before resampling, with NaN as no data, so no-data pixels never bleed into valid ones.
"""

from __future__ import annotations

import logging
import math
import struct
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.warp import reproject, transform_bounds

from senprep_core.bands import CLASSI_LAYERS, S2_BANDS, SCL_CLASSES, BandKind, canonical_s2_band
from senprep_core.errors import ConfigError, CorruptProductError, MetadataError, ProductNotFoundError
from senprep_core.fetch.redact import scrub
from senprep_core.geo.grid import PixelWindow, TargetGrid
from senprep_core.productfs import ProductLocation
from senprep_core.remotefs import RemoteLocation
from senprep_core.resample import AxisMap, bilinear, nearest
from senprep_core.s2.angles import NodePositions, TileAngles, interpolate_nodes, node_positions, parse_tile_angles
from senprep_core.s2.jp2 import Jp2AreaReader, open_area_reader
from senprep_core.s2.masks import CLOUD_CLASSES, gml_cloud_masks, scl_mask
from senprep_core.s2.metadata import S2Metadata, inferred_offset
from senprep_core.s2.radiometry import dn_to_auxiliary, dn_to_reflectance
from senprep_core.threads import threads_for

try:  # GDAL errors raised by rasterio during reads are not all RasterioError subclasses
    from rasterio._err import CPLE_BaseError
except ImportError:  # pragma: no cover
    CPLE_BaseError = RasterioError  # type: ignore[misc,assignment]

logger = logging.getLogger(__name__)

MARGIN = 2  # source pixels read around the grid for interpolation
READ_THREADS = 2  # band files read at once
_RESAMPLING = {"bilinear": Resampling.bilinear, "cubic": Resampling.cubic, "nearest": Resampling.nearest}
_EPS = 1e-6
#: A reduced read (preview) averages at least this many pixels of the level it reads along each axis.
PREVIEW_AVERAGED = 2


@dataclass(frozen=True)
class S2Window:
    """Bands of one product on a target grid.

    ``data`` is float32 (n, h, w) with NaN for no data; masks are 0/1 floats (NaN where no data).
    ``valid`` is True where the product holds data; ``cloud`` is True on cloud pixels (SCL 8/9/10 for
    L2A, opaque or cirrus from MSK_CLASSI / MSK_CLOUDS for L1C), None when the product has no cloud layer.
    """

    grid: TargetGrid
    bands: tuple[str, ...]
    data: np.ndarray
    valid: np.ndarray
    cloud: np.ndarray | None


# ---------------------------------------------------------------- window reads


def _aligned_offsets(transform: Affine, grid: TargetGrid) -> tuple[int, int] | None:
    """(row, col) of the grid's corner in the file's pixels when both lattices coincide, else None."""
    if abs(transform.b) > _EPS or abs(transform.d) > _EPS or abs(transform.a - grid.resolution) > _EPS:
        return None
    if abs(-transform.e - grid.resolution) > _EPS:
        return None
    col = (grid.left - transform.c) / grid.resolution
    row = (transform.f - grid.top) / grid.resolution
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return None
    return round(row), round(col)


def _window_transform(t: Affine, window: PixelWindow) -> Affine:
    """The transform of a pixel window of a raster with transform ``t``."""
    x = t.c + window.col_off * t.a + window.row_off * t.b
    y = t.f + window.col_off * t.d + window.row_off * t.e
    return Affine(t.a, t.b, x, t.d, t.e, y)


def _separable(
    src: np.ndarray, transform: Affine, window: PixelWindow, grid: TargetGrid, resampling: Resampling, fill: float
) -> np.ndarray | None:
    """Bilinear / nearest upsampling between north-up grids of one CRS without the warper, else None."""
    t = _window_transform(transform, window)
    if abs(t.b) > _EPS or abs(t.d) > _EPS or t.a <= 0 or t.e >= 0:
        return None
    if resampling not in (Resampling.bilinear, Resampling.nearest) or min(t.a, -t.e) < grid.resolution - _EPS:
        return None  # downsampling: GDAL widens the kernel, keep the warper
    cols = AxisMap.build(grid.width, grid.left, grid.resolution, t.c, t.a, window.width)
    rows = AxisMap.build(grid.height, -grid.top, grid.resolution, -t.f, -t.e, window.height)
    if resampling is Resampling.nearest:
        return nearest(src, rows, cols, fill)
    return bilinear(src, rows, cols)


def _source_window(ds: rasterio.DatasetReader, grid: TargetGrid, same_crs: bool) -> PixelWindow | None:
    """The file pixels covering the grid plus the interpolation margin, clipped to the file."""
    bounds = grid.bounds.as_tuple()
    if not same_crs:
        bounds = transform_bounds(grid.crs, ds.crs, *bounds, densify_pts=21)
    left, bottom, right, top = bounds
    inv = ~ds.transform
    corners = [inv @ (x, y) for x in (left, right) for y in (bottom, top)]
    cols, rows = [c for c, _ in corners], [r for _, r in corners]
    src_res = min(abs(ds.transform.a), abs(ds.transform.e))
    margin = MARGIN * max(1, math.ceil(grid.resolution / src_res - _EPS))
    r0, r1 = math.floor(min(rows) + _EPS) - margin, math.ceil(max(rows) - _EPS) + margin
    c0, c1 = math.floor(min(cols) + _EPS) - margin, math.ceil(max(cols) - _EPS) + margin
    return PixelWindow(r0, c0, r1 - r0, c1 - c0).intersection(PixelWindow(0, 0, ds.height, ds.width))


def _read_raw(
    ds: rasterio.DatasetReader, gdal_path: str, indexes: Sequence[int], window: PixelWindow, files: OpenFiles | None
) -> np.ndarray:
    """The DN of ``window`` (inside the file): OpenJPEG area decoding for local JP2 files, else GDAL."""
    if list(indexes) == [1]:
        area = files.area_reader(gdal_path) if files is not None else open_area_reader(gdal_path)
        if area is not None and (area.height, area.width) == (ds.height, ds.width):
            try:
                return area.read(window)
            except Exception as exc:  # GDAL reads it instead, and reports a damaged file in its own words
                logger.debug("OpenJPEG could not decode %s of %s: %s", window, gdal_path, exc)
    return ds.read(list(indexes), window=window.to_rasterio())


def overview_level(ds: rasterio.DatasetReader, resolution: float) -> int | None:
    """The coarsest overview of ``ds`` at least :data:`PREVIEW_AVERAGED` times finer than ``resolution`` (its
    index, as rasterio's ``overview_level`` counts), or None for the full resolution.

    For a JPEG2000 file GDAL's overviews are the codestream's resolution levels, which OpenJPEG decodes without
    the finer ones; a level is a wavelet low-pass, not a block mean, so the last factor of two or more is a true
    average of the level's pixels (closer to what a run's pixels average to).
    """
    native = min(abs(ds.transform.a), abs(ds.transform.e))
    usable = [i for i, f in enumerate(ds.overviews(1)) if native * f * PREVIEW_AVERAGED <= resolution + _EPS]
    return usable[-1] if usable else None


@contextmanager
def _open_level(gdal_path: str, files: OpenFiles | None, reduce: bool, resolution: float) -> Iterator[Any]:
    """The raster (or, with ``reduce``, its coarsest overview not coarser than ``resolution``), open."""
    with files.dataset(gdal_path) if files is not None else rasterio.open(gdal_path) as ds:
        level = overview_level(ds, resolution) if reduce else None
        if level is None:
            yield ds
            return
    with files.dataset(gdal_path, level) if files is not None else rasterio.open(gdal_path, overview_level=level) as ov:
        yield ov


def read_resampled(
    gdal_path: str,
    indexes: Sequence[int],
    grid: TargetGrid,
    resampling: Resampling,
    convert: Callable[[np.ndarray], np.ndarray],
    fill: float,
    dtype: type | np.dtype,
    label: str,
    out: np.ndarray | None = None,
    files: OpenFiles | None = None,
    reduce: bool = False,
) -> np.ndarray:
    """Read ``indexes`` of one raster on ``grid``: (k, h, w) of ``dtype``, ``fill`` where no data.

    ``convert`` maps the raw DN window to values (NaN / ``fill`` for no data) before resampling.
    ``out`` (k, h, w), when given, receives the result (saves a copy of large windows). ``files`` keeps
    the raster open for the next block (its decoded tiles stay in GDAL's cache). ``reduce`` reads a
    grid coarser than the file from the file's coarsest overview (JPEG2000 resolution level, COG
    overview) not coarser than the grid, and averages it onto the grid (classes: nearest), so the
    cost follows the grid's pixels rather than its area.
    """
    if out is None:
        out = np.empty((len(indexes), grid.height, grid.width), dtype=dtype)
    try:
        with _open_level(gdal_path, files, reduce, grid.resolution) as ds:
            if reduce and resampling is not Resampling.nearest and abs(ds.transform.a) < grid.resolution - _EPS:
                resampling = Resampling.average  # a coarser grid: each pixel the mean of what it covers
            same_crs = ds.crs is not None and ds.crs.to_epsg() == grid.epsg
            offsets = _aligned_offsets(ds.transform, grid) if same_crs else None
            if offsets is not None:
                want = PixelWindow(offsets[0], offsets[1], grid.height, grid.width)
                inside = want.intersection(PixelWindow(0, 0, ds.height, ds.width))
                if inside != want:  # the grid reaches beyond the file
                    out.fill(fill)
                if inside is not None:
                    raw = _read_raw(ds, gdal_path, indexes, inside, files)
                    rows, cols = inside.shifted(-want.row_off, -want.col_off).slices()
                    out[:, rows, cols] = convert(raw)
                return out
            window = _source_window(ds, grid, same_crs)
            if window is None:
                out.fill(fill)
                return out
            raw = _read_raw(ds, gdal_path, indexes, window, files)
            src = np.ascontiguousarray(convert(raw), dtype=dtype)
            fast = _separable(src, ds.transform, window, grid, resampling, fill) if same_crs else None
            if fast is not None:
                out[...] = fast
                return out
            out.fill(fill)
            reproject(
                source=src,
                destination=out,
                src_transform=_window_transform(ds.transform, window),
                src_crs=ds.crs,
                src_nodata=fill,
                dst_transform=grid.transform,
                dst_crs=grid.crs,
                dst_nodata=fill,
                resampling=resampling,
            )
            if resampling is not Resampling.nearest and np.isnan(fill) and np.isnan(src).any():
                # interpolation fills pixels next to no-data from valid neighbours; a target pixel
                # holds data only where its nearest source pixel does
                nearest = np.full_like(out, fill)
                reproject(source=src, destination=nearest, src_transform=_window_transform(ds.transform, window),
                          src_crs=ds.crs, src_nodata=fill, dst_transform=grid.transform, dst_crs=grid.crs,
                          dst_nodata=fill, resampling=Resampling.nearest)  # fmt: skip
                out[np.isnan(nearest)] = fill
            return out
    except (RasterioError, CPLE_BaseError, OSError) as exc:
        # GDAL repeats the path, which for remote products holds signed URLs: redact, and drop the chain
        raise CorruptProductError(
            scrub(f"cannot read {label}: {exc}. The file is truncated or damaged; download the product again")
        ) from None


def jp2_truncated(stream: IO[bytes], size: int) -> bool | None:
    """True when a JP2 file's boxes (the codestream box included) run past its ``size`` bytes.

    GDAL's JPEG2000 driver returns zeros rather than an error for a truncated codestream, so the
    box lengths are checked up front. None when the last box runs "to the end of the file" (length
    0): then only the end-of-codestream marker can tell. False for a stream that is not boxed JP2.
    """
    pos = 0
    while pos + 8 <= size:
        stream.seek(pos)
        header = stream.read(16)
        if len(header) < 8:
            return True
        length, box = struct.unpack(">I4s", header[:8])
        if pos == 0 and box != b"jP  ":
            return False
        if length == 1 and len(header) == 16:
            length = struct.unpack(">Q", header[8:16])[0]
        elif length == 0:  # the last box runs to the end of the file
            return None
        if length < 8 or pos + length > size:
            return True
        pos += length
    return False


# ---------------------------------------------------------------- the product reader


class OpenFiles:
    """The rasters of one product kept open across the blocks of a work unit.

    GDAL keeps decoded blocks per open dataset, so a JPEG2000 tile shared by neighbouring blocks is
    decoded once instead of once per block. One file is never read by two threads at once (each band
    is its own file). :meth:`close` releases them.
    """

    def __init__(self) -> None:
        self._open: dict[str, Any] = {}
        self._areas: dict[str, Jp2AreaReader | None] = {}
        self._lock = threading.Lock()
        self.checked: set[str] = set()  # members whose JPEG2000 codestream was found complete
        self.tile_angles: dict[str, TileAngles] = {}  # parsed angle grids, by tile metadata member

    @contextmanager
    def dataset(self, gdal_path: str, overview: int | None = None) -> Iterator[Any]:
        """The open raster (``overview``: that overview level of it, as rasterio's ``overview_level``)."""
        key = gdal_path if overview is None else f"{gdal_path}#overview{overview}"
        with self._lock:  # opened under the lock: two threads never open one file twice
            ds = self._open.get(key)
            if ds is None:
                opts = {} if overview is None else {"overview_level": overview}
                ds = self._open[key] = rasterio.open(gdal_path, **opts)
        yield ds

    def area_reader(self, gdal_path: str) -> Jp2AreaReader | None:
        """The file's OpenJPEG area reader (parsed once), or None when GDAL reads it."""
        with self._lock:
            if gdal_path not in self._areas:
                self._areas[gdal_path] = open_area_reader(gdal_path)
            return self._areas[gdal_path]

    def close(self) -> None:
        with self._lock:
            for ds in self._open.values():
                ds.close()
            self._open.clear()
            self._areas.clear()


def _coarse_copy(files: Mapping[int, str], resolution: float, kind: BandKind) -> int | None:
    """For a reduced read (preview): the coarsest copy of a band (L2A's R20m / R60m) whose pixels are block means
    of the grid's (its resolution divides the grid's), or for classes the coarsest not coarser than the grid."""
    finer = [r for r in files if r <= resolution + _EPS]
    if kind != BandKind.CLASSES:
        finer = [r for r in finer if abs(resolution / r - round(resolution / r)) < _EPS]
    return max(finer) if finer else None


class _ProductReader:
    """Reads layers of one product on one grid, each file once."""

    def __init__(
        self,
        meta: S2Metadata,
        grid: TargetGrid,
        resampling: Resampling,
        files: OpenFiles | None = None,
        reduced: bool = False,
    ) -> None:
        if meta.location is None:
            raise ProductNotFoundError(
                f"product {meta.product_id} has no location; read it with read_s2_metadata(path)"
            )
        self.meta, self.loc, self.grid, self.resampling = meta, meta.location, grid, resampling
        self._scl: np.ndarray | None = None
        self._classi: dict[str, np.ndarray] | None = None
        self._angles: TileAngles | None = None
        self._positions: NodePositions | None = None
        self.files = files
        self.reduced = reduced  # a preview: coarse files and overviews (see read_resampled)
        self._checked: set[str] = files.checked if files is not None else set()

    def _missing(self, band: str, why: str = "") -> CorruptProductError:
        return CorruptProductError(
            f"product {self.meta.product_id} ({self.loc.path}) does not hold band {band}{why}; "
            "choose another band or re-download the complete product"
        )

    def _member(self, band: str) -> str:
        files = self.meta.band_files.get(band) or {}
        if not files:
            raise self._missing(band)
        native = S2_BANDS[band].resolution
        if self.reduced and (coarse := _coarse_copy(files, self.grid.resolution, S2_BANDS[band].kind)) is not None:
            return files[coarse]
        return files[native] if native in files else files[min(files)]

    def _read(
        self,
        member: str,
        indexes: Sequence[int],
        kind: str,
        convert: Callable[[np.ndarray], np.ndarray],
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        dtype: np.dtype[Any]
        if kind == "classes":
            resampling, fill, dtype = Resampling.nearest, 0.0, np.dtype(np.uint8)
        else:
            resampling, fill, dtype = self.resampling, np.nan, np.dtype(np.float32)
        label = scrub(f"{member} of product {self.meta.product_id} ({self.loc.path})")  # signed URLs
        # files of STAC items (RemoteLocation) are read in place, never partial downloads: not checked
        if isinstance(self.loc, ProductLocation) and member.lower().endswith(".jp2") and member not in self._checked:
            with self.loc.open_member(member) as (stream, size):
                truncated = jp2_truncated(stream, size)
            if truncated is None:  # a codestream ends with the EOC marker FFD9
                tail = self.loc.tail_bytes(member, 2)
                truncated = tail is not None and tail != b"\xff\xd9"
            if truncated:
                raise CorruptProductError(
                    f"{label} is truncated (its JPEG2000 codestream is incomplete); download the product again"
                )
            self._checked.add(member)
        return read_resampled(self.loc.gdal_path(member), indexes, self.grid, resampling, convert, fill, dtype, label,
                              out, self.files, self.reduced)  # fmt: skip

    def reflectance(self, band: str, out: np.ndarray | None = None) -> np.ndarray:
        """Reflectance of ``band`` on the grid (written into ``out`` (1, h, w) when given)."""
        offset = self.meta.offsets.get(band, inferred_offset(self.meta.processing_baseline))
        quant = self.meta.quantification_value
        convert = lambda dn: dn_to_reflectance(dn, offset, quant)  # noqa: E731
        return self._read(self._member(band), [1], "float", convert, out)[0]

    def auxiliary(self, band: str) -> np.ndarray:
        return self._read(self._member(band), [1], "float", dn_to_auxiliary)[0]

    def has_scl(self) -> bool:
        return bool(self.meta.band_files.get("SCL"))

    def scl(self) -> np.ndarray:
        if self._scl is None:
            if self.meta.level != "L2A":
                raise self._missing("SCL", " (SCL exists in L2A products only; this one is L1C)")
            self._scl = self._read(self._member("SCL"), [1], "classes", lambda a: a.astype(np.uint8))[0]
        return self._scl

    def probability(self, band: str) -> np.ndarray:
        prefix = "cldprb" if band == "cloud_probability" else "snwprb"
        member = self.meta.mask_files.get(f"{prefix}_20m") or self.meta.mask_files.get(f"{prefix}_60m")
        if member is None:
            raise self._missing(band, f" (no MSK_{prefix.upper()}_20m.jp2)")
        return self._read(member, [1], "float", lambda a: a.astype(np.float32))[0]

    def classi(self) -> dict[str, np.ndarray]:
        """opaque_clouds / cirrus_clouds (/ snow_ice_areas) as bool arrays on the grid."""
        if self._classi is None:
            member = self.meta.mask_files.get("classi")
            if member is not None:
                stack = self._read(member, [1, 2, 3], "classes", lambda a: (a > 0).astype(np.uint8))
                self._classi = {name: stack[i - 1] > 0 for name, i in CLASSI_LAYERS.items()}
            elif self.meta.baseline_number < 4.0:
                gml = self.meta.mask_files.get("clouds_gml")
                data = self.loc.read_bytes(gml) if gml is not None else None
                self._classi = gml_cloud_masks(data, self.meta.epsg, self.grid, label=f"{self.loc.path}/{gml}")
            else:
                raise self._missing("opaque_clouds", " (no MSK_CLASSI_B00.jp2)")
        return self._classi

    def tile_angles(self, band: str) -> TileAngles:
        """The angle grids of the tile metadata (parsed once per unit); ``band`` names the band in errors."""
        member = self.meta.tile_metadata
        if self._angles is None and member is not None and self.files is not None:
            self._angles = self.files.tile_angles.get(member)
        if self._angles is None:
            if member is None:
                raise self._missing(band, " (no tile metadata: the sun and viewing angles come from the "
                                          "Tile_Angles grids of MTD_TL.xml, which this product lacks)")  # fmt: skip
            label = scrub(f"{member} of product {self.meta.product_id} ({self.loc.path})")
            try:
                data = self.loc.read_bytes(member)
            except ProductNotFoundError as exc:
                raise self._missing(band, f" (its angle grids are in the tile metadata {label}, which cannot be "
                                          f"read here: {exc})") from None  # fmt: skip
            try:
                self._angles = parse_tile_angles(data, self.meta.epsg, label)
            except MetadataError as exc:
                raise self._missing(band, f" ({exc})") from None
            if self.files is not None:
                self.files.tile_angles[member] = self._angles
        return self._angles

    def angle(self, band: str) -> np.ndarray:
        """Angle band ``band`` (degrees) on the grid: the tile's 5 km grids interpolated bilinearly."""
        angles = self.tile_angles(band)
        if not angles.has(band):
            spectral = band.rsplit("_", 1)[-1]
            why = angles.problems.get(spectral, "its tile metadata has no Viewing_Incidence_Angles_Grids "
                                      + ("at all" if band.endswith("_mean") else f"for {spectral}"))  # fmt: skip
            raise self._missing(band, f" ({why})")
        if self._positions is None:
            self._positions = node_positions(angles, self.grid)
        return interpolate_nodes(angles.nodes(band), self._positions, azimuth="azimuth" in band)

    def layer(self, band: str) -> np.ndarray:
        kind = S2_BANDS[band].kind
        if kind == BandKind.ANGLE:
            return self.angle(band)
        if kind == BandKind.REFLECTANCE:
            return self.reflectance(band)
        if kind == BandKind.AUXILIARY:
            return self.auxiliary(band)
        if band == "SCL":
            scl = self.scl()
            return np.where(scl == 0, np.nan, scl).astype(np.float32)
        if band in SCL_CLASSES:
            return scl_mask(self.scl(), band).astype(np.float32)
        if band in CLASSI_LAYERS:
            layers = self.classi()
            if band not in layers:
                raise self._missing(band, " (MSK_CLASSI_B00.jp2 exists from processing baseline 04.00)")
            return layers[band].astype(np.float32)
        if kind == BandKind.PROBABILITY:
            return self.probability(band)
        raise self._missing(band)  # pragma: no cover - every S2 band kind is handled above

    def valid(self, layers: dict[str, np.ndarray]) -> np.ndarray:
        refl = [v for b, v in layers.items() if S2_BANDS[b].kind == BandKind.REFLECTANCE]
        if refl:
            return np.logical_and.reduce([np.isfinite(v) for v in refl])
        if self.meta.level == "L2A" and self.has_scl():
            return self.scl() != 0
        present = [b for b in ("B04", "B03", "B02", "B08", "B8A", "B11") if self.meta.band_files.get(b)]
        if not present:
            raise self._missing("B04", " (needed to tell where the product holds data)")
        return np.isfinite(self.reflectance(present[0]))

    def cloud(self) -> np.ndarray | None:
        if self.meta.level == "L2A" and self.has_scl():
            return np.isin(self.scl(), CLOUD_CLASSES)
        if "classi" in self.meta.mask_files or (self.meta.level == "L1C" and self.meta.baseline_number < 4.0):
            layers = self.classi()
            return layers["opaque_clouds"] | layers["cirrus_clouds"]
        return None


def read_s2_window(
    meta: S2Metadata,
    grid: TargetGrid,
    bands: Sequence[str],
    resampling: str = "bilinear",
    files: OpenFiles | None = None,
    reduced: bool = False,
) -> S2Window:
    """Read ``bands`` of a product onto ``grid``.

    Reflectance, AOT/WVP and probabilities use ``resampling`` ("bilinear" or "cubic"); SCL, its
    ``scl_*`` masks and the MSK_CLASSI / MSK_CLOUDS masks use nearest; sun and viewing angles are
    always bilinear between the nodes of the tile metadata's angle grids (:mod:`senprep_core.s2.angles`).
    Every layer but reflectance is NaN where the product holds no data. Raises
    :class:`CorruptProductError` when the product lacks a band or a file cannot be read. ``reduced`` (previews)
    reads a coarse grid from overviews and coarse copies, at a cost that follows its pixels, not its area.
    """
    if resampling not in _RESAMPLING:
        raise ConfigError("resampling", resampling, f"use one of {', '.join(_RESAMPLING)}")
    names = tuple(dict.fromkeys(canonical_s2_band(b) for b in bands))
    reader = _ProductReader(meta, grid, _RESAMPLING[resampling], files, reduced)
    for name in names:
        if meta.level not in S2_BANDS[name].levels:
            raise reader._missing(
                name, f" ({name} exists in {'/'.join(S2_BANDS[name].levels)} products; this is {meta.level})"
            )

    def env() -> AbstractContextManager[object]:  # the /vsicurl/ options, for remote (STAC item) products only
        return meta.location.gdal_env() if isinstance(meta.location, RemoteLocation) else nullcontext()

    data = np.empty((len(names), grid.height, grid.width), dtype=np.float32)
    layers: dict[str, np.ndarray] = {}

    def read_reflectance(i: int, name: str) -> None:
        with env():  # GDAL options are per thread
            layers[name] = reader.reflectance(name, out=data[i : i + 1])  # straight into the stack

    # Two bands at a time: JPEG2000 decoding of one window leaves a core idle whenever its tiles do not
    # split evenly over GDAL's threads; the other band fills it.
    reflectance = [(i, n) for i, n in enumerate(names) if S2_BANDS[n].kind == BandKind.REFLECTANCE]
    with ThreadPoolExecutor(threads_for(READ_THREADS), thread_name_prefix="senprep-s2-read") as pool:
        for future in [pool.submit(read_reflectance, i, n) for i, n in reflectance]:
            future.result()
    with env():
        for i, name in enumerate(names):
            if S2_BANDS[name].kind != BandKind.REFLECTANCE:
                data[i] = layers[name] = reader.layer(name)
        valid = reader.valid({n: layers[n] for n in names})
        cloud = reader.cloud()
    for i, name in enumerate(names):
        if S2_BANDS[name].kind != BandKind.REFLECTANCE:
            data[i][~valid] = np.nan
    logger.debug("read %s bands %s on %s", meta.product_id, names, grid)
    return S2Window(grid=grid, bands=names, data=data, valid=valid, cloud=cloud)
