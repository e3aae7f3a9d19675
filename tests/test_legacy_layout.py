"""The 2022 folder layout: exact paths and names, hard links (or copies), idempotent re-runs, stale files removed."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from senprep_core.config import parse_config
from senprep_core.demo.catalog import demo_runs
from senprep_core.errors import OutputError
from senprep_core.geo.grid import TargetGrid
from senprep_core.outputs import legacy_layout
from senprep_core.outputs.legacy_layout import legacy_tree, write_legacy_layout
from senprep_core.outputs.records import PatchEntry
from senprep_core.outputs.run_folder import RunFolder
from senprep_core.pipeline import run
from tests.conftest import make_demo_runs

S2_0420 = "S2B_MSIL2A_20220420T113619_N0400_R080_T30UVG_20220420T140000"
S1_0421 = "S1A_IW_GRDH_1SDV_20220421T062348_20220421T062350_042868_06CA51_B12D"


@pytest.fixture(scope="module")
def runs(demo_products: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The demo's S2 (legacy-form config, name "demo") and S1 (name "demo-s1") runs, made by the pipeline."""
    return make_demo_runs(demo_products, tmp_path_factory.mktemp("legacy-runs"))


def _entries(run_dir: Path) -> list[dict[str, Any]]:
    """The entries exactly as the manifests hold them."""
    return [e for m in sorted(run_dir.glob("patches/*/unit.json")) for e in json.loads(m.read_text())["patches"]]


def _typed(entries: list[dict[str, Any]]) -> list[PatchEntry]:
    return [PatchEntry.from_dict(e) for e in entries]


def _tree(entries: list[dict[str, Any]], name: str) -> list[str]:
    return legacy_tree(_typed(entries), name)


def _write(outdir: Path, entries: list[dict[str, Any]], name: str) -> list[Path]:
    return write_legacy_layout(RunFolder(outdir), _typed(entries), name)


def _expected_from_sidecars(run_dir: Path, name: str, modality: str) -> list[str]:
    """The documented names, rebuilt independently from each patch's sidecar."""
    out = []
    for sidecar_path in sorted(run_dir.glob(f"patches/*/*_{modality}.json")):
        s = json.loads(sidecar_path.read_text())
        t = datetime.fromisoformat(s["sensing_time"].replace("Z", "+00:00"))
        monday = (t - timedelta(days=t.weekday())).strftime("%Y%m%d")
        product = s["product_ids"][0].replace("_", "-")
        w = s["window_in_roi_grid"]
        file_name = f"{modality}_{product}_{w['row_off']}_{w['col_off']}_{s['grid']['width']}x{s['grid']['height']}.tif"
        out.append(f"Sentinel_Patches/{name}/{monday}/ROI1/{modality}/Patches/{file_name}")  # one unit a week
    return sorted(out)


def _tree_on_disk(outdir: Path) -> list[str]:
    return sorted(p.relative_to(outdir).as_posix() for p in (outdir / "Sentinel_Patches").rglob("*") if p.is_file())


def test_s2_run_tree_has_the_documented_names(runs: dict[str, Path]) -> None:
    run_dir = runs["s2"]
    tree = _tree(_entries(run_dir), "demo")
    assert tree == _expected_from_sidecars(run_dir, "demo", "S2")
    assert len(tree) == len(list(run_dir.glob("patches/*/*_S2.tif"))) == 12
    # 2022-04-20 is a Wednesday: its week folder is Monday 2022-04-18; offsets are pixels in the ROI grid
    name = S2_0420.replace("_", "-")
    assert [p for p in tree if "/20220418/" in p] == [
        f"Sentinel_Patches/demo/20220418/ROI1/S2/Patches/S2_{name}_{row}_{col}_128x128.tif"
        for row, col in (("0", "0"), ("0", "123"), ("123", "0"), ("123", "123"))
    ]
    assert sorted({p.split("/")[2] for p in tree}) == ["20210510", "20220418", "20220725"]


def test_s1_only_run_uses_the_2022_single_sensor_names(runs: dict[str, Path]) -> None:
    run_dir = runs["s1"]
    tree = _tree(_entries(run_dir), "demo-s1")
    assert tree == _expected_from_sidecars(run_dir, "demo-s1", "S1")
    assert f"Sentinel_Patches/demo-s1/20220418/ROI1/S1/Patches/S1_{S1_0421.replace('_', '-')}_123_0_128x128.tif" in tree
    for path in tree:  # split on "_" as 2022 scripts did: S1, id, row, col, WxH.tif
        kind, product, row, col, size = Path(path).name.split("_")
        assert kind == "S1" and product.startswith("S1A-IW-GRDH") and row.isdigit() and col.isdigit()
        assert size == "128x128.tif"


