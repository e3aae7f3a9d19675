"""STAC providers (Earth Search, Planetary Computer, CDSE STAC) against a real STAC API on 127.0.0.1.

The server is rustac's (tests/servers/stac_server.py) loaded with the real items of
../shared/data/real-samples/stac plus synthetic S1/S2 items in each catalogue's dialect. Expected
results are computed here from the item JSON alone, independently of the provider's mapping.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator, Sequence
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from shapely.geometry import box, shape
from shapely.geometry.base import BaseGeometry

from senprep_core.catalog.cdse_stac import CdseStacProvider
from senprep_core.catalog.records import FetchRequest, ProductRecord, SearchQuery
from senprep_core.catalog.stac import PlanetaryComputerSigner, StacProvider
from senprep_core.catalog.stac_items import item_to_record
from senprep_core.errors import DownloadError, MetadataError, SourceError
from senprep_core.s2.product import open_s2_metadata
from senprep_core.timeutil import DateWindow
from tests.conftest import IN_CI, need_real_samples
from tests.servers.fileserver import serve_files
from tests.servers.stac_server import (
    EXPECTED_ID,
    FILTER_CONFORMANCE,
    QUERY_CONFORMANCE,
    StacServer,
    load_items,
    rustac_command,
    synthetic_s1_items,
    synthetic_s2_items,
)

pytestmark = pytest.mark.integration

# Real items: file -> (product id, product type, sensing time, cloud cover, tile, relative orbit)
REAL = {
    "cdse/S2C_MSIL2A_20250330T100051_N0511_R122_T33UWP_20250330T145914_cdse_stac_v110.json": (
        "S2C_MSIL2A_20250330T100051_N0511_R122_T33UWP_20250330T145914", "S2MSI2A",
        "2025-03-30T10:00:51.025", 86.041468, "33UWP", 122),
    "earth-search/sentinel-2-c1-l2a__S2B_T20EPT_20250731T131905_L2A.json": (
        "S2B_MSIL2A_20250731T131909_N0511_R095_T20EPT_20250731T143919", "S2MSI2A",
        "2025-07-31T13:19:22.930", 26.02542, "20EPT", 95),
    "earth-search/sentinel-2-c1-l2a__S2B_T24MUA_20250731T130245_L2A.json": (
        "S2B_MSIL2A_20250731T130249_N0511_R095_T24MUA_20250731T132745", "S2MSI2A",
        "2025-07-31T13:03:19.635", 41.489562, "24MUA", 95),
    "earth-search/sentinel-2-l1c__S2B_20EPT_20250731_0_L1C.json": (
        "S2B_MSIL1C_20250731T131909_N0511_R095_T20EPT_20250731T143530", "S2MSI1C",
        "2025-07-31T13:19:22.930", 0.0, "20EPT", 95),
    "earth-search/sentinel-2-l2a__S2A_13TDE_20231008_0_L2A.json": (
        "S2A_MSIL2A_20231008T175231_N0509_R141_T13TDE_20231008T233154", "S2MSI2A",
        "2023-10-08T18:02:55.276", 0.000299, "13TDE", 141),
    "earth-search/sentinel-2-l2a__S2B_20EPT_20250731_0_L2A.json": (
        "S2B_MSIL2A_20250731T131909_N0511_R095_T20EPT_20250731T143919", "S2MSI2A",
        "2025-07-31T13:19:22.930", 26.02542, "20EPT", 95),
    "odc-stac-testdata/S2A_28QCH_20200714_0_L2A.json": (
        "S2A_MSIL2A_20200714T115221_N0214_R123_T28QCH_20200714T191310", "S2MSI2A",
        "2020-07-14T11:55:52.000", 2.36, "28QCH", 123),
    "odc-stac-testdata/S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531.json": (
        "S2B_MSIL2A_20190629T212529_N0212_R043_T06VVN_20201006T080531", "S2MSI2A",
        "2019-06-29T21:25:29.024", 0.314306, "06VVN", 43),
    "planetary-computer/sentinel-2-l2a__S2A_MSIL2A_20190101T000001_R116_T58UFE_20201007T214651.json": (
        "S2A_MSIL2A_20190101T000001_N0212_R116_T58UFE_20201007T214651", "S2MSI2A",
        "2019-01-01T00:00:01.024", 46.556288, "58UFE", 116),
    "planetary-computer/sentinel-2-l2a__S2A_MSIL2A_20190101T000001_R116_T58UFF_20201007T214659.json": (
        "S2A_MSIL2A_20190101T000001_N0212_R116_T58UFF_20201007T214659", "S2MSI2A",
        "2019-01-01T00:00:01.024", 54.05283, "58UFF", 116),
    "planetary-computer/sentinel-2-l2a__S2A_MSIL2A_20190101T000001_R116_T58UFG_20201007T214655.json": (
        "S2A_MSIL2A_20190101T000001_N0212_R116_T58UFG_20201007T214655", "S2MSI2A",
        "2019-01-01T00:00:01.024", 91.766967, "58UFG", 116),
}  # fmt: skip


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def _real(folder: str) -> list[dict[str, Any]]:
    return load_items(need_real_samples("stac", folder))


def _expected_id(item: dict[str, Any]) -> str:
    props = item["properties"]
    if EXPECTED_ID in props:
        return str(props[EXPECTED_ID])
    matches = [v[0] for k, v in REAL.items() if item["id"] in k]
    assert len(matches) == 1, item["id"]
    return matches[0]


def expected(
    items: Sequence[dict[str, Any]],
    collections: dict[str, Sequence[str]],
    roi: BaseGeometry,
    windows: Sequence[tuple[date, date]],
    cloud: tuple[float, float],
) -> list[str]:
    """The product ids a search must return, from the raw item JSON (sorted by time, then id)."""
    found: dict[str, datetime] = {}
    for item in items:
        props = item["properties"]
        ptype = next((t for t, colls in collections.items() if item["collection"] in colls), None)
        if ptype is None:
            continue
        when = _utc(props["datetime"])
        if not any(lo <= when.date() <= hi for lo, hi in windows):
            continue
        if not shape(item["geometry"]).intersects(roi):
            continue
        if ptype != "GRD" and not cloud[0] <= props["eo:cloud_cover"] <= cloud[1]:
            continue
        found.setdefault(_expected_id(item), when)
    return sorted(found, key=lambda pid: (found[pid], pid))


def _query(roi: BaseGeometry, windows: Sequence[tuple[date, date]], types: tuple[str, ...], cloud=(0.0, 100.0)):
    return SearchQuery(roi, tuple(DateWindow(a, b) for a, b in windows), types, cloud)


@pytest.fixture(scope="module", autouse=True)
def _rustac_installed() -> None:
    if rustac_command() is None:
        message = "rustac is not installed (pip install rustac)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def _server(items: list[dict[str, Any]], **kwargs: Any) -> Iterator[StacServer]:
    server = StacServer(items, **kwargs).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def es_items() -> list[dict[str, Any]]:
    late = datetime(2023, 5, 6, 10, 40, 1, tzinfo=timezone.utc)
    return [*synthetic_s2_items("earth-search"), *synthetic_s2_items("earth-search", level="L1C", n=6, start=late),
            *_real("earth-search")]  # fmt: skip


@pytest.fixture(scope="module")
def es_server(es_items: list[dict[str, Any]]) -> Iterator[StacServer]:
    yield from _server(es_items)


@pytest.fixture(scope="module")
def pc_items() -> list[dict[str, Any]]:
    return [*synthetic_s2_items("planetary-computer"), *synthetic_s1_items("planetary-computer"),
            *_real("planetary-computer")]  # fmt: skip


@pytest.fixture(scope="module")
def pc_server(pc_items: list[dict[str, Any]]) -> Iterator[StacServer]:
    yield from _server(pc_items)


@pytest.fixture(scope="module")
def cdse_items() -> list[dict[str, Any]]:
    return [*synthetic_s2_items("cdse"), *synthetic_s1_items("cdse"), *_real("cdse")]


@pytest.fixture(scope="module")
def cdse_server(cdse_items: list[dict[str, Any]]) -> Iterator[StacServer]:
    yield from _server(cdse_items)


ROI = box(11.1, 47.1, 11.2, 47.2)  # inside the synthetic S2 footprints (not the ones 3 degrees east)
S1_ROI = box(11.0, 47.0, 11.1, 47.1)  # inside the synthetic S1 footprints and the S2 ones
WINDOWS = [(date(2023, 5, 1), date(2023, 5, 20)), (date(2023, 5, 15), date(2023, 6, 10))]  # overlapping


# ---------------------------------------------------------------- item -> record on every real item


@pytest.mark.realdata
@pytest.mark.parametrize("name", sorted(REAL))
def test_real_item_mapping(name: str) -> None:
    item = json.loads(need_real_samples("stac", name).read_text())
    pid, ptype, when, cloud, tile, orbit = REAL[name]
    record = item_to_record(item, "test")
    assert record.product_id == pid
    assert record.family == "S2" and record.mission == pid[:3]
    assert record.product_type == ptype
    assert record.sensing_time == _utc(when + "+00:00")
    assert record.cloud_cover == pytest.approx(cloud)
    assert record.tile_id == tile
    assert record.relative_orbit == orbit
    assert record.online and record.extra["stac_item"]["id"] == item["id"]
    assert record.footprint is not None and record.footprint.equals(shape(item["geometry"]))
    assert record.href == next(link["href"] for link in item["links"] if link["rel"] == "self")


def test_synthetic_s1_mapping() -> None:
    for dialect in ("planetary-computer", "cdse"):
        for item in synthetic_s1_items(dialect, n=3):
            record = item_to_record(item, dialect)
            assert record.product_id == item["properties"][EXPECTED_ID]  # PC: the CRC comes from the hrefs
            assert (record.family, record.product_type, record.mission) == ("S1", "GRD", "S1A")
            assert record.relative_orbit == item["properties"]["sat:relative_orbit"]
            assert record.cloud_cover is None and record.tile_id is None
            assert record.extra["orbit_state"] == item["properties"]["sat:orbit_state"]
            assert record.extra["polarizations"] == ["VV", "VH"]


# ---------------------------------------------------------------- searches against the server


def _ids(result) -> list[str]:  # type: ignore[no-untyped-def]
    return [r.product_id for r in result.products]


def test_earth_search_roi_dates_cloud_paging(es_server: StacServer, es_items: list[dict[str, Any]]) -> None:
    provider = StacProvider.earth_search(url=es_server.url, page_size=4)
    es_server.clear()
    cloud = (10.0, 80.0)
    query = _query(ROI, WINDOWS, ("S2MSI2A", "S2MSI1C"), cloud)
    result = provider.search(query)
    want = expected(es_items, provider.collections, ROI, WINDOWS, cloud)
    assert _ids(result) == want
    assert len(want) >= 8 and not result.problems
    es_server.clear()
    raw = [item["id"] for item in provider.search_items(query)]
    assert len(set(raw)) < len(raw)  # the overlapping windows found some items twice: merged
    assert len(set(raw)) > len(want)  # the server ignored the cloud range: re-checked client-side
    assert {r.product_type for r in result.products} == {"S2MSI2A", "S2MSI1C"}
    assert all(10 <= (r.cloud_cover or -1) <= 80 for r in result.products)
    bodies = es_server.search_bodies
    searches = [b for b in bodies if "skip" not in b]
    assert len(searches) == 2  # one per window (S2 only)
    assert len(bodies) > len(searches) + 2  # next pages were followed, server-side
    assert all("query" not in b and "filter" not in b for b in bodies)  # rustac declares neither
    assert all(b["limit"] == 4 and b["intersects"]["type"] == "Polygon" for b in bodies)
    assert {b["datetime"] for b in searches} == {
        "2023-05-01T00:00:00Z/2023-05-20T23:59:59.999999Z",
        "2023-05-15T00:00:00Z/2023-06-10T23:59:59.999999Z",
    }


@pytest.mark.realdata
def test_earth_search_real_items_and_dedup(es_server: StacServer, es_items: list[dict[str, Any]]) -> None:
    # the real T20EPT L2A product is in two collections (sentinel-2-l2a and sentinel-2-c1-l2a): listed once
    both = {"S2MSI2A": ("sentinel-2-c1-l2a", "sentinel-2-l2a"), "S2MSI1C": ("sentinel-2-l1c",)}
    provider = StacProvider.earth_search(url=es_server.url, collections=both)
    roi = box(-59.5, -60.5, -59.3, -60.3)
    windows = [(date(2025, 7, 31), date(2025, 7, 31))]
    result = provider.search(_query(roi, windows, ("S2MSI2A", "S2MSI1C")))
    assert _ids(result) == expected(es_items, both, roi, windows, (0.0, 100.0))
    assert _ids(result) == [
        "S2B_MSIL1C_20250731T131909_N0511_R095_T20EPT_20250731T143530",
        "S2B_MSIL2A_20250731T131909_N0511_R095_T20EPT_20250731T143919",
    ]
    only_l2a = provider.search(_query(roi, windows, ("S2MSI2A",), (30.0, 100.0)))
    assert _ids(only_l2a) == []  # its cloud cover is 26 %


def test_planetary_computer_s2_and_s1(pc_server: StacServer, pc_items: list[dict[str, Any]]) -> None:
    provider = StacProvider.planetary_computer(url=pc_server.url, page_size=3)
    pc_server.clear()
    cloud = (0.0, 50.0)
    result = provider.search(_query(S1_ROI, WINDOWS, ("S2MSI2A", "GRD"), cloud))
    want = expected(pc_items, provider.collections, S1_ROI, WINDOWS, cloud)
    assert _ids(result) == want
    families = [r.family for r in result.products]
    assert families.count("S1") >= 5 and families.count("S2") >= 4
    s1 = next(r for r in result.products if r.family == "S1")
    assert s1.product_id.startswith(s1.extra["item_id"] + "_") and s1.product_id.count("_") == 8  # CRC included
    assert s1.extra["collection"] == "sentinel-1-grd" and s1.extra["polarizations"] == ["VV", "VH"]
    bodies = pc_server.search_bodies
    assert len([b for b in bodies if "skip" not in b]) == 4  # two windows x (S2, S1)
    assert len(bodies) > 8


@pytest.mark.realdata
def test_planetary_computer_real_items(pc_server: StacServer, pc_items: list[dict[str, Any]]) -> None:
    provider = StacProvider.planetary_computer(url=pc_server.url)
    roi = box(167.45, 54.06, 167.5, 54.1)  # where 58UFE and 58UFF overlap, not 58UFG
    windows = [(date(2018, 12, 31), date(2019, 1, 1))]
    result = provider.search(_query(roi, windows, ("S2MSI2A",), (0.0, 60.0)))
    assert _ids(result) == expected(pc_items, provider.collections, roi, windows, (0.0, 60.0))
    assert [r.tile_id for r in result.products] == ["58UFE", "58UFF"]


def test_cdse_stac(cdse_server: StacServer, cdse_items: list[dict[str, Any]]) -> None:
    provider = CdseStacProvider(cdse_server.url, page_size=5)
    cloud = (25.0, 100.0)
    result = provider.search(_query(S1_ROI, WINDOWS, ("S2MSI2A", "GRD"), cloud))
    assert _ids(result) == expected(cdse_items, provider.collections, S1_ROI, WINDOWS, cloud)
    s1 = [r for r in result.products if r.family == "S1"]
    assert s1 and all(r.size_bytes == 1_700_000_000 for r in s1)
    real = provider.search(_query(box(15.0, 48.5, 15.1, 48.6), [(date(2025, 3, 30),) * 2], ("S2MSI2A",)))
    assert _ids(real) == ["S2C_MSIL2A_20250330T100051_N0511_R122_T33UWP_20250330T145914"]


@pytest.mark.parametrize(
    ("conformance", "key"), [(QUERY_CONFORMANCE, "query"), (FILTER_CONFORMANCE, "filter")], ids=["query", "cql2"]
)
def test_declared_filter_sent_and_rechecked(es_items: list[dict[str, Any]], conformance: str, key: str) -> None:
    """A server that declares query / CQL2 filter gets the cloud range; when it ignores it (as here: the
    proxy strips it), the client-side re-check still gives exactly the expected products."""
    for server in _server(es_items, advertise=[conformance], ignore_filters=True):
        provider = StacProvider.earth_search(url=server.url, page_size=10)
        cloud = (20.0, 60.0)
        result = provider.search(_query(ROI, WINDOWS, ("S2MSI2A",), cloud))
        assert _ids(result) == expected(es_items, {"S2MSI2A": ("sentinel-2-c1-l2a",)}, ROI, WINDOWS, cloud)
        first = server.search_bodies[0]
        if key == "query":
            assert first["query"] == {"eo:cloud_cover": {"gte": 20.0, "lte": 60.0}}
        else:
            assert first["filter-lang"] == "cql2-json"
            assert first["filter"]["op"] == "and" and len(first["filter"]["args"]) == 2


def test_unserved_product_type(es_server: StacServer) -> None:
    provider = StacProvider.earth_search(url=es_server.url)
    with pytest.raises(SourceError, match="does not serve GRD"):
        provider.search(_query(ROI, WINDOWS, ("GRD",)))


# ---------------------------------------------------------------- fetch


def test_earth_search_fetch_writes_item(es_server: StacServer, tmp_path: Path) -> None:
    provider = StacProvider.earth_search(url=es_server.url)
    record = provider.search(_query(ROI, WINDOWS[:1], ("S2MSI2A",), (0.0, 30.0))).products[0]
    fetched = provider.fetch(record, FetchRequest(cache_dir=tmp_path))
    path = tmp_path / "earth-search" / f"{record.product_id}.json"
    assert fetched.href == str(path) and path.is_file()
    assert fetched.product_id == record.product_id and fetched.extra["stac_item_href"] == record.href
    meta = open_s2_metadata(fetched.href)
    assert meta.product_id == record.product_id and meta.tile_id == "32TPT"
    assert meta.band_files["B04"][10].startswith("/vsicurl/https://example.invalid/earth-search/")
    assert meta.offsets["B04"] == -1000 and meta.quantification_value == 10000
    # a record read back from JSON (no item kept in it) is fetched again through its self link
    es_server.clear()
    again = provider.fetch(ProductRecord.from_dict(record.to_dict()), FetchRequest(cache_dir=tmp_path / "2"))
    assert json.loads(Path(again.href).read_text()) == json.loads(path.read_text())
    assert es_server.requests == [("GET", urlparse(record.href).path, None)]


def test_unreachable_api_is_a_download_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    provider = StacProvider.earth_search(url=f"http://127.0.0.1:{port}/v1", retries=0, timeout=5)
    with pytest.raises(DownloadError, match="cannot open the STAC API"):
        provider.search(_query(ROI, WINDOWS, ("S2MSI2A",)))


@pytest.mark.realdata
def test_earth_search_l1c_requester_pays(es_server: StacServer, tmp_path: Path) -> None:
    provider = StacProvider.earth_search(url=es_server.url)
    roi = box(-59.5, -60.5, -59.3, -60.3)
    record = provider.search(_query(roi, [(date(2025, 7, 31),) * 2], ("S2MSI1C",))).products[0]
    with pytest.raises(SourceError, match="not on public HTTP"):
        provider.fetch(record, FetchRequest(cache_dir=tmp_path))


def test_planetary_computer_fetch_signs_hrefs(pc_server: StacServer, tmp_path: Path) -> None:
    sas = tmp_path / "sas"
    (sas / "token").mkdir(parents=True)
    (sas / "token" / "sentinel-2-l2a").write_text(
        json.dumps({"msft:expiry": "2099-01-01T00:00:00Z", "token": "st=2099&sp=rl&sig=test%2Bsig"})
    )
    with serve_files(sas) as fs:
        provider = StacProvider.planetary_computer(url=pc_server.url, sas_url=fs.url)
        result = provider.search(_query(ROI, WINDOWS, ("S2MSI2A", "GRD"), (0.0, 100.0)))
        s2 = [r for r in result.products if r.family == "S2"][:2]
        for record in s2:
            fetched = provider.fetch(record, FetchRequest(cache_dir=tmp_path / "cache"))
            item = json.loads(Path(fetched.href).read_text())
            assert item["assets"]["B04"]["href"].endswith(".tif?st=2099&sp=rl&sig=test%2Bsig")
            assert open_s2_metadata(fetched.href).band_files["B04"][10].endswith("sig=test%2Bsig")
        assert [p for _m, p, _r in fs.requests] == ["/token/sentinel-2-l2a"]  # one token, reused
        s1 = next(r for r in provider.search(_query(S1_ROI, WINDOWS, ("GRD",))).products)
        with pytest.raises(DownloadError, match="token/sentinel-1-grd"):  # S1 hrefs signed with their own token
            provider.fetch(s1, FetchRequest(cache_dir=tmp_path))


def test_signer_leaves_other_hosts_and_signed_hrefs() -> None:
    calls: list[str] = []
    signer = PlanetaryComputerSigner("http://sas.invalid", get_json=lambda url: calls.append(url) or {"token": "t=1"})
    item = {"id": "x", "collection": "c", "assets": {
        "a": {"href": "https://acc.blob.core.windows.net/c/a.tif"},
        "b": {"href": "https://acc.blob.core.windows.net/c/b.tif?already=signed"},
        "c": {"href": "https://elsewhere.example/c.tif"},
    }}  # fmt: skip
    signed = signer(item)
    assert [a["href"] for a in signed["assets"].values()] == [
        "https://acc.blob.core.windows.net/c/a.tif?t=1",
        "https://acc.blob.core.windows.net/c/b.tif?already=signed",
        "https://elsewhere.example/c.tif",
    ]
    assert item["assets"]["a"]["href"].endswith("a.tif")  # the input is not modified
    assert calls == ["http://sas.invalid/token/c"]


def test_cdse_stac_item_without_odata_hrefs_cannot_be_fetched(cdse_server: StacServer, tmp_path: Path) -> None:
    """CDSE STAC products are fetched through the OData hrefs of their assets (tests/test_cdse_stac.py); these
    synthetic items have none."""
    provider = CdseStacProvider(cdse_server.url)
    record = provider.search(_query(ROI, WINDOWS, ("S2MSI2A",))).products[0]
    with pytest.raises(MetadataError, match="names no OData product"):
        provider.fetch(record, FetchRequest(cache_dir=tmp_path))
