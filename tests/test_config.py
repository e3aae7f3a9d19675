"""Configuration: the legacy and modern forms, round trips, validation and the fingerprint."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from senprep_core.config import (
    Config,
    DateWindow,
    Mode,
    OutputOptions,
    is_legacy_form,
    legacy_dict,
    load_config,
    parse_config,
    save_config,
)
from senprep_core.errors import ConfigError, InvalidROIError, UnknownBandError
from senprep_core.geo.tiling import EdgePolicy

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
LEGACY = EXAMPLES / "glasgow.json"
MODERN = EXAMPLES / "glasgow-city.yaml"

SQUARE = [[-2.82, 56.72], [-2.78, 56.72], [-2.78, 56.74], [-2.82, 56.74], [-2.82, 56.72]]
POLYGON = {"type": "Polygon", "coordinates": [SQUARE]}


def legacy_data(**changes: Any) -> dict[str, Any]:
    """A small valid legacy config, with some keys replaced (None removes a key)."""
    data: dict[str, Any] = {
        "name": "test",
        "geojson": json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},
                                                                          "geometry": POLYGON}]}),
        "dates": ["20200501", "20200801"],
        "cloudcover": [0, 20],
        "cloud_mask_filtering": False,
        "size": [256, 256],
        "overlap": [0, 0],
        "bands_S1": [],
        "bands_S2": ["B4_M", "B3_M", "B2_M"],
        "callback_find_products": "S2_only",
        "callback_snap": "S2_only",
    }  # fmt: skip
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def modern_data(**sections: Any) -> dict[str, Any]:
    """A small valid modern config; keyword values replace or (dicts) update sections."""
    data: dict[str, Any] = {
        "name": "test",
        "roi": copy.deepcopy(POLYGON),
        "dates": [["2023-05-01", "2023-05-31"]],
        "mode": "s2_only",
        "grid": {"resolution": 10, "epsg": None},
        "patches": {"size": [128, 128], "overlap": [16, 16], "edge": "shift"},
        "sentinel2": {"level": "L2A", "bands": ["B02", "B03", "B04"], "cloud_cover": [0, 80]},
        "sentinel1": {"product_type": "GRD", "bands": []},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


# ----- the legacy example ---------------------------------------------------------------


def test_legacy_example_loads_with_expected_values() -> None:
    before = hashlib.sha256(LEGACY.read_bytes()).hexdigest()
    config = load_config(LEGACY)
    assert hashlib.sha256(LEGACY.read_bytes()).hexdigest() == before  # the file is never rewritten
    assert config.legacy_form
    assert config.name == "glasgow"
    assert config.mode is Mode.S2_ONLY
    assert config.date_windows == (DateWindow(date(2020, 5, 1), date(2020, 8, 1)),)
    assert config.date_windows[0].label == "20200501-20200801"
    assert config.patch.size == (256, 256)
    assert config.patch.overlap == (0, 0)
    assert config.cloud_cover == (0.0, 20.0)
    assert config.s2_level == "L2A"
    assert config.bands_s2 == (
        "B02", "B03", "B04", "B08", "scl_cloud_shadow", "scl_cloud_medium_proba", "scl_cloud_high_proba",
        "scl_thin_cirrus",
    )  # fmt: skip
    assert config.bands_s1 == ()
    assert config.target_epsg() == 32630
    grid = config.grid()
    assert grid.epsg == 32630
    assert grid.left % 10 == 0 and grid.top % 10 == 0
    # a ~2.56 km square at 10 m: about 256 pixels a side
    assert 250 <= grid.width <= 262 and 250 <= grid.height <= 262
    patches = config.patches()
    assert patches and all(p.grid.shape == (256, 256) for p in patches)
    assert config.roi_mask().shape == grid.shape


def test_modern_example_loads() -> None:
    config = load_config(MODERN)
    assert not config.legacy_form
    assert config.name == "glasgow-city"
    assert config.mode is Mode.S2_ONLY
    assert len(config.date_windows) == 2
    assert all(w.start.year == 2023 for w in config.date_windows)
    assert config.bands_s2 == ("B02", "B03", "B04", "B08", "SCL", "scl_cloud_shadow")
    assert config.patch.overlap == (32, 32)
    assert config.patch.edge is EdgePolicy.SHIFT
    assert config.max_roi_cloud == 30
    assert config.target_epsg() == 32630
    minx, miny, maxx, maxy = config.roi.bounds
    assert 55.8 < miny < maxy < 55.9 and -4.4 < minx < maxx < -4.1
    assert config.patches()


def test_docs_example_parses() -> None:
    """The annotated example in docs/configuration.md is a valid config."""
    text = (EXAMPLES.parent / "docs" / "configuration.md").read_text(encoding="utf-8")
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = parse_config(yaml.safe_load(block), base_dir=EXAMPLES)
    assert config.name


# ----- round trips ----------------------------------------------------------------------


def test_legacy_round_trip_via_modern_and_legacy() -> None:
    config = load_config(LEGACY)
    again = parse_config(legacy_dict(config))
    assert again == config
    modern = parse_config(config.to_dict())
    assert not modern.legacy_form
    assert dataclasses.replace(modern, legacy_form=True) == config
    assert parse_config(legacy_dict(modern)) == config
    assert modern.fingerprint() == config.fingerprint()


def test_modern_round_trip() -> None:
    config = load_config(MODERN)
    assert parse_config(config.to_dict()) == config
    # the modern dict is plain data: it survives JSON and YAML
    assert parse_config(json.loads(json.dumps(config.to_dict()))) == config
    assert parse_config(yaml.safe_load(yaml.safe_dump(config.to_dict()))) == config


def test_modern_config_without_extras_converts_to_legacy() -> None:
    data = modern_data(mode="s2_with_closest_s1", sentinel1={"bands": ["sigma0_VV", "sigma0_VH"]},
                       pairing={"direction": "before"})  # fmt: skip
    config = parse_config(data)
    legacy = legacy_dict(config)
    assert legacy["callback_find_products"] == "S2_with_previous_S1"
    assert legacy["bands_S1"] == ["Sigma0_VV_S", "Sigma0_VH_S"]
    assert legacy["bands_S2"] == ["B2_M", "B3_M", "B4_M"]
    assert isinstance(legacy["geojson"], str)
    assert parse_config(legacy) == dataclasses.replace(config, legacy_form=True)


def test_pairing_direction_after_is_accepted_but_has_no_legacy_form() -> None:
    data = modern_data(mode="s2_with_closest_s1", sentinel1={"bands": ["sigma0_VV"]}, pairing={"direction": "after"})
    config = parse_config(data)
    assert config.pair_direction == "after"
    assert parse_config(config.to_dict()) == config
    assert config.fingerprint() != dataclasses.replace(config, pair_direction="before").fingerprint()
    with pytest.raises(ConfigError, match="legacy form") as info:
        legacy_dict(config)
    assert info.value.key == "pairing.direction"


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"dates": [["2023-05-01", "2023-05-31"], ["2023-07-01", "2023-07-31"]]}, "dates"),
        ({"grid": {"resolution": 20}}, "grid.resolution"),
        ({"grid": {"epsg": 32630}}, "grid.epsg"),
        ({"patches": {"edge": "pad"}}, "patches.edge"),
        ({"sentinel2": {"max_roi_cloud": 10}}, "sentinel2.max_roi_cloud"),
        ({"output": {"zarr": True}}, "output"),
        ({"sources": ["local:/data"]}, "sources"),
        ({"mode": "time_series"}, "mode"),
    ],
)
def test_legacy_form_refuses_what_it_cannot_hold(changes: dict[str, Any], key: str) -> None:
    config = parse_config(modern_data(**changes))
    with pytest.raises(ConfigError, match=re.escape(f"'{key}'")):
        legacy_dict(config)


@pytest.mark.parametrize("form", ["modern", "legacy"])
@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_save_and_load(tmp_path: Path, form: str, suffix: str) -> None:
    config = load_config(LEGACY)
    path = tmp_path / "sub" / f"saved{suffix}"
    save_config(config, path, form=form)
    loaded = load_config(path)
    assert loaded.legacy_form == (form == "legacy")
    assert dataclasses.replace(loaded, legacy_form=True) == config
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind


def test_save_overwrites_atomically(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text("old", encoding="utf-8")
    save_config(load_config(MODERN), path)
    assert load_config(path).name == "glasgow-city"


def test_save_refuses_unknown_form(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'form'"):
        save_config(load_config(MODERN), tmp_path / "x.json", form="xml")


# ----- the ROI in its different spellings -----------------------------------------------


@pytest.mark.parametrize(
    "geojson",
    [
        json.dumps(
            {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, "geometry": POLYGON}]}
        ),
        {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, "geometry": POLYGON}]},
        {"type": "Feature", "properties": {"name": "x"}, "geometry": POLYGON},
        json.dumps({"type": "Feature", "properties": {}, "geometry": POLYGON}),
        POLYGON,
        json.dumps(POLYGON),
    ],
    ids=["fc-string", "fc-object", "feature", "feature-string", "polygon", "polygon-string"],
)
def test_geojson_forms_give_the_same_roi(geojson: Any) -> None:
    reference = parse_config(legacy_data())
    config = parse_config(legacy_data(geojson=geojson))
    assert config.roi == reference.roi
    assert config.fingerprint() == reference.fingerprint()
    modern = parse_config(modern_data(roi=geojson))
    assert modern.roi.geometry.equals(reference.roi.geometry)


def test_roi_file_relative_to_config(tmp_path: Path) -> None:
    (tmp_path / "rois").mkdir()
    (tmp_path / "rois" / "square.geojson").write_text(json.dumps(POLYGON), encoding="utf-8")
    data = modern_data()
    del data["roi"]
    data["roi_file"] = "rois/square.geojson"
    data["sources"] = ["local:./products", "local:/abs/path"]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    config = load_config(path)
    assert config.roi.geometry.equals(parse_config(modern_data()).roi.geometry)
    assert config.sources == (f"local:{(tmp_path / 'products').resolve()}", "local:/abs/path")


def test_roi_file_missing(tmp_path: Path) -> None:
    data = modern_data()
    del data["roi"]
    data["roi_file"] = "nope.geojson"
    with pytest.raises(ConfigError, match="'roi_file'"):
        parse_config(data, base_dir=tmp_path)


# ----- legacy specifics -----------------------------------------------------------------


def test_cloud_cover_misspelling_accepted() -> None:
    config = parse_config(legacy_data(cloudcover=None, cloud_cover=[5, 40]))
    assert config.cloud_cover == (5.0, 40.0)
    both = parse_config(legacy_data(cloud_cover=[0, 20]))
    assert both.cloud_cover == (0.0, 20.0)
    with pytest.raises(ConfigError, match="'cloud_cover'"):
        parse_config(legacy_data(cloud_cover=[0, 50]))


@pytest.mark.parametrize(
    ("callback", "mode", "direction"),
    [
        ("S2_with_previous_S1", Mode.S2_WITH_CLOSEST_S1, "before"),
        ("s2_with_previous_s1", Mode.S2_WITH_CLOSEST_S1, "before"),
        ("S1_with_previous_S2", Mode.S1_WITH_CLOSEST_S2, "before"),
        ("S1_WITH_CLOSEST_S2", Mode.S1_WITH_CLOSEST_S2, "closest"),
        ("S2_only", Mode.S2_ONLY, "closest"),
        ("S2", Mode.S2_ONLY, "closest"),
        ("s1_only", Mode.S1_ONLY, "closest"),
        ("S1", Mode.S1_ONLY, "closest"),
        ("S1_multitemporal", Mode.S1_MULTITEMPORAL, "closest"),
        ("Multitemporal", Mode.S1_MULTITEMPORAL, "closest"),
    ],
)
def test_legacy_callbacks(callback: str, mode: Mode, direction: str) -> None:
    data = legacy_data(callback_find_products=callback, callback_snap=callback,
                       bands_S1=["Sigma0_VV_S", "Sigma0_VH_S", "collocationFlags"])  # fmt: skip
    config = parse_config(data)
    assert config.mode is mode
    assert config.pair_direction == direction
    assert config.bands_s1 == ("sigma0_VV", "sigma0_VH", "collocation_flags")
    assert parse_config(legacy_dict(config)) == config


def test_legacy_default_mode_from_bands() -> None:
    assert parse_config(legacy_data(callback_find_products=None, callback_snap=None)).mode is Mode.S2_ONLY
    paired = parse_config(
        legacy_data(callback_find_products=None, callback_snap=None, bands_S1=["Sigma0_VV_S", "Sigma0_VH_S"])
    )
    assert paired.mode is Mode.S2_WITH_CLOSEST_S1
    assert paired.pair_direction == "before"


def test_legacy_2022_default_callback_loads() -> None:
    data = json.loads(LEGACY.read_text(encoding="utf-8"))
    data.update(callback_find_products="S2_with_previous_S1", callback_snap="S2_with_previous_S1",
                bands_S1=["Sigma0_VV_S", "Sigma0_VH_S"])  # fmt: skip
    config = parse_config(data)
    assert config.mode is Mode.S2_WITH_CLOSEST_S1 and config.pair_direction == "before"


def test_legacy_unknown_keys_warn(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="senprep_core.config.legacy"):
        config = parse_config(legacy_data(comment="made by hand"))
    assert config.name == "test"
    assert "comment" in caplog.text


def test_legacy_product_types() -> None:
    assert parse_config(legacy_data(s2_producttype="S2MSI1C")).s2_level == "L1C"
    assert parse_config(legacy_data(s2_producttype="l2a")).s2_level == "L2A"
    assert parse_config(legacy_data(s1_producttype="GRD")).s1_product_type == "GRD"


def test_legacy_opaque_cloud_names_deduplicate() -> None:
    config = parse_config(legacy_data(bands_S2=["B4_M", "opaque_clouds_10m_M", "opaque_clouds_20m_M"]))
    assert config.bands_s2 == ("B04", "opaque_clouds")


def test_form_detection() -> None:
    assert is_legacy_form(legacy_data())
    assert is_legacy_form({"dates": ["20200101", "20200201"]})
    assert is_legacy_form({"name": "x", "bands_S2": ["B4_M"]})
    assert not is_legacy_form(modern_data())
    assert not is_legacy_form({"name": "x", "dates": [["2023-05-01", "2023-05-31"]], "mode": "s2_only"})


def test_modern_single_window_and_compact_dates() -> None:
    config = parse_config(modern_data(dates=["20230501", "20230531"]))
    assert config.date_windows == (DateWindow(date(2023, 5, 1), date(2023, 5, 31)),)
    unquoted = parse_config(modern_data(dates=[[date(2023, 5, 1), date(2023, 5, 2)]]))
    assert unquoted.date_windows[0].end == date(2023, 5, 2)


def test_date_window_contains() -> None:
    window = DateWindow(date(2020, 5, 1), date(2020, 8, 1))
    assert window.contains(datetime(2020, 5, 1, 0, 0))
    assert window.contains(datetime(2020, 8, 1, 23, 59, 59))
    assert not window.contains(datetime(2020, 8, 2, 0, 0))
    assert not window.contains(datetime(2020, 4, 30, 23, 59))
    # 2020-08-02 01:00 at UTC+2 is still 2020-08-01 in UTC
    assert window.contains(datetime(2020, 8, 2, 1, 0, tzinfo=timezone(timedelta(hours=2))))


def test_mode_sensors() -> None:
    assert Mode.S2_ONLY.needs_s2 and not Mode.S2_ONLY.needs_s1
    assert Mode.S1_ONLY.needs_s1 and not Mode.S1_ONLY.needs_s2
    assert Mode.S2_WITH_CLOSEST_S1.needs_s1 and Mode.S2_WITH_CLOSEST_S1.needs_s2
    assert Mode.S1_MULTITEMPORAL.needs_s1 and not Mode.S1_MULTITEMPORAL.needs_s2
    assert Mode.TIME_SERIES.needs_s2


# ----- file errors ----------------------------------------------------------------------


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match=r"'config'.*does not exist"):
        load_config("/no/such/config.json")


def test_json_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "name": "x",\n  "dates": [\n}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="line 4"):
        load_config(path)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nroi: {type: Polygon\ndates: [1, 2]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"'config'.*line \d"):
        load_config(path)


def test_unsupported_suffix(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("x = 1", encoding="utf-8")
    with pytest.raises(ConfigError, match="'config'"):
        load_config(path)


def test_top_level_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("- 1\n- 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="'config'"):
        load_config(path)


# ----- validation -----------------------------------------------------------------------

BOWTIE = {"type": "Polygon", "coordinates": [[[-2.8, 56.7], [-2.7, 56.8], [-2.7, 56.7], [-2.8, 56.8], [-2.8, 56.7]]]}
PROJECTED = {"type": "Polygon", "coordinates": [[[510000, 6280000], [512000, 6280000], [512000, 6282000],
                                                 [510000, 6282000], [510000, 6280000]]]}  # fmt: skip

# (id, data, key expected in the message, a fragment of the bad value, exception class)
INVALID: list[tuple[str, dict[str, Any], str, str, type[ConfigError]]] = [
    ("legacy-end-before-start", legacy_data(dates=["20200801", "20200501"]), "dates", "20200801", ConfigError),
    ("legacy-bad-date", legacy_data(dates=["20200230", "20200801"]), "dates", "20200230", ConfigError),
    ("legacy-date-text", legacy_data(dates=["May 2020", "20200801"]), "dates", "May 2020", ConfigError),
    ("legacy-one-date", legacy_data(dates=["20200501"]), "dates", "20200501", ConfigError),
    ("legacy-point", legacy_data(geojson={"type": "Point", "coordinates": [-2.8, 56.7]}), "geojson", "Point",
     InvalidROIError),
    ("legacy-line", legacy_data(geojson={"type": "LineString", "coordinates": [[-2.8, 56.7], [-2.7, 56.8]]}),
     "geojson", "LineString", InvalidROIError),
    ("legacy-bowtie", legacy_data(geojson=BOWTIE), "geojson", "Self-intersection", InvalidROIError),
    ("legacy-projected", legacy_data(geojson=PROJECTED), "geojson", "510000", InvalidROIError),
    ("legacy-bad-json", legacy_data(geojson="{not json"), "geojson", "{not json", InvalidROIError),
    ("legacy-size-zero", legacy_data(size=[0, 256]), "size", "0", ConfigError),
    ("legacy-size-negative", legacy_data(size=[-1, 256]), "size", "-1", ConfigError),
    ("legacy-size-three", legacy_data(size=[256, 256, 3]), "size", "256", ConfigError),
    ("legacy-size-float", legacy_data(size=[256.5, 256]), "size", "256.5", ConfigError),
    ("legacy-size-text", legacy_data(size="256"), "size", "256", ConfigError),
    ("legacy-overlap-equal", legacy_data(overlap=[256, 0]), "overlap", "256", ConfigError),
    ("legacy-overlap-negative", legacy_data(overlap=[-2, 0]), "overlap", "-2", ConfigError),
    ("legacy-unknown-s2-band", legacy_data(bands_S2=["B4_M", "B99_M"]), "bands_S2", "B99_M", UnknownBandError),
    ("legacy-unknown-s1-band", legacy_data(bands_S1=["Sigma0_XX_S"], callback_find_products="S2_with_previous_S1"),
     "bands_S1", "Sigma0_XX_S", UnknownBandError),
    ("legacy-cloud-over-100", legacy_data(cloudcover=[0, 120]), "cloudcover", "120", ConfigError),
    ("legacy-cloud-negative", legacy_data(cloudcover=[-5, 20]), "cloudcover", "-5", ConfigError),
    ("legacy-cloud-min-gt-max", legacy_data(cloudcover=[50, 20]), "cloudcover", "50", ConfigError),
    ("legacy-misspelt-cloud-bad", legacy_data(cloudcover=None, cloud_cover=[80, 10]), "cloud_cover", "80",
     ConfigError),
    ("legacy-unknown-callback", legacy_data(callback_find_products="S2_with_next_S1"), "callback_find_products",
     "S2_with_next_S1", ConfigError),
    ("legacy-unknown-snap", legacy_data(callback_snap="banana"), "callback_snap", "banana", ConfigError),
    ("legacy-s2-level", legacy_data(s2_producttype="S2MSI3X"), "s2_producttype", "S2MSI3X", ConfigError),
    ("legacy-s1-slc", legacy_data(s1_producttype="SLC"), "s1_producttype", "SLC", ConfigError),
    ("legacy-scl-with-l1c", legacy_data(s2_producttype="S2MSI1C", bands_S2=["B4_M", "scl_cloud_shadow_M"]),
     "bands_S2", "scl_cloud_shadow", ConfigError),
    ("legacy-pair-without-s1", legacy_data(callback_find_products="S2_with_previous_S1"), "bands_S1", "[]",
     ConfigError),
    ("legacy-no-geojson", legacy_data(geojson=None), "geojson", "None", ConfigError),
    ("legacy-filtering-not-bool", legacy_data(cloud_mask_filtering="yes"), "cloud_mask_filtering", "yes",
     ConfigError),
    ("legacy-name-path", legacy_data(name="../etc"), "name", "../etc", ConfigError),
    ("modern-end-before-start", modern_data(dates=[["2023-05-31", "2023-05-01"]]), "dates", "2023-05-31",
     ConfigError),
    ("modern-bad-date", modern_data(dates=[["2023-13-01", "2023-05-31"]]), "dates", "2023-13-01", ConfigError),
    ("modern-point", modern_data(roi={"type": "Point", "coordinates": [-2.8, 56.7]}), "roi", "Point",
     InvalidROIError),
    ("modern-line", modern_data(roi={"type": "LineString", "coordinates": [[-2.8, 56.7], [-2.7, 56.8]]}), "roi",
     "LineString", InvalidROIError),
    ("modern-bowtie", modern_data(roi=BOWTIE), "roi", "Self-intersection", InvalidROIError),
    ("modern-projected", modern_data(roi=PROJECTED), "roi", "510000", InvalidROIError),
    ("modern-roi-number", modern_data(roi=5), "roi", "5", ConfigError),
    ("modern-size-zero", modern_data(patches={"size": [256, 0]}), "patches.size", "0", ConfigError),
    ("modern-size-one-int", modern_data(patches={"size": 256}), "patches.size", "256", ConfigError),
    ("modern-overlap-too-big", modern_data(patches={"overlap": [16, 200]}), "patches.overlap", "200", ConfigError),
    ("modern-overlap-negative", modern_data(patches={"overlap": [-1, 0]}), "patches.overlap", "-1", ConfigError),
    ("modern-edge", modern_data(patches={"edge": "wrap"}), "patches.edge", "wrap", ConfigError),
    ("modern-unknown-s2-band", modern_data(sentinel2={"bands": ["B02", "B13"]}), "sentinel2.bands", "B13",
     UnknownBandError),
    ("modern-unknown-s1-band", modern_data(sentinel1={"bands": ["sigma1_VV"]}), "sentinel1.bands", "sigma1_VV",
     UnknownBandError),
    ("modern-cloud-over-100", modern_data(sentinel2={"cloud_cover": [0, 101]}), "sentinel2.cloud_cover", "101",
     ConfigError),
    ("modern-cloud-min-gt-max", modern_data(sentinel2={"cloud_cover": [60, 10]}), "sentinel2.cloud_cover", "60",
     ConfigError),
    ("modern-max-roi-cloud", modern_data(sentinel2={"max_roi_cloud": 150}), "sentinel2.max_roi_cloud", "150",
     ConfigError),
    ("modern-resolution-zero", modern_data(grid={"resolution": 0}), "grid.resolution", "0", ConfigError),
    ("modern-resolution-negative", modern_data(grid={"resolution": -10}), "grid.resolution", "-10", ConfigError),
    ("modern-epsg-geographic", modern_data(grid={"epsg": 4326}), "grid.epsg", "4326", ConfigError),
    ("modern-epsg-unknown", modern_data(grid={"epsg": 1}), "grid.epsg", "1", ConfigError),
    ("modern-mode", modern_data(mode="s2_with_s3"), "mode", "s2_with_s3", ConfigError),
    ("modern-level", modern_data(sentinel2={"level": "L3"}), "sentinel2.level", "L3", ConfigError),
    ("modern-scl-with-l1c", modern_data(sentinel2={"level": "L1C", "bands": ["B02", "SCL"]}), "sentinel2.bands",
     "SCL", ConfigError),
    ("modern-b10-with-l2a", modern_data(sentinel2={"bands": ["B10"]}), "sentinel2.bands", "B10", ConfigError),
    ("modern-resampling", modern_data(sentinel2={"resampling": "nearest"}), "sentinel2.resampling", "nearest",
     ConfigError),
    ("modern-unknown-top-key", modern_data(datez=[]), "datez", "[]", ConfigError),
    ("modern-unknown-section-key", modern_data(sentinel2={"bandz": ["B02"]}), "sentinel2.bandz", "B02",
     ConfigError),
    ("modern-section-not-mapping", modern_data(grid=[10]), "grid", "10", ConfigError),
    ("modern-min-valid", modern_data(output={"min_valid_fraction": 50}), "output.min_valid_fraction", "50",
     ConfigError),
    ("modern-max-patch-cloud", modern_data(output={"max_patch_cloud": 2}), "output.max_patch_cloud", "2",
     ConfigError),
    ("modern-layout", modern_data(output={"layout": "flat"}), "output.layout", "flat", ConfigError),
    ("modern-stac-not-bool", modern_data(output={"stac": "yes"}), "output.stac", "yes", ConfigError),
    ("modern-max-days", modern_data(pairing={"max_days": 0}), "pairing.max_days", "0", ConfigError),
    ("modern-direction", modern_data(pairing={"direction": "sideways"}), "pairing.direction", "sideways",
     ConfigError),
    ("modern-s1-needs-bands", modern_data(mode="s1_only"), "sentinel1.bands", "[]", ConfigError),
    ("modern-no-roi", {k: v for k, v in modern_data().items() if k != "roi"}, "roi", "None", ConfigError),
    ("modern-no-name", {k: v for k, v in modern_data().items() if k != "name"}, "name", "None", ConfigError),
]  # fmt: skip


@pytest.mark.parametrize(("data", "key", "value", "kind"), [case[1:] for case in INVALID],
                         ids=[case[0] for case in INVALID])  # fmt: skip
def test_invalid_values_raise_config_error(data: dict[str, Any], key: str, value: str, kind: type[Exception]) -> None:
    with pytest.raises(kind) as info:
        parse_config(data)
    error = info.value
    assert isinstance(error, ConfigError)
    assert error.key == key
    message = str(error)
    assert f"'{key}'" in message
    assert value in message
    assert error.fix and error.fix in message


def test_unknown_key_suggests_the_right_one() -> None:
    with pytest.raises(ConfigError, match="did you mean 'bands'") as info:
        parse_config(modern_data(sentinel2={"bandz": ["B02"]}))
    assert "cloud_cover" in str(info.value)  # lists the known keys


def test_unknown_mode_lists_modes() -> None:
    with pytest.raises(ConfigError, match="s1_multitemporal"):
        parse_config(modern_data(mode="fast"))


def test_unknown_callback_lists_callbacks() -> None:
    with pytest.raises(ConfigError, match="S2_with_previous_S1"):
        parse_config(legacy_data(callback_find_products="nope"))


def test_direct_construction_is_validated() -> None:
    config = load_config(MODERN)
    with pytest.raises(ConfigError, match=r"'sentinel2\.cloud_cover'"):
        dataclasses.replace(config, cloud_cover=(50.0, 10.0))
    with pytest.raises(ConfigError, match="'dates'"):
        DateWindow(date(2020, 2, 1), date(2020, 1, 1))
    with pytest.raises(ConfigError, match=r"'output\.compress'"):
        OutputOptions(compress="rar")


# ----- fingerprint ----------------------------------------------------------------------


def test_fingerprint_stable_and_sensitive() -> None:
    first, second = load_config(LEGACY), load_config(LEGACY)
    assert first.fingerprint() == second.fingerprint()
    assert len(first.fingerprint()) == 16
    int(first.fingerprint(), 16)
    changed = parse_config(legacy_data(bands_S2=["B4_M", "B3_M", "B8_M"]))
    assert changed.fingerprint() != parse_config(legacy_data()).fingerprint()


def test_fingerprint_ignores_name_and_sources() -> None:
    base = parse_config(modern_data())
    renamed = parse_config(modern_data(name="other", sources=["local:/elsewhere"]))
    assert renamed.fingerprint() == base.fingerprint()
    # an explicit EPSG equal to the automatic one gives the same grid, so the same fingerprint
    assert parse_config(modern_data(grid={"epsg": 32630})).fingerprint() == base.fingerprint()


@pytest.mark.parametrize(
    "changes",
    [
        {"dates": [["2023-05-01", "2023-06-01"]]},
        {"patches": {"overlap": [0, 0]}},
        {"patches": {"edge": "pad"}},
        {"grid": {"resolution": 20}},
        {"sentinel2": {"cloud_cover": [0, 50]}},
        {"sentinel2": {"resampling": "cubic"}},
        {"output": {"min_valid_fraction": 0.9}},
        {"roi": {"type": "Polygon", "coordinates": [[[-2.82, 56.72], [-2.79, 56.72], [-2.79, 56.74], [-2.82, 56.72]]]}},
    ],
)
def test_fingerprint_changes_with_outputs(changes: dict[str, Any]) -> None:
    assert parse_config(modern_data(**changes)).fingerprint() != parse_config(modern_data()).fingerprint()


def test_config_is_frozen() -> None:
    config: Config = load_config(LEGACY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.name = "x"  # type: ignore[misc]
