"""Pairing by closest time (directions, window, ties, ROI filter) and the ROI coverage of a footprint."""

from __future__ import annotations

import dataclasses
import math
import random
from datetime import datetime, timedelta, timezone

import pytest
import shapely
from shapely.geometry import Point, Polygon, box
from shapely.geometry.base import BaseGeometry

from senprep_core.catalog.records import ProductRecord
from senprep_core.config.model import PAIR_DIRECTIONS
from senprep_core.errors import ConfigError, InvalidROIError, MetadataError
from senprep_core.geo.roi import ROI, geodesic_area
from senprep_core.pairing import Pair, closest_pairs, roi_coverage

T0 = datetime(2022, 7, 29, 11, 36, 29, tzinfo=timezone.utc)
ROI_BOX = box(-4.27, 55.85, -4.23, 55.87)  # ~2.5 km x 2.2 km over Glasgow
WIDE = box(-6.0, 54.0, -2.0, 57.0)  # an S1-sized footprint holding the ROI
ELSEWHERE = box(10.0, 45.0, 12.0, 47.0)  # a footprint far from the ROI


def record(product_id: str, hours: float, family: str = "S1", footprint: BaseGeometry | None = WIDE) -> ProductRecord:
    """A record sensed ``hours`` after :data:`T0`."""
    return ProductRecord(
        product_id=product_id,
        family=family,
        mission=f"{family}A",
        product_type="GRD" if family == "S1" else "S2MSI2A",
        sensing_time=T0 + timedelta(hours=hours),
        footprint=footprint,
        href=f"local:/products/{product_id}",
        provider="test",
        cloud_cover=None if family == "S1" else 10.0,
    )


S2 = record("S2-main", 0.0, "S2")
AROUND = [record("S1-minus100", -100), record("S1-minus30", -30), record("S1-plus20", 20), record("S1-plus50", 50)]


def only(pairs: list[Pair]) -> Pair:
    assert len(pairs) == 1
    return pairs[0]


# ----- closest_pairs: directions and the window ------------------------------------------


@pytest.mark.parametrize(
    ("direction", "expected", "dt", "reason"),
    [
        ("closest", "S1-plus20", 20.0, "closest S1 within 3 days"),
        ("before", "S1-minus30", -30.0, "closest S1 up to 3 days before"),
        ("after", "S1-plus20", 20.0, "closest S1 up to 3 days after"),
    ],
)
def test_directions_pick_the_right_neighbour(direction: str, expected: str, dt: float, reason: str) -> None:
    pair = only(closest_pairs([S2], AROUND, 3, direction=direction))
    assert pair.primary is S2
    assert pair.secondary is not None and pair.secondary.product_id == expected
    assert pair.dt_hours == pytest.approx(dt, abs=1e-9)
    assert pair.reason == reason


def test_dt_hours_is_signed_secondary_minus_primary() -> None:
    earlier = only(closest_pairs([S2], [record("S1-early", -7.5)], 1))
    later = only(closest_pairs([S2], [record("S1-late", 7.5)], 1))
    assert earlier.dt_hours == pytest.approx(-7.5)
    assert later.dt_hours == pytest.approx(7.5)


def test_before_and_after_skip_the_wrong_side_even_when_closer() -> None:
    s1 = [record("S1-minus60", -60), record("S1-plus1", 1)]
    before = only(closest_pairs([S2], s1, 3, direction="before"))
    assert before.secondary is not None and before.secondary.product_id == "S1-minus60"
    assert only(closest_pairs([S2], [record("S1-plus1", 1)], 3, direction="before")).secondary is None
    assert only(closest_pairs([S2], [record("S1-minus1", -1)], 3, direction="after")).secondary is None


def test_same_time_counts_for_before_and_after() -> None:
    s1 = [record("S1-same", 0.0), record("S1-plus1", 1)]
    for direction in PAIR_DIRECTIONS:
        pair = only(closest_pairs([S2], s1, 3, direction=direction))
        assert pair.secondary is not None and pair.secondary.product_id == "S1-same"
        assert pair.dt_hours == 0.0


def test_window_edge_is_included_and_beyond_is_not() -> None:
    edge = only(closest_pairs([S2], [record("S1-edge", -72)], 3))
    assert edge.secondary is not None and edge.dt_hours == pytest.approx(-72.0)
    beyond = only(closest_pairs([S2], [record("S1-out", 72 + 1 / 3600), record("S1-far", -500)], 3))
    assert beyond.secondary is None and beyond.dt_hours is None
    assert beyond.reason == "no S1 within 3 days"


