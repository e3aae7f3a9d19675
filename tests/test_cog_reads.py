"""ROI-window reads of Sentinel-2 COGs over HTTP (GDAL /vsicurl/) from a STAC item, no download.

A synthetic L2A product (senprep_core.demo, 30 x 30 km, real SAFE layout) is converted to COGs
(512 px blocks, DEFLATE) served by the file server on 127.0.0.1. A 1 km ROI read through
``open_s2_metadata(<item>.json)`` + ``read_s2_window`` must fetch only a few blocks (bytes counted
server-side) and give exactly the pixels of the local COGs and of the original SAFE product. The same
pixels come out of items in each catalogue's dialect (raster scale/offset, offset already applied,
offset inferred from the baseline).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from pyproj import Transformer

from senprep_core.demo.catalog import DEMO_EPSG, DEMO_TILE_ID, DEMO_ULX, DEMO_ULY
from senprep_core.demo.s2 import S2DemoSpec, make_s2_product
from senprep_core.errors import CorruptProductError
from senprep_core.geo.grid import TargetGrid
from senprep_core.remotefs import RemoteLocation
from senprep_core.s2.cog import s2_metadata_from_item
from senprep_core.s2.product import open_s2_metadata
from senprep_core.s2.reader import read_s2_window
from tests.conftest import need_real_samples
from tests.servers.fileserver import serve_files

pytestmark = pytest.mark.integration

SIZE_10M = 3072  # 30.72 km: 6 x 6 blocks of 512 px at 10 m, 3 x 3 at 20 m
BANDS = {"B02": 10, "B04": 10, "B08": 10, "B11": 20, "SCL": 20}
ES_KEYS = {"B02": "blue", "B04": "red", "B08": "nir", "B11": "swir16", "SCL": "scl"}
SIGNATURE = "st=2099-01-01&se=2099-01-02&sp=rl&sig=abc%2Bdef%3D"


def _spec() -> S2DemoSpec:
    return S2DemoSpec(
        tile_id=DEMO_TILE_ID, epsg=DEMO_EPSG, ulx=DEMO_ULX, uly=DEMO_ULY, size_10m=SIZE_10M,
        sensing_time=datetime(2022, 7, 29, 11, 36, 29), baseline="05.00", mission="S2B", seed=7,
        cloud_fraction=0.3, bands=tuple(BANDS),
    )  # fmt: skip


def _to_cog(src: Path, dst: Path, shift: int = 0) -> None:
    """A COG of a band (512 px blocks, DEFLATE); ``shift`` is subtracted from valid DNs (offset applied)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not shift:
        rasterio.shutil.copy(src, dst, driver="COG", BLOCKSIZE=512, COMPRESS="DEFLATE", PREDICTOR=2)
        return
    with rasterio.open(src) as ds:
        dn = ds.read(1).astype(np.int32)
        profile = {"driver": "GTiff", "width": ds.width, "height": ds.height, "count": 1, "dtype": "uint16",
                   "crs": ds.crs, "transform": ds.transform}  # fmt: skip
    shifted = np.where(dn > shift, dn - shift, 0).astype(np.uint16)
    with rasterio.MemoryFile() as mem:
        with mem.open(**profile) as tmp:
            tmp.write(shifted, 1)
        with mem.open() as tmp:
            rasterio.shutil.copy(tmp, dst, driver="COG", BLOCKSIZE=512, COMPRESS="DEFLATE", PREDICTOR=2)


def make_cog_product(root: Path) -> dict[str, Any]:
    """The SAFE product, its band COGs under ``root/cogs`` and the offset-applied B04 under ``root/boa``
    (the session fixture ``cog_product`` of tests/conftest.py)."""
    safe = make_s2_product(_spec(), root / "safe")
    meta = open_s2_metadata(safe)
    assert meta.location is not None
    for band, res in BANDS.items():
        _to_cog(Path(meta.location.gdal_path(meta.band_files[band][res])), root / "cogs" / f"{band}.tif")
    _to_cog(Path(meta.location.gdal_path(meta.band_files["B04"][10])), root / "boa" / "B04.tif", shift=1000)
    return {"root": root, "safe": safe, "meta": meta}


