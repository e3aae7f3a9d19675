"""The CDSE provider against a CDSE-protocol server on 127.0.0.1: OData search with paging, token auth and
refresh, whole-product downloads with MD5 checks, per-file (Nodes) ROI mode, offline orders, orbit files,
and credentials that never leak."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import threading
import time
import traceback
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from shapely.geometry import box, shape

from senprep_core.catalog.cdse import CdseProvider
from senprep_core.catalog.records import FetchRequest, ProductRecord, SearchQuery
from senprep_core.demo.catalog import DEMO_ROI_BOUNDS_UTM, DEMO_ROI_GEOJSON
from senprep_core.errors import ChecksumError, CredentialsError, OrbitError, ProductOfflineError
from senprep_core.events import Event
from senprep_core.fetch.cdse_auth import CdseAuth
from senprep_core.fetch.credentials import Credentials, Secret, load_credentials, read_credentials_file
from senprep_core.geo.grid import TargetGrid
from senprep_core.s1 import read_s1_metadata, select_orbit
from senprep_core.s2.metadata import read_s2_metadata
from senprep_core.s2.reader import read_s2_window
from senprep_core.timeutil import DateWindow
from tests.servers.cdse_server import CdseServer, Entry, attribute
from tests.test_s1_orbit_files import eof_name, eof_xml

USER = "researcher@example.org"
PASSWORD = "Pa55-w0rd-never-logged!"
ROI = shape(DEMO_ROI_GEOJSON)
S2_NEW = "S2B_MSIL2A_20220729T113629_N0500_R080_T30UVG_20220729T140000"
S1_OLD = "S1A_IW_GRDH_1SDV_20210814T174135_20210814T174137_039229_0F6E81_BA7A"
OFFLINE_SOON = "S2B_MSIL2A_20230115T113629_N0500_R080_T30UVG_20230115T140000"
OFFLINE_NEVER = "S2B_MSIL2A_20230125T113629_N0500_R080_T30UVG_20230125T140000"
UTC = timezone.utc


def _copy(server: CdseServer, like: Entry, name: str, start: datetime, **changes: object) -> Entry:
    """A catalogue entry sharing ``like``'s archive and attributes under another name / date."""
    entry = Entry(name + ".SAFE", like.collection, start, start, like.footprint, list(like.attributes),
                  archive=like.archive)  # fmt: skip
    for key, value in changes.items():
        setattr(entry, key, value)
    return server.add_entry(entry)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, demo_products: Path) -> Iterator[CdseServer]:
    srv = CdseServer(tmp_path_factory.mktemp("cdse-server"), username=USER, password=PASSWORD)
    srv.add_products(demo_products)
    like = srv.by_name(S2_NEW)
    here = like.footprint
    decoys = [  # name, start, footprint, product type, cloud
        ("S2A_MSIL2A_20220510T113621_N0400_R080_T30UVG_20220510T140000", datetime(2022, 5, 10, 11, 36, tzinfo=UTC),
         here, "S2MSI2A", 12.5),  # inside: expected
        ("S2A_MSIL2A_20220601T113621_N0400_R080_T30UVG_20220601T140000", datetime(2022, 6, 1, 11, 36, tzinfo=UTC),
         here, "S2MSI2A", 95.0),  # too cloudy
        ("S2A_MSIL2A_20220520T105621_N0400_R094_T30TVK_20220520T140000", datetime(2022, 5, 20, 10, 56, tzinfo=UTC),
         box(-4.0, 40.0, -3.0, 41.0), "S2MSI2A", 5.0),  # Spain: outside the ROI
        ("S2A_MSIL2A_20200601T113621_N0214_R080_T30UVG_20200601T140000", datetime(2020, 6, 1, 11, 36, tzinfo=UTC),
         here, "S2MSI2A", 5.0),  # before the dates
        ("S2A_MSIL1C_20220702T113621_N0400_R080_T30UVG_20220702T140000", datetime(2022, 7, 2, 11, 36, tzinfo=UTC),
         here, "S2MSI1C", 5.0),  # L1C
    ]  # fmt: skip
    for name, start, footprint, ptype, cloud in decoys:
        attrs = [attribute("productType", ptype), attribute("cloudCover", cloud), attribute("tileId", name[39:44])]
        srv.add_entry(Entry(name + ".SAFE", "SENTINEL-2", start, start, footprint, attrs))
    when = datetime(2023, 1, 15, 11, 36, 29, tzinfo=UTC)
    _copy(srv, like, OFFLINE_SOON, when, online=False, polls_to_online=3)
    _copy(srv, like, OFFLINE_NEVER, when + timedelta(days=10), online=False, polls_to_online=None)
    srv.start()
    yield srv
    srv.stop()


