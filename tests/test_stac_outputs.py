"""The run's STAC catalog: collections per modality, pair items holding both sensors, proj/eo/sar/sat fields.

Everything validates offline: pystac ships the core JSON schemas; for the four extensions the test
gives the validator small local schemas written from the extensions' field tables (types, enums,
required item fields, no unknown prefixed fields), and fails if anything else would be fetched.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pystac
import pytest
from pystac.extensions.eo import EOExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.sar import SarExtension
from pystac.extensions.sat import SatExtension
from pystac.validation.stac_validator import JsonSchemaSTACValidator

from senprep_core.outputs.run_folder import COLLECTIONS_DIR, ITEMS_DIR, RunFolder
from senprep_core.outputs.stac import PAIRS_COLLECTION, S1_COLLECTION, S2_COLLECTION, write_catalog
from tests.conftest import commit_entries, make_demo_runs


def _fields_schema(prefix: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Objects whose ``<prefix>:`` keys are only the listed ones, each of the given form."""
    return {
        "type": "object",
        "properties": {f"{prefix}:{k}": v for k, v in fields.items()},
        "patternProperties": {f"^(?!{prefix}:)": {}},
        "additionalProperties": False,
    }


def _extension_schema(uri: str, prefix: str, fields: dict[str, Any], item_rule: dict[str, Any]) -> dict[str, Any]:
    """An extension schema: item properties follow ``item_rule`` and the fields; assets follow the fields."""
    shape = _fields_schema(prefix, fields)
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": uri,
        "type": "object",
        "required": ["stac_extensions"],
        "properties": {"stac_extensions": {"type": "array", "contains": {"const": uri}}},
        "if": {"properties": {"type": {"const": "Feature"}}},
        "then": {
            "required": ["properties", "assets"],
            "properties": {
                "properties": {"allOf": [item_rule, shape]},
                "assets": {"type": "object", "additionalProperties": shape},
            },
        },
    }


_NUMBERS = {"type": "array", "items": {"type": "number"}}
EXTENSION_SCHEMAS = {
    SarExtension.get_schema_uri(): _extension_schema(
        SarExtension.get_schema_uri(),
        "sar",
        {
            "instrument_mode": {"type": "string", "minLength": 1},
            "frequency_band": {"enum": ["P", "L", "S", "C", "X", "Ku", "K", "Ka"]},
            "center_frequency": {"type": "number"},
            "polarizations": {
                "type": "array",
                "minItems": 1,
                "maxItems": 4,
                "uniqueItems": True,
                "items": {"enum": ["HH", "VV", "HV", "VH"]},
            },
            "product_type": {"type": "string", "minLength": 1},
        },
        {"required": ["sar:instrument_mode", "sar:frequency_band", "sar:polarizations"]},
    ),
    SatExtension.get_schema_uri(): _extension_schema(
        SatExtension.get_schema_uri(),
        "sat",
        {
            "platform_international_designator": {"type": "string", "pattern": r"^\d{4}-\d{3}[A-Z]{1,3}$"},
            "orbit_state": {"enum": ["ascending", "descending", "geostationary"]},
            "absolute_orbit": {"type": "integer", "minimum": 1},
            "relative_orbit": {"type": "integer", "minimum": 1},
        },
        {
            "anyOf": [
                {"required": [f"sat:{k}"]}
                for k in ("platform_international_designator", "orbit_state", "absolute_orbit", "relative_orbit")
            ]
        },
    ),
    EOExtension.get_schema_uri(): _extension_schema(
        EOExtension.get_schema_uri(),
        "eo",
        {"cloud_cover": {"type": "number", "minimum": 0, "maximum": 100}},
        {},
    ),
    ProjectionExtension.get_schema_uri(): _extension_schema(
        ProjectionExtension.get_schema_uri(),
        "proj",
        {
            "code": {"type": ["string", "null"], "pattern": r"^EPSG:\d+$"},
            "shape": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "integer", "minimum": 0}},
            "transform": {**_NUMBERS, "oneOf": [{"minItems": 6, "maxItems": 6}, {"minItems": 9, "maxItems": 9}]},
            "bbox": {**_NUMBERS, "oneOf": [{"minItems": 4, "maxItems": 4}, {"minItems": 6, "maxItems": 6}]},
        },
        {"required": ["proj:code", "proj:shape", "proj:transform"]},
    ),
}


