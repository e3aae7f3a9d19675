"""Region of interest: parsed from GeoJSON (CRS84), validated, with a deterministic UTM zone (UPS near the poles).

An ROI across the antimeridian may be given split at ±180 (RFC 7946) or with longitudes running on
past ±180 (e.g. 179..181); both mean the same region. :attr:`ROI.geometry` holds it unwrapped
(continuous longitudes, see :mod:`senprep_core.geo.antimeridian`), :attr:`ROI.split` in RFC 7946 form.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import shapely
from pyproj import Geod
from shapely.geometry import MultiPolygon, Polygon, mapping, shape
from shapely.geometry.base import BaseGeometry
from shapely.geometry.polygon import orient
from shapely.validation import explain_validity

from senprep_core.errors import InvalidROIError
from senprep_core.geo.antimeridian import has_jumps, needs_fixing, split_at_antimeridian, unwrap_longitudes
from senprep_core.geo.projection import project_lonlat

_GEOD = Geod(ellps="WGS84")
_CRS84_NAMES = {
    "urn:ogc:def:crs:OGC:1.3:CRS84",
    "urn:ogc:def:crs:OGC::CRS84",
    "urn:ogc:def:crs:EPSG::4326",
    "EPSG:4326",
    "CRS84",
}
#: Universal Polar Stereographic grids (WGS 84 / UPS North and South, E/N axes like UTM).
UPS_NORTH_EPSG = 32661
UPS_SOUTH_EPSG = 32761
#: UTM's latitude range: ROIs whose centroid lies beyond get a UPS grid.
UTM_NORTH_LIMIT = 84.0
UTM_SOUTH_LIMIT = -80.0
#: Longest lon/lat edge (degrees) when projecting onto a UPS grid, where parallels are circles.
POLAR_DENSIFY_DEGREES = 0.01


def _polygons_of(obj: dict[str, Any], key: str) -> list[BaseGeometry]:
    kind = obj.get("type")
    crs = obj.get("crs")
    if isinstance(crs, dict):
        name = str(crs.get("properties", {}).get("name", ""))
        if name and name not in _CRS84_NAMES:
            raise InvalidROIError(key, name, "the ROI must be in longitude/latitude (CRS84); reproject it first")
    if kind == "FeatureCollection":
        features = obj.get("features") or []
        if not features:
            raise InvalidROIError(key, "FeatureCollection with no features", "add a Polygon feature")
        out: list[BaseGeometry] = []
        for feature in features:
            out.extend(_polygons_of(feature, key))
        return out
    if kind == "Feature":
        geometry = obj.get("geometry")
        if not isinstance(geometry, dict):
            raise InvalidROIError(key, "Feature without geometry", "give the Feature a Polygon geometry")
        return _polygons_of(geometry, key)
    if kind == "GeometryCollection":
        out = []
        for geometry in obj.get("geometries") or []:
            out.extend(_polygons_of(geometry, key))
        return out
    if kind in ("Polygon", "MultiPolygon"):
        try:
            geom = shape(obj)
        except Exception as exc:  # shapely raises several types for bad coordinate arrays
            raise InvalidROIError(
                key, obj.get("coordinates"), f"the coordinates are not a valid {kind}: {exc}"
            ) from exc
        return [geom]
    raise InvalidROIError(
        key, kind, "the ROI must be a Polygon or MultiPolygon (or a Feature/FeatureCollection of them)"
    )


def geodesic_area(geometry: BaseGeometry) -> float:
    """Area of a lon/lat (Multi)Polygon on the WGS84 ellipsoid, in square metres.

    Rings are oriented first (shells counter-clockwise, holes clockwise): pyproj signs each
    ring's area by its winding, so a hole wound like its shell would otherwise be added.
    """
    polygons = getattr(geometry, "geoms", [geometry])
    total = 0.0
    for polygon in polygons:
        if isinstance(polygon, Polygon) and not polygon.is_empty:
            total += abs(_GEOD.geometry_area_perimeter(orient(polygon, sign=1.0))[0])
    return total


def is_polar_epsg(epsg: int) -> bool:
    """True for the UPS North / South grids."""
    return epsg in (UPS_NORTH_EPSG, UPS_SOUTH_EPSG)


def _lonlat_range(geometry: BaseGeometry) -> bool:
    """True when the bounds fit lon/lat degrees (longitudes up to ±360 for regions across the antimeridian)."""
    minx, miny, maxx, maxy = geometry.bounds
    return minx >= -360 and maxx <= 360 and maxx - minx <= 360 and miny >= -90 and maxy <= 90


def _refuse_invalid(geometry: BaseGeometry, key: str) -> None:
    reason = explain_validity(geometry)
    fix = (
        "remove the crossing edges (the outline must not cross itself)"
        if "Self-intersection" in reason
        else "repair the polygon"
    )
    raise InvalidROIError(key, reason, fix)


def _split_or_raise(geometry: BaseGeometry, key: str) -> BaseGeometry:
    try:
        return split_at_antimeridian(geometry)
    except (ValueError, AssertionError) as exc:  # the antimeridian package asserts on rings it cannot close
        raise InvalidROIError(key, geometry.bounds, f"the polygon cannot be cut at the antimeridian ({exc})") from exc


def utm_epsg_for(lon: float, lat: float) -> int:
    """EPSG code of the WGS84 / UTM zone holding a point (no Norway/Svalbard exceptions, like MGRS tiling)."""
    zone = math.floor((lon + 180.0) / 6.0) % 60 + 1
    return (32600 if lat >= 0 else 32700) + zone


@dataclass(frozen=True)
class ROI:
    """A validated region of interest in longitude/latitude (CRS84).

    ``geometry`` is a shapely Polygon or MultiPolygon; holes are kept.
    """

    geometry: BaseGeometry
    name: str = "roi"

    @classmethod
    def from_geojson(cls, value: str | dict[str, Any], name: str = "roi", key: str = "geojson") -> ROI:
        """Parse a GeoJSON string or object (FeatureCollection, Feature or geometry) into an ROI.

        Raises :class:`InvalidROIError` naming ``key`` when it is not a usable polygon.
        """
        obj: Any = value
        if isinstance(value, str):
            try:
                obj = json.loads(value)
            except json.JSONDecodeError as exc:
                raise InvalidROIError(
                    key, value, f"it is not valid GeoJSON text ({exc.msg} at char {exc.pos})"
                ) from exc
        if not isinstance(obj, dict):
            raise InvalidROIError(key, value, "give a GeoJSON object or a string holding one")
        parts = _polygons_of(obj, key)
        if not parts:
            raise InvalidROIError(key, "GeometryCollection with no geometries", "add a Polygon geometry")
        if len(parts) > 1:  # each part cut at ±180 first, so wrapped parts do not merge into a band
            parts = [_split_or_raise(p, key) if _lonlat_range(p) and needs_fixing(p) else p for p in parts]
        return cls.from_geometry(shapely.union_all(parts) if len(parts) > 1 else parts[0], name=name, key=key)

    @classmethod
    def from_geometry(cls, geometry: BaseGeometry, name: str = "roi", key: str = "geojson") -> ROI:
        """Validate a shapely geometry in lon/lat and wrap it.

        Longitudes may run past ±180 (up to ±360) for a region across the antimeridian; a
        MultiPolygon split at ±180 is joined again (see the module docstring).
        """
        if not isinstance(geometry, (Polygon, MultiPolygon)):
            raise InvalidROIError(key, geometry.geom_type, "the ROI must be a Polygon or MultiPolygon")
        if geometry.is_empty:
            raise InvalidROIError(key, "empty geometry", "draw a polygon with at least three distinct corners")
        if not _lonlat_range(geometry):
            raise InvalidROIError(
                key, geometry.bounds, "coordinates must be longitude/latitude in degrees (CRS84), not projected metres"
            )
        # a wrapped ring's planar validity means nothing; every other form must be valid as given
        if not has_jumps(geometry) and not geometry.is_valid:
            _refuse_invalid(geometry, key)
        split = _split_or_raise(geometry, key) if needs_fixing(geometry) else geometry
        if not split.is_valid:
            _refuse_invalid(split, key)
        if split.area <= 0:
            raise InvalidROIError(key, "zero-area polygon", "give a polygon that encloses an area")
        unwrapped = unwrap_longitudes(split)
        return cls(geometry=unwrapped if unwrapped is not split else geometry, name=name)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(min lon, min lat, max lon, max lat) of the unwrapped geometry (max lon > 180 across the antimeridian)."""
        return tuple(self.geometry.bounds)  # type: ignore[return-value]

    @cached_property
    def split(self) -> BaseGeometry:
        """The ROI in RFC 7946 form: cut at ±180, every longitude in [-180, 180]."""
        return split_at_antimeridian(self.geometry)

    @property
    def crosses_antimeridian(self) -> bool:
        """True when the ROI lies on both sides of the antimeridian."""
        return self.geometry.bounds[2] > 180.0

    @cached_property
    def geodesic_area_m2(self) -> float:
        """Area on the WGS84 ellipsoid in square metres."""
        return geodesic_area(self.geometry)

    def utm_epsg(self) -> int:
        """The target UTM zone, chosen deterministically.

        The zone holding the largest part of the ROI's area wins; a tie goes to the lower zone
        number (across the antimeridian, the western one: zone 60 before zone 1). The hemisphere
        follows the ROI's centroid latitude. Zones are counted on the unwrapped geometry, so an ROI
        across 180° gets zone 60 or 1, never a zone from the far side of the Earth.
        """
        minx, _miny, maxx, _maxy = self.geometry.bounds
        centroid = self.geometry.centroid
        north = centroid.y >= 0
        first = math.floor((minx + 180.0) / 6.0)
        last = math.floor((maxx - 1e-6 + 180.0) / 6.0)
        best_zone, best_area = first % 60 + 1, -1.0
        for index in range(first, last + 1):
            strip = shapely.box(-180.0 + 6.0 * index, -90.0, -180.0 + 6.0 * (index + 1), 90.0)
            part = self.geometry.intersection(strip)
            if part.is_empty:
                continue
            area = geodesic_area(part)
            # Shares equal to within float noise (relative 1e-9) are a tie, which the lower zone keeps.
            if area > best_area + max(1e-6, 1e-9 * best_area):
                best_zone, best_area = index % 60 + 1, area
        return (32600 if north else 32700) + best_zone

    @property
    def polar(self) -> bool:
        """True when the ROI's centroid lies north of 84° N or south of 80° S (beyond UTM's range)."""
        lat = self.geometry.centroid.y
        return lat > UTM_NORTH_LIMIT or lat < UTM_SOUTH_LIMIT

    def grid_epsg(self) -> int:
        """The target grid's CRS: UPS North / South (EPSG:32661 / 32761) for a polar ROI, else :meth:`utm_epsg`."""
        if self.polar:
            return UPS_NORTH_EPSG if self.geometry.centroid.y > 0 else UPS_SOUTH_EPSG
        return self.utm_epsg()

    def projected(self, epsg: int) -> BaseGeometry:
        """The ROI geometry in another CRS (e.g. the target grid's UTM zone).

        On a UPS grid the lon/lat edges are densified first (parallels there are circles), and a ring
        round the pole is repaired into the polygon it encloses.
        """
        if not is_polar_epsg(epsg):
            return project_lonlat(self.geometry, epsg)
        out = project_lonlat(self.geometry, epsg, POLAR_DENSIFY_DEGREES)
        if not out.is_valid:
            out = shapely.make_valid(out)
            polygons = [g for g in getattr(out, "geoms", [out]) if isinstance(g, (Polygon, MultiPolygon))]
            out = shapely.union_all(polygons) if polygons else out
        return out

    def to_geojson(self) -> dict[str, Any]:
        """The ROI as a GeoJSON geometry dict (RFC 7946: split at the antimeridian when it crosses it)."""
        return dict(mapping(self.split))
