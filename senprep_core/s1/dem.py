"""DEM heights for the S1 terrain correction: WGS84 ellipsoidal heights on the target grid plus a margin.

Sources (config key ``sentinel1.dem``):

- any GDAL raster (GeoTIFF, VRT, ``/vsi...`` path): read once over the needed area and reprojected;
- a folder of Copernicus DEM tiles (GLO-30 ``Copernicus_DSM_COG_10_N41_00_E012_00_DEM.tif``, or GLO-90
  ``..._30_...``), flat in the folder or in per-tile subfolders ``<tile>/DEM/<tile>_DEM.tif`` (DGED layout):
  only the tiles intersecting the grid are opened and mosaicked before reprojection;
- ``flat:<metres>`` or a number: a constant height, ``None``: flat 0 (terrain is ignored, said loudly).

Vertical reference (``sentinel1.geoid``): ``auto`` reads it from the DEM: a vertical CRS EGM96
(EPSG:5773, e.g. EPSG:9707) or EGM2008 (EPSG:3855), a 3-D ellipsoidal CRS (e.g. EPSG:4979) means heights
are already ellipsoidal; a Copernicus tile folder or a file named like a Copernicus tile is EGM2008; a
flat height is ellipsoidal. A DEM file without a vertical CRS is assumed to hold EGM96 heights (SRTM,
NASADEM and ALOS AW3D30 do; almost no DEM holds ellipsoidal heights) and a warning says so.
``egm96`` / ``egm2008`` / ``none`` override this; with a flat source, ``egm96`` / ``egm2008`` make the
constant a geoid height (e.g. ``flat:0`` + ``egm96`` is mean sea level).
"""

from __future__ import annotations

import logging
import math
import re
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyproj
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.warp import reproject, transform_bounds
from rasterio.windows import Window

from senprep_core.errors import ConfigError, DEMError
from senprep_core.geo.grid import TargetGrid
from senprep_core.s1.geoid import undulation_on_grid

log = logging.getLogger(__name__)

GEOID_CHOICES = ("auto", "egm96", "egm2008", "none")
RESAMPLINGS = {
    "nearest": Resampling.nearest,
    "bilinear": Resampling.bilinear,
    "bicubic": Resampling.cubic,
    "cubic": Resampling.cubic,
}
MAX_NODATA_FRACTION = 0.01
"""Above this fraction of DEM voids on the grid (plus margin) :func:`load_dem` refuses; below, it fills them."""
COPERNICUS_TILE = re.compile(r"^Copernicus_DSM_(?:COG_)?(\d{2})_([NS])(\d{2})_00_([EW])(\d{3})_00_DEM\.tif$", re.I)
_PAD_PX = 2  # DEM pixels read beyond the needed area so bilinear/cubic kernels are complete
_TILE_PAD_DEG = 0.002  # neighbouring tiles within this distance are used when present (half-pixel tile edges)


@dataclass(frozen=True)
class DemSource:
    """Where DEM heights come from: ``kind`` is ``"file"``, ``"copernicus"`` (tile folder) or ``"flat"``."""

    kind: str
    path: str | None = None
    height: float = 0.0

    @property
    def label(self) -> str:
        """The source as written in sidecars: the path, or ``flat:<height>``."""
        return f"flat:{self.height:g}" if self.kind == "flat" else str(self.path)


@dataclass(frozen=True)
class DemOnGrid:
    """WGS84 ellipsoidal heights (float32 metres) on ``grid`` (the target grid buffered by the margin)."""

    heights: np.ndarray
    grid: TargetGrid
    geoid: str  # e.g. "EGM96 (egm96_15.gtx)" or "none"
    source: str
    flat: bool


