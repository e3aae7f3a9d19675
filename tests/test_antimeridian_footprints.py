"""Footprints across the antimeridian as the catalogues and products give them, and the search areas sent.

No real sample in ../shared/data/real-samples crosses 180° (they cover Italy, Ireland...): the S1 tests
take the real ``manifest.safe`` of the sarsen GRD sample and only change its ``gml:coordinates`` to the
corners of an IW GRDH scene over the Aleutians that crosses 180° (corners as ESA writes them: lat,lon with
longitudes in [-180, 180], so the ring jumps from +179 to -177 between two corners).
"""

from __future__ import annotations

import re
import shutil
from datetime import date, datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
from shapely import wkt
from shapely.geometry import MultiPolygon, Polygon, box, mapping, shape

from senprep_core.catalog.cdse_odata import build_filter, record_from_odata
from senprep_core.catalog.dhus import DhusProvider
from senprep_core.catalog.local import LocalProvider
from senprep_core.catalog.records import ProductRecord, SearchQuery
from senprep_core.catalog.selection import minimum_cover
from senprep_core.catalog.stac import search_area
from senprep_core.geo.antimeridian import shift_longitudes, unwrap_longitudes
from senprep_core.geo.roi import ROI, geodesic_area
from senprep_core.pairing import closest_pairs, roi_coverage
from senprep_core.s1.manifest import parse_manifest
from senprep_core.s1.metadata import read_s1_metadata
from senprep_core.timeutil import DateWindow
from tests.conftest import need_real_samples

GRD = "S1B_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993_5371.SAFE"
#: lat,lon corners of an IW GRDH scene over the Aleutians crossing 180 (first near / far range, then the far end)
ALEUTIANS = "51.068420,179.262123 51.491257,-177.319946 53.004833,-177.771301 52.582108,179.720551"
UNWRAPPED = Polygon([(179.262123, 51.06842), (182.680054, 51.491257), (182.228699, 53.004833),
                     (179.720551, 52.582108)])  # fmt: skip
ROI_SPLIT = MultiPolygon([box(179.8, 52.0, 180.0, 52.2), box(-180.0, 52.0, -179.7, 52.2)])


def _edited_manifest(tmp_path: Path) -> Path:
    """A copy of the real GRD (big files linked) whose manifest lists the Aleutian corners."""
    real = need_real_samples("sarsen-testdata", GRD)
    product = tmp_path / GRD
    for path in real.rglob("*"):
        target = product / path.relative_to(real)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif path.name != "manifest.safe":
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path)
    text = (real / "manifest.safe").read_text()
    edited, count = re.subn(r"<gml:coordinates>[^<]*</gml:coordinates>",
                            f"<gml:coordinates>{ALEUTIANS}</gml:coordinates>", text)  # fmt: skip
    assert count == 1
    (product / "manifest.safe").write_text(edited)
    return product


def _check_split(footprint: MultiPolygon) -> None:
    assert isinstance(footprint, MultiPolygon) and len(footprint.geoms) == 2
    east, west = sorted(footprint.geoms, key=lambda p: -p.bounds[0])
    assert east.bounds[0] == pytest.approx(179.262123) and east.bounds[2] == 180.0
    assert west.bounds[0] == -180.0 and west.bounds[2] == pytest.approx(-177.319946)
    assert unwrap_longitudes(footprint).symmetric_difference(UNWRAPPED).area < 1e-12
    assert geodesic_area(footprint) == pytest.approx(geodesic_area(unwrap_longitudes(footprint)), rel=1e-12)
    assert 2e10 < geodesic_area(footprint) < 5e10  # ~250 km x ~170 km, not a band round the globe


def test_real_manifest_footprint_across_180_is_split(tmp_path: Path) -> None:
    product = _edited_manifest(tmp_path)
    info = parse_manifest((product / "manifest.safe").read_bytes())
    _check_split(wkt.loads(info.footprint_wkt))
    meta = read_s1_metadata(product)  # the whole reader, annotation included
    _check_split(wkt.loads(meta.footprint_wkt))
    naive = Polygon([(float(c.split(",")[1]), float(c.split(",")[0])) for c in ALEUTIANS.split()])
    assert naive.bounds[2] - naive.bounds[0] > 350  # what the manifest gives read naively


@pytest.mark.parametrize("form", ["split", "beyond"])
def test_local_search_finds_the_scene_for_an_roi_inside_it(tmp_path: Path, form: str) -> None:
    _edited_manifest(tmp_path / "products")
    provider = LocalProvider(tmp_path / "products")
    roi = ROI.from_geojson(mapping(ROI_SPLIT if form == "split" else unwrap_longitudes(ROI_SPLIT)))
    window = (DateWindow(date(2021, 12, 1), date(2021, 12, 31)),)
    found = provider.search(SearchQuery(roi.geometry, window, ("GRD",))).products
    assert len(found) == 1
    record = found[0]
    _check_split(record.footprint)  # type: ignore[arg-type]
    assert roi_coverage(record, roi) == pytest.approx(100.0)
    assert minimum_cover([record], roi).kept == (record,)
    assert closest_pairs([record], [record], 1.0, roi=roi)[0].secondary is record
    for far in (box(-1.0, 52.0, 1.0, 52.2), box(-171.0, 52.0, -170.0, 52.2), box(178.0, 40.0, 179.0, 41.0)):
        assert not provider.search(SearchQuery(ROI.from_geometry(far).geometry, window, ("GRD",))).products


