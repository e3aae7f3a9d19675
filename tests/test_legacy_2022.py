"""The 2022 tool's own example config runs unchanged: on synthetic products made for it (``senprep demo
--config``), then with ``senprep run --source local:`` on those products; every 2022 callback runs its mode."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import rasterio

from senprep_core.cli import main
from senprep_core.config import Mode, parse_config
from senprep_core.outputs.run_folder import RunFolder

_RING = [[-2.821790492482244, 56.744233951779414], [-2.821899274094835, 56.721235341661981],
         [-2.780070428724793, 56.721168556671294], [-2.779936099050762, 56.744167108645414],
         [-2.821790492482244, 56.744233951779414]]  # fmt: skip
_GEOJSON = {
    "type": "FeatureCollection",
    "name": "Inference_rasterized_vector",
    "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}},
    "features": [{"type": "Feature", "properties": {"fid": 1, "DN": 1},
                  "geometry": {"type": "Polygon", "coordinates": [_RING]}}],
}  # fmt: skip

#: The 2022 framework's glasgow-s256x256-o0x0-20200801.json, every key as it lists them (the ROI near
#: Montrose as a FeatureCollection string with a CRS84 ``crs`` member; the snap callback's ``__subset``).
EXAMPLE_2022: dict[str, Any] = {
    "name": "Glasgow",
    "geojson": json.dumps(_GEOJSON),
    "dates": ["20200501", "20200801"],
    "callback_snap": "s2_with_previous_s1__subset",
    "callback_find_products": "s2_with_previous_s1",
    "size": [256, 256],
    "overlap": [0, 0],
    "cloudcover": [0, 100],
    "cloud_mask_filtering": True,
    "bands_S1": ["Sigma0_VH_S", "Sigma0_VV_S", "collocationFlags"],
    "bands_S2": [
        *(f"B{b}_M" for b in ("1", "2", "3", "4", "5", "6", "7", "8", "8A", "9", "11", "12")),
        "opaque_clouds_10m_M",
        "cirrus_clouds_10m_M",
        "scl_cloud_shadow_M",
        "scl_cloud_medium_proba_M",
        "scl_cloud_high_proba_M",
        "scl_thin_cirrus_M",
    ],
}


def _write(tmp: Path, data: dict[str, Any], name: str = "config.json") -> Path:
    path = tmp / name
    path.write_text(json.dumps(data, indent=2))
    return path


def _check_pairs(outdir: Path) -> None:
    report = RunFolder(outdir).read_report()
    assert report["status"] == "complete"
    kinds = {u["kind"] for u in report["plan"]["units"]}
    assert kinds == {"s2+s1"}
    s1 = sorted(outdir.glob("patches/*/*_S1.tif"))
    s2 = sorted(outdir.glob("patches/*/*_S2.tif"))
    assert s1 and len(s1) == len(s2)
    with rasterio.open(s1[0]) as src:
        assert src.descriptions == ("sigma0_VH", "sigma0_VV", "collocation_flags")
        assert int(src.read(3).max()) == 3  # both sensors hold data (1 = S2, 2 = S1)
    with rasterio.open(s2[0]) as src:
        assert src.count == 18 and src.descriptions[0] == "B01" and src.descriptions[-1] == "scl_thin_cirrus"


def test_the_2022_example_config_runs_on_products_made_for_it_then_on_them_locally(tmp_path: Path) -> None:
    config = _write(tmp_path, EXAMPLE_2022)
    products = tmp_path / "products"
    assert main(["demo", "--config", str(config), "--outdir", str(tmp_path / "demo"), "--products", str(products),
                 "--quiet"]) == 0  # fmt: skip
    _check_pairs(tmp_path / "demo" / "Glasgow")
    assert main(["run", "--config", str(config), "--outdir", str(tmp_path / "local"), "--source", f"local:{products}",
                 "--quiet"]) == 0  # fmt: skip
    _check_pairs(tmp_path / "local")


CALLBACKS = [
    ("s2", Mode.S2_ONLY, "s2"),
    ("S2_only", Mode.S2_ONLY, "s2"),
    ("s1", Mode.S1_ONLY, "s1"),
    ("S1_only", Mode.S1_ONLY, "s1"),
    ("s2_with_previous_s1", Mode.S2_WITH_CLOSEST_S1, "s2+s1"),
    ("s2_with_previous_s1__subset", Mode.S2_WITH_CLOSEST_S1, "s2+s1"),
    ("S2_with_closest_S1", Mode.S2_WITH_CLOSEST_S1, "s2+s1"),
    ("S1_with_previous_S2", Mode.S1_WITH_CLOSEST_S2, "s1+s2"),
    ("S1_with_closest_S2", Mode.S1_WITH_CLOSEST_S2, "s1+s2"),
    ("S1_multitemporal", Mode.S1_MULTITEMPORAL, "s1+s1"),
    ("multitemporal", Mode.S1_MULTITEMPORAL, "s1+s1"),
    ("s2_with_previous_two_s1_with_same_orbit", Mode.S2_WITH_TWO_S1, "s2+s1+s1"),
]


@pytest.mark.parametrize(("callback", "mode", "kind"), CALLBACKS, ids=[c[0] for c in CALLBACKS])
def test_every_2022_callback_runs_its_mode(tmp_path: Path, callback: str, mode: Mode, kind: str) -> None:
    data = {**EXAMPLE_2022, "callback_find_products": callback, "callback_snap": callback,
            "dates": ["20200801", "20200801"], "bands_S2": ["B4_M", "scl_cloud_shadow_M"]}  # fmt: skip
    assert parse_config(data).mode is mode
    config = _write(tmp_path, data)
    code = main(["demo", "--config", str(config), "--outdir", str(tmp_path / "out"), "--products",
                 str(tmp_path / "products"), "--quiet"])  # fmt: skip
    assert code == 0
    report = RunFolder(tmp_path / "out" / "Glasgow").read_report()
    assert report["status"] == "complete" and {u["kind"] for u in report["plan"]["units"]} == {kind}
    if kind == "s2+s1+s1":  # the S2, its S1 and that S1's orbit one repeat earlier, on one grid
        (unit,) = report["plan"]["units"]
        assert unit["roles"] == ["S2", "S1", "S1_previous"]
        assert len(list((tmp_path / "out" / "Glasgow").glob("patches/*/*_S1_previous.tif"))) == 1
