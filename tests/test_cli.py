"""The CLI: bad input exits 2 and writes nothing; inspect parses every real S2 product; search lists products."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from senprep_core.cli import main
from senprep_core.demo.catalog import demo_config_dict
from tests.conftest import ROOT, need_real_samples


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data))
    return path


BOWTIE = {"type": "Polygon", "coordinates": [[[-2.8, 56.7], [-2.7, 56.8], [-2.7, 56.7], [-2.8, 56.8], [-2.8, 56.7]]]}
POINT = {"type": "Point", "coordinates": [-2.8, 56.7]}


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"dates": ["20200801", "20200501"]}, "dates"),
        ({"geojson": POINT}, "geojson"),
        ({"geojson": BOWTIE}, "geojson"),
        ({"size": [0, 128]}, "size"),
        ({"overlap": [128, 0]}, "overlap"),
        ({"bands_S2": ["B4_M", "B13_M"]}, "bands_S2"),
        ({"cloudcover": [50, 10]}, "cloud"),
    ],
)
def test_invalid_config_exits_2_and_writes_nothing(
    change: dict[str, Any], key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], demo_products: Path
) -> None:
    config = {**demo_config_dict(), **change}
    path = _write(tmp_path / "bad.json", config)
    outdir = tmp_path / "out"
    code = main(["run", "--config", str(path), "--outdir", str(outdir), "--source", f"local:{demo_products}"])
    assert code == 2
    assert not outdir.exists()
    err = capsys.readouterr().err
    assert key in err and "error" in err


def test_missing_source_folder_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "c.json", demo_config_dict())
    code = main(
        ["run", "--config", str(path), "--outdir", str(tmp_path / "o"), "--source", f"local:{tmp_path / 'nope'}"]
    )
    assert code == 2
    assert "does not exist" in capsys.readouterr().err


def test_legacy_example_config_is_accepted_by_search(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["search", "--config", str(ROOT / "examples" / "glasgow.json"), "--source", f"local:{tmp_path}", "--json"]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["products"] == []


def test_search_lists_demo_products(tmp_path: Path, demo_products: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "c.json", demo_config_dict())
    assert main(["search", "--config", str(path), "--source", f"local:{demo_products}", "--json"]) == 0
    products = json.loads(capsys.readouterr().out)["products"]
    assert products and all(p["level"] == "L2A" for p in products)
    assert [p["sensing_time"] for p in products] == sorted(p["sensing_time"] for p in products)


def _real_s2_folders() -> list[Path]:
    base = need_real_samples("stactools-sentinel2")
    return sorted(p for p in base.iterdir() if p.is_dir() and p.name.startswith("S2"))


def test_inspect_parses_every_real_s2_product(capsys: pytest.CaptureFixture[str]) -> None:
    folders = _real_s2_folders()
    assert len(folders) >= 15
    for folder in folders:
        assert main(["inspect", str(folder), "--json"]) == 0, folder.name
        data = json.loads(capsys.readouterr().out)
        expected_file = folder / "expected_output.json"
        if expected_file.exists():
            props = json.loads(expected_file.read_text())["properties"]
            assert data["tile_id"] == props["grid:code"].removeprefix("MGRS-"), folder.name
            epsg = props.get("proj:epsg") or int(props["proj:code"].split(":")[1])
            assert data["epsg"] == epsg, folder.name
            assert data["processing_baseline"] == props["s2:processing_baseline"], folder.name
        baseline = float(data["processing_baseline"])
        offsets = set(data["offsets"].values())
        assert all(o < 0 for o in offsets) if baseline >= 4 else offsets == {0}, folder.name


def test_inspect_missing_product_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(tmp_path / "S2A_MSIL2A_nothing.SAFE")]) == 2
    assert "error" in capsys.readouterr().err


def test_zarr_and_legacy_outputs_come_with_the_patches(tmp_path: Path, demo_products: Path) -> None:
    from senprep_core.config import parse_config

    config = parse_config(demo_config_dict()).to_dict()
    config["output"] = {**config.get("output", {}), "zarr": True, "layout": "legacy"}
    path = _write(tmp_path / "c.json", config)
    outdir = tmp_path / "out"
    assert main(["run", "--config", str(path), "--outdir", str(outdir), "--source", f"local:{demo_products}"]) == 0
    assert (outdir / "cube.zarr").is_dir() and (outdir / "Sentinel_Patches").is_dir()
    assert len(list((outdir / "patches").rglob("*.tif"))) == 12
