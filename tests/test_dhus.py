"""The dhus provider (sentinelsat) against a DHuS-protocol server on 127.0.0.1 serving zipped demo products."""

from __future__ import annotations

import hashlib
import logging
import shutil
import sys
from dataclasses import dataclass, replace
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from shapely import affinity
from shapely.geometry import shape

from senprep_core.catalog.dhus import DhusProvider, open_dhus, public_url
from senprep_core.catalog.local import LocalProvider
from senprep_core.catalog.records import FetchRequest, ProductRecord, SearchQuery
from senprep_core.demo.catalog import DEMO_ROI_GEOJSON
from senprep_core.errors import ChecksumError, CredentialsError, DownloadError, ProductOfflineError, SourceError
from senprep_core.events import BytesProgress, Event
from senprep_core.fetch.credentials import Credentials, Secret
from senprep_core.timeutil import DateWindow
from tests.servers.dhus_server import DhusProduct, DhusServer, serve_dhus

USER = "researcher"
PASSWORD = "pw-Qx7!mirror-S3cret"
ROI = shape(DEMO_ROI_GEOJSON)
ALL_DATES = (DateWindow(date(2021, 5, 1), date(2022, 8, 31)),)


@dataclass(frozen=True)
class Catalogue:
    products: dict[str, DhusProduct]  # by a short key


def _zip(safe: Path, out: Path) -> Path:
    """A product zip in the layout the hubs serve: ``<name>.SAFE/...`` entries."""
    return Path(shutil.make_archive(str(out / safe.name.removesuffix(".SAFE")), "zip", safe.parent, safe.name))


@pytest.fixture(scope="module")
def catalogue(demo_products: Path, tmp_path_factory: pytest.TempPathFactory) -> Catalogue:
    zips = tmp_path_factory.mktemp("dhus-zips")
    local = {r.product_id: r for r in LocalProvider(demo_products).scan().products if r.family == "S2"}

    def product(key: str, safe: str, cloud: float, **changes: object) -> tuple[str, DhusProduct]:
        record = local[safe]
        path = demo_products / f"{safe}.zip"
        zipped = path if path.is_file() else _zip(demo_products / f"{safe}.SAFE", zips)
        fields = {"uuid": f"{ord(key):08x}-8c1e-4d6a-9f0b-{ord(key):012x}", "name": safe,
                  "zip_path": zipped, "footprint": record.footprint, "product_type": record.product_type,
                  "begin": record.sensing_time.replace(tzinfo=None), "cloud": cloud,
                  "relative_orbit": record.relative_orbit or 0, "tile_id": record.tile_id}  # fmt: skip
        fields.update(changes)
        return key, DhusProduct(**fields)  # type: ignore[arg-type]

    a = "S2A_MSIL2A_20210511T113629_N0214_R080_T30UVG_20210511T140000"
    b = "S2B_MSIL2A_20220420T113619_N0400_R080_T30UVG_20220420T140000"
    c = "S2B_MSIL2A_20220729T113629_N0500_R080_T30UVG_20220729T140000"
    d = "S2A_MSIL1C_20220614T113621_N0400_R080_T30UVG_20220614T140000"
    entries = dict([
        product("a", a, 12.0),
        product("b", b, 45.0),
        product("c", c, 3.0),
        product("d", d, 20.0),
        # offline (long-term archive): same bytes as c under another acquisition's name
        product("e", c, 8.0, name=c.replace("20220729T1136", "20220808T1136"), begin=datetime(2022, 8, 8, 11, 36, 29),
                online=False),
        # far away (another tile 10 degrees east): outside the ROI
        product("f", a, 1.0, name=a.replace("T30UVG", "T32UPG"), tile_id="32UPG",
                footprint=affinity.translate(local[a].footprint, xoff=10.0)),
        # the catalogue's MD5 is wrong
        product("g", b, 2.0, name=b.replace("20220420T1400", "20220421T1400"), md5="0" * 32),
    ])  # fmt: skip
    return Catalogue(entries)


@pytest.fixture()
def server(catalogue: Catalogue):  # type: ignore[no-untyped-def]
    with serve_dhus(list(catalogue.products.values()), USER, PASSWORD) as srv:
        yield srv


def provider(srv: DhusServer, password: str = PASSWORD) -> DhusProvider:
    return DhusProvider(Credentials(USER, Secret(password), srv.url, "test"), timeout=10)


