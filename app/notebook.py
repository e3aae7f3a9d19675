"""Jupyter helpers: an ipyleaflet map on which a notebook user draws the session's ROI.

Only notebooks import this module (it needs ipyleaflet and ipywidgets); the served Panel app does
not. The map and the Panel app can share one :class:`~app.state.AppState`: a shape drawn on the map
becomes the session's ROI, and an ROI set elsewhere (the app, code) is redrawn on the map.

The conversion of a drawn shape into the state (:func:`drawn_geometry`, :func:`apply_drawn_shape`)
has no widget in it, so tests exercise it without a browser.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import shapely
from shapely.geometry import Polygon, shape

from app.state.roi import RoiState

if TYPE_CHECKING:
    import ipyleaflet

    from app.state.session import AppState

#: The view of a map whose session has no ROI yet: (lat, lon) and zoom.
DEFAULT_CENTER = (30.0, 0.0)
DEFAULT_ZOOM = 2
#: Map size assumed when choosing the zoom that shows the whole ROI (ipyleaflet's default height).
VIEW_PIXELS = 400
ROI_STYLE = {"color": "#d7301f", "weight": 2, "fillColor": "#fc8d59", "fillOpacity": 0.15}
DRAW_STYLE = {"color": "#2171b5", "weight": 2, "fillOpacity": 0.1}


def drawn_geometry(geo_json: Mapping[str, Any]) -> shapely.Geometry:
    """The lon/lat shapely geometry of what a ``DrawControl`` reports.

    ``geo_json`` is the GeoJSON the control passes to its ``on_draw`` callbacks: a Feature (as
    leaflet-draw sends) or a bare geometry. Rectangles arrive as five-vertex polygons. A shape drawn
    on a copy of the world east or west of the main one is shifted back by whole turns of 360°.

    Raises ValueError when there is no usable geometry in it.
    """
    geometry = geo_json.get("geometry") if geo_json.get("type") == "Feature" else geo_json
    if not isinstance(geometry, Mapping) or "type" not in geometry:
        raise ValueError("the drawn shape has no geometry: draw a rectangle or a polygon")
    try:
        parsed = shape(geometry)
    except Exception as exc:  # shapely raises several types for malformed coordinates
        raise ValueError(f"the drawn shape cannot be read as GeoJSON ({type(exc).__name__}: {exc})") from exc
    if parsed.is_empty:
        raise ValueError("the drawn shape is empty: draw a rectangle or a polygon")
    turns = round(parsed.centroid.x / 360.0)
    if turns:
        parsed = shapely.transform(parsed, lambda xy: xy - [360.0 * turns, 0.0])
    return parsed


def apply_drawn_shape(roi: RoiState, geo_json: Mapping[str, Any]) -> bool:
    """Make a drawn shape the ROI; returns whether ``roi`` accepted it.

    A simple polygon (what the rectangle and polygon tools draw) goes through
    :meth:`RoiState.set_polygon`, anything else through :meth:`RoiState.set_geometry`. A shape that
    cannot be read or that the state rejects (self-intersecting, too large, not an area) leaves the
    previous ROI in place, with the reason in ``roi.error``.
    """
    try:
        geometry = drawn_geometry(geo_json)
    except ValueError as exc:
        roi.error = str(exc)
        return False
    if isinstance(geometry, Polygon) and not geometry.interiors:
        ring = list(geometry.exterior.coords)[:-1]  # set_polygon closes the ring itself
        return roi.set_polygon([x for x, _ in ring], [y for _, y in ring])
    return roi.set_geometry(geometry)


def roi_feature(geojson: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ROI geometry (or nothing) as GeoJSON an ipyleaflet ``GeoJSON`` layer displays."""
    if geojson is None:
        return {"type": "FeatureCollection", "features": []}
    return {"type": "Feature", "properties": {"name": "ROI"}, "geometry": _lists(dict(geojson))}


def _lists(value: Any) -> Any:
    """Tuples to lists, recursively (JSON-shaped data for the widget)."""
    if isinstance(value, tuple | list):
        return [_lists(v) for v in value]
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    return value


