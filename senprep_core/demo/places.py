"""Synthetic products placed where longitudes wrap or UTM ends: across the antimeridian and north of 84° N.

- **Across 180°** (the Aleutians, ~52° N): an S2 tile of UTM zone 60 whose east part lies past the
  antimeridian (:func:`antimeridian_s2_spec`), an S1 scene centred just west of 180°
  (:func:`antimeridian_s1_spec`), two ROIs straddling 180° (``"west"``: mostly in zone 60, ``"east"``:
  mostly in zone 1), each in both GeoJSON forms (:func:`antimeridian_roi`: ``"split"`` at ±180 per
  RFC 7946, or ``"beyond"`` with longitudes past 180), and products far from them
  (:func:`far_side_s2_specs`: longitude ~0 and ~-170) that a search must never match.
- **North of 84° N** (:func:`polar_s2_spec`, :func:`polar_roi`): an S2 tile of UTM zone 33 reaching past
  84° N and an ROI whose centroid lies beyond it, so the grid is UPS North (EPSG:32661).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from pyproj import Transformer
from shapely.geometry import MultiPolygon, Polygon, box, mapping

from senprep_core.demo.s1_spec import S1DemoSpec
from senprep_core.demo.s2 import S2DemoSpec

__all__ = [
    "ANTIMERIDIAN_DATES",
    "antimeridian_roi",
    "antimeridian_s1_spec",
    "antimeridian_s2_spec",
    "far_side_s2_specs",
    "polar_roi",
    "polar_s2_spec",
]

ANTIMERIDIAN_DATES = ("2026-03-01", "2026-03-31")
#: (west, south, east, north) of the two ROIs, longitudes past 180 on the east side
_ROI_BOUNDS = {"west": (179.975, 51.955, 180.010, 51.975), "east": (179.990, 51.955, 180.025, 51.975)}


def antimeridian_s2_spec(**changes: Any) -> S2DemoSpec:
    """A 9 km L2A tile of UTM zone 60 (EPSG:32660) at 51.94-52.02° N whose east third lies past 180°."""
    base: dict[str, Any] = {
        "tile_id": "60UYD",
        "epsg": 32660,
        "ulx": 701460.0,
        "uly": 5767020.0,
        "size_10m": 900,
        "sensing_time": datetime(2026, 3, 14, 23, 12, 9),
        "baseline": "05.11",
        "mission": "S2C",
        "relative_orbit": 58,
        "seed": 60,
        "cloud_fraction": 0.0,
        "nodata_edge": False,
        "bands": ("B02", "B03", "B04", "B05", "B11", "SCL"),
    }
    base.update(changes)
    return S2DemoSpec(**base)


def antimeridian_s1_spec(**changes: Any) -> S1DemoSpec:
    """A clean (no speckle, no noise) 12 km x 15 km GRD centred just west of 180°, seeing both sides of it."""
    base: dict[str, Any] = {
        "start_time": datetime(2026, 3, 15, 7, 41, 12),
        "centre_lon": 179.998,
        "centre_lat": 51.965,
        "pass_direction": "DESCENDING",
        "incidence_near": 33.0,
        "looks": math.inf,
        "nesz_db": None,
        "seed": 180,
    }
    base.update(changes)
    return S1DemoSpec(**base)


def antimeridian_roi(side: str = "west", form: str = "split") -> dict[str, Any]:
    """One of the ROIs straddling 180° as a GeoJSON geometry: ``side`` ``"west"`` (more area in zone 60) or
    ``"east"`` (more in zone 1); ``form`` ``"split"`` (a MultiPolygon cut at ±180) or ``"beyond"`` (one
    Polygon with longitudes past 180)."""
    west, south, east, north = _ROI_BOUNDS[side]
    if form == "beyond":
        return dict(mapping(box(west, south, east, north)))
    if form != "split":
        raise ValueError(f"form must be 'split' or 'beyond', got {form!r}")
    parts = MultiPolygon([box(west, south, 180.0, north), box(-180.0, south, east - 360.0, north)])
    return dict(mapping(parts))


def far_side_s2_specs() -> list[S2DemoSpec]:
    """Small tiles in the same month far from the ROIs: at longitude ~0 (zone 31) and ~-170 (zone 2)."""
    return [
        antimeridian_s2_spec(tile_id="31UCT", epsg=32631, ulx=359940.0, uly=5760000.0, size_10m=120, seed=31),
        antimeridian_s2_spec(tile_id="02UNC", epsg=32602, ulx=500040.0, uly=5760000.0, size_10m=120, seed=2),
    ]


def polar_s2_spec(**changes: Any) -> S2DemoSpec:
    """A 12 km L2A tile of UTM zone 33 (EPSG:32633) at ~84.0-84.14° N around 15° E (past UTM's 84° N)."""
    base: dict[str, Any] = {
        "tile_id": "33XVP",
        "epsg": 32633,
        "ulx": 494040.0,
        "uly": 9342000.0,
        "size_10m": 1200,
        "sensing_time": datetime(2026, 6, 21, 12, 30, 11),
        "baseline": "05.11",
        "mission": "S2B",
        "relative_orbit": 108,
        "seed": 84,
        "cloud_fraction": 0.0,
        "nodata_edge": False,
        "bands": ("B02", "B03", "B04", "B05", "B11", "SCL"),
    }
    base.update(changes)
    return S2DemoSpec(**base)


def polar_roi() -> dict[str, Any]:
    """A ~3 km x 3 km ROI at 84.06-84.09° N inside :func:`polar_s2_spec`'s tile (UPS North grid)."""
    to_lonlat = Transformer.from_crs(32633, 4326, always_xy=True)
    x0, y0, size = 498000.0, 9333000.0, 3000.0  # a square in the tile's UTM metres, as lon/lat corners
    ring = [to_lonlat.transform(x, y) for x, y in ((x0, y0), (x0 + size, y0), (x0 + size, y0 + size), (x0, y0 + size))]
    return dict(mapping(Polygon([(round(lon, 7), round(lat, 7)) for lon, lat in ring])))