def _item(meta: Any, hrefs: dict[str, str], dialect: str) -> dict[str, Any]:
    """A STAC item of the product in one catalogue's dialect, with the given band hrefs."""
    t = Transformer.from_crs(DEMO_EPSG, 4326, always_xy=True)
    right, bottom = DEMO_ULX + SIZE_10M * 10, DEMO_ULY - SIZE_10M * 10
    ring = [list(t.transform(x, y)) for x, y in [(DEMO_ULX, bottom), (right, bottom), (right, DEMO_ULY),
                                                  (DEMO_ULX, DEMO_ULY), (DEMO_ULX, bottom)]]  # fmt: skip
    props: dict[str, Any] = {
        "datetime": meta.sensing_time.isoformat().replace("+00:00", "Z"),
        "platform": "sentinel-2b",
        "eo:cloud_cover": meta.cloud_cover,
        "s2:product_uri": f"{meta.product_id}.SAFE",
        "s2:processing_baseline": meta.processing_baseline,
        "proj:epsg": DEMO_EPSG,
    }
    assets: dict[str, Any] = {}
    for band, href in hrefs.items():
        res = BANDS[band]
        asset: dict[str, Any] = {
            "href": href,
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "proj:shape": [SIZE_10M * 10 // res] * 2,
            "proj:transform": [res, 0, DEMO_ULX, 0, -res, DEMO_ULY],
            "roles": ["data"],
        }
        if dialect == "earth-search" and band != "SCL":
            asset["raster:bands"] = [{"nodata": 0, "data_type": "uint16", "scale": 0.0001, "offset": -0.1}]
        assets[ES_KEYS[band] if dialect.startswith("earth-search") else band] = asset
    if dialect == "earth-search-boa-applied":
        props["earthsearch:boa_offset_applied"] = True
        for asset in assets.values():  # as in the real items: the raster offset shown is not the one to use
            asset["raster:bands"] = [{"nodata": 0, "scale": 0.0001, "offset": -0.1}]
    if dialect == "planetary-computer":
        props["s2:mgrs_tile"] = DEMO_TILE_ID
    else:
        props["grid:code"] = f"MGRS-{DEMO_TILE_ID}"
    collection = "sentinel-2-l2a" if dialect != "earth-search" else "sentinel-2-c1-l2a"
    return {"type": "Feature", "stac_version": "1.0.0", "id": meta.product_id, "collection": collection,
            "geometry": {"type": "Polygon", "coordinates": [ring]}, "properties": props, "links": [],
            "assets": assets}  # fmt: skip


def _write(path: Path, item: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(item))
    return path


def _grid(col: int, row: int, size_px: int = 100) -> TargetGrid:
    """A 10 m grid of ``size_px`` pixels whose corner is at tile pixel (col, row)."""
    return TargetGrid(DEMO_EPSG, 10.0, DEMO_ULX + col * 10, DEMO_ULY - row * 10, size_px, size_px)


ROI_GRID = _grid(640, 600)  # 1 km x 1 km inside one 512 px block at 10 m and one at 20 m


def test_roi_read_over_http_fetches_few_bytes_and_same_pixels(cog_product: dict[str, Any], tmp_path: Path) -> None:
    root, meta = cog_product["root"], cog_product["meta"]
    bands = list(BANDS)
    local_item = _write(root / "local.json", _item(meta, {b: f"cogs/{b}.tif" for b in BANDS}, "earth-search"))
    local = read_s2_window(open_s2_metadata(local_item), ROI_GRID, bands)
    safe = read_s2_window(meta, ROI_GRID, bands)
    with serve_files(root) as server:
        hrefs = {b: f"{server.url}/cogs/{b}.tif" for b in BANDS}
        item_path = _write(tmp_path / "cache" / "earth-search" / f"{meta.product_id}.json",
                           _item(meta, hrefs, "earth-search"))  # fmt: skip
        remote_meta = open_s2_metadata(item_path)
        assert isinstance(remote_meta.location, RemoteLocation)
        assert remote_meta.band_files["B04"][10] == f"/vsicurl/{server.url}/cogs/B04.tif"
        remote = read_s2_window(remote_meta, ROI_GRID, bands)
        served = dict(server.bytes_served)
        n_requests = len(server.requests)
    with rasterio.open(root / "cogs" / "B04.tif") as cog:
        assert cog.block_shapes[0] == (512, 512) and cog.overviews(1) and cog.profile["compress"] == "deflate"
    sizes = {f"/cogs/{b}.tif": (root / "cogs" / f"{b}.tif").stat().st_size for b in BANDS}
    total = sum(served.values())
    assert set(served) <= set(sizes)
    assert total < 0.10 * sum(sizes.values()), (total, sum(sizes.values()))
    big = [p for p in sizes if sizes[p] > 1_000_000]  # the 10 m bands (B11 and SCL compress to < 0.2 MB)
    assert len(big) == 3 and all(served[p] < 0.05 * sizes[p] for p in big), (served, sizes)
    share = 100 * total / sum(sizes.values())
    print(f"\nROI 1 km, 5 bands: {total} of {sum(sizes.values())} bytes served ({share:.1f} %), {n_requests} requests")
    np.testing.assert_array_equal(remote.data, local.data)  # NaN-aware
    np.testing.assert_array_equal(remote.data, safe.data)
    np.testing.assert_array_equal(remote.valid, safe.valid)
    assert remote.cloud is not None and safe.cloud is not None
    np.testing.assert_array_equal(remote.cloud, safe.cloud)
    assert remote.valid.mean() > 0.9 and 0 < np.nanmean(remote.data[1]) < 1  # real reflectances in the ROI


def test_dialects_give_the_same_reflectance(cog_product: dict[str, Any]) -> None:
    """Raster scale/offset (Earth Search c1), offset already in the DNs (Earth Search boa_offset_applied)
    and offset inferred from the baseline (Planetary Computer, signed hrefs) read to the same values."""
    root, meta = cog_product["root"], cog_product["meta"]
    grid = _grid(1500, 1400, 64)
    with serve_files(root) as server:
        url = server.url
        variants = {
            "earth-search": _item(meta, {"B04": f"{url}/cogs/B04.tif"}, "earth-search"),
            "earth-search-boa-applied": _item(meta, {"B04": f"{url}/boa/B04.tif"}, "earth-search-boa-applied"),
            "planetary-computer": _item(meta, {"B04": f"{url}/cogs/B04.tif?{SIGNATURE}"}, "planetary-computer"),
        }
        reads = {}
        for name, item in variants.items():
            path = _write(root / "items" / f"{name}.json", item)
            m = open_s2_metadata(path)
            reads[name] = (m, read_s2_window(m, grid, ["B04"]).data[0])
        assert any(path == "/cogs/B04.tif" for _method, path, _range in server.requests)
    safe = read_s2_window(meta, grid, ["B04"]).data[0]
    assert {n: (m.offsets["B04"], m.quantification_value, m.offsets_source) for n, (m, _) in reads.items()} == {
        "earth-search": (-1000, 10000.0, "STAC raster scale/offset"),
        "earth-search-boa-applied": (0, 10000.0, "earthsearch:boa_offset_applied"),
        "planetary-computer": (-1000, 10000.0, "inferred from baseline"),
    }
    np.testing.assert_array_equal(reads["earth-search"][1], safe)
    np.testing.assert_array_equal(reads["planetary-computer"][1], safe)
    boa = reads["earth-search-boa-applied"][1]
    both = np.isfinite(boa) & np.isfinite(safe)
    assert both.mean() > 0.9  # only DNs <= 1000 (reflectance <= 0) became no data there
    np.testing.assert_allclose(boa[both], safe[both], rtol=0, atol=1e-7)


def test_missing_remote_file_is_a_clear_error(cog_product: dict[str, Any]) -> None:
    root, meta = cog_product["root"], cog_product["meta"]
    with serve_files(root) as server:
        item = _item(meta, {"B04": f"{server.url}/cogs/B04.tif", "B08": f"{server.url}/gone/B08.tif"}, "earth-search")
        m = open_s2_metadata(_write(root / "items" / "gone.json", item))
        with pytest.raises(CorruptProductError, match=r"gone/B08\.tif of product S2B_MSIL2A_20220729"):
            read_s2_window(m, ROI_GRID, ["B04", "B08"])
        with pytest.raises(CorruptProductError, match="does not hold band B03"):
            read_s2_window(m, ROI_GRID, ["B03"])


def test_metadata_of_a_missing_grid_comes_from_the_file_header(cog_product: dict[str, Any]) -> None:
    root, meta = cog_product["root"], cog_product["meta"]
    item = _item(meta, {"B11": "../cogs/B11.tif"}, "planetary-computer")  # relative to the item file
    for asset in item["assets"].values():
        del asset["proj:transform"], asset["proj:shape"]
    m = open_s2_metadata(_write(root / "items" / "no-proj.json", item))
    g = m.geocoding[20]
    assert (g.ulx, g.uly, g.nrows, g.ncols) == (DEMO_ULX, DEMO_ULY, SIZE_10M // 2, SIZE_10M // 2)


# offsets of the real items: (file, quantification, B04 offset, source)
REAL_OFFSETS = [
    ("cdse/S2C_MSIL2A_20250330T100051_N0511_R122_T33UWP_20250330T145914_cdse_stac_v110.json", -1000,
     "STAC raster scale/offset"),
    ("earth-search/sentinel-2-c1-l2a__S2B_T20EPT_20250731T131905_L2A.json", -1000, "STAC raster scale/offset"),
    ("earth-search/sentinel-2-l1c__S2B_20EPT_20250731_0_L1C.json", -1000, "STAC raster scale/offset"),
    ("earth-search/sentinel-2-l2a__S2A_13TDE_20231008_0_L2A.json", 0, "earthsearch:boa_offset_applied"),
    ("earth-search/sentinel-2-l2a__S2B_20EPT_20250731_0_L2A.json", 0, "earthsearch:boa_offset_applied"),
    ("odc-stac-testdata/S2A_28QCH_20200714_0_L2A.json", 0, "inferred from baseline"),
    ("planetary-computer/sentinel-2-l2a__S2A_MSIL2A_20190101T000001_R116_T58UFE_20201007T214651.json", 0,
     "inferred from baseline"),
]  # fmt: skip


@pytest.mark.realdata
@pytest.mark.parametrize(("name", "offset", "source"), REAL_OFFSETS, ids=[Path(n).stem[:40] for n, *_ in REAL_OFFSETS])
def test_real_item_metadata(name: str, offset: int, source: str) -> None:
    item = json.loads(need_real_samples("stac", name).read_text())
    meta = s2_metadata_from_item(item)
    assert (meta.offsets["B04"], meta.quantification_value, meta.offsets_source) == (offset, 10000.0, source)
    assert set(meta.offsets.values()) == {offset}
    assert meta.tile_id and str(meta.epsg).startswith(("326", "327"))
    geo10 = meta.geocoding[10]
    assert geo10.nrows == geo10.ncols == 10980 and geo10.ulx % 60 == 0
    assert {10, 20, 60} <= set(meta.geocoding)
    reflectance = {b for b in meta.band_files if b.startswith("B")}
    assert len(reflectance) >= 12  # every band of the level (B10 for L1C), each found under its asset name
    b04 = meta.band_files["B04"][10]
    assert b04.startswith(("/vsicurl/https://", "/vsis3/")) and b04.split("?")[0].endswith((".tif", ".jp2"))
    if meta.level == "L2A":
        assert 20 in meta.band_files["SCL"]
