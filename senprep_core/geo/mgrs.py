"""MGRS tiles, the Sentinel-2 tiling: the tile of a point and the tiles covering a region.

A tile id is the UTM zone, the 8-degree latitude band and the 100 km square (``30UVG``). The Sentinel-2
tile of a square covers the square itself plus a 9.8 km margin, so the tiles of the squares that meet a
region cover it. Like Sentinel-2's tiling, the Norway / Svalbard zone exceptions of military MGRS are not
applied. UTM's range is 80 S to 84 N: points outside it have no tile.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry

from senprep_core.errors import ConfigError
from senprep_core.geo.antimeridian import search_parts

BANDS = "CDEFGHJKLMNPQRSTUVWX"
_COLUMNS = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")
_ROWS = "ABCDEFGHJKLMNPQRSTUV"
_STEP_DEG = 0.01  # ~1 km: sampling of a region's outline and inside
_MAX_POINTS = 40_000  # larger regions are sampled more coarsely (squares are 100 km wide)


def _tile_ids(lon: np.ndarray, lat: np.ndarray) -> set[str]:
    """The tile ids of points (lon/lat arrays within UTM's range)."""
    out: set[str] = set()
    zones = (np.floor((lon + 180.0) / 6.0).astype(int) % 60) + 1
    north = lat >= 0
    for zone in np.unique(zones):
        for hemisphere in (True, False):
            pick = (zones == zone) & (north == hemisphere)
            if not pick.any():
                continue
            epsg = (32600 if hemisphere else 32700) + int(zone)
            x, y = Transformer.from_crs(4326, epsg, always_xy=True).transform(lon[pick], lat[pick])
            bands = np.floor((lat[pick] + 80.0) / 8.0).astype(int).clip(0, len(BANDS) - 1)
            cols = np.floor(np.asarray(x) / 100_000).astype(int) - 1
            rows = (np.floor(np.asarray(y) / 100_000).astype(int) + (5 if zone % 2 == 0 else 0)) % 20
            letters = _COLUMNS[(int(zone) - 1) % 3]
            for b, c, r in set(zip(bands.tolist(), cols.tolist(), rows.tolist(), strict=True)):
                if 0 <= c < len(letters):
                    out.add(f"{int(zone):02d}{BANDS[b]}{letters[c]}{_ROWS[r]}")
    return out


def mgrs_tile(lon: float, lat: float) -> str:
    """The MGRS tile id (zone, latitude band, 100 km square) of a point, e.g. ``30UVG`` for Glasgow."""
    if not -80.0 <= lat < 84.0:
        raise ConfigError("roi", [lon, lat], "MGRS / Sentinel-2 tiles exist between 80 S and 84 N (UTM's range)")
    (tile,) = _tile_ids(np.array([((lon + 180.0) % 360.0) - 180.0]), np.array([lat]))
    return tile


def _sample(part: BaseGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Points on the outline and inside of a lon/lat polygon, about every :data:`_STEP_DEG` (coarser for huge
    regions), so every 100 km square the region meets holds one of them."""
    left, bottom, right, top = part.bounds
    step = max(_STEP_DEG, math.sqrt(max((right - left) * (top - bottom), 0.0) / _MAX_POINTS))
    outline = shapely.get_coordinates(shapely.segmentize(part.boundary, step))
    xs, ys = np.meshgrid(np.arange(left, right + step, step), np.arange(bottom, top + step, step))
    inside = shapely.contains_xy(part, xs.ravel(), ys.ravel())
    lon = np.concatenate([outline[:, 0], xs.ravel()[inside]])
    lat = np.concatenate([outline[:, 1], ys.ravel()[inside]])
    return lon, lat


def mgrs_tiles(region: BaseGeometry) -> list[str]:
    """The ids of the tiles whose 100 km squares meet ``region`` (lon/lat, across the antimeridian in either
    form), sorted. Their tiles cover the region between 80 S and 84 N."""
    found: set[str] = set()
    for part in search_parts(region):
        lon, lat = _sample(part)
        keep = (lat >= -80.0) & (lat < 84.0)
        lon = ((lon[keep] + 180.0) % 360.0) - 180.0
        found |= _tile_ids(lon, lat[keep])
    return sorted(found)


def square_bounds(tile_id: str) -> tuple[float, float, float, float]:
    """(left, bottom, right, top) of a tile's 100 km square in its UTM zone (EPSG 326zz / 327zz by band)."""
    tile = tile_id.upper().removeprefix("T")
    tile_folder(tile)  # checks the form
    zone, band, column, row = int(tile[:2]), tile[2], tile[3], tile[4]
    letters = _COLUMNS[(zone - 1) % 3]
    if column not in letters or row not in _ROWS:
        raise ConfigError("tile", tile_id, f"'{column}{row}' is not a 100 km square of zone {zone}")
    east = (letters.index(column) + 1) * 100_000.0
    base = ((_ROWS.index(row) - (5 if zone % 2 == 0 else 0)) % 20) * 100_000.0
    lat_min = -80.0 + 8.0 * BANDS.index(band)
    epsg = (32600 if band >= "N" else 32700) + zone
    _, y_min = Transformer.from_crs(4326, epsg, always_xy=True).transform(zone * 6.0 - 183.0, lat_min)
    north = base + math.ceil((y_min - 100_000.0 - base) / 2_000_000.0) * 2_000_000.0  # the cycle of the band
    return east, north, east + 100_000.0, north + 100_000.0


def tile_folder(tile_id: str) -> str:
    """``30UVG`` -> ``30/U/VG`` (the folder layout of the Sentinel-2 buckets)."""
    tile = tile_id.upper().removeprefix("T")
    if len(tile) != 5 or not tile[:2].isdigit() or tile[2] not in BANDS:
        raise ConfigError("tile", tile_id, "use an MGRS tile id like '30UVG'")
    return f"{int(tile[:2])}/{tile[2]}/{tile[3:]}"


__all__ = ["BANDS", "mgrs_tile", "mgrs_tiles", "square_bounds", "tile_folder"]
