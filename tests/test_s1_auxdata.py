"""The S1 chain with auxiliary data fetched and cached: precise orbits from CDSE, GLO-30 DEM tiles over HTTP.

The demo S1 run is repeated with ``orbit_folder: cdse:URL`` (a CDSE-protocol server holding a POEORB file
with the product's own state vectors) and ``dem: glo30:URL`` (a file server holding a GLO-30-named tile
that carries the demo DEM's heights on the same 1" lattice). The patches must equal those of the run with
the local DEM and the annotation orbit, the sidecars must record the fetched orbit and DEM, and a second
run must fetch nothing.
"""

from __future__ import annotations

import json
from datetime import timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from senprep_core.catalog.local import LocalProvider
from senprep_core.config import parse_config
from senprep_core.demo.catalog import DEMO_DEM, demo_s1_config_dict
from senprep_core.pipeline import run
from senprep_core.s1.metadata import read_s1_metadata
from senprep_core.unit.fetching import FetchOptions
from tests.servers.cdse_server import CdseServer
from tests.servers.fileserver import serve_files
from tests.test_s1_orbit_files import eof_name, eof_xml

pytestmark = pytest.mark.integration
UTC = timezone.utc
TILE = "Copernicus_DSM_COG_10_N55_00_W005_00_DEM"


def _glo30_tile(demo_dem: Path, folder: Path) -> None:
    """The 1 x 1 degree tile N55 W005 at 1" holding the demo DEM's heights (0 elsewhere), ellipsoidal."""
    with rasterio.open(demo_dem) as src:
        heights, t = src.read(1), src.transform
    step = 1 / 3600
    row0, col0 = round((56.0 - t.f) / step), round((t.c + 5.0) / step)
    tile = np.zeros((3600, 3600), dtype=np.float32)
    tile[row0 : row0 + heights.shape[0], col0 : col0 + heights.shape[1]] = heights
    path = folder / TILE / f"{TILE}.tif"
    path.parent.mkdir(parents=True)
    profile = {"driver": "GTiff", "width": 3600, "height": 3600, "count": 1, "dtype": "float32", "crs": "EPSG:4979",
               "transform": Affine(step, 0, -5.0, 0, -step, 56.0), "compress": "deflate", "tiled": True}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(tile, 1)


def _patches(outdir: Path) -> dict[str, np.ndarray]:
    out = {}
    for p in sorted((outdir / "patches").rglob("*.tif")):
        with rasterio.open(p) as ds:
            out[p.relative_to(outdir).as_posix()] = ds.read()
    return out


def test_fetched_orbit_and_dem_give_the_local_result(
    demo_products: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = demo_s1_config_dict(demo_products)
    base["sentinel1"] = {**base["sentinel1"], "geoid": "none"}  # the demo DEM holds ellipsoidal heights
    local = run(parse_config(base), tmp_path / "local", sources=[f"local:{demo_products}"])
    assert local.status == "complete"

    server = CdseServer(tmp_path / "cdse", username="orbit-user", password="orbit-pass").start()
    monkeypatch.setenv("SENPREP_CDSE_USERNAME", "orbit-user")
    monkeypatch.setenv("SENPREP_CDSE_PASSWORD", "orbit-pass")
    try:
        s1 = [r for r in LocalProvider(demo_products).scan().products if r.family == "S1"]
        for record in s1:  # a precise orbit file per product, with the product's own state vectors
            meta = read_s1_metadata(record.href)
            image = meta.images[meta.polarisations[0]]
            valid = (meta.start_time - timedelta(hours=6), meta.start_time + timedelta(hours=20))
            name = eof_name("POEORB", *valid, mission=meta.mission)
            (tmp_path / name).write_text(eof_xml(image.orbit, name))
            server.add_aux_file(tmp_path / name, "AUX_POEORB", valid[0].astimezone(UTC), valid[1].astimezone(UTC))
        _glo30_tile(demo_products / DEMO_DEM, tmp_path / "glo30")
        with serve_files(tmp_path / "glo30") as tiles:
            config = dict(base)
            config["sentinel1"] = {
                **base["sentinel1"],
                "dem": f"glo30:{tiles.url}",
                "orbit_folder": f"cdse:{server.url}",
            }
            cache = tmp_path / "cache"
            fetched = run(parse_config(config), tmp_path / "fetched", sources=[f"local:{demo_products}"],
                          fetch=FetchOptions(cache))  # fmt: skip
            assert fetched.status == "complete"
            served = tiles.total_bytes
            assert served > 0 and (cache / "dem" / "copernicus-glo30").is_dir()
            assert len(list((cache / "orbits").glob("*.EOF"))) == len(s1)
            requests = len(server.requests)
            again = run(parse_config(config), tmp_path / "again", sources=[f"local:{demo_products}"],
                        fetch=FetchOptions(cache))  # fmt: skip
            assert again.status == "complete"
            assert tiles.total_bytes == served and len(server.requests) == requests  # all from the cache
    finally:
        server.stop()

    expected, got = _patches(tmp_path / "local"), _patches(tmp_path / "fetched")
    assert expected.keys() == got.keys() and expected
    for key, values in expected.items():
        np.testing.assert_allclose(got[key], values, rtol=1e-5, atol=1e-4, equal_nan=True, err_msg=key)
    sidecar = json.loads(next((tmp_path / "fetched" / "patches").rglob("*_S1.json")).read_text())
    assert sidecar["processing"]["orbit"].startswith("POEORB:")
    assert "copernicus-glo30" in sidecar["processing"]["dem"]
