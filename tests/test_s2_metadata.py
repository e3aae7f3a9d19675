"""read_s2_metadata on every real stactools-sentinel2 sample folder (SAFE and AWS tile layouts)."""

from __future__ import annotations

import json
import re
from datetime import timezone
from pathlib import Path

import pytest

from senprep_core.errors import MetadataError
from senprep_core.s2.metadata import epsg_from_mgrs, read_s2_metadata
from tests.conftest import find_real_samples, need_real_samples

STAC = find_real_samples("stactools-sentinel2")
FOLDERS = sorted(p.name for p in STAC.glob("S2*") if p.is_dir()) if STAC else ["<missing>"]
T29UNU = "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE"


def _xml_offsets(folder: Path) -> set[int]:
    values: set[int] = set()
    for xml in folder.glob("*.xml"):
        values |= {int(v) for v in re.findall(r"_ADD_OFFSET band_id=\"\d+\">(-?\d+)<", xml.read_text())}
    return values


@pytest.mark.realdata
@pytest.mark.parametrize("name", FOLDERS)
def test_every_sample_folder(name: str) -> None:
    folder = need_real_samples("stactools-sentinel2", name)
    meta = read_s2_metadata(folder)
    assert re.fullmatch(r"\d{2}[C-X][A-Z]{2}", meta.tile_id)
    assert meta.epsg == epsg_from_mgrs(meta.tile_id)
    assert re.fullmatch(r"\d{2}\.\d{2}", meta.processing_baseline)
    assert meta.level in ("L1C", "L2A") and meta.product_type == {"L1C": "S2MSI1C", "L2A": "S2MSI2A"}[meta.level]
    assert meta.mission in ("S2A", "S2B", "S2C")
    assert meta.sensing_time.tzinfo == timezone.utc
    assert meta.quantification_value == 10000.0
    assert meta.cloud_cover is None or 0.0 <= meta.cloud_cover <= 100.0
    assert meta.layout == ("SAFE" if (folder / "tileInfo.json").exists() is False else "tile")
    expected_offset = -1000 if float(meta.processing_baseline) >= 4.0 else 0
    if meta.offsets_source == "metadata" and _xml_offsets(folder):
        # the product metadata is the authority (one upstream fixture deliberately says -7000)
        assert set(meta.offsets.values()) == _xml_offsets(folder)
    else:
        assert set(meta.offsets.values()) == {expected_offset}
    if meta.geocoding:
        g10 = meta.geocoding[10]
        assert (g10.nrows, g10.ncols) == (10980, 10980)
        assert meta.geocoding[60].grid(meta.epsg).shape == (1830, 1830)
    if meta.footprint is not None:
        minx, miny, maxx, maxy = meta.footprint.bounds
        assert -180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90
    json.dumps(meta.to_dict())

    expected_path = folder / "expected_output.json"
    if expected_path.exists():
        props = json.loads(expected_path.read_text())["properties"]
        assert props["grid:code"] == f"MGRS-{meta.tile_id}"
        epsg = props.get("proj:epsg") or int(str(props["proj:code"]).split(":")[1])
        assert meta.epsg == epsg
        assert meta.processing_baseline == props["s2:processing_baseline"]
        assert meta.cloud_cover == pytest.approx(props["eo:cloud_cover"], abs=1e-6)
        assert meta.product_type == props["s2:product_type"]


@pytest.mark.realdata
def test_real_l2a_details() -> None:
    meta = read_s2_metadata(need_real_samples("stactools-sentinel2", T29UNU))
    assert meta.product_id == "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454"
    assert (meta.tile_id, meta.epsg, meta.processing_baseline, meta.relative_orbit) == ("29UNU", 32629, "04.00", 23)
    assert meta.offsets["B04"] == -1000 and meta.offsets_source == "metadata"
    assert meta.cloud_cover == pytest.approx(59.769726)
    assert meta.sensing_time.isoformat() == "2022-10-05T11:56:49.581767+00:00"
    assert meta.geocoding[60].ulx == 499980 and meta.geocoding[60].uly == 5900040
    assert meta.footprint is not None and meta.footprint.bounds[0] == pytest.approx(-9.000305)


