"""``senprep preview``: the picture and GeoTIFF of a product or pair, and bad input mapped to exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio

from senprep_core.cli import main
from senprep_core.config import parse_config
from senprep_core.demo.catalog import demo_config_dict, demo_s1_config_dict
from senprep_core.previews import preview
from tests.test_preview import found

S2_ID = "S2B_MSIL2A_20220729T113629_N0500_R080_T30UVG_20220729T140000"
S1_ID = "S1A_IW_GRDH_1SDV_20210814T174135_20210814T174137_039229_0F6E81_BA7A"


def _config(tmp_path: Path, data: dict[str, Any], name: str = "config.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def _args(config: str, demo_products: Path, *extra: str) -> list[str]:
    return ["preview", "--config", config, "--source", f"local:{demo_products}", *extra]


def test_s2_png_and_geotiff(tmp_path: Path, demo_products: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, demo_config_dict())
    png, tif = tmp_path / "out.png", tmp_path / "out.tif"
    args = _args(config, demo_products, "--product", S2_ID, "--png", str(png), "--tif", str(tif), "--resolution", "60")
    assert main(args) == 0
    assert "44 x 44 px at 60 m" in capsys.readouterr().out
    with rasterio.open(png) as src:
        assert (src.count, src.width, src.height) == (4, 44, 44)
        rgba = src.read()
    with rasterio.open(tif) as src:
        assert src.res == (60.0, 60.0) and src.crs.to_epsg() == 32630
        assert src.descriptions == ("S2:B02", "S2:B03", "S2:B04", "S2:B08", "S2:cloud")
        layers = src.read()
    shown = preview(parse_config(demo_config_dict()), found(parse_config(demo_config_dict()), demo_products)[-1])
    np.testing.assert_array_equal(layers[:4], shown.products[0].data)
    cloud = layers[4] == 1
    assert cloud.any() and (~cloud & np.isfinite(layers[4])).any()
    # clouds are tinted towards magenta: more red than green there, and the product's no-data is transparent
    assert (rgba[0][cloud].astype(int) - rgba[1][cloud]).mean() > 50
    assert (rgba[3] == 255).all() == shown.products[0].valid.all()
    assert not list(tmp_path.glob("*.tmp-*")) and not list(tmp_path.glob("*.aux.xml"))


def test_s1_renderings_and_a_pair(tmp_path: Path, demo_products: Path) -> None:
    config = _config(tmp_path, demo_s1_config_dict(demo_products))
    for rendering in ("vv", "vh", "ratio", "composite"):
        png = tmp_path / f"{rendering}.png"
        args = _args(config, demo_products, "--product", S1_ID, "--png", str(png), "--s1-rendering", rendering,
                     "--width", "100")  # fmt: skip
        assert main(args) == 0
        with rasterio.open(png) as src:
            rgba = src.read()
        assert max(rgba.shape[1:]) <= 100 and (rgba[3] == 255).mean() > 0.9
        grey = rgba[0] == rgba[1]
        assert grey.all() == (rendering != "composite")
    both = _config(tmp_path, {**demo_s1_config_dict(demo_products), "mode": "s2_with_closest_s1",
                              "sentinel2": {"bands": ["B04"]}}, "pair.json")  # fmt: skip
    png = tmp_path / "pair.png"
    assert main(_args(both, demo_products, "--product", S2_ID, "--product", S1_ID, "--png", str(png))) == 0
    assert (tmp_path / "pair_S2.png").is_file() and (tmp_path / "pair_S1.png").is_file()


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--product", S2_ID], "--png out.png"),
        (["--product", "S2A_MSIL2A_20990101T000000_N0500_R080_T30UVG_20990101T000000", "--png", "x.png"],
         "no product S2A_MSIL2A_2099"),
        (["--product", S2_ID, "--png", "x.png", "--resolution", "-5"], "positive number of metres"),
        (["--product", S2_ID, "--png", "x.png", "--bounds", "10", "50", "5", "40"], "west < east"),
        (["--product", S2_ID, "--product", S2_ID, "--product", S2_ID, "--png", "x.png"], "one product or a pair"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_with_the_fix(
    extra: list[str], words: str, tmp_path: Path, demo_products: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, demo_config_dict())
    extra = [str(tmp_path / e) if e.endswith(".png") else e for e in extra]
    assert main(_args(config, demo_products, *extra)) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert not list(tmp_path.glob("*.png"))


def test_an_unwritable_output_is_an_output_error(tmp_path: Path, demo_products: Path) -> None:
    config = _config(tmp_path, demo_config_dict())
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(_args(config, demo_products, "--product", S2_ID, "--png", str(blocker / "x.png"))) == 2
