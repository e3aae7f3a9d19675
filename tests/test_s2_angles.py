"""Sun and viewing angle bands: the 2022 tool's 59 S2 names, MTD_TL angle grids, interpolation onto target grids
(in the tile's CRS, in another UTM zone, across 0/360), the demo's truth, real products and STAC items."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from lxml import etree

from senprep_core.bands import S2_BANDS, BandKind, canonical_s2_band
from senprep_core.config import parse_config
from senprep_core.config.legacy import legacy_s2_name
from senprep_core.demo.catalog import demo_config_dict, demo_specs
from senprep_core.demo.s2 import ground_truth
from senprep_core.errors import CorruptProductError, UnknownBandError
from senprep_core.geo.grid import TargetGrid
from senprep_core.geo.projection import transformer
from senprep_core.outputs.stac import _band_field
from senprep_core.outputs.zarr_cube import band_info
from senprep_core.pipeline import run
from senprep_core.s2.angles import (
    NodePositions,
    TileAngles,
    angle_band_names,
    angles_on_grid,
    combine_detectors,
    fill_edge_nodes,
    interpolate_nodes,
    mean_grid,
    parse_tile_angles,
)
from senprep_core.s2.cog import read_stac_item_metadata
from senprep_core.s2.metadata import read_s2_metadata
from senprep_core.s2.reader import read_s2_window
from tests.conftest import need_real_samples

_NUMBERS = ("1", "2", "3", "4", "5", "6", "7", "8", "8A", "9", "10", "11", "12")
#: Every S2-side band name of the 2022 Strathclyde tool (SNAP), in the order its configs list them.
LEGACY_59 = (
    [f"B{n}_M" for n in _NUMBERS if n != "10"]
    + ["quality_aot_M", "quality_wvp_M", "quality_cloud_confidence_M", "quality_snow_confidence_M",
       "quality_scene_classification_M", "view_zenith_mean_M", "view_azimuth_mean_M", "sun_zenith_M", "sun_azimuth_M"]
    + [f"view_{a}_B{n}_M" for n in _NUMBERS for a in ("zenith", "azimuth")]
    + ["opaque_clouds_10m_M", "cirrus_clouds_10m_M"]
    + [f"scl_{c}_M" for c in ("dark_feature_shadow", "cloud_shadow", "vegetation", "not_vegetated", "water",
                              "unclassified", "cloud_medium_proba", "cloud_high_proba", "thin_cirrus", "snow_ice")]
)  # fmt: skip
STACTOOLS = ("stactools-sentinel2",)
T29UNU = "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE"
T29UNU_TL = f"{T29UNU}/GRANULE/L2A_T29UNU_A038058_20221005T115407/MTD_TL.xml"
T46RER_TL = (
    "S2A_MSIL1C_20210908T042701_N0301_R133_T46RER_20210908T070248.SAFE/GRANULE/L1C_T46RER_A032448_20210908T043714"
)
TOL = 0.01  # degrees


def _grid_values(nodes: np.ndarray, ulx: float, uly: float, step: float, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of nodes at points (x, y), written independently of senprep (one point at a time)."""
    out = np.full(len(xs), np.nan)
    for k, (x, y) in enumerate(zip(xs, ys, strict=True)):
        fx, fy = (x - ulx) / step, (uly - y) / step
        j, i = min(int(fx), nodes.shape[1] - 2), min(int(fy), nodes.shape[0] - 2)
        u, v = fx - j, fy - i
        out[k] = ((1 - v) * ((1 - u) * nodes[i, j] + u * nodes[i, j + 1])
                  + v * ((1 - u) * nodes[i + 1, j] + u * nodes[i + 1, j + 1]))  # fmt: skip
    return out


# ----- vocabulary and configuration ---------------------------------------------------------------------