def parse_dem_source(value: str | float | Path | None, key: str = "sentinel1.dem") -> DemSource:
    """The :class:`DemSource` of a config value: a raster path, a Copernicus tile folder, ``flat:<m>``, a number, None.

    Raises :class:`ConfigError` (naming ``key``) for a path that does not exist or an unreadable height.
    """
    if value is None:
        return DemSource("flat", None, 0.0)
    if isinstance(value, bool):
        raise ConfigError(key, value, "give a DEM path, a Copernicus DEM tile folder, flat:<height m> or a number")
    if isinstance(value, (int, float)):
        return DemSource("flat", None, _finite_height(float(value), key, value))
    text = str(value).strip()
    if not text:
        raise ConfigError(key, value, "give a DEM path, a Copernicus DEM tile folder, flat:<height m> or leave it out")
    if text.lower() == "flat" or text.lower().startswith("flat:"):
        number = text.partition(":")[2].strip() or "0"
        try:
            height = float(number)
        except ValueError:
            raise ConfigError(key, value, "write a flat DEM as flat:<height in metres>, e.g. flat:120") from None
        return DemSource("flat", None, _finite_height(height, key, value))
    if text.startswith("/vsi"):
        return DemSource("file", text)
    path = Path(text).expanduser()
    if path.is_dir():
        return DemSource("copernicus", str(path))
    if path.is_file():
        return DemSource("file", str(path))
    raise ConfigError(
        key,
        value,
        "this path does not exist; give a DEM raster (GeoTIFF/VRT), a folder of Copernicus DEM tiles "
        "(Copernicus_DSM_COG_10_N.._00_E..._00_DEM.tif), or flat:<height m>",
    )


def _finite_height(height: float, key: str, value: object) -> float:
    if not math.isfinite(height) or abs(height) > 10_000:
        raise ConfigError(key, value, "give a flat height in metres between -10000 and 10000")
    return height


def copernicus_tile_name(lat: int, lon: int, code: str = "10", cog: bool = True) -> str:
    """The file stem of the Copernicus DEM tile whose south-west corner is (lat, lon), e.g. ``N41``/``E012``."""
    ns = f"N{lat:02d}" if lat >= 0 else f"S{-lat:02d}"
    ew = f"E{lon:03d}" if lon >= 0 else f"W{-lon:03d}"
    return f"Copernicus_DSM_{'COG_' if cog else ''}{code}_{ns}_00_{ew}_00_DEM"


def tiles_covering(lonlat: tuple[float, float, float, float]) -> list[tuple[int, int]]:
    """The (lat, lon) south-west corners of the 1°x1° tiles intersecting a lon/lat box (west, south, east, north).

    The box may run past 180° (``east`` > 180, across the antimeridian): its tiles there are named by
    their longitude in [-180, 180) (W180, W179...)."""
    west, south, east, north = lonlat
    lats = range(math.floor(south), max(math.floor(south) + 1, math.ceil(north)))
    lons = range(math.floor(west), max(math.floor(west) + 1, math.ceil(east)))
    return [(lat, (lon + 180) % 360 - 180) for lat in lats for lon in lons]


def grid_lonlat_bounds(grid: TargetGrid) -> tuple[float, float, float, float]:
    """The grid's lon/lat box (west, south, east, north); across the antimeridian ``east`` runs on past 180."""
    west, south, east, north = transform_bounds(grid.crs, "EPSG:4326", *grid.bounds.as_tuple(), densify_pts=21)
    if west > east:  # rasterio's antimeridian convention (RFC 7946): made continuous here
        east += 360.0
    return (west, south, east, north)


def _tile_key(name: str) -> tuple[int, int] | None:
    match = COPERNICUS_TILE.match(name)
    if match is None:
        return None
    lat = int(match.group(3)) * (1 if match.group(2).upper() == "N" else -1)
    lon = int(match.group(5)) * (1 if match.group(4).upper() == "E" else -1)
    return lat, lon


