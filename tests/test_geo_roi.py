"""ROI parsing, validation and the choice of UTM zone."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
import shapely
from shapely.geometry import MultiPolygon, Polygon

from senprep_core.errors import ConfigError, InvalidROIError
from senprep_core.geo.roi import ROI, utm_epsg_for


def box(lon0: float, lat0: float, lon1: float, lat1: float) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[[lon0, lat0], [lon1, lat0], [lon1, lat1], [lon0, lat1], [lon0, lat0]]]}


def test_polygon_with_hole_keeps_the_hole() -> None:
    outer = [[-4.3, 55.8], [-4.1, 55.8], [-4.1, 55.9], [-4.3, 55.9], [-4.3, 55.8]]
    hole = [[-4.25, 55.83], [-4.15, 55.83], [-4.15, 55.87], [-4.25, 55.87], [-4.25, 55.83]]
    roi = ROI.from_geojson({"type": "Polygon", "coordinates": [outer, hole]})
    assert isinstance(roi.geometry, Polygon)
    assert len(roi.geometry.interiors) == 1
    assert not roi.geometry.contains(shapely.Point(-4.2, 55.85))
    assert roi.geometry.contains(shapely.Point(-4.28, 55.85))
    full = ROI.from_geojson({"type": "Polygon", "coordinates": [outer]})
    hole_only = ROI.from_geojson({"type": "Polygon", "coordinates": [hole]})
    # the hole is subtracted whatever the rings' winding order
    assert roi.geodesic_area_m2 == pytest.approx(full.geodesic_area_m2 - hole_only.geodesic_area_m2, rel=1e-9)
    reversed_hole = ROI.from_geojson({"type": "Polygon", "coordinates": [outer, hole[::-1]]})
    assert reversed_hole.geodesic_area_m2 == pytest.approx(roi.geodesic_area_m2, rel=1e-9)
    # the hole survives projection and rasterisation
    projected = roi.projected(roi.utm_epsg())
    assert len(projected.interiors) == 1


def test_multipolygon_and_feature_collection_of_parts() -> None:
    a, b = box(-4.3, 55.8, -4.25, 55.85), box(-4.2, 55.8, -4.15, 55.85)
    multi = ROI.from_geojson({"type": "MultiPolygon", "coordinates": [a["coordinates"], b["coordinates"]]})
    assert isinstance(multi.geometry, MultiPolygon) and len(multi.geometry.geoms) == 2
    collection = {"type": "FeatureCollection",
                  "features": [{"type": "Feature", "properties": {}, "geometry": g} for g in (a, b)]}  # fmt: skip
    from_features = ROI.from_geojson(json.dumps(collection))
    assert from_features.geometry.equals(multi.geometry)
    geometries = ROI.from_geojson({"type": "GeometryCollection", "geometries": [a, b]})
    assert geometries.geometry.equals(multi.geometry)


def test_touching_features_merge_into_one_polygon() -> None:
    a, b = box(-4.3, 55.8, -4.2, 55.85), box(-4.2, 55.8, -4.1, 55.85)
    collection = {"type": "FeatureCollection",
                  "features": [{"type": "Feature", "properties": {}, "geometry": g} for g in (a, b)]}  # fmt: skip
    roi = ROI.from_geojson(collection)
    assert isinstance(roi.geometry, Polygon)
    assert roi.geometry.equals(shapely.box(-4.3, 55.8, -4.1, 55.85))


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({"type": "Point", "coordinates": [0, 0]}, "Point"),
        ({"type": "LineString", "coordinates": [[0, 0], [1, 1]]}, "LineString"),
        ({"type": "FeatureCollection", "features": []}, "no features"),
        ({"type": "GeometryCollection", "geometries": []}, "no geometries"),
        ({"type": "Feature", "properties": {}, "geometry": None}, "without geometry"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [0, 1], [1, 0], [0, 0]]]}, "Self-intersection"),
        (box(500000, 6200000, 510000, 6210000), "500000"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [2, 2], [0, 0]]]}, "not valid"),
        ({"type": "Polygon", "coordinates": "nope"}, "nope"),
        ("[1, 2", "[1, 2"),
        ("[1, 2]", "[1, 2]"),
        ({**box(0, 0, 1, 1), "crs": {"type": "name", "properties": {"name": "EPSG:32630"}}}, "EPSG:32630"),
    ],
    ids=["point", "line", "empty-fc", "empty-gc", "no-geometry", "bowtie", "projected", "degenerate", "bad-coords",
         "bad-json", "not-object", "projected-crs"],
)  # fmt: skip
def test_unusable_rois_raise(value: Any, fragment: str) -> None:
    with pytest.raises(InvalidROIError) as info:
        ROI.from_geojson(value, key="roi")
    assert isinstance(info.value, ConfigError)
    assert info.value.key == "roi"
    assert fragment in str(info.value)


def test_explicit_crs84_is_accepted() -> None:
    crs = {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}}
    roi = ROI.from_geojson({**box(-4.3, 55.8, -4.2, 55.9), "crs": crs})
    assert roi.utm_epsg() == 32630


@pytest.mark.parametrize(
    ("lon", "lat", "epsg"),
    [
        (-4.25, 55.86, 32630),  # Glasgow
        (-2.8, 56.73, 32630),
        (18.4, -33.9, 32734),  # Cape Town
        (151.2, -33.87, 32756),  # Sydney
        (-74.0, 40.7, 32618),  # New York
        (-179.9, 0.5, 32601),
        (179.9, -0.5, 32760),
    ],
)
def test_utm_zone_of_small_rois(lon: float, lat: float, epsg: int) -> None:
    roi = ROI.from_geojson(box(lon - 0.01, lat - 0.01, lon + 0.01, lat + 0.01))
    assert roi.utm_epsg() == epsg
    assert utm_epsg_for(lon, lat) == epsg


def test_southern_hemisphere_projection_has_positive_northings() -> None:
    roi = ROI.from_geojson(box(18.38, -33.92, 18.42, -33.88))
    assert roi.utm_epsg() == 32734
    minx, miny, maxx, maxy = roi.projected(32734).bounds
    assert 6_200_000 < miny < maxy < 6_300_000
    assert 200_000 < minx < maxx < 800_000


@pytest.mark.parametrize("boundary", [0.0, 6.0, -6.0])
@pytest.mark.parametrize("lat", [55.86, -33.9, 1.0])
def test_zone_boundary_larger_share_wins(boundary: float, lat: float) -> None:
    lower = int((boundary + 180) // 6)  # zone number west of the boundary
    south = lat < 0
    base = 32700 if south else 32600
    west_heavy = ROI.from_geojson(box(boundary - 0.3, lat - 0.1, boundary + 0.1, lat + 0.1))
    east_heavy = ROI.from_geojson(box(boundary - 0.1, lat - 0.1, boundary + 0.3, lat + 0.1))
    assert west_heavy.utm_epsg() == base + lower
    assert east_heavy.utm_epsg() == base + lower + 1


@pytest.mark.parametrize("boundary", [0.0, 6.0, -6.0, -174.0, 114.0])
def test_zone_boundary_tie_goes_to_lower_zone(boundary: float) -> None:
    lower = int((boundary + 180) // 6)
    rng = random.Random(boundary)
    for _ in range(200):
        half, lat, dlat = rng.uniform(1e-4, 2.5), rng.uniform(-80, 80), rng.uniform(1e-4, 1)
        roi = ROI.from_geojson(box(boundary - half, lat - dlat, boundary + half, lat + dlat))
        first = roi.utm_epsg()
        assert first % 100 == lower, (half, lat, dlat)
        assert ROI.from_geojson(roi.to_geojson()).utm_epsg() == first  # deterministic


def test_multipolygon_across_zones_by_area() -> None:
    small_west = box(-0.02, 55.0, -0.01, 55.01)
    big_east = box(0.5, 55.0, 0.7, 55.2)
    roi = ROI.from_geojson({"type": "MultiPolygon", "coordinates": [small_west["coordinates"],
                                                                    big_east["coordinates"]]})  # fmt: skip
    assert roi.utm_epsg() == 32631


def test_roi_to_geojson_round_trip() -> None:
    roi = ROI.from_geojson(box(-4.3, 55.8, -4.2, 55.9), name="glasgow")
    again = ROI.from_geojson(json.dumps(roi.to_geojson()), name="glasgow")
    assert again == roi
    assert roi.bounds == (-4.3, 55.8, -4.2, 55.9)


def test_zone_choice_subtracts_holes() -> None:
    # the western part has the larger outline but a big hole: the eastern part holds more area
    outer = [[-0.3, 55.0], [0.2, 55.0], [0.2, 55.2], [-0.3, 55.2], [-0.3, 55.0]]
    hole = [[-0.28, 55.02], [-0.02, 55.02], [-0.02, 55.18], [-0.28, 55.18], [-0.28, 55.02]]
    for rings in ([outer, hole], [outer, hole[::-1]], [outer[::-1], hole]):
        assert ROI.from_geojson({"type": "Polygon", "coordinates": rings}).utm_epsg() == 32631
