"""Selection helpers: de-duplication of reprocessed products, minimum ROI cover, tile cloud-cover range."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import Polygon, box

from senprep_core.catalog.records import ProductRecord
from senprep_core.catalog.selection import cloud_cover_in_range, deduplicate, minimum_cover
from senprep_core.errors import ConfigError
from senprep_core.geo.roi import ROI

TILE = 109_800.0  # S2 tile side: 100 km MGRS square plus 9.8 km overlap
# upper-left corners of real MGRS tiles in UTM zone 29N (west of Ireland): columns N/P, rows U/V
UL_29 = {"29UNU": (499_980.0, 5_900_040.0), "29UPU": (599_980.0, 5_900_040.0),
         "29UNV": (499_980.0, 6_000_040.0), "29UPV": (599_980.0, 6_000_040.0)}  # fmt: skip
TO_LONLAT = Transformer.from_crs("EPSG:32629", "EPSG:4326", always_xy=True)


def utm_box(left: float, bottom: float, right: float, top: float) -> Polygon:
    """A UTM zone 29N rectangle as a lon/lat polygon (corners transformed, as catalogues list footprints)."""
    corners = [(left, bottom), (right, bottom), (right, top), (left, top)]
    return Polygon([TO_LONLAT.transform(x, y) for x, y in corners])


def tile_footprint(tile: str) -> Polygon:
    ulx, uly = UL_29[tile]
    return utm_box(ulx, uly - TILE, ulx + TILE, uly)


def s2(
    tile: str = "29UNU",
    *,
    day: str = "20240115",
    baseline: str = "0510",
    generated: str = "20240115T134512",
    orbit: int = 80,
    level: str = "L2A",
    mission: str = "S2A",
    footprint: Polygon | None = None,
    cloud: float | None = 10.0,
    provider: str = "test",
    **extra: object,
) -> ProductRecord:
    name = f"{mission}_MSI{level}_{day}T114451_N{baseline}_R{orbit:03d}_T{tile}_{generated}"
    return ProductRecord(
        product_id=name,
        family="S2",
        mission=mission,
        product_type="S2MSI2A" if level == "L2A" else "S2MSI1C",
        sensing_time=datetime.strptime(day + "T114451", "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc),
        footprint=footprint if footprint is not None else (tile_footprint(tile) if tile in UL_29 else None),
        href=f"https://example.invalid/{name}.zip",
        provider=provider,
        cloud_cover=cloud,
        tile_id=tile,
        relative_orbit=orbit,
        extra=dict(extra),
    )


def s1(start: datetime, footprint: Polygon, *, orbit: int = 52123, datatake: str = "064C3F", uid: str = "A1B2",
       **extra: object) -> ProductRecord:  # fmt: skip
    stop = start + timedelta(seconds=25)
    name = (f"S1A_IW_GRDH_1SDV_{start:%Y%m%dT%H%M%S}_{stop:%Y%m%dT%H%M%S}_{orbit:06d}_{datatake}_{uid}")  # fmt: skip
    return ProductRecord(
        product_id=name,
        family="S1",
        mission="S1A",
        product_type="GRD",
        sensing_time=start,
        footprint=footprint,
        href=f"https://example.invalid/{name}.zip",
        provider="test",
        relative_orbit=(orbit - 73) % 175 + 1,
        extra=dict(extra),
    )


def ids(records: object) -> list[str]:
    return [r.product_id for r in records]  # type: ignore[attr-defined]


def tiles(records: object) -> list[str | None]:
    return sorted(r.tile_id for r in records)  # type: ignore[attr-defined]


# -------------------------------------------------------------------------------------------------- deduplicate


def test_newer_baseline_wins() -> None:
    old = s2(baseline="0400", generated="20240115T130000")
    new = s2(baseline="0500", generated="20240301T090000")
    other_tile = s2("29UPU", baseline="0400")
    kept, dropped = deduplicate([old, other_tile, new])
    assert ids(kept) == [other_tile.product_id, new.product_id]
    assert len(dropped) == 1 and dropped[0].record == old
    assert dropped[0].reason == f"superseded by {new.product_id} (baseline 05.00 > 04.00)"


def test_same_baseline_reprocessing_keeps_later_generation() -> None:
    first = s2(generated="20240115T134512")
    again = s2(generated="20240116T080000")
    kept, dropped = deduplicate([again, first])
    assert ids(kept) == [again.product_id]
    assert dropped[0].reason.startswith(f"superseded by {again.product_id} (same baseline 05.10, generated 2024-01-16")
    # a catalogue's later ingestion time does not override the generation time in the name
    late_ingest = replace(first, extra={"ingestion_time": "2025-01-01T00:00:00Z"})
    assert ids(deduplicate([late_ingest, again]).kept) == [again.product_id]


def test_baseline_beats_generation_time_and_levels_are_not_duplicates() -> None:
    newer_baseline = s2(baseline="0510", generated="20240115T134512")
    later_but_older = s2(baseline="0509", generated="20240401T000000")
    l1c = s2(level="L1C", baseline="0509")
    other_day = s2(day="20240118", baseline="0400")
    kept, dropped = deduplicate([later_but_older, newer_baseline, l1c, other_day])
    assert ids(kept) == [newer_baseline.product_id, l1c.product_id, other_day.product_id]
    assert "baseline 05.10 > 05.09" in dropped[0].reason


def test_stac_items_use_the_safe_name_in_extra() -> None:
    old = s2(baseline="0400")
    new = s2(baseline="0509")
    as_stac = [
        replace(r, product_id=f"S2A_T29UNU_20240115T114451_L2A_{i}", extra={"s2:product_uri": r.product_id + ".SAFE"})
        for i, r in enumerate([old, new])
    ]
    kept, dropped = deduplicate(as_stac)
    assert ids(kept) == [as_stac[1].product_id]
    assert "baseline 05.09 > 04.00" in dropped[0].reason


def test_same_product_from_two_providers_keeps_the_first() -> None:
    a = s2(provider="cdse")
    b = s2(provider="earth-search")
    kept, dropped = deduplicate([a, b])
    assert kept == (a,) and dropped[0].record is b
    assert dropped[0].reason == f"duplicate of {a.product_id} listed by cdse"


def test_s1_reprocessed_slice() -> None:
    start = datetime(2024, 1, 15, 6, 20, 10, tzinfo=timezone.utc)
    fp = box(-9, 51, -5, 52.5)
    old = s1(start, fp, uid="A1B2", processing_time="2024-01-15T08:00:00Z")
    new = s1(start, fp, uid="0F3C", processing_time="2024-03-02T10:00:00Z")
    next_slice = s1(start + timedelta(seconds=25), fp, uid="77AA")
    kept, dropped = deduplicate([new, old, next_slice])
    assert ids(kept) == [new.product_id, next_slice.product_id]
    assert dropped[0].reason == f"superseded by {new.product_id} (generated 2024-03-02T10:00:00 > 2024-01-15T08:00:00)"
    # no processing date known: still one kept, deterministically, and the reason says so
    bare_a, bare_b = s1(start, fp, uid="A1B2"), s1(start, fp, uid="0F3C")
    first = deduplicate([bare_a, bare_b])
    second = deduplicate([bare_b, bare_a])
    assert ids(first.kept) == ids(second.kept) == [bare_a.product_id]
    assert "no processing version known" in first.dropped[0].reason


# ------------------------------------------------------------------------------------------------ minimum cover


def roi_utm(left: float, bottom: float, right: float, top: float) -> ROI:
    return ROI.from_geometry(utm_box(left, bottom, right, top))


ALL4 = ["29UNU", "29UPU", "29UNV", "29UPV"]


def test_roi_inside_one_tile_selects_it() -> None:
    roi = roi_utm(520_000, 5_820_000, 540_000, 5_840_000)  # inside 29UNU, away from every overlap
    kept, dropped = minimum_cover([s2(t) for t in ALL4], roi)
    assert tiles(kept) == ["29UNU"]
    assert {d.record.tile_id for d in dropped} == {"29UPU", "29UNV", "29UPV"}
    assert dropped[0].reason == f"adds no ROI coverage beyond {s2('29UNU').product_id}"


def test_roi_across_two_tiles_selects_both() -> None:
    roi = roi_utm(580_000, 5_820_000, 640_000, 5_840_000)  # 29UNU-only part, the overlap strip, 29UPU-only part
    kept, _ = minimum_cover([s2(t) for t in ALL4], roi)
    assert tiles(kept) == ["29UNU", "29UPU"]


def test_roi_in_the_mgrs_overlap_needs_one_tile() -> None:
    # inside the 9.8 km strip shared by all four tiles: any one covers it; the tie goes to the smallest id
    roi = roi_utm(601_000, 5_891_000, 608_000, 5_899_000)
    kept, dropped = minimum_cover([s2(t) for t in reversed(ALL4)], roi)
    assert tiles(kept) == ["29UNU"]
    assert len(dropped) == 3


def test_overlap_does_not_make_a_redundant_third_tile() -> None:
    # crosses 29UNU -> 29UPU inside the band 29UNV/29UPV overlap too: two tiles, not three or four
    roi = roi_utm(560_000, 5_892_000, 650_000, 5_898_000)
    kept, dropped = minimum_cover([s2(t) for t in ALL4], roi)
    assert tiles(kept) == ["29UNU", "29UPU"]
    assert {d.record.tile_id for d in dropped} == {"29UNV", "29UPV"}
    # moved north into the rows' overlap band: 29UNV + 29UPV cover it alone
    roi = roi_utm(560_000, 5_892_000, 650_000, 5_902_000)
    kept, _ = minimum_cover([s2(t) for t in ALL4], roi)
    assert tiles(kept) == ["29UNV", "29UPV"]
    # reaching beyond the band to both sides: all four are needed
    roi = roi_utm(560_000, 5_885_000, 650_000, 5_905_000)
    kept, _ = minimum_cover([s2(t) for t in ALL4], roi)
    assert tiles(kept) == sorted(ALL4)


def test_acquisitions_are_covered_separately_and_unknown_footprints_kept() -> None:
    roi = roi_utm(580_000, 5_820_000, 640_000, 5_840_000)
    day1 = [s2(t) for t in ALL4]
    day2 = [s2(t, day="20240120", orbit=37) for t in ALL4]
    s2b = [s2(t, mission="S2B") for t in ALL4]  # same day and orbit, other satellite: another acquisition
    nofoot = s2("30UUE", day="20240120")
    kept, _ = minimum_cover(day1 + day2 + s2b + [nofoot], roi)
    assert len(kept) == 7 and nofoot in kept


def _slices(n: int, start: datetime) -> list[ProductRecord]:
    """``n`` consecutive IW GRD slices of one descending datatake (~250 km wide, ~170 km long, 1 km overlap)."""
    out = []
    for k in range(n):
        north = 6_000_000 - k * 169_000
        corners = [(380_000, north - 170_000), (630_000, north - 170_000 + 35_000), (660_000, north + 35_000),
                   (410_000, north)]  # fmt: skip
        footprint = Polygon([TO_LONLAT.transform(x, y) for x, y in corners])
        out.append(s1(start + timedelta(seconds=25 * k), footprint, uid=f"{0xA000 + k:04X}"))
    return out


def test_s1_slices_of_one_datatake() -> None:
    start = datetime(2024, 1, 15, 6, 20, 10, tzinfo=timezone.utc)
    slices = _slices(3, start)
    inside = roi_utm(480_000, 5_900_000, 520_000, 5_940_000)  # in the first slice only
    kept, dropped = minimum_cover(slices, inside)
    assert kept == (slices[0],) and len(dropped) == 2
    across = roi_utm(480_000, 5_810_000, 520_000, 5_850_000)  # crosses the first/second slice boundary
    kept, dropped = minimum_cover(slices, across)
    assert kept == (slices[0], slices[1])
    assert dropped[0].reason == f"adds no ROI coverage beyond {slices[0].product_id}, {slices[1].product_id}"
    # another datatake over the same place is another acquisition, selected on its own
    other = [s1(start + timedelta(days=12), slices[0].footprint, orbit=52298, datatake="065A10", uid="BEEF")]  # type: ignore[arg-type]
    kept, _ = minimum_cover(slices + other, inside)
    assert kept == (slices[0], other[0])


def test_areas_are_measured_in_metres_not_degrees() -> None:
    # ROI from 60 to 80 N: two slivers of equal degree area (0.15 % of the ROI in degrees) at its south and north
    # edges. In metres the southern one adds ~0.22 %, the northern one ~0.08 % (< 0.1 %, dropped).
    roi = ROI.from_geometry(box(13.0, 60.0, 17.0, 80.0))
    main = s2("33VVE", footprint=box(12.5, 60.03, 17.5, 79.97))
    south = s2("33VVD", footprint=box(12.5, 59.0, 17.5, 60.03))
    north = s2("33XVL", footprint=box(12.5, 79.97, 17.5, 81.0))
    degree_share = shapely.area(box(13.0, 60.0, 17.0, 60.03)) / roi.geometry.area
    assert degree_share == pytest.approx(shapely.area(box(13.0, 79.97, 17.0, 80.0)) / roi.geometry.area)
    assert degree_share > 0.001  # a degree-based check would keep both slivers
    kept, dropped = minimum_cover([north, main, south], roi)
    assert kept == (main, south)
    assert dropped[0].record is north and "adds no ROI coverage beyond" in dropped[0].reason


def test_sliver_only_product_is_dropped_with_its_share() -> None:
    roi = roi_utm(520_000, 5_820_000, 540_000, 5_840_000)
    touching = s2("29UNU", footprint=utm_box(539_990, 5_800_000, 560_000, 5_860_000))
    kept, dropped = minimum_cover([touching], roi)
    assert kept == ()
    assert dropped[0].reason.startswith("covers less than 0.1 % of the ROI (0.05")


# -------------------------------------------------------------------------------------------------- cloud cover


def test_cloud_cover_range() -> None:
    assert cloud_cover_in_range(s2(cloud=12.0), 0, 30)
    check = cloud_cover_in_range(s2(cloud=35.2), 0, 30)
    assert not check and check.note == "tile cloud cover 35.2 % outside 0-30 %"
    assert cloud_cover_in_range(s2(cloud=30.0), 0, 30)
    unknown = cloud_cover_in_range(s2(cloud=None), 0, 30)
    assert unknown and unknown.note is not None and "no tile cloud cover" in unknown.note
    start = datetime(2024, 1, 15, 6, 20, 10, tzinfo=timezone.utc)
    assert cloud_cover_in_range(s1(start, box(0, 0, 1, 1)), 0, 0)
    with pytest.raises(ConfigError):
        cloud_cover_in_range(s2(), 50, 10)


@pytest.mark.parametrize("bad", ["../../outside", "a/b", "..", ""])
def test_catalogue_ids_that_would_leave_the_cache_are_refused(tmp_path: Path, bad: str) -> None:
    from senprep_core.catalog.cdse import CdseProvider
    from senprep_core.catalog.records import FetchRequest
    from senprep_core.catalog.stac import StacProvider
    from senprep_core.errors import MetadataError

    record = ProductRecord(bad, "S2", "S2A", "S2MSI2A", datetime(2022, 5, 1, tzinfo=timezone.utc), None,
                           "x", "cdse", extra={"odata_id": "abc", "stac_item": {}})  # fmt: skip
    for provider in (
        CdseProvider(odata_url="http://127.0.0.1:9/odata/v1"),
        StacProvider.earth_search("http://127.0.0.1:9"),
    ):
        with pytest.raises(MetadataError, match="unsafe product id"):
            provider.fetch(record, FetchRequest(cache_dir=tmp_path))
    assert list(tmp_path.iterdir()) == []
