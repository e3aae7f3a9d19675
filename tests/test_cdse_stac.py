"""The ``cdse-stac`` source: a real STAC API (rustac) holding CDSE-style items of the demo products, whose https
alternates point at the CDSE test server; products are fetched through CDSE's OData service with a CDSE token
(only the files a run reads, or the zip), tokens go to CDSE hosts only, and a run equals the local one."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from shapely.geometry import shape

from senprep_core.catalog import open_provider
from senprep_core.catalog.cdse import CdseProvider
from senprep_core.catalog.cdse_stac import CdseStacProvider, odata_location, token_url_of
from senprep_core.catalog.records import FetchRequest, SearchQuery
from senprep_core.cli import main
from senprep_core.demo.catalog import DEMO_ROI_GEOJSON, demo_config_dict
from senprep_core.errors import ChecksumError, MetadataError, SourceError
from senprep_core.fetch.credentials import Credentials, Secret
from senprep_core.s2.metadata import read_s2_metadata
from senprep_core.s2.reader import read_s2_window
from senprep_core.timeutil import DateWindow
from tests.conftest import IN_CI
from tests.servers.cdse_server import CdseServer
from tests.servers.stac_server import StacServer, cdse_stac_item, rustac_command
from tests.test_cdse import demo_grid

pytestmark = pytest.mark.integration

USER = "stac-user@example.org"
PASSWORD = "Stac-Pa55word-x"
ROI = shape(DEMO_ROI_GEOJSON)
ALL = (DateWindow(date(2021, 1, 1), date(2022, 12, 31)),)
S2_NEW = "S2B_MSIL2A_20220729T113629_N0500_R080_T30UVG_20220729T140000"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, demo_products: Path) -> Iterator[tuple[StacServer, CdseServer]]:
    if rustac_command() is None:
        if IN_CI:
            pytest.fail("rustac is not installed")
        pytest.skip("rustac is not installed (pip install rustac)")
    cdse = CdseServer(tmp_path_factory.mktemp("cdse-stac"), username=USER, password=PASSWORD).start()
    entries = cdse.add_products(demo_products)
    stac = StacServer([cdse_stac_item(e, cdse.url) for e in entries]).start()
    yield stac, cdse
    stac.stop()
    cdse.stop()


def provider(stac: StacServer) -> CdseStacProvider:
    return CdseStacProvider(stac.url, Credentials(USER, Secret(PASSWORD), None, "test"))


def test_search_and_the_items_odata_location(servers: tuple[StacServer, CdseServer], demo_products: Path) -> None:
    stac, cdse = servers
    result = provider(stac).search(SearchQuery(ROI, ALL, ("S2MSI2A", "GRD")))
    expected = sorted(p.name.split(".")[0] for p in demo_products.glob("S*_*") if "MSIL1C" not in p.name)
    assert sorted(r.product_id for r in result.products) == expected
    item = next(r for r in result.products if r.product_id == S2_NEW).extra["stac_item"]
    base, ident, product = odata_location(item)
    assert base == f"{cdse.url}/download/odata/v1" and ident == cdse.by_name(S2_NEW).id and product is not None
    assert token_url_of(item) == cdse.token_url
    assert open_provider(f"cdse-stac:{stac.url}").name == "cdse-stac"


def test_roi_mode_downloads_only_the_needed_files_with_a_token(
    servers: tuple[StacServer, CdseServer], tmp_path: Path, demo_products: Path
) -> None:
    stac, cdse = servers
    source = provider(stac)
    record = next(r for r in source.search(SearchQuery(ROI, ALL, ("S2MSI2A",))).products if r.product_id == S2_NEW)
    grants = sum(cdse.grants.values())
    fetched = source.fetch(record, FetchRequest(tmp_path, ("B04", "SCL"), True))
    safe = Path(fetched.href)
    assert safe == tmp_path / "cdse" / f"{S2_NEW}.SAFE"  # the cdse source's cache: shared by both sources
    assert fetched.provider == "cdse-stac" and sum(cdse.grants.values()) == grants + 1
    jp2 = sorted(p.name for p in safe.rglob("*.jp2"))
    assert jp2 == [f"T30UVG_20220729T113629_{b}.jp2" for b in ("B04_10m", "SCL_20m")]
    bands = ("B04", "SCL")
    part = read_s2_window(read_s2_metadata(safe), demo_grid(), bands)
    full = read_s2_window(read_s2_metadata(demo_products / f"{S2_NEW}.SAFE"), demo_grid(), bands)
    np.testing.assert_array_equal(part.data, full.data)


def test_product_mode_downloads_the_zip_checked_against_the_items_md5(
    servers: tuple[StacServer, CdseServer], tmp_path: Path
) -> None:
    stac, cdse = servers
    source = provider(stac)
    record = next(r for r in source.search(SearchQuery(ROI, ALL, ("S2MSI2A",))).products if r.product_id == S2_NEW)
    fetched = source.fetch(record, FetchRequest(tmp_path, roi_only=False))
    zipped = Path(fetched.href)
    assert zipped == tmp_path / "cdse" / f"{S2_NEW}.zip"
    assert hashlib.md5(zipped.read_bytes()).hexdigest() == cdse.by_name(S2_NEW).checksums[0]["Value"]
    item = json.loads(json.dumps(record.extra["stac_item"]))
    item["assets"]["Product"]["file:checksum"] = "d50110" + "0" * 32
    bad = dataclasses.replace(record, extra={**record.extra, "stac_item": item})
    with pytest.raises(ChecksumError):
        source.fetch(bad, FetchRequest(tmp_path / "bad", roi_only=False))


def test_tokens_go_to_cdse_hosts_only(servers: tuple[StacServer, CdseServer], tmp_path: Path) -> None:
    stac, cdse = servers
    source = provider(stac)
    record = next(r for r in source.search(SearchQuery(ROI, ALL, ("S2MSI2A",))).products if r.product_id == S2_NEW)
    item = json.loads(json.dumps(record.extra["stac_item"]))
    item["properties"]["auth:schemes"]["oidc"]["openIdConnectUrl"] = (
        "https://identity.example.org/auth/realms/CDSE/.well-known/openid-configuration"
    )
    grants = sum(cdse.grants.values())
    with pytest.raises(SourceError, match="not a CDSE host"):
        source.fetch(dataclasses.replace(record, extra={**record.extra, "stac_item": item}), FetchRequest(tmp_path))
    assert sum(cdse.grants.values()) == grants
    assert source.trusted("https://zipper.dataspace.copernicus.eu/odata/v1/Products(x)/$value")
    assert not source.trusted("http://zipper.dataspace.copernicus.eu/odata/v1/Products(x)/$value")
    assert not source.trusted("https://dataspace.copernicus.eu.example.org/token")
    # the account and its connection slots are the cdse source's
    downloader = source.downloader(f"{cdse.url}/download/odata/v1", cdse.token_url)
    same = CdseProvider(cdse.odata_url, cdse.download_url, cdse.token_url, Credentials(USER, Secret(PASSWORD)))
    assert downloader.account() == same.account()
    with pytest.raises(MetadataError, match="names no OData product"):
        odata_location({"id": "x", "assets": {"B04": {"href": "s3://eodata/x.jp2"}}})


def test_cdse_stac_run_equals_the_local_run(
    servers: tuple[StacServer, CdseServer], tmp_path: Path, demo_products: Path
) -> None:
    stac, _ = servers
    config = tmp_path / "demo.json"
    config.write_text(json.dumps(demo_config_dict()))
    credentials = tmp_path / "credentials.json"
    credentials.write_text(json.dumps({"username": USER, "password": PASSWORD}))
    credentials.chmod(0o600)
    local, out = tmp_path / "local", tmp_path / "out"
    assert main(["run", "--config", str(config), "--outdir", str(local), "--source", f"local:{demo_products}",
                 "--quiet"]) == 0  # fmt: skip
    args = ["--outdir", str(out), "--source", f"cdse-stac:{stac.url}", "--credentials", str(credentials)]
    assert main(["run", "--config", str(config), *args, "--cache-dir", str(tmp_path / "cache"), "--quiet"]) == 0

    def tifs(folder: Path) -> dict[str, bytes]:
        return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted((folder / "patches").rglob("*.tif"))}

    assert tifs(out) and tifs(out) == tifs(local)
