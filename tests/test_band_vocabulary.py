"""One Sentinel-1 band vocabulary for config validation, the chain and the app."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from app.state.options import S1_LAYERS as APP_S1_LAYERS
from senprep_core.bands import COLLOCATION_FLAGS, S1_LAYERS, parse_s1_band
from senprep_core.config import parse_config
from senprep_core.demo.catalog import demo_s1_config_dict
from senprep_core.errors import UnknownBandError
from senprep_core.pipeline import run


@pytest.mark.parametrize(
    ("name", "canonical", "backscatter"),
    [
        ("sigma0_VV", "sigma0_VV", True),
        ("Sigma0_VH_S", "sigma0_VH", True),
        ("gamma0t_vv_db", "gamma0T_VV_dB", True),
        ("collocationFlags", COLLOCATION_FLAGS, False),
        ("local_incidence_angle", "local_incidence_angle", False),
    ],
)
def test_canonical_and_legacy_names_map_onto_one_band(name: str, canonical: str, backscatter: bool) -> None:
    band = parse_s1_band(name)
    assert band.name == canonical and band.is_backscatter is backscatter


def test_the_app_offers_the_cores_s1_layers() -> None:
    assert tuple(APP_S1_LAYERS) == tuple(S1_LAYERS) and COLLOCATION_FLAGS in S1_LAYERS


def test_an_unknown_band_is_refused_naming_the_layers() -> None:
    with pytest.raises(UnknownBandError, match="collocation_flags"):
        parse_s1_band("sigma1_VV")


def test_collocation_flags_mark_where_both_sensors_hold_data(demo_products: Path, tmp_path: Path) -> None:
    data = demo_s1_config_dict(demo_products)
    data.update({"name": "flags", "mode": "s2_with_closest_s1", "sentinel2": {"bands": ["B04", "SCL"]},
                 "output": {"min_valid_fraction": 0.0}})  # fmt: skip
    data["sentinel1"] = {**data["sentinel1"], "bands": ["sigma0_VV_dB", "collocationFlags"]}
    result = run(parse_config(data), tmp_path / "out", sources=[f"local:{demo_products}"])
    assert result.status == "complete" and result.patches_written > 0
    seen = set()
    for entry in result.entries():
        with (
            rasterio.open(tmp_path / "out" / entry.files["S1"]) as s1,
            rasterio.open(tmp_path / "out" / entry.files["S2"]) as s2,
        ):
            assert s1.descriptions == ("sigma0_VV_dB", COLLOCATION_FLAGS)
            sigma, flags = s1.read(1), s1.read(2)
            both = np.isfinite(sigma) & np.isfinite(s2.read()).all(axis=0)
        inside = np.isfinite(flags)
        assert np.array_equal(flags[inside] == 3, both[inside])  # 1 = S2, 2 = S1: 3 where both hold data
        seen.update(np.unique(flags[inside]).tolist())
    assert seen == {2.0, 3.0}  # the demo ROI reaches past the S2 tile's edge (S1 alone there); S1 covers it all
