"""Sentinel-1 GRD from Planetary Computer: a partial SAFE whose measurements are read by window from COGs.

A synthetic GRD (senprep_core.demo, real SAFE layout) is laid out as Planetary Computer stores it: the folder
``s1-grd/GRD/<y>/<m>/<d>/IW/DV/<product>/`` with ``manifest.safe`` as is (ESA names), the per-image files
under PC's short names (``measurement/iw-vv.tiff`` as a COG, ``annotation/iw-vv.xml``,
``annotation/calibration/calibration-iw-vv.xml`` / ``noise-iw-vv.xml``), served by the file server on
127.0.0.1. A PC-style item (the real asset keys; ``schema-product-*`` pointing at the RFI annotation, as in
PC's own test data) is served by ``rustac serve``. ``senprep run --source planetary-computer:URL`` must give
the same patches as the local SAFE, fetching only a fraction of the measurement bytes and only the files of
the requested polarisation.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import date
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from shapely import wkt
from shapely.geometry import mapping

from senprep_core.catalog.records import FetchRequest, SearchQuery
from senprep_core.catalog.s1_cog import COMPLETE
from senprep_core.catalog.stac import ENV_PLANETARY_COMPUTER_SAS_URL, PlanetaryComputerSigner, StacProvider
from senprep_core.catalog.stac_items import item_to_record
from senprep_core.cli import main
from senprep_core.demo.catalog import DEMO_DEM, demo_s1_config_dict, demo_s1_specs
from senprep_core.demo.s1 import make_s1_product, s1_ground_truth
from senprep_core.errors import DownloadError, SourceError
from senprep_core.geo.grid import PixelWindow
from senprep_core.s1.measurement import read_dn
from senprep_core.s1.metadata import read_s1_metadata
from senprep_core.timeutil import DateWindow
from tests.servers.fileserver import FileServer, Reply, serve_files
from tests.servers.stac_server import serve_stac
from tests.test_cog_reads import SIGNATURE

pytestmark = pytest.mark.integration

BLOCK = 256  # COG block size of the measurement COGs


def _pc_path(member: str) -> str:
    """The PC path of a SAFE member: per-image files renamed (``annotation/s1a-iw-grd-vv-...-001.xml`` ->
    ``annotation/iw-vv.xml``, ``.../noise-s1a-iw-grd-vh-...xml`` -> ``.../noise-iw-vh.xml``), the rest as is."""
    path = PurePosixPath(member)
    m = re.fullmatch(r"(calibration-|noise-)?s1[ab]-(iw)-grd-(vv|vh)-[0-9a-z-]+\.(xml|tiff)", path.name)
    return f"{path.parent}/{m[1] or ''}{m[2]}-{m[3]}.{m[4]}" if m else member


@pytest.fixture(scope="module")
def pc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The demo GRD (``products/``, with its DEM) and its PC layout under ``blob/`` (``folder`` relative)."""
    root = tmp_path_factory.mktemp("pc-s1")
    spec = demo_s1_specs()[0]
    products = root / "products"
    safe = make_s1_product(spec, products)
    s1_ground_truth(spec).write_dem(products / DEMO_DEM)
    meta = read_s1_metadata(safe)
    t = meta.start_time
    folder = f"s1-grd/GRD/{t.year}/{t.month}/{t.day}/IW/DV/{meta.product_id}"
    for src in sorted(p for p in safe.rglob("*") if p.is_file()):
        member = src.relative_to(safe).as_posix()
        dst = root / "blob" / folder / _pc_path(member)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if member.startswith("measurement/"):
            rasterio.shutil.copy(src, dst, driver="COG", BLOCKSIZE=BLOCK, COMPRESS="DEFLATE", PREDICTOR=2)
        else:
            shutil.copyfile(src, dst)
    listing = sorted(p.relative_to(root / "blob" / folder).as_posix() for p in (root / "blob" / folder).rglob("*.*"))
    assert listing == [
        "annotation/calibration/calibration-iw-vh.xml", "annotation/calibration/calibration-iw-vv.xml",
        "annotation/calibration/noise-iw-vh.xml", "annotation/calibration/noise-iw-vv.xml",
        "annotation/iw-vh.xml", "annotation/iw-vv.xml", "manifest.safe",
        "measurement/iw-vh.tiff", "measurement/iw-vv.tiff", "preview/quick-look.png",
    ]  # fmt: skip
    return {"root": root, "products": products, "safe": safe, "meta": meta, "folder": folder}