def provider(server: CdseServer, password: str = PASSWORD, **kwargs: object) -> CdseProvider:
    kwargs.setdefault("page_size", 2)
    return CdseProvider(
        server.odata_url,
        server.download_url,
        server.token_url,
        Credentials(USER, Secret(password), None, "test"),
        **kwargs,  # type: ignore[arg-type]
    )


def query(*types: str, windows: tuple[tuple[date, date], ...] = ((date(2021, 5, 1), date(2022, 8, 31)),),
          cloud: tuple[float, float] = (0.0, 100.0)) -> SearchQuery:  # fmt: skip
    return SearchQuery(ROI, tuple(DateWindow(a, b) for a, b in windows), types, cloud)


def record(server: CdseServer, product_id: str) -> ProductRecord:
    found = provider(server).search(
        query("S2MSI2A", "S2MSI1C", "GRD", windows=((date(2020, 1, 1), date(2023, 12, 31)),))
    )
    return next(r for r in found.products if r.product_id == product_id)


def demo_grid() -> TargetGrid:
    left, bottom, right, top = DEMO_ROI_BOUNDS_UTM
    return TargetGrid(32630, 10.0, left, top, round((right - left) / 10), round((top - bottom) / 10))


# ---------------------------------------------------------------- search


def test_search_finds_exactly_the_expected_products_over_several_pages(server: CdseServer) -> None:
    searches = len(server.searches)
    result = provider(server).search(query("S2MSI2A", cloud=(0.0, 50.0)))
    expected = {
        e.name.removesuffix(".SAFE")
        for e in server.entries.values()
        if e.attribute("productType") == "S2MSI2A"
        and e.footprint is not None
        and e.footprint.intersects(ROI)
        and date(2021, 5, 1) <= e.start.date() <= date(2022, 8, 31)
        and e.attribute("cloudCover") <= 50.0
    }
    got = [r.product_id for r in result.products]
    assert set(got) == expected and len(got) == len(expected) >= 4  # 3 demo L2A + 1 decoy, each once
    assert "S2A_MSIL2A_20220510T113621_N0400_R080_T30UVG_20220510T140000" in got
    assert [r.sensing_time for r in result.products] == sorted(r.sensing_time for r in result.products)
    assert len(server.searches) - searches >= 2  # page_size 2: followed @odata.nextLink
    first = next(r for r in result.products if r.product_id == S2_NEW)
    assert first.provider == "cdse" and first.tile_id == "30UVG" and first.relative_orbit == 80 and first.online
    assert first.extra["odata_id"] == server.by_name(S2_NEW).id and first.extra["name"] == S2_NEW + ".SAFE"
    assert first.extra["checksums"][0] == {"algorithm": "md5", "value": server.by_name(S2_NEW).checksums[0]["Value"]}
    assert first.size_bytes == server.by_name(S2_NEW).length and first.footprint is not None
    assert first.cloud_cover == pytest.approx(server.by_name(S2_NEW).attribute("cloudCover"))
    sent = server.searches[-1]
    assert "OData.CSC.Intersects(area=geography'SRID=4326;POLYGON" in sent and "cloudCover" in sent


