"""A matrix of bad inputs through the CLI: each exits 2 with a message naming what is wrong, and writes nothing.

Config values (modern and legacy forms), the ROI, patches, bands, sources, credentials, the output folder
and the run flags. Each case runs ``senprep run`` in this process and checks the exit code, a fragment of
the message and that the output folder was not created (or, when it existed, was left as it was).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from senprep_core.cli import main
from senprep_core.demo.catalog import DEMO_ROI_GEOJSON, demo_config_dict

BOWTIE = {"type": "Polygon", "coordinates": [[[-4.27, 55.85], [-4.23, 55.87], [-4.23, 55.85], [-4.27, 55.87],
                                              [-4.27, 55.85]]]}  # fmt: skip
METRES = {"type": "Polygon", "coordinates": [[[421020, 6189120], [423520, 6189120], [423520, 6191620],
                                              [421020, 6191620], [421020, 6189120]]]}  # fmt: skip


def modern() -> dict[str, Any]:
    """A valid modern config over the demo ROI (an S2 run of the demo products)."""
    return {
        "name": "matrix",
        "roi": DEMO_ROI_GEOJSON,
        "dates": ["2021-05-01", "2022-08-31"],
        "mode": "s2_only",
        "patches": {"size": [128, 128], "overlap": [0, 0]},
        "sentinel2": {"bands": ["B02", "B04", "SCL"]},
    }


Change = Callable[[dict[str, Any]], None]


def put(path: str, value: Any) -> Change:
    """Set ``a.b.c`` to ``value``."""

    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value

    return change


def drop(path: str) -> Change:
    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node[key]
        node.pop(last, None)

    return change


S1 = {"mode": "s1_only", "sentinel1": {"bands": ["sigma0_VV"]}}


def with_s1(change: Change) -> Change:
    """``change`` applied to an S1 config."""

    def both(data: dict[str, Any]) -> None:
        data.update(copy.deepcopy(S1))
        change(data)

    return both


CONFIG_CASES: list[tuple[str, Change, str]] = [
    ("unknown key", put("colour", "blue"), "colour"),
    ("empty name", put("name", ""), "name"),
    ("name with a slash", put("name", "../up"), "name"),
    ("no dates", drop("dates"), "dates"),
    ("end before start", put("dates", ["2022-08-31", "2021-05-01"]), "swap the two dates"),
    ("impossible date", put("dates", ["2021-13-45", "2022-01-01"]), "dates"),
    ("dates not a list", put("dates", "2021"), "dates"),
    ("unknown mode", put("mode", "s3_only"), "mode"),
    ("no roi", drop("roi"), "roi"),
    ("roi a point", put("roi", {"type": "Point", "coordinates": [-4.25, 55.86]}), "roi"),
    ("roi self-intersecting", put("roi", BOWTIE), "roi"),
    ("roi in metres", put("roi", METRES), "roi"),
    ("roi without coordinates", put("roi", {"type": "Polygon", "coordinates": []}), "roi"),
    ("roi text not geojson", put("roi", "somewhere in Scotland"), "roi"),
    ("roi_file missing", lambda d: (d.pop("roi"), d.update(roi_file="no-such.geojson")), "roi_file"),
    ("patch size 0", put("patches.size", [0, 0]), "patches.size"),
    ("patch size negative", put("patches.size", [-5, -5]), "patches.size"),
    ("patch size 10^9", put("patches.size", [10**9, 10**9]), "at most 16384"),
    ("patch size text", put("patches.size", "big"), "patches.size"),
    ("overlap as large as the patch", put("patches.overlap", [128, 128]), "patches.overlap"),
    ("overlap negative", put("patches.overlap", [-1, 0]), "patches.overlap"),
    ("edge policy unknown", put("patches.edge", "wrap"), "patches.edge"),
    ("resolution 0", put("grid.resolution", 0), "grid.resolution"),
    ("resolution negative", put("grid.resolution", -10), "grid.resolution"),
    ("resolution 0.001 m", put("grid.resolution", 0.001), "terabytes"),
    ("resolution 10^9 m", put("grid.resolution", 1e9), "grid.resolution"),
    ("resolution text", put("grid.resolution", "fine"), "grid.resolution"),
    ("epsg geographic", put("grid.epsg", 4326), "projected"),
    ("epsg unknown", put("grid.epsg", 999999), "grid.epsg"),
    ("unknown S2 band", put("sentinel2.bands", ["B02", "B99"]), "B99"),
    ("B10 at L2A", put("sentinel2.bands", ["B10"]), "B10"),
    ("bands not a list", put("sentinel2.bands", "B04"), "sentinel2.bands"),
    ("unknown level", put("sentinel2.level", "L3"), "sentinel2.level"),
    ("cloud range reversed", put("sentinel2.cloud_cover", [50, 10]), "cloud_cover"),
    ("cloud above 100", put("sentinel2.cloud_cover", [0, 150]), "cloud_cover"),
    ("roi cloud above 100", put("sentinel2.max_roi_cloud", 200), "max_roi_cloud"),
    ("unknown S2 resampling", put("sentinel2.resampling", "lanczos"), "sentinel2.resampling"),
    ("S2 mode without bands", put("sentinel2.bands", []), "sentinel2.bands"),
    ("unknown S1 band", with_s1(put("sentinel1.bands", ["sigma1_VV"])), "sigma1_VV"),
    ("S1 mode without bands", with_s1(put("sentinel1.bands", [])), "sentinel1.bands"),
    ("unknown speckle filter", with_s1(put("sentinel1.speckle_filter", "wiener")), "speckle"),
    ("speckle window even", with_s1(put("sentinel1.speckle_filter", {"name": "lee", "window": 4})), "window"),
    ("speckle key unknown", with_s1(put("sentinel1.speckle_filter", {"name": "lee", "size": 5})), "size"),
    ("db floor text", with_s1(put("sentinel1.db_floor", "low")), "db_floor"),
    ("unknown S1 resampling", with_s1(put("sentinel1.resampling", "lanczos")), "sentinel1.resampling"),
    ("unknown backend", with_s1(put("sentinel1.backend", "gpu")), "sentinel1.backend"),
    ("unknown pass", with_s1(put("sentinel1.orbit_direction", "sideways")), "orbit_direction"),
    ("relative orbit 0", with_s1(put("sentinel1.relative_orbits", [0])), "relative_orbits"),
    ("relative orbit 200", with_s1(put("sentinel1.relative_orbits", [200])), "relative_orbits"),
    ("unknown geoid", with_s1(put("sentinel1.geoid", "egm84")), "sentinel1.geoid"),
    ("dem not a path", with_s1(put("sentinel1.dem", ["x"])), "sentinel1.dem"),
    ("max_days negative", put("pairing.max_days", -1), "pairing.max_days"),
    ("unknown direction", put("pairing.direction", "sideways"), "pairing.direction"),
    ("unknown per_window", put("pairing.per_window", "some"), "pairing.per_window"),
    ("unknown layout", put("output.layout", "flat"), "output.layout"),
    ("unknown compression", put("output.compress", "rar"), "output.compress"),
    ("valid fraction 2", put("output.min_valid_fraction", 2), "min_valid_fraction"),
    ("patch cloud negative", put("output.max_patch_cloud", -0.5), "max_patch_cloud"),
    ("stac not a boolean", put("output.stac", "yes"), "output.stac"),
    ("section not a mapping", put("sentinel2", ["B04"]), "sentinel2"),
]

LEGACY_CASES: list[tuple[str, Change, str]] = [
    ("legacy unknown callback", put("callback_find_products", "S2_with_S3"), "callback_find_products"),
    ("legacy size not a pair", put("size", 128), "size"),
    ("legacy cloudcover reversed", put("cloudcover", [50, 10]), "cloud"),
    ("legacy unknown band", put("bands_S2", ["B4_M", "B13_M"]), "bands_S2"),
    ("legacy geojson a point", put("geojson", {"type": "Point", "coordinates": [-4.25, 55.86]}), "geojson"),
    ("legacy dates reversed", put("dates", ["20220831", "20210501"]), "dates"),
]


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit code and stderr of ``senprep ARGS`` (argparse's own errors included)."""
    try:
        code = main(args)
    except SystemExit as exc:  # argparse refuses a flag: usage and exit 2
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def _assert_refused(code: int, err: str, fragment: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    assert fragment.lower() in err.lower(), err


@pytest.mark.parametrize(("name", "change", "fragment"), CONFIG_CASES + LEGACY_CASES,
                         ids=[c[0] for c in CONFIG_CASES + LEGACY_CASES])  # fmt: skip
def test_bad_config_exits_2_naming_it_and_writes_nothing(
    name: str, change: Change, fragment: str, tmp_path: Path, demo_products: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = demo_config_dict() if name.startswith("legacy") else modern()
    change(data)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(data))
    outdir = tmp_path / "out"
    code, err = _run(["run", "--config", str(config), "--outdir", str(outdir), "--source", f"local:{demo_products}"],
                     capsys)  # fmt: skip
    _assert_refused(code, err, fragment)
    assert not outdir.exists()


def _flag_cases(tmp: Path, products: Path) -> list[tuple[str, list[str], str]]:
    config = tmp / "config.json"
    config.write_text(json.dumps(modern()))
    out = str(tmp / "out")
    base = ["run", "--config", str(config)]
    a_file = tmp / "a-file"
    a_file.write_text("not a folder")
    broken_json = tmp / "broken.json"
    broken_json.write_text('{"name": "x", ')
    broken_yaml = tmp / "broken.yaml"
    broken_yaml.write_text("name: [x\n")
    a_list = tmp / "list.json"
    a_list.write_text("[1, 2]")
    empty = tmp / "empty.json"
    empty.write_text("")
    src = ["--source", f"local:{products}"]
    return [
        ("missing config file", ["run", "--config", str(tmp / "nope.json"), "--outdir", out, *src], "nope.json"),
        ("config not JSON", ["run", "--config", str(broken_json), "--outdir", out, *src], "broken.json"),
        ("config not YAML", ["run", "--config", str(broken_yaml), "--outdir", out, *src], "broken.yaml"),
        ("config a list", ["run", "--config", str(a_list), "--outdir", out, *src], "mapping"),
        ("config empty", ["run", "--config", str(empty), "--outdir", out, *src], "empty.json"),
        ("unknown source", [*base, "--outdir", out, "--source", "scihub"], "unknown source"),
        ("local source without a folder", [*base, "--outdir", out, "--source", "local:"], "names no folder"),
        ("local folder missing", [*base, "--outdir", out, "--source", f"local:{tmp / 'gone'}"], "does not exist"),
        ("no source at all", [*base, "--outdir", out], "--source"),
        (
            "credentials file missing",
            [*base, "--outdir", out, *src, "--credentials", str(tmp / "c.json")],
            "credentials",
        ),
        ("outdir a file", [*base, "--outdir", str(a_file), *src], "is a file"),
        ("outdir empty", [*base, "--outdir", "", *src], "empty path"),
        ("njobs negative", [*base, "--outdir", out, *src, "--njobs", "-3"], "--njobs"),
        ("njobs zero", [*base, "--outdir", out, *src, "--njobs", "0"], "--njobs"),
        ("dask workers zero", [*base, "--outdir", out, *src, "--dask-workers", "0"], "--dask-workers"),
        ("scheduler not a url", [*base, "--outdir", out, *src, "--scheduler", "not a url"], "scheduler"),
        ("rebuild not a boolean", [*base, "--outdir", out, *src, "--rebuild", "maybe"], "--rebuild"),
        ("fetch mode unknown", [*base, "--outdir", out, *src, "--fetch", "all"], "--fetch"),
    ]


FLAG_IDS = ["missing config file", "config not JSON", "config not YAML", "config a list", "config empty",
            "unknown source", "local source without a folder", "local folder missing", "no source at all",
            "credentials file missing", "outdir a file", "outdir empty", "njobs negative", "njobs zero",
            "dask workers zero", "scheduler not a url", "rebuild not a boolean", "fetch mode unknown"]  # fmt: skip


@pytest.mark.parametrize("case", FLAG_IDS)
def test_bad_flag_or_file_exits_2_naming_it_and_writes_nothing(
    case: str, tmp_path: Path, demo_products: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = {name: (args, fragment) for name, args, fragment in _flag_cases(tmp_path, demo_products)}
    assert set(cases) == set(FLAG_IDS)
    args, fragment = cases[case]
    before = sorted(p.name for p in tmp_path.iterdir())
    code, err = _run(args, capsys)
    _assert_refused(code, err, fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output folder, nothing else written


def test_a_foreign_folder_is_refused_and_left_as_it_was(
    tmp_path: Path, demo_products: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outdir = tmp_path / "thesis"
    outdir.mkdir()
    (outdir / "chapter1.tex").write_text("precious")
    config = tmp_path / "config.json"
    config.write_text(json.dumps(modern()))
    code, err = _run(["run", "--config", str(config), "--outdir", str(outdir), "--source", f"local:{demo_products}"],
                     capsys)  # fmt: skip
    _assert_refused(code, err, "not a senprep run")
    assert [p.name for p in outdir.iterdir()] == ["chapter1.tex"] and (
        outdir / "chapter1.tex"
    ).read_text() == "precious"


def test_the_matrix_has_at_least_sixty_cases() -> None:
    assert len(CONFIG_CASES) + len(LEGACY_CASES) + len(FLAG_IDS) + 1 >= 60
