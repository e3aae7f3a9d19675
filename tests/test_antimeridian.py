"""The antimeridian in geo/: split / unwrapped / wrapped forms of one region, ROIs given either way,
zones and polar grids; property tests of the normalisation (round trips, equal areas)."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, Polygon, box, mapping, shape

from senprep_core.errors import InvalidROIError
from senprep_core.geo.antimeridian import (
    crosses_antimeridian,
    lonlat_bbox,
    lonlat_intersection,
    lonlat_intersects,
    needs_fixing,
    normalise_lonlat,
    shift_longitudes,
    split_at_antimeridian,
    unwrap_longitudes,
    wrap_longitude,
)
from senprep_core.geo.grid import TargetGrid
from senprep_core.geo.projection import project_lonlat
from senprep_core.geo.roi import ROI, UPS_NORTH_EPSG, UPS_SOUTH_EPSG, geodesic_area
from senprep_core.outputs.stac_item import grid_footprint_lonlat

pytestmark = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies:hypothesis.errors.HypothesisDeprecationWarning"
)
SETTINGS = settings(
    max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=os.environ.get("CI") == "true",
)

#: The same ~220 km x 110 km region over the Aleutians / Fiji-like longitudes, in both ROI forms.
BEYOND = box(179.0, 51.0, 181.0, 52.0)
SPLIT = MultiPolygon([box(179.0, 51.0, 180.0, 52.0), box(-180.0, 51.0, -179.0, 52.0)])


def _wrapped(polygon: Polygon) -> Polygon:
    """The wrapped form: every vertex's longitude reduced to [-180, 180] (jumps at the antimeridian)."""
    return Polygon([(wrap_longitude(x), y) for x, y in polygon.exterior.coords])


# ----- the three forms ----------------------------------------------------------------------------


def test_split_form_of_a_polygon_past_180() -> None:
    split = split_at_antimeridian(BEYOND)
    assert isinstance(split, MultiPolygon) and len(split.geoms) == 2
    assert split.bounds[0] == -180.0 and split.bounds[2] == 180.0
    assert split.symmetric_difference(SPLIT).area < 1e-12
    for part in split.geoms:  # each part on one side
        assert part.bounds[2] <= 180.0 and (part.bounds[0] >= 179.0 or part.bounds[2] <= -179.0)


def test_unwrapped_form_of_the_split_and_wrapped_forms() -> None:
    for form in (SPLIT, _wrapped(BEYOND), BEYOND):
        unwrapped = unwrap_longitudes(form)
        assert isinstance(unwrapped, Polygon)
        assert unwrapped.symmetric_difference(BEYOND).area < 1e-12
        assert crosses_antimeridian(form)


def test_regions_that_do_not_cross_are_kept_as_given() -> None:
    glasgow = box(-4.3, 55.8, -4.2, 55.9)
    assert not needs_fixing(glasgow)
    split, unwrapped = normalise_lonlat(glasgow)
    assert split is glasgow and unwrapped is glasgow
    east = box(179.0, 10.0, 180.0, 11.0)  # touches 180 from one side only
    assert unwrap_longitudes(east) is east and not crosses_antimeridian(east)
    past = box(181.0, 0.0, 183.0, 1.0)  # wholly past 180: wrapped, not crossing
    assert unwrap_longitudes(past).equals(box(-179.0, 0.0, -177.0, 1.0))


def test_polar_cap_stays_one_band() -> None:
    cap = Polygon([(-180, 85), (180, 85), (180, 90), (-180, 90)])
    assert not needs_fixing(cap)
    assert unwrap_longitudes(cap) is cap


def test_real_s1_like_wrapped_footprint() -> None:
    """Corners as a manifest lists them (lat,lon order swapped): the naive polygon wraps the globe."""
    wrapped = Polygon([(179.51, 51.02), (-178.95, 51.43), (-178.49, 52.95), (179.87, 52.53)])
    assert wrapped.bounds[2] - wrapped.bounds[0] > 350  # the band round the globe
    split, unwrapped = normalise_lonlat(wrapped)
    assert all(p.bounds[2] - p.bounds[0] < 2 for p in split.geoms)
    assert unwrapped.bounds == pytest.approx((179.51, 51.02, 181.51, 52.95))
    assert geodesic_area(split) == pytest.approx(geodesic_area(unwrapped), rel=1e-12)