class _TileFinder:
    """Finds Copernicus tiles in a folder: the usual names first, a recursive scan only when needed."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._index: dict[tuple[int, int], Path] | None = None

    def find(self, lat: int, lon: int) -> Path | None:
        for code in ("10", "30"):
            for cog in (True, False):
                stem = copernicus_tile_name(lat, lon, code, cog)
                tile = stem.removesuffix("_DEM")
                for candidate in (
                    self.folder / f"{stem}.tif",
                    self.folder / stem / "DEM" / f"{stem}.tif",
                    self.folder / tile / "DEM" / f"{stem}.tif",
                ):
                    if candidate.is_file():
                        return candidate
        return self.index().get((lat, lon))

    def index(self) -> dict[tuple[int, int], Path]:
        if self._index is None:
            found: dict[tuple[int, int], Path] = {}
            for path in sorted(self.folder.rglob("*.[tT][iI][fF]")):
                key = _tile_key(path.name)
                if key is not None:
                    found.setdefault(key, path)
            self._index = found
        return self._index


def _split_crs(crs: CRS) -> tuple[CRS, str | None]:
    """The horizontal CRS of a DEM and its vertical reference: egm96, egm2008, ellipsoidal, other:<name> or None."""
    full = pyproj.CRS.from_wkt(crs.to_wkt())
    if full.is_compound:
        horizontal, vertical = full.sub_crs_list[0], full.sub_crs_list[1]
        epsg = vertical.to_epsg()
        datum = (vertical.datum.name if vertical.datum is not None else vertical.name) or ""
        if epsg == 5773 or "EGM96" in datum.upper():
            ref = "egm96"
        elif epsg == 3855 or "EGM2008" in datum.upper():
            ref = "egm2008"
        else:
            ref = f"other:{vertical.name}"
        return CRS.from_wkt(horizontal.to_wkt()), ref
    if len(full.axis_info) == 3 and (full.is_geographic or full.is_projected):
        return CRS.from_wkt(full.to_2d().to_wkt()), "ellipsoidal"
    return crs, None


def resolve_geoid(geoid: str, source: DemSource, vertical: str | None) -> str:
    """The geoid model to add ("egm96", "egm2008") or "none", from the option and the DEM's vertical reference."""
    choice = str(geoid).strip().lower()
    if choice not in GEOID_CHOICES:
        raise ConfigError("sentinel1.geoid", geoid, f"choose one of {', '.join(GEOID_CHOICES)}")
    declared = {"egm96": "egm96", "egm2008": "egm2008", "ellipsoidal": "none"}.get(vertical or "")
    if choice != "auto":
        if declared is not None and declared != choice:
            log.warning("DEM %s declares %s heights but sentinel1.geoid is %s: using %s as configured",
                        source.label, vertical, choice, choice)  # fmt: skip
        return choice
    if source.kind == "flat":
        return "none"
    if source.kind == "copernicus":
        return "egm2008"
    if declared is not None:
        return declared
    if vertical is not None:
        raise DEMError(
            f"DEM {source.label} holds heights in {vertical.removeprefix('other:')}, which senprep cannot convert "
            "to WGS84 ellipsoidal heights; fix: give a DEM in EGM96/EGM2008 or ellipsoidal heights, or set "
            "sentinel1.geoid to egm96, egm2008 or none to treat its heights as such"
        )
    if COPERNICUS_TILE.match(Path(str(source.path)).name):
        log.info("DEM %s has no vertical CRS; its Copernicus name says EGM2008 heights", source.label)
        return "egm2008"
    log.warning(
        "DEM %s has no vertical CRS: assuming EGM96 geoid heights (as SRTM/NASADEM/AW3D30); set sentinel1.geoid "
        "to egm2008 (e.g. Copernicus DEM mosaics) or none (ellipsoidal heights) if that is wrong",
        source.label,
    )
    return "egm96"


def _fmt(bounds: tuple[float, float, float, float]) -> str:
    return "(" + ", ".join(f"{v:.5f}" for v in bounds) + ")"


def _tile_hint(grid: TargetGrid) -> str:
    lonlat = grid_lonlat_bounds(grid)
    names = [copernicus_tile_name(lat, lon) for lat, lon in tiles_covering(lonlat)]
    return ", ".join(names)


