"""Region of interest: parsed from GeoJSON (CRS84), validated, with a deterministic UTM zone."""

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
from senprep_core.geo.projection import project_lonlat

_GEOD = Geod(ellps="WGS84")
_CRS84_NAMES = {
    "urn:ogc:def:crs:OGC:1.3:CRS84",
    "urn:ogc:def:crs:OGC::CRS84",
    "urn:ogc:def:crs:EPSG::4326",
    "EPSG:4326",
    "CRS84",
}


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
        return cls.from_geometry(shapely.union_all(parts) if len(parts) > 1 else parts[0], name=name, key=key)

    @classmethod
    def from_geometry(cls, geometry: BaseGeometry, name: str = "roi", key: str = "geojson") -> ROI:
        """Validate a shapely geometry in lon/lat and wrap it."""
        if not isinstance(geometry, (Polygon, MultiPolygon)):
            raise InvalidROIError(key, geometry.geom_type, "the ROI must be a Polygon or MultiPolygon")
        if geometry.is_empty:
            raise InvalidROIError(key, "empty geometry", "draw a polygon with at least three distinct corners")
        if not geometry.is_valid:
            reason = explain_validity(geometry)
            fix = (
                "remove the crossing edges (the outline must not cross itself)"
                if "Self-intersection" in reason
                else "repair the polygon"
            )
            raise InvalidROIError(key, reason, fix)
        minx, miny, maxx, maxy = geometry.bounds
        if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
            raise InvalidROIError(
                key, geometry.bounds, "coordinates must be longitude/latitude in degrees (CRS84), not projected metres"
            )
        if geometry.area <= 0:
            raise InvalidROIError(key, "zero-area polygon", "give a polygon that encloses an area")
        return cls(geometry=geometry, name=name)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(min lon, min lat, max lon, max lat)."""
        return tuple(self.geometry.bounds)  # type: ignore[return-value]

    @cached_property
    def geodesic_area_m2(self) -> float:
        """Area on the WGS84 ellipsoid in square metres."""
        return geodesic_area(self.geometry)

    def utm_epsg(self) -> int:
        """The target UTM zone, chosen deterministically.

        The zone holding the largest part of the ROI's area wins; a tie goes to the lower zone
        number. The hemisphere follows the ROI's centroid latitude.
        """
        minx, _miny, maxx, _maxy = self.geometry.bounds
        centroid = self.geometry.centroid
        north = centroid.y >= 0
        first = math.floor((minx + 180.0) / 6.0)
        last = math.floor((min(maxx, 179.999999) + 180.0) / 6.0)
        best_zone, best_area = first + 1, -1.0
        for index in range(first, last + 1):
            strip = shapely.box(-180.0 + 6.0 * index, -90.0, -180.0 + 6.0 * (index + 1), 90.0)
            part = self.geometry.intersection(strip)
            if part.is_empty:
                continue
            area = geodesic_area(part)
            # Shares equal to within float noise (relative 1e-9) are a tie, which the lower zone keeps.
            if area > best_area + max(1e-6, 1e-9 * best_area):
                best_zone, best_area = index + 1, area
        return (32600 if north else 32700) + best_zone

    def projected(self, epsg: int) -> BaseGeometry:
        """The ROI geometry in another CRS (e.g. the target grid's UTM zone)."""
        return project_lonlat(self.geometry, epsg)

    def to_geojson(self) -> dict[str, Any]:
        """The ROI as a GeoJSON geometry dict."""
        return dict(mapping(self.geometry))