@pytest.mark.parametrize(
    ("direction", "reason"),
    [("closest", "no S1 within 0.5 days"), ("before", "no S1 up to 0.5 days before"),
     ("after", "no S1 up to 0.5 days after")],
)  # fmt: skip
def test_no_match_in_a_short_window(direction: str, reason: str) -> None:
    pair = only(closest_pairs([S2], AROUND, 0.5, direction=direction))
    assert (pair.secondary, pair.dt_hours, pair.reason) == (None, None, reason)


def test_one_day_and_unbounded_windows() -> None:
    assert only(closest_pairs([S2], AROUND, 1)).reason == "closest S1 within 1 day"
    far = [record("S1-year", 24 * 365)]
    unbounded = only(closest_pairs([S2], far, math.inf, direction="after"))
    assert unbounded.secondary is not None and unbounded.reason == "closest S1 at any time after"
    assert only(closest_pairs([S2], far, 1e12)).secondary is not None  # beyond the calendar: no limit


def test_zero_days_pairs_only_simultaneous_acquisitions() -> None:
    assert only(closest_pairs([S2], AROUND, 0)).secondary is None
    pair = only(closest_pairs([S2], [*AROUND, record("S1-same", 0)], 0))
    assert pair.secondary is not None and pair.secondary.product_id == "S1-same"


# ----- ties ------------------------------------------------------------------------------


def test_equal_gap_goes_to_the_earlier_secondary() -> None:
    s1 = [record("S1-a-later", 10), record("S1-z-earlier", -10)]
    for ordering in (s1, s1[::-1]):
        pair = only(closest_pairs([S2], ordering, 3))
        assert pair.secondary is not None and pair.secondary.product_id == "S1-z-earlier"
        assert pair.dt_hours == pytest.approx(-10.0)


def test_same_time_goes_to_the_smaller_product_id() -> None:
    s1 = [record("S1B_IW_x", 5), record("S1A_IW_z", 5), record("S1A_IW_y", 5)]
    for seed in range(5):
        shuffled = random.Random(seed).sample(s1, len(s1))
        pair = only(closest_pairs([S2], shuffled, 3))
        assert pair.secondary is not None and pair.secondary.product_id == "S1A_IW_y"


# ----- ROI filter ------------------------------------------------------------------------


def test_secondary_missing_the_roi_is_ignored() -> None:
    s1 = [record("S1-near-elsewhere", 1, footprint=ELSEWHERE), record("S1-farther-here", -30)]
    assert only(closest_pairs([S2], s1, 3)).secondary.product_id == "S1-near-elsewhere"  # type: ignore[union-attr]
    pair = only(closest_pairs([S2], s1, 3, roi=ROI_BOX))
    assert pair.secondary is not None and pair.secondary.product_id == "S1-farther-here"


def test_only_non_intersecting_secondaries_say_so() -> None:
    pair = only(closest_pairs([S2], [record("S1-elsewhere", 1, footprint=ELSEWHERE)], 3, roi=ROI_BOX))
    assert pair.secondary is None
    assert pair.reason == "no S1 overlapping the ROI within 3 days"


def test_unknown_footprint_is_kept_and_roi_object_accepted() -> None:
    s1 = [record("S1-unknown", 2, footprint=None)]
    for roi in (ROI_BOX, ROI.from_geometry(ROI_BOX)):
        pair = only(closest_pairs([S2], s1, 3, roi=roi))
        assert pair.secondary is not None and pair.secondary.product_id == "S1-unknown"


def test_touching_footprint_intersects() -> None:
    touching = box(-4.23, 55.80, -4.0, 55.90)  # shares the ROI's east edge
    pair = only(closest_pairs([S2], [record("S1-touch", 2, footprint=touching)], 3, roi=ROI_BOX))
    assert pair.secondary is not None


# ----- several primaries, empty inputs ---------------------------------------------------


def test_each_primary_in_input_order_and_a_secondary_can_be_shared() -> None:
    primaries = [record("S2-late", 48, "S2"), record("S2-early", -48, "S2"), record("S2-mid", 5, "S2")]
    secondaries = [record("S1-a", 0), record("S1-b", 40)]
    pairs = closest_pairs(primaries, secondaries, 3)
    assert [p.primary.product_id for p in pairs] == ["S2-late", "S2-early", "S2-mid"]
    assert [p.secondary.product_id for p in pairs if p.secondary] == ["S1-b", "S1-a", "S1-a"]
    assert [p.dt_hours for p in pairs] == pytest.approx([-8.0, 48.0, -5.0])