def test_the_59_legacy_names_map_onto_distinct_canonical_bands() -> None:
    canonical = [canonical_s2_band(n) for n in LEGACY_59]
    assert len(LEGACY_59) == 59 and len(set(canonical)) == 59
    angles = [c for c in canonical if S2_BANDS[c].kind == BandKind.ANGLE]
    assert len(angles) == 30 and set(angles) == set(angle_band_names())
    assert angles[:4] == ["view_zenith_mean", "view_azimuth_mean", "sun_zenith", "sun_azimuth"]
    assert canonical_s2_band("view_zenith_B1_M") == "view_zenith_B01"
    assert canonical_s2_band("view_azimuth_B8A_M") == "view_azimuth_B8A"
    assert canonical_s2_band("View_Zenith_b8a") == "view_zenith_B8A"
    for band in angles:
        info = S2_BANDS[band]
        assert info.levels == ("L1C", "L2A") and info.resolution == 5000 and "degrees" in info.description
    for band in S2_BANDS:  # the legacy form written back maps onto the same band
        assert canonical_s2_band(legacy_s2_name(band, "_M")) == band
    assert legacy_s2_name("view_azimuth_B04", "_M") == "view_azimuth_B4_M"
    assert legacy_s2_name("view_zenith_mean", "_S") == "view_zenith_mean_S"
    with pytest.raises(UnknownBandError, match="view_zenith_B4_M"):
        canonical_s2_band("view_zenith_B13_M")


def test_config_validation_accepts_every_legacy_name() -> None:
    for name in LEGACY_59:
        data = {**demo_config_dict(), "bands_S2": [name]}
        assert parse_config(data).bands_s2 == (canonical_s2_band(name),)
    config = parse_config({**demo_config_dict(), "bands_S2": list(LEGACY_59)})
    assert config.bands_s2 == tuple(canonical_s2_band(n) for n in LEGACY_59)
    l1c = parse_config({**demo_config_dict(), "s2_producttype": "S2MSI1C", "bands_S2": ["B4_M", "view_zenith_B10_M"]})
    assert l1c.bands_s2 == ("B04", "view_zenith_B10")


def test_angle_bands_carry_degrees_in_the_cube_and_stac() -> None:
    assert band_info("S2", "sun_zenith")[:2] == ("angle", "degree")
    assert band_info("S2", "view_azimuth_B8A_M")[:2] == ("angle", "degree")
    assert band_info("S2", "B04")[1] == "1"
    assert _band_field("S2", "view_zenith_mean") == {"name": "view_zenith_mean", "unit": "degree"}
    assert _band_field("S2", "B04") == {"name": "B04"}


# ----- node arithmetic and interpolation (pure) ---------------------------------------------------------


def test_detectors_combine_in_file_order_and_means_cross_north() -> None:
    first = np.array([[1.0, 2.0, np.nan]])
    second = np.array([[np.nan, 5.0, 6.0]])
    assert np.array_equal(combine_detectors([first, second]), [[1.0, 5.0, 6.0]])  # the later detector wins
    zen = mean_grid([np.array([[1.0, np.nan]]), np.array([[3.0, np.nan]])])
    assert zen[0, 0] == 2.0 and np.isnan(zen[0, 1])
    az = mean_grid([np.array([[359.0, 10.0]]), np.array([[3.0, np.nan]])], azimuth=True)
    assert np.allclose(az, [[1.0, 10.0]])


