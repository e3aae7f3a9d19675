"""`senprep run` against remote sources on 127.0.0.1 makes the same patches as the same products read locally.

- ``--source cdse:URL``: the CDSE-protocol test server (OData search, token, ``$value`` / ``Nodes`` downloads)
  serving the demo products, in ROI mode (per-file downloads) and whole-product mode;
- ``--source earth-search:URL``: ``rustac serve`` holding an Earth Search-style item whose band COGs are read by
  window over HTTP (no download).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyproj import Transformer

from senprep_core.cli import main
from senprep_core.demo.catalog import DEMO_EPSG, DEMO_ULX, DEMO_ULY, demo_config_dict
from tests.servers.cdse_server import CdseServer
from tests.servers.fileserver import serve_files
from tests.servers.stac_server import serve_stac
from tests.test_cog_reads import BANDS, _item

pytestmark = pytest.mark.integration

USER = "researcher@example.org"
PASSWORD = "run-Pa55word-not-in-outputs"


def _tifs(outdir: Path) -> dict[str, bytes]:
    """Every patch COG of a run: relative path -> bytes."""
    return {p.relative_to(outdir).as_posix(): p.read_bytes() for p in sorted((outdir / "patches").rglob("*.tif"))}


def _run(*args: str) -> int:
    return main(["run", *args, "--quiet"])


@pytest.fixture(scope="module")
def cdse(tmp_path_factory: pytest.TempPathFactory, demo_products: Path) -> Iterator[CdseServer]:
    server = CdseServer(tmp_path_factory.mktemp("cdse"), username=USER, password=PASSWORD)
    server.add_products(demo_products)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def local_demo_run(tmp_path_factory: pytest.TempPathFactory, demo_products: Path) -> tuple[Path, Path]:
    """The demo S2 config (legacy form) run on the local demo products: (config path, run folder)."""
    work = tmp_path_factory.mktemp("local-run")
    config = work / "demo.json"
    config.write_text(json.dumps(demo_config_dict()))
    outdir = work / "out"
    assert _run("--config", str(config), "--outdir", str(outdir), "--source", f"local:{demo_products}") == 0
    return config, outdir


@pytest.mark.parametrize("fetch", ["roi", "product"])
def test_cdse_run_equals_the_local_run(
    cdse: CdseServer, local_demo_run: tuple[Path, Path], tmp_path: Path, fetch: str
) -> None:
    config, local_out = local_demo_run
    credentials = tmp_path / "credentials.json"
    credentials.write_text(json.dumps({"username": USER, "password": PASSWORD, "sentinel_url_endpoint": cdse.url}))
    credentials.chmod(0o600)
    outdir, cache = tmp_path / "out", tmp_path / "cache"
    args = ["--config", str(config), "--outdir", str(outdir), "--source", f"cdse:{cdse.url}"]
    args += ["--credentials", str(credentials), "--cache-dir", str(cache), "--fetch", fetch]
    served_before = sum(cdse.bytes_served.values())
    assert _run(*args) == 0
    expected = _tifs(local_out)
    assert expected and _tifs(outdir) == expected  # identical patch files, byte for byte
    report = json.loads((outdir / "run.json").read_text())
    assert report["status"] == "complete"
    products = [p for u in report["plan"]["units"] for p in u["products"]]
    assert products and all(p["provider"] == f"cdse:{cdse.url}" for p in products)
    # fetched into the cache: a ROI-mode partial SAFE or the whole zip
    suffix = ".SAFE" if fetch == "roi" else ".zip"
    assert any(p.name.endswith(suffix) for p in (cache / "cdse").rglob("*"))
    first = sum(cdse.bytes_served.values()) - served_before
    # the password never lands in the run folder
    for path in outdir.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path
    # a re-run into a new folder finds everything in the cache: no more product bytes
    assert _run(*[a if a != str(outdir) else str(tmp_path / "again") for a in args]) == 0
    again = sum(cdse.bytes_served.values()) - served_before - first
    assert again < 0.01 * first
    assert _tifs(tmp_path / "again") == expected


def _roi_geojson(col: int, row: int, size_px: int) -> dict[str, Any]:
    to_ll = Transformer.from_crs(DEMO_EPSG, 4326, always_xy=True).transform
    x0, y0 = DEMO_ULX + col * 10 + 1, DEMO_ULY - row * 10 - 1
    x1, y1 = x0 + size_px * 10 - 2, y0 - size_px * 10 + 2
    ring = [to_ll(x, y) for x, y in [(x0, y1), (x1, y1), (x1, y0), (x0, y0), (x0, y1)]]
    return {"type": "Polygon", "coordinates": [ring]}


def test_earth_search_run_reads_cog_windows_and_equals_the_local_run(
    tmp_path: Path, cog_product: dict[str, Any]
) -> None:
    meta = cog_product["meta"]
    config = {
        "name": "es",
        "roi": _roi_geojson(640, 600, 200),
        "dates": [["2022-07-01", "2022-08-31"]],
        "mode": "s2_only",
        "grid": {"resolution": 10, "epsg": DEMO_EPSG},
        "patches": {"size": [100, 100], "overlap": [0, 0], "edge": "shift"},
        "sentinel2": {"level": "L2A", "bands": list(BANDS), "cloud_cover": [0, 100]},
        "output": {"min_valid_fraction": 0.0},
    }
    path = tmp_path / "es.json"
    path.write_text(json.dumps(config))
    local_out = tmp_path / "local"
    assert (
        _run("--config", str(path), "--outdir", str(local_out), "--source", f"local:{cog_product['safe'].parent}") == 0
    )
    with serve_files(cog_product["root"]) as files:
        hrefs = {band: f"{files.url}/cogs/{band}.tif" for band in BANDS}
        with serve_stac([_item(meta, hrefs, "earth-search")]) as stac:
            outdir = tmp_path / "remote"
            args = ["--config", str(path), "--outdir", str(outdir), "--source", f"earth-search:{stac.url}"]
            assert _run(*args, "--cache-dir", str(tmp_path / "cache")) == 0
        cog_bytes = sum((cog_product["root"] / "cogs" / f"{b}.tif").stat().st_size for b in BANDS)
        assert 0 < files.total_bytes < 0.1 * cog_bytes  # windows only, no download
    expected = _tifs(local_out)
    assert len(expected) == 4 and _tifs(outdir) == expected