def test_empty_inputs() -> None:
    assert closest_pairs([], AROUND, 3) == []
    assert closest_pairs([], [], 3) == []
    pair = only(closest_pairs([S2], [], 3))
    assert (pair.secondary, pair.dt_hours) == (None, None)
    assert pair.reason == "no secondary product within 3 days"


def test_s1_primaries_with_s2_secondaries() -> None:
    s1 = record("S1-main", 0)
    s2 = [record("S2-cloudy", -20, "S2"), record("S2-next", 30, "S2")]
    pair = only(closest_pairs([s1], s2, 3, direction="after"))
    assert pair.secondary is not None and pair.secondary.product_id == "S2-next"
    assert pair.reason == "closest S2 up to 3 days after"


def test_matches_a_brute_force_search() -> None:
    rng = random.Random(42)
    roi = ROI_BOX
    primaries = [record(f"S2-{i:03d}", round(rng.uniform(-600, 600)), "S2") for i in range(60)]
    secondaries = [
        record(f"S1-{i:03d}", round(rng.uniform(-700, 700)), footprint=rng.choice([WIDE, ELSEWHERE, None]))
        for i in range(80)
    ]
    for direction in PAIR_DIRECTIONS:
        for max_days in (0.5, 2, 7):
            pairs = closest_pairs(primaries, secondaries, max_days, direction=direction, roi=roi)
            for primary, pair in zip(primaries, pairs, strict=True):
                limit = timedelta(days=max_days)
                fits = [
                    s for s in secondaries
                    if abs(s.sensing_time - primary.sensing_time) <= limit
                    and (direction != "before" or s.sensing_time <= primary.sensing_time)
                    and (direction != "after" or s.sensing_time >= primary.sensing_time)
                    and (s.footprint is None or s.footprint.intersects(roi))
                ]  # fmt: skip
                best = min(
                    fits,
                    key=lambda s: (abs(s.sensing_time - primary.sensing_time), s.sensing_time, s.product_id),
                    default=None,
                )
                assert pair.secondary == best, (direction, max_days, primary.product_id)


# ----- Pair and validation ---------------------------------------------------------------


def test_pair_is_frozen_and_serialisable() -> None:
    pair = only(closest_pairs([S2], AROUND, 3))
    with pytest.raises(dataclasses.FrozenInstanceError):
        pair.reason = "changed"  # type: ignore[misc]
    assert pair.to_dict() == {
        "primary": "S2-main", "secondary": "S1-plus20", "dt_hours": 20.0, "reason": "closest S1 within 3 days"
    }  # fmt: skip
    lonely = only(closest_pairs([S2], [], 3)).to_dict()
    assert lonely["secondary"] is None and lonely["dt_hours"] is None


@pytest.mark.parametrize("max_days", [-1, -0.01, math.nan, "3", None, True])
def test_bad_max_days(max_days: object) -> None:
    with pytest.raises(ConfigError) as info:
        closest_pairs([S2], AROUND, max_days)  # type: ignore[arg-type]
    assert info.value.key == "pairing.max_days"
    assert ">= 0" in str(info.value)


@pytest.mark.parametrize("direction", ["sideways", "", "previous", None])
def test_bad_direction(direction: object) -> None:
    with pytest.raises(ConfigError) as info:
        closest_pairs([S2], AROUND, 3, direction=direction)  # type: ignore[arg-type]
    assert info.value.key == "pairing.direction"
    assert "closest, before, after" in str(info.value)


def test_direction_spelling_is_forgiving_like_the_config() -> None:
    pair = only(closest_pairs([S2], AROUND, 3, direction=" Before "))
    assert pair.secondary is not None and pair.secondary.product_id == "S1-minus30"


def test_bad_roi_and_naive_time() -> None:
    with pytest.raises(InvalidROIError):
        closest_pairs([S2], AROUND, 3, roi=Point(-4.25, 55.86))
    naive = dataclasses.replace(record("S1-naive", 1), sensing_time=T0.replace(tzinfo=None))
    with pytest.raises(MetadataError, match="S1-naive"):
        closest_pairs([S2], [naive], 3)