def test_azimuth_interpolation_across_north_has_no_180_artefact() -> None:
    nodes = np.array([[350.0, 10.0], [340.0, 20.0]])
    fx = np.linspace(0.0, 1.0, 201)
    fy = np.linspace(0.0, 1.0, 101)
    expected_top, expected_bottom = 350.0 + 20.0 * fx, 340.0 + 40.0 * fx
    expected = (expected_top[None, :] * (1 - fy[:, None]) + expected_bottom[None, :] * fy[:, None]) % 360.0
    separable = interpolate_nodes(nodes, NodePositions(fx[None, :], fy[:, None]), azimuth=True)
    full = interpolate_nodes(nodes, NodePositions(*np.meshgrid(fx, fy)), azimuth=True, row_chunk=7)
    for out in (separable, full):
        assert out.shape == (101, 201) and np.isfinite(out).all()
        assert ((out >= 0) & (out < 360)).all()
        assert not ((out > 30) & (out < 330)).any()  # never the 180-ish average of 350 and 10
        assert np.abs((out - expected + 180.0) % 360.0 - 180.0).max() < 1e-3
    assert abs(float(separable[0, 100])) < 1e-3 or abs(float(separable[0, 100]) - 360.0) < 1e-3
    zenith = interpolate_nodes(nodes, NodePositions(fx[None, :], fy[:, None]), azimuth=False)
    assert abs(float(zenith[0, 100]) - 180.0) < 1e-3  # zeniths are plain numbers


def test_bilinear_on_nodes_is_exact_for_planes_nan_beyond_and_at_nan_nodes() -> None:
    i, j = np.mgrid[0:5, 0:6].astype(float)
    nodes = 10.0 + 0.5 * j - 0.25 * i
    fx, fy = np.linspace(-0.5, 5.5, 61), np.linspace(-0.5, 4.5, 51)
    out = interpolate_nodes(nodes, NodePositions(fx[None, :], fy[:, None]))
    inside = ((fy >= -0.1) & (fy <= 4.1))[:, None] & ((fx >= -0.1) & (fx <= 5.1))[None, :]
    assert np.array_equal(np.isfinite(out), inside)  # a tenth of a step past the outer nodes, no more
    plane = 10.0 + 0.5 * fx[None, :] - 0.25 * fy[:, None]
    assert np.abs(out - plane)[inside].max() < 1e-5
    holed = nodes.copy()
    holed[2, 3] = np.nan
    out = interpolate_nodes(holed, NodePositions(np.array([[2.5, 3.0, 3.5, 4.0]]), np.array([[1.0], [1.5], [2.0]])))
    assert np.isnan(out[1:, :3]).all()  # the pixels of the cells round the hole
    assert np.isfinite(out[0]).all() and np.isfinite(out[1:, 3]).all()  # a NaN node of zero weight does not count


def test_edge_nodes_are_extrapolated_linearly_two_deep() -> None:
    i, j = np.mgrid[0:6, 0:8].astype(float)
    plane = 3.0 + 0.4 * j + 0.1 * i
    holed = np.where(j >= 4, np.nan, plane)
    holed[0, 3] = np.nan
    filled = fill_edge_nodes(holed)  # two rings: columns 4 and 5, but (0, 5) is three nodes from a value
    assert np.allclose(filled[1:, :6], plane[1:, :6]) and np.allclose(filled[0, :5], plane[0, :5])
    assert np.isnan(filled[0, 5]) and np.isnan(filled[:, 6:]).all()
    azimuths = fill_edge_nodes(np.array([[5.0, 355.0, np.nan, np.nan, np.nan]]), azimuth=True)
    assert np.allclose(azimuths[0, :4], [5.0, 355.0, 345.0, 335.0]) and np.isnan(azimuths[0, 4])
    assert fill_edge_nodes(plane) is plane or np.array_equal(fill_edge_nodes(plane), plane)


def test_grids_in_another_utm_zone_are_interpolated_at_the_projected_centres() -> None:
    i, j = np.mgrid[0:23, 0:23].astype(float)
    angles = TileAngles(32629, 499980.0, 5900040.0, 5000.0, 5000.0, 40.0 + 0.2 * j + 0.05 * i, 170.0 + 0 * i)
    grid = TargetGrid(32630, 20.0, 120000.0, 5880000.0, 300, 250)  # 30N coordinates, over tile 29UNU
    got = angles_on_grid(angles, grid, ["sun_zenith"])["sun_zenith"]
    xs, ys = grid.pixel_centres()
    tx, ty = transformer(32630, 32629).transform(*np.meshgrid(xs, ys))
    plane = 40.0 + 0.2 * (tx - 499980.0) / 5000.0 + 0.05 * (5900040.0 - ty) / 5000.0
    assert np.isfinite(got).all() and np.abs(got - plane).max() < 1e-4
    with pytest.raises(KeyError, match="view_zenith_B04"):
        angles_on_grid(angles, grid, ["view_zenith_B04"])


