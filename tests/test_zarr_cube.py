"""The Zarr cube of a run: opens with xarray, CF attributes, chunked by patch, exactly the COG values."""

from __future__ import annotations

import copy
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import xarray as xr
from pyproj import CRS

from senprep_core.config import parse_config
from senprep_core.demo.catalog import demo_runs
from senprep_core.errors import ConfigError, OutputError
from senprep_core.geo.grid import TargetGrid
from senprep_core.outputs.records import PatchEntry
from senprep_core.outputs.run_folder import RunFolder
from senprep_core.outputs.stac import write_catalog
from senprep_core.outputs.zarr_cube import (
    cube_attrs,
    delta_hours,
    parse_time,
    write_zarr_cube,
)
from senprep_core.pipeline import run
from tests.conftest import commit_entries


def run_entries(outdir: Path) -> list[dict[str, Any]]:
    """The run's patch entries in their manifest (JSON) form."""
    return [e.to_dict() for e in RunFolder(outdir).entries()]


def typed(entries: list[dict[str, Any]]) -> list[PatchEntry]:
    return [PatchEntry.from_dict(e) for e in entries]


def build_run(products: Path, outdir: Path, kind: str) -> Path:
    """A complete demo run ("s2": S2 L2A, s2_only; "s1": S1 GRD, s1_only) into ``outdir``, with its cube."""
    config = dict(demo_runs(products))[kind]
    result = run(parse_config(config), outdir, sources=[f"local:{products}"])
    assert result.status == "complete" and result.patches_written > 0
    write_zarr_cube(RunFolder(outdir), RunFolder(outdir).entries(), kind)
    return outdir


def build_paired_run(s2_run: Path, s1_run: Path, outdir: Path) -> list[dict[str, Any]]:
    """A hand-made paired run (S2 primary, the closest S1 per patch) in the manifest contract; returns its entries.

    Both demo runs share one grid and patch layout, so each S2 patch is paired with the same patch of the
    S1 acquisition closest in time (one S1 acquisition serves two S2 dates). Writes patches, unit.json,
    the STAC catalog and the Zarr cube.
    """
    s1_entries = run_entries(s1_run)
    units: dict[str, list[dict[str, Any]]] = {}
    for s2 in run_entries(s2_run):
        t2 = parse_time(s2["sensing_time"])
        s1 = min(
            (e for e in s1_entries if e["patch_id"] == s2["patch_id"]),
            key=lambda e: (abs(delta_hours(t2, parse_time(e["sensing_time"]))), e["unit_id"]),
        )
        unit_dir = outdir / "patches" / s2["unit_id"]
        unit_dir.mkdir(parents=True, exist_ok=True)
        entry = copy.deepcopy(s2)
        for src_run, src in ((s2_run, s2), (s1_run, s1)):
            mod = src["modality"]
            for key in (mod, f"{mod}_metadata"):
                rel = f"patches/{s2['unit_id']}/{Path(src['files'][key]).name}"
                shutil.copy2(src_run / src["files"][key], outdir / rel)
                entry["files"][key] = rel
        entry["modalities"]["S1"] = copy.deepcopy(s1["modalities"]["S1"])
        entry["pair"] = {"primary": "S2", "secondary": "S1",
                         "delta_t_hours": delta_hours(t2, parse_time(s1["sensing_time"]))}  # fmt: skip
        units.setdefault(s2["unit_id"], []).append(entry)
    entries = [e for unit_entries in units.values() for e in unit_entries]
    folder = RunFolder(outdir)
    write_catalog(folder, "pairs", commit_entries(outdir, entries))
    write_zarr_cube(folder, typed(entries), "pairs")
    return entries


def build_runs(demo_products: Path, base: Path) -> dict[str, Path]:
    """An S2 run, an S1 run and a paired run made from their entries, under ``base``."""
    s2 = build_run(demo_products, base / "s2", "s2")
    s1 = build_run(demo_products, base / "s1", "s1")
    (base / "pairs").mkdir()
    build_paired_run(s2, s1, base / "pairs")
    return {"s2": s2, "s1": s1, "pairs": base / "pairs"}