def test_other_time_zones_compare_by_instant() -> None:
    cest = timezone(timedelta(hours=2))
    local = dataclasses.replace(record("S1-local", 0), sensing_time=(T0 + timedelta(hours=4)).astimezone(cest))
    pair = only(closest_pairs([S2], [local, record("S1-utc", -5)], 3))
    assert pair.secondary is not None and pair.secondary.product_id == "S1-local"
    assert pair.dt_hours == pytest.approx(4.0)


# ----- roi_coverage ----------------------------------------------------------------------


def _with_footprint(footprint: BaseGeometry | None) -> ProductRecord:
    return record("S1-cover", 0, footprint=footprint)


def _halves(roi: Polygon) -> tuple[Polygon, Polygon]:
    minx, miny, maxx, maxy = roi.bounds
    mid = (minx + maxx) / 2
    return box(minx - 1, miny - 1, mid, maxy + 1), box(mid, miny - 1, maxx + 1, maxy + 1)


@pytest.mark.parametrize(
    "roi",
    [
        ROI_BOX,  # Glasgow
        box(151.18, -33.88, 151.22, -33.85),  # Sydney, southern hemisphere
        box(5.98, -33.0, 6.02, -32.97),  # across the UTM zone 31/32 edge
        box(179.95, 64.0, 179.99, 64.02),  # next to the antimeridian, far north
        box(-70.02, -54.01, -69.98, -53.99),  # Tierra del Fuego
    ],
)
def test_half_and_full_coverage_anywhere(roi: Polygon) -> None:
    west, east = _halves(roi)
    assert roi_coverage(_with_footprint(west), roi) == pytest.approx(50.0, abs=0.5)
    assert roi_coverage(_with_footprint(east), roi) == pytest.approx(50.0, abs=0.5)
    assert roi_coverage(_with_footprint(roi.buffer(0.5)), roi) == pytest.approx(100.0, abs=1e-6)
    assert roi_coverage(_with_footprint(roi), roi) == pytest.approx(100.0, abs=1e-6)


def test_partial_coverages() -> None:
    minx, miny, maxx, maxy = ROI_BOX.bounds
    midx, midy = (minx + maxx) / 2, (miny + maxy) / 2
    quarter = box(minx - 1, miny - 1, midx, midy)
    diagonal = Polygon([(minx, miny), (maxx, miny), (maxx, maxy)])
    assert roi_coverage(_with_footprint(quarter), ROI_BOX) == pytest.approx(25.0, abs=0.5)
    assert roi_coverage(_with_footprint(diagonal), ROI_BOX) == pytest.approx(50.0, abs=0.5)
    assert roi_coverage(_with_footprint(ELSEWHERE), ROI_BOX) == 0.0
    assert roi_coverage(_with_footprint(WIDE), ROI.from_geometry(ROI_BOX)) == pytest.approx(100.0, abs=1e-6)


def test_coverage_uses_true_areas_not_degrees() -> None:
    """A tall ROI split at its middle latitude: the southern half holds more area (the meridians converge)."""
    roi = box(2.5, 60.0, 3.5, 70.0)  # centred on zone 31's central meridian
    south = box(2.0, 59.0, 4.0, 65.0)

    def area(geometry: BaseGeometry) -> float:
        return geodesic_area(shapely.segmentize(geometry, 0.01))  # edges along the parallels

    expected = 100 * area(south.intersection(roi)) / area(roi)
    assert abs(expected - 50.0) > 3  # a plain lon/lat area ratio would be 50 % and fail below
    assert roi_coverage(_with_footprint(south), roi) == pytest.approx(expected, abs=0.5)


def test_unknown_footprint_and_invalid_footprint() -> None:
    assert roi_coverage(_with_footprint(None), ROI_BOX) is None
    minx, miny, maxx, maxy = ROI_BOX.bounds
    bowtie = Polygon([(minx, miny), (maxx, maxy), (maxx, miny), (minx, maxy)])  # two triangles, half the square
    assert not bowtie.is_valid
    assert roi_coverage(_with_footprint(bowtie), ROI_BOX) == pytest.approx(50.0, abs=0.5)


def test_coverage_rejects_an_unusable_roi() -> None:
    with pytest.raises(InvalidROIError):
        roi_coverage(_with_footprint(WIDE), Point(-4.25, 55.86))