# ----- real tile metadata ---------------------------------------------------------------------------------


@pytest.mark.realdata
def test_real_l2a_angle_grids() -> None:
    path = need_real_samples(*STACTOOLS, T29UNU_TL)
    angles = parse_tile_angles(path.read_bytes(), 32629, str(path))
    assert angles.shape == (23, 23) and (angles.col_step, angles.row_step) == (5000.0, 5000.0)
    assert (angles.ulx, angles.uly) == (499980.0, 5900040.0)
    assert 57.0 < np.nanmin(angles.sun_zenith) < np.nanmax(angles.sun_zenith) < 59.0  # Ireland, 5 October
    assert abs(float(np.mean(angles.sun_zenith)) - 57.82) < 0.05  # Mean_Sun_Angle of the file
    assert 171.0 < np.nanmin(angles.sun_azimuth) < np.nanmax(angles.sun_azimuth) < 175.0
    assert list(angles.view_zenith) == list(angles.detectors) and len(angles.view_zenith) == 13
    assert angles.detectors["B04"] == (9, 10, 11, 12) and not angles.problems
    b04 = angles.view_zenith["B04"]
    assert np.isnan(b04).any() and np.isfinite(b04).sum() > 300  # the swath edge crosses the tile
    assert np.nanmin(b04) >= 0.0 and np.nanmax(b04) < 13.0
    assert abs(float(np.nanmean(b04)) - 9.213) < 0.5  # Mean_Viewing_Incidence_Angle of bandId 3
    for name in angle_band_names():
        nodes = angles.nodes(name)
        assert nodes.shape == (23, 23) and np.isfinite(nodes).sum() >= np.isfinite(b04).sum()
        assert ((nodes >= 0) & (nodes < 360))[np.isfinite(nodes)].all()
    assert 270.0 < np.nanmin(angles.nodes("view_azimuth_mean")) < np.nanmax(angles.nodes("view_azimuth_mean")) < 305


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("folder", "detectors", "sun"),
    [(T46RER_TL, 2, (25.0, 28.0)),
     ("S2A_MSIL1C_20200717T221941_R029_T01LAC_20200717T234135.SAFE/GRANULE/L1C_T01LAC_A026481_20200717T221944", 6,
      (44.0, 46.5))],
)  # fmt: skip
def test_real_l1c_angle_grids(folder: str, detectors: int, sun: tuple[float, float]) -> None:
    path = need_real_samples(*STACTOOLS, folder, "MTD_TL.xml")
    angles = parse_tile_angles(path.read_bytes(), 32646, str(path))
    assert angles.shape == (23, 23) and len(angles.view_zenith) == 13  # B10 too
    assert all(len(d) == detectors for d in angles.detectors.values())
    assert sun[0] < np.nanmin(angles.sun_zenith) < np.nanmax(angles.sun_zenith) < sun[1]
    for band, grid in angles.view_zenith.items():
        assert np.nanmin(grid) >= 0.0 and np.nanmax(grid) < 13.0, band
        assert ((angles.view_azimuth[band] >= 0) & (angles.view_azimuth[band] < 360))[np.isfinite(grid)].all()


@pytest.mark.realdata
def test_a_malformed_viewing_grid_is_left_out_naming_the_band() -> None:
    path = need_real_samples(*STACTOOLS, "S2A_OPER_MSI_L2A_TL_2APS_20240108T121951_A044635_T34VEL", "metadata.xml")
    angles = parse_tile_angles(path.read_bytes(), 32634, str(path))
    assert angles.has("sun_zenith") and not angles.has("view_zenith_B01") and not angles.has("view_zenith_mean")
    assert "B01" in angles.problems and "Values_List" in angles.problems["B01"]


