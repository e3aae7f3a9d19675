"""The map (GeoViews/Bokeh): draw or edit the ROI, patch layout, product footprints, selected patch, over
coastlines, borders and a lon/lat graticule installed with the project (web tiles under them when online)."""

from __future__ import annotations

import os
import threading
from typing import Any

import geoviews as gv
import holoviews as hv
import panel as pn
import param
from pyproj import Transformer

from app.state.geocontext import around, read_lines
from app.state.session import AppState

_TO_MERC = Transformer.from_crs(4326, 3857, always_xy=True)
_TO_LONLAT = Transformer.from_crs(3857, 4326, always_xy=True)
MISSION_COLOURS = {
    "S1A": "#1f77b4",
    "S1B": "#17becf",
    "S1C": "#9467bd",
    "S2A": "#2ca02c",
    "S2B": "#bcbd22",
    "S2C": "#8c564b",
}
_BASEMAP: dict[str, bool] = {}
_BASEMAP_LOCK = threading.Lock()


def basemap_online(timeout: float = 1.5) -> bool:
    """Whether map tiles can be fetched (checked once per process; ``SENPREP_BASEMAP=on|off`` decides)."""
    setting = os.environ.get("SENPREP_BASEMAP", "").lower()
    if setting in ("on", "off"):
        return setting == "on"
    with _BASEMAP_LOCK:
        if "online" not in _BASEMAP:
            import requests

            try:
                ok = requests.head("https://tile.openstreetmap.org/0/0/0.png", timeout=timeout).status_code < 400
            except requests.RequestException:
                ok = False
            _BASEMAP["online"] = ok
        return _BASEMAP["online"]