def test_intersections_across_and_far_from_180() -> None:
    roi = unwrap_longitudes(SPLIT)
    east_side = box(-179.6, 51.2, -179.3, 51.5)  # 180.4..180.7 in the ROI's longitudes
    far_side = box(-0.5, 51.2, 0.5, 51.5)
    other = box(-170.5, 51.2, -169.5, 51.5)
    assert lonlat_intersects(roi, east_side) and lonlat_intersects(east_side, roi)
    assert not lonlat_intersects(roi, far_side) and not lonlat_intersects(roi, other)
    part = lonlat_intersection(roi, east_side)
    assert part.bounds == pytest.approx((180.4, 51.2, 180.7, 51.5))
    assert lonlat_intersection(roi, far_side).is_empty
    # the naive planar test is what went wrong: the split ROI's hull is a band round the globe
    assert SPLIT.convex_hull.intersects(far_side)


def test_projection_of_the_unwrapped_form_is_one_piece() -> None:
    unwrapped = unwrap_longitudes(SPLIT)
    for epsg in (32660, 32601):
        projected = project_lonlat(unwrapped, epsg, 0.01)
        assert isinstance(projected, Polygon) and projected.is_valid
        assert projected.bounds[2] - projected.bounds[0] < 200_000  # ~140 km wide, not across the zone
        parts = project_lonlat(SPLIT, epsg, 0.01)
        assert parts.area == pytest.approx(projected.area, rel=1e-9)


# ----- property tests ------------------------------------------------------------------------------


@st.composite
def crossing_polygons(draw: st.DrawFn) -> Polygon:
    """A convex-ish polygon with continuous longitudes that crosses 180 (or -180)."""
    side = draw(st.sampled_from([180.0, -180.0]))
    lat = draw(st.floats(-75.0, 75.0))
    width = draw(st.floats(0.02, 30.0))
    height = draw(st.floats(0.02, 10.0))
    west_share = draw(st.floats(0.05, 0.95))
    west = side - width * west_share
    n = draw(st.integers(3, 9))
    angles = sorted(draw(st.lists(st.floats(0.0, 2 * math.pi, exclude_max=True), min_size=n, max_size=n,
                                  unique=True)))  # fmt: skip
    cx, cy = west + width / 2, lat
    ring = [(cx + width / 2 * math.cos(a), cy + height / 2 * math.sin(a)) for a in angles]
    polygon = Polygon(ring)
    if not polygon.is_valid or polygon.area < 1e-6 or not (polygon.bounds[0] < side < polygon.bounds[2]):
        polygon = box(west, lat - height / 2, west + width, lat + height / 2)
    return shapely.geometry.polygon.orient(polygon)


def _canonical(polygon: Polygon) -> Polygon:
    """The polygon moved by 360 so its westmost longitude lies in [-180, 180)."""
    west = polygon.bounds[0]
    return polygon if -180 <= west < 180 else shift_longitudes(polygon, 360.0 if west < -180 else -360.0)


@SETTINGS
@given(crossing_polygons())
def test_split_unwrap_round_trip_keeps_the_region(polygon: Polygon) -> None:
    split, unwrapped = normalise_lonlat(polygon)
    lons = np.concatenate([np.asarray(p.exterior.coords)[:, 0] for p in split.geoms])
    assert lons.min() >= -180.0 and lons.max() <= 180.0
    assert all(p.bounds[2] <= 0 or p.bounds[0] >= 0 for p in split.geoms)  # no part spans the globe
    assert split.is_valid and unwrapped.is_valid
    assert -180.0 <= unwrapped.bounds[0] < 180.0 < unwrapped.bounds[2]
    reference = _canonical(polygon)
    # the cut latitudes are rounded to 1e-7 degrees (~1 cm): slivers of at most that height along the cut edges
    slack = 1e-7 * (reference.bounds[2] - reference.bounds[0]) + 1e-12
    assert unwrapped.symmetric_difference(reference).area <= slack
    # every form gives the same two forms back; areas are equal in degrees and on the ellipsoid
    for form in (split, unwrapped, _wrapped(polygon)):
        again_split, again_unwrapped = normalise_lonlat(form)
        assert again_unwrapped.symmetric_difference(unwrapped).area <= slack
        assert again_split.area == pytest.approx(split.area, rel=1e-9)
    assert split.area == pytest.approx(unwrapped.area, rel=1e-9)
    # on the ellipsoid too, once long edges follow their lon/lat line (the cut adds vertices on them)
    dense_split, dense_unwrapped = (shapely.segmentize(g, 0.05) for g in (split, unwrapped))
    assert geodesic_area(dense_split) == pytest.approx(geodesic_area(dense_unwrapped), rel=1e-6)