@pytest.mark.realdata
def test_aws_tile_folders_keep_their_angle_grids_in_metadata_xml() -> None:
    folder = need_real_samples(*STACTOOLS, "S2A_OPER_MSI_L2A_TL_SGS__20181231T210250_A018414_T10SDG")
    meta = read_s2_metadata(folder)
    assert meta.layout == "tile" and meta.tile_metadata == "metadata.xml"
    assert meta.location is not None
    angles = parse_tile_angles(meta.location.read_bytes(meta.tile_metadata), meta.epsg)
    assert angles.epsg == 32610 and len(angles.view_zenith) == 13 and not angles.problems
    assert 62.0 < np.nanmin(angles.sun_zenith) < np.nanmax(angles.sun_zenith) < 64.0  # California, 31 December


# ----- the S2 reader ----------------------------------------------------------------------------------------


@pytest.mark.realdata
def test_real_product_angles_on_grids_of_both_zones() -> None:
    meta = read_s2_metadata(need_real_samples(*STACTOOLS, T29UNU))
    assert meta.tile_metadata is not None and meta.tile_metadata.endswith("MTD_TL.xml")
    nodes = parse_tile_angles(meta.location.read_bytes(meta.tile_metadata), 32629)  # type: ignore[union-attr]
    names = ["sun_zenith", "sun_azimuth", "view_zenith_mean", "view_azimuth_B8A"]
    grid = TargetGrid(32629, 60.0, 499980.0, 5900040.0, 1830, 1830)
    window = read_s2_window(meta, grid, ["B04", *names], resampling="cubic")  # angles stay bilinear
    valid = np.isfinite(window.data[0])
    assert 0.4 < 1 - valid.mean() < 0.45  # the swath edge
    for k, name in enumerate(names, start=1):
        assert np.array_equal(np.isfinite(window.data[k]), valid), name  # angles wherever the product has data
    xs, ys = grid.pixel_centres()
    rows, cols = np.nonzero(valid)
    pick = np.random.default_rng(1).choice(rows.size, 200, replace=False)
    for k, name in enumerate(names, start=1):
        expected = _grid_values(nodes.nodes(name), 499980.0, 5900040.0, 5000.0, xs[cols[pick]], ys[rows[pick]])
        got = window.data[k][rows[pick], cols[pick]]
        assert np.abs(got - expected).max() < 1e-3, name
    assert np.nanmin(window.data[3]) > 5.0 and np.nanmax(window.data[3]) < 12.5
    # the same ground in the neighbouring zone (30N): the angles of the projected pixel centres
    other = TargetGrid(32630, 60.0, 84000.0, 5880000.0, 400, 300)
    far = read_s2_window(meta, other, ["B04", "sun_zenith", "view_zenith_mean"])
    ok = np.isfinite(far.data[0])
    assert ok.mean() > 0.4 and np.array_equal(np.isfinite(far.data[1]), ok)
    oxs, oys = other.pixel_centres()
    rows, cols = np.nonzero(ok)
    pick = np.random.default_rng(2).choice(rows.size, 100, replace=False)
    tx, ty = transformer(32630, 32629).transform(oxs[cols[pick]], oys[rows[pick]])
    for k, name in ((1, "sun_zenith"), (2, "view_zenith_mean")):
        expected = _grid_values(nodes.nodes(name), 499980.0, 5900040.0, 5000.0, np.asarray(tx), np.asarray(ty))
        assert np.abs(far.data[k][rows[pick], cols[pick]] - expected).max() < TOL, name