def test_write_makes_hard_links_and_reruns_touch_nothing(runs: dict[str, Path], tmp_path: Path) -> None:
    outdir = Path(shutil.copytree(runs["s2"], tmp_path / "s2"))
    entries = _entries(outdir)
    paths = _write(outdir, entries, "demo")
    assert [p.relative_to(outdir).as_posix() for p in paths] == _tree_on_disk(outdir) == _tree(_entries(outdir), "demo")
    sources = {e["files"]["S2"] for e in entries}
    for path in paths:
        linked = [s for s in sources if os.path.samefile(outdir / s, path)]
        assert len(linked) == 1 and path.stat().st_nlink == 2
    stamps = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in paths}
    assert _write(outdir, entries, "demo") == paths
    assert stamps == {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in paths}
    assert not [p for p in outdir.rglob("*") if ".tmp-" in p.name]
    # the normal outputs are all still there
    assert (outdir / "catalog.json").is_file() and len(list(outdir.glob("patches/*/*_S2.tif"))) == len(paths)


def test_rewritten_patch_is_relinked(runs: dict[str, Path], tmp_path: Path) -> None:
    outdir = Path(shutil.copytree(runs["s1"], tmp_path / "s1"))
    entries = _entries(outdir)
    paths = _write(outdir, entries, "demo-s1")
    source = outdir / entries[0]["files"]["S1"]
    fresh = source.with_name("fresh.tif")  # a rebuild replaces the COG by rename: a new inode
    shutil.copyfile(source, fresh)
    os.replace(fresh, source)
    target = next(p for p in paths if p.stat().st_nlink == 1)
    _write(outdir, entries, "demo-s1")
    assert os.path.samefile(source, target)