def view_for(bounds: tuple[float, float, float, float] | None) -> tuple[tuple[float, float], int]:
    """Centre (lat, lon) and web-mercator zoom that show ``bounds`` (west, south, east, north) whole
    in a map of about :data:`VIEW_PIXELS` pixels; the default view for None."""
    if bounds is None:
        return DEFAULT_CENTER, DEFAULT_ZOOM
    west, south, east, north = bounds
    span_x = max(east - west, 1e-6) / 360.0  # fraction of the world's width

    def mercator_y(lat: float) -> float:
        lat = max(-85.0, min(85.0, lat))
        return math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))

    span_y = max(mercator_y(north) - mercator_y(south), 1e-6) / (2 * math.pi)  # of the world's height
    zoom = math.floor(math.log2(VIEW_PIXELS / (256.0 * max(span_x, span_y))))
    return ((south + north) / 2, (west + east) / 2), max(1, min(18, zoom))


def _status_html(roi: RoiState) -> str:
    if roi.error:
        return f'<span style="color:#b30000"><b>ROI not changed:</b> {html.escape(roi.error)}</span>'
    if roi.geojson is None:
        return "Draw a rectangle or a polygon to set the ROI."
    return f"ROI: {roi.area_km2:,.2f} km² (draw a new shape to replace it)"


def leaflet_roi_map(state: AppState, **map_kwargs: Any) -> ipyleaflet.Map:
    """An ipyleaflet map to draw the ROI of ``state``, for Jupyter notebooks.

    The map opens on the session's ROI (or on :data:`DEFAULT_CENTER` without one) and holds:

    - a ``DrawControl`` with the rectangle and polygon tools: a finished shape is handed to
      :func:`apply_drawn_shape` and then removed from the drawing layer;
    - a ``GeoJSON`` layer showing ``state.roi.geojson``, redrawn whenever it changes, including
      changes made by the Panel app or by code (the map is then re-centred on the new ROI);
    - a status line (bottom left) with the ROI's area, or why the last shape was rejected.

    ``map_kwargs`` go to ``ipyleaflet.Map`` and override the defaults (``center``, ``zoom``,
    ``scroll_wheel_zoom``, ``layout``...).
    """
    import ipyleaflet
    import ipywidgets

    roi = state.roi
    if roi is None:
        raise ValueError("this session has no ROI state to draw on")
    center, zoom = view_for(roi.bounds())
    options: dict[str, Any] = {"center": center, "zoom": zoom, "scroll_wheel_zoom": True, **map_kwargs}
    leaflet_map = ipyleaflet.Map(**options)

    roi_layer = ipyleaflet.GeoJSON(data=roi_feature(roi.geojson), style=ROI_STYLE, name="ROI")
    leaflet_map.add(roi_layer)
    draw = ipyleaflet.DrawControl(
        rectangle={"shapeOptions": DRAW_STYLE},
        polygon={"shapeOptions": DRAW_STYLE},
        polyline={},
        circlemarker={},
        circle={},
        marker={},
        edit=False,
        remove=False,
    )
    leaflet_map.add(draw)
    status = ipywidgets.HTML(value=_status_html(roi))
    leaflet_map.add(ipyleaflet.WidgetControl(widget=status, position="bottomleft"))

    drawing = {"now": False}  # True while a shape drawn on this map is being applied

    def on_draw(control: Any, action: str, geo_json: Mapping[str, Any]) -> None:
        if action != "created":
            return
        drawing["now"] = True
        try:
            apply_drawn_shape(roi, geo_json)
        finally:
            drawing["now"] = False
        control.clear()  # the ROI layer shows what was accepted; the status says what was not
        status.value = _status_html(roi)

    def on_roi(event: Any) -> None:
        roi_layer.data = roi_feature(event.new)
        if not drawing["now"] and event.new is not None:
            leaflet_map.center, leaflet_map.zoom = view_for(roi.bounds())

    def on_status(*_: Any) -> None:
        status.value = _status_html(roi)

    draw.on_draw(on_draw)
    roi.param.watch(on_roi, "geojson")
    roi.param.watch(on_status, ["error", "area_km2"])
    return leaflet_map
