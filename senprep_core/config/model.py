"""The run configuration's model: :class:`Mode`, :class:`OutputOptions` and the frozen :class:`Config`.

A :class:`Config` checks its values when built (each invalid one raises
:class:`~senprep_core.errors.ConfigError` naming the key, the value and the fix), derives the grid,
ROI mask and patches, and writes the modern form (:meth:`Config.to_dict`). The two on-disk forms are
read by :mod:`senprep_core.config.modern` and :mod:`senprep_core.config.legacy`;
:func:`check_bands` is the rule both apply to the bands of a mode.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np
import shapely

from senprep_core.bands import S2_BANDS, canonical_s1_band, canonical_s2_band
from senprep_core.checks import check_choice, check_cloud_range
from senprep_core.config.multitemporal import MultitemporalOptions
from senprep_core.config.values import check_fraction, check_name, check_percent, check_positive, check_resolution
from senprep_core.errors import ConfigError
from senprep_core.geo.grid import TargetGrid
from senprep_core.geo.roi import ROI
from senprep_core.geo.tiling import Patch, PatchLayout, tile_grid
from senprep_core.s1.options import S1Options
from senprep_core.timeutil import DateWindow

__all__ = [
    "COMPRESSIONS",
    "LAYOUTS",
    "PAIR_DIRECTIONS",
    "PER_WINDOW",
    "RESAMPLINGS",
    "S2_LEVELS",
    "Config",
    "Mode",
    "OutputOptions",
    "check_bands",
]


class Mode(str, Enum):
    """What a run produces: which sensors, and how their acquisitions are combined."""

    S2_ONLY = "s2_only"
    S1_ONLY = "s1_only"
    S2_WITH_CLOSEST_S1 = "s2_with_closest_s1"
    S1_WITH_CLOSEST_S2 = "s1_with_closest_s2"
    S1_MULTITEMPORAL = "s1_multitemporal"
    S2_WITH_TWO_S1 = "s2_with_two_s1"  # an S2, its closest S1, and that S1's orbit one repeat earlier
    TIME_SERIES = "time_series"

    @property
    def needs_s1(self) -> bool:
        """True when the mode reads Sentinel-1 products."""
        return self not in (Mode.S2_ONLY, Mode.TIME_SERIES)

    @property
    def needs_s2(self) -> bool:
        """True when the mode reads Sentinel-2 products (``time_series`` by default; it may read S1 too, or S1
        only: see :attr:`Config.reads_s1` / :attr:`Config.reads_s2`)."""
        return self not in (Mode.S1_ONLY, Mode.S1_MULTITEMPORAL)

    @property
    def is_pairing(self) -> bool:
        """True for the modes that pair each primary acquisition with one of the other sensor."""
        return self in (Mode.S2_WITH_CLOSEST_S1, Mode.S1_WITH_CLOSEST_S2, Mode.S2_WITH_TWO_S1)


LAYOUTS = ("default", "legacy")
COMPRESSIONS = ("deflate", "lzw", "zstd", "none")
RESAMPLINGS = ("bilinear", "cubic")
S2_LEVELS = ("L2A", "L1C")
PAIR_DIRECTIONS = ("closest", "before", "after")
PER_WINDOW = ("all", "best")


@dataclass(frozen=True)
class OutputOptions:
    """How patches are written and which patches are skipped.

    ``min_valid_fraction``: patches with a smaller fraction of valid (non no-data) ROI pixels
    are skipped. ``max_patch_cloud``: a fraction 0..1; cloudier patches are skipped (None keeps all).
    """

    layout: str = "default"
    stac: bool = True
    zarr: bool = False
    compress: str = "zstd"
    min_valid_fraction: float = 0.5
    max_patch_cloud: float | None = None

    def __post_init__(self) -> None:
        check_choice(self.layout, "output.layout", LAYOUTS)
        check_choice(self.compress, "output.compress", COMPRESSIONS)
        check_fraction(self.min_valid_fraction, "output.min_valid_fraction")
        if self.max_patch_cloud is not None:
            check_fraction(self.max_patch_cloud, "output.max_patch_cloud")


def check_bands(
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
    if mode is Mode.TIME_SERIES:
        if not bands_s2 and not bands_s1:
            fix = ("mode time_series stacks Sentinel-2, Sentinel-1 or both: list sentinel2.bands (e.g. [B02, B03, "
                   "B04]) and/or sentinel1.bands (e.g. [sigma0_VV, sigma0_VH])")  # fmt: skip
            raise ConfigError(key_s2, list(bands_s2), fix)
        return
    if mode.needs_s2 and not bands_s2:
        fix = f"mode {mode.value} reads Sentinel-2: list its bands, e.g. [B02, B03, B04]"
        raise ConfigError(key_s2, list(bands_s2), fix)
    if mode.needs_s1 and not bands_s1:
        raise ConfigError(
            key_s1, list(bands_s1), f"mode {mode.value} reads Sentinel-1: list its bands, e.g. [sigma0_VV, sigma0_VH]"
        )


def unused_settings(config: Config) -> list[str]:
    """Settings the configuration's mode does not use (each said, so nothing is dropped silently)."""
    out: list[str] = []
    if config.mode is Mode.TIME_SERIES:  # reads the sensors whose bands are listed
        return out + _unused_multitemporal(config)
    if config.bands_s1 and not config.mode.needs_s1:
        out.append(f"sentinel1.bands ({', '.join(config.bands_s1)}) are not used by mode {config.mode.value}: "
                   "it reads Sentinel-2 only (a pairing mode such as s2_with_closest_s1 reads both)")  # fmt: skip
    if config.bands_s2 and not config.mode.needs_s2:
        out.append(f"sentinel2.bands ({', '.join(config.bands_s2)}) are not used by mode {config.mode.value}: "
                   "it reads Sentinel-1 only (a pairing mode such as s1_with_closest_s2 reads both)")  # fmt: skip
    return out + _unused_multitemporal(config)