@pytest.mark.parametrize("level", ["L2A", "L1C"])
def test_demo_angles_match_the_truth(demo_products: Path, level: str) -> None:
    spec = next(s for s in demo_specs() if s.level == level and s.baseline == "04.00")
    meta = read_s2_metadata(next(demo_products.glob(f"{spec.product_id}*")))
    assert len(spec.angles().view) == 13 * 4  # four detectors per band, their strips overlapping
    grid = spec.grid(20)
    names = list(angle_band_names())
    window = read_s2_window(meta, grid, ["B04", *names])
    valid = np.isfinite(window.data[0])
    compared = 0
    for k, name in enumerate(names, start=1):
        got = window.data[k]
        assert np.array_equal(np.isfinite(got), valid), name
        truth = ground_truth(spec, grid, name)
        both = np.isfinite(truth) & valid
        assert both.sum() > 0.95 * valid.sum(), name
        assert np.abs(got - truth)[both].max() < TOL, name
        compared += int(both.sum())
    assert compared > 30 * 0.5 * grid.width * grid.height


def test_a_run_with_all_59_legacy_names_writes_them_in_order(demo_products: Path, tmp_path: Path) -> None:
    result = run(parse_config({**demo_config_dict(), "bands_S2": list(LEGACY_59)}), tmp_path / "out",
                 sources=[f"local:{demo_products}"])  # fmt: skip
    entries = [e for r in result.results for e in r.patch_entries]
    assert result.status == "complete" and entries
    order = tuple(canonical_s2_band(n) for n in LEGACY_59)
    specs = {s.product_id: s for s in demo_specs()}
    for entry in entries:
        with rasterio.open(tmp_path / "out" / entry.files["S2"]) as ds:
            assert ds.count == 59 and ds.descriptions == order
            data, transform, epsg = ds.read(), ds.transform, ds.crs.to_epsg()
        spec = specs[entry.primary.product_ids[0]]
        grid = TargetGrid(epsg, transform.a, transform.c, transform.f, data.shape[2], data.shape[1])
        reflectance = np.isfinite(data[:12]).all(axis=0)  # where every reflectance band holds data
        for name in ("sun_zenith", "sun_azimuth", "view_zenith_mean", "view_azimuth_mean", "view_zenith_B10"):
            got = data[order.index(name)]
            truth = ground_truth(spec, grid, name)
            assert np.array_equal(np.isfinite(got), reflectance), name
            both = np.isfinite(got) & np.isfinite(truth)
            assert both.any() and np.abs(got - truth)[both].max() < TOL, name


# ----- products without angle grids -------------------------------------------------------------------------


def _strip_view_grids(safe: Path) -> None:
    path = next(safe.glob("GRANULE/*/MTD_TL.xml"))
    root = etree.fromstring(path.read_bytes())
    for el in [e for e in root.iter() if isinstance(e.tag, str) and e.tag == "Viewing_Incidence_Angles_Grids"]:
        el.getparent().remove(el)
    path.write_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def test_missing_viewing_grids_and_tile_metadata_name_the_band(demo_products: Path, tmp_path: Path) -> None:
    import shutil

    spec = next(s for s in demo_specs() if s.level == "L2A" and s.baseline == "05.00")
    safe = tmp_path / f"{spec.product_id}.SAFE"
    shutil.copytree(next(demo_products.glob(f"{spec.product_id}.SAFE")), safe)
    _strip_view_grids(safe)
    meta = read_s2_metadata(safe)
    grid = spec.grid(60)
    assert np.isfinite(read_s2_window(meta, grid, ["B04", "sun_zenith"]).data[1]).any()  # the sun grid is there
    for band in ("view_zenith_B04", "view_azimuth_mean"):
        with pytest.raises(CorruptProductError, match=rf"band {band} .*Viewing_Incidence_Angles_Grids"):
            read_s2_window(meta, grid, ["B04", band])
    for member in safe.glob("GRANULE/*/MTD_TL.xml"):
        member.unlink()
    with pytest.raises(CorruptProductError, match=r"band sun_zenith .*MTD_TL\.xml"):
        read_s2_window(read_s2_metadata(safe), grid, ["B04", "sun_zenith"])