def _item(pc: dict[str, Any], base: str, query: str = SIGNATURE) -> dict[str, Any]:
    """A Planetary Computer ``sentinel-1-grd`` item of the product (asset keys and href layout as PC's)."""
    meta = pc["meta"]
    folder = f"{base}/{pc['folder']}"

    def href(path: str) -> str:
        return f"{folder}/{path}" + (f"?{query}" if query else "")

    assets: dict[str, Any] = {
        "safe-manifest": {"href": href("manifest.safe"), "type": "application/xml", "roles": ["metadata"]},
        "thumbnail": {"href": href("preview/quick-look.png"), "type": "image/png", "roles": ["thumbnail"]},
    }
    for pol in ("vv", "vh"):
        assets[pol] = {"href": href(f"measurement/iw-{pol}.tiff"), "roles": ["data"],
                       "type": "image/tiff; application=geotiff; profile=cloud-optimized"}  # fmt: skip
        # as in PC's own test item: the product schema asset names the RFI annotation, not the image one
        assets[f"schema-product-{pol}"] = {"href": href(f"annotation/rfi/rfi-iw-{pol}.xml"), "roles": ["metadata"]}
        for kind in ("calibration", "noise"):
            assets[f"schema-{kind}-{pol}"] = {
                "href": href(f"annotation/calibration/{kind}-iw-{pol}.xml"),
                "roles": ["metadata"],
            }
    stamp = meta.start_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    props = {
        "datetime": stamp, "start_datetime": stamp, "end_datetime": meta.stop_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "platform": "SENTINEL-1A", "constellation": "Sentinel-1", "sar:instrument_mode": "IW",
        "sar:polarizations": ["VV", "VH"], "sar:product_type": "GRD", "sat:orbit_state": "ascending",
        "sat:relative_orbit": meta.relative_orbit, "sat:absolute_orbit": meta.absolute_orbit,
    }  # fmt: skip
    footprint = wkt.loads(meta.footprint_wkt)
    return {
        "type": "Feature", "stac_version": "1.0.0", "stac_extensions": [],
        "id": meta.product_id.rsplit("_", 1)[0],  # PC ids drop the product CRC
        "collection": "sentinel-1-grd", "geometry": mapping(footprint), "bbox": list(footprint.bounds),
        "properties": props, "links": [], "assets": assets,
    }  # fmt: skip


def _tifs(outdir: Path) -> dict[str, bytes]:
    return {p.relative_to(outdir).as_posix(): p.read_bytes() for p in sorted((outdir / "patches").rglob("*.tif"))}


def _served(files: FileServer, pc: dict[str, Any], kind: str) -> dict[str, int]:
    """Bytes served per PC file name of one folder (``measurement/iw-vv.tiff`` ...) under ``kind``/."""
    prefix = f"/{pc['folder']}/"
    return {p[len(prefix) :]: n for p, n in files.bytes_served.items() if p.startswith(prefix + kind)}


