"""The legacy JSON form of the 2022 Strathclyde senprep tool, read verbatim and written back.

A legacy file looks like::

    {"name": "glasgow", "geojson": "{\\"type\\": \\"FeatureCollection\\", ...}",
     "dates": ["20200501", "20200801"], "cloudcover": [0, 20], "cloud_mask_filtering": false,
     "size": [256, 256], "overlap": [0, 0], "bands_S1": [], "bands_S2": ["B4_M", ...],
     "callback_find_products": "S2_only", "callback_snap": "S2_only"}

``cloud_cover`` is accepted as a spelling of ``cloudcover``; ``s1_producttype`` and
``s2_producttype`` are optional. Unknown keys are logged and ignored, as the 2022 tool did.
Settings the legacy form cannot express (several date windows, a fixed EPSG code, a
resolution other than 10 m...) make :func:`legacy_dict` raise :class:`ConfigError`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from senprep_core.checks import check_cloud_range
from senprep_core.config.model import Config, Mode, OutputOptions, check_bands
from senprep_core.config.values import (
    canonical_bands,
    check_bool,
    check_name,
    parse_patch_layout,
    parse_roi,
    parse_s1_product,
    parse_s2_level,
    parse_window,
)
from senprep_core.errors import ConfigError
from senprep_core.geo.tiling import EdgePolicy

__all__ = ["KNOWN_CALLBACKS", "LEGACY_KEYS", "legacy_dict", "legacy_s1_name", "legacy_s2_name", "parse_legacy"]

log = logging.getLogger(__name__)

LEGACY_KEYS = (
    "name", "geojson", "dates", "cloudcover", "cloud_cover", "cloud_mask_filtering", "size", "overlap",
    "bands_S1", "bands_S2", "callback_find_products", "callback_snap", "s1_producttype", "s2_producttype",
)  # fmt: skip


#: Lower-cased legacy callback name -> (mode, pair direction).
_CALLBACK_TABLE: dict[str, tuple[Mode, str]] = {
    "s2_with_previous_s1": (Mode.S2_WITH_CLOSEST_S1, "before"),
    "s2_with_closest_s1": (Mode.S2_WITH_CLOSEST_S1, "closest"),
    "s1_with_previous_s2": (Mode.S1_WITH_CLOSEST_S2, "before"),
    "s1_with_closest_s2": (Mode.S1_WITH_CLOSEST_S2, "closest"),
    "s2_only": (Mode.S2_ONLY, "closest"),
    "s2": (Mode.S2_ONLY, "closest"),
    "s1_only": (Mode.S1_ONLY, "closest"),
    "s1": (Mode.S1_ONLY, "closest"),
    "s1_multitemporal": (Mode.S1_MULTITEMPORAL, "closest"),
    "multitemporal": (Mode.S1_MULTITEMPORAL, "closest"),
    "time_series": (Mode.TIME_SERIES, "closest"),
    "s2_with_previous_two_s1_with_same_orbit": (Mode.S2_WITH_TWO_S1, "before"),
}
#: The 2022 snap callbacks' suffix for ROI-window processing (what senprep always does): the same mode.
SUBSET_SUFFIX = "__subset"


#: The callback name written for each (mode, direction); the time-series mode has none.
_CALLBACK_NAMES = {
    ("s2_only", "closest"): "S2_only",
    ("s1_only", "closest"): "S1_only",
    ("s1_multitemporal", "closest"): "S1_multitemporal",
    ("s2_with_closest_s1", "before"): "S2_with_previous_S1",
    ("s2_with_closest_s1", "closest"): "S2_with_closest_S1",
    ("s1_with_closest_s2", "before"): "S1_with_previous_S2",
    ("s1_with_closest_s2", "closest"): "S1_with_closest_S2",
    ("s2_with_two_s1", "before"): "s2_with_previous_two_s1_with_same_orbit",
}

KNOWN_CALLBACKS = ("S2_with_previous_S1", "S2_with_closest_S1", "S1_with_previous_S2", "S1_with_closest_S2",
                   "S2_only", "S2", "S1_only", "S1", "S1_multitemporal", "multitemporal",
                   "s2_with_previous_two_s1_with_same_orbit")  # fmt: skip


def _callback_mode(value: object, key: str) -> tuple[Mode, str]:
    name = value.strip().lower().removesuffix(SUBSET_SUFFIX) if isinstance(value, str) else None
    if name in _CALLBACK_TABLE:
        return _CALLBACK_TABLE[name]
    known = ", ".join(KNOWN_CALLBACKS)
    raise ConfigError(key, value, f"use one of the known callbacks: {known} (case does not matter; a "
                      f"{SUBSET_SUFFIX} suffix is the same mode)")  # fmt: skip


def _legacy_mode(data: Mapping[str, Any], has_s1_bands: bool) -> tuple[Mode, str]:
    """Mode and pairing direction from the two callbacks (the product finder decides)."""
    find = data.get("callback_find_products")
    snap = data.get("callback_snap")
    found = _callback_mode(find, "callback_find_products") if find is not None else None
    snapped = _callback_mode(snap, "callback_snap") if snap is not None else None
    if found is not None and snapped is not None and found[0] is not snapped[0]:
        log.warning(
            "legacy config: callback_find_products %r and callback_snap %r name different modes; using %s",
            find,
            snap,
            found[0].value,
        )
    chosen = found or snapped
    if chosen is not None:
        return chosen
    return (Mode.S2_WITH_CLOSEST_S1, "before") if has_s1_bands else (Mode.S2_ONLY, "closest")


def _cloud_range(data: Mapping[str, Any]) -> tuple[float, float]:
    value = None
    if "cloudcover" in data:
        value = check_cloud_range(data["cloudcover"], "cloudcover")
    if "cloud_cover" in data:
        other = check_cloud_range(data["cloud_cover"], "cloud_cover")
        if value is not None and other != value:
            fix = f"it contradicts cloudcover {data['cloudcover']}; keep only one of the two keys"
            raise ConfigError("cloud_cover", data["cloud_cover"], fix)
        value = other
    return value if value is not None else (0.0, 100.0)


def parse_legacy(data: Mapping[str, Any], base_dir: Path | None = None) -> Config:
    """Read the legacy form verbatim into a :class:`~senprep_core.config.model.Config`.

    ``base_dir`` is accepted for symmetry with the modern form; the legacy form holds no paths.
    """
    for key in data:
        if key not in LEGACY_KEYS:
            log.warning("legacy config: ignoring unknown key %r (known keys: %s)", key, ", ".join(LEGACY_KEYS))
    if "name" not in data:
        raise ConfigError("name", None, "add a name for the region (it names the output folder)")
    name = check_name(data["name"], "name")
    if "geojson" not in data:
        raise ConfigError("geojson", None, "add the region of interest as GeoJSON text or object")
    roi = parse_roi(data["geojson"], name, "geojson")
    if "dates" not in data:
        raise ConfigError("dates", None, "add dates: ['YYYYMMDD', 'YYYYMMDD']")
    window = parse_window(data["dates"], "dates")
    layout = parse_patch_layout(
        data.get("size", [256, 256]), data.get("overlap", [0, 0]), EdgePolicy.SHIFT, ("size", "overlap", "edge")
    )
    level = parse_s2_level(data.get("s2_producttype", "S2MSI2A"), "s2_producttype")
    bands_s2 = canonical_bands(data.get("bands_S2"), "bands_S2", s1=False)
    bands_s1 = canonical_bands(data.get("bands_S1"), "bands_S1", s1=True)
    mode, direction = _legacy_mode(data, bool(bands_s1))
    check_bands(mode, level, bands_s2, bands_s1, "bands_S2", "bands_S1")
    return Config(
        name=name,
        roi=roi,
        date_windows=(window,),
        mode=mode,
        patch=layout,
        s2_level=level,
        s1_product_type=parse_s1_product(data.get("s1_producttype", "GRD"), "s1_producttype"),
        bands_s2=bands_s2,
        bands_s1=bands_s1,
        cloud_cover=_cloud_range(data),
        cloud_mask_filtering=check_bool(data.get("cloud_mask_filtering", False), "cloud_mask_filtering"),
        pair_direction=direction,
        legacy_form=True,
    )


# ----- writing ----------------------------------------------------------------------------

_S2_LEGACY_NAMES = {
    "SCL": "quality_scene_classification",
    "AOT": "quality_aot",
    "WVP": "quality_wvp",
    "cloud_probability": "quality_cloud_confidence",
    "snow_probability": "quality_snow_confidence",
    "opaque_clouds": "opaque_clouds_10m",
    "cirrus_clouds": "cirrus_clouds_10m",
    "snow_ice_areas": "snow_and_ice_areas",
}


def legacy_s2_name(band: str, suffix: str) -> str:
    """The SNAP-style legacy name of a canonical Sentinel-2 band (``B04`` -> ``B4_M``,
    ``view_zenith_B04`` -> ``view_zenith_B4_M``)."""
    prefix, numbered = "", band
    if band.startswith("view_") and band.rsplit("_", 1)[-1].startswith("B"):
        prefix, _, numbered = band.rpartition("_")
        prefix += "_"
    if numbered.startswith("B") and numbered[1:].isdigit():
        return f"{prefix}B{int(numbered[1:])}{suffix}"
    return f"{prefix}{_S2_LEGACY_NAMES.get(numbered, numbered)}{suffix}"


def legacy_s1_name(band: str, suffix: str) -> str:
    """The SNAP-style legacy name of a canonical Sentinel-1 band (``sigma0_VV`` -> ``Sigma0_VV_S``)."""
    if band == "collocation_flags":
        return "collocationFlags"
    calibration, _, rest = band.partition("_")
    if calibration in ("sigma0", "gamma0", "beta0"):
        rest = rest.replace("_dB", "_db")
        return f"{calibration.capitalize()}_{rest}{suffix}"
    return band


def _not_legacy(key: str, value: object, what: str) -> ConfigError:
    return ConfigError(key, value, f"the legacy form cannot hold {what}; save the configuration in the modern form")


def legacy_dict(config: Config) -> dict[str, Any]:
    """The legacy JSON form of ``config`` (geojson as a FeatureCollection string, like the 2022 tool).

    Raises :class:`ConfigError` for settings that form cannot hold (several date windows, a fixed EPSG
    code, a resolution other than 10 m...).
    """
    if len(config.date_windows) != 1:
        raise _not_legacy("dates", [w.label for w in config.date_windows], "more than one date window")
    if config.resolution != 10.0:
        raise _not_legacy("grid.resolution", config.resolution, "a resolution other than 10 m")
    if config.epsg is not None:
        raise _not_legacy("grid.epsg", config.epsg, "a fixed EPSG code (it always uses the ROI's UTM zone)")
    if config.patch.edge is not EdgePolicy.SHIFT:
        raise _not_legacy("patches.edge", config.patch.edge.value, "an edge policy other than shift")
    if config.reflectance_resampling != "bilinear":
        raise _not_legacy("sentinel2.resampling", config.reflectance_resampling, "a resampling other than bilinear")
    if config.max_roi_cloud is not None:
        raise _not_legacy("sentinel2.max_roi_cloud", config.max_roi_cloud, "an ROI cloud threshold")
    if config.max_time_difference_days != 3.0:
        raise _not_legacy("pairing.max_days", config.max_time_difference_days, "a pairing window other than 3 days")
    if config.sources:
        raise _not_legacy("sources", list(config.sources), "product sources")
    if config.per_window != "all" or config.weekly:
        raise _not_legacy("pairing", {"per_window": config.per_window, "weekly": config.weekly}, "per-window selection")
    if config.output != OutputOptions():
        changed = {f.name: getattr(config.output, f.name) for f in fields(OutputOptions)
                   if getattr(config.output, f.name) != getattr(OutputOptions(), f.name)}  # fmt: skip
        raise _not_legacy("output", changed, "output options")
    direction = config.pair_direction if config.mode.is_pairing else "closest"
    if direction == "after":
        raise _not_legacy("pairing.direction", direction, "pairing with a later partner only (direction after)")
    callback = _CALLBACK_NAMES.get((config.mode.value, direction))
    if callback is None:
        raise _not_legacy("mode", config.mode.value, f"mode {config.mode.value}")
    s1_primary = config.mode in (Mode.S1_ONLY, Mode.S1_WITH_CLOSEST_S2, Mode.S1_MULTITEMPORAL)
    s2_suffix, s1_suffix = ("_S", "_M") if s1_primary else ("_M", "_S")
    feature = {"type": "Feature", "properties": {}, "geometry": config.roi.to_geojson()}
    geojson = json.dumps({"type": "FeatureCollection", "features": [feature]})
    window = config.date_windows[0]
    low, high = config.cloud_cover
    return {
        "name": config.name,
        "geojson": geojson,
        "dates": [f"{window.start:%Y%m%d}", f"{window.end:%Y%m%d}"],
        "size": list(config.patch.size),
        "overlap": list(config.patch.overlap),
        "cloudcover": [_whole(low), _whole(high)],
        "cloud_mask_filtering": config.cloud_mask_filtering,
        "callback_find_products": callback,
        "callback_snap": callback,
        "bands_S1": [legacy_s1_name(b, s1_suffix) for b in config.bands_s1],
        "bands_S2": [legacy_s2_name(b, s2_suffix) for b in config.bands_s2],
        "s1_producttype": config.s1_product_type,
        "s2_producttype": "S2MSI2A" if config.s2_level == "L2A" else "S2MSI1C",
    }


def _whole(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value
