"""N-date Sentinel-1 stacks (``s1_multitemporal`` with ``multitemporal.count``) and the Quegan & Yu filter.

Planning picks the acquisitions of one relative orbit and pass; a 5-date stack of demo products runs end to
end on one grid (identical across dates and executors) into a Zarr time axis of 5 and one STAC Item; the
multi-temporal filter raises the ENL of 4.4-look speckle by 3x or more, keeps the mean within 1 % and keeps
a point target present on every date.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio

from senprep_core.catalog.local import _s1_record
from senprep_core.config import parse_config, unused_settings
from senprep_core.demo.s1 import make_s1_product, s1_ground_truth
from senprep_core.demo.s1_spec import S1DemoSpec
from senprep_core.errors import ConfigError
from senprep_core.executors import ProcessExecutor
from senprep_core.fetch.cache import default_cache_dir
from senprep_core.pipeline import run
from senprep_core.planning import unit_spec
from senprep_core.productfs import ProductLocation
from senprep_core.unit.s1_source import S1Source
from senprep_core.unit.s1_stack import read_filtered_stack
from tests.conftest import run_files
from tests.test_modes import _config, _s1, plan_units
from tests.test_s1_closed_loop import _peak_offsets

N_DATES = 5
FIRST = datetime(2022, 3, 2, 17, 41, 35)
BASE = S1DemoSpec(start_time=FIRST, centre_lon=-4.25, centre_lat=55.86, lines=700, samples=600, nesz_db=None,
                  incidence_near=36.0, seed=40)  # fmt: skip


def _flat(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    return np.full(np.shape(lat), 0.1)


def _stack_specs(base: S1DemoSpec) -> list[S1DemoSpec]:
    """``N_DATES`` acquisitions of one orbit, 12 days apart, each with its own speckle."""
    return [replace(base, start_time=base.start_time + timedelta(days=12 * k), seed=base.seed + k)
            for k in range(N_DATES)]  # fmt: skip


def _roi(spec: S1DemoSpec, half: float = 0.22) -> dict[str, Any]:
    truth = s1_ground_truth(spec)
    lons = [p[0] for p in truth.footprint]
    lats = [p[1] for p in truth.footprint]
    cx, cy = (min(lons) + max(lons)) / 2, (min(lats) + max(lats)) / 2
    hx, hy = (max(lons) - min(lons)) * half, (max(lats) - min(lats)) * half
    ring = [[cx - hx, cy - hy], [cx + hx, cy - hy], [cx + hx, cy + hy], [cx - hx, cy + hy], [cx - hx, cy - hy]]
    return {"type": "Polygon", "coordinates": [ring]}


def _stack_config(specs: list[S1DemoSpec], **extra: Any) -> dict[str, Any]:
    first, last = specs[0].start_time.date(), specs[-1].start_time.date()
    return {"name": "stack", "roi": _roi(specs[0]), "dates": [[str(first), str(last)]], "mode": "s1_multitemporal",
            "patches": {"size": [64, 64]}, "multitemporal": {"count": N_DATES, "speckle_filter": "quegan"},
            "sentinel1": {"bands": ["sigma0_VV", "sigma0_VH_dB"], "speckle_filter": "none"}, **extra}  # fmt: skip


# ----- planning ----------------------------------------------------------------------------------


def test_count_makes_stacks_of_one_orbit_newest_first() -> None:
    s1 = [_s1(24 * 12 * k) for k in range(5)] + [_s1(30, orbit=23), _s1(24 * 12 * 2 + 3, direction="ascending")]
    late = {"dates": [["2022-05-20", "2022-06-10"]]}  # only the newest two of orbit 96 inside
    units, dropped = plan_units(_config("s1_multitemporal", multitemporal={"count": 5}, **late), s1)
    (unit,) = units
    assert unit.kind == "s1_stack" and unit.roles == ("S1", "S1_t1", "S1_t2", "S1_t3", "S1_t4")
    assert [p.product_id for p in unit.products] == [s1[k].product_id for k in (4, 3, 2, 1, 0)]
    assert unit.delta_t_hours == pytest.approx(-288.0)
    assert "stack5_" in unit.unit_id and len(unit.unit_id) < 120
    reasons = {d.product_id: d.reason for d in dropped}
    assert "only 3 earlier acquisition(s) of relative orbit 96" in reasons[s1[3].product_id]
    every = [["2022-04-15", "2022-06-10"]]
    units, _ = plan_units(_config("s1_multitemporal", multitemporal={"count": 3}, dates=every), s1)
    assert [len(u.products) for u in units] == [3, 3, 3]  # the three newest of orbit 96 each with two before
    units, dropped = plan_units(_config("s1_multitemporal", multitemporal={"count": "all"}, dates=every), s1)
    assert sorted(len(u.products) for u in units) == [5]  # orbit 96 descending; orbit 23 and the ascending alone
    assert {d.product_id for d in dropped} == {s1[5].product_id, s1[6].product_id}
    pair, _ = plan_units(_config("s1_multitemporal", dates=[["2022-05-02", "2022-05-02"]]), s1[:2])
    assert pair[0].roles == ("S1", "S1_previous")  # count 2 (the default): the 2022 pair, unchanged


def test_stack_search_reaches_back_far_enough() -> None:
    from senprep_core.pairing import search_padding

    before, after = search_padding(_config("s1_multitemporal", multitemporal={"count": 5}))
    assert before >= timedelta(days=4 * 12) and after == timedelta(0)
    before, _ = search_padding(_config("s1_multitemporal", multitemporal={"count": "all"}))
    assert before == timedelta(0)


# ----- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key", "needle"),
    [
        ({"count": 1}, "multitemporal.count", "from 2 to"),
        ({"count": 2.5}, "multitemporal.count", "whole number"),
        ({"count": "some"}, "multitemporal.count", "'all'"),
        ({"count": True}, "multitemporal.count", "whole number"),
        ({"speckle_filter": "lee"}, "multitemporal.speckle_filter", "none, quegan"),
        ({"window": 4}, "multitemporal.window", "odd"),
        ({"window": "7"}, "multitemporal.window", "odd"),
        ({"cuont": 5}, "multitemporal.cuont", "did you mean 'count'"),
    ],
)
def test_multitemporal_keys_are_checked_with_clear_errors(section: dict[str, Any], key: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        _config("s1_multitemporal", multitemporal=section)
    assert info.value.key == key and needle in str(info.value)


def test_multitemporal_settings_round_trip_and_warn_when_unused() -> None:
    config = _config("s1_multitemporal", multitemporal={"count": "all", "speckle_filter": "quegan", "window": 9})
    again = parse_config(config.to_dict())
    assert again.multitemporal == config.multitemporal and again.fingerprint() == config.fingerprint()
    assert config.fingerprint() != _config("s1_multitemporal").fingerprint()
    assert unit_spec(config).s1.stack_filter is not None and unit_spec(config).s1.stack_filter.window == 9
    other = _config("s1_only", multitemporal={"count": 4})
    assert any("multitemporal" in w for w in unused_settings(other))
    assert unit_spec(other).s1.stack_filter is None
    with pytest.raises(ConfigError, match="native chain"):
        _config("s1_multitemporal", multitemporal={"speckle_filter": "quegan"}, sentinel1={"backend": "snap"})


# ----- the filter on demo products -----------------------------------------------------------------


def _sources(specs: list[S1DemoSpec], folder: Path, config: dict[str, Any]) -> list[S1Source]:
    spec = unit_spec(parse_config(config))
    records = [_s1_record(ProductLocation.open(make_s1_product(s, folder)), "local") for s in specs]
    return [S1Source(r, "stack", spec, default_cache_dir(), modality=m)
            for r, m in zip(reversed(records), ("S1", "S1_t1", "S1_t2", "S1_t3", "S1_t4"), strict=True)]  # fmt: skip


def _enl(values: np.ndarray) -> float:
    v = values[np.isfinite(values)]
    return float(v.mean() ** 2 / v.var())


def test_quegan_filter_raises_the_enl_3x_and_keeps_the_mean(tmp_path: Path) -> None:
    specs = _stack_specs(replace(BASE, sigma0=_flat, dem="flat"))
    config = _stack_config(specs)
    config["sentinel1"] = {"bands": ["sigma0_VV"], "speckle_filter": "none", "resampling": "nearest"}
    sources = _sources(specs, tmp_path, config)
    grid = sources[0].grid
    filtered = read_filtered_stack(sources, sources[0].stack_filter, grid)  # type: ignore[arg-type]
    raw = [s.read_block(grid) for s in sources]  # the stack filter replaces the single-date one: unfiltered
    enl_raw = _enl(raw[0].data[0])
    gains = [_enl(f.data[0]) / _enl(r.data[0]) for f, r in zip(filtered, raw, strict=True)]
    means = [float(np.nanmean(f.data[0])) / 0.1 - 1.0 for f in filtered]
    assert enl_raw == pytest.approx(4.4, rel=0.08)  # nearest sampling keeps the GRD's looks
    assert min(gains) >= 3.0, gains
    assert max(abs(m) for m in means) < 0.01, means
    raw_means = [float(np.nanmean(r.data[0])) / 0.1 - 1.0 for r in raw]
    assert max(abs(m) for m in raw_means) < 0.01, raw_means  # the truth itself is met without the filter


def test_quegan_filter_keeps_a_point_target_present_on_every_date(tmp_path: Path) -> None:
    specs = _stack_specs(replace(BASE, lines=1500, samples=1200))  # the default scene: point targets
    config = _stack_config(specs)
    config["roi"] = _roi(specs[0], half=0.28)
    config["sentinel1"] = {"bands": ["sigma0_VV"], "speckle_filter": "none"}
    sources = _sources(specs, tmp_path, config)
    grid = sources[0].grid
    filtered = read_filtered_stack(sources, sources[0].stack_filter, grid)  # type: ignore[arg-type]
    average = np.nanmean(np.stack([s.read_block(grid).data[0] for s in sources]), axis=0)
    truth = s1_ground_truth(specs[-1])
    errors = _peak_offsets(filtered[0].data[0], sources[0], truth.point_targets)
    assert len(errors) >= 3 and max(errors) < 0.5, errors
    peaks_ratio = []
    for image in (filtered[0].data[0], average):
        peaks_ratio.append(float(np.nanmax(image)))
    assert 10 * math.log10(peaks_ratio[0] / peaks_ratio[1]) == pytest.approx(0.0, abs=1.0)


# ----- a 5-date stack end to end --------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("stack")
    specs = _stack_specs(BASE)
    for spec in specs:
        make_s1_product(spec, root / "products")
    data = _stack_config(specs, output={"zarr": True, "stac": True})
    outdir = root / "serial"
    result = run(parse_config(data), outdir, sources=[f"local:{root / 'products'}"])
    assert result.status == "complete", [r.to_dict() for r in result.results]
    return root, outdir, data


def test_five_date_stack_writes_every_date_on_one_grid(stack_run: tuple[Path, Path, dict[str, Any]]) -> None:
    _root, outdir, _data = stack_run
    (manifest_path,) = list(outdir.glob("patches/*/unit.json"))
    manifest = json.loads(manifest_path.read_text())
    assert manifest["status"] == "done" and len(manifest["products"]) == N_DATES
    entries = manifest["patches"]
    assert entries
    for entry in entries:
        assert sorted(entry["modalities"]) == ["S1", "S1_t1", "S1_t2", "S1_t3", "S1_t4"]
        shapes = set()
        for key in entry["modalities"]:
            with rasterio.open(outdir / entry["files"][key]) as src:
                shapes.add((tuple(src.transform), src.shape, src.crs.to_epsg()))
        assert len(shapes) == 1  # identical grid across dates
        sidecar = json.loads((outdir / entry["files"]["S1_t4_metadata"]).read_text())
        assert sidecar["stack"] == {"index": 4, "size": 5, "delta_t_hours": pytest.approx(-4 * 288.0, abs=0.01)}
        assert sidecar["processing"]["multitemporal_filter"] == {"name": "quegan_yu", "window": 7}


def test_five_date_stack_has_a_zarr_time_axis_of_five(stack_run: tuple[Path, Path, dict[str, Any]]) -> None:
    import xarray as xr

    _root, outdir, _data = stack_run
    ds = xr.open_zarr(outdir / "cube.zarr", group="S1")
    assert ds.sizes["time"] == N_DATES
    times = ds["time"].values
    assert np.all(np.diff(times) == np.timedelta64(12, "D"))
    assert set(ds["relative_orbit"].values.tolist()) == {_stack_specs(BASE)[0].relative_orbit}
    cube = ds["S1"].values
    assert np.isfinite(cube).any(axis=(1, 2, 3)).all()  # every date holds data
    assert int(ds["is_sample"].values.sum()) == ds.sizes["patch"]  # the newest date is the sample


def test_five_date_stack_is_one_stac_item_spanning_the_dates(stack_run: tuple[Path, Path, dict[str, Any]]) -> None:
    _root, outdir, _data = stack_run
    items = [json.loads(p.read_text()) for p in sorted((outdir / "items").glob("*.json"))]
    assert items and all(i["type"] == "Feature" for i in items)
    collection = json.loads((outdir / "collections" / "sentinel-1" / "collection.json").read_text())
    assert len(collection["extent"]["temporal"]["interval"][0]) == 2
    for item in items:
        props = item["properties"]
        assert [m["modality"] for m in props["senprep:stack"]] == ["S1", "S1_t1", "S1_t2", "S1_t3", "S1_t4"]
        assert props["datetime"] == props["end_datetime"] and props["start_datetime"] < props["end_datetime"]
        assert {k for k in item["assets"] if not k.endswith("_metadata")} == {"S1", "S1_t1", "S1_t2", "S1_t3", "S1_t4"}
        assert len({item["assets"][k]["datetime"] for k in ("S1", "S1_t1", "S1_t2", "S1_t3", "S1_t4")}) == 5


def test_five_date_stack_is_byte_identical_in_worker_processes(stack_run: tuple[Path, Path, dict[str, Any]]) -> None:
    root, outdir, data = stack_run
    executor = ProcessExecutor(2)
    try:
        result = run(parse_config(data), root / "processes", sources=[f"local:{root / 'products'}"], executor=executor)
    finally:
        executor.close()
    assert result.status == "complete"
    ours, theirs = run_files(root / "processes"), run_files(outdir)
    assert ours.keys() == theirs.keys() and len(ours) > 100
    for name, content in ours.items():  # the cube's fingerprint stamps its inputs' mtimes: the rest is identical
        if name in ("cube.zarr/.zattrs", "cube.zarr/.zmetadata"):
            content, other = (re.sub(rb'"senprep:fingerprint": "[0-9a-f]+"', b"", c) for c in (content, theirs[name]))
            assert content == other, name
        else:
            assert content == theirs[name], name


# ----- time_series with Sentinel-1 -----------------------------------------------------------------


def test_time_series_stacks_s1_alone_or_each_s2_with_its_closest_s1() -> None:
    from tests.test_modes import _s2

    s1 = [_s1(24 * 6 * k + 6) for k in range(3)]  # 04-20 17:00, 04-26, 05-02
    s2 = [_s2(0), _s2(7), _s2(30)]  # 04-20 11:00, 04-27, 05-20
    config = _config("time_series", sentinel2={"bands": []}, dates=[["2022-04-15", "2022-04-30"]])
    assert config.reads_s1 and not config.reads_s2
    units, dropped = plan_units(config, s1 + s2)
    assert [u.kind for u in units] == ["s1", "s1"] and [u.products[0] for u in units] == s1[:2]
    assert {d.product_id for d in dropped} == {s1[2].product_id}
    both = _config("time_series", dates=[["2022-04-15", "2022-05-25"]], pairing={"max_days": 2})
    assert both.reads_s1 and both.reads_s2 and both.pairs_sensors
    units, dropped = plan_units(both, s1 + s2)
    assert [(u.kind, u.roles) for u in units] == [("s2+s1", ("S2", "S1"))] * 2
    assert [u.delta_t_hours for u in units] == [6.0, -18.0]  # S1 minus S2, hours
    assert any(d.product_id == s2[2].product_id and "no S1 within 2 days" in d.reason for d in dropped)
    s2_only = _config("time_series", sentinel1={"bands": []})
    assert not s2_only.reads_s1 and not s2_only.pairs_sensors
    assert s2_only.fingerprint() != both.fingerprint()
    with pytest.raises(ConfigError, match="time_series stacks Sentinel-2, Sentinel-1 or both"):
        _config("time_series", sentinel2={"bands": []}, sentinel1={"bands": []})


def test_demo_products_for_a_stack_config_share_one_orbit() -> None:
    from senprep_core.cli import _demo_request
    from senprep_core.demo.anywhere import demo_specs_for

    config = _config("s1_multitemporal", multitemporal={"count": 4}, dates=[["2022-05-01", "2022-05-02"]])
    _, s1 = demo_specs_for(_demo_request(config))
    assert len(s1) == 4 and len({s.relative_orbit for s in s1}) == 1 and len({s.seed for s in s1}) == 4
    every = _config("s1_multitemporal", multitemporal={"count": "all"}, dates=[["2022-05-01", "2022-06-10"]])
    _, s1 = demo_specs_for(_demo_request(every))
    assert len(s1) == 4 and all(s.start_time.month in (5, 6) for s in s1)  # every 12 days inside the window
    series = _config("time_series", sentinel2={"bands": []})
    s2, s1 = demo_specs_for(_demo_request(series))
    assert not s2 and len(s1) == 1


def test_search_preview_describes_a_stack() -> None:
    from app.state.search import preview_pairs
    from senprep_core.planning import Plan

    s1 = [_s1(24 * 12 * k) for k in range(3)]
    config = _config("s1_multitemporal", multitemporal={"count": 3}, dates=[["2022-05-10", "2022-05-20"]])
    units, dropped = plan_units(config, s1)
    plan = Plan(config, unit_spec(config), tuple(units), (), (), tuple(s1), tuple(dropped))
    (row,) = preview_pairs(plan)
    assert row["primary"] == s1[2].product_id and row["secondary"] == s1[1].product_id
    assert row["reason"] == "stack of 3 acquisitions of relative orbit 96, back to 24 days before"


def test_overlapping_stacks_keep_each_date_from_the_stack_it_is_newest_in(
    stack_run: tuple[Path, Path, dict[str, Any]],
) -> None:
    import xarray as xr

    root, _outdir, data = stack_run
    data = {**data, "multitemporal": {"count": 3, "speckle_filter": "quegan"}}
    outdir = root / "overlapping"
    result = run(parse_config(data), outdir, sources=[f"local:{root / 'products'}"])
    assert result.status == "complete" and len(result.plan.units) == 3
    ds = xr.open_zarr(outdir / "cube.zarr", group="S1")
    assert ds.sizes["time"] == N_DATES
    for done in result.results:
        for entry in result.entries(done.unit_id)[:3]:
            newest = entry.primary
            ti = int(np.flatnonzero(ds["time"].values == np.datetime64(newest.time.replace(tzinfo=None), "ns"))[0])
            pi = int(np.flatnonzero(ds["patch_id"].values == entry.patch_id)[0])
            assert str(ds["unit_id"].values[ti, pi]) == entry.unit_id and bool(ds["is_sample"].values[ti, pi])
            w = entry.window
            cube = ds["S1"].values[ti, :, w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width]
            with rasterio.open(outdir / newest.image) as src:
                np.testing.assert_array_equal(cube, src.read())
