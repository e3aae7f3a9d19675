"""Run configuration: one frozen :class:`Config`, read from the modern or the legacy form.

Two on-disk forms describe the same :class:`Config`:

- the **modern** form (JSON or YAML) with sections ``grid``, ``patches``, ``sentinel2``,
  ``sentinel1``, ``pairing`` and ``output`` (see ``docs/configuration.md``);
- the **legacy** JSON form of the 2022 Strathclyde senprep tool (``geojson``, ``dates``,
  ``cloudcover``, ``bands_S2``, ``callback_find_products``...), read verbatim by
  :mod:`senprep_core.config_legacy`.

:func:`parse_config` tells them apart, :func:`load_config` reads a file and
:func:`save_config` writes either form atomically. Every invalid value raises
:class:`~senprep_core.errors.ConfigError` (or a subclass) naming the key, the value and the fix.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import shapely
import yaml
from pyproj import CRS
from pyproj.exceptions import CRSError

from senprep_core.bands import S2_BANDS, canonical_s1_band, canonical_s2_band
from senprep_core.errors import ConfigError
from senprep_core.geo.grid import TargetGrid
from senprep_core.geo.roi import ROI
from senprep_core.geo.tiling import EdgePolicy, Patch, PatchLayout, tile_grid

__all__ = [
    "Config",
    "DateWindow",
    "Mode",
    "OutputOptions",
    "is_legacy_form",
    "load_config",
    "parse_config",
    "save_config",
]


class Mode(str, Enum):
    """What a run produces: which sensors, and how their acquisitions are combined."""

    S2_ONLY = "s2_only"
    S1_ONLY = "s1_only"
    S2_WITH_CLOSEST_S1 = "s2_with_closest_s1"
    S1_WITH_CLOSEST_S2 = "s1_with_closest_s2"
    S1_MULTITEMPORAL = "s1_multitemporal"
    TIME_SERIES = "time_series"

    @property
    def needs_s1(self) -> bool:
        """True when the mode reads Sentinel-1 products."""
        return self in (Mode.S1_ONLY, Mode.S2_WITH_CLOSEST_S1, Mode.S1_WITH_CLOSEST_S2, Mode.S1_MULTITEMPORAL)

    @property
    def needs_s2(self) -> bool:
        """True when the mode reads Sentinel-2 products (``time_series`` is a Sentinel-2 stack)."""
        return self in (Mode.S2_ONLY, Mode.S2_WITH_CLOSEST_S1, Mode.S1_WITH_CLOSEST_S2, Mode.TIME_SERIES)

    @property
    def is_pairing(self) -> bool:
        """True for the modes that pair each primary acquisition with one of the other sensor."""
        return self in (Mode.S2_WITH_CLOSEST_S1, Mode.S1_WITH_CLOSEST_S2)


@dataclass(frozen=True)
class DateWindow:
    """An inclusive range of days (UTC)."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ConfigError(
                "dates",
                [self.start.isoformat(), self.end.isoformat()],
                "the end date must be on or after the start date; swap the two dates",
            )

    def contains(self, t: datetime) -> bool:
        """True when ``t`` falls on a day of the window (aware times are converted to UTC first)."""
        if t.tzinfo is not None:
            t = t.astimezone(timezone.utc)
        return self.start <= t.date() <= self.end

    @property
    def label(self) -> str:
        """``YYYYMMDD-YYYYMMDD``, e.g. ``20200501-20200801``."""
        return f"{self.start:%Y%m%d}-{self.end:%Y%m%d}"

    @property
    def days(self) -> int:
        """Number of days in the window (both ends included)."""
        return (self.end - self.start).days + 1


LAYOUTS = ("default", "legacy")
COMPRESSIONS = ("deflate", "lzw", "zstd", "none")
RESAMPLINGS = ("bilinear", "cubic")
S2_LEVELS = ("L2A", "L1C")
PAIR_DIRECTIONS = ("closest", "before")


@dataclass(frozen=True)
class OutputOptions:
    """How patches are written and which patches are skipped.

    ``min_valid_fraction``: patches with a smaller fraction of valid (non no-data) ROI pixels
    are skipped. ``max_patch_cloud``: a fraction 0..1; cloudier patches are skipped (None keeps all).
    """

    layout: str = "default"
    stac: bool = True
    zarr: bool = False
    compress: str = "deflate"
    min_valid_fraction: float = 0.5
    max_patch_cloud: float | None = None

    def __post_init__(self) -> None:
        _choice(self.layout, "output.layout", LAYOUTS)
        _choice(self.compress, "output.compress", COMPRESSIONS)
        _fraction(self.min_valid_fraction, "output.min_valid_fraction")
        if self.max_patch_cloud is not None:
            _fraction(self.max_patch_cloud, "output.max_patch_cloud")


