"""Corrupt inputs give a clear per-product error in run.json while the other products complete."""

from __future__ import annotations

import json
import shutil
import zipfile
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from senprep_core.atomic import write_json_atomic
from senprep_core.cli import main
from senprep_core.config import parse_config
from senprep_core.demo.catalog import demo_config_dict, demo_specs
from senprep_core.demo.s2 import make_s2_product


@pytest.fixture(scope="module")
def broken_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """Two good products plus four broken ones, each with a distinct sensing day inside the demo window."""
    folder = tmp_path_factory.mktemp("broken")
    base = next(s for s in demo_specs() if s.level == "L2A")
    specs = [replace(base, sensing_time=base.sensing_time + timedelta(days=d), seed=d) for d in range(6)]
    good = [make_s2_product(s, folder) for s in specs[:2]]
    names: dict[str, str] = {}

    truncated = make_s2_product(specs[2], folder)
    band = next(truncated.rglob("*_B04_10m.jp2"))
    band.write_bytes(band.read_bytes()[: band.stat().st_size // 3])
    names["truncated jp2"] = specs[2].product_id

    zipped = make_s2_product(specs[3], folder, as_zip=True)
    stripped = zipped.with_name(zipped.name + ".new")
    with zipfile.ZipFile(zipped) as src, zipfile.ZipFile(stripped, "w") as dst:
        for info in src.infolist():
            if not info.filename.endswith("_B08_10m.jp2"):
                dst.writestr(info, src.read(info))
    stripped.replace(zipped)
    names["zip missing a band"] = specs[3].product_id

    malformed = make_s2_product(specs[4], folder)
    mtd = malformed / "MTD_MSIL2A.xml"
    mtd.write_bytes(mtd.read_bytes()[:2000])
    names["malformed MTD"] = specs[4].product_id

    evil = make_s2_product(specs[5], folder, as_zip=True)
    with zipfile.ZipFile(evil, "a") as z:
        z.writestr("../evil.txt", "escape")
    names["zip slip"] = specs[5].product_id
    del good
    return folder, names


def test_each_corrupt_product_is_reported_and_the_others_complete(
    broken_folder: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    folder, names = broken_folder
    config = demo_config_dict()
    config_path = tmp_path / "config.json"
    write_json_atomic(config_path, config)
    outdir = tmp_path / "run"
    code = main(
        ["run", "--config", str(config_path), "--outdir", str(outdir), "--source", f"local:{folder}", "--quiet"]
    )
    assert code == 1
    report = json.loads((outdir / "run.json").read_text())
    assert report["status"] == "partial"
    failed = {u["unit_id"]: u for u in report["units"] if u["status"] == "failed"}
    unreadable = {Path(p["name"]).name.split(".")[0]: p for p in report["unreadable_products"]}
    messages = {}
    for case, product_id in names.items():
        entry = failed.get(product_id) or unreadable.get(product_id)
        assert entry is not None, f"{case}: {product_id} not reported"
        messages[case] = entry.get("error_message") or entry.get("message")
    assert "B04" in messages["truncated jp2"]
    assert "B08" in messages["zip missing a band"]
    assert "MTD_MSIL2A.xml" in messages["malformed MTD"]
    assert "../evil.txt" in messages["zip slip"]
    done = [u for u in report["units"] if u["status"] == "done"]
    assert len(done) == 2 and all(u["patches_written"] > 0 for u in done)
    assert len(parse_config(config).bands_s2) > 0


def test_a_broken_product_does_not_leave_files(broken_folder: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    folder, names = broken_folder
    config_path = tmp_path / "config.json"
    write_json_atomic(config_path, demo_config_dict())
    outdir = tmp_path / "run"
    main(["run", "--config", str(config_path), "--outdir", str(outdir), "--source", f"local:{folder}", "--quiet"])
    truncated_dir = outdir / "patches" / names["truncated jp2"]
    assert not truncated_dir.exists() or not list(truncated_dir.glob("*.tif"))
    shutil.rmtree(outdir)