@pytest.mark.realdata
def test_real_l2a_band_and_mask_files() -> None:
    """Band and mask files are those present: this needs the whole SAFE (the copy in tests/data/real holds a few)."""
    granule = "GRANULE/L2A_T29UNU_A038058_20221005T115407"
    scl60 = f"{granule}/IMG_DATA/R60m/T29UNU_20221005T115411_SCL_60m.jp2"
    masks = [f"{granule}/QI_DATA/MSK_{name}.jp2" for name in ("CLASSI_B00", "CLDPRB_20m", "SNWPRB_20m")]
    meta = read_s2_metadata(need_real_samples("stactools-sentinel2", T29UNU, members=[scl60, *masks]))
    assert meta.band_files["B04"] == {60: meta.band_files["B04"][60]} and meta.band_files["B04"][60].endswith(
        "_B04_60m.jp2"
    )
    assert set(meta.band_files["SCL"]) == {20, 60}
    assert {"classi", "cldprb_20m", "snwprb_20m"} <= set(meta.mask_files)


@pytest.mark.realdata
def test_inferred_offsets_and_mgrs_epsg() -> None:
    folder = need_real_samples(
        "stactools-sentinel2",
        "S2A_OPER_MSI_L2A_TL_VGS1_20220401T110010_A035382_T34LBQ-no-tileDataGeometry-no-product-metadata",
    )
    meta = read_s2_metadata(folder)
    assert meta.offsets_source == "inferred from baseline" and set(meta.offsets.values()) == {-1000}
    assert meta.footprint is None and meta.layout == "tile"
    assert epsg_from_mgrs("29UNU") == 32629 and epsg_from_mgrs("01LAC") == 32701 and epsg_from_mgrs("60CWS") == 32760


@pytest.mark.realdata
def test_antimeridian_footprint_is_split() -> None:
    meta = read_s2_metadata(
        need_real_samples("stactools-sentinel2", "S2A_MSIL1C_20200717T221941_R029_T01LAC_20200717T234135.SAFE")
    )
    assert meta.footprint is not None and meta.footprint.geom_type == "MultiPolygon"
    assert meta.product_id.endswith("_N0209_R029_T01LAC_20200717T234135")  # from PRODUCT_URI, not the folder name


def test_malformed_and_missing_xml(tmp_path: Path) -> None:
    bad = tmp_path / "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE"
    bad.mkdir()
    (bad / "MTD_MSIL2A.xml").write_text("<n1:Level-2A_User_Product><General_Info>")
    with pytest.raises(MetadataError, match=r"MTD_MSIL2A\.xml"):
        read_s2_metadata(bad)
    empty = tmp_path / "empty.SAFE"
    empty.mkdir()
    with pytest.raises(MetadataError, match="no Sentinel-2 metadata"):
        read_s2_metadata(empty)


def test_entities_are_not_resolved(tmp_path: Path) -> None:
    folder = tmp_path / "S2A_MSIL1C_20200101T000000_N0209_R001_T31UDQ_20200101T000000.SAFE"
    folder.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("99.5")
    (folder / "MTD_MSIL1C.xml").write_text(
        f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file://{secret}">]>'
        "<n1:Level-1C_User_Product xmlns:n1='u'><Product_Info><PRODUCT_START_TIME>2020-01-01T00:00:00Z"
        "</PRODUCT_START_TIME></Product_Info><Cloud_Coverage_Assessment>&e;</Cloud_Coverage_Assessment>"
        "</n1:Level-1C_User_Product>"
    )
    meta = read_s2_metadata(folder)
    assert (
        meta.cloud_cover is None
        and meta.tile_id == "31UDQ"
        and meta.epsg == 32631
        and meta.processing_baseline == "02.09"
    )