def _read_file(source: DemSource, grid: TargetGrid) -> tuple[np.ndarray, Affine, CRS, str | None]:
    """Heights (float32, NaN = void) over the area of ``grid`` from a DEM raster, with transform and CRS."""
    try:
        with rasterio.open(str(source.path)) as ds:
            if ds.crs is None:
                raise DEMError(
                    f"DEM {source.label} has no CRS; fix: give a georeferenced DEM (e.g. GeoTIFF in EPSG:4326)"
                )
            crs, vertical = _split_crs(ds.crs)
            need = transform_bounds(grid.crs, crs, *grid.bounds.as_tuple(), densify_pts=21)
            if crs.is_geographic and need[0] > need[2]:  # across the antimeridian: longitudes past 180
                need = _shifted_into((need[0], need[1], need[2] + 360.0, need[3]), tuple(ds.bounds))
            have = tuple(ds.bounds)
            tol = 1e-3 * min(abs(ds.res[0]), abs(ds.res[1]))
            if crs.is_geographic and need[2] > have[2] + tol and have[2] - have[0] >= 360.0 - tol:
                return (*_read_around(ds, need), crs, vertical)  # a global DEM, the grid across its edge at ±180
            if need[0] < have[0] - tol or need[1] < have[1] - tol or need[2] > have[2] + tol or need[3] > have[3] + tol:
                raise DEMError(
                    f"DEM {source.label} covers {_fmt(have)} (left, bottom, right, top in {crs.to_string()}) but the "
                    f"grid plus its margin needs {_fmt(need)}; fix: use a DEM covering that area, or a folder of "
                    f"Copernicus GLO-30 tiles {_tile_hint(grid)}"
                )
            win = ds.window(*need)
            col0 = max(0, math.floor(win.col_off) - _PAD_PX)
            row0 = max(0, math.floor(win.row_off) - _PAD_PX)
            col1 = min(ds.width, math.ceil(win.col_off + win.width) + _PAD_PX)
            row1 = min(ds.height, math.ceil(win.row_off + win.height) + _PAD_PX)
            window = Window(col0, row0, max(1, col1 - col0), max(1, row1 - row0))
            data = ds.read(1, window=window, masked=True)
            values = np.ma.filled(data.astype(np.float32), np.nan)
            scale, offset = ds.scales[0], ds.offsets[0]
            if scale not in (None, 1.0) or offset not in (None, 0.0):
                values = values * np.float32(scale or 1.0) + np.float32(offset or 0.0)
            return values, ds.transform @ Affine.translation(col0, row0), crs, vertical
    except RasterioError as exc:
        raise DEMError(f"cannot read DEM {source.label}: {exc}; fix: give a readable GDAL raster") from exc


def _shifted_into(
    need: tuple[float, float, float, float], have: tuple[float, float, float, float]
) -> tuple[float, float, float, float]:
    """A lon/lat box moved by whole turns so its middle lies within 180° of the raster's middle (a DEM
    stored with longitudes past 180, or one west of it, then still matches a grid across the antimeridian)."""
    k = round(((have[0] + have[2]) / 2.0 - (need[0] + need[2]) / 2.0) / 360.0)
    return need if k == 0 else (need[0] + 360.0 * k, need[1], need[2] + 360.0 * k, need[3])


def _read_around(ds: rasterio.io.DatasetReader, need: tuple[float, float, float, float]) -> tuple[np.ndarray, Affine]:
    """From a global lon/lat raster, the box ``need`` whose east part runs past its east edge (±180): the
    columns up to the edge, then those from its west edge, side by side (longitudes continuing past 180)."""
    west_edge, east_edge = ds.bounds[0], ds.bounds[2]
    win = ds.window(need[0], need[1], east_edge, need[3])
    row0 = max(0, math.floor(win.row_off) - _PAD_PX)
    row1 = min(ds.height, math.ceil(win.row_off + win.height) + _PAD_PX)
    col0 = max(0, math.floor(win.col_off) - _PAD_PX)
    wrap_cols = min(ds.width, math.ceil((need[2] - 360.0 - west_edge) / abs(ds.res[0])) + _PAD_PX)
    pieces = [Window(col0, row0, ds.width - col0, row1 - row0), Window(0, row0, wrap_cols, row1 - row0)]
    values = np.hstack([np.ma.filled(ds.read(1, window=w, masked=True).astype(np.float32), np.nan) for w in pieces])
    scale, offset = ds.scales[0], ds.offsets[0]
    if scale not in (None, 1.0) or offset not in (None, 0.0):
        values = values * np.float32(scale or 1.0) + np.float32(offset or 0.0)
    return values, ds.transform @ Affine.translation(col0, row0)


