"""SNAP backend: the generated GPT graph, and running gpt (a fake one; the real one when installed)."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
import shapely
from lxml import etree
from pyproj import CRS, Transformer
from shapely import wkt
from shapely.geometry import box

from senprep_core.errors import ConfigError, SnapError
from senprep_core.geo.grid import TargetGrid
from senprep_core.s1.snap import (
    SNAP_FILTER_NAMES,
    build_graph,
    esa_snappy_available,
    run_graph,
    snap_available,
)
from senprep_core.s1.speckle import SpeckleFilter
from tests.conftest import need_real_samples

ROME_GRID = TargetGrid(epsg=32633, resolution=10.0, left=289_000.0, top=4_650_000.0, width=120, height=90)
FULL_CHAIN = [
    "Read",
    "Apply-Orbit-File",
    "ThermalNoiseRemoval",
    "Calibration",
    "Speckle-Filter",
    "Terrain-Correction",
    "Subset",
    "LinearToFromdB",
    "Write",
]


@pytest.fixture
def safe(tmp_path: Path) -> Path:
    folder = tmp_path / "S1B_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993_5371.SAFE"
    folder.mkdir()
    (folder / "manifest.safe").write_text("<xfdu/>")
    return folder


def parse(graph_xml: str) -> etree._Element:
    root = etree.fromstring(graph_xml.encode("utf-8"))
    assert root.tag == "graph" and root.get("id") == "senprep"
    return root


def chain(root: etree._Element) -> list[str]:
    """Node ids in order, after checking operator names and that each node reads the previous one."""
    nodes = root.findall("node")
    ids = [node.get("id") for node in nodes]
    for index, node in enumerate(nodes):
        assert node.findtext("operator") == node.get("id")
        refs = [source.get("refid") for source in node.find("sources")]
        assert refs == ([] if index == 0 else [ids[index - 1]]), f"{node.get('id')} reads {refs}"
    return [str(i) for i in ids]


def params(root: etree._Element, node_id: str) -> dict[str, str]:
    (node,) = root.xpath(f"node[@id='{node_id}']")
    return {child.tag: child.text or "" for child in node.find("parameters")}


def test_full_chain_with_lee_sigma(safe: Path, tmp_path: Path) -> None:
    xml = build_graph(
        safe,
        tmp_path / "out" / "scene.tif",
        ROME_GRID,
        None,
        ["VV", "VH"],
        SpeckleFilter("lee_sigma"),
        True,
        "precise",
    )
    root = parse(xml)
    assert chain(root) == FULL_CHAIN
    assert params(root, "Read") == {"file": str((safe / "manifest.safe").resolve())}
    assert params(root, "Apply-Orbit-File") == {
        "orbitType": "Sentinel Precise (Auto Download)",
        "polyDegree": "3",
        "continueOnFail": "false",
    }
    noise = params(root, "ThermalNoiseRemoval")
    assert noise["selectedPolarisations"] == "VV,VH" and noise["removeThermalNoise"] == "true"
    assert noise["reIntroduceThermalNoise"] == "false"
    calibration = params(root, "Calibration")
    assert calibration["sourceBands"] == "Intensity_VV,Intensity_VH"
    assert calibration["outputSigmaBand"] == "true"
    assert calibration["outputBetaBand"] == calibration["outputGammaBand"] == "false"
    assert calibration["outputImageScaleInDb"] == "false"
    assert params(root, "Speckle-Filter") == {
        "sourceBands": "Sigma0_VV,Sigma0_VH",
        "filter": "Lee Sigma",
        "numLooksStr": "1",
        "windowSize": "7x7",
        "targetWindowSizeStr": "3x3",
        "sigmaStr": "0.9",
    }
    tc = params(root, "Terrain-Correction")
    assert tc["sourceBands"] == "Sigma0_VV,Sigma0_VH"
    assert tc["demName"] == "Copernicus 30m Global DEM" and "externalDEMFile" not in tc
    assert float(tc["pixelSpacingInMeter"]) == 10.0
    assert CRS.from_wkt(tc["mapProjection"]).to_epsg() == 32633
    assert tc["nodataValueAtSea"] == "false" and tc["saveSelectedSourceBand"] == "true"
    assert tc["alignToStandardGrid"] == "true"
    assert float(tc["standardGridOriginX"]) == 0.0 and float(tc["standardGridOriginY"]) == 0.0
    assert tc["imgResamplingMethod"] == "BILINEAR_INTERPOLATION"
    assert params(root, "LinearToFromdB") == {"sourceBands": "Sigma0_VV,Sigma0_VH"}
    assert params(root, "Write") == {
        "file": str((tmp_path / "out" / "scene.tif").resolve()),
        "formatName": "GeoTIFF-BigTIFF",
        "deleteOutputOnFailure": "true",
    }


def test_subset_region_covers_the_grid(safe: Path, tmp_path: Path) -> None:
    xml = build_graph(safe, tmp_path / "o.tif", ROME_GRID, None, ["VV"], SpeckleFilter("none"), False, "precise")
    subset = params(parse(xml), "Subset")
    polygon = wkt.loads(subset["geoRegion"])
    lon, lat = polygon.centroid.x, polygon.centroid.y
    assert 12.4 < lon < 12.6 and 41.9 < lat < 42.05  # Rome
    to_utm = Transformer.from_crs(4326, 32633, always_xy=True)
    back = shapely.transform(polygon, lambda xy: np.column_stack(to_utm.transform(xy[:, 0], xy[:, 1])))
    grid_box = box(*ROME_GRID.bounds.as_tuple())
    assert back.buffer(0.01).covers(grid_box)
    assert back.area == pytest.approx(grid_box.area, rel=1e-6)


def test_minimal_chain_with_external_dem(safe: Path, tmp_path: Path) -> None:
    dem = tmp_path / "dem.tif"
    dem.write_bytes(b"not read while building the graph")
    xml = build_graph(
        safe,
        tmp_path / "scene",
        ROME_GRID,
        str(dem),
        ("vh",),
        SpeckleFilter("none"),
        False,
        "annotation",
        backscatter="gamma0",
        resampling="NEAREST_NEIGHBOUR",
    )
    root = parse(xml)
    assert chain(root) == ["Read", "ThermalNoiseRemoval", "Calibration", "Terrain-Correction", "Subset", "Write"]
    calibration = params(root, "Calibration")
    assert calibration["outputGammaBand"] == "true" and calibration["outputSigmaBand"] == "false"
    assert calibration["sourceBands"] == "Intensity_VH"
    tc = params(root, "Terrain-Correction")
    assert tc["sourceBands"] == "Gamma0_VH"
    assert tc["demName"] == "External DEM"
    assert tc["externalDEMFile"] == str(dem.resolve())
    assert tc["externalDEMApplyEGM"] == "true" and float(tc["externalDEMNoDataValue"]) == -32768.0
    assert tc["imgResamplingMethod"] == "NEAREST_NEIGHBOUR"
    assert params(root, "Write")["file"] == str((tmp_path / "scene.tif").resolve())


def test_zip_product_frost_and_geographic_grid(tmp_path: Path) -> None:
    product = tmp_path / "S1A_IW_GRDH_1SDV_x.zip"
    product.write_bytes(b"PK")
    grid = TargetGrid(epsg=4326, resolution=0.0001, left=12.45, top=42.05, width=50, height=40)
    speckle = SpeckleFilter("frost", window=5, damping=3.0)
    xml = build_graph(product, tmp_path / "o.tif", grid, "SRTM 3Sec", ["HH", "HV"], speckle, True, "restituted")
    root = parse(xml)
    assert chain(root) == FULL_CHAIN
    assert params(root, "Read")["file"] == str(product.resolve())
    assert params(root, "Apply-Orbit-File")["orbitType"] == "Sentinel Restituted (Auto Download)"
    assert params(root, "Speckle-Filter") == {
        "sourceBands": "Sigma0_HH,Sigma0_HV",
        "filter": "Frost",
        "filterSizeX": "5",
        "filterSizeY": "5",
        "dampingFactor": "3.0",
    }
    tc = params(root, "Terrain-Correction")
    assert tc["demName"] == "SRTM 3Sec"
    assert float(tc["pixelSpacingInDegree"]) == 0.0001
    assert float(tc["pixelSpacingInMeter"]) == pytest.approx(11.13, abs=0.01)
    assert CRS.from_wkt(tc["mapProjection"]).to_epsg() == 4326


@pytest.mark.parametrize("name", sorted(SNAP_FILTER_NAMES))
def test_every_filter_maps_to_a_snap_name(safe: Path, tmp_path: Path, name: str) -> None:
    speckle = SpeckleFilter(name, looks=4.0)
    root = parse(build_graph(safe, tmp_path / "o.tif", ROME_GRID, None, ["VV"], speckle, True, "precise"))
    values = params(root, "Speckle-Filter")
    assert values["filter"] == SNAP_FILTER_NAMES[name]
    if name in ("boxcar", "median", "lee", "gamma_map", "frost"):
        assert values["filterSizeX"] == values["filterSizeY"] == "5"
    if name in ("lee", "gamma_map"):
        assert values["estimateENL"] == "false" and float(values["enl"]) == 4.0
    if name == "lee_sigma":
        assert values["numLooksStr"] == "4"


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"speckle": SpeckleFilter("lee_sigma", sigma=0.75)}, "sentinel1.speckle_filter.sigma"),
        ({"speckle": SpeckleFilter("refined_lee", window=9)}, "sentinel1.speckle_filter.window"),
        ({"polarisations": ["VV", "XX"]}, "sentinel1.polarisations"),
        ({"polarisations": []}, "sentinel1.polarisations"),
        ({"orbit_type": "poeorb-ish"}, "sentinel1.orbit"),
        ({"dem": "/nowhere/dem.tif"}, "sentinel1.dem"),
        ({"product_path": "/nowhere/S1.SAFE"}, "sentinel1.product"),
        ({"backscatter": "sigma1"}, "sentinel1.backscatter"),
        ({"resampling": "LANCZOS"}, "sentinel1.resampling"),
    ],
)
def test_bad_options_raise_config_errors(safe: Path, tmp_path: Path, change: dict[str, object], key: str) -> None:
    arguments: dict[str, object] = {
        "product_path": safe,
        "out_path": tmp_path / "o.tif",
        "grid": ROME_GRID,
        "dem": None,
        "polarisations": ["VV"],
        "speckle": SpeckleFilter("lee"),
        "output_db": True,
        "orbit_type": "precise",
    }
    arguments.update(change)
    with pytest.raises(ConfigError) as info:
        build_graph(**arguments)  # type: ignore[arg-type]
    assert info.value.key == key


FAKE_GPT = """#!{python}
import os, sys, time
from pathlib import Path
from xml.etree import ElementTree

