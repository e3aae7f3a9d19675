"""Copernicus DEM GLO-30 tiles for an ROI: named, downloaded once into a shared cache folder.

Tiles are 1°x1° Cloud Optimized GeoTIFFs named after their south-west corner,
``Copernicus_DSM_COG_10_<N|S><lat:02d>_00_<E|W><lon:03d>_00_DEM`` (``10`` = 1 arc-second, i.e. GLO-30),
published on AWS open data as ``<base>/<name>/<name>.tif`` (bucket ``copernicus-dem-30m``). Heights are
EGM2008 geoid heights.

The folder :func:`fetch_dem_tiles` returns is a Copernicus tile folder as
:mod:`senprep_core.s1.dem` reads it (``sentinel1.dem: <folder>``): tiles flat in it as ``<name>.tif``.

Ocean: the open-data bucket has no tile where a 1° cell is all sea ("there one can assume height values
equal to zero", its readme), so the server answers 404. Such a tile is recorded as sea in
``tiles.json`` and a small constant 0 m tile of the same name is written under ``sea/`` — 0 m EGM2008 is
mean sea level, and the DEM reader (which needs every tile under the grid) then finds it like any other
tile and mosaics it below the real neighbours. Caveat: a few land cells whose GLO-30 tiles are not
public (e.g. parts of Armenia and Azerbaijan) also answer 404 and would wrongly read as sea level; a
warning names every tile taken as sea. Any other failure (5xx after retries, 403) raises
:class:`~senprep_core.errors.DownloadError`.
"""

from __future__ import annotations

import json
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from shapely.geometry.base import BaseGeometry

from senprep_core.atomic import atomic_path, write_json_atomic
from senprep_core.errors import DownloadError
from senprep_core.events import EventCallback, no_op
from senprep_core.fetch.cache import file_lock
from senprep_core.fetch.http import HttpClient, HttpStatusError
from senprep_core.geo.roi import ROI
from senprep_core.s1.dem import copernicus_tile_name

log = logging.getLogger(__name__)

GLO30_BASE_URL = "https://copernicus-dem-30m.s3.amazonaws.com"
"""The Copernicus DEM GLO-30 Public COGs on AWS open data (anonymous HTTPS)."""
DEFAULT_MARGIN_DEG = 0.05
"""Degrees added around the ROI before picking tiles (≈5 km; the terrain correction's grid margin is far less)."""
SEA_TILE_PIXELS = 36
"""Side of a written sea tile in pixels (100 arc-seconds: all zeros, so the size does not matter)."""
MANIFEST = "tiles.json"
PARALLEL_TILES = 4
"""Tiles downloaded at once (the HTTP client's own connection limit still applies)."""


def _as_bounds(roi: ROI | BaseGeometry | tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    if isinstance(roi, ROI):
        return roi.bounds
    if isinstance(roi, BaseGeometry):
        west, south, east, north = roi.bounds
        return (west, south, east, north)
    west, south, east, north = (float(v) for v in roi)
    return (west, south, east, north)


def glo30_tile_corners(
    roi_bounds_lonlat: tuple[float, float, float, float], margin_deg: float = DEFAULT_MARGIN_DEG
) -> list[tuple[int, int]]:
    """The (lat, lon) south-west corners of the GLO-30 tiles under a lon/lat box plus ``margin_deg``.

    Latitudes are clipped to -90..90; longitudes past ±180 wrap around the antimeridian. Sorted north to
    south, then west to east; no duplicates.
    """
    west, south, east, north = roi_bounds_lonlat
    if not all(math.isfinite(v) for v in roi_bounds_lonlat) or west > east or south > north:
        raise ValueError(f"need lon/lat bounds (west, south, east, north), got {roi_bounds_lonlat}")
    if margin_deg < 0 or not math.isfinite(margin_deg):
        raise ValueError(f"margin_deg must be >= 0, got {margin_deg}")
    south, north = max(-90.0, south - margin_deg), min(90.0, north + margin_deg)
    west, east = west - margin_deg, east + margin_deg
    lat0, lat1 = math.floor(south), max(math.floor(south) + 1, math.ceil(north))
    lon0, lon1 = math.floor(west), max(math.floor(west) + 1, math.ceil(east))
    if lon1 - lon0 >= 360:
        lon0, lon1 = -180, 180
    corners: dict[tuple[int, int], None] = {}
    for lat in range(min(lat1, 90) - 1, max(lat0, -90) - 1, -1):
        for lon in range(lon0, lon1):
            corners[(lat, (lon + 180) % 360 - 180)] = None
    return list(corners)


def glo30_tile_names(
    roi_bounds_lonlat: tuple[float, float, float, float], margin_deg: float = DEFAULT_MARGIN_DEG
) -> list[str]:
    """GLO-30 tile names (no extension) under a lon/lat box plus a margin, e.g.
    ``Copernicus_DSM_COG_10_N55_00_W005_00_DEM`` for the cell 55..56 N, 5..4 W; ``S01``/``E012`` south and east."""
    return [copernicus_tile_name(lat, lon) for lat, lon in glo30_tile_corners(roi_bounds_lonlat, margin_deg)]


def glo30_tile_url(name: str, base_url: str = GLO30_BASE_URL) -> str:
    """The URL of a tile in the AWS open-data layout ``<base>/<name>/<name>.tif``."""
    return f"{base_url.rstrip('/')}/{name}/{name}.tif"


def _is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, HttpStatusError) and exc.status == 404