def test_search_s1_and_two_windows(server: CdseServer) -> None:
    windows = ((date(2021, 8, 1), date(2021, 8, 31)), (date(2022, 7, 1), date(2022, 7, 31)))
    result = provider(server).search(query("GRD", "S2MSI2A", "S2MSI1C", windows=windows))
    assert [r.product_id for r in result.products] == [
        S1_OLD,
        "S2A_MSIL1C_20220702T113621_N0400_R080_T30UVG_20220702T140000",
        S2_NEW,
    ]
    s1 = result.products[0]
    assert s1.family == "S1" and s1.product_type == "GRD" and s1.cloud_cover is None
    assert any("'IW_GRDH_1S'" in s and "'SENTINEL-1'" in s for s in server.searches)


# ---------------------------------------------------------------- whole products


def test_whole_download_is_md5_checked_and_a_bad_checksum_discards_it(server: CdseServer, tmp_path: Path) -> None:
    cdse = provider(server)
    rec = record(server, S2_NEW)
    wrong = [{"algorithm": "md5", "value": "0" * 32}]
    bad = dataclasses.replace(rec, extra={**rec.extra, "checksums": wrong})
    with pytest.raises(ChecksumError):
        cdse.fetch(bad, FetchRequest(tmp_path, roi_only=False))
    assert not any(p.is_file() and p.stat().st_size > 0 for p in (tmp_path / "cdse").glob(f"{S2_NEW}*"))
    events: list[Event] = []
    fetched = cdse.fetch(rec, FetchRequest(tmp_path, roi_only=False, on_event=events.append))
    path = Path(fetched.href)
    assert path == tmp_path / "cdse" / f"{S2_NEW}.zip" and fetched.online
    assert hashlib.md5(path.read_bytes()).hexdigest() == server.by_name(S2_NEW).checksums[0]["Value"]
    assert read_s2_metadata(path).product_id == S2_NEW
    assert any(e.kind == "BytesProgress" for e in events)
    served = server.total_bytes
    assert Path(cdse.fetch(rec, FetchRequest(tmp_path, roi_only=False)).href) == path  # cached
    assert server.total_bytes == served


# ---------------------------------------------------------------- ROI mode (Nodes)


def test_nodes_mode_fetches_only_needed_files_and_reads_like_the_full_product(
    server: CdseServer, tmp_path: Path, demo_products: Path
) -> None:
    cdse = provider(server)
    rec = record(server, S2_NEW)
    before = server.total_bytes
    fetched = cdse.fetch(rec, FetchRequest(tmp_path, bands=("B04", "SCL"), roi_only=True))
    partial = Path(fetched.href)
    served = server.total_bytes - before
    whole = server.by_name(S2_NEW).length
    assert partial == tmp_path / "cdse" / f"{S2_NEW}.SAFE" and (partial / ".complete").is_file()
    assert served < 0.25 * whole, (served, whole)
    assert not list((tmp_path / "cdse").glob(".tmp-*"))
    names = sorted(p.name for p in partial.rglob("*") if p.is_file())
    assert [n for n in names if n.endswith(".jp2")] == [
        f"T30UVG_20220729T113629_{b}.jp2" for b in ("B04_10m", "SCL_20m")
    ]
    assert not [n for n in names if n.endswith((".verified", ".part", ".lock"))]
    grid = demo_grid()
    bands = ("B04", "SCL", "scl_cloud_shadow")
    part = read_s2_window(read_s2_metadata(partial), grid, bands)
    full = read_s2_window(read_s2_metadata(demo_products / f"{S2_NEW}.SAFE"), grid, bands)
    np.testing.assert_array_equal(part.data, full.data)
    np.testing.assert_array_equal(part.valid, full.valid)
    np.testing.assert_array_equal(part.cloud, full.cloud)
    # cached: nothing served again; one more band: only its file
    served_before = server.total_bytes
    assert Path(cdse.fetch(rec, FetchRequest(tmp_path, bands=("B04",), roi_only=True)).href) == partial
    assert server.total_bytes == served_before
    cdse.fetch(rec, FetchRequest(tmp_path, bands=("B04", "B08", "SCL"), roi_only=True))
    extra = server.total_bytes - served_before
    b08 = (demo_products / f"{S2_NEW}.SAFE").rglob("*_B08_10m.jp2")
    assert extra < next(b08).stat().st_size + 100_000  # B08 plus the manifest, not B04/SCL again
    assert (partial / ".complete").is_file() and any(partial.rglob("*_B08_10m.jp2"))