def query(cloud: tuple[float, float] = (0.0, 100.0), windows: tuple[DateWindow, ...] = ALL_DATES) -> SearchQuery:
    return SearchQuery(roi=ROI, windows=windows, product_types=("S2MSI2A",), cloud_cover=cloud)


def test_search_maps_dhus_entries_to_records(server: DhusServer, catalogue: Catalogue) -> None:
    p = catalogue.products
    result = provider(server).search(query(cloud=(0.0, 50.0)))
    assert [r.product_id for r in result.products] == [p["a"].name, p["b"].name, p["g"].name, p["c"].name,
                                                       p["e"].name]  # fmt: skip
    assert result.problems == ()
    c = next(r for r in result.products if r.product_id == p["c"].name)
    assert c.family == "S2" and c.mission == "S2B" and c.product_type == "S2MSI2A" and c.provider == "dhus"
    assert c.sensing_time == datetime(2022, 7, 29, 11, 36, 29, tzinfo=timezone.utc)
    assert c.cloud_cover == 3.0 and c.tile_id == "30UVG" and c.relative_orbit == 80 and c.online
    assert c.extra["uuid"] == p["c"].uuid and c.extra["processing_baseline"] == "05.00"
    assert c.footprint is not None and c.footprint.intersects(ROI)
    assert c.size_bytes == pytest.approx(p["c"].size, rel=0.01)
    assert c.href == f"{server.url}odata/v1/Products('{p['c'].uuid}')/$value"
    assert not next(r for r in result.products if r.product_id == p["e"].name).online
    # what sentinelsat sent: the ROI, the date window, the type and the cloud range, all as DHuS query terms
    (q,) = server.queries
    assert 'producttype:"S2MSI2A"' in q and 'cloudcoverpercentage:["0.0" TO "50.0"]' in q
    assert 'beginPosition:["2021-05-01T00:00:00Z" TO "2022-09-01T00:00:00Z"]' in q
    assert 'footprint:"Intersects(POLYGON' in q


def test_search_filters_windows_cloud_and_pages(server: DhusServer, catalogue: Catalogue) -> None:
    p = catalogue.products
    dhus = provider(server)
    windows = (DateWindow(date(2021, 5, 1), date(2021, 5, 31)), DateWindow(date(2022, 7, 1), date(2022, 8, 31)))
    assert [r.product_id for r in dhus.search(query(windows=windows)).products] == [p["a"].name, p["c"].name,
                                                                                    p["e"].name]  # fmt: skip
    assert [r.product_id for r in dhus.search(query(cloud=(0.0, 5.0))).products] == [p["g"].name, p["c"].name]
    dhus._api.page_size = 2  # sentinelsat pages through the results
    server.requests.clear()
    assert len(dhus.search(query()).products) == 5
    starts = sorted(path.split("start=")[1].split("&")[0] for _, path in server.requests if "/search?" in path)
    assert starts == ["0", "2", "4"]


