"""Synthetic Sentinel-2 products: layout vs the real SAFE, pixels vs ground truth, caching, atomicity."""

from __future__ import annotations

import zipfile
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
from lxml import etree
from rasterio.warp import Resampling, reproject

from senprep_core.demo import (
    DEMO_ROI_GEOJSON,
    S2DemoSpec,
    build_demo_catalog,
    demo_config_dict,
    demo_specs,
    ground_truth,
    make_s2_product,
    point_targets,
)
from senprep_core.demo import s2 as demo_s2
from senprep_core.geo import TargetGrid
from tests.conftest import need_real_samples

REAL_NAME = "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE"

SPEC = S2DemoSpec(
    tile_id="30UVG", epsg=32630, ulx=418020, uly=6200040, size_10m=600,
    sensing_time=datetime(2022, 7, 29, 11, 36, 29), seed=7, cloud_fraction=0.3,
)  # fmt: skip
OLD = S2DemoSpec(
    tile_id="30UVG", epsg=32630, ulx=418020, uly=6200040, size_10m=600,
    sensing_time=datetime(2021, 5, 11, 11, 36, 29), baseline="02.14", mission="S2A", seed=11,
)  # fmt: skip
L1C = S2DemoSpec(
    tile_id="30UVG", epsg=32630, ulx=418020, uly=6200040, size_10m=600,
    sensing_time=datetime(2022, 6, 14, 11, 36, 21), level="L1C", baseline="04.00", seed=5,
)  # fmt: skip