@pytest.mark.parametrize(
    ("product_id", "bands"),
    [
        ("S2A_MSIL1C_20220614T113621_N0400_R080_T30UVG_20220614T140000", ("B03", "B11", "opaque_clouds")),
        ("S2A_MSIL2A_20210511T113629_N0214_R080_T30UVG_20210511T140000", ("B8A", "cirrus_clouds", "cloud_probability")),
        ("S2B_MSIL2A_20220420T113619_N0400_R080_T30UVG_20220420T140000", ("scl_cloud_high_proba", "AOT")),
    ],
    ids=["L1C-classi", "L2A-0214-gml", "L2A-zip-masks-only"],
)
def test_nodes_mode_other_levels_read_like_the_full_product(
    server: CdseServer, tmp_path: Path, demo_products: Path, product_id: str, bands: tuple[str, ...]
) -> None:
    fetched = provider(server).fetch(record(server, product_id), FetchRequest(tmp_path, bands=bands))
    full_path = next(demo_products.glob(f"{product_id}.*"))
    part = read_s2_window(read_s2_metadata(fetched.href), demo_grid(), bands)
    full = read_s2_window(read_s2_metadata(full_path), demo_grid(), bands)
    for got, want in ((part.data, full.data), (part.valid, full.valid), (part.cloud, full.cloud)):
        np.testing.assert_array_equal(got, want)
    fetched_bytes = sum(p.stat().st_size for p in Path(fetched.href).rglob("*") if p.is_file())
    assert fetched_bytes < 0.5 * server.by_name(product_id).length


def test_nodes_mode_s1_takes_the_requested_polarisation(server: CdseServer, tmp_path: Path) -> None:
    rec = record(server, S1_OLD)
    fetched = provider(server).fetch(rec, FetchRequest(tmp_path, bands=("sigma0_VV_dB",), roi_only=True))
    files = sorted(p.relative_to(fetched.href).as_posix() for p in Path(fetched.href).rglob("*") if p.is_file())
    assert [f for f in files if "-vh-" in f] == [] and len([f for f in files if "-vv-" in f]) == 4
    meta = read_s1_metadata(fetched.href)
    assert meta.product_id == S1_OLD and "VV" in meta.images


def test_token_refreshed_mid_download(server: CdseServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "access_lifetime", 2.0)
    monkeypatch.setattr(server, "rate_bps", 1_000_000)
    cdse = provider(server, max_connections=1)
    rec = record(server, S2_NEW)
    grants = server.grants.copy()
    began = time.monotonic()
    fetched = cdse.fetch(rec, FetchRequest(tmp_path, bands=("B02", "B03", "B04", "B08"), roi_only=True))
    seconds = time.monotonic() - began
    assert seconds > 2.0  # the download outlived the first token
    assert server.grants["refresh_token"] > grants["refresh_token"]
    assert server.grants["password"] == grants["password"] + 1
    assert len(list(Path(fetched.href).rglob("*_10m.jp2"))) == 4


# ---------------------------------------------------------------- offline products


def test_offline_product_is_ordered_then_fetched(server: CdseServer, tmp_path: Path) -> None:
    rec = record(server, OFFLINE_SOON)
    assert not rec.online
    cdse = provider(server, order_poll=0.05, order_timeout=10.0)
    fetched = cdse.fetch(rec, FetchRequest(tmp_path, roi_only=False))
    assert fetched.online and Path(fetched.href).is_file()
    assert any(m == "POST" and p.endswith("/OData.CSC.Order") and auth for m, p, auth in server.requests)