@SETTINGS
@given(crossing_polygons(), st.floats(-1.0, 1.0), st.floats(-1.0, 1.0))
def test_intersection_does_not_depend_on_the_form(polygon: Polygon, dx: float, dy: float) -> None:
    _split, unwrapped = normalise_lonlat(polygon)
    c = unwrapped.centroid
    probe = box(c.x + dx - 0.01, c.y + dy * 0.2 - 0.01, c.x + dx + 0.01, c.y + dy * 0.2 + 0.01)
    wrapped_probe = shift_longitudes(probe, -360.0) if probe.bounds[0] >= 180 else probe
    expected = unwrapped.intersects(probe)
    assert lonlat_intersects(unwrapped, wrapped_probe) == expected
    assert lonlat_intersects(wrapped_probe, unwrapped) == expected
    assert lonlat_intersection(wrapped_probe, unwrapped).area == pytest.approx(
        unwrapped.intersection(probe).area, rel=1e-9, abs=1e-15
    )
    # and the far side of the Earth never meets it
    assert not lonlat_intersects(unwrapped, shift_longitudes(probe, 180.0))


@SETTINGS
@given(crossing_polygons())
def test_roi_from_either_form_is_the_same_region(polygon: Polygon) -> None:
    split, unwrapped = normalise_lonlat(polygon)
    from_split = ROI.from_geojson(mapping(split))
    from_beyond = ROI.from_geojson(mapping(_canonical(polygon)))
    slack = 1e-7 * (unwrapped.bounds[2] - unwrapped.bounds[0]) + 1e-12  # cut latitudes rounded to 1e-7 degrees
    assert from_split.geometry.symmetric_difference(from_beyond.geometry).area <= slack
    assert from_split.utm_epsg() == from_beyond.utm_epsg()
    assert from_split.utm_epsg() % 100 in (59, 60, 1, 2, 3, 58, 57, 4, 5, 6)  # next to the antimeridian
    assert from_split.geodesic_area_m2 == pytest.approx(from_beyond.geodesic_area_m2, rel=1e-9)


# ----- the ROI ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", [mapping(BEYOND), mapping(SPLIT), mapping(shift_longitudes(BEYOND, -360.0))],
                         ids=["past-180", "split", "past-minus-180"])  # fmt: skip
def test_roi_across_180_in_every_form(form: dict) -> None:
    roi = ROI.from_geojson(form)
    assert roi.crosses_antimeridian
    assert roi.geometry.symmetric_difference(BEYOND).area < 1e-12
    assert roi.utm_epsg() == 32660  # 179..180 and 180..181 are equal in area: the western zone (60) wins the tie
    assert roi.grid_epsg() == 32660
    out = roi.to_geojson()
    assert out["type"] == "MultiPolygon"
    assert shape(out).symmetric_difference(SPLIT).area < 1e-12
    assert ROI.from_geojson(out).geometry.equals(roi.geometry)


def test_zone_follows_the_larger_side_of_180() -> None:
    east_heavy = ROI.from_geometry(box(179.5, 51.0, 182.0, 52.0))
    west_heavy = ROI.from_geometry(box(177.0, -20.0, 180.5, -19.0))
    assert east_heavy.utm_epsg() == 32601
    assert west_heavy.utm_epsg() == 32760
    grid_x = east_heavy.projected(32601).bounds
    assert 0 < grid_x[0] < grid_x[2] < 1_000_000  # one piece in zone 1, not a band across the zone


def test_split_roi_search_band_is_gone() -> None:
    """The measured bug: the split form read planar spanned -180..180 and chose zone 2 (or a band)."""
    roi = ROI.from_geojson(mapping(SPLIT))
    assert roi.bounds[2] - roi.bounds[0] == pytest.approx(2.0)
    assert not lonlat_intersects(roi.geometry, box(-1, 51, 1, 52))


