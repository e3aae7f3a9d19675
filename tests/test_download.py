"""``senprep download``: the whole products a run would use, fetched from the sources (CDSE + ASF fallback,
Google Cloud Storage) into a folder, verified and stored as .zip / .SAFE; a re-run skips them; then
``senprep run --source local:DIR`` processes them with every server stopped and makes the patches of a run
on the original products. Plus what cannot be downloaded whole, and failures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from senprep_core.catalog.local import LocalProvider
from senprep_core.catalog.records import FetchRequest, ProductRecord, SearchQuery, SearchResult
from senprep_core.cli import main
from senprep_core.config import parse_config
from senprep_core.demo.catalog import DEMO_ROI_GEOJSON, demo_config_dict, demo_runs
from senprep_core.download import download, store, stored_product
from senprep_core.events import Event
from senprep_core.fetch.earthdata import ENV_LOGIN_URL
from senprep_core.unit.fetching import FetchOptions
from tests.servers.asf_server import AsfServer, EarthdataLoginServer
from tests.servers.cdse_server import CdseServer
from tests.servers.gcs_server import GcsServer

pytestmark = pytest.mark.integration

S1_2022 = "S1A_IW_GRDH_1SDV_20220421T062348_20220421T062350_042868_06CA51_B12D"
S2_APRIL = "S2B_MSIL2A_20220420T113619_N0400_R080_T30UVG_20220420T140000"


def _json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    path.chmod(0o600)
    return path


def _tifs(outdir: Path) -> dict[str, bytes]:
    return {p.relative_to(outdir).as_posix(): p.read_bytes() for p in sorted((outdir / "patches").rglob("*.tif"))}


def _pair_config(tmp_path: Path, demo_products: Path) -> Path:
    s1 = next(data for name, data in demo_runs(demo_products) if name == "s1")
    s1_settings = {"bands": ["sigma0_VV_dB"], "dem": s1["sentinel1"]["dem"], "speckle_filter": "boxcar"}
    config = {"name": "pair", "roi": DEMO_ROI_GEOJSON, "dates": [["2022-04-15", "2022-04-25"]],
              "mode": "s2_with_closest_s1", "patches": {"size": [128, 128], "overlap": [0, 0]},
              "sentinel2": {"bands": ["B04", "B08", "SCL"]}, "sentinel1": s1_settings}  # fmt: skip
    return _json(tmp_path / "pair.json", config)


def test_download_then_process_offline_as_the_2022_tool_did(
    tmp_path: Path, demo_products: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Download only (CDSE for S2, ASF for S1 as the fallback), then process only, with no server running."""
    only_s2 = tmp_path / "only-s2"
    only_s2.mkdir()
    for product in demo_products.glob("S2*"):
        (only_s2 / product.name).symlink_to(product)
    cdse = CdseServer(tmp_path / "cdse", username="cdse-user", password="cdse-Pa55").start()
    cdse.add_products(only_s2)
    login = EarthdataLoginServer("ed-user", "ed-Pa55word").start()
    asf = AsfServer(tmp_path / "asf", login)
    asf.add_products(demo_products)
    asf.start()
    monkeypatch.setenv(ENV_LOGIN_URL, login.url)
    config = _pair_config(tmp_path, demo_products)
    products = tmp_path / "products"
    copernicus = _json(tmp_path / "c.json", {"username": "cdse-user", "password": "cdse-Pa55"})
    earthdata = _json(tmp_path / "e.json", {"username": "ed-user", "password": "ed-Pa55word"})
    args = ["download", "--config", str(config), "--outdir", str(products), "--source", f"cdse:{cdse.url}",
            "--source", f"asf:{asf.url}", "--credentials", str(copernicus), "--credentials_earthdata", str(earthdata),
            "--cache-dir", str(tmp_path / "cache"), "--quiet"]  # fmt: skip
    try:
        assert main(args) == 0
        report = json.loads((products / "download.json").read_text())
        assert {p["product_id"]: p["status"] for p in report["products"]} == {S2_APRIL: "downloaded",
                                                                                S1_2022: "downloaded"}  # fmt: skip
        assert (products / f"{S2_APRIL}.zip").is_file() and (products / f"{S1_2022}.zip").is_file()
        assert sorted(p.name for p in products.iterdir()) == sorted(
            ["download.json", f"{S1_2022}.zip", f"{S2_APRIL}.zip"]
        )
        # a re-run finds both in the folder: nothing is fetched again
        served = cdse.total_bytes, sum(asf.bytes_served.values())
        assert main(args) == 0
        assert (cdse.total_bytes, sum(asf.bytes_served.values())) == served
        assert {p["status"] for p in json.loads((products / "download.json").read_text())["products"]} == {"skipped"}
    finally:
        cdse.stop()
        asf.stop()
        login.stop()
    local, offline = tmp_path / "local", tmp_path / "offline"
    assert main(["run", "--config", str(config), "--outdir", str(local), "--source", f"local:{demo_products}",
                 "--quiet"]) == 0  # fmt: skip
    assert main(["run", "--config", str(config), "--outdir", str(offline), "--source", f"local:{products}",
                 "--quiet"]) == 0  # fmt: skip
    assert _tifs(offline) and _tifs(offline) == _tifs(local)