def test_product_never_online_raises_quickly(server: CdseServer, tmp_path: Path) -> None:
    rec = record(server, OFFLINE_NEVER)
    cdse = provider(server, order_poll=0.05, order_timeout=0.4)
    began = time.monotonic()
    with pytest.raises(ProductOfflineError, match="offline") as info:
        cdse.fetch(rec, FetchRequest(tmp_path, roi_only=False))
    assert time.monotonic() - began < 3.0
    assert "run again later" in str(info.value) and not (tmp_path / "cdse" / f"{OFFLINE_NEVER}.zip").exists()


# ---------------------------------------------------------------- tokens and credentials


def test_auth_refresh_invalidate_fallback_and_threads(server: CdseServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "access_lifetime", 0.4)
    monkeypatch.setattr(server, "refresh_lifetime", 0.4)
    auth = CdseAuth(Credentials(USER, Secret(PASSWORD)), server.token_url)
    grants = server.grants.copy()
    tokens: list[str] = []
    threads = [threading.Thread(target=lambda: tokens.append(auth.headers()["Authorization"])) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(tokens)) == 1 and server.authorised(tokens[0])
    assert server.grants["password"] == grants["password"] + 1  # one grant for 8 threads
    auth.invalidate()
    assert auth.headers()["Authorization"] != tokens[0]
    assert server.grants["refresh_token"] == grants["refresh_token"] + 1
    time.sleep(0.35)  # both tokens past their renewal time: password grant again
    auth.headers()
    assert server.grants["password"] == grants["password"] + 2