@dataclass(frozen=True)
class Config:
    """A validated run configuration (immutable).

    Field names follow the modern form; ``legacy_form`` records that it was read from a
    2022-style file. Build one with :func:`parse_config` or :func:`load_config`.
    """

    name: str
    roi: ROI
    date_windows: tuple[DateWindow, ...]
    mode: Mode
    patch: PatchLayout
    s2_level: str = "L2A"
    s1_product_type: str = "GRD"
    bands_s2: tuple[str, ...] = ()
    bands_s1: tuple[str, ...] = ()
    cloud_cover: tuple[float, float] = (0.0, 100.0)
    cloud_mask_filtering: bool = False
    max_roi_cloud: float | None = None
    resolution: float = 10.0
    epsg: int | None = None
    reflectance_resampling: str = "bilinear"
    max_time_difference_days: float = 3.0
    pair_direction: str = "closest"
    sources: tuple[str, ...] = ()
    output: OutputOptions = field(default_factory=OutputOptions)
    legacy_form: bool = False

    def __post_init__(self) -> None:
        _name(self.name, "name")
        if not self.date_windows:
            raise ConfigError("dates", [], "give at least one [start, end] date window")
        _choice(self.s2_level, "sentinel2.level", S2_LEVELS)
        _choice(self.s1_product_type, "sentinel1.product_type", ("GRD",))
        _check_cloud_range(self.cloud_cover, "sentinel2.cloud_cover")
        if self.max_roi_cloud is not None:
            _percent(self.max_roi_cloud, "sentinel2.max_roi_cloud")
        _positive(self.resolution, "grid.resolution")
        _choice(self.reflectance_resampling, "sentinel2.resampling", RESAMPLINGS)
        _positive(self.max_time_difference_days, "pairing.max_days")
        _choice(self.pair_direction, "pairing.direction", PAIR_DIRECTIONS)
        _check_bands(self.mode, self.s2_level, self.bands_s2, self.bands_s1, "sentinel2.bands", "sentinel1.bands")

    # ----- derived geometry -------------------------------------------------------------

    def target_epsg(self) -> int:
        """The grid's EPSG code: ``epsg`` when set, else the ROI's UTM zone."""
        return self.epsg if self.epsg is not None else self.roi.utm_epsg()

    def grid(self) -> TargetGrid:
        """The aligned ROI grid (corners on multiples of ``resolution``) in the target CRS."""
        epsg = self.target_epsg()
        return TargetGrid.for_geometry(self.roi.projected(epsg), epsg, self.resolution)

    def roi_mask(self) -> np.ndarray:
        """Boolean mask of the grid pixels whose centre lies in the ROI.

        An ROI thinner than a pixel selects no centre; then every pixel it touches counts.
        """
        epsg = self.target_epsg()
        projected = self.roi.projected(epsg)
        grid = TargetGrid.for_geometry(projected, epsg, self.resolution)
        mask = grid.rasterize(projected)
        if not mask.any():
            mask = grid.rasterize(projected, all_touched=True)
        return mask

    def patches(self) -> list[Patch]:
        """The patches of the ROI grid that hold at least one ROI pixel."""
        return tile_grid(self.grid(), self.patch, self.roi_mask())

    @property
    def roi_cloud_threshold(self) -> float | None:
        """ROI-level cloud % threshold: ``max_roi_cloud``, or with ``cloud_mask_filtering`` the cloud_cover maximum."""
        if self.max_roi_cloud is not None:
            return self.max_roi_cloud
        return self.cloud_cover[1] if self.cloud_mask_filtering else None

    # ----- serialisation ----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The modern form as plain JSON/YAML-ready data (``parse_config`` reads it back)."""
        return {
            "name": self.name,
            "roi": _geometry_json(self.roi),
            "dates": [[w.start.isoformat(), w.end.isoformat()] for w in self.date_windows],
            "mode": self.mode.value,
            "grid": {"resolution": _plain_number(self.resolution), "epsg": self.epsg},
            "patches": {
                "size": list(self.patch.size),
                "overlap": list(self.patch.overlap),
                "edge": self.patch.edge.value,
            },
            "sentinel2": {
                "level": self.s2_level,
                "bands": list(self.bands_s2),
                "cloud_cover": [_plain_number(v) for v in self.cloud_cover],
                "max_roi_cloud": _plain_number(self.max_roi_cloud),
                "cloud_mask_filtering": self.cloud_mask_filtering,
                "resampling": self.reflectance_resampling,
            },
            "sentinel1": {"product_type": self.s1_product_type, "bands": list(self.bands_s1)},
            "pairing": {"max_days": _plain_number(self.max_time_difference_days), "direction": self.pair_direction},
            "output": {
                "layout": self.output.layout,
                "stac": self.output.stac,
                "zarr": self.output.zarr,
                "compress": self.output.compress,
                "min_valid_fraction": self.output.min_valid_fraction,
                "max_patch_cloud": self.output.max_patch_cloud,
            },
            "sources": list(self.sources),
        }

    def to_legacy_dict(self) -> dict[str, Any]:
        """The legacy (2022) JSON form; raises ConfigError for settings that form cannot hold."""
        from senprep_core.config_legacy import legacy_dict

        return legacy_dict(self)

    def fingerprint(self) -> str:
        """First 16 hex chars of the SHA-256 of everything that changes the output pixels.

        Covers the ROI, date windows, mode and pairing, levels and bands, cloud thresholds,
        the resolved grid CRS and resolution, the patch layout, resampling and the patch
        filters. Leaves out the name, the sources and the file-format options
        (layout, STAC, Zarr, compression), which do not change pixel values.
        """
        geometry = shapely.normalize(self.roi.geometry)
        canonical = {
            "roi": shapely.to_wkt(geometry, rounding_precision=9, trim=True),
            "dates": [w.label for w in self.date_windows],
            "mode": self.mode.value,
            "pair_direction": self.pair_direction if self.mode.is_pairing else None,
            "max_days": self.max_time_difference_days if self.mode.is_pairing else None,
            "s2_level": self.s2_level,
            "s1_product_type": self.s1_product_type,
            "bands_s2": list(self.bands_s2),
            "bands_s1": list(self.bands_s1),
            "cloud_cover": [float(v) for v in self.cloud_cover],
            "cloud_mask_filtering": self.cloud_mask_filtering,
            "max_roi_cloud": self.max_roi_cloud,
            "epsg": self.target_epsg(),
            "resolution": float(self.resolution),
            "patch": [list(self.patch.size), list(self.patch.overlap), self.patch.edge.value],
            "resampling": self.reflectance_resampling,
            "min_valid_fraction": self.output.min_valid_fraction,
            "max_patch_cloud": self.output.max_patch_cloud,
        }
        text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# ----- value checks shared by both forms --------------------------------------------------


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _plain_number(value: float | None) -> float | int | None:
    """Whole floats as ints (``10`` not ``10.0``) for tidy files."""
    if value is None:
        return None
    return int(value) if float(value).is_integer() else float(value)