def test_copies_when_hard_links_are_impossible(
    runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outdir = Path(shutil.copytree(runs["s1"], tmp_path / "s1"))
    entries = _entries(outdir)

    def no_link(src: object, dst: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(legacy_layout.os, "link", no_link)
    paths = _write(outdir, entries, "demo-s1")
    by_name = {p.name: p for p in paths}
    for entry in entries:
        window = entry["window"]
        name = f"S1_{entry['product_ids'][0].replace('_', '-')}_{window['row_off']}_{window['col_off']}_128x128.tif"
        legacy = [p for n, p in by_name.items() if n == name]
        assert len(legacy) == 1
        assert legacy[0].stat().st_nlink == 1
        assert legacy[0].read_bytes() == (outdir / entry["files"]["S1"]).read_bytes()
    stamps = {p: p.stat().st_mtime_ns for p in paths}
    _write(outdir, entries, "demo-s1")
    assert stamps == {p: p.stat().st_mtime_ns for p in paths}


def test_stale_legacy_files_are_removed_and_others_kept(runs: dict[str, Path], tmp_path: Path) -> None:
    outdir = Path(shutil.copytree(runs["s2"], tmp_path / "s2"))
    entries = _entries(outdir)
    _write(outdir, entries, "demo")
    notes = outdir / "Sentinel_Patches" / "demo" / "20220418" / "my-notes.txt"
    notes.write_text("kept")
    kept = [e for e in entries if e["unit_id"] != S2_0420]
    paths = _write(outdir, kept, "demo")
    assert _tree_on_disk(outdir) == sorted([p.relative_to(outdir).as_posix() for p in paths] + [
        notes.relative_to(outdir).as_posix()])  # fmt: skip
    assert not (outdir / "Sentinel_Patches" / "demo" / "20220418" / "ROI1").exists()
    assert notes.read_text() == "kept"
    _write(outdir, [], "demo")
    assert _tree_on_disk(outdir) == [notes.relative_to(outdir).as_posix()]
    assert not (outdir / "Sentinel_Patches" / "demo" / "20210510").exists()


# --- hand-made entries: pairs, week folders, ROI numbers -------------------------------------------------


def _entry(
    unit: str,
    patch: tuple[int, int],
    times: dict[str, str],
    primary: str,
    products: dict[str, list[str]],
    size: tuple[int, int] = (256, 256),
) -> dict[str, Any]:
    """A manifest entry as the pipeline writes it (paired when ``times`` has both sensors)."""
    row, col = patch
    pid = f"r{row // size[0]:03d}_c{col // size[1]:03d}"
    mods = {m: {"sensing_time": t, "product_ids": products[m], "bands": [], "valid_fraction": 1.0}
            for m, t in times.items()}  # fmt: skip
    entry: dict[str, Any] = {
        "unit_id": unit,
        "patch_id": pid,
        "modality": primary,
        "files": {
            k: f"patches/{unit}/{pid}_{m}.{ext}" for m in times for k, ext in ((m, "tif"), (f"{m}_metadata", "json"))
        },
        "grid": TargetGrid(32630, 10.0, col * 10.0, -row * 10.0, size[1], size[0]).to_dict(),
        "window": {"row_off": row, "col_off": col, "height": size[0], "width": size[1]},
        "sensing_time": times[primary],
        "product_ids": products[primary],
        "modalities": mods,
    }
    if len(times) == 2:
        entry["pair"] = {"primary": primary, "secondary": "S1" if primary == "S2" else "S2", "delta_t_hours": 0.0}
    return entry


UUIDISH = {"S1": ["S1B_IW_GRDH_1SDV_20200503T175025_20200503T175050_021440_028B4E_1A2B"],
           "S2": ["S2A_MSIL2A_20200504T113321_N0214_R080_T30UVG_20200504T121314"]}  # fmt: skip
T1 = "S1B-IW-GRDH-1SDV-20200503T175025-20200503T175050-021440-028B4E-1A2B"
T2 = "S2A-MSIL2A-20200504T113321-N0214-R080-T30UVG-20200504T121314"


def test_s2_primary_pair_goes_to_the_s2_week_in_both_folders() -> None:
    # the S1 was sensed on Sunday 3 May 2020, the S2 (primary) on Monday 4 May: the week of the S2 counts
    times = {"S2": "2020-05-04T11:33:21Z", "S1": "2020-05-03T17:50:25Z"}
    entries = [_entry("u1", (r, c), times, "S2", UUIDISH) for r, c in ((0, 0), (0, 256), (256, 0))]
    base = "Sentinel_Patches/glasgow/20200504/ROI1"
    offsets = ((0, 0), (0, 256), (256, 0))
    assert _tree(entries, "glasgow") == sorted(
        f"{base}/{m}/Patches/S1_{T1}_S2_{T2}_{r}_{c}_256x256.tif" for m in ("S1", "S2") for r, c in offsets
    )
    files = legacy_layout.legacy_files(_typed(entries), "glasgow")
    assert {f.source for f in files if "/S1/Patches/" in f.path} == {
        f"patches/u1/{e['patch_id']}_S1.tif" for e in entries
    }


def test_s1_primary_pair_goes_to_the_s1_week() -> None:
    times = {"S1": "2020-05-03T17:50:25Z", "S2": "2020-05-04T11:33:21Z"}
    tree = _tree([_entry("u1", (0, 0), times, "S1", UUIDISH)], "glasgow")
    assert tree == [
        f"Sentinel_Patches/glasgow/20200427/ROI1/S1/Patches/S1_{T1}_S2_{T2}_0_0_256x256.tif",
        f"Sentinel_Patches/glasgow/20200427/ROI1/S2/Patches/S1_{T1}_S2_{T2}_0_0_256x256.tif",
    ]


def test_roi_numbers_rank_the_units_of_a_week_by_area_then_time() -> None:
    s2 = {"S2": ["S2A_MSIL2A_20200505T000000_N0214_R080_T30UVG_20200505T000001"]}
    small = [_entry("small", (0, 0), {"S2": "2020-05-05T11:00:00Z"}, "S2", s2, (10, 10))]
    big = [_entry("big", (r, 0), {"S2": "2020-05-07T11:00:00Z"}, "S2", {"S2": ["B"]}, (10, 10)) for r in (0, 10)]
    tie_early = [_entry("tie-early", (0, 0), {"S2": "2020-05-06T11:00:00Z"}, "S2", {"S2": ["E"]}, (10, 10))]
    next_week = [_entry("next", (0, 0), {"S2": "2020-05-11T00:00:00Z"}, "S2", {"S2": ["N"]}, (10, 10))]
    tree = _tree(small + big + tie_early + next_week, "x")
    assert tree == [
        "Sentinel_Patches/x/20200504/ROI1/S2/Patches/S2_B_0_0_10x10.tif",
        "Sentinel_Patches/x/20200504/ROI1/S2/Patches/S2_B_10_0_10x10.tif",
        "Sentinel_Patches/x/20200504/ROI2/S2/Patches/S2_S2A-MSIL2A-20200505T000000-N0214-R080-T30UVG-20200505T000001_0_0_10x10.tif",
        "Sentinel_Patches/x/20200504/ROI3/S2/Patches/S2_E_0_0_10x10.tif",
        "Sentinel_Patches/x/20200511/ROI1/S2/Patches/S2_N_0_0_10x10.tif",
    ]  # fmt: skip


def test_several_products_of_a_sensor_are_joined_and_long_names_shortened() -> None:
    two = {"S2": ["S2A_MSIL2A_20200504T113321_N0214_R080_T30UVG_20200504T121314",
                  "S2A_MSIL2A_20200504T113321_N0214_R080_T30VVH_20200504T121314"]}  # fmt: skip
    [path] = _tree([_entry("u", (0, 0), {"S2": "2020-05-04T11:33:21Z"}, "S2", two)], "x")
    assert Path(path).name == f"S2_{T2}+{T2.replace('T30UVG', 'T30VVH')}_0_0_256x256.tif"
    many = {"S1": [UUIDISH["S1"][0]] * 3, "S2": two["S2"] * 2}
    times = {"S2": "2020-05-04T11:33:21Z", "S1": "2020-05-03T17:50:25Z"}
    [path, _] = _tree([_entry("u", (0, 0), times, "S2", many)], "x")
    name = Path(path).name
    assert len(name.encode()) <= 255
    assert name.startswith(f"S1_{T1}+") and f"_S2_{T2}+" in name and name.endswith("_0_0_256x256.tif")
    assert len(name.split("_")) == 7  # still S1, id, S2, id, row, col, size


def test_entries_without_window_or_with_clashing_names_are_refused() -> None:
    entry = _entry("u", (0, 0), {"S2": "2020-05-04T11:33:21Z"}, "S2", UUIDISH)
    with pytest.raises(OutputError, match="window"):
        _tree([{k: v for k, v in entry.items() if k != "window"}], "x")
    twin = {**entry, "patch_id": "r009_c009", "files": {"S2": "patches/u/other.tif", "S2_metadata": "patches/u/o.json"}}
    with pytest.raises(OutputError, match="would both become"):
        _tree([entry, twin], "x")


def test_a_legacy_layout_run_writes_both_trees(demo_products: Path, tmp_path: Path) -> None:
    """``output.layout: legacy`` through the pipeline: the normal outputs plus the 2022 tree."""
    name, data = demo_runs(demo_products)[1]
    config = parse_config(data)
    config = dataclasses.replace(config, output=dataclasses.replace(config.output, layout="legacy"))
    outdir = tmp_path / name
    result = run(config, outdir, sources=[f"local:{demo_products}"])
    assert result.status == "complete"
    assert (outdir / "catalog.json").is_file() and list(outdir.glob("patches/*/unit.json"))
    assert _tree_on_disk(outdir) == _tree(_entries(outdir), config.name) != []


def test_units_place_their_links_and_the_driver_drops_folders_no_unit_owns(
    scale_products: Path, tmp_path: Path
) -> None:
    from senprep_core.config import parse_config
    from senprep_core.pipeline import run
    from tests.conftest import scale_config_dict

    config = parse_config(scale_config_dict(output={"min_valid_fraction": 0.0, "layout": "legacy"}))
    outdir = tmp_path / "run"
    result = run(config, outdir, sources=[f"local:{scale_products}"])
    assert result.status == "complete"
    assert all(u.legacy_dir for u in result.plan.units)
    tree = sorted(p for p in (outdir / "Sentinel_Patches").rglob("*.tif"))
    assert len(tree) == result.patches_written
    assert all(p.stat().st_nlink == 2 for p in tree)  # a hard link to its patch COG
    stray = outdir / "Sentinel_Patches" / "scale" / "20200106" / "ROI3" / "S2" / "Patches" / "S2_x_0_0_64x64.tif"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"left by an earlier run")
    inodes = {p: p.stat().st_ino for p in tree}
    again = run(config, outdir, sources=[f"local:{scale_products}"])
    assert again.status == "complete" and all(r.status == "skipped" for r in again.results)
    assert not (outdir / "Sentinel_Patches" / "scale" / "20200106").exists()
    assert {p: p.stat().st_ino for p in tree} == inodes  # the units' own links are left as they are
