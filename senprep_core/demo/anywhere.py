"""Synthetic products for any ROI and dates, so any configuration can be tried offline (``senprep demo --config``).

For an ROI (lon/lat) and date windows this places, in the ROI's UTM zone and MGRS tile, an S2 tile piece
covering the ROI with a margin and S1 scenes centred on it, at times the configuration's mode pairs:
per date window a primary acquisition one day after the window starts (or on its only day), its partner a
day before or after (as the pairing direction asks), and for the multitemporal modes the same S1 orbit one
12-day repeat earlier. Products are cached like the embedded demo's (same spec, same files).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

from pyproj import Transformer
from shapely.geometry.base import BaseGeometry

from senprep_core.demo.s1 import make_s1_product
from senprep_core.demo.s1_spec import S1DemoSpec
from senprep_core.demo.s2 import S2DemoSpec, make_s2_product
from senprep_core.errors import ConfigError
from senprep_core.geo.mgrs import mgrs_tile as geo_mgrs_tile
from senprep_core.timeutil import DateWindow

#: Largest ROI side a demo is generated for (the S1 simulator's cost grows with the scene's area).
MAX_SIDE_KM = 20.0
MARGIN_M = 1500.0  # around the ROI in the S2 tile piece
S1_MARGIN_M = 3500.0  # around the ROI in the S1 scene (its 2 km border is not used to cover an ROI)
REPEAT = timedelta(days=12)  # one Sentinel-1 satellite's repeat cycle


@dataclass(frozen=True)
class DemoRequest:
    """What a configuration needs of synthetic products."""

    roi: BaseGeometry  # lon/lat
    windows: tuple[DateWindow, ...]
    s2_level: str = "L2A"
    needs_s2: bool = True
    needs_s1: bool = False
    primary: str = "S2"  # the family whose acquisitions must lie in the windows
    direction: str = "closest"  # where the partner lies: "before", "after" or "closest" (before)
    earlier_s1: bool = False  # the S1 orbit one repeat earlier too (multitemporal modes)


def mgrs_tile(lon: float, lat: float) -> str:
    """The MGRS tile id (zone, latitude band, 100 km square) of a point, e.g. ``30UVG`` for Glasgow."""
    if not -80.0 <= lat < 84.0:
        raise ConfigError("roi", [lon, lat], "synthetic products are made between 80 S and 84 N (UTM's range)")
    return geo_mgrs_tile(lon, lat)


def _at(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour, 0))


def _times(request: DemoRequest) -> list[tuple[str, datetime]]:
    """(family, time) of every acquisition the request needs."""
    out: list[tuple[str, datetime]] = []
    partner = "S1" if request.primary == "S2" else "S2"
    step = timedelta(days=-1) if request.direction in ("before", "closest") else timedelta(days=1)
    for window in request.windows:
        day = min(window.start + timedelta(days=1), window.end)
        primary = _at(day, 11 if request.primary == "S2" else 17)
        out.append((request.primary, primary))
        if request.needs_s1 and request.needs_s2:
            out.append((partner, _at((primary + step).date(), 17 if partner == "S1" else 11)))
    if request.earlier_s1:
        out += [("S1", t - REPEAT) for family, t in list(out) if family == "S1"]
    return sorted(set(out), key=lambda ft: (ft[1], ft[0]))


def demo_specs_for(request: DemoRequest) -> tuple[list[S2DemoSpec], list[S1DemoSpec]]:
    """The S2 and S1 specs covering the request's ROI at the times its mode pairs."""
    lon, lat = request.roi.centroid.x, request.roi.centroid.y
    tile = mgrs_tile(lon, lat)
    epsg = (32600 if lat >= 0 else 32700) + int(tile[:2])
    xs, ys = _all_xy(request.roi, epsg)
    width, height = max(xs) - min(xs), max(ys) - min(ys)
    if max(width, height) > MAX_SIDE_KM * 1000:
        raise ConfigError("roi", f"{width / 1000:.1f} x {height / 1000:.1f} km",
                          f"synthetic products are made for ROIs up to {MAX_SIDE_KM:g} km a side")  # fmt: skip
    ulx = math.floor((min(xs) - MARGIN_M) / 60.0) * 60.0
    uly = math.ceil((max(ys) + MARGIN_M) / 60.0) * 60.0
    side = max(max(xs) + MARGIN_M - ulx, uly - (min(ys) - MARGIN_M))
    size = math.ceil(side / 60.0) * 6
    s2, s1 = [], []
    for i, (family, when) in enumerate(_times(request)):
        if family == "S2" and request.needs_s2:
            s2.append(S2DemoSpec(tile_id=tile, epsg=epsg, ulx=ulx, uly=uly, size_10m=size, sensing_time=when,
                                 level=request.s2_level, seed=1000 + i, cloud_fraction=0.1,
                                 nodata_edge=False))  # fmt: skip
        elif family == "S1" and request.needs_s1:
            pixels = math.ceil((max(width, height) + 2 * S1_MARGIN_M) / 10.0)
            s1.append(S1DemoSpec(start_time=when, centre_lon=lon, centre_lat=lat, lines=max(1500, pixels),
                                 samples=max(1200, pixels), scene_origin=(round(lon, 6), round(lat, 6)),
                                 seed=2000 + i))  # fmt: skip
    return s2, s1


def _all_xy(geometry: BaseGeometry, epsg: int) -> tuple[list[float], list[float]]:
    to_utm = Transformer.from_crs(4326, epsg, always_xy=True)
    xs: list[float] = []
    ys: list[float] = []
    for part in getattr(geometry, "geoms", [geometry]):
        x, y = to_utm.transform(*part.exterior.xy)
        xs += list(x)
        ys += list(y)
    return xs, ys


def build_demo_for(request: DemoRequest, folder: Path) -> list[Path]:
    """Generate (or reuse) the products of :func:`demo_specs_for` in ``folder``; their paths."""
    s2, s1 = demo_specs_for(request)
    paths = [make_s2_product(spec, Path(folder)) for spec in s2]
    return paths + [make_s1_product(spec, Path(folder)) for spec in s1]