def _read_copernicus(source: DemSource, grid: TargetGrid) -> tuple[np.ndarray, Affine, CRS, str | None]:
    """The mosaic (float32, NaN = void) of the Copernicus tiles under ``grid``, with transform and CRS."""
    folder = Path(str(source.path))
    lonlat = grid_lonlat_bounds(grid)  # across the antimeridian: east past 180, the tiles there moved by 360
    padded = (
        lonlat[0] - _TILE_PAD_DEG,
        lonlat[1] - _TILE_PAD_DEG,
        lonlat[2] + _TILE_PAD_DEG,
        lonlat[3] + _TILE_PAD_DEG,
    )
    finder = _TileFinder(folder)
    required = tiles_covering(lonlat)
    found = {key: finder.find(*key) for key in dict.fromkeys(required + tiles_covering(padded))}
    missing = [key for key in required if found[key] is None]
    if missing:
        names = ", ".join(copernicus_tile_name(lat, lon) + ".tif" for lat, lon in missing)
        empty = "" if finder.index() else " (the folder holds no Copernicus_DSM_*_DEM.tif tile at all)"
        raise DEMError(
            f"the Copernicus DEM folder {folder}{empty} lacks the tiles the grid plus its margin needs "
            f"(lon/lat {_fmt(lonlat)}): {names}; fix: download them into the folder (flat or in <tile>/DEM/ "
            "subfolders), or give a single DEM raster covering the area"
        )
    paths = [p for p in found.values() if p is not None]
    try:
        with ExitStack() as stack:
            datasets = [stack.enter_context(rasterio.open(p)) for p in paths]
            datasets.sort(key=lambda d: abs(d.res[0]) * abs(d.res[1]))  # finest first: its lattice is kept
            ref = datasets[0]
            if ref.crs is None:
                raise DEMError(f"Copernicus DEM tile {ref.name} has no CRS; fix: re-download it")
            crs, vertical = _split_crs(ref.crs)
            transform, shape = _mosaic_lattice(ref.transform, lonlat)
            mosaic = np.full(shape, np.nan, dtype=np.float32)
            for ds in datasets:
                part = np.full(shape, np.nan, dtype=np.float32)
                turns = round(((lonlat[0] + lonlat[2]) / 2.0 - (ds.bounds[0] + ds.bounds[2]) / 2.0) / 360.0)
                # nearest on the tile's own lattice is an exact copy; tiles of coarser bands are resampled
                if turns == 0:
                    reproject(rasterio.band(ds, 1), part, dst_transform=transform, dst_crs=crs, dst_nodata=np.nan,
                              resampling=Resampling.nearest)  # fmt: skip
                else:  # a tile west of the antimeridian, placed east of it (longitudes past 180)
                    tile = np.ma.filled(ds.read(1, masked=True).astype(np.float32), np.nan)
                    moved = Affine.translation(360.0 * turns, 0.0) @ ds.transform
                    reproject(tile, part, src_transform=moved, src_crs=crs, src_nodata=np.nan, dst_transform=transform,
                              dst_crs=crs, dst_nodata=np.nan, resampling=Resampling.nearest)  # fmt: skip
                np.copyto(mosaic, part, where=np.isnan(mosaic))
            return mosaic, transform, crs, vertical
    except RasterioError as exc:
        raise DEMError(f"cannot read the Copernicus DEM tiles in {folder}: {exc}; fix: re-download them") from exc


def _mosaic_lattice(ref: Affine, lonlat: tuple[float, float, float, float]) -> tuple[Affine, tuple[int, int]]:
    """Transform and shape of a mosaic on ``ref``'s pixel lattice covering ``lonlat`` plus a few pixels."""
    resx, resy = abs(ref.a), abs(ref.e)
    col0 = math.floor((lonlat[0] - ref.c) / resx) - _PAD_PX
    col1 = math.ceil((lonlat[2] - ref.c) / resx) + _PAD_PX
    row0 = math.floor((ref.f - lonlat[3]) / resy) - _PAD_PX
    row1 = math.ceil((ref.f - lonlat[1]) / resy) + _PAD_PX
    transform = Affine(resx, 0.0, ref.c + col0 * resx, 0.0, -resy, ref.f - row0 * resy)
    return transform, (row1 - row0, col1 - col0)