def _record(footprint: Polygon | MultiPolygon) -> ProductRecord:
    return ProductRecord("S1A_IW_GRDH_1SDV_20260110T073412_20260110T073437_062648_07D2C3_1A2B", "S1", "S1A",
                         "GRD", datetime(2026, 1, 10, 7, 34, 12, tzinfo=timezone.utc), footprint, "x", "t")  # fmt: skip


@pytest.mark.parametrize(
    "given",
    [
        Polygon([(179.262123, 51.06842), (-177.319946, 51.491257), (-177.771301, 53.004833), (179.720551, 52.582108)]),
        UNWRAPPED,
        MultiPolygon([UNWRAPPED.intersection(box(0, -90, 180, 90)),
                      shift_longitudes(UNWRAPPED.intersection(box(180, -90, 540, 90)), -360.0)]),
    ],
    ids=["wrapped", "beyond", "split"],
)  # fmt: skip
def test_records_normalise_every_form_once(given: Polygon | MultiPolygon) -> None:
    record = _record(given)
    _check_split(record.footprint)  # type: ignore[arg-type]
    assert record.footprint_unwrapped is not None
    assert record.footprint_unwrapped.symmetric_difference(UNWRAPPED).area < 1e-9
    again = ProductRecord.from_dict(record.to_dict())
    assert again.footprint_unwrapped is not None and again.footprint_unwrapped.equals(record.footprint_unwrapped)
    assert record.meets(ROI.from_geojson(mapping(ROI_SPLIT)).geometry)
    assert not record.meets(box(-1.0, 52.0, 1.0, 52.2))


def test_cdse_footprint_and_filter_across_180() -> None:
    geo = {"type": "Polygon", "coordinates": [[[179.262123, 51.06842], [-177.319946, 51.491257],
                                               [-177.771301, 53.004833], [179.720551, 52.582108],
                                               [179.262123, 51.06842]]]}  # fmt: skip
    product = {"Name": _record(UNWRAPPED).product_id + ".SAFE", "Id": "abc", "GeoFootprint": geo,
               "ContentDate": {"Start": "2026-01-10T07:34:12.000Z"}, "Attributes": []}  # fmt: skip
    _check_split(record_from_odata(product, "https://odata", "cdse").footprint)  # type: ignore[arg-type]
    roi = ROI.from_geojson(mapping(ROI_SPLIT))
    text = build_filter("SENTINEL-1", ["GRD"], roi.geometry, datetime(2026, 1, 1), datetime(2026, 2, 1))
    areas = [wkt.loads(a) for a in re.findall(r"SRID=4326;([^']+)'", text)]
    assert len(areas) == 2 and " or " in text
    assert all(a.bounds[2] - a.bounds[0] < 1 for a in areas)  # one per side, not a band round the globe
    plain = build_filter("SENTINEL-1", ["GRD"], box(1, 2, 3, 4), datetime(2026, 1, 1), datetime(2026, 2, 1))
    assert plain.count("Intersects") == 1


def test_stac_and_dhus_search_areas_across_180() -> None:
    roi = ROI.from_geojson(mapping(unwrap_longitudes(ROI_SPLIT)))
    area = search_area(roi.geometry)
    assert area.geom_type == "MultiPolygon" and area.bounds == (-180.0, 52.0, 180.0, 52.2)
    assert all(p.bounds[2] - p.bounds[0] < 1 for p in area.geoms)
    assert search_area(box(1, 2, 3, 4)).equals(box(1, 2, 3, 4))
    fake = SimpleNamespace(_api=SimpleNamespace(check_query_length=lambda text: 0.01))
    texts = DhusProvider._area_wkts(fake, roi.geometry)  # type: ignore[arg-type]
    assert len(texts) == 2
    assert {round(wkt.loads(t).centroid.x) for t in texts} == {180, -180}
    assert DhusProvider._area_wkts(fake, box(1, 2, 3, 4)) == ["POLYGON ((3 2, 3 4, 1 4, 1 2, 3 2))"]  # type: ignore[arg-type]


def test_footprint_shape_round_trips_through_geojson() -> None:
    record = _record(UNWRAPPED)
    again = _record(shape(mapping(record.footprint)))
    assert again.footprint_unwrapped is not None and again.footprint_unwrapped.equals(record.footprint_unwrapped)


def test_copy_helper_leaves_the_sample_alone(tmp_path: Path) -> None:
    product = _edited_manifest(tmp_path)
    real = need_real_samples("sarsen-testdata", GRD, "manifest.safe")
    assert ALEUTIANS not in real.read_text()
    shutil.rmtree(product)
    assert real.exists()