class OfflineValidator(JsonSchemaSTACValidator):
    """pystac's JSON-schema validator with the extension schemas above; it never fetches anything."""

    def __init__(self) -> None:
        super().__init__()
        self.schema_cache.update(EXTENSION_SCHEMAS)

    def _get_schema(self, schema_uri: str) -> dict[str, Any]:
        if schema_uri not in self.schema_cache:
            raise AssertionError(f"validation would fetch {schema_uri} over the network")
        return self.schema_cache[schema_uri]


def validate_tree(catalog_path: Path) -> list[pystac.Item]:
    """Validate the catalog, its collections and items (core + extensions); return the items."""
    validator = OfflineValidator()
    catalog = pystac.Catalog.from_file(str(catalog_path))
    pystac.validation.validate_dict(catalog.to_dict(), validator=validator)
    items = []
    for collection in catalog.get_children():
        assert isinstance(collection, pystac.Collection)
        pystac.validation.validate_dict(collection.to_dict(), validator=validator)
        for item in collection.get_items():
            checked = pystac.validation.validate_dict(item.to_dict(), validator=validator)
            assert set(item.stac_extensions) <= set(checked)  # every extension really was validated
            items.append(item)
    return items


@pytest.fixture(scope="module")
def runs(demo_products: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The demo's S2 and S1 runs, made with the pipeline (which writes the catalog with this module)."""
    return make_demo_runs(demo_products, tmp_path_factory.mktemp("stac-runs"))


def _entries(run_dir: Path) -> list[dict[str, Any]]:
    manifests = sorted(run_dir.glob("patches/*/unit.json"))
    return [e for m in manifests for e in json.loads(m.read_text())["patches"]]


def _write(outdir: Path, name: str, entries: list[dict[str, Any]]) -> int:
    """Commit manifest-form entries as the units of ``outdir`` (with their items), then write the catalog."""
    return write_catalog(RunFolder(outdir), name, commit_entries(outdir, entries))


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_s2_run_catalog_validates_with_one_sentinel2_collection(runs: dict[str, Path]) -> None:
    run_dir = runs["s2"]
    items = validate_tree(run_dir / "catalog.json")
    entries = {f"{e['unit_id']}_{e['patch_id']}": e for e in _entries(run_dir)}
    assert sorted(i.id for i in items) == sorted(entries) and len(items) == len(list(run_dir.glob("patches/*/*.tif")))
    assert [p.name for p in (run_dir / COLLECTIONS_DIR).iterdir()] == [S2_COLLECTION]
    for item in items:
        entry = entries[item.id]
        p = item.properties
        assert item.collection_id == S2_COLLECTION
        assert p["eo:cloud_cover"] == pytest.approx(100 * entry["cloud_fraction"])
        assert p["sat:orbit_state"] == "descending" and p["sat:relative_orbit"] == 80  # R080 in the names
        assert (
            p["sat:platform_international_designator"]
            == {"sentinel-2a": "2015-028A", "sentinel-2b": "2017-013A"}[entry["platform"]]
        )
        assert not any(k.startswith("sar:") for k in p)
        assert p["proj:code"] == "EPSG:32630" and p["proj:shape"] == [128, 128]
        assert item.datetime == _time(entry["sensing_time"])
        assert item.assets["S2"].extra_fields["bands"] == [{"name": b} for b in entry["bands"]]
        assert Path(item.assets["S2"].get_absolute_href() or "").is_file()
        assert item.assets["S2_metadata"].roles == ["metadata"]


def test_s1_run_items_carry_sar_and_sat_fields(runs: dict[str, Path]) -> None:
    run_dir = runs["s1"]
    items = validate_tree(run_dir / "catalog.json")
    entries = {f"{e['unit_id']}_{e['patch_id']}": e for e in _entries(run_dir)}
    assert sorted(i.id for i in items) == sorted(entries)
    assert {i.collection_id for i in items} == {S1_COLLECTION}
    directions = set()
    for item in items:
        entry = entries[item.id]
        p = item.properties
        assert p["sar:instrument_mode"] == "IW" and p["sar:product_type"] == "GRD"
        assert p["sar:frequency_band"] == "C" and p["sar:center_frequency"] == 5.405
        assert p["sar:polarizations"] == ["VV", "VH"]
        assert p["sat:orbit_state"] == entry["modalities"]["S1"]["orbit_direction"]
        assert p["sat:relative_orbit"] == entry["modalities"]["S1"]["relative_orbit"]
        assert p["sat:absolute_orbit"] == int(entry["product_ids"][0].split("_")[6])
        assert p["sat:platform_international_designator"] == "2014-016A"
        assert "eo:cloud_cover" not in p and p["constellation"] == "sentinel-1"
        directions.add(p["sat:orbit_state"])
    assert directions == {"ascending", "descending"}  # the demo has one GRD of each


def test_collection_extents_cover_their_items(runs: dict[str, Path]) -> None:
    for run_dir in runs.values():
        catalog = pystac.Catalog.from_file(str(run_dir / "catalog.json"))
        for collection in catalog.get_children():
            assert isinstance(collection, pystac.Collection)
            items = list(collection.get_items())
            west, south, east, north = collection.extent.spatial.bboxes[0]
            for item in items:
                assert item.bbox is not None
                assert west <= item.bbox[0] and south <= item.bbox[1] and item.bbox[2] <= east and item.bbox[3] <= north
            assert west == min(i.bbox[0] for i in items if i.bbox) and north == max(i.bbox[3] for i in items if i.bbox)
            start, end = collection.extent.temporal.intervals[0]
            assert start == min(i.datetime for i in items if i.datetime)
            assert end == max(i.datetime for i in items if i.datetime)
            assert collection.license == "other" and collection.get_single_link("license") is not None


def _pair_entry(s2: dict[str, Any], s1: dict[str, Any], primary: str) -> dict[str, Any]:
    """A paired unit's entry as the pipeline writes it, from an S2 and an S1 entry of the same patch."""
    first, second = (s2, s1) if primary == "S2" else (s1, s2)
    secondary = "S1" if primary == "S2" else "S2"
    delta = (_time(second["sensing_time"]) - _time(first["sensing_time"])).total_seconds() / 3600
    about = {k: first[k] for k in ("bands", "sensing_time", "product_ids", "platform", "valid_fraction")}
    return {
        "unit_id": f"{first['unit_id']}+{second['unit_id'][:3]}",
        "patch_id": first["patch_id"],
        "modality": primary,
        "files": {**s2["files"], **s1["files"]},
        "grid": first["grid"],
        "window": first["window"],
        **about,
        "cloud_fraction": first["cloud_fraction"],
        "modalities": {"S2": s2["modalities"]["S2"], "S1": s1["modalities"]["S1"]},
        "pair": {"primary": primary, "secondary": secondary, "delta_t_hours": round(delta, 3)},
    }


@pytest.fixture(scope="module")
def paired(runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """A run folder holding one S2 and one S1 unit's patches, and hand-made pair entries over them."""
    outdir = tmp_path_factory.mktemp("pairs")
    s2_entries = [e for e in _entries(runs["s2"]) if e["unit_id"].startswith("S2B_MSIL2A_20220420")]
    s1_entries = [e for e in _entries(runs["s1"]) if e["unit_id"].startswith("S1A_IW_GRDH_1SDV_20220421")]
    for run_dir, entries in ((runs["s2"], s2_entries), (runs["s1"], s1_entries)):
        shutil.copytree(run_dir / "patches" / entries[0]["unit_id"], outdir / "patches" / entries[0]["unit_id"])
    by_patch = {e["patch_id"]: e for e in s1_entries}
    assert {e["grid"]["transform"][2] for e in s2_entries} == {e["grid"]["transform"][2] for e in s1_entries}
    pairs = [_pair_entry(e, by_patch[e["patch_id"]], "S2") for e in s2_entries]
    pairs += [_pair_entry(e, by_patch[e["patch_id"]], "S1") for e in s2_entries[:1]]
    return outdir, pairs


def test_pair_items_hold_both_sensors(paired: tuple[Path, list[dict[str, Any]]]) -> None:
    outdir, pairs = paired
    _write(outdir, "pairs", pairs)
    items = {i.id: i for i in validate_tree(outdir / "catalog.json")}
    assert len(items) == len(pairs)
    assert [p.name for p in (outdir / COLLECTIONS_DIR).iterdir()] == [PAIRS_COLLECTION]
    for entry in pairs:
        item = items[f"{entry['unit_id']}_{entry['patch_id']}"]
        p = item.properties
        s1, s2 = entry["modalities"]["S1"], entry["modalities"]["S2"]
        assert set(item.assets) == {"S1", "S2", "S1_metadata", "S2_metadata"}
        for key in ("S1", "S2"):
            assert item.assets[key].roles == ["data"] and item.assets[f"{key}_metadata"].roles == ["metadata"]
            assert (
                Path(item.assets[key].get_absolute_href() or "").resolve() == (outdir / entry["files"][key]).resolve()
            )
        primary = entry["pair"]["primary"]
        assert p["senprep:primary"] == primary
        assert item.datetime == _time(entry["modalities"][primary]["sensing_time"])
        times = sorted([_time(s1["sensing_time"]), _time(s2["sensing_time"])])
        assert [item.common_metadata.start_datetime, item.common_metadata.end_datetime] == times
        assert _time(p["senprep:s1_datetime"]) == _time(s1["sensing_time"])
        assert _time(p["senprep:s2_datetime"]) == _time(s2["sensing_time"])
        assert p["senprep:delta_t_hours"] == entry["pair"]["delta_t_hours"]
        assert p["platform"] == entry["modalities"][primary]["platform"]
        assert p["instruments"] == ["c-sar", "msi"]
        first, second = (s2, s1) if primary == "S2" else (s1, s2)  # the primary's products first
        assert p["senprep:product_ids"] == [*first["product_ids"], *second["product_ids"]]
        # item level: SAR and orbit of the S1 acquisition, cloud of the S2 one
        assert p["sar:polarizations"] == ["VV", "VH"] and p["sar:instrument_mode"] == "IW"
        assert p["sat:orbit_state"] == s1["orbit_direction"] == "descending"
        assert p["sat:relative_orbit"] == s1["relative_orbit"]
        assert p["eo:cloud_cover"] == pytest.approx(100 * s2["cloud_fraction"])
        # asset level: each sensor's own time, platform and extension fields
        a1, a2 = item.assets["S1"].extra_fields, item.assets["S2"].extra_fields
        assert _time(a1["datetime"]) == _time(s1["sensing_time"]) and a1["platform"] == "sentinel-1a"
        assert a1["sar:product_type"] == "GRD" and a1["sat:orbit_state"] == "descending"
        assert _time(a2["datetime"]) == _time(s2["sensing_time"]) and a2["platform"] == "sentinel-2b"
        assert a2["eo:cloud_cover"] == pytest.approx(100 * s2["cloud_fraction"]) and a2["sat:relative_orbit"] == 80
        assert a2["instruments"] == ["msi"] and a1["instruments"] == ["c-sar"]
        assert [b["name"] for b in a1["bands"]] == s1["bands"] and [b["name"] for b in a2["bands"]] == s2["bands"]
    s1_primary = [i for i in items.values() if i.properties["senprep:primary"] == "S1"]
    assert len(s1_primary) == 1 and s1_primary[0].properties["senprep:delta_t_hours"] < 0  # the S2 came first


def test_mixed_catalog_has_a_collection_per_kind_and_drops_stale_ones(
    runs: dict[str, Path], paired: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    outdir, pairs = paired
    outdir = Path(shutil.copytree(outdir, tmp_path / "mixed"))
    s2_single = [e for e in _entries(runs["s2"]) if e["unit_id"] in {p["unit_id"].split("+")[0] for p in pairs}]
    s1_single = [e for e in _entries(runs["s1"]) if e["unit_id"].startswith("S1A_IW_GRDH_1SDV_20220421")]
    everything = s2_single + s1_single + pairs
    assert _write(outdir, "mixed", everything) > 0
    items = validate_tree(outdir / "catalog.json")
    counts = {
        cid: sum(i.collection_id == cid for i in items) for cid in (S1_COLLECTION, S2_COLLECTION, PAIRS_COLLECTION)
    }
    assert counts == {S1_COLLECTION: len(s1_single), S2_COLLECTION: len(s2_single), PAIRS_COLLECTION: len(pairs)}
    before = {p: p.stat().st_mtime_ns for p in outdir.rglob("*.json") if "patches" not in p.parts}
    assert _write(outdir, "mixed", everything) == 0  # nothing changed: nothing rewritten
    assert before == {p: p.stat().st_mtime_ns for p in outdir.rglob("*.json") if "patches" not in p.parts}
    _write(outdir, "mixed", s2_single + s1_single)
    assert sorted(p.name for p in (outdir / COLLECTIONS_DIR).iterdir()) == [S1_COLLECTION, S2_COLLECTION]
    assert len(list((outdir / ITEMS_DIR).glob("*.json"))) == len(s2_single) + len(s1_single)
    catalog = pystac.Catalog.from_file(str(outdir / "catalog.json"))
    assert sorted(c.id for c in catalog.get_children()) == [S1_COLLECTION, S2_COLLECTION]


def test_entries_without_modalities_still_make_items(runs: dict[str, Path], tmp_path: Path) -> None:
    """Manifests written before ``modalities`` existed describe one sensor with top-level fields."""
    run_dir = runs["s2"]
    old = [{k: v for k, v in e.items() if k != "modalities"} for e in _entries(run_dir)]
    outdir = Path(shutil.copytree(run_dir / "patches", tmp_path / "old" / "patches")).parent
    _write(outdir, "old", old)
    items = validate_tree(outdir / "catalog.json")
    assert len(items) == len(old) and {i.collection_id for i in items} == {S2_COLLECTION}
    assert all("eo:cloud_cover" in i.properties and "sat:orbit_state" in i.properties for i in items)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"sar:polarizations": ["VV", "XX"]}, "sar"),
        ({"sar:frequency_band": "Q"}, "sar"),
        ({"sar:look_count": 4}, "sar"),  # not a field of the extension
        ({"sat:orbit_state": "sideways"}, "sat"),
        ({"sat:relative_orbit": 0}, "sat"),
        ({"proj:shape": [128]}, "projection"),
    ],
)
def test_offline_validator_rejects_bad_extension_fields(
    runs: dict[str, Path], change: dict[str, Any], where: str
) -> None:
    """The local extension schemas do check: a wrong value of each kind fails validation."""
    item = json.loads(next((runs["s1"] / ITEMS_DIR).glob("*.json")).read_text())
    pystac.validation.validate_dict(item, validator=OfflineValidator())
    item["properties"].update(change)
    with pytest.raises(pystac.errors.STACValidationError, match=where):
        pystac.validation.validate_dict(item, validator=OfflineValidator())