def _absolute_item(sample: Path, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    item = json.loads((sample / "S2A_T29UNU_20221005T115407_L2A.local-item.json").read_text())
    for key in drop:
        del item["assets"][key]
    for asset in item["assets"].values():
        if asset["href"].startswith("./"):
            asset["href"] = str(sample / asset["href"][2:])
    return item


@pytest.mark.realdata
def test_stac_items_read_their_granule_metadata(tmp_path: Path) -> None:
    sample = need_real_samples(*STACTOOLS)
    grid = TargetGrid(32629, 60.0, 540000.0, 5880000.0, 200, 150)
    names = ["B04", "sun_zenith", "view_azimuth_mean", "view_zenith_B05"]
    expected = read_s2_window(read_s2_metadata(sample / T29UNU), grid, names)
    path = tmp_path / "item.json"
    finer = ("red", "red_20m")  # the trimmed copy in tests/data/real keeps B04 at 60 m only
    path.write_text(json.dumps(_absolute_item(sample, drop=finer)))
    meta = read_stac_item_metadata(path)
    assert meta.tile_metadata is not None and meta.tile_metadata.endswith("MTD_TL.xml")
    got = read_s2_window(meta, grid, names)
    assert np.array_equal(got.data, expected.data, equal_nan=True)
    path.write_text(json.dumps(_absolute_item(sample, drop=(*finer, "granule_metadata"))))
    meta = read_stac_item_metadata(path)
    assert meta.tile_metadata is None
    with pytest.raises(CorruptProductError, match=r"band view_azimuth_mean .*no tile metadata"):
        read_s2_window(meta, grid, ["B04", "view_azimuth_mean"])


@pytest.mark.integration
def test_earth_search_runs_fetch_the_tile_metadata_for_angle_bands(tmp_path: Path, cog_product: dict[str, Any]) -> None:
    from tests.servers.fileserver import serve_files
    from tests.servers.stac_server import serve_stac
    from tests.test_cog_reads import BANDS, _item
    from tests.test_remote_runs import _roi_geojson, _run, _tifs

    meta = cog_product["meta"]
    bands = [*BANDS, "sun_zenith_M", "view_azimuth_mean", "view_zenith_B4_M"]
    config = {"name": "es-angles", "roi": _roi_geojson(640, 600, 200), "dates": [["2022-07-01", "2022-08-31"]],
              "mode": "s2_only", "grid": {"resolution": 10, "epsg": 32630},
              "patches": {"size": [100, 100], "overlap": [0, 0], "edge": "shift"},
              "sentinel2": {"level": "L2A", "bands": bands, "cloud_cover": [0, 100]},
              "output": {"min_valid_fraction": 0.0}}  # fmt: skip
    path = tmp_path / "es.json"
    path.write_text(json.dumps(config))
    local = tmp_path / "local"
    assert _run("--config", str(path), "--outdir", str(local), "--source", f"local:{cog_product['safe'].parent}") == 0
    tile_metadata = meta.location.path / meta.tile_metadata
    with serve_files(cog_product["root"]) as files:
        item = _item(meta, {band: f"{files.url}/cogs/{band}.tif" for band in BANDS}, "earth-search")
        relative = tile_metadata.relative_to(cog_product["root"]).as_posix()
        item["assets"]["granule_metadata"] = {"href": f"{files.url}/{relative}", "type": "application/xml"}
        with serve_stac([item]) as stac:
            cache = tmp_path / "cache"
            args = ["--config", str(path), "--outdir", str(tmp_path / "remote"), "--source", f"earth-search:{stac.url}"]
            assert _run(*args, "--cache-dir", str(cache)) == 0
    expected = _tifs(local)
    assert len(expected) == 4 and _tifs(tmp_path / "remote") == expected
    cached = list(cache.rglob("*.MTD_TL.xml"))
    assert len(cached) == 1 and cached[0].read_bytes() == tile_metadata.read_bytes()