def _read_manifest(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return {"tiles": {}}
    if not isinstance(data, dict) or not isinstance(data.get("tiles"), dict):
        return {"tiles": {}}
    return data


def write_sea_tile(path: Path, lat: int, lon: int, pixels: int = SEA_TILE_PIXELS) -> None:
    """A constant 0 m (EGM2008 mean sea level) float32 GeoTIFF over the 1° cell (lat, lon), one pixel wider
    on every side: real tiles reach half a pixel beyond their cell, so an exact cell would leave a gap
    next to a real neighbour (where both exist, the DEM reader uses the finer real tile)."""
    import rasterio
    from affine import Affine

    res = 1.0 / pixels
    profile = {
        "driver": "GTiff",
        "width": pixels + 2,
        "height": pixels + 2,
        "count": 1,
        "dtype": "float32",
        "crs": "EPSG:4326",
        "transform": Affine(res, 0.0, lon - res, 0.0, -res, lat + 1 + res),
        "compress": "deflate",
    }
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as ds:  # a temp name per writer
        ds.write(np.zeros((1, pixels + 2, pixels + 2), dtype=np.float32))
        ds.update_tags(senprep_sea_tile="no GLO-30 tile published for this cell (ocean): heights 0 m EGM2008")


def fetch_dem_tiles(
    roi: ROI | BaseGeometry | tuple[float, float, float, float],
    cache_dir: Path,
    *,
    margin_deg: float = DEFAULT_MARGIN_DEG,
    base_url: str = GLO30_BASE_URL,
    client: HttpClient | None = None,
    on_event: EventCallback = no_op,
) -> Path:
    """Download the GLO-30 tiles under ``roi`` (lon/lat ROI, geometry or bounds) plus ``margin_deg`` into
    ``<cache_dir>/dem/copernicus-glo30`` and return that folder (give it to ``sentinel1.dem``).

    A tile already in the folder (or already known as sea) is not requested again, so a second call for
    the same area transfers nothing. A 404 means a sea cell: recorded and written as a 0 m tile (see the
    module docstring). ``client`` defaults to an anonymous client with 4 connections reporting ``BytesProgress``
    to ``on_event``. Raises :class:`~senprep_core.errors.DownloadError` for other failures.
    """
    bounds = _as_bounds(roi)
    folder = Path(cache_dir) / "dem" / "copernicus-glo30"
    folder.mkdir(parents=True, exist_ok=True)
    with file_lock(folder / "tiles.json.lock"):  # one fetcher per folder: workers share the cache
        return _fetch_into(folder, bounds, margin_deg, base_url, client, on_event)


def _fetch_into(
    folder: Path,
    bounds: tuple[float, float, float, float],
    margin_deg: float,
    base_url: str,
    client: HttpClient | None,
    on_event: EventCallback,
) -> Path:
    manifest = _read_manifest(folder)
    known: dict[str, Any] = manifest["tiles"]
    http = client if client is not None else HttpClient(name="dem", max_connections=PARALLEL_TILES, on_event=on_event)
    todo: list[tuple[int, int, str]] = []
    for lat, lon in glo30_tile_corners(bounds, margin_deg):
        name = copernicus_tile_name(lat, lon)
        status = known.get(name, {}).get("status")
        if (folder / f"{name}.tif").is_file():
            continue
        if status == "sea":  # known sea cell: no request; rewrite its 0 m tile if it was removed
            if not (folder / "sea" / f"{name}.tif").is_file():
                write_sea_tile(folder / "sea" / f"{name}.tif", lat, lon)
            continue
        todo.append((lat, lon, name))

    def get(item: tuple[int, int, str]) -> tuple[str, int | None]:
        lat, lon, name = item
        try:
            result = http.download(glo30_tile_url(name, base_url), folder / f"{name}.tif", check_zip=False, label=name)
        except DownloadError as exc:
            if not _is_not_found(exc):
                raise
            write_sea_tile(folder / "sea" / f"{name}.tif", lat, lon)
            return name, None
        return name, result.size

    try:
        with ThreadPoolExecutor(max_workers=max(1, min(PARALLEL_TILES, len(todo)))) as pool:
            results = list(pool.map(get, todo))
    finally:
        if client is None:
            http.close()
    sea = [name for name, size in results if size is None]
    for name, size in results:
        url = glo30_tile_url(name, base_url)
        if size is None:
            known[name] = {"status": "sea", "url": url, "checked": _now()}
        else:
            known[name] = {"status": "downloaded", "url": url, "size": size, "fetched": _now()}
    if results:
        manifest["source"] = base_url
        write_json_atomic(folder / MANIFEST, manifest)
    if sea:
        log.warning(
            "no Copernicus GLO-30 tile exists for %s: taken as sea (0 m above EGM2008 mean sea level); if a cell "
            "is land (GLO-30 Public leaves out a few countries), give sentinel1.dem another DEM there",
            ", ".join(sea),
        )
    return folder


def sea_tiles(folder: Path) -> list[str]:
    """Names of the tiles :func:`fetch_dem_tiles` recorded as sea in a DEM folder."""
    return sorted(name for name, entry in _read_manifest(folder)["tiles"].items() if entry.get("status") == "sea")


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = [
    "GLO30_BASE_URL",
    "fetch_dem_tiles",
    "glo30_tile_corners",
    "glo30_tile_names",
    "glo30_tile_url",
    "sea_tiles",
    "write_sea_tile",
]