mode = os.environ.get("FAKE_GPT_MODE", "ok")
Path("fake-gpt-call.txt").write_text(os.getcwd() + "\\n" + "\\n".join(sys.argv[1:]))
root = ElementTree.parse(sys.argv[1]).getroot()
target = root.find("node[operator='Write']/parameters/file").text
for i in range(40):
    print(f"progress line {{i}}", flush=True)
if mode == "fail":
    print("Error: [NodeId: Terrain-Correction] boom", flush=True)
    sys.exit(1)
if mode == "hang":
    time.sleep(60)
if mode == "ok":
    Path(target).write_bytes(b"fake tiff")
"""


@pytest.fixture
def fake_gpt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "fake-snap-bin"
    folder.mkdir()
    script = folder / "gpt"
    script.write_text(FAKE_GPT.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ.get('PATH', '')}")
    return script


@pytest.fixture
def graph(safe: Path, tmp_path: Path) -> str:
    out = tmp_path / "products" / "scene.tif"
    return build_graph(safe, out, ROME_GRID, None, ["VV"], SpeckleFilter("lee"), True, "precise")


def test_run_graph_success(fake_gpt: Path, graph: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_GPT_MODE", "ok")
    assert snap_available() == str(fake_gpt)
    work = tmp_path / "work"
    written = run_graph(graph, work)
    assert written == (tmp_path / "products" / "scene.tif").resolve()
    assert written.read_bytes() == b"fake tiff"
    assert (work / "graph.xml").read_text(encoding="utf-8") == graph
    cwd, argument = (work / "fake-gpt-call.txt").read_text().splitlines()
    assert Path(cwd) == work.resolve() and Path(argument) == work / "graph.xml"
    assert "progress line 39" in (work / "gpt.log").read_text()


def test_run_graph_failure_shows_the_tail(fake_gpt: Path, graph: str, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FAKE_GPT_MODE", "fail")
    with pytest.raises(SnapError) as info:
        run_graph(graph, tmp_path / "work")
    message = str(info.value)
    assert "exit code 1" in message and "boom" in message and "progress line 39" in message
    assert "progress line 3\n" not in message  # only the tail of a long output
    assert "progress line 0" in (tmp_path / "work" / "gpt.log").read_text()
    assert not (tmp_path / "products" / "scene.tif").exists()


def test_run_graph_without_output_file(fake_gpt: Path, graph: str, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FAKE_GPT_MODE", "silent")
    with pytest.raises(SnapError, match="did not write"):
        run_graph(graph, tmp_path / "work")


def test_run_graph_timeout(fake_gpt: Path, graph: str, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FAKE_GPT_MODE", "hang")
    with pytest.raises(SnapError, match="did not finish within"):
        run_graph(graph, tmp_path / "work", timeout=1.5)


def test_run_graph_without_gpt(graph: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert snap_available() is None
    with pytest.raises(SnapError) as info:
        run_graph(graph, tmp_path / "work")
    assert str(info.value) == "gpt not found; install ESA SNAP or use the native chain"


def test_run_graph_rejects_graph_without_write(fake_gpt: Path, tmp_path: Path) -> None:
    with pytest.raises(SnapError, match="Write"):
        run_graph('<graph id="senprep"><version>1.0</version></graph>', tmp_path / "work")
    with pytest.raises(SnapError, match="not valid XML"):
        run_graph("<graph", tmp_path / "work")


def test_esa_snappy_probe_is_boolean() -> None:
    assert isinstance(esa_snappy_available(), bool)


@pytest.mark.snap
def test_real_snap_run(tmp_path: Path) -> None:
    """With SNAP installed: the real gpt runs the graph offline (annotation orbit, local DEM)."""
    if snap_available() is None:
        pytest.skip("ESA SNAP gpt is not installed")
    import rasterio

    product = need_real_samples(
        "sarsen-testdata", "S1B_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993_5371.SAFE"
    )
    dem = need_real_samples("sarsen-testdata", "Rome-30m-DEM.tif")
    grid = TargetGrid(epsg=32633, resolution=20.0, left=291_000.0, top=4_652_000.0, width=100, height=100)
    xml = build_graph(product, tmp_path / "rome", grid, str(dem), ["VV"], SpeckleFilter("none"), False, "annotation")
    written = run_graph(xml, tmp_path / "work", timeout=3600)
    with rasterio.open(written) as dataset:
        assert dataset.crs.to_epsg() == 32633
        assert dataset.res == pytest.approx((20.0, 20.0))
        left, bottom, right, top = dataset.bounds
        wanted = grid.bounds
        assert left <= wanted.left + 20 and bottom <= wanted.bottom + 20
        assert right >= wanted.right - 20 and top >= wanted.top - 20