def test_download_from_gcs_stores_whole_safe_folders(tmp_path: Path, demo_products: Path) -> None:
    gcs = GcsServer()
    gcs.add_products(demo_products)
    gcs.start()
    config = _json(tmp_path / "demo.json", demo_config_dict())
    products = tmp_path / "products"
    events: list[Event] = []
    try:
        result = download(parse_config(demo_config_dict()), products, [f"gcs:{gcs.url}"],
                          FetchOptions(tmp_path / "cache"), events.append)  # fmt: skip
    finally:
        gcs.stop()
    assert result.status == "complete" and result.exit_code == 0 and result.count("downloaded") >= 2
    kinds = [e.kind for e in events]
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunFinished" and "BytesProgress" in kinds
    assert kinds.count("UnitFinished") == len(result.results)
    for outcome in result.results:
        safe = products / f"{outcome.product_id}.SAFE"
        assert safe.is_dir() and not (safe / ".complete").exists() and (safe / "manifest.safe").is_file()
        assert not [p for p in safe.rglob("*") if p.name.endswith((".part", ".lock", ".verified"))]
    scanned = LocalProvider(products).scan()
    assert sorted(r.product_id for r in scanned.products) == sorted(r.product_id for r in result.results)
    local, offline = tmp_path / "local", tmp_path / "offline"
    assert main(["run", "--config", str(config), "--outdir", str(local), "--source", f"local:{demo_products}",
                 "--quiet"]) == 0  # fmt: skip
    assert main(["run", "--config", str(config), "--outdir", str(offline), "--source", f"local:{products}",
                 "--quiet"]) == 0  # fmt: skip
    assert _tifs(offline) == _tifs(local)


class _CogCatalogue:
    """A stand-in for a COG catalogue (its products are read by window, so they cannot be downloaded whole)."""

    name = "earth-search"
    whole_products = False

    def __init__(self, records: list[ProductRecord]) -> None:
        self.records = records

    def search(self, query: SearchQuery) -> SearchResult:
        return SearchResult(tuple(r for r in self.records if r.product_type in query.product_types))

    def fetch(self, record: ProductRecord, request: FetchRequest) -> ProductRecord:  # pragma: no cover
        raise AssertionError("never fetched")


def test_products_that_cannot_be_downloaded_whole_fail_by_name(tmp_path: Path, demo_products: Path) -> None:
    record = next(r for r in LocalProvider(demo_products).scan().products if r.product_id == S2_APRIL)
    remote = ProductRecord(**{**record.__dict__, "provider": "earth-search", "href": "https://x.invalid/item.json",
                              "footprint_unwrapped": None})  # fmt: skip
    config = parse_config({**demo_config_dict(), "dates": ["20220401", "20220430"]})
    result = download(config, tmp_path / "products", providers=[_CogCatalogue([remote])],  # type: ignore[list-item]
                      fetch=FetchOptions(tmp_path / "cache"))  # fmt: skip
    assert result.status == "failed" and result.exit_code == 1
    (failure,) = result.failed
    assert failure.product_id == S2_APRIL and "not whole products" in str(failure.error_message)
    assert "cdse, cdse-stac, asf, gcs or dhus" in str(failure.error_message)
    report = json.loads((tmp_path / "products" / "download.json").read_text())
    assert report["products"][0]["status"] == "failed" and report["status"] == "failed"


def test_store_is_atomic_and_recognises_products(tmp_path: Path, demo_products: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    safe = next(demo_products.glob("S2*.SAFE"))
    pid = safe.name.removesuffix(".SAFE")
    assert stored_product(out, pid) is None
    final = store(safe, out, pid)
    assert final == out / safe.name and stored_product(out, pid) == final
    assert sorted(p.name for p in out.iterdir()) == [safe.name]  # no temporary name stays
    partial = out / "S2X_MSIL2A_20990101T000000_N0500_R080_T30UVG_20990101T000000.SAFE"
    partial.mkdir()
    (partial / ".complete").write_text("{}")
    assert stored_product(out, partial.name.removesuffix(".SAFE")) is None  # a cache partial is not a product


def test_every_command_takes_the_credentials_of_each_account_kind(
    tmp_path: Path, demo_products: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    login = EarthdataLoginServer("ed-user", "ed-Pa55word").start()
    asf = AsfServer(tmp_path / "asf", login)
    asf.add_products(demo_products)
    asf.start()
    monkeypatch.setenv(ENV_LOGIN_URL, login.url)
    s1 = next(data for name, data in demo_runs(demo_products) if name == "s1")
    config = _json(tmp_path / "s1.json", s1)
    earthdata = _json(tmp_path / "e.json", {"username": "ed-user", "password": "ed-Pa55word"})
    google = _json(tmp_path / "g.json", {"access_token": "ya29.not-needed-here"})
    common = ["--config", str(config), "--source", f"asf:{asf.url}", "--credentials_earthdata", str(earthdata),
              "--credentials_google", str(google)]  # fmt: skip
    try:
        assert main(["search", *common, "--json"]) == 0
        found = json.loads(capsys.readouterr().out)["products"]
        assert {p["product_id"] for p in found} == {
            S1_2022,
            "S1A_IW_GRDH_1SDV_20210814T174135_20210814T174137_039229_0F6E81_BA7A",
        }
        assert main(["plan", *common, "--json"]) == 0
        assert len(json.loads(capsys.readouterr().out)["units"]) == 2
        out = tmp_path / "run"
        assert main(["run", *common, "--outdir", str(out), "--cache-dir", str(tmp_path / "cache"), "--quiet"]) == 0
        assert json.loads((out / "run.json").read_text())["status"] == "complete" and login.logins >= 1
        assert "ed-Pa55word" not in (out / "run.json").read_text()
    finally:
        asf.stop()
        login.stop()
    # a credentials file that is not there: bad input, exit code 2, naming the flag
    assert main(["plan", *common[:4], "--credentials_earthdata", str(tmp_path / "missing.json")]) == 2
    assert "--credentials_earthdata" in capsys.readouterr().err
