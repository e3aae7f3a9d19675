"""Every mode selects exactly the expected products, and the pairing modes write both sensors on one grid.

Planning is checked on hand-made records (ties, directions, cloud ranking, the 6/12-day repeat,
orbit filters, windows without a partner); the pairing modes then run end to end on the demo products.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from shapely.geometry import box

from senprep_core.catalog.records import ProductRecord
from senprep_core.catalog.selection import DroppedProduct
from senprep_core.config import Config, parse_config
from senprep_core.demo.catalog import DEMO_ROI_GEOJSON, demo_config_dict, demo_s1_config_dict
from senprep_core.pairing import plan_units as plan_units_with
from senprep_core.pipeline import make_plan, run
from senprep_core.planning import unit_spec
from senprep_core.unit.model import WorkUnit

UTC = timezone.utc
T0 = datetime(2022, 4, 20, 11, 0, tzinfo=UTC)
FOOT = box(-4.5, 55.6, -3.9, 56.1)  # covers the demo ROI


def plan_units(config: Config, products: list[ProductRecord]) -> tuple[list[WorkUnit], list[DroppedProduct]]:
    """The units of ``config``'s mode from ``products`` (each carrying the run's spec)."""
    return plan_units_with(config, products, unit_spec(config))


def _s2(day: float, cloud: float = 10.0, name: str = "A") -> ProductRecord:
    t = T0 + timedelta(days=day)
    pid = f"S2{name}_MSIL2A_{t:%Y%m%dT%H%M%S}_N0500_R080_T30UVG_{t:%Y%m%dT%H%M%S}"
    return ProductRecord(pid, "S2", f"S2{name}", "S2MSI2A", t, FOOT, "x", "local:x", cloud_cover=cloud, tile_id="30UVG")


def _s1(hours: float, orbit: int = 96, direction: str = "descending", mission: str = "S1A") -> ProductRecord:
    t = T0 + timedelta(hours=hours)
    pid = f"{mission}_IW_GRDH_1SDV_{t:%Y%m%dT%H%M%S}_{t:%Y%m%dT%H%M%S}_042868_06CA51_{int(hours * 10) % 9999:04d}"
    return ProductRecord(pid, "S1", mission, "GRD", t, FOOT, "x", "local:x", relative_orbit=orbit,
                         orbit_direction=direction)  # fmt: skip


def _config(mode: str, **extra: Any) -> Any:
    data: dict[str, Any] = {
        "name": "modes",
        "roi": DEMO_ROI_GEOJSON,
        "dates": [["2022-04-15", "2022-04-30"]],
        "mode": mode,
        "sentinel2": {"bands": ["B04"]},
        "sentinel1": {"bands": ["sigma0_VV"], **extra.pop("sentinel1", {})},
        **extra,
    }
    return parse_config(data)


def _ids(units: list[Any]) -> list[tuple[str, ...]]:
    return [tuple(p.product_id for p in u.products) for u in units]


def test_s2_with_closest_s1_picks_the_nearest_and_breaks_ties_by_time_then_id() -> None:
    s2 = [_s2(0), _s2(5), _s2(10), _s2(12)]
    s1 = [_s1(-30), _s1(30), _s1(5 * 24 + 40), _s1(5 * 24 - 40, mission="S1B")]
    units, dropped = plan_units(_config("s2_with_closest_s1"), s2 + s1)
    # day 0: +30 h and -30 h tie -> the earlier one; day 5: -40 h and +40 h tie -> the earlier one
    assert _ids(units) == [(s2[0].product_id, s1[0].product_id), (s2[1].product_id, s1[3].product_id)]
    assert [u.delta_t_hours for u in units] == [-30.0, -40.0]
    reasons = {d.product_id: d.reason for d in dropped}
    assert reasons[s2[2].product_id] == "no S1 within 3 days"
    assert reasons[s2[3].product_id] == "outside the date windows"
    assert reasons[s1[1].product_id].startswith("not the chosen partner")
    assert all(u.roles == ("S2", "S1") and u.kind == "s2+s1" for u in units)


@pytest.mark.parametrize(("direction", "expected"), [("before", -30.0), ("after", 30.0)])
def test_pairing_direction_keeps_one_side(direction: str, expected: float) -> None:
    config = _config("s2_with_closest_s1", pairing={"direction": direction})
    units, _ = plan_units(config, [_s2(0), _s1(-30), _s1(30)])
    assert [u.delta_t_hours for u in units] == [expected]


def test_s1_with_closest_s2_ranks_cloud_before_time() -> None:
    s1 = [_s1(0)]
    near_cloudy, far_clear = _s2(0.5, cloud=60.0, name="A"), _s2(2.5, cloud=5.0, name="B")
    units, _ = plan_units(_config("s1_with_closest_s2"), [*s1, near_cloudy, far_clear])
    assert _ids(units) == [(s1[0].product_id, far_clear.product_id)]
    assert units[0].roles == ("S1", "S2")


def test_a_window_without_partner_is_left_out_with_its_reason() -> None:
    units, dropped = plan_units(_config("s1_with_closest_s2"), [_s1(0), _s2(9)])
    assert units == [] and {d.reason for d in dropped} >= {"no S2 within 3 days"}


def test_multitemporal_pairs_the_same_orbit_whole_repeat_steps_earlier() -> None:
    now = _s1(24 * 3)  # 2022-04-23, inside the window
    six = _s1(24 * 3 - 6 * 24, mission="S1B")
    twelve = _s1(24 * 3 - 12 * 24)
    other_orbit = _s1(24 * 3 - 6 * 24 + 0.1, orbit=23)
    not_a_repeat = _s1(24 * 3 - 5 * 24)
    config = _config("s1_multitemporal", dates=[["2022-04-22", "2022-04-30"]])
    units, dropped = plan_units(config, [now, six, twelve, other_orbit, not_a_repeat])
    assert _ids(units) == [(now.product_id, six.product_id)]  # the latest whole-step acquisition
    assert units[0].roles == ("S1", "S1_previous") and units[0].delta_t_hours == -144.0
    units, _ = plan_units(config, [now, twelve])  # one satellite: 12 days
    assert _ids(units) == [(now.product_id, twelve.product_id)]
    assert {d.product_id for d in dropped} >= {other_orbit.product_id, not_a_repeat.product_id}


def test_orbit_direction_and_relative_orbit_filters() -> None:
    asc, desc = _s1(0, orbit=132, direction="ascending"), _s1(10, orbit=96)
    config = _config("s1_only", sentinel1={"orbit_direction": "ascending"})
    units, dropped = plan_units(config, [asc, desc])
    assert _ids(units) == [(asc.product_id,)]
    assert dropped[0].reason == "descending pass; sentinel1.orbit_direction is ascending"
    units, dropped = plan_units(_config("s1_only", sentinel1={"relative_orbits": [96]}), [asc, desc])
    assert _ids(units) == [(desc.product_id,)] and "not in 96" in dropped[0].reason


def test_time_series_takes_every_s2_acquisition() -> None:
    s2 = [_s2(d) for d in (0, 2, 5)]
    units, _ = plan_units(_config("time_series", sentinel1={"bands": []}), s2)  # S2 bands only: an S2 series
    assert _ids(units) == [(p.product_id,) for p in s2]


# ------------------------------------------------------------------ end to end on the demo products


def _pair_config(folder: Path, mode: str) -> dict[str, Any]:
    data = demo_s1_config_dict(folder)
    data.update({"name": mode, "mode": mode, "sentinel2": {"bands": ["B02", "B04", "B08", "SCL"]}})
    data["output"] = {"layout": "legacy", "zarr": True}
    data["sentinel1"] = {**data["sentinel1"], "bands": ["sigma0_VV_dB", "sigma0_VH_dB"]}
    return data


@pytest.mark.parametrize(("mode", "primary"), [("s2_with_closest_s1", "S2"), ("s1_with_closest_s2", "S1")])
def test_pairing_modes_write_both_sensors_on_one_grid(
    demo_products: Path, tmp_path: Path, mode: str, primary: str
) -> None:
    config = parse_config(_pair_config(demo_products, mode))
    result = run(config, tmp_path / "out", sources=[f"local:{demo_products}"])
    assert result.status == "complete"
    (unit,) = result.plan.units  # S2 2022-04-20 11:36 with S1 2022-04-21 06:23 (+18.8 h); no other pair
    s2 = "S2B_MSIL2A_20220420T113619_N0400_R080_T30UVG_20220420T140000"
    s1 = "S1A_IW_GRDH_1SDV_20220421T062348_20220421T062350_042868_06CA51_B12D"
    assert [p.product_id for p in unit.products] == ([s2, s1] if primary == "S2" else [s1, s2])
    dt = (datetime(2022, 4, 21, 6, 23, 48) - datetime(2022, 4, 20, 11, 36, 19)).total_seconds() / 3600
    assert unit.delta_t_hours == pytest.approx(dt if primary == "S2" else -dt, abs=1e-3)
    reasons = {d.product_id: d.reason for d in result.plan.not_selected}
    assert "no S1 within 3 days" in reasons.values() if primary == "S2" else "no S2 within 3 days" in reasons.values()
    report = json.loads((tmp_path / "out" / "run.json").read_text())
    assert report["plan"]["not_selected"]
    (done,) = result.results
    assert done.patches_written == 4
    for entry in result.entries(done.unit_id):
        assert {m.modality for m in entry.modalities} == {"S1", "S2"} and entry.pair.primary == primary
        assert entry.pair.delta_t_hours == pytest.approx(unit.delta_t_hours, abs=1e-3)
        grids = []
        for modality in ("S1", "S2"):
            with rasterio.open(tmp_path / "out" / entry.files[modality]) as ds:
                grids.append((ds.crs, ds.transform, ds.shape))
                assert np.isfinite(ds.read(1)).any()
            sidecar = json.loads((tmp_path / "out" / entry.files[f"{modality}_metadata"]).read_text())
            assert sidecar["pair"]["delta_t_hours"] == entry.pair.delta_t_hours
        assert grids[0] == grids[1]  # the identical target grid: no second resampling
        assert entry.get("S1").sar.orbit_direction == "descending"
        assert entry.get("S2").cloud_fraction is not None
    legacy = sorted((tmp_path / "out" / "Sentinel_Patches").rglob("*.tif"))
    assert len(legacy) == 8  # each patch in S1/ and S2/, under one name: S1_<s1 id>_S2_<s2 id>_<row>_<col>_<w>x<h>
    assert {p.parent.parent.name for p in legacy} == {"S1", "S2"}
    assert all(p.name.startswith("S1_") and "_S2_" in p.name and p.name.endswith("_128x128.tif") for p in legacy)
    from senprep_core.dataset import PatchDataset

    for source in ("stac", "zarr"):  # the ML loader yields the pairs from the catalog and from the cube
        samples = list(PatchDataset(tmp_path / "out", source=source))
        assert len(samples) == 4, source
        for sample in samples:
            assert sample.s1 is not None and sample.s2 is not None
            assert sample.s1.shape == (2, 128, 128) and sample.s2.shape == (4, 128, 128)
            assert sample.s1.dtype == sample.s2.dtype == np.float32
            assert sample.metadata.primary == primary
            assert sample.metadata.delta_t_hours == pytest.approx(unit.delta_t_hours, abs=1e-3)
        assert len(PatchDataset(tmp_path / "out", source=source, max_delta_t_hours=10)) == 0
    items = sorted((tmp_path / "out" / "items").glob("*.json"))
    assert len(items) == 4
    assets = json.loads(items[0].read_text())["assets"]
    assert {"S1", "S2"} <= set(assets)


def test_legacy_pairing_callback_runs_as_the_documented_mode(demo_products: Path, tmp_path: Path) -> None:
    data = demo_config_dict()
    data.update({"callback_find_products": "S2_with_previous_S1", "callback_snap": "S2_with_previous_S1",
                 "bands_S1": ["Sigma0_VV_S"], "bands_S2": ["B4_M", "scl_cloud_shadow_M"]})  # fmt: skip
    config = parse_config(data)
    assert (config.mode.value, config.pair_direction) == ("s2_with_closest_s1", "before")
    plan = make_plan(config, [f"local:{demo_products}"])
    # "before": S2 2022-04-20 has its S1 on the 21st, after it -> no pair in the whole demo
    assert plan.units == () and {d.reason for d in plan.not_selected} >= {"no S1 up to 3 days before"}
    data["callback_find_products"] = data["callback_snap"] = "S2_with_closest_S1"
    result = run(parse_config(data), tmp_path / "out", sources=[f"local:{demo_products}"])
    assert result.status == "complete" and len(result.plan.units) == 1 and result.patches_written == 4


def test_date_windows_are_inclusive_days() -> None:
    config = _config("s2_only", dates=[["2022-04-20", "2022-04-20"]])
    assert config.date_windows[0].start == date(2022, 4, 20)
    units, _ = plan_units(config, [_s2(0), _s2(1)])
    assert len(units) == 2  # planning does not filter single modes: the search did


def test_multitemporal_run_writes_the_earlier_acquisition_alongside(tmp_path: Path) -> None:
    from dataclasses import replace

    from senprep_core.demo.catalog import DEMO_DEM, demo_s1_specs
    from senprep_core.demo.s1 import make_s1_product, s1_ground_truth

    spec = demo_s1_specs()[0]
    folder = tmp_path / "products"
    make_s1_product(spec, folder)
    make_s1_product(replace(spec, start_time=spec.start_time - timedelta(days=12), seed=spec.seed + 1), folder)
    s1_ground_truth(spec).write_dem(folder / DEMO_DEM)
    data = demo_s1_config_dict(folder)
    day = spec.start_time.strftime("%Y-%m-%d")
    data.update({"name": "mt", "mode": "s1_multitemporal", "dates": [[day, day]]})
    result = run(parse_config(data), tmp_path / "out", sources=[f"local:{folder}"])
    assert result.status == "complete"
    (unit,) = result.plan.units
    assert unit.roles == ("S1", "S1_previous") and unit.delta_t_hours == pytest.approx(-288.0, abs=0.01)
    (done,) = result.results
    assert done.patches_written > 0
    for entry in result.entries(done.unit_id):
        assert {m.modality for m in entry.modalities} == {"S1", "S1_previous"}
        assert entry.files["S1_previous"].endswith("_S1_previous.tif")
        with (
            rasterio.open(tmp_path / "out" / entry.files["S1"]) as a,
            rasterio.open(tmp_path / "out" / entry.files["S1_previous"]) as b,
        ):
            assert (a.transform, a.shape) == (b.transform, b.shape)
            assert not np.array_equal(a.read(), b.read(), equal_nan=True)  # two acquisitions, two speckle draws


def test_best_per_week_keeps_the_least_cloudy_primary_of_each_monday_to_sunday_week() -> None:
    # 2022-04-20 is a Wednesday: days 0..4 fall in one week (Mon 18 - Sun 24), days 5..9 in the next
    s2 = [_s2(0, cloud=30), _s2(2, cloud=8), _s2(4, cloud=8), _s2(6, cloud=50)]
    config = _config("time_series", pairing={"per_window": "best", "weekly": True}, sentinel1={"bands": []})
    units, dropped = plan_units(config, s2)
    assert _ids(units) == [(s2[1].product_id,), (s2[3].product_id,)]  # equal cloud: the earlier wins
    reasons = {d.product_id: d.reason for d in dropped}
    assert reasons[s2[0].product_id].startswith(f"{s2[1].product_id} is the best of window 20220418-20220424")
    units, _ = plan_units(_config("time_series", pairing={"per_window": "best"}, sentinel1={"bands": []}), s2)
    assert _ids(units) == [(s2[1].product_id,)]  # one window: one acquisition
    paired, _ = plan_units(_config("s2_with_closest_s1", pairing={"per_window": "best", "weekly": True}),
                           [*s2, _s1(2 * 24 + 5), _s1(6 * 24 - 5)])  # fmt: skip
    assert [u.products[0].product_id for u in paired] == [s2[1].product_id, s2[3].product_id]


def test_s1_scene_border_does_not_count_as_roi_coverage() -> None:
    from senprep_core.demo.catalog import DEMO_ROI_GEOJSON

    west = min(x for x, _ in DEMO_ROI_GEOJSON["coordinates"][0])
    edge = _s1(0)
    # a scene whose eastern edge reaches 1 km into the ROI (0.016 deg of longitude at 55.9 N)
    edge = ProductRecord(**{**edge.__dict__, "footprint": box(west - 1.0, 55.0, west + 0.016, 57.0)})
    units, dropped = plan_units(_config("s1_only"), [edge])
    assert units == [] and dropped[0].reason == "the ROI lies only in the scene's 2 km border"


def test_s1_products_without_the_needed_polarisation_are_left_out() -> None:
    dv = _s1(0)
    dh = ProductRecord(**{**_s1(10).__dict__, "product_id": _s1(10).product_id.replace("_1SDV_", "_1SDH_")})
    units, dropped = plan_units(_config("s1_only"), [dv, dh])  # the config's bands need VV
    assert _ids(units) == [(dv.product_id,)]
    assert dropped[0].product_id == dh.product_id and dropped[0].reason == "holds HH/HV; the bands need VV"


@pytest.mark.parametrize(
    ("callback", "mode", "units"),
    [
        ("S2_only", "s2_only", 3),
        ("S2", "s2_only", 3),
        ("S1_only", "s1_only", 2),
        ("S1", "s1_only", 2),
        ("S2_with_closest_S1", "s2_with_closest_s1", 1),
        ("S2_with_previous_S1", "s2_with_closest_s1", 0),
        ("S1_with_closest_S2", "s1_with_closest_s2", 1),
        ("S1_with_previous_S2", "s1_with_closest_s2", 1),
        ("S1_multitemporal", "s1_multitemporal", 0),
        ("multitemporal", "s1_multitemporal", 0),
    ],
)
def test_every_legacy_callback_runs_as_its_mode(
    demo_products: Path, tmp_path: Path, callback: str, mode: str, units: int
) -> None:
    """The demo holds S2 L2A on 2021-05-11, 2022-04-20, 2022-07-29 and S1 on 2021-08-14 (orbit 132) and
    2022-04-21 06:23 (orbit 96), 19 h after the second S2: the only pair within 3 days."""
    data = demo_config_dict()
    data.update({"callback_find_products": callback, "callback_snap": callback,
                 "bands_S1": ["Sigma0_VV_S"], "bands_S2": ["B4_M"]})  # fmt: skip
    config = parse_config(data)
    assert config.mode.value == mode
    result = run(config, tmp_path / "out", sources=[f"local:{demo_products}"])
    assert result.status == ("complete" if units else "empty") and len(result.plan.units) == units
    assert result.patches_written == 4 * units
    if units == 0:
        assert result.plan.not_selected  # each product left out says why


def test_time_series_run_stacks_every_acquisition_on_one_grid(demo_products: Path, tmp_path: Path) -> None:
    data = demo_s1_config_dict(demo_products)
    data.update({"name": "ts", "mode": "time_series", "sentinel2": {"bands": ["B04", "SCL"]},
                 "output": {"zarr": True}})  # fmt: skip
    data.pop("sentinel1")
    result = run(parse_config(data), tmp_path / "out", sources=[f"local:{demo_products}"])
    assert result.status == "complete" and len(result.plan.units) == 3  # the three L2A dates
    grids = {e.grid for e in result.entries()}
    assert len(grids) == 4  # the same 4 patch grids at every date
    import xarray as xr

    cube = xr.open_zarr(tmp_path / "out" / "cube.zarr", group="S2")
    assert cube.sizes["time"] == 3 and list(cube["band"].values) == ["B04", "SCL"]