@pytest.fixture(scope="module")
def runs(demo_products: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_runs(demo_products, tmp_path_factory.mktemp("cube"))


def _read_cog(path: Path) -> tuple[np.ndarray, list[str]]:
    with rasterio.open(path) as src:
        return src.read(), list(src.descriptions)


def _assert_cube_equals_cogs(outdir: Path) -> int:
    """Every patch COG of every entry (each modality) equals its cell of the cube, NaN for NaN."""
    cube = RunFolder(outdir).cube_path
    grid = TargetGrid.from_dict(cube_attrs(cube)["senprep:grid"])
    groups = {m: xr.open_zarr(cube, group=m) for m in cube_attrs(cube)["senprep:modalities"]}
    checked = 0
    for entry in run_entries(outdir):
        for mod, about in entry["modalities"].items():
            data, names = _read_cog(outdir / entry["files"][mod])
            window = grid.window_of(TargetGrid.from_dict(entry["grid"]))
            rows, cols = window.slices()
            when = np.datetime64(parse_time(about["sensing_time"]), "ns")
            cell = groups[mod][mod].sel(time=when).isel(y=rows, x=cols)
            assert [str(b) for b in cell["band"].values] == names
            assert cell.dtype == np.float32
            assert np.array_equal(cell.values, data, equal_nan=True), f"{entry['unit_id']} {entry['patch_id']} {mod}"
            checked += 1
    return checked


@pytest.mark.parametrize("kind", ["s2", "s1"])
def test_cube_holds_exactly_the_cog_values(runs: dict[str, Path], kind: str) -> None:
    outdir = runs[kind]
    assert _assert_cube_equals_cogs(outdir) == len(run_entries(outdir)) > 0


@pytest.mark.parametrize("kind", ["s2", "s1"])
def test_cube_dims_coordinates_and_chunks(runs: dict[str, Path], kind: str) -> None:
    outdir = runs[kind]
    mod = kind.upper()
    entries = run_entries(outdir)
    ds = xr.open_zarr(RunFolder(outdir).cube_path, group=mod)
    var = ds[mod]
    assert var.dims == ("time", "band", "y", "x")
    # time: the distinct sensing times, sorted; band: the bands of the patches
    times = sorted({np.datetime64(parse_time(e["sensing_time"]), "ns") for e in entries})
    assert list(ds["time"].values) == times
    assert [str(b) for b in ds["band"].values] == entries[0]["bands"]
    # y / x: pixel centres of the union of the patch grids
    grids = [TargetGrid.from_dict(e["grid"]) for e in entries]
    left, top = min(g.left for g in grids), max(g.top for g in grids)
    assert ds["x"].values[0] == left + 5.0 and ds["y"].values[0] == top - 5.0
    assert np.all(np.diff(ds["x"].values) == 10.0) and np.all(np.diff(ds["y"].values) == -10.0)
    assert ds["x"].values[-1] == max(g.bounds.right for g in grids) - 5.0
    # one chunk = one patch: 1 time, all bands, the patch height and width
    height, width = entries[0]["grid"]["height"], entries[0]["grid"]["width"]
    assert var.encoding["chunks"] == (1, len(entries[0]["bands"]), height, width)
    assert var.dtype == np.float32 and np.isnan(var.encoding["_FillValue"])
    # the sample table: one written cell per entry, with its fractions
    assert int(ds["is_sample"].sum()) == len(entries)
    patch_ids = [str(p) for p in ds["patch_id"].values]
    for e in entries:
        ti = times.index(np.datetime64(parse_time(e["sensing_time"]), "ns"))
        pi = patch_ids.index(e["patch_id"])
        assert float(ds["valid_fraction"][ti, pi]) == e["valid_fraction"]
        assert str(ds["unit_id"].values[ti, pi]) == e["unit_id"]
        assert str(ds["product_ids"].values[ti]) == " ".join(e["product_ids"])
        assert str(ds["platform"].values[ti]) == e["platform"]
        window = TargetGrid(grids[0].epsg, 10.0, left, top, 1, 1).window_of(TargetGrid.from_dict(e["grid"]))
        assert (int(ds["patch_row_off"][pi]), int(ds["patch_col_off"][pi])) == (window.row_off, window.col_off)
    if kind == "s1":
        assert set(map(str, ds["orbit_direction"].values)) <= {"ascending", "descending"}
        assert all(int(v) > 0 for v in ds["relative_orbit"].values)


def test_cf_attributes_and_grid_mapping(runs: dict[str, Path]) -> None:
    cube = RunFolder(runs["s2"]).cube_path
    root = cube_attrs(cube)
    assert root["Conventions"] == "CF-1.8" and root["senprep:modalities"] == ["S2"]
    ds = xr.open_zarr(cube, group="S2")
    assert ds.attrs["Conventions"] == "CF-1.8"
    var = ds["S2"]
    assert var.attrs["grid_mapping"] == "spatial_ref"
    assert var.attrs["long_name"] == "Sentinel-2 L2A patches" and var.attrs["units"] == "1"
    ref = ds["spatial_ref"].attrs
    assert CRS.from_wkt(ref["crs_wkt"]).to_epsg() == 32630 == CRS.from_wkt(ref["spatial_ref"]).to_epsg()
    assert ref["grid_mapping_name"] == "transverse_mercator"
    gt = [float(v) for v in ref["GeoTransform"].split()]
    assert gt == [float(ds["x"][0]) - 5.0, 10.0, 0.0, float(ds["y"][0]) + 5.0, 0.0, -10.0]
    assert ds["x"].attrs["standard_name"] == "projection_x_coordinate" and ds["x"].attrs["units"] == "m"
    assert ds["y"].attrs["standard_name"] == "projection_y_coordinate"
    assert ds["time"].attrs["standard_name"] == "time"
    kinds = dict(zip(map(str, ds["band"].values), map(str, ds["band_kind"].values), strict=True))
    assert kinds["B02"] == "reflectance" and kinds["scl_cloud_shadow"] == "mask"
    s1 = xr.open_zarr(RunFolder(runs["s1"]).cube_path, group="S1")
    assert dict(zip(map(str, s1["band"].values), map(str, s1["band_units"].values), strict=True)) == {
        "sigma0_VV_dB": "dB", "sigma0_VH_dB": "dB", "local_incidence_angle": "degree"}  # fmt: skip
    tree = xr.open_datatree(cube, engine="zarr")
    assert set(tree.children) == {"S2"}


def test_paired_cube_has_both_modalities_and_delta_t(runs: dict[str, Path]) -> None:
    outdir = runs["pairs"]
    assert cube_attrs(RunFolder(outdir).cube_path)["senprep:modalities"] == ["S1", "S2"]
    s2 = xr.open_zarr(RunFolder(outdir).cube_path, group="S2")
    s1 = xr.open_zarr(RunFolder(outdir).cube_path, group="S1")
    assert s2.attrs["senprep:pair_modality"] == "S1"
    entries = run_entries(outdir)
    for e in entries:
        ti = list(s2["time"].values).index(np.datetime64(parse_time(e["sensing_time"]), "ns"))
        pair_time = np.datetime64(parse_time(e["modalities"]["S1"]["sensing_time"]), "ns")
        assert s2["pair_time"].values[ti] == pair_time
        assert float(s2["delta_t_hours"][ti]) == pytest.approx(e["pair"]["delta_t_hours"], abs=1e-6)
    # partner cells are stored but are not samples of their own; one S1 acquisition serves two S2 dates
    assert int(s2["is_sample"].sum()) == len(entries) and int(s1["is_sample"].sum()) == 0
    assert s1.sizes["time"] < s2.sizes["time"]
    assert _assert_cube_equals_cogs(outdir) == 2 * len(entries)


def test_unchanged_run_is_not_rewritten_and_a_change_is(runs: dict[str, Path], tmp_path: Path) -> None:
    outdir = tmp_path / "run"
    shutil.copytree(runs["s2"], outdir)
    cube = RunFolder(outdir).cube_path
    entries = run_entries(outdir)
    before = cube_attrs(cube)["senprep:fingerprint"]
    marker = cube / "S2" / ".zattrs"
    mtime = marker.stat().st_mtime_ns
    assert write_zarr_cube(RunFolder(outdir), typed(entries), "s2") == cube
    assert marker.stat().st_mtime_ns == mtime  # up to date: untouched
    write_zarr_cube(RunFolder(outdir), typed(entries[:-1]), "s2")  # one patch fewer: rewritten
    assert cube_attrs(cube)["senprep:fingerprint"] != before
    ds = xr.open_zarr(cube, group="S2")
    assert int(ds["is_sample"].sum()) == len(entries) - 1
    assert sorted(p.name for p in outdir.iterdir() if "zarr" in p.name) == ["cube.zarr"]


def test_failed_write_keeps_the_old_cube_and_leaves_no_temp(runs: dict[str, Path], tmp_path: Path) -> None:
    outdir = tmp_path / "run"
    shutil.copytree(runs["s2"], outdir)
    entries = run_entries(outdir)
    before = cube_attrs(RunFolder(outdir).cube_path)["senprep:fingerprint"]
    broken = copy.deepcopy(entries)
    (outdir / broken[-1]["files"]["S2"]).write_bytes(b"not a tiff")  # a damaged patch, read last
    with pytest.raises(OutputError, match="cannot read patch"):
        write_zarr_cube(RunFolder(outdir), typed(broken), "s2")
    assert cube_attrs(RunFolder(outdir).cube_path)["senprep:fingerprint"] == before
    assert sorted(p.name for p in outdir.iterdir() if "zarr" in p.name) == ["cube.zarr"]
    (outdir / "cube.tmp-999999.zarr").mkdir()  # a stray temp folder from a killed writer is cleaned up
    write_zarr_cube(RunFolder(outdir), typed(entries[:1]), "s2")
    assert sorted(p.name for p in outdir.iterdir() if "zarr" in p.name) == ["cube.zarr"]


def test_entries_that_cannot_form_one_cube_are_refused(runs: dict[str, Path]) -> None:
    outdir = runs["s2"]
    with pytest.raises(OutputError, match="no patches"):
        write_zarr_cube(RunFolder(outdir), typed([]), "s2")
    entries = copy.deepcopy(run_entries(outdir))
    entries[0]["grid"]["epsg"] = 32631
    with pytest.raises(OutputError, match="one grid per run"):
        write_zarr_cube(RunFolder(outdir), typed(entries), "s2")
    entries = copy.deepcopy(run_entries(outdir))
    del entries[0]["sensing_time"], entries[0]["modalities"]["S2"]["sensing_time"]
    with pytest.raises(OutputError, match="lacks"):
        write_zarr_cube(RunFolder(outdir), typed(entries), "s2")


def test_missing_zarr_package_is_a_clear_error(runs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zarr", None)  # as if zarr were not installed
    with pytest.raises(ConfigError, match=r"pip install 'zarr>=3'"):
        write_zarr_cube(RunFolder(runs["s2"]), RunFolder(runs["s2"]).entries(), "s2")


def _record_writers(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, str]]:
    """Who writes each cube slot (a unit id, or "driver") in this process (a serial run)."""
    import senprep_core.outputs.zarr_cube as zarr_cube

    writers: list[tuple[str, int, str]] = []
    original = zarr_cube.write_marker

    def record(store: Path, modality: str, index: int, token: str, writer: str) -> None:
        writers.append((modality, index, writer))
        original(store, modality, index, token, writer)

    monkeypatch.setattr(zarr_cube, "write_marker", record)
    return writers


def test_units_fill_their_own_slots_in_place_and_the_driver_none(
    scale_products: Path, scale_serial_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import scale_config_dict

    writers = _record_writers(monkeypatch)
    outdir = tmp_path / "run"
    result = run(parse_config(scale_config_dict()), outdir, sources=[f"local:{scale_products}"])
    assert result.status == "complete"
    units = {r.unit_id for r in result.results}
    assert len(writers) == len(units) and {w for _, _, w in writers} == units  # one slot per unit, no driver
    assert _assert_cube_equals_cogs(outdir) == result.patches_written
    assert not RunFolder(outdir).cube_staging_path.exists()
    cube = xr.open_zarr(RunFolder(outdir).cube_path, group="S2")
    assert cube.sizes["time"] == len(units) and np.all(np.diff(cube["time"].values) > np.timedelta64(0))
    assert (cube["unit_id"].values != "").sum() == result.patches_written


def test_shared_slots_are_filled_by_the_driver_and_rerun_rewrites_nothing(
    demo_products: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from senprep_core.demo.catalog import DEMO_ROI_GEOJSON
    from senprep_core.planning import make_plan

    parsed = parse_config({"name": "shared", "roi": DEMO_ROI_GEOJSON, "dates": ["2021-01-01", "2023-12-31"],
                           "mode": "s2_with_closest_s1", "pairing": {"max_days": 120},
                           "sentinel2": {"bands": ["B04"]}, "sentinel1": {"bands": ["sigma0_VV_dB"]},
                           "output": {"zarr": True, "min_valid_fraction": 0.0}})  # fmt: skip
    plan = make_plan(parsed, sources=[f"local:{demo_products}"])
    assert plan.cube is not None
    shared = {(m.name, s.index) for m in plan.cube.modalities for s in m.slots if s.owner is None}
    assert shared  # one S1 acquisition is the partner of several S2 dates
    writers = _record_writers(monkeypatch)
    outdir = tmp_path / "run"
    result = run(parsed, outdir, sources=[f"local:{demo_products}"])
    assert result.status == "complete" and result.patches_written > 0
    by_driver = {(m, i) for m, i, w in writers if w == "driver"}
    assert by_driver <= shared and all(w != "driver" for m, i, w in writers if (m, i) not in shared)
    assert _assert_cube_equals_cogs(outdir) == result.patches_written * 2  # each sample holds S2 and S1
    before = (RunFolder(outdir).cube_path / ".zattrs").read_bytes()
    writers.clear()
    again = run(parsed, outdir, sources=[f"local:{demo_products}"])
    assert again.status == "complete" and writers == []  # every unit skipped and the cube up to date
    assert (RunFolder(outdir).cube_path / ".zattrs").read_bytes() == before