@pytest.fixture
def no_sas(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SAS endpoint is a closed local port: a signing call would fail instead of reaching the network."""
    monkeypatch.setenv(ENV_PLANETARY_COMPUTER_SAS_URL, "http://127.0.0.1:9/api/sas/v1")


def test_run_reads_measurement_windows_and_equals_the_local_run(
    pc: dict[str, Any], tmp_path: Path, no_sas: None
) -> None:
    data = demo_s1_config_dict(pc["products"])
    data["sentinel1"]["bands"] = ["sigma0_VV_dB", "local_incidence_angle"]  # VV only
    config = tmp_path / "s1.json"
    config.write_text(json.dumps(data))
    local = tmp_path / "local"
    assert main(["run", "--config", str(config), "--outdir", str(local), "--source", f"local:{pc['products']}",
                 "--quiet"]) == 0  # fmt: skip
    expected = _tifs(local)
    assert expected
    cache = tmp_path / "cache"
    with serve_files(pc["root"] / "blob") as files, serve_stac([_item(pc, files.url)]) as stac:
        outdir = tmp_path / "remote"
        args = ["run", "--config", str(config), "--outdir", str(outdir), "--source", f"planetary-computer:{stac.url}"]
        assert main([*args, "--cache-dir", str(cache), "--quiet"]) == 0
        log = list(files.log)
        measurement = _served(files, pc, "measurement/")
        xml = _served(files, pc, "annotation/")
    assert _tifs(outdir) == expected  # identical patch files, byte for byte
    report = json.loads((outdir / "run.json").read_text())
    assert report["status"] == "complete"
    # only VV files were touched: its COG by window, its three XML files and the manifest
    assert set(measurement) == {"measurement/iw-vv.tiff"}
    assert set(xml) == {"annotation/iw-vv.xml", "annotation/calibration/calibration-iw-vv.xml",
                        "annotation/calibration/noise-iw-vv.xml"}  # fmt: skip
    assert not any("rfi" in r.path or "quick-look" in r.path for r in log)
    assert all(r.query == SIGNATURE for r in log)  # every request carried the signature of the item's hrefs
    cog = pc["root"] / "blob" / pc["folder"] / "measurement/iw-vv.tiff"
    ratio = measurement["measurement/iw-vv.tiff"] / cog.stat().st_size
    print(f"\nS1 VV COG: {measurement['measurement/iw-vv.tiff']} of {cog.stat().st_size} bytes served "
          f"({100 * ratio:.1f} %), {sum(1 for r in log if 'measurement' in r.path)} requests")  # fmt: skip
    assert 0 < ratio < 0.25
    # the partial SAFE in the cache: manifest, VV XML, and a VRT (a few hundred bytes) for the VV measurement
    (safe,) = (cache / "planetary-computer").glob("*.SAFE")
    assert safe.name == pc["safe"].name
    members = sorted(p.relative_to(safe).as_posix() for p in safe.rglob("*") if p.is_file())
    vv = [m for m in members if "-vv-" in m]
    assert len(vv) == 4 and not any("-vh-" in m for m in members) and COMPLETE in members
    vrt = next(m for m in vv if m.startswith("measurement/"))
    assert (safe / vrt).read_bytes().startswith(b"<VRTDataset") and (safe / vrt).stat().st_size < 2000


def test_fetch_signs_reuses_the_cache_and_adds_a_polarisation(pc: dict[str, Any], tmp_path: Path) -> None:
    """Unsigned hrefs signed with a SAS token (from a local SAS server); a second fetch reuses the XML and only
    re-reads the COG header for its fresh VRT; asking for VH later adds VH and keeps VV."""
    sas = tmp_path / "sas"
    (sas / "token").mkdir(parents=True)
    token = "st=2099-01-01&se=2099-01-02&sp=rl&sr=c&sig=s1%2Btoken%3D"
    (sas / "token" / "sentinel-1-grd").write_text(json.dumps({"msft:expiry": "2099-01-01T00:00:00Z", "token": token}))
    with serve_files(pc["root"] / "blob") as files, serve_files(sas) as sas_server:
        with serve_stac([_item(pc, files.url, query="")]) as stac:
            signer = PlanetaryComputerSigner(sas_server.url, hosts=("127.0.0.1",))
            provider = StacProvider.planetary_computer(url=stac.url, sign=signer)
            footprint = wkt.loads(pc["meta"].footprint_wkt)
            query = SearchQuery(roi=footprint.centroid.buffer(0.01), windows=(DateWindow(date(2021, 8, 1),
                                date(2021, 8, 31)),), product_types=("GRD",))  # fmt: skip
            (record,) = provider.search(query).products
            assert record.product_id == pc["meta"].product_id
            fetched = provider.fetch(record, FetchRequest(tmp_path / "cache", ("VV",)))
            first = list(files.log)
            assert {r.query for r in first} == {token}
            assert sorted({r.path.rsplit("/", 1)[-1] for r in first if r.method == "GET"}) == [
                "calibration-iw-vv.xml", "iw-vv.tiff", "iw-vv.xml", "manifest.safe", "noise-iw-vv.xml"]  # fmt: skip
            meta = read_s1_metadata(fetched.href)
            assert meta.polarisations == ("VV",) and meta.product_id == pc["meta"].product_id
            window = PixelWindow(700, 500, 64, 96)
            np.testing.assert_array_equal(read_dn(meta, "VV", window), read_dn(pc["meta"], "VV", window))

            files.reset_counters()
            again = provider.fetch(record, FetchRequest(tmp_path / "cache", ("VV",)))
            assert again.href == fetched.href
            # no XML again; at most the COG header for the fresh VRT (GDAL may still hold it in its cache)
            assert {r.path.rsplit("/", 1)[-1] for r in files.log} <= {"iw-vv.tiff"}
            assert files.total_bytes < 20_000

            files.reset_counters()
            both = provider.fetch(record, FetchRequest(tmp_path / "cache", ("VV", "VH")))
            names = {r.path.rsplit("/", 1)[-1] for r in files.log}
            assert {"iw-vh.tiff", "iw-vh.xml", "calibration-iw-vh.xml", "noise-iw-vh.xml"} <= names
            assert names <= {"iw-vv.tiff", "iw-vh.tiff", "iw-vh.xml", "calibration-iw-vh.xml", "noise-iw-vh.xml"}
            meta2 = read_s1_metadata(both.href)
            assert meta2.polarisations == ("VV", "VH")
            np.testing.assert_array_equal(read_dn(meta2, "VH", window), read_dn(pc["meta"], "VH", window))
        assert [p for _m, p, _r in sas_server.requests] == ["/token/sentinel-1-grd"]  # one token, reused
    marker = json.loads((Path(both.href) / COMPLETE).read_text())
    assert marker["polarisations"] == ["VH", "VV"]


def test_s1_on_requester_pays_storage_is_a_clear_error(pc: dict[str, Any], tmp_path: Path) -> None:
    item = _item(pc, "s3://sentinel-s1-l1c", query="")
    with serve_stac([item]) as stac:
        provider = StacProvider.earth_search(url=stac.url, collections={"GRD": ("sentinel-1-grd",)})
        record = item_to_record(item, provider.name)
        with pytest.raises(SourceError, match="not on public HTTP"):
            provider.fetch(record, FetchRequest(tmp_path / "cache", ("VV",)))
    assert not list((tmp_path / "cache").rglob("*.SAFE"))


def test_refused_cog_is_a_clear_error_without_the_signature(pc: dict[str, Any], tmp_path: Path) -> None:
    """An expired signature (403 on the COG): DownloadError naming the file, signature masked, no folder left."""
    expired = "st=2000-01-01&se=2000-01-02&sp=rl&sig=expired%2Bsig%3D"
    with serve_files(pc["root"] / "blob") as files:
        files.add_fault(Reply(f"/{pc['folder']}/measurement/iw-vv.tiff", 403, times=None))
        item = _item(pc, files.url, query=expired)
        record = item_to_record(item, "planetary-computer")
        provider = StacProvider.planetary_computer(url="http://127.0.0.1:9/unused", sign=None)
        with pytest.raises(DownloadError, match=r"VV measurement COG of S1A_IW_GRDH.*iw-vv\.tiff\?.*sig=\*\*\*") as err:
            provider.fetch(record, FetchRequest(tmp_path / "cache", ("VV",)))
    assert "expired%2Bsig" not in str(err.value) and "expired+sig" not in str(err.value)
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.suffix == ".SAFE" or p.name.startswith(".tmp")]