def _unused_multitemporal(config: Config) -> list[str]:
    if config.multitemporal.is_default or config.mode is Mode.S1_MULTITEMPORAL:
        return []
    return [f"the multitemporal section is not used by mode {config.mode.value}: only s1_multitemporal makes stacks"]


@dataclass(frozen=True)
class Config:
    """A validated run configuration (immutable).

    Field names follow the modern form; ``legacy_form`` records that it was read from a
    2022-style file. Build one with :func:`~senprep_core.config.parse_config` or
    :func:`~senprep_core.config.load_config`.
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
    per_window: str = "all"  # "all" acquisitions, or the "best" (least cloudy) primary per window / week
    weekly: bool = False  # legacy weekly binning: windows cut into Monday-Sunday weeks
    sources: tuple[str, ...] = ()
    output: OutputOptions = field(default_factory=OutputOptions)
    s1: S1Options = field(default_factory=S1Options)
    multitemporal: MultitemporalOptions = field(default_factory=MultitemporalOptions)
    legacy_form: bool = False

    def __post_init__(self) -> None:
        check_name(self.name, "name")
        if not self.date_windows:
            raise ConfigError("dates", [], "give at least one [start, end] date window")
        check_choice(self.s2_level, "sentinel2.level", S2_LEVELS)
        check_choice(self.s1_product_type, "sentinel1.product_type", ("GRD",))
        check_cloud_range(self.cloud_cover, "sentinel2.cloud_cover")
        if self.max_roi_cloud is not None:
            check_percent(self.max_roi_cloud, "sentinel2.max_roi_cloud")
        check_resolution(self.resolution, "grid.resolution")
        check_choice(self.reflectance_resampling, "sentinel2.resampling", RESAMPLINGS)
        check_positive(self.max_time_difference_days, "pairing.max_days")
        check_choice(self.pair_direction, "pairing.direction", PAIR_DIRECTIONS)
        check_choice(self.per_window, "pairing.per_window", PER_WINDOW)
        check_bands(self.mode, self.s2_level, self.bands_s2, self.bands_s1, "sentinel2.bands", "sentinel1.bands")
        if self.multitemporal.stack_filter is not None and self.s1.backend != "native":
            raise ConfigError("multitemporal.speckle_filter", self.multitemporal.speckle_filter,
                              "the Quegan filter runs in the native chain: set sentinel1.backend: native, "
                              "or multitemporal.speckle_filter: none")  # fmt: skip

    # ----- sensors -------------------------------------------------------------------------

    @property
    def reads_s1(self) -> bool:
        """True when the run reads Sentinel-1 (``time_series``: when S1 bands are listed)."""
        return bool(self.bands_s1) if self.mode is Mode.TIME_SERIES else self.mode.needs_s1

    @property
    def pairs_sensors(self) -> bool:
        """True when each primary acquisition is paired with the other sensor's closest one (the pairing modes,
        and ``time_series`` of both sensors: each S2 with its closest S1)."""
        return self.mode.is_pairing or (self.mode is Mode.TIME_SERIES and self.reads_s1 and self.reads_s2)

    @property
    def reads_s2(self) -> bool:
        """True when the run reads Sentinel-2 (``time_series``: when S2 bands are listed)."""
        return bool(self.bands_s2) if self.mode is Mode.TIME_SERIES else self.mode.needs_s2

    # ----- derived geometry -------------------------------------------------------------

    def target_epsg(self) -> int:
        """The grid's EPSG code: ``epsg`` when set, else the ROI's UTM zone (UPS beyond 84° N / 80° S)."""
        return self.epsg if self.epsg is not None else self.roi.grid_epsg()

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
            "sentinel1": {"product_type": self.s1_product_type, "bands": list(self.bands_s1), **self.s1.to_dict()},
            "multitemporal": self.multitemporal.to_dict(),
            "pairing": {
                "max_days": _plain_number(self.max_time_difference_days),
                "direction": self.pair_direction,
                "per_window": self.per_window,
                "weekly": self.weekly,
            },
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
            "pair_direction": self.pair_direction if self.pairs_sensors else None,
            "max_days": self.max_time_difference_days if self.pairs_sensors else None,
            "s2_level": self.s2_level,
            "s1_product_type": self.s1_product_type,
            "bands_s2": list(self.bands_s2),
            "bands_s1": list(self.bands_s1),
            "s1": self.s1.to_dict() if self.reads_s1 else None,
            **(
                {"multitemporal": self.multitemporal.to_dict()}
                if self.mode is Mode.S1_MULTITEMPORAL and not self.multitemporal.is_default
                else {}
            ),
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


# ----- helpers for writing the modern form -----------------------------------------------


def _plain_number(value: float | None) -> float | int | None:
    """Whole floats as ints (``10`` not ``10.0``) for tidy files."""
    if value is None:
        return None
    return int(value) if float(value).is_integer() else float(value)


def _geometry_json(roi: ROI) -> dict[str, Any]:
    """The ROI geometry with lists instead of tuples (plain JSON/YAML data)."""
    result: dict[str, Any] = json.loads(json.dumps(roi.to_geojson()))
    return result