def test_fetch_downloads_verifies_resumes_and_caches(server: DhusServer, catalogue: Catalogue, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    p = catalogue.products
    dhus = provider(server)
    found = {r.product_id: r for r in dhus.search(query()).products}
    events: list[Event] = []
    request = FetchRequest(cache_dir=tmp_path, on_event=events.append)
    # the connection drops half-way: the client resumes from the byte offset
    server.drop_after[p["c"].uuid] = p["c"].size // 2
    fetched = dhus.fetch(found[p["c"].name], request)
    dest = tmp_path / "dhus" / p["c"].name / f"{p['c'].name}.zip"
    assert fetched.href == str(dest) and dest.is_file()
    assert hashlib.md5(dest.read_bytes()).hexdigest() == p["c"].md5
    # the second request asked for the rest from the byte offset the client had kept (a whole number of its
    # read chunks): only the bytes lost with the dropped chunk were sent twice
    (first, second) = [rng for uuid, rng in server.ranges if uuid == p["c"].uuid]
    assert first is None and second is not None
    resumed_at = int(second.removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= p["c"].size // 2
    assert server.bytes_served[p["c"].uuid] == p["c"].size + (p["c"].size // 2 - resumed_at)
    progress = [e for e in events if isinstance(e, BytesProgress)]
    assert progress and progress[-1].done == p["c"].size
    # the cache: a second fetch makes no request at all
    before = len(server.requests)
    assert dhus.fetch(found[p["c"].name], request).href == str(dest)
    assert len(server.requests) == before
    # the fetched zip is a product the local reader opens
    local = LocalProvider(dest.parent).search(query())
    assert [r.product_id for r in local.products] == [p["c"].name]
    assert PASSWORD not in caplog.text


def test_wrong_checksum_is_discarded(server: DhusServer, catalogue: Catalogue, tmp_path: Path) -> None:
    g = catalogue.products["g"]
    dhus = provider(server)
    record = next(r for r in dhus.search(query()).products if r.product_id == g.name)
    with pytest.raises(ChecksumError):
        dhus.fetch(record, FetchRequest(cache_dir=tmp_path))
    assert not list((tmp_path / "dhus" / g.name).glob("*.zip*"))


def test_offline_product_is_ordered_and_reported(server: DhusServer, catalogue: Catalogue, tmp_path: Path) -> None:
    e = catalogue.products["e"]
    dhus = provider(server)
    record = next(r for r in dhus.search(query()).products if r.product_id == e.name)
    with pytest.raises(ProductOfflineError, match="long-term archive"):
        dhus.fetch(record, FetchRequest(cache_dir=tmp_path))
    assert server.ordered == [e.uuid]
    assert server.bytes_served[e.uuid] == 0


def test_wrong_password_is_a_credentials_error_without_the_secret(
    server: DhusServer, catalogue: Catalogue, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "not-the-Pa55word-zz9"
    dhus = provider(server, password=wrong)
    with pytest.raises(CredentialsError) as search_error:
        dhus.search(query())
    good = provider(server).search(query()).products[0]
    with pytest.raises(CredentialsError) as fetch_error:
        dhus.fetch(good, FetchRequest(cache_dir=tmp_path))
    for exc in (search_error.value, fetch_error.value):
        text = f"{exc} {exc!r} {exc.__cause__!r} {exc.__context__!r}"
        assert wrong not in text and PASSWORD not in text
        assert server.url.split("/dhus")[0] in str(exc)
    assert server.unauthorized >= 2
    assert wrong not in caplog.text and PASSWORD not in caplog.text
    assert wrong not in repr(dhus) and wrong not in repr(dhus.__dict__)


def test_records_from_elsewhere_and_bad_setup(server: DhusServer, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    dhus = provider(server)
    stray = ProductRecord("S2A_MSIL2A_20210511T113629_N0214_R080_T30UVG_20210511T140000", "S2", "S2A", "S2MSI2A",
                          datetime(2021, 5, 11, tzinfo=timezone.utc), None, "x", "local")  # fmt: skip
    with pytest.raises(SourceError, match="dhus search"):
        dhus.fetch(stray, FetchRequest(cache_dir=tmp_path))
    with pytest.raises(SourceError, match="product type"):
        dhus.search(replace(query(), product_types=("S3OLCI",)))
    # endpoint missing or not http; credentials with a user:password@ URL never show it
    with pytest.raises(CredentialsError, match="sentinel_url_endpoint"):
        DhusProvider(Credentials(USER, Secret(PASSWORD), None, "file x.json"))
    assert public_url("https://me:secret@hub.example/dhus/") == "https://hub.example/dhus/"
    # sentinelsat missing -> the install hint
    monkeypatch.setitem(sys.modules, "sentinelsat", None)
    with pytest.raises(SourceError, match=r"senprep\[dhus\]"):
        provider(server)


def test_open_dhus_reads_the_legacy_credentials_file(server: DhusServer, tmp_path: Path) -> None:
    creds = tmp_path / "dhus.json"
    creds.write_text(f'{{"username": "{USER}", "password": "{PASSWORD}", "sentinel_url_endpoint": "{server.url}"}}')
    creds.chmod(0o600)
    dhus = open_dhus(creds)
    assert dhus.endpoint == server.url and len(dhus.search(query()).products) == 5


def test_unreachable_mirror_is_a_download_error(tmp_path: Path) -> None:
    with serve_dhus([], USER, PASSWORD) as srv:
        url = srv.url
    dhus = DhusProvider(Credentials(USER, Secret(PASSWORD), url, "test"), timeout=2)
    with pytest.raises(DownloadError, match="cannot reach"):
        dhus.search(query())