def test_credentials_never_leak(server: CdseServer, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    events: list[Event] = []
    cdse = provider(server)
    result = cdse.search(query("S2MSI2A"))
    rec = next(r for r in result.products if r.product_id == S2_NEW)
    cdse.fetch(rec, FetchRequest(tmp_path, bands=("B04",), roi_only=True, on_event=events.append))
    texts = [caplog.text, json.dumps([e.to_dict() for e in events], default=str), repr(cdse), repr(cdse.auth)]
    texts += [json.dumps(r.to_dict()) + repr(r) for r in result.products]
    wrong = "Wr0ng-pa55word-also-secret"
    with pytest.raises(CredentialsError) as info:
        provider(server, password=wrong).fetch(rec, FetchRequest(tmp_path / "other", roi_only=False))
    error = info.value
    texts += [str(error), repr(error), "".join(traceback.format_exception(error)), caplog.text]
    texts += [str(Credentials(USER, Secret(PASSWORD))), f"{Secret(PASSWORD)}"]
    texts += [f.read_text(errors="replace") for f in tmp_path.rglob("*") if f.is_file() and f.suffix != ".jp2"]
    assert "rejected" in str(error) and "HTTP 401" in str(error)
    blob = "\n".join(texts)
    assert server.issued, "no token was issued"
    for secret in [PASSWORD, wrong, *server.issued]:
        assert secret not in blob


def test_legacy_credentials_file_env_and_netrc(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    legacy = tmp_path / "credentials.json"
    legacy.write_text(json.dumps({"username": USER, "password": PASSWORD, "sentinel_url_endpoint": "https://x/dhus"}))
    legacy.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        creds = read_credentials_file(legacy)
    assert creds.username == USER and creds.password.reveal() == PASSWORD and creds.endpoint == "https://x/dhus"
    assert "chmod 600" in caplog.text and PASSWORD not in repr(creds) + str(creds)
    caplog.clear()
    legacy.chmod(0o600)
    earthdata = load_credentials(legacy)  # explicit file wins over everything
    assert earthdata.password == Secret(PASSWORD) and "chmod" not in caplog.text
    env = {"SENPREP_CDSE_USERNAME": "env-user", "SENPREP_CDSE_PASSWORD": "env-pass", "NETRC": str(tmp_path / "none")}
    assert load_credentials(env=env).username == "env-user"
    assert load_credentials(env={"SENPREP_USERNAME": "u", "SENPREP_PASSWORD": "p"}).source.startswith("environment")
    netrc_file = tmp_path / "netrc"
    netrc_file.write_text("machine identity.dataspace.copernicus.eu login net-user password net-pass\n")
    netrc_file.chmod(0o600)
    from_netrc = load_credentials(env={"NETRC": str(netrc_file)})
    assert from_netrc.username == "net-user" and from_netrc.password.reveal() == "net-pass"
    with pytest.raises(CredentialsError, match="SENPREP_CDSE_USERNAME") as missing:
        load_credentials(env={"NETRC": str(tmp_path / "none")})
    assert "--credentials" in str(missing.value)
    broken = tmp_path / "broken.json"
    broken.write_text('{"username": "u", "password": "' + PASSWORD + '"')
    broken.chmod(0o600)
    with pytest.raises(CredentialsError, match="not valid JSON") as bad:
        read_credentials_file(broken)
    assert PASSWORD not in str(bad.value) + "".join(traceback.format_exception(bad.value))
    no_password = tmp_path / "nopass.json"
    no_password.write_text(json.dumps({"username": "u"}))
    with pytest.raises(CredentialsError, match="'password'"):
        read_credentials_file(no_password)
    with pytest.raises(CredentialsError, match="does not exist"):
        read_credentials_file(tmp_path / "absent.json")
    assert os.environ.get("SENPREP_CDSE_PASSWORD") != PASSWORD


# ---------------------------------------------------------------- orbit files


def test_fetch_orbit_returns_a_usable_eof(server: CdseServer, tmp_path: Path, demo_products: Path) -> None:
    meta = read_s1_metadata(demo_products / f"{S1_OLD}.SAFE")
    image = meta.images["VV"]
    start, stop = meta.start_time, meta.stop_time
    made = tmp_path / "made"
    made.mkdir()
    day = (start - timedelta(hours=6), start + timedelta(hours=20))
    for kind, valid, produced in [
        ("POEORB", day, start + timedelta(days=20)),
        ("POEORB", day, start + timedelta(days=21)),  # newer: preferred
        ("RESORB", (start - timedelta(hours=1), start + timedelta(hours=2)), start + timedelta(hours=3)),
        ("POEORB", (day[0] - timedelta(days=1), day[1] - timedelta(days=1)), start + timedelta(days=19)),
    ]:
        name = eof_name(kind, *valid, produced=produced, mission="S1A")
        (made / name).write_text(eof_xml(image.orbit, name, kind))
        server.add_aux_file(made / name, f"AUX_{kind}", valid[0].replace(tzinfo=UTC), valid[1].replace(tzinfo=UTC))
    orbits = tmp_path / "orbits"
    cdse = provider(server)
    path = cdse.fetch_orbit("S1A", start, stop, cache_dir=orbits)
    newest = eof_name("POEORB", *day, produced=start + timedelta(days=21), mission="S1A")
    assert path == orbits / newest and path.read_bytes() == (made / newest).read_bytes()
    orbit = select_orbit(meta, image, orbits)
    assert orbit.source == f"POEORB:{newest}" and orbit.times.size >= 2
    requests = len(server.requests)
    assert cdse.fetch_orbit("S1A", start, stop, cache_dir=orbits) == path and len(server.requests) == requests
    resorb = cdse.fetch_orbit("S1A", start, stop, "RESORB", cache_dir=tmp_path / "resorb")
    assert "_AUX_RESORB_" in resorb.name and resorb.is_file()
    with pytest.raises(OrbitError, match="RESORB"):
        cdse.fetch_orbit("S1B", start, stop, cache_dir=tmp_path / "none")