@pytest.mark.parametrize(
    ("geometry", "fragment"),
    [(box(170, 0, 540, 1), "projected metres"), (box(-400, 0, -399, 1), "projected metres"),
     (box(179, 89, 181, 91), "projected metres")],
)  # fmt: skip
def test_longitudes_too_far_out_are_refused(geometry: Polygon, fragment: str) -> None:
    with pytest.raises(InvalidROIError, match=fragment):
        ROI.from_geometry(geometry)


@pytest.mark.parametrize(
    ("geometry", "epsg"),
    [(box(10.0, 84.2, 12.0, 84.4), UPS_NORTH_EPSG), (box(170.0, 85.0, 190.0, 86.0), UPS_NORTH_EPSG),
     (box(-60.0, -82.0, -50.0, -81.0), UPS_SOUTH_EPSG), (box(10.0, 83.0, 12.0, 83.9), 32632),
     (box(-60.0, -79.9, -59.0, -79.0), 32721)],
    ids=["north", "north-across-180", "south", "below-84", "above-80s"],
)  # fmt: skip
def test_polar_rois_get_ups(geometry: Polygon, epsg: int) -> None:
    roi = ROI.from_geometry(geometry)
    assert roi.grid_epsg() == epsg
    projected = roi.projected(epsg)
    assert projected.is_valid and projected.area > 0
    # the projected area is the geodesic one (UPS is conformal: small scale error near the pole)
    assert projected.area == pytest.approx(roi.geodesic_area_m2, rel=0.01)


def test_polar_cap_roi_projects_to_a_disc() -> None:
    cap = ROI.from_geometry(Polygon([(-180, 88), (180, 88), (180, 90), (-180, 90)]))
    assert cap.grid_epsg() == UPS_NORTH_EPSG
    disc = cap.projected(UPS_NORTH_EPSG)
    assert disc.is_valid
    parallel = Polygon([(lon, 88.0) for lon in np.linspace(-180.0, 180.0, 721)])
    assert disc.area == pytest.approx(geodesic_area(parallel), rel=0.02)  # UPS scale 0.994 at the pole
    assert disc.contains(shapely.Point(2_000_000, 2_000_000))  # the pole


@pytest.mark.parametrize(
    ("grid", "kind", "crossing"),
    [
        (TargetGrid(32660, 10.0, 704320.0, 5762540.0, 251, 233), "MultiPolygon", True),  # Aleutians, zone 60
        (TargetGrid(32601, 10.0, 292500.0, 5762540.0, 251, 233), "MultiPolygon", True),  # the same, zone 1
        (TargetGrid(32661, 10.0, 1998720.0, 2101280.0, 256, 256), "MultiPolygon", True),  # UPS, 180 side of the pole
        (TargetGrid(32661, 10.0, 1998720.0, 2001280.0, 256, 256), "Polygon", False),  # holds the north pole
        (TargetGrid(32761, 10.0, 1998720.0, 2001280.0, 256, 256), "Polygon", False),  # holds the south pole
        (TargetGrid(32630, 10.0, 421020.0, 6191620.0, 250, 250), "Polygon", False),  # Glasgow
    ],
)  # fmt: skip
def test_stac_geometry_of_grids(grid: TargetGrid, kind: str, crossing: bool) -> None:
    footprint = grid_footprint_lonlat(grid)
    assert footprint.geom_type == kind and footprint.is_valid
    assert footprint.bounds[0] >= -180.0 and footprint.bounds[2] <= 180.0
    west, _south, east, _north = lonlat_bbox(footprint)
    assert (west > east) == crossing
    if kind == "MultiPolygon":  # the parts put together are the grid's outline
        projected = project_lonlat(unwrap_longitudes(footprint), grid.epsg)
        box_area = grid.width * grid.height * grid.resolution**2
        assert projected.area == pytest.approx(box_area, rel=1e-3)


def test_self_crossing_roi_past_180_is_refused() -> None:
    bowtie = Polygon([(179.0, 51.0), (181.0, 52.0), (181.0, 51.0), (179.0, 52.0)])
    with pytest.raises(InvalidROIError, match="Self-intersection"):
        ROI.from_geometry(bowtie)