@pytest.fixture(scope="module")
def products(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("s2demo")
    return {
        "new": make_s2_product(SPEC, out),
        "old": make_s2_product(OLD, out),
        "l1c": make_s2_product(L1C, out),
    }


@pytest.fixture(scope="module")
def real_safe() -> Path:
    """The real L2A SAFE: its XML and some of its images (the copy in tests/data/real holds a few)."""
    return need_real_samples("stactools-sentinel2", REAL_NAME)


def _granule(safe: Path) -> Path:
    (granule,) = (safe / "GRANULE").iterdir()
    return granule


def _files(safe: Path) -> list[str]:
    return [p.relative_to(safe).as_posix() for p in safe.rglob("*") if p.is_file()]


def _manifest_files(safe: Path) -> list[str]:
    """The files the product's manifest.safe lists: all of them, also where the folder holds only some."""
    root = etree.parse(str(safe / "manifest.safe")).getroot()
    return [str(location.get("href")).removeprefix("./") for location in root.iter("fileLocation")]


def _shape(files: list[str]) -> set[str]:
    """Relative file paths with the product-specific parts replaced by placeholders."""
    out = set()
    for rel in files:
        rel = rel.split("/", 2)[0] + "/G/" + rel.split("/", 2)[2] if rel.startswith("GRANULE/") else rel
        out.add(rel.replace(rel.rsplit("/", 1)[-1][:23], "T_") if "/T" in rel and "IMG_DATA" in rel else rel)
    return out


def test_product_id_and_spec_checks() -> None:
    assert SPEC.product_id == "S2B_MSIL2A_20220729T113629_N0500_R080_T30UVG_20220729T140000"
    assert L1C.bands[-1] == "B12" and "B10" in L1C.bands and "SCL" not in L1C.bands
    with pytest.raises(ValueError):
        S2DemoSpec(tile_id="30UVG", epsg=32631, ulx=0, uly=0, size_10m=600, sensing_time=SPEC.sensing_time)
    with pytest.raises(ValueError):
        S2DemoSpec(tile_id="30UVG", epsg=32630, ulx=10, uly=0, size_10m=600, sensing_time=SPEC.sensing_time)


@pytest.mark.realdata
def test_layout_matches_real_safe(products: dict[str, Path], real_safe: Path) -> None:
    ours = _shape(_files(products["new"]))
    real = _shape(_files(real_safe) + _manifest_files(real_safe))
    for rel in ("MTD_MSIL2A.xml", "manifest.safe", "GRANULE/G/MTD_TL.xml", "GRANULE/G/QI_DATA/MSK_CLASSI_B00.jp2",
                "GRANULE/G/QI_DATA/MSK_CLDPRB_20m.jp2", "GRANULE/G/QI_DATA/MSK_SNWPRB_20m.jp2",
                "GRANULE/G/IMG_DATA/R20m/T_SCL_20m.jp2", "GRANULE/G/IMG_DATA/R60m/T_B04_60m.jp2"):  # fmt: skip
        assert rel in ours and rel in real, rel
    # every image the real MTD lists at 60 m we also write, with the same name pattern
    assert {r for r in real if "/R60m/" in r and "TCI" not in r} <= ours
    granule = _granule(products["new"])
    assert (granule / "IMG_DATA/R10m" / "T30UVG_20220729T113629_B02_10m.jp2").exists()
    assert granule.name == SPEC.granule_name and granule.name.startswith("L2A_T30UVG_A")


@pytest.mark.realdata
def test_xml_has_real_elements(products: dict[str, Path], real_safe: Path) -> None:
    real_root = etree.parse(str(real_safe / "MTD_MSIL2A.xml")).getroot()
    root = etree.parse(str(products["new"] / "MTD_MSIL2A.xml")).getroot()
    assert root.tag == real_root.tag and root.nsmap["n1"] == real_root.nsmap["n1"]
    for path in ("n1:General_Info/Product_Info/PROCESSING_BASELINE",
                 "n1:General_Info/Product_Info/Product_Organisation/Granule_List/Granule/IMAGE_FILE",
                 "n1:General_Info/Product_Image_Characteristics/QUANTIFICATION_VALUES_LIST/BOA_QUANTIFICATION_VALUE",
                 "n1:General_Info/Product_Image_Characteristics/BOA_ADD_OFFSET_VALUES_LIST/BOA_ADD_OFFSET",
                 "n1:General_Info/Product_Image_Characteristics/Spectral_Information_List/Spectral_Information",
                 "n1:Geometric_Info/Product_Footprint/Product_Footprint/Global_Footprint/EXT_POS_LIST",
                 "n1:Quality_Indicators_Info/Cloud_Coverage_Assessment"):  # fmt: skip
        assert real_root.find(path, real_root.nsmap) is not None, path
        assert root.find(path, root.nsmap) is not None, path
    offsets = root.findall(".//BOA_ADD_OFFSET")
    assert len(offsets) == 13 and {o.text for o in offsets} == {"-1000"}
    assert root.findtext(".//PROCESSING_BASELINE") == "05.00"
    for image in root.iter("IMAGE_FILE"):
        assert (products["new"] / f"{image.text}.jp2").exists(), image.text
    # EXT_POS_LIST is "lat lon" pairs around Glasgow
    pos = [float(v) for v in root.findtext(".//EXT_POS_LIST").split()]
    lats, lons = pos[0::2], pos[1::2]
    assert all(55 < la < 57 for la in lats) and all(-5 < lo < -3.5 for lo in lons)
    tile_real = etree.parse(str(_granule(real_safe) / "MTD_TL.xml")).getroot()
    tile = etree.parse(str(_granule(products["new"]) / "MTD_TL.xml")).getroot()
    for path in ("n1:General_Info/TILE_ID", "n1:General_Info/SENSING_TIME",
                 "n1:Geometric_Info/Tile_Geocoding/HORIZONTAL_CS_CODE",
                 "n1:Geometric_Info/Tile_Geocoding/Size", "n1:Geometric_Info/Tile_Geocoding/Geoposition/ULX",
                 "n1:Quality_Indicators_Info/Image_Content_QI/CLOUDY_PIXEL_PERCENTAGE"):  # fmt: skip
        assert tile_real.find(path, tile_real.nsmap) is not None, path
        assert tile.find(path, tile.nsmap) is not None, path
    # cloud cover = true share of SCL 8/9/10 among valid pixels
    scl = ground_truth(SPEC, SPEC.grid(20), "SCL")
    ok = ~np.isnan(scl)
    expected = 100 * np.isin(scl[ok], [8, 9, 10]).mean()
    assert float(root.findtext(".//Cloud_Coverage_Assessment")) == pytest.approx(expected, abs=1e-5)
    assert float(tile.findtext(".//CLOUDY_PIXEL_PERCENTAGE")) == pytest.approx(expected, abs=1e-5)


def test_old_baseline_and_l1c_metadata(products: dict[str, Path]) -> None:
    old = etree.parse(str(products["old"] / "MTD_MSIL2A.xml")).getroot()
    assert old.find(".//BOA_ADD_OFFSET_VALUES_LIST") is None
    assert old.findtext(".//PROCESSING_BASELINE") == "02.14"
    gml = _granule(products["old"]) / "QI_DATA/MSK_CLOUDS_B00.gml"
    assert not (_granule(products["old"]) / "QI_DATA/MSK_CLASSI_B00.jp2").exists()
    groot = etree.parse(str(gml)).getroot()
    ns = {"eop": "http://www.opengis.net/eop/2.0", "gml": "http://www.opengis.net/gml/3.2"}
    types = {t.text for t in groot.findall(".//eop:MaskFeature/eop:maskType", ns)}
    assert types <= {"OPAQUE", "CIRRUS"} and "OPAQUE" in types
    # the GML polygons rasterised on the 60 m grid reproduce the opaque-cloud truth
    from shapely.geometry import Polygon
    from shapely.ops import unary_union

    polys = []
    for feature in groot.findall(".//eop:MaskFeature", ns):
        if feature.findtext("eop:maskType", namespaces=ns) == "OPAQUE":
            vals = [float(v) for v in feature.findtext(".//gml:exterior//gml:posList", namespaces=ns).split()]
            polys.append(Polygon(list(zip(vals[0::2], vals[1::2], strict=True))))
    grid = OLD.grid(60)
    raster = grid.rasterize(unary_union(polys))
    truth = ground_truth(OLD, grid, "opaque_clouds")
    np.testing.assert_array_equal(raster[~np.isnan(truth)], truth[~np.isnan(truth)] == 1)

    l1c = etree.parse(str(products["l1c"] / "MTD_MSIL1C.xml")).getroot()
    assert l1c.findtext(".//PRODUCT_TYPE") == "S2MSI1C"
    assert {o.text for o in l1c.findall(".//Radiometric_Offset_List/RADIO_ADD_OFFSET")} == {"-1000"}
    img = _granule(products["l1c"]) / "IMG_DATA" / "T30UVG_20220614T113621_B04.jp2"
    assert img.exists() and (_granule(products["l1c"]) / "IMG_DATA" / "T30UVG_20220614T113621_B10.jp2").exists()
    for image in l1c.iter("IMAGE_FILE"):
        assert (products["l1c"] / f"{image.text}.jp2").exists()


@pytest.mark.parametrize(
    ("band", "res"), [("B02", 10), ("B08", 10), ("B05", 20), ("B11", 20), ("B01", 60), ("B09", 60)]
)
def test_pixels_equal_truth_at_native_resolution(products: dict[str, Path], band: str, res: int) -> None:
    path = _granule(products["new"]) / f"IMG_DATA/R{res}m/T30UVG_20220729T113629_{band}_{res}m.jp2"
    grid = SPEC.grid(res)
    with rasterio.open(path) as src:
        assert src.crs.to_epsg() == 32630
        assert src.transform == grid.transform and src.shape == grid.shape
        assert (
            src.profile.get("tiled") and src.tags(ns="IMAGE_STRUCTURE").get("COMPRESSION_REVERSIBILITY") == "LOSSLESS"
        )
        dn = src.read(1)
    truth = ground_truth(SPEC, grid, band)
    nodata = np.isnan(truth)
    assert nodata.any() and (dn[nodata] == 0).all() and (dn[~nodata] >= 1).all()
    refl = (dn.astype(np.float64) - 1000) / 10000
    atol = 1e-12 if res == 10 else 0.5e-4 + 1e-12
    np.testing.assert_allclose(refl[~nodata], truth[~nodata], atol=atol, rtol=0)
    # the lower-left corner is no-data, the upper-right is valid
    assert dn[-1, 0] == 0 and dn[0, -1] > 0


def test_point_targets_and_old_baseline_has_no_offset(products: dict[str, Path]) -> None:
    grid = OLD.grid(10)
    path = _granule(products["old"]) / "IMG_DATA/R10m/T30UVG_20210511T113629_B04_10m.jp2"
    with rasterio.open(path) as src:
        dn = src.read(1)
    truth = ground_truth(OLD, grid, "B04")
    ok = ~np.isnan(truth)
    np.testing.assert_allclose(dn[ok] / 10000, truth[ok], atol=1e-12)
    for x, y in point_targets(OLD):
        row, col = int((OLD.uly - y) // 10), int((x - OLD.ulx) // 10)
        if ok[row, col]:
            assert dn[row, col] == 9500


def test_scl_masks_and_probabilities(products: dict[str, Path]) -> None:
    qi = _granule(products["new"]) / "QI_DATA"
    with rasterio.open(_granule(products["new"]) / "IMG_DATA/R20m/T30UVG_20220729T113629_SCL_20m.jp2") as src:
        scl = src.read(1)
    truth = ground_truth(SPEC, SPEC.grid(20), "SCL")
    np.testing.assert_array_equal(np.where(np.isnan(truth), 0, truth), scl)
    assert {0, 3, 4, 8, 9, 10} <= set(np.unique(scl).tolist())
    # nearest on the 10 m grid: each 10 m pixel inside one 20 m pixel
    t10 = ground_truth(SPEC, SPEC.grid(10), "scl_cloud_shadow")
    up = np.repeat(np.repeat(scl, 2, axis=0), 2, axis=1)
    np.testing.assert_array_equal(t10[up > 0], (up[up > 0] == 3).astype(float))
    with rasterio.open(qi / "MSK_CLASSI_B00.jp2") as src:
        assert src.count == 3 and src.transform == SPEC.grid(60).transform
        classi = src.read()
    opaque10 = ground_truth(SPEC, SPEC.grid(10), "opaque_clouds")
    up = np.repeat(np.repeat(classi[0], 6, axis=0), 6, axis=1).astype(float)
    ok = ~np.isnan(opaque10)
    np.testing.assert_array_equal(opaque10[ok], up[ok])
    with rasterio.open(qi / "MSK_CLDPRB_20m.jp2") as src:
        prob = src.read(1)
    assert (prob[np.isin(scl, [8, 9])] >= 50).all() and (prob[np.isin(scl, [4, 5, 3])] == 0).all()
    np.testing.assert_array_equal(ground_truth(SPEC, SPEC.grid(20), "cloud_probability")[scl > 0], prob[scl > 0])


@pytest.mark.parametrize("band", ["B05", "B8A", "B12", "B01", "cloud_probability"])
def test_bilinear_upsampling_matches_truth(products: dict[str, Path], band: str) -> None:
    granule = _granule(products["new"])
    path = (
        granule / "QI_DATA/MSK_CLDPRB_20m.jp2"
        if band == "cloud_probability"
        else granule / f"IMG_DATA/R20m/T30UVG_20220729T113629_{band}_20m.jp2"
    )
    # a 10 m window in the upper-right part of the tile, away from the no-data cut and the borders
    grid = TargetGrid(32630, 10.0, SPEC.ulx + 2000, SPEC.uly - 500, 300, 250)
    with rasterio.open(path) as src:
        dst = np.zeros(grid.shape, dtype=np.float64)
        reproject(
            rasterio.band(src, 1), dst, dst_transform=grid.transform, dst_crs=grid.crs, resampling=Resampling.bilinear
        )
    truth = ground_truth(SPEC, grid, band)
    assert not np.isnan(truth).any()
    if band == "cloud_probability":
        np.testing.assert_allclose(dst, truth, atol=1e-3)
    else:
        np.testing.assert_allclose((dst - 1000) / 10000, truth, atol=1e-4, rtol=0)


def test_truth_on_coarser_grid_and_outside() -> None:
    grid = SPEC.grid(10)
    t10 = ground_truth(SPEC, grid, "B03")
    t20 = ground_truth(SPEC, SPEC.grid(20), "B03")
    ok = ~np.isnan(t20)
    np.testing.assert_allclose(t20[ok], t10.reshape(300, 2, 300, 2).mean(axis=(1, 3))[ok])
    outside = TargetGrid(32630, 10.0, SPEC.ulx - 100, SPEC.uly + 100, 20, 20)
    t = ground_truth(SPEC, outside, "B11")
    assert np.isnan(t[:10]).all() and np.isnan(t[:, :10]).all() and not np.isnan(t[12:, 12:]).any()
    with pytest.raises(ValueError):
        ground_truth(SPEC, TargetGrid(32630, 10.0, SPEC.ulx + 5, SPEC.uly, 5, 5), "B02")


def test_deterministic_bytes(tmp_path: Path, products: dict[str, Path]) -> None:
    again = make_s2_product(SPEC, tmp_path)
    for path in sorted(products["new"].rglob("*")):
        if path.is_file():
            assert path.read_bytes() == (again / path.relative_to(products["new"])).read_bytes(), path.name


def test_zip_holds_safe_entries(tmp_path: Path) -> None:
    spec = S2DemoSpec(tile_id="30UVG", epsg=32630, ulx=418020, uly=6200040, size_10m=120,
                      sensing_time=datetime(2022, 4, 20, 11, 36, 19), baseline="04.00",
                      bands=("B02", "B05", "SCL"))  # fmt: skip
    path = make_s2_product(spec, tmp_path, as_zip=True)
    assert path.name == spec.product_id + ".zip"
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    assert all(n.startswith(spec.product_id + ".SAFE/") for n in names)
    assert f"{spec.product_id}.SAFE/MTD_MSIL2A.xml" in names and f"{spec.product_id}.SAFE/manifest.safe" in names
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_interrupted_generation_leaves_no_final_product(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = S2DemoSpec(tile_id="30UVG", epsg=32630, ulx=418020, uly=6200040, size_10m=120,
                      sensing_time=datetime(2022, 4, 20, 11, 36, 19), bands=("B02", "B03", "B05", "SCL"))  # fmt: skip
    real_write = demo_s2._write_jp2
    calls = {"n": 0}

    def failing(*args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed")
        real_write(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(demo_s2, "_write_jp2", failing)
    for as_zip in (False, True):
        calls["n"] = 0
        with pytest.raises(KeyboardInterrupt):
            make_s2_product(spec, tmp_path, as_zip=as_zip)
        assert all(".tmp-" in p.name for p in tmp_path.iterdir())
    monkeypatch.setattr(demo_s2, "_write_jp2", real_write)
    assert make_s2_product(spec, tmp_path).is_dir()
    assert make_s2_product(spec, tmp_path, as_zip=True).is_file()


def test_demo_catalog_cached(tmp_path: Path) -> None:
    import time

    t0 = time.perf_counter()
    paths = build_demo_catalog(tmp_path)
    assert time.perf_counter() - t0 < 20
    assert len(paths) == 6 and sum(p.suffix == ".zip" for p in paths) == 2  # 4 S2 and 2 S1, one of each zipped
    mtimes = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    t0 = time.perf_counter()
    assert build_demo_catalog(tmp_path) == paths
    assert time.perf_counter() - t0 < 1
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == mtimes
    specs = demo_specs()
    assert sorted(s.baseline for s in specs if s.level == "L2A") == ["02.14", "04.00", "05.00"]
    config = demo_config_dict()
    start, end = config["dates"]
    assert all(start <= f"{s.sensing_time:%Y%m%d}" <= end for s in specs)
    # the ROI lies inside the tile and touches the no-data cut at one corner only
    from pyproj import Transformer
    from shapely import transform
    from shapely.geometry import Polygon, shape

    to_utm = Transformer.from_crs(4326, 32630, always_xy=True)
    roi = transform(shape(DEMO_ROI_GEOJSON), lambda xy: np.column_stack(to_utm.transform(xy[:, 0], xy[:, 1])))
    spec = specs[0]
    assert Polygon.from_bounds(spec.ulx, spec.uly - spec.width_m, spec.ulx + spec.width_m, spec.uly).contains(roi)
    grid = TargetGrid.for_geometry(roi, 32630)
    nodata = np.isnan(ground_truth(spec, grid, "B02"))
    assert 0 < nodata.sum() < 0.01 * nodata.size and nodata[-1, 0]
