"""The ``asf`` source against ASF's Search API, datapool and NASA Earthdata Login played on 127.0.0.1
(tests/servers/asf_server.py): search, downloads through the login redirects (MD5, resume, an expired
session renewed), refused credentials, and a product found only in ASF through ``--source cdse --source asf``."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from shapely.geometry import box, shape

from senprep_core.catalog.asf import AsfProvider, record_from_feature
from senprep_core.catalog.records import FetchRequest, SearchQuery
from senprep_core.cli import main
from senprep_core.demo.catalog import DEMO_ROI_GEOJSON, demo_runs
from senprep_core.errors import ChecksumError, CredentialsError, MetadataError
from senprep_core.events import Event
from senprep_core.fetch.credentials import Credentials, Secret
from senprep_core.fetch.earthdata import ENV_LOGIN_URL, EarthdataAuth
from senprep_core.s1 import read_s1_metadata
from senprep_core.timeutil import DateWindow
from tests.servers.asf_server import AsfServer, EarthdataLoginServer
from tests.servers.cdse_server import CdseServer

pytestmark = pytest.mark.integration

USER = "earthdata-user"
PASSWORD = "Earthdata-Pa55-not-logged"
ROI = shape(DEMO_ROI_GEOJSON)
S1_2021 = "S1A_IW_GRDH_1SDV_20210814T174135_20210814T174137_039229_0F6E81_BA7A"
S1_2022 = "S1A_IW_GRDH_1SDV_20220421T062348_20220421T062350_042868_06CA51_B12D"
ALL = (DateWindow(date(2021, 1, 1), date(2022, 12, 31)),)


Servers = tuple[AsfServer, EarthdataLoginServer]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, demo_products: Path) -> Iterator[Servers]:
    login = EarthdataLoginServer(USER, PASSWORD).start()
    asf = AsfServer(tmp_path_factory.mktemp("asf"), login)
    asf.add_products(demo_products)
    asf.start()
    yield asf, login
    asf.stop()
    login.stop()


@pytest.fixture(autouse=True)
def _login_server(servers: Servers, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_LOGIN_URL, servers[1].url)  # the test's Earthdata Login server may get the password


def _credentials(tmp_path: Path, password: str = PASSWORD) -> Path:
    path = tmp_path / "earthdata.json"
    path.write_text(json.dumps({"username": USER, "password": password}))
    path.chmod(0o600)
    return path


def provider(servers: Servers, tmp_path: Path, password: str = PASSWORD) -> AsfProvider:
    asf, login = servers
    return AsfProvider(asf.url, _credentials(tmp_path, password), login_urls=[login.url], retries=2, backoff=0.01)


def test_search_sends_the_documented_keywords_and_maps_the_geojson(servers: Servers, tmp_path: Path) -> None:
    asf, _ = servers
    before = len(asf.searches)
    result = provider(servers, tmp_path).search(SearchQuery(ROI, ALL, ("GRD", "S2MSI2A")))
    assert [r.product_id for r in result.products] == [S1_2021, S1_2022] and not result.problems
    sent = asf.searches[before:]
    assert len(sent) == 1  # S2 is not searched on ASF
    assert sent[0]["platform"] == "Sentinel-1" and sent[0]["processingLevel"] == "GRD_HD"
    assert sent[0]["beamMode"] == "IW" and sent[0]["output"] == "geojson"
    assert sent[0]["intersectsWith"].startswith("POLYGON ((") and sent[0]["start"] == "2021-01-01T00:00:00Z"
    first = result.products[0]
    scene = asf.scenes[S1_2021]
    assert first.family == "S1" and first.product_type == "GRD" and first.provider == "asf"
    assert first.relative_orbit == 132 and first.orbit_direction == "ascending"
    assert first.size_bytes == scene.size and first.extra["md5"] == scene.md5
    assert first.href == asf.url + scene.path and first.footprint is not None
    # a window holding neither product, and an ROI far away
    autumn = (DateWindow(date(2021, 9, 1), date(2021, 12, 31)),)
    assert not provider(servers, tmp_path).search(SearchQuery(ROI, autumn, ("GRD",))).products
    assert not provider(servers, tmp_path).search(SearchQuery(box(10, 40, 10.1, 40.1), ALL, ("GRD",))).products


def test_features_that_are_not_sentinel1_are_problems() -> None:
    with pytest.raises(MetadataError, match="not a Sentinel-1"):
        record_from_feature({"properties": {"sceneName": "ALPSRP123", "url": "https://x/y.zip"}}, "asf")
    with pytest.raises(MetadataError, match="no download URL"):
        record_from_feature({"properties": {"sceneName": S1_2021}}, "asf")


def test_download_logs_in_through_earthdata_and_is_md5_checked_and_cached(servers: Servers, tmp_path: Path) -> None:
    asf, login = servers
    asf.expire_sessions()
    logins, served = login.logins, dict(asf.bytes_served)
    source = provider(servers, tmp_path)
    record = source.search(SearchQuery(ROI, ALL, ("GRD",))).products[0]
    events: list[Event] = []
    fetched = source.fetch(record, FetchRequest(tmp_path / "cache", ("VV",), True, events.append))
    path = Path(fetched.href)
    assert path == tmp_path / "cache" / "asf" / f"{S1_2021}.zip"
    assert hashlib.md5(path.read_bytes()).hexdigest() == asf.scenes[S1_2021].md5
    assert read_s1_metadata(path).product_id == S1_2021
    assert login.logins == logins + 1 and any(e.kind == "BytesProgress" for e in events)
    assert asf.basic_seen == 0 and set(login.basic_paths) == {"/oauth/authorize"}  # the password went to URS only
    # the session cookie serves the next download without a login; the cache serves a second fetch
    again = source.fetch(record, FetchRequest(tmp_path / "cache2"))
    assert Path(again.href).read_bytes() == path.read_bytes() and login.logins == logins + 1
    total = asf.bytes_served[S1_2021] - served.get(S1_2021, 0)
    assert source.fetch(record, FetchRequest(tmp_path / "cache")).href == str(path)
    assert asf.bytes_served[S1_2021] - served.get(S1_2021, 0) == total


def test_an_expired_session_is_renewed_also_in_the_middle_of_a_download(servers: Servers, tmp_path: Path) -> None:
    asf, login = servers
    source = provider(servers, tmp_path)
    first, second = source.search(SearchQuery(ROI, ALL, ("GRD",))).products
    source.fetch(first, FetchRequest(tmp_path / "cache"))
    logins = login.logins
    asf.expire_sessions()  # the asf-urs cookie the client holds is no longer accepted
    asf.drop_after, asf.expire_on_drop = second.size_bytes // 3, True  # and it ends again mid-download
    served = asf.bytes_served[S1_2022]
    fetched = source.fetch(second, FetchRequest(tmp_path / "cache"))
    assert hashlib.md5(Path(fetched.href).read_bytes()).hexdigest() == asf.scenes[S1_2022].md5
    assert login.logins == logins + 2  # once for the expired cookie, once more to resume
    resumed = asf.bytes_served[S1_2022] - served
    assert second.size_bytes is not None and resumed < second.size_bytes * 1.05  # resumed with Range, not restarted
    asf.expire_on_drop = False


def test_a_corrupt_download_is_discarded(servers: Servers, tmp_path: Path) -> None:
    asf, _ = servers
    source = provider(servers, tmp_path)
    record = source.search(SearchQuery(ROI, ALL, ("GRD",))).products[0]
    asf.corrupt.add(S1_2021)
    try:
        with pytest.raises(ChecksumError, match="md5 checksum mismatch"):
            source.fetch(record, FetchRequest(tmp_path / "cache"))
    finally:
        asf.corrupt.discard(S1_2021)
    assert not list((tmp_path / "cache" / "asf").glob("*.zip"))


def test_refused_credentials_name_earthdata_and_never_the_password(servers: Servers, tmp_path: Path) -> None:
    asf, login = servers
    asf.expire_sessions()
    source = provider(servers, tmp_path, password="wrong-Pa55word-here")
    record = source.search(SearchQuery(ROI, ALL, ("GRD",))).products[0]
    refused = login.refused
    with pytest.raises(CredentialsError, match="Earthdata Login refused") as caught:
        source.fetch(dataclasses.replace(record), FetchRequest(tmp_path / "cache"))
    assert "wrong-Pa55word-here" not in str(caught.value) and "--credentials_earthdata" in str(caught.value)
    assert login.refused == refused + 2  # the first refusal and one retry after a fresh start


def test_credentials_go_only_to_earthdata_login_servers() -> None:
    auth = EarthdataAuth(Credentials(USER, Secret(PASSWORD)), ["http://127.0.0.1:8123"])
    assert auth.redirect_headers("https://urs.earthdata.nasa.gov/oauth/authorize?x=1") is not None
    assert auth.redirect_headers("http://127.0.0.1:8123/oauth/authorize") is not None
    refused = [
        "http://urs.earthdata.nasa.gov/oauth/authorize",  # not over plain http
        "https://urs.earthdata.nasa.gov.evil.example/oauth",
        "http://127.0.0.1:8124/login",  # another port
        "https://sentinel1.asf.alaska.edu/GRD_HD/SA/x.zip",
        "https://bucket.s3.amazonaws.com/x.zip",
    ]
    for url in refused:
        assert auth.redirect_headers(url) is None, url
    assert PASSWORD not in repr(auth) and auth.headers() == {}


def _tifs(outdir: Path) -> dict[str, bytes]:
    return {p.relative_to(outdir).as_posix(): p.read_bytes() for p in sorted((outdir / "patches").rglob("*.tif"))}


def test_a_product_only_in_asf_is_found_through_the_fallback(
    servers: Servers, tmp_path: Path, demo_products: Path
) -> None:
    """``--source cdse --source asf``: CDSE holds the S2 products but no S1; the S1 partner comes from ASF."""
    asf, _ = servers
    only_s2 = tmp_path / "only-s2"
    only_s2.mkdir()
    for product in demo_products.glob("S2*"):
        (only_s2 / product.name).symlink_to(product)
    cdse = CdseServer(tmp_path / "cdse", username="cdse-user", password="cdse-Pa55").start()
    cdse.add_products(only_s2)
    s1 = next(data for name, data in demo_runs(demo_products) if name == "s1")
    s1_settings = {"bands": ["sigma0_VV_dB"], "dem": s1["sentinel1"]["dem"], "speckle_filter": "boxcar"}
    config = {"name": "pair", "roi": DEMO_ROI_GEOJSON, "dates": [["2022-04-15", "2022-04-25"]],
              "mode": "s2_with_closest_s1", "patches": {"size": [128, 128], "overlap": [0, 0]},
              "sentinel2": {"bands": ["B04", "B08", "SCL"]}, "sentinel1": s1_settings}  # fmt: skip
    path = tmp_path / "pair.json"
    path.write_text(json.dumps(config))
    copernicus = tmp_path / "cdse.json"
    copernicus.write_text(json.dumps({"username": "cdse-user", "password": "cdse-Pa55"}))
    copernicus.chmod(0o600)
    try:
        local = tmp_path / "local"
        assert main(["run", "--config", str(path), "--outdir", str(local), "--source", f"local:{demo_products}",
                     "--quiet"]) == 0  # fmt: skip
        out = tmp_path / "out"
        code = main(["run", "--config", str(path), "--outdir", str(out), "--source", f"cdse:{cdse.url}", "--source",
                     f"asf:{asf.url}", "--credentials", str(copernicus), "--credentials_earthdata",
                     str(_credentials(tmp_path)), "--cache-dir", str(tmp_path / "cache"), "--quiet"])  # fmt: skip
    finally:
        cdse.stop()
    assert code == 0
    report = json.loads((out / "run.json").read_text())
    (unit,) = report["plan"]["units"]
    providers = {p["product_id"][:2]: p["provider"] for p in unit["products"]}
    assert providers == {"S2": f"cdse:{cdse.url}", "S1": f"asf:{asf.url}"}
    assert (tmp_path / "cache" / "asf" / f"{S1_2022}.zip").is_file()
    assert _tifs(out) and _tifs(out) == _tifs(local)  # the same patches as from the local products
    for file in out.rglob("*"):
        if file.is_file():
            assert PASSWORD.encode() not in file.read_bytes()


def test_a_product_offline_in_cdse_is_taken_from_asf(servers: Servers, tmp_path: Path, demo_products: Path) -> None:
    """CDSE lists every S1 product but one is offline (its long-term archive): ``--source cdse --source asf``
    takes that one from ASF, where it is online, and the others from CDSE."""
    from senprep_core.catalog import open_provider
    from senprep_core.config import parse_config
    from senprep_core.fetch.credentials import CredentialFiles
    from senprep_core.planning import search

    asf, _ = servers
    cdse = CdseServer(tmp_path / "cdse", username="cdse-user", password="cdse-Pa55")
    entries = {e.name.removesuffix(".SAFE"): e for e in cdse.add_products(demo_products)}
    entries[S1_2022].online = False
    cdse.start()
    s1 = next(data for name, data in demo_runs(demo_products) if name == "s1")
    config = parse_config({**s1, "dates": ["2021-01-01", "2022-12-31"]})
    sources = [f"cdse:{cdse.url}", f"asf:{asf.url}"]
    files = CredentialFiles(earthdata=str(_credentials(tmp_path)))
    try:
        found, _ = search(config, [open_provider(s, credentials=files) for s in sources])
        entries[S1_2022].online = True  # all online in CDSE: ASF is not asked
        searched = len(asf.searches)
        again, _ = search(config, [open_provider(s, credentials=files) for s in sources])
    finally:
        cdse.stop()
    providers = {r.product_id: r.provider for r in found}
    assert providers == {S1_2021: sources[0], S1_2022: sources[1]}
    assert all(r.online for r in found)
    assert {r.provider for r in again} == {sources[0]} and len(asf.searches) == searched