def _reproject(values: np.ndarray, transform: Affine, crs: CRS, grid: TargetGrid, resampling: Resampling) -> np.ndarray:
    out = np.full(grid.shape, np.nan, dtype=np.float32)
    reproject(
        source=values,
        destination=out,
        src_transform=transform,
        src_crs=crs,
        src_nodata=np.nan,
        dst_transform=grid.transform,
        dst_crs=grid.crs,
        dst_nodata=np.nan,
        resampling=resampling,
    )
    return out


def fill_voids(heights: np.ndarray, label: str, max_fraction: float = MAX_NODATA_FRACTION) -> np.ndarray:
    """``heights`` with NaN voids filled from the nearest valid pixel; DEMError above ``max_fraction`` voids."""
    voids = ~np.isfinite(heights)
    count = int(voids.sum())
    if count == 0:
        return heights
    fraction = count / voids.size
    if fraction > max_fraction:
        raise DEMError(
            f"DEM {label} has no height (nodata) for {fraction * 100:.3f} % of the grid plus margin "
            f"({count} of {voids.size} pixels), more than the {max_fraction * 100:g} % senprep fills; fix: fill "
            "its voids (e.g. gdal_fillnodata.py) or use a void-free DEM such as Copernicus GLO-30"
        )
    from scipy.ndimage import distance_transform_edt

    nearest = distance_transform_edt(voids, return_distances=False, return_indices=True)
    log.warning("DEM %s: filled %d void pixels (%.3f %% of the grid) from their nearest neighbours",
                label, count, fraction * 100)  # fmt: skip
    return heights[tuple(nearest)]


def load_dem(
    source: DemSource,
    grid: TargetGrid,
    margin_px: int = 8,
    geoid: str = "auto",
    resampling: str = "bilinear",
) -> DemOnGrid:
    """WGS84 ellipsoidal heights of ``source`` on ``grid.buffered(margin_px)``.

    The DEM is reprojected once with rasterio (``resampling``), voids up to 1 % are filled from the
    nearest pixel, and the geoid undulation is added (see :func:`resolve_geoid`). Raises
    :class:`DEMError` (no coverage, missing tiles, too many voids, unreadable DEM),
    :class:`~senprep_core.errors.GeoidError` (geoid grid missing) or :class:`ConfigError` (bad option).
    """
    if margin_px < 0:
        raise ValueError(f"margin_px must be >= 0, got {margin_px}")
    method = RESAMPLINGS.get(str(resampling).lower())
    if method is None:
        raise ConfigError("sentinel1.resampling", resampling, f"choose one of {', '.join(RESAMPLINGS)}")
    out_grid = grid.buffered(margin_px)
    if source.kind == "flat":
        log.warning(
            "no DEM: terrain correction onto a flat surface at %g m (terrain is IGNORED: geolocation errors "
            "grow with the real relief); set sentinel1.dem to a DEM file or a Copernicus GLO-30 folder",
            source.height,
        )
        heights = np.full(out_grid.shape, source.height, dtype=np.float64)
        vertical: str | None = None
    else:
        reader = _read_copernicus if source.kind == "copernicus" else _read_file
        values, transform, crs, vertical = reader(source, out_grid)
        heights = fill_voids(_reproject(values, transform, crs, out_grid, method), source.label).astype(np.float64)
    model = resolve_geoid(geoid, source, vertical)
    label = "none"
    if model != "none":
        undulation, label = undulation_on_grid(out_grid, model)
        heights = heights + undulation
    result = DemOnGrid(heights.astype(np.float32), out_grid, label, source.label, source.kind == "flat")
    if result.heights.size:
        log.info("DEM %s on %dx%d grid (+%d px margin): ellipsoidal heights %.1f..%.1f m, geoid %s",
                 source.label, grid.width, grid.height, margin_px, float(result.heights.min()),
                 float(result.heights.max()), label)  # fmt: skip
    return result
