"""The modern configuration form: JSON or YAML with one section per concern.

Top-level keys are ``name``, ``roi`` (or ``roi_file``), ``dates``, ``mode`` and ``sources``;
the sections ``grid``, ``patches``, ``sentinel2``, ``sentinel1``, ``pairing``, ``multitemporal`` and ``output``
hold the rest (see ``docs/configuration.md``). Unknown keys are errors, with a suggestion
for a likely misspelling. :func:`parse_modern` reads the form into a
:class:`~senprep_core.config.model.Config`; ``Config.to_dict`` writes it back.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from senprep_core.checks import check_choice, check_cloud_range
from senprep_core.config.model import (
    COMPRESSIONS,
    LAYOUTS,
    PAIR_DIRECTIONS,
    PER_WINDOW,
    RESAMPLINGS,
    Config,
    Mode,
    OutputOptions,
    check_bands,
)
from senprep_core.config.multitemporal import MULTITEMPORAL_KEYS, parse_multitemporal
from senprep_core.config.s1 import S1_OPTION_KEYS, parse_s1_options
from senprep_core.config.values import (
    canonical_bands,
    check_bool,
    check_fraction,
    check_name,
    check_percent,
    check_positive,
    check_resolution,
    parse_epsg,
    parse_patch_layout,
    parse_roi,
    parse_s1_product,
    parse_s2_level,
    parse_window,
)
from senprep_core.errors import ConfigError
from senprep_core.geo.roi import ROI
from senprep_core.geo.tiling import EdgePolicy

__all__ = ["MODERN_KEYS", "parse_modern"]

MODERN_KEYS = ("name", "roi", "roi_file", "dates", "mode", "grid", "patches", "sentinel2", "sentinel1", "pairing",
               "multitemporal", "output", "sources")  # fmt: skip
GRID_KEYS = ("resolution", "epsg")
PATCH_KEYS = ("size", "overlap", "edge")
S2_KEYS = ("level", "bands", "cloud_cover", "max_roi_cloud", "cloud_mask_filtering", "resampling")
S1_KEYS = ("product_type", "bands", *S1_OPTION_KEYS)
PAIRING_KEYS = ("max_days", "direction", "per_window", "weekly")
OUTPUT_KEYS = ("layout", "stac", "zarr", "compress", "min_valid_fraction", "max_patch_cloud")


def _check_keys(data: Mapping[str, Any], known: Sequence[str], prefix: str) -> None:
    for key in data:
        if key not in known:
            full = f"{prefix}{key}"
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ConfigError(full, data[key], f"unknown key; {hint}known keys here: {', '.join(known)}")


def _section(data: Mapping[str, Any], key: str, known: Sequence[str]) -> Mapping[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(key, value, f"give a mapping with keys {', '.join(known)}")
    _check_keys(value, known, f"{key}.")
    return value


def _resolve_source(value: object, base_dir: Path | None, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(key, value, "give a source string such as 'local:/data/products'")
    if value.startswith("local:") and base_dir is not None:
        path = Path(value[len("local:") :]).expanduser()
        if not path.is_absolute():
            return f"local:{(base_dir / path).resolve()}"
    return value


def _parse_mode(value: object, key: str) -> Mode:
    if isinstance(value, Mode):
        return value
    if isinstance(value, str):
        for mode in Mode:
            if value.strip().lower() == mode.value:
                return mode
    raise ConfigError(key, value, f"use one of {', '.join(m.value for m in Mode)}")


def _load_roi_file(value: object, base_dir: Path | None, name: str) -> ROI:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("roi_file", value, "give the path of a GeoJSON file, relative to the config file")
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("roi_file", str(path), f"the file cannot be read ({exc.strerror}); check the path") from exc
    return ROI.from_geojson(text, name=name, key="roi_file")


def parse_modern(data: Mapping[str, Any], base_dir: Path | None) -> Config:
    """Validate the modern form into a :class:`Config`; relative paths start at ``base_dir``."""
    _check_keys(data, MODERN_KEYS, "")
    name = check_name(data.get("name"), "name")
    if "roi" in data and "roi_file" in data:
        raise ConfigError("roi_file", data["roi_file"], "give either roi or roi_file, not both")
    if "roi" in data:
        roi = parse_roi(data["roi"], name, "roi")
    elif "roi_file" in data:
        roi = _load_roi_file(data["roi_file"], base_dir, name)
    else:
        raise ConfigError("roi", None, "add roi: (a GeoJSON polygon) or roi_file: (a path to a .geojson file)")
    dates = data.get("dates")
    if dates is None:
        raise ConfigError("dates", None, "add dates: [[start, end], ...], e.g. [['2023-05-01', '2023-05-31']]")
    if (
        isinstance(dates, Sequence)
        and not isinstance(dates, str)
        and len(dates) == 2
        and not any(isinstance(d, Sequence) and not isinstance(d, str) for d in dates)
    ):
        dates = [dates]  # a single [start, end] window
    if isinstance(dates, (str, bytes)) or not isinstance(dates, Sequence) or not dates:
        raise ConfigError("dates", dates, "give a list of [start, end] windows, e.g. [['2023-05-01', '2023-05-31']]")
    windows = tuple(parse_window(w, "dates") for w in dates)
    mode = _parse_mode(data.get("mode", Mode.S2_ONLY.value), "mode")

    grid = _section(data, "grid", GRID_KEYS)
    patches = _section(data, "patches", PATCH_KEYS)
    s2 = _section(data, "sentinel2", S2_KEYS)
    s1 = _section(data, "sentinel1", S1_KEYS)
    pairing = _section(data, "pairing", PAIRING_KEYS)
    multitemporal = _section(data, "multitemporal", MULTITEMPORAL_KEYS)
    out = _section(data, "output", OUTPUT_KEYS)

    layout = parse_patch_layout(
        patches.get("size", [256, 256]),
        patches.get("overlap", [0, 0]),
        patches.get("edge", EdgePolicy.SHIFT.value),
        ("patches.size", "patches.overlap", "patches.edge"),
    )
    level = parse_s2_level(s2.get("level", "L2A"), "sentinel2.level")
    bands_s2 = canonical_bands(s2.get("bands"), "sentinel2.bands", s1=False)
    bands_s1 = canonical_bands(s1.get("bands"), "sentinel1.bands", s1=True)
    check_bands(mode, level, bands_s2, bands_s1, "sentinel2.bands", "sentinel1.bands")
    max_roi = s2.get("max_roi_cloud")
    max_patch = out.get("max_patch_cloud")
    sources = data.get("sources") or []
    if isinstance(sources, str) or not isinstance(sources, Sequence):
        raise ConfigError("sources", sources, "give a list of sources, e.g. ['local:./products']")
    output = OutputOptions(
        layout=check_choice(out.get("layout", "default"), "output.layout", LAYOUTS),
        stac=check_bool(out.get("stac", True), "output.stac"),
        zarr=check_bool(out.get("zarr", False), "output.zarr"),
        compress=check_choice(out.get("compress", "zstd"), "output.compress", COMPRESSIONS),
        min_valid_fraction=check_fraction(out.get("min_valid_fraction", 0.5), "output.min_valid_fraction"),
        max_patch_cloud=None if max_patch is None else check_fraction(max_patch, "output.max_patch_cloud"),
    )
    return Config(
        name=name,
        roi=roi,
        date_windows=windows,
        mode=mode,
        patch=layout,
        s2_level=level,
        s1_product_type=parse_s1_product(s1.get("product_type", "GRD"), "sentinel1.product_type"),
        bands_s2=bands_s2,
        bands_s1=bands_s1,
        cloud_cover=check_cloud_range(s2.get("cloud_cover", [0, 100]), "sentinel2.cloud_cover"),
        cloud_mask_filtering=check_bool(s2.get("cloud_mask_filtering", False), "sentinel2.cloud_mask_filtering"),
        max_roi_cloud=None if max_roi is None else check_percent(max_roi, "sentinel2.max_roi_cloud"),
        resolution=check_resolution(grid.get("resolution", 10.0), "grid.resolution"),
        epsg=parse_epsg(grid.get("epsg"), "grid.epsg"),
        reflectance_resampling=check_choice(s2.get("resampling", "bilinear"), "sentinel2.resampling", RESAMPLINGS),
        max_time_difference_days=check_positive(pairing.get("max_days", 3.0), "pairing.max_days"),
        pair_direction=check_choice(pairing.get("direction", "closest"), "pairing.direction", PAIR_DIRECTIONS),
        per_window=check_choice(pairing.get("per_window", "all"), "pairing.per_window", PER_WINDOW),
        weekly=check_bool(pairing.get("weekly", False), "pairing.weekly"),
        sources=tuple(_resolve_source(s, base_dir, "sources") for s in sources),
        output=output,
        s1=parse_s1_options(s1, base_dir),
        multitemporal=parse_multitemporal(multitemporal),
        legacy_form=False,
    )
