"""Longitude wrap-around at ±180° (the antimeridian): one lon/lat region in two forms (pure, no I/O).

A region that crosses the antimeridian can be written three ways, all meaning the same place:

- **split** (RFC 7946 §3.1.9, what GeoJSON output must use): a MultiPolygon whose parts stop at
  +180 and -180, every longitude in [-180, 180];
- **unwrapped** (continuous longitudes, what intersection, cover and area tests use): one polygon
  whose longitudes run on past 180 (e.g. 179..181), so planar geometry sees one connected shape.
  Its westmost longitude is in [-180, 180); only a region crossing the antimeridian goes past 180;
- **wrapped** (what catalogues and ``manifest.safe`` files often hold): a ring whose longitudes
  jump from about +180 to about -180 between two corners. Read naively it is a band round the globe.

:func:`split_at_antimeridian` turns any of them into the split form (straight lon/lat edges as
RFC 7946 has them, cut by exact planar clipping, so areas stay the same; rings round a pole go
through the ``antimeridian`` package);
:func:`unwrap_longitudes` turns any of them into the unwrapped form. Geometries that do not cross
are returned as they are (the same object), so ordinary regions keep their exact coordinates.

Two unwrapped geometries may still sit 360° apart (a region at 179..181 and a product at
-179.5..-178.5 meet at 180.5): :func:`lonlat_intersects` and :func:`lonlat_intersection` compare
them shifted by -360, 0 and +360. Projected to a map CRS (UTM, UPS) with pyproj, both forms land in
the right place, since the projection reduces longitudes itself; the unwrapped form stays one piece.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TypeAlias, cast

import antimeridian
import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

Areal: TypeAlias = Polygon | MultiPolygon

__all__ = [
    "crosses_antimeridian",
    "has_jumps",
    "lonlat_bbox",
    "lonlat_intersection",
    "lonlat_intersects",
    "merged_lonlat",
    "needs_fixing",
    "normalise_lonlat",
    "search_parts",
    "shift_longitudes",
    "split_at_antimeridian",
    "unwrap_longitudes",
    "unwrap_near",
    "wrap_longitude",
]

#: Longitudes this close to ±180 (degrees, ~0.1 mm) count as on the antimeridian.
EDGE_EPS = 1e-9


def wrap_longitude(lon: float) -> float:
    """A longitude in [-180, 180]; values already in that range are returned unchanged (bit for bit)."""
    if -180.0 <= lon <= 180.0:
        return lon
    return ((lon + 180.0) % 360.0) - 180.0


def unwrap_near(lon: np.ndarray, reference: float) -> np.ndarray:
    """Longitudes (degrees) moved by whole turns to lie within 180° of ``reference``, so values on both
    sides of the antimeridian stay continuous (e.g. -179.9 near 179.9 becomes 180.1). Values already
    within 180° of ``reference`` are returned unchanged (bit for bit)."""
    lon = np.asarray(lon, dtype=np.float64)
    far = np.abs(lon - reference) > 180.0
    if not far.any():
        return lon
    return np.where(far, lon - 360.0 * np.round((lon - reference) / 360.0), lon)


def _polygons(geometry: BaseGeometry) -> list[Polygon]:
    """The non-empty polygons of a (Multi)Polygon or a collection holding some."""
    if isinstance(geometry, Polygon):
        return [] if geometry.is_empty else [geometry]
    return [p for g in getattr(geometry, "geoms", []) for p in _polygons(g)]


def _ring_jumps(lons: np.ndarray) -> bool:
    jumps = np.abs(np.diff(lons))
    return bool(np.any((jumps > 180.0) & (jumps != 360.0)))  # a 360 jump is a ring along ±180 (a polar cap)


def _ring_needs_fixing(coords: np.ndarray) -> bool:
    lons = coords[:, 0]
    if lons.size == 0:
        return False
    return bool(lons.min() < -180.0 or lons.max() > 180.0) or _ring_jumps(lons)


def has_jumps(geometry: BaseGeometry) -> bool:
    """True when a ring of the geometry has an edge longer than 180° of longitude (the wrapped form, whose
    planar validity means nothing)."""
    return any(_ring_jumps(np.asarray(r.coords)[:, 0]) for p in _polygons(geometry) for r in (p.exterior, *p.interiors))


def _polygon_needs_fixing(polygon: Polygon) -> bool:
    rings = [polygon.exterior, *polygon.interiors]
    return any(_ring_needs_fixing(np.asarray(r.coords)[:, :2]) for r in rings)


def needs_fixing(geometry: BaseGeometry) -> bool:
    """True when a lon/lat geometry has longitudes beyond ±180 or an edge jumping more than 180°
    (a wrapped ring): then it is not in split form."""
    return any(_polygon_needs_fixing(p) for p in _polygons(geometry))


def _as_areal(parts: list[Polygon]) -> Areal:
    if len(parts) == 1:
        return parts[0]
    multi = MultiPolygon(parts)
    if multi.is_valid:
        return multi
    merged = shapely.union_all(parts)
    return cast(Areal, merged if isinstance(merged, (Polygon, MultiPolygon)) else MultiPolygon(_polygons(merged)))


def _unwrap_ring(coords: np.ndarray) -> tuple[np.ndarray, int]:
    """A ring's coordinates with continuous longitudes (each jump of more than 180° undone) and the number
    of times it winds round the pole (0 for a ring that closes again)."""
    out = coords[:, :2].astype(np.float64, copy=True)
    steps = np.diff(out[:, 0])
    turns = np.where(steps > 180.0, -1, np.where(steps < -180.0, 1, 0))
    turns[np.abs(steps) == 360.0] = 0  # an edge along ±180 (polar caps), not a jump
    out[1:, 0] += 360.0 * np.cumsum(turns)
    winding = round(float(out[-1, 0] - out[0, 0]) / 360.0) if out.shape[0] > 1 else 0
    return out, winding


def _moved_near(ring: np.ndarray, lon: float) -> np.ndarray:
    """The ring moved by a whole number of turns so its mean longitude is nearest ``lon``."""
    k = round((lon - float(ring[:-1, 0].mean())) / 360.0)
    return ring if k == 0 else ring + np.array([360.0 * k, 0.0])


def _unwrapped_polygon(polygon: Polygon) -> Polygon | None:
    """One polygon with continuous longitudes, westmost longitude in [-180, 180); None when a ring winds
    round a pole (then only the ``antimeridian`` package's pole handling can close it)."""
    shell, winding = _unwrap_ring(np.asarray(polygon.exterior.coords))
    if winding:
        return None
    shell += np.array([360.0 * -np.floor((shell[:, 0].min() + 180.0) / 360.0), 0.0])
    centre = float(shell[:-1, 0].mean())
    holes = []
    for interior in polygon.interiors:
        ring, winding = _unwrap_ring(np.asarray(interior.coords))
        if winding:
            return None
        holes.append(_moved_near(ring, centre))
    return Polygon(shell, holes)


def _split_unwrapped(geometry: BaseGeometry) -> list[Polygon]:
    """The parts of an unwrapped (Multi)Polygon cut at every ±180 + k·360, each moved into [-180, 180]."""
    west, _, east, _ = geometry.bounds
    if west >= -180.0 and east <= 180.0:
        return _polygons(geometry)
    parts: list[Polygon] = []
    for k in range(math.floor((west + 180.0) / 360.0), math.floor((east + 180.0) / 360.0) + 1):
        offset = 360.0 * k
        if east <= -180.0 + offset or west >= 180.0 + offset:
            continue
        piece = geometry.intersection(shapely.box(-180.0 + offset, -90.0, 180.0 + offset, 90.0))
        parts.extend(_polygons(shift_longitudes(piece, -offset)))
    return parts


def split_at_antimeridian(geometry: BaseGeometry) -> BaseGeometry:
    """The RFC 7946 form: every longitude in [-180, 180], parts cut at the antimeridian.

    Accepts the wrapped and the unwrapped forms (and the split form, returned as is). Edges are
    straight in lon/lat (RFC 7946): each ring's longitude jumps are undone, then the polygon is cut
    exactly at ±180 by planar clipping, so the parts' areas add up to the whole. A ring that winds
    round a pole (a footprint or patch holding the pole) is handed to the ``antimeridian`` package,
    which closes it over the pole. A geometry that needs no fixing (see :func:`needs_fixing`) is
    returned unchanged.
    """
    polygons = _polygons(geometry)
    if not any(_polygon_needs_fixing(p) for p in polygons):
        return geometry
    parts: list[Polygon] = []
    for polygon in polygons:
        if not _polygon_needs_fixing(polygon):
            parts.append(polygon)
            continue
        unwrapped = _unwrapped_polygon(polygon)
        if unwrapped is None:
            fixed = antimeridian.fix_polygon(polygon, fix_winding=True, great_circle=False)
            parts.extend(_polygons(fixed))
        else:
            parts.extend(_split_unwrapped(unwrapped if unwrapped.is_valid else _repaired(unwrapped)))
    return _as_areal(parts)


def _repaired(polygon: Polygon) -> Polygon | MultiPolygon:
    fixed = shapely.make_valid(polygon)
    polygons = _polygons(fixed)
    return polygons[0] if len(polygons) == 1 else MultiPolygon(polygons)


def _touches_east(polygon: Polygon) -> bool:
    return polygon.bounds[2] >= 180.0 - EDGE_EPS


def _touches_west(polygon: Polygon) -> bool:
    return polygon.bounds[0] <= -180.0 + EDGE_EPS


def shift_longitudes(geometry: BaseGeometry, degrees: float) -> BaseGeometry:
    """The geometry moved east by ``degrees`` of longitude (e.g. 360 or -360)."""
    if degrees == 0:
        return geometry
    return shapely.transform(geometry, lambda xy: xy + np.array([degrees, 0.0]))


def unwrap_longitudes(geometry: BaseGeometry) -> BaseGeometry:
    """The unwrapped form: parts west of the antimeridian moved east by 360° and merged with those east of it.

    Accepts the split and the wrapped forms. A region that does not cross the antimeridian (no part
    touches +180 while another touches -180) is returned as its split form, i.e. unchanged when it
    needed no fixing. A part spanning the whole circle (a polar cap) stays where it is. The result's
    westmost longitude is in [-180, 180).
    """
    split = split_at_antimeridian(geometry)
    parts = _polygons(split)
    full = [_touches_east(p) and _touches_west(p) for p in parts]
    if not any(_touches_east(p) and not f for p, f in zip(parts, full, strict=True)):
        return split
    moved = [
        cast(Polygon, shift_longitudes(p, 360.0)) if _touches_west(p) and not f else p
        for p, f in zip(parts, full, strict=True)
    ]
    if all(m is p for m, p in zip(moved, parts, strict=True)):
        return split
    merged = shapely.union_all(moved)
    return merged if isinstance(merged, (Polygon, MultiPolygon)) else MultiPolygon(_polygons(merged))


def crosses_antimeridian(geometry: BaseGeometry) -> bool:
    """True when the region (any form) lies on both sides of the antimeridian."""
    return unwrap_longitudes(geometry).bounds[2] > 180.0 + EDGE_EPS


def normalise_lonlat(geometry: BaseGeometry) -> tuple[BaseGeometry, BaseGeometry]:
    """(split, unwrapped) forms of a lon/lat region given in any form; both are ``geometry`` itself
    when it neither crosses the antimeridian nor needs fixing."""
    split = split_at_antimeridian(geometry)
    return split, unwrap_longitudes(split)


def _shifts(a: BaseGeometry, b: BaseGeometry) -> Iterable[float]:
    """The shifts of ``b`` (-360, 0, +360) whose longitude range can meet ``a``'s."""
    a0, _, a1, _ = a.bounds
    b0, _, b1, _ = b.bounds
    for k in (0.0, -360.0, 360.0):
        if b0 + k <= a1 + EDGE_EPS and a0 <= b1 + k + EDGE_EPS:
            yield k


def lonlat_intersects(a: BaseGeometry, b: BaseGeometry) -> bool:
    """Whether two lon/lat geometries in unwrapped (or plain) form share a point, 360° apart or not."""
    if a.is_empty or b.is_empty:
        return False
    return any(a.intersects(shift_longitudes(b, k)) for k in _shifts(a, b))


def lonlat_intersection(a: BaseGeometry, b: BaseGeometry) -> BaseGeometry:
    """The part of ``a`` inside ``b`` (both unwrapped or plain lon/lat), in ``a``'s longitudes."""
    if a.is_empty or b.is_empty:
        return Polygon()
    pieces = [a.intersection(shift_longitudes(b, k)) for k in _shifts(a, b)]
    pieces = [p for p in pieces if not p.is_empty]
    if not pieces:
        return Polygon()
    return pieces[0] if len(pieces) == 1 else shapely.union_all(pieces)


def search_parts(geometry: BaseGeometry) -> list[Polygon]:
    """The polygons to send a catalogue for a lon/lat region (any form): its RFC 7946 parts, one per side
    of the antimeridian, so no search area spans the globe. A region on one side gives one polygon
    when it is one (a MultiPolygon's parts are kept as they are)."""
    return _polygons(split_at_antimeridian(geometry))


def lonlat_bbox(geometry: BaseGeometry) -> tuple[float, float, float, float]:
    """The RFC 7946 bounding box (west, south, east, north) of a lon/lat region in any form.

    Across the antimeridian ``west`` is greater than ``east`` (e.g. ``179.5, 51, -178.5, 53``), as
    RFC 7946 §5.2 and STAC have it; elsewhere it is the plain bounds.
    """
    unwrapped = unwrap_longitudes(geometry)
    west, south, east, north = unwrapped.bounds
    if east > 180.0:
        east = wrap_longitude(east)
    return (west, south, east, north)


def merged_lonlat(geometries: Iterable[BaseGeometry]) -> BaseGeometry:
    """The union of lon/lat regions (any form) in unwrapped form, each moved by whole turns next to the
    first, so regions on both sides of the antimeridian join up instead of spanning the globe."""
    parts: list[BaseGeometry] = []
    anchor: float | None = None
    for geometry in geometries:
        unwrapped = unwrap_longitudes(geometry)
        if unwrapped.is_empty:
            continue
        centre = (unwrapped.bounds[0] + unwrapped.bounds[2]) / 2.0
        if anchor is None:
            anchor = centre
        parts.append(shift_longitudes(unwrapped, 360.0 * round((anchor - centre) / 360.0)))
    if not parts:
        return Polygon()
    merged = shapely.union_all(parts)
    west = merged.bounds[0]
    return shift_longitudes(merged, -360.0 * math.floor((west + 180.0) / 360.0))
