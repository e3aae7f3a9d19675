"""The ``gcs`` source against a Cloud Storage JSON API on 127.0.0.1 holding the demo products in the layout of
``gcp-public-data-sentinel-2`` (tests/servers/gcs_server.py): search per MGRS tile, ROI-mode and whole-product
fetches (MD5 / CRC32C checked, resumed), service-account and authorized-user credentials, and a run that makes
the same patches as the local products."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from shapely.geometry import box, shape

from senprep_core.catalog.gcs import GcsProvider, object_checksum
from senprep_core.catalog.records import FetchRequest, SearchQuery
from senprep_core.cli import main
from senprep_core.demo.catalog import DEMO_ROI_GEOJSON, demo_config_dict
from senprep_core.errors import ChecksumError, CredentialsError
from senprep_core.fetch.google_auth import read_google_credentials
from senprep_core.s2.metadata import read_s2_metadata
from senprep_core.s2.reader import read_s2_window
from senprep_core.timeutil import DateWindow
from tests.servers.gcs_server import GcsServer
from tests.test_cdse import demo_grid

pytestmark = pytest.mark.integration

ROI = shape(DEMO_ROI_GEOJSON)
ALL = (DateWindow(date(2021, 1, 1), date(2022, 12, 31)),)
S2_NEW = "S2B_MSIL2A_20220729T113629_N0500_R080_T30UVG_20220729T140000"
L1C = "S2A_MSIL1C_20220614T113621_N0400_R080_T30UVG_20220614T140000"
PREFIX = f"L2/tiles/30/U/VG/{S2_NEW}.SAFE/"


@pytest.fixture(scope="module")
def server(demo_products: Path) -> Iterator[GcsServer]:
    srv = GcsServer()
    srv.add_products(demo_products)
    srv.start()
    yield srv
    srv.stop()


def provider(server: GcsServer, **kwargs: object) -> GcsProvider:
    return GcsProvider(server.url, page_size=2, retries=2, backoff=0.01, **kwargs)  # type: ignore[arg-type]


def test_search_lists_the_tiles_of_the_roi_and_reads_each_product_metadata(
    server: GcsServer, demo_products: Path
) -> None:
    before = len(server.listings)
    result = provider(server).search(SearchQuery(ROI, ALL, ("S2MSI2A",), (0.0, 100.0)))
    expected = sorted(p.name.removesuffix(".SAFE").removesuffix(".zip") for p in demo_products.glob("S2?_MSIL2A*"))
    assert [r.product_id for r in result.products] == expected and not result.problems
    listings = server.listings[before:]
    assert listings[0] == {"prefix": "L2/tiles/30/U/VG/", "delimiter": "/", "maxResults": "2"}
    assert len(listings) >= 2  # paged with pageToken
    record = next(r for r in result.products if r.product_id == S2_NEW)
    meta = read_s2_metadata(next(demo_products.glob(f"{S2_NEW}*")))
    assert record.cloud_cover == pytest.approx(meta.cloud_cover) and record.tile_id == "30UVG"
    assert record.footprint is not None and record.footprint.equals_exact(meta.footprint, 1e-9)
    assert record.href == f"gs://gcp-public-data-sentinel-2/{PREFIX}" and record.relative_orbit == 80
    # L1C lives under tiles/, a cloud range and an ROI elsewhere filter
    l1c = provider(server).search(SearchQuery(ROI, ALL, ("S2MSI1C",)))
    assert [r.product_id for r in l1c.products] == [L1C]
    low = provider(server).search(SearchQuery(ROI, ALL, ("S2MSI2A",), (0.0, 25.0)))
    assert all(r.cloud_cover is not None and r.cloud_cover <= 25.0 for r in low.products)
    assert len(low.products) < len(result.products)
    assert not provider(server).search(SearchQuery(box(10, 40, 10.1, 40.1), ALL, ("S2MSI2A",))).products


def test_an_incomplete_product_folder_is_a_problem(server: GcsServer) -> None:
    server.hide.add(PREFIX + "MTD_MSIL2A.xml")
    try:
        result = provider(server).search(SearchQuery(ROI, ALL, ("S2MSI2A",)))
    finally:
        server.hide.clear()
    assert S2_NEW not in [r.product_id for r in result.products]
    assert [p.name for p in result.problems] == [S2_NEW] and "incomplete" in result.problems[0].message


def test_roi_mode_fetches_only_the_needed_objects_and_reads_like_the_full_product(
    server: GcsServer, tmp_path: Path, demo_products: Path
) -> None:
    gcs = provider(server)
    record = next(r for r in gcs.search(SearchQuery(ROI, ALL, ("S2MSI2A",))).products if r.product_id == S2_NEW)
    fetched = gcs.fetch(record, FetchRequest(tmp_path, ("B04", "SCL"), True))
    safe = Path(fetched.href)
    assert safe == tmp_path / "gcs" / f"{S2_NEW}.SAFE" and (safe / ".complete").is_file()
    jp2 = sorted(p.name for p in safe.rglob("*.jp2"))
    assert jp2 == [f"T30UVG_20220729T113629_{b}.jp2" for b in ("B04_10m", "SCL_20m")]
    assert not [p for p in safe.rglob("*") if p.name.endswith((".part", ".verified", ".lock"))]
    bands = ("B04", "SCL", "scl_cloud_shadow")
    part = read_s2_window(read_s2_metadata(safe), demo_grid(), bands)
    full = read_s2_window(read_s2_metadata(demo_products / f"{S2_NEW}.SAFE"), demo_grid(), bands)
    np.testing.assert_array_equal(part.data, full.data)
    np.testing.assert_array_equal(part.cloud, full.cloud)
    # a second fetch of the same bands makes no request at all; one more band fetches only its object
    listings, media = len(server.listings), sum(server.media.values())
    assert gcs.fetch(record, FetchRequest(tmp_path, ("B04",), True)).href == str(safe)
    assert (len(server.listings), sum(server.media.values())) == (listings, media)
    gcs.fetch(record, FetchRequest(tmp_path, ("B04", "B08", "SCL"), True))
    assert sum(server.media.values()) - media == 1 and any(safe.rglob("*_B08_10m.jp2"))


def test_product_mode_fetches_every_object_resumes_and_verifies(server: GcsServer, tmp_path: Path) -> None:
    gcs = provider(server)
    record = next(r for r in gcs.search(SearchQuery(ROI, ALL, ("S2MSI2A",))).products if r.product_id == S2_NEW)
    band = next(n for n in server.objects if n.startswith(PREFIX) and n.endswith("B08_10m.jp2"))
    size = len(server.objects[band].data)
    server.drop_after[band] = size // 2
    served = server.bytes_served[band]
    fetched = gcs.fetch(record, FetchRequest(tmp_path, ("B04",), roi_only=False))
    safe = Path(fetched.href)
    members = {n[len(PREFIX) :] for n in server.objects if n.startswith(PREFIX)}
    assert {p.relative_to(safe).as_posix() for p in safe.rglob("*") if p.is_file()} == members | {".complete"}
    assert server.bytes_served[band] - served < size * 1.05  # resumed with Range after the drop
    assert read_s2_metadata(safe).product_id == S2_NEW
    # an object whose bytes do not match its md5Hash is refused; one listed with crc32c only is checked by it
    server.corrupt.add(band)
    try:
        with pytest.raises(ChecksumError, match="md5 checksum mismatch"):
            gcs.fetch(record, FetchRequest(tmp_path / "bad", roi_only=False))
    finally:
        server.corrupt.clear()
    server.no_md5.add(band)
    server.corrupt.add(band)
    try:
        with pytest.raises(ChecksumError, match="crc32c checksum mismatch"):
            gcs.fetch(record, FetchRequest(tmp_path / "bad2", roi_only=False))
    finally:
        server.corrupt.clear()
        server.no_md5.clear()


def test_object_checksums() -> None:
    assert object_checksum({"md5Hash": "rL0Y20zC+Fzt72VPzMSk2A==", "crc32c": "yZRlqg=="}).algorithm == "md5"  # type: ignore[union-attr]
    crc = object_checksum({"crc32c": "yZRlqg=="})
    assert crc is not None and crc.algorithm == "crc32c" and crc.value == "c99465aa"
    assert object_checksum({}) is None


def _service_account(tmp_path: Path, server: GcsServer) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    email = "senprep-test@project.iam.gserviceaccount.com"
    server.accounts[email] = key.public_key()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()  # fmt: skip
    info = {"type": "service_account", "project_id": "project", "private_key_id": "abc123", "private_key": pem,
            "client_email": email, "client_id": "1234567890", "token_uri": f"{server.url}/token",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth"}  # fmt: skip
    path = tmp_path / "service-account.json"
    path.write_text(json.dumps(info))
    path.chmod(0o600)
    return path


def test_a_private_bucket_with_service_account_or_authorized_user_credentials(
    tmp_path: Path, demo_products: Path, caplog: pytest.LogCaptureFixture
) -> None:
    srv = GcsServer(require_token=True)
    srv.add_products(demo_products)
    srv.start()
    try:
        with pytest.raises(CredentialsError, match="Cloud Storage refused anonymous reads"):
            provider(srv).search(SearchQuery(ROI, ALL, ("S2MSI2A",)))
        caplog.set_level(logging.DEBUG)
        key_file = _service_account(tmp_path, srv)
        gcs = provider(srv, auth=read_google_credentials(key_file))
        result = gcs.search(SearchQuery(ROI, ALL, ("S2MSI2A",)))
        assert result.products and not result.problems
        gcs.fetch(result.products[0], FetchRequest(tmp_path / "cache", ("B04",)))
        assert srv.grants["urn:ietf:params:oauth:grant-type:jwt-bearer"] == 1  # one token serves every request
        private_key = json.loads(key_file.read_text())["private_key"]
        assert "PRIVATE KEY" not in caplog.text and private_key[40:80] not in caplog.text
        assert not any(t in caplog.text for t in srv.issued)
        user = tmp_path / "authorized-user.json"
        user.write_text(json.dumps({"type": "authorized_user", "client_id": "cid.apps.googleusercontent.com",
                                    "client_secret": "c-secret-value", "refresh_token": "1//refresh-value",
                                    "token_uri": f"{srv.url}/token"}))  # fmt: skip
        srv.refresh_tokens["1//refresh-value"] = ("cid.apps.googleusercontent.com", "c-secret-value")
        assert provider(srv, auth=read_google_credentials(user)).search(SearchQuery(ROI, ALL, ("S2MSI2A",))).products
        wrong = tmp_path / "wrong.json"
        wrong.write_text(json.dumps({**json.loads(user.read_text()), "refresh_token": "1//revoked"}))
        with pytest.raises(CredentialsError, match="Google refused the credentials") as caught:
            provider(srv, auth=read_google_credentials(wrong)).search(SearchQuery(ROI, ALL, ("S2MSI2A",)))
        assert "1//revoked" not in str(caught.value) and "c-secret-value" not in str(caught.value)
    finally:
        srv.stop()
    with pytest.raises(CredentialsError, match="unknown type"):
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({"type": "external_account"}))
        read_google_credentials(bad)


def test_gcs_run_equals_the_local_run(server: GcsServer, tmp_path: Path, demo_products: Path) -> None:
    config = tmp_path / "demo.json"
    config.write_text(json.dumps(demo_config_dict()))
    local, out = tmp_path / "local", tmp_path / "out"
    assert main(["run", "--config", str(config), "--outdir", str(local), "--source", f"local:{demo_products}",
                 "--quiet"]) == 0  # fmt: skip
    assert main(["run", "--config", str(config), "--outdir", str(out), "--source", f"gcs:{server.url}",
                 "--cache-dir", str(tmp_path / "cache"), "--quiet"]) == 0  # fmt: skip

    def tifs(folder: Path) -> dict[str, bytes]:
        return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted((folder / "patches").rglob("*.tif"))}

    assert tifs(out) and tifs(out) == tifs(local)
    report = json.loads((out / "run.json").read_text())
    assert {p["provider"] for u in report["plan"]["units"] for p in u["products"]} == {f"gcs:{server.url}"}
