"""The region of interest a user draws, edits, pastes or uploads (lon/lat GeoJSON)."""

from __future__ import annotations

import json
from typing import Any

import param
import shapely
from shapely.geometry import Polygon, mapping

from senprep_core.config import is_legacy_form
from senprep_core.config.values import parse_roi
from senprep_core.errors import SenprepError
from senprep_core.geo.roi import ROI

#: Largest ROI the app accepts (km²); bigger areas belong in a CLI or Dask run.
MAX_AREA_KM2 = 250_000.0


def parse_roi_text(text: str) -> ROI:
    """An ROI from pasted or uploaded text: GeoJSON (geometry, Feature, FeatureCollection) or a
    senprep config (legacy or modern JSON), whose ROI is used."""
    stripped = text.strip()
    if not stripped:
        raise ValueError("the text is empty: paste GeoJSON or a senprep config")
    try:
        data = json.loads(stripped)
    except json.JSONDecodeError:
        return ROI.from_geojson(stripped)  # raises InvalidROIError with the position of the JSON error
    if isinstance(data, dict) and "type" not in data and ("roi" in data or is_legacy_form(data)):
        key = "roi" if "roi" in data else "geojson"
        if key not in data:
            raise ValueError("this senprep config has no ROI (no 'geojson' or 'roi' key)")
        return parse_roi(data[key], str(data.get("name", "roi")), key)
    return ROI.from_geojson(data)


class RoiState(param.Parameterized):
    """The session's ROI: a validated lon/lat polygon, its area and the last error.

    Every setter validates; an invalid input leaves the previous ROI in place and sets ``error``.
    """

    geojson = param.Dict(default=None, allow_None=True, doc="the ROI as a GeoJSON geometry (lon/lat)")
    area_km2 = param.Number(default=0.0, constant=True, doc="geodesic area of the ROI")
    error = param.String(default="", doc="why the last ROI input was rejected ('' when it was accepted)")
    revision = param.Integer(default=0, constant=True, doc="increases with every accepted ROI")

    @property
    def roi(self) -> ROI | None:
        """The current ROI, or None before one is set."""
        return ROI.from_geojson(self.geojson) if self.geojson else None

    def clear(self) -> None:
        """Forget the ROI."""
        self._accept(None)

    def set_box(self, west: float, south: float, east: float, north: float) -> bool:
        """A lon/lat rectangle (corners in any order)."""
        x0, x1 = sorted((float(west), float(east)))
        y0, y1 = sorted((float(south), float(north)))
        return self.set_geometry(shapely.box(x0, y0, x1, y1))

    def set_polygon(self, lons: list[float], lats: list[float]) -> bool:
        """A polygon from its vertices (lon/lat); the ring is closed here."""
        if len(lons) != len(lats) or len(lons) < 3:
            return self._reject("a polygon needs at least three corners with both a longitude and a latitude")
        return self.set_geometry(Polygon(list(zip(map(float, lons), map(float, lats), strict=True))))

    def set_geometry(self, geometry: shapely.Geometry) -> bool:
        """Any shapely geometry in lon/lat; must be a valid (multi)polygon."""
        try:
            roi = ROI.from_geometry(geometry)
        except SenprepError as exc:
            return self._reject(str(exc))
        return self._accept(roi)

    def set_text(self, text: str) -> bool:
        """Pasted or uploaded text: GeoJSON or a legacy / modern senprep config."""
        try:
            roi = parse_roi_text(text)
        except (SenprepError, ValueError) as exc:
            return self._reject(str(exc))
        return self._accept(roi)

    def _reject(self, message: str) -> bool:
        self.error = message
        return False

    def _accept(self, roi: ROI | None) -> bool:
        area = roi.geodesic_area_m2 / 1e6 if roi is not None else 0.0
        if area > MAX_AREA_KM2:
            return self._reject(
                f"the ROI covers {area:,.0f} km², more than the app's {MAX_AREA_KM2:,.0f} km²: draw a smaller one "
                "or run the CLI (senprep run) for large areas"
            )
        with param.parameterized.batch_call_watchers(self), param.edit_constant(self):
            self.geojson = dict(mapping(roi.geometry)) if roi is not None else None
            self.area_km2 = area
            self.error = ""
            self.revision += 1
        return True

    def bounds(self) -> tuple[float, float, float, float] | None:
        """(west, south, east, north) of the ROI, or None."""
        roi = self.roi
        return roi.bounds if roi is not None else None

    def outline(self) -> list[list[tuple[float, float]]]:
        """The exterior rings of the ROI's polygons as lon/lat vertex lists (for drawing)."""
        roi = self.roi
        if roi is None:
            return []
        geometry: Any = roi.geometry
        parts = list(geometry.geoms) if hasattr(geometry, "geoms") else [geometry]
        return [list(part.exterior.coords) for part in parts]