def to_merc(ring: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    xs, ys = _TO_MERC.transform([p[0] for p in ring], [p[1] for p in ring])
    return list(xs), list(ys)


def to_lonlat(xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    lons, lats = _TO_LONLAT.transform(list(xs), list(ys))
    return list(lons), list(lats)


class _Layers(param.Parameterized):
    """Revision counters the map's dynamic layers follow (bumped by :meth:`MapView.refresh`)."""

    roi = param.Integer(default=0)
    layout = param.Integer(default=0)
    footprints = param.Integer(default=0)
    selected = param.Integer(default=0)
    product = param.Integer(default=0)


class MapView(pn.viewable.Viewer):
    """Draw a box (Box tool, shift-drag) or a polygon (Polygon tool: click corners, double-click to end)."""

    state = param.ClassSelector(class_=AppState)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._layers = _Layers()
        self._seen: dict[str, Any] = {}
        self._drawn = ""
        self.pane = pn.pane.HoloViews(self._build(), sizing_mode="stretch_width", min_height=420)
        self.info = pn.pane.Markdown("", margin=(0, 10))
        self.legend = pn.pane.HTML(_legend(), margin=(0, 10), sizing_mode="stretch_width")
        self.refresh()

    # ----- drawing ------------------------------------------------------------------------------

    def _roi_ring_merc(self) -> tuple[list[float], list[float]] | None:
        rings = self.state.roi.outline()
        return to_merc(rings[0]) if rings else None

    def _build(self) -> Any:
        ring = self._roi_ring_merc()
        start = [{"x": ring[0], "y": ring[1]}] if ring else []
        self._poly_source = hv.Polygons(start).opts(fill_alpha=0.15, color="#3060d0", line_width=2)
        self._box_source = hv.Rectangles([]).opts(fill_alpha=0.1, color="#3060d0")
        self._poly_stream = hv.streams.PolyDraw(
            source=self._poly_source, num_objects=1, drag=False, show_vertices=True, styles={"fill_color": ["#3060d0"]}
        )
        self._edit_stream = hv.streams.PolyEdit(source=self._poly_source, shared=True)
        self._box_stream = hv.streams.BoxEdit(source=self._box_source, num_objects=1)
        self._poly_stream.add_subscriber(self._on_polygon)
        self._edit_stream.add_subscriber(self._on_polygon)
        self._box_stream.add_subscriber(self._on_box)
        names = ("layout", "footprints", "selected", "product")
        follow = [hv.streams.Params(self._layers, [name]) for name in names]
        layout = hv.DynamicMap(self._layout_layer, streams=[follow[0]])
        footprints = hv.DynamicMap(self._footprint_layer, streams=[follow[1]])
        selected = hv.DynamicMap(self._selected_layer, streams=[follow[2]])
        product = hv.DynamicMap(self._product_layer, streams=[follow[3]])
        overlay = self._context() * footprints * product * layout * self._box_source * self._poly_source * selected
        if basemap_online():
            overlay = gv.tile_sources.OSM() * overlay
        x0, y0, x1, y1 = self._view_extent()
        return overlay.opts(
            hv.opts.Overlay(
                xlim=(x0, x1),
                ylim=(y0, y1),
                responsive=True,
                min_height=420,
                show_grid=True,
                bgcolor="#f4f7fa",
                active_tools=["pan", "wheel_zoom"],
                title="",
                xlabel="",
                ylabel="",
                hooks=[self._lonlat_axes],
            ),
        )

    def _context(self) -> Any:
        """Coastlines and borders around the ROI (or Europe), from the vectors installed with the project."""
        bounds = self.state.roi.bounds() or (-25.0, 34.0, 45.0, 71.0)
        box = around(*bounds)
        layers = []
        for kind, colour, width in (("coastline", "#4a6f8a", 1.2), ("border", "#8a7a6a", 1.0)):
            lines = read_lines(kind, *box)
            xs, ys = _TO_MERC.transform(lines.lons, lines.lats)
            data = [{"x": xs, "y": ys}] if len(xs) else []
            layers.append(hv.Path(data).opts(color=colour, line_width=width, line_dash="solid"))
        return layers[0] * layers[1]

    def _lonlat_axes(self, plot: Any, _element: Any) -> None:
        """Axes and grid lines in degrees of longitude / latitude (a graticule) on the Web-Mercator map."""
        from bokeh.models import MercatorTicker, MercatorTickFormatter

        figure = plot.state
        self._figure = figure
        for axis, grid, lon in ((figure.xaxis, figure.xgrid, True), (figure.yaxis, figure.ygrid, False)):
            ticker = MercatorTicker(dimension="lon" if lon else "lat", desired_num_ticks=6)
            axis.ticker, axis.formatter = ticker, MercatorTickFormatter(dimension="lon" if lon else "lat")
            axis.major_label_text_font_size = "10px"
            grid.ticker = ticker
            grid.grid_line_color, grid.grid_line_alpha, grid.grid_line_dash = "#7a8a99", 0.35, "dotted"

    def _view_extent(self) -> tuple[float, float, float, float]:
        bounds = self.state.roi.bounds()
        if bounds is None:
            x, y = _TO_MERC.transform([-25.0, 45.0], [34.0, 71.0])  # Europe
            return x[0], y[0], x[1], y[1]
        xs, ys = _TO_MERC.transform([bounds[0], bounds[2]], [bounds[1], bounds[3]])
        pad = max(xs[1] - xs[0], ys[1] - ys[0]) * 0.6 + 500.0
        return xs[0] - pad, ys[0] - pad, xs[1] + pad, ys[1] + pad

    def _on_polygon(self, data: dict[str, Any] | None = None, **_: Any) -> None:
        data = data or self._poly_stream.data or {}
        xs_list, ys_list = data.get("xs") or [], data.get("ys") or []
        if not xs_list or len(xs_list[-1]) < 3:
            return
        lons, lats = to_lonlat(xs_list[-1], ys_list[-1])
        self._drawn = "polygon"
        self.state.roi.set_polygon(lons, lats)

    def _on_box(self, data: dict[str, Any] | None = None, **_: Any) -> None:
        data = data or self._box_stream.data or {}
        if not data.get("x0"):
            return
        (w, e), (s, n) = to_lonlat([data["x0"][-1], data["x1"][-1]], [data["y0"][-1], data["y1"][-1]])
        self._drawn = "box"
        self.state.roi.set_box(w, s, e, n)

    # ----- dynamic layers -----------------------------------------------------------------------------

    def _layout_layer(self, layout: int = 0) -> hv.Path:
        # one path with NaN breaks: HoloViews handles thousands of separate paths slowly
        xs_all: list[float] = []
        ys_all: list[float] = []
        for ring in self.state.patch_outlines():
            xs, ys = to_merc(ring)
            xs_all += [*xs, float("nan")]
            ys_all += [*ys, float("nan")]
        layer = hv.Path([{"x": xs_all, "y": ys_all}] if xs_all else [])
        return layer.opts(color="#d04020", line_width=1, line_dash="dashed")

    def _footprint_layer(self, footprints: int = 0) -> hv.Polygons:
        paired = self.state.search.paired_ids()
        data = []
        for row in self.state.search.rows:
            for ring in row["footprint"]:
                xs, ys = to_merc(ring)
                data.append(
                    {
                        "x": xs,
                        "y": ys,
                        "product_id": row["product_id"],
                        "mission": row["mission"],
                        "date": row["date"],
                        "cloud": "–" if row["cloud"] is None else f"{row['cloud']:.0f} %",
                        "coverage": "–" if row["coverage"] is None else f"{row['coverage']:.0f} %",
                        "used": "yes" if row.get("used") else f"no: {row.get('why', '')}",
                        "colour": MISSION_COLOURS.get(row["mission"], "#7f7f7f"),
                        "width": 4.0 if row["product_id"] in paired else 1.5,  # the mode's pairs stand out
                    }
                )
        vdims = ["product_id", "mission", "date", "cloud", "coverage", "used", "colour", "width"]
        return hv.Polygons(data, vdims=vdims).opts(
            color="colour", fill_alpha=0.12, line_width="width", tools=["hover"], hover_tooltips=HOVER
        )

    def _product_layer(self, product: int = 0) -> hv.Path:
        """The footprint of the product selected in the table, drawn thick on top."""
        chosen = self.state.search.selected
        rings = [to_merc(ring) for row in self.state.search.rows if row["product_id"] == chosen
                 for ring in row["footprint"]]  # fmt: skip
        return hv.Path([{"x": xs, "y": ys} for xs, ys in rings]).opts(color="#ff7f0e", line_width=4)

    def _fit(self) -> None:
        """Zoom to the ROI and the footprints found (after a Search)."""
        rings = [ring for row in self.state.search.rows for ring in row["footprint"]] + self.state.roi.outline()
        figure = getattr(self, "_figure", None)
        if not rings or figure is None:
            return
        xs, ys = to_merc([p for ring in rings for p in ring])
        pad = max(max(xs) - min(xs), max(ys) - min(ys)) * 0.08 + 200.0
        figure.x_range.update(start=min(xs) - pad, end=max(xs) + pad)
        figure.y_range.update(start=min(ys) - pad, end=max(ys) + pad)

    def _selected_layer(self, selected: int = 0) -> hv.Path:
        item = self.state.gallery.selected_item()
        rings = [to_merc(item["outline"])] if item and item["outline"] else []
        return hv.Path([{"x": xs, "y": ys} for xs, ys in rings]).opts(color="#ff00aa", line_width=3)

    # ----- refresh ------------------------------------------------------------------------------

    def _changed(self, key: str, value: Any) -> bool:
        if self._seen.get(key) == value:
            return False
        self._seen[key] = value
        return True

    def refresh(self) -> None:
        """Follow the state: redraw what changed (called periodically on the session's event loop)."""
        roi, options, search = self.state.roi, self.state.options, self.state.search
        if self._changed("roi", roi.revision):
            if self._drawn != "polygon" and "built" in self._seen:
                # a box, a paste, an upload or a config: redraw with the ROI as the editable polygon
                self.pane.object = self._build()
            self._drawn = ""
            self._seen["built"] = True
        layout_key = (roi.revision, options.patch_size, options.overlap, options.resolution)
        if self._changed("layout", layout_key):
            self._layers.layout += 1
        if self._changed("footprints", (search.status, id(search.rows))):
            self._layers.footprints += 1
            if search.status == "done":
                self._fit()
        if self._changed("product", (search.selected, id(search.rows))):
            self._layers.product += 1
        if self._changed("selected", self.state.gallery.selected):
            self._layers.selected += 1
        n = self.state.n_patches() if roi.geojson else 0
        text = (
            f"**ROI** {roi.area_km2:,.2f} km² · {n:,} patches of {options.patch_size}² px"
            if roi.geojson
            else ("**No ROI yet**: draw a box (Box edit tool, shift + drag) or a polygon, or paste GeoJSON.")
        )
        if roi.error:
            text += f"\n\n<span style='color:#b00020'>ROI rejected: {roi.error}</span>"
        self.info.object = text

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self.pane, self.legend, self.info, sizing_mode="stretch_width")


#: One short line per product under the mouse (overlapping footprints give one line each, not a table each).
HOVER = """<div style="font-size:11px;white-space:nowrap">@mission @date · cloud @cloud · ROI @coverage</div>"""


def _swatch(colour: str, label: str, style: str = "solid", width: int = 2, fill: str = "transparent") -> str:
    return (
        f"<span style='display:inline-flex;align-items:center;gap:4px;margin-right:12px'>"
        f"<span style='display:inline-block;width:18px;height:10px;border:{width}px {style} {colour};"
        f"background:{fill}'></span>{label}</span>"
    )


def _legend() -> str:
    """The map's legend: what each outline is."""
    items = [
        _swatch("#3060d0", "ROI", fill="rgba(48,96,208,0.15)"),
        _swatch("#d04020", "patch grid", style="dashed", width=1),
        _swatch(MISSION_COLOURS["S2A"], "S2A / ", fill="rgba(44,160,44,0.12)")
        + _swatch(MISSION_COLOURS["S2B"], "S2B footprints", fill="rgba(188,189,34,0.12)"),
        _swatch(MISSION_COLOURS["S1A"], "S1A / ") + _swatch(MISSION_COLOURS["S1C"], "S1C footprints"),
        _swatch("#555555", "pairs (bold)", width=4),
        _swatch("#ff7f0e", "selected product", width=3),
        _swatch("#ff00aa", "opened patch", width=3),
        _swatch("#4a6f8a", "coastline", width=1) + _swatch("#8a7a6a", "border", width=1),
    ]
    return f"<div style='font-size:11px;display:flex;flex-wrap:wrap'>{''.join(items)}</div>"