def _number(value: object, key: str) -> float:
    if not _is_number(value):
        raise ConfigError(key, value, "give a finite number")
    return float(value)  # type: ignore[arg-type]


def _positive(value: object, key: str) -> float:
    number = _number(value, key)
    if number <= 0:
        raise ConfigError(key, value, "give a number greater than 0")
    return number


def _percent(value: object, key: str) -> float:
    number = _number(value, key)
    if not 0 <= number <= 100:
        raise ConfigError(key, value, "give a percentage between 0 and 100")
    return number


def _fraction(value: object, key: str) -> float:
    number = _number(value, key)
    if not 0 <= number <= 1:
        raise ConfigError(key, value, "give a fraction between 0 and 1 (e.g. 0.5 for half)")
    return number


def _bool(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(key, value, "give true or false")
    return value


def _choice(value: object, key: str, choices: Sequence[str]) -> str:
    if isinstance(value, str):
        for choice in choices:
            if value.strip().lower() == choice.lower():
                return choice
    raise ConfigError(key, value, f"use one of {', '.join(choices)}")


def _name(value: object, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(key, value, "give a non-empty name (it names the output folder)")
    if any(c in value for c in "/\\\0") or value.strip() in (".", ".."):
        raise ConfigError(key, value, "use a plain name without '/', '\\' or '..' (it names the output folder)")
    return value


def _parse_date(value: object, key: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if text is not None:
        for fmt in ("%Y%m%d", "%Y-%m-%d"):
            try:
                return datetime.strptime(text, fmt).date()
            except ValueError:
                continue
    raise ConfigError(key, value, "write dates as 'YYYY-MM-DD' or 'YYYYMMDD' (a real calendar day)")


def _parse_window(value: object, key: str) -> DateWindow:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise ConfigError(key, value, "give a window as [start, end], e.g. ['2023-05-01', '2023-05-31']")
    start, end = _parse_date(value[0], key), _parse_date(value[1], key)
    if end < start:
        raise ConfigError(key, list(value), "the end date must be on or after the start date; swap the two dates")
    return DateWindow(start, end)


def _int_pair(value: object, key: str) -> tuple[int, int]:
    if (
        isinstance(value, (str, bytes))
        or not isinstance(value, Sequence)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise ConfigError(key, value, "give two whole numbers of pixels [height, width], e.g. [256, 256]")
    return (int(value[0]), int(value[1]))


def _patch_layout(size: object, overlap: object, edge: object, keys: tuple[str, str, str]) -> PatchLayout:
    size_pair = _int_pair(size, keys[0])
    if min(size_pair) <= 0:
        raise ConfigError(keys[0], list(size_pair), "patch sizes must be positive, e.g. [256, 256]")
    overlap_pair = _int_pair(overlap, keys[1])
    if min(overlap_pair) < 0 or overlap_pair[0] >= size_pair[0] or overlap_pair[1] >= size_pair[1]:
        raise ConfigError(
            keys[1], list(overlap_pair), f"overlap must be >= 0 and smaller than the patch size {list(size_pair)}"
        )
    policies = [p.value for p in EdgePolicy]
    policy = edge if isinstance(edge, EdgePolicy) else EdgePolicy(_choice(edge, keys[2], policies))
    return PatchLayout(size=size_pair, overlap=overlap_pair, edge=policy)


def _check_cloud_range(value: object, key: str) -> tuple[float, float]:
    if (
        isinstance(value, (str, bytes))
        or not isinstance(value, Sequence)
        or len(value) != 2
        or not all(_is_number(v) for v in value)
    ):
        raise ConfigError(key, value, "give a [min, max] cloud percentage range, e.g. [0, 80]")
    low, high = float(value[0]), float(value[1])
    if not (0 <= low <= 100 and 0 <= high <= 100):
        raise ConfigError(key, list(value), "both limits must be percentages between 0 and 100")
    if low > high:
        raise ConfigError(key, list(value), "the minimum must not exceed the maximum; swap them")
    return (low, high)


def _band_list(value: object, key: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigError(key, value, "give a list of band names, e.g. [B02, B03, B04]")
    for item in value:
        if not isinstance(item, str):
            raise ConfigError(key, item, "band names must be strings, e.g. 'B04' or 'sigma0_VV'")
    return list(value)


def _canonical_bands(value: object, key: str, s1: bool) -> tuple[str, ...]:
    """Canonical, de-duplicated band names in the given order."""
    out: list[str] = []
    for name in _band_list(value, key):
        canonical = canonical_s1_band(name, key) if s1 else canonical_s2_band(name, key)
        if canonical not in out:
            out.append(canonical)
    return tuple(out)


def _check_bands(
    mode: Mode, level: str, bands_s2: Sequence[str], bands_s1: Sequence[str], key_s2: str, key_s1: str
) -> None:
    """Bands exist at the processing level and the mode has the bands it needs."""
    for band in bands_s2:
        info = S2_BANDS.get(band)
        if info is None:
            canonical_s2_band(band, key_s2)  # raises UnknownBandError for a non-canonical name
            raise ConfigError(key_s2, band, "use canonical band names (see senprep_core.bands)")
        if level not in info.levels:
            other = "L2A" if level == "L1C" else "L1C"
            levels = "/".join(info.levels)
            raise ConfigError(key_s2, band, f"{band} exists only at level {levels}: drop it or use level {other}")
    for band in bands_s1:
        canonical_s1_band(band, key_s1)
    if mode.needs_s2 and not bands_s2:
        fix = f"mode {mode.value} reads Sentinel-2: list its bands, e.g. [B02, B03, B04]"
        raise ConfigError(key_s2, list(bands_s2), fix)
    if mode.needs_s1 and not bands_s1:
        raise ConfigError(
            key_s1, list(bands_s1), f"mode {mode.value} reads Sentinel-1: list its bands, e.g. [sigma0_VV, sigma0_VH]"
        )


def _s2_level(value: object, key: str) -> str:
    names = {"L2A": "L2A", "S2MSI2A": "L2A", "2A": "L2A", "L1C": "L1C", "S2MSI1C": "L1C", "1C": "L1C"}
    if isinstance(value, str) and value.strip().upper() in names:
        return names[value.strip().upper()]
    raise ConfigError(key, value, "use L2A (S2MSI2A) or L1C (S2MSI1C)")


def _s1_product(value: object, key: str) -> str:
    if isinstance(value, str) and value.strip().upper() == "GRD":
        return "GRD"
    raise ConfigError(key, value, "only GRD Sentinel-1 products are supported; use GRD")


def _epsg(value: object, key: str) -> int | None:
    if value is None:
        return None
    code: object = value
    if isinstance(value, str) and value.strip().upper().startswith("EPSG:"):
        code = value.strip()[5:]
    try:
        if not isinstance(code, (int, str)) or isinstance(code, bool):
            raise TypeError(code)
        number = int(code)
        crs = CRS.from_epsg(number)
    except (ValueError, TypeError, CRSError) as exc:
        raise ConfigError(key, value, "give an EPSG code of a projected CRS in metres (e.g. 32630), or null") from exc
    if not crs.is_projected:
        raise ConfigError(key, value, "the grid needs a projected CRS in metres (e.g. a UTM zone), or null for auto")
    return number


def _roi(value: object, name: str, key: str) -> ROI:
    if not isinstance(value, (str, dict)):
        raise ConfigError(key, value, "give a GeoJSON object (Polygon, Feature, FeatureCollection) or a string of one")
    return ROI.from_geojson(value, name=name, key=key)


def _geometry_json(roi: ROI) -> dict[str, Any]:
    """The ROI geometry with lists instead of tuples (plain JSON/YAML data)."""
    result: dict[str, Any] = json.loads(json.dumps(roi.to_geojson()))
    return result


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


# ----- the modern form --------------------------------------------------------------------

MODERN_KEYS = ("name", "roi", "roi_file", "dates", "mode", "grid", "patches", "sentinel2", "sentinel1", "pairing",
               "output", "sources")  # fmt: skip
GRID_KEYS = ("resolution", "epsg")
PATCH_KEYS = ("size", "overlap", "edge")
S2_KEYS = ("level", "bands", "cloud_cover", "max_roi_cloud", "cloud_mask_filtering", "resampling")
S1_KEYS = ("product_type", "bands")
PAIRING_KEYS = ("max_days", "direction")
OUTPUT_KEYS = ("layout", "stac", "zarr", "compress", "min_valid_fraction", "max_patch_cloud")


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


def _parse_modern(data: Mapping[str, Any], base_dir: Path | None) -> Config:
    _check_keys(data, MODERN_KEYS, "")
    name = _name(data.get("name"), "name")
    if "roi" in data and "roi_file" in data:
        raise ConfigError("roi_file", data["roi_file"], "give either roi or roi_file, not both")
    if "roi" in data:
        roi = _roi(data["roi"], name, "roi")
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
    windows = tuple(_parse_window(w, "dates") for w in dates)
    mode = _parse_mode(data.get("mode", Mode.S2_ONLY.value), "mode")

    grid = _section(data, "grid", GRID_KEYS)
    patches = _section(data, "patches", PATCH_KEYS)
    s2 = _section(data, "sentinel2", S2_KEYS)
    s1 = _section(data, "sentinel1", S1_KEYS)
    pairing = _section(data, "pairing", PAIRING_KEYS)
    out = _section(data, "output", OUTPUT_KEYS)

    layout = _patch_layout(
        patches.get("size", [256, 256]),
        patches.get("overlap", [0, 0]),
        patches.get("edge", EdgePolicy.SHIFT.value),
        ("patches.size", "patches.overlap", "patches.edge"),
    )
    level = _s2_level(s2.get("level", "L2A"), "sentinel2.level")
    bands_s2 = _canonical_bands(s2.get("bands"), "sentinel2.bands", s1=False)
    bands_s1 = _canonical_bands(s1.get("bands"), "sentinel1.bands", s1=True)
    _check_bands(mode, level, bands_s2, bands_s1, "sentinel2.bands", "sentinel1.bands")
    max_roi = s2.get("max_roi_cloud")
    max_patch = out.get("max_patch_cloud")
    sources = data.get("sources") or []
    if isinstance(sources, str) or not isinstance(sources, Sequence):
        raise ConfigError("sources", sources, "give a list of sources, e.g. ['local:./products']")
    output = OutputOptions(
        layout=_choice(out.get("layout", "default"), "output.layout", LAYOUTS),
        stac=_bool(out.get("stac", True), "output.stac"),
        zarr=_bool(out.get("zarr", False), "output.zarr"),
        compress=_choice(out.get("compress", "deflate"), "output.compress", COMPRESSIONS),
        min_valid_fraction=_fraction(out.get("min_valid_fraction", 0.5), "output.min_valid_fraction"),
        max_patch_cloud=None if max_patch is None else _fraction(max_patch, "output.max_patch_cloud"),
    )
    return Config(
        name=name,
        roi=roi,
        date_windows=windows,
        mode=mode,
        patch=layout,
        s2_level=level,
        s1_product_type=_s1_product(s1.get("product_type", "GRD"), "sentinel1.product_type"),
        bands_s2=bands_s2,
        bands_s1=bands_s1,
        cloud_cover=_check_cloud_range(s2.get("cloud_cover", [0, 100]), "sentinel2.cloud_cover"),
        cloud_mask_filtering=_bool(s2.get("cloud_mask_filtering", False), "sentinel2.cloud_mask_filtering"),
        max_roi_cloud=None if max_roi is None else _percent(max_roi, "sentinel2.max_roi_cloud"),
        resolution=_positive(grid.get("resolution", 10.0), "grid.resolution"),
        epsg=_epsg(grid.get("epsg"), "grid.epsg"),
        reflectance_resampling=_choice(s2.get("resampling", "bilinear"), "sentinel2.resampling", RESAMPLINGS),
        max_time_difference_days=_positive(pairing.get("max_days", 3.0), "pairing.max_days"),
        pair_direction=_choice(pairing.get("direction", "closest"), "pairing.direction", PAIR_DIRECTIONS),
        sources=tuple(_resolve_source(s, base_dir, "sources") for s in sources),
        output=output,
        legacy_form=False,
    )


# ----- entry points -----------------------------------------------------------------------


def is_legacy_form(data: Mapping[str, Any]) -> bool:
    """True for a 2022-style configuration.

    It has ``geojson``; or it has ``dates`` (or another legacy key such as ``bands_S2``) and
    no key found only in the modern form (``roi``, ``roi_file``, ``mode``, ``sentinel2``...).
    """
    from senprep_core.config_legacy import LEGACY_KEYS

    if "geojson" in data:
        return True
    if any(key in data for key in MODERN_KEYS if key not in ("name", "dates")):
        return False
    return any(key in data for key in LEGACY_KEYS if key != "name")


def parse_config(data: Mapping[str, Any], base_dir: Path | None = None) -> Config:
    """Validate configuration data (legacy or modern form) into a :class:`Config`.

    ``base_dir`` is where relative paths (``roi_file``, ``local:`` sources) start; usually the
    config file's folder. Raises :class:`ConfigError` naming the key, value and fix.
    """
    if not isinstance(data, Mapping):
        raise ConfigError("config", type(data).__name__, "the configuration must be a mapping of keys to values")
    if is_legacy_form(data):
        from senprep_core.config_legacy import parse_legacy

        return parse_legacy(data, base_dir)
    return _parse_modern(data, base_dir)


def _read_data(path: Path) -> Any:
    suffix = path.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml"):
        raise ConfigError("config", str(path), "name the file *.json, *.yaml or *.yml")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError("config", str(path), "the file does not exist; check the path") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("config", str(path), f"the file is not UTF-8 text (byte {exc.start})") from exc
    except OSError as exc:
        raise ConfigError("config", str(path), f"the file cannot be read ({exc.strerror})") from exc
    if suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                "config", str(path), f"JSON syntax error at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "an unknown line"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError("config", str(path), f"YAML syntax error at {where}: {problem}") from exc


def load_config(path: str | Path) -> Config:
    """Read a ``.json``, ``.yaml`` or ``.yml`` configuration file (either form); the file is not modified."""
    path = Path(path)
    data = _read_data(path)
    if not isinstance(data, Mapping):
        raise ConfigError("config", str(path), "the file must hold a mapping of keys to values at its top level")
    return parse_config(data, base_dir=path.resolve().parent)


def save_config(config: Config, path: Path, form: str = "modern") -> None:
    """Write ``config`` in the ``modern`` or ``legacy`` form, atomically (temp file + rename).

    YAML is written for ``.yaml``/``.yml`` paths, JSON otherwise.
    """
    form = _choice(form, "form", ("modern", "legacy"))
    path = Path(path)
    data = config.to_legacy_dict() if form == "legacy" else config.to_dict()
    if path.suffix.lower() in (".yaml", ".yml"):
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    else:
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o644)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
