"""backend: snap runs the generated graph through gpt and cuts its GeoTIFF into the usual patches.

gpt here is a stand-in script first on PATH that writes a GeoTIFF on the requested grid, so the
whole path (graph, gpt call, reading back, patches, sidecars) runs without SNAP.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from senprep_core.config import parse_config
from senprep_core.errors import ConfigError
from senprep_core.pipeline import run
from tests.conftest import need_real_samples

GRD = "S1B_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993_5371.SAFE"
RING = [[12.47, 41.97], [12.53, 41.97], [12.53, 42.03], [12.47, 42.03], [12.47, 41.97]]

FAKE_GPT = """#!{python}
import re, sys
from pathlib import Path
import numpy as np
import rasterio
from affine import Affine
graph = Path(sys.argv[1]).read_text()
target = re.search(r"<file>([^<]+)</file>", graph.split('id="Write"')[1]).group(1)
left, top, width, height = {grid}
profile = dict(driver="GTiff", width=width, height=height, count=1, dtype="float32", crs="EPSG:32633",
               transform=Affine(10, 0, left, 0, -10, top), nodata=float("nan"))
with rasterio.open(target, "w", **profile) as dst:
    dst.write(np.full((1, height, width), -12.5, dtype="float32"))
"""


def _config(bands: list[str]) -> dict:
    return {
        "name": "rome-snap",
        "roi": {"type": "Polygon", "coordinates": [RING]},
        "dates": ["2021-12-20", "2021-12-25"],
        "mode": "s1_only",
        "patches": {"size": [128, 128]},
        "sentinel1": {"bands": bands, "backend": "snap", "dem": "flat:0"},
    }


def test_snap_backend_writes_patches_from_gpt_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    products = tmp_path / "products"
    products.mkdir()
    (products / GRD).symlink_to(need_real_samples("sarsen-testdata", GRD).resolve())
    config = parse_config(_config(["sigma0_VV_dB"]))
    grid = config.grid().buffered(2)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gpt = bin_dir / "gpt"
    gpt.write_text(FAKE_GPT.format(python=sys.executable, grid=(grid.left, grid.top, grid.width, grid.height)))
    gpt.chmod(gpt.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    result = run(config, tmp_path / "out", sources=[f"local:{products}"])
    assert result.status == "complete", [r.error_message for r in result.results]
    assert result.patches_written > 0
    import rasterio

    entry = result.entries()[0]
    with rasterio.open(tmp_path / "out" / entry.files["S1"]) as src:
        assert src.descriptions == ("sigma0_VV_dB",)
        assert float(src.read(1)[0, 0]) == -12.5
    sidecar = json.loads((tmp_path / "out" / entry.files["S1_metadata"]).read_text())
    assert sidecar["processing"]["chain"] == "ESA SNAP gpt graph"


def test_snap_backend_refuses_band_mixes_it_cannot_write(tmp_path: Path) -> None:
    products = tmp_path / "products"
    products.mkdir()
    (products / GRD).symlink_to(need_real_samples("sarsen-testdata", GRD).resolve())
    config = parse_config(_config(["sigma0_VV", "local_incidence_angle"]))
    result = run(config, tmp_path / "out", sources=[f"local:{products}"])
    assert result.status == "failed"
    assert result.results[0].error_type == ConfigError.__name__
    assert "backend: native" in (result.results[0].error_message or "")
