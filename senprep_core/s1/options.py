"""The options of the Sentinel-1 chain (speckle filter, DEM, orbit, radiometry, selection).

Defaults reproduce the 2022 framework's SNAP graph: thermal noise removal, calibration,
Lee Sigma (7x7 window, 3x3 target, sigma 0.9), terrain correction with bilinear sampling.
Unlike that graph, senprep needs a DEM named here; without one it terrain-corrects onto a flat
ellipsoid and says so loudly. The configuration's ``sentinel1`` section is read into
:class:`S1Options` by :mod:`senprep_core.config.s1`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from senprep_core.checks import check_choice, check_number
from senprep_core.errors import ConfigError
from senprep_core.s1.speckle import SpeckleFilter

__all__ = [
    "BACKENDS",
    "GEOIDS",
    "NEGATIVE_POWER",
    "ORBIT_DIRECTIONS",
    "S1_SAMPLINGS",
    "SPECKLE_FILTERS",
    "SPECKLE_KEYS",
    "S1Options",
    "check_speckle_params",
]

SPECKLE_FILTERS = ("none", "boxcar", "median", "lee", "lee_sigma", "refined_lee", "gamma_map", "frost")
SPECKLE_KEYS = ("name", "window", "target_window", "sigma", "looks", "damping")
S1_SAMPLINGS = ("bilinear", "nearest", "bicubic")
NEGATIVE_POWER = ("zero", "nodata")
GEOIDS = ("auto", "egm96", "egm2008", "none")
BACKENDS = ("native", "snap")
ORBIT_DIRECTIONS = ("any", "ascending", "descending")
MAX_FACET_OVERSAMPLING = 8


@dataclass(frozen=True)
class S1Options:
    """How Sentinel-1 GRDs are turned into backscatter on the grid.

    ``speckle`` holds the filter's parameters as sorted (key, value) pairs (``name`` first is
    not required); :meth:`speckle_params` returns them as a dict.
    """

    speckle: tuple[tuple[str, Any], ...] = (("name", "lee_sigma"), ("sigma", 0.9), ("target_window", 3),
                                            ("window", 7))  # fmt: skip
    dem: str | None = None
    geoid: str = "auto"
    orbit_folder: str | None = None
    noise_removal: bool = True
    negative_power: str = "zero"
    db_floor: float = -40.0
    resampling: str = "bilinear"
    backend: str = "native"
    orbit_direction: str = "any"  # selection: only this pass direction
    relative_orbits: tuple[int, ...] = ()  # selection: only these relative orbits (empty: any)
    facet_oversampling: int = 2  # gamma0T: DEM facets per grid pixel along each axis

    def __post_init__(self) -> None:
        check_choice(self.orbit_direction, "sentinel1.orbit_direction", ORBIT_DIRECTIONS)
        check_choice(self.geoid, "sentinel1.geoid", GEOIDS)
        check_choice(self.negative_power, "sentinel1.negative_power", NEGATIVE_POWER)
        check_choice(self.resampling, "sentinel1.resampling", S1_SAMPLINGS)
        check_choice(self.backend, "sentinel1.backend", BACKENDS)
        check_number(self.db_floor, "sentinel1.db_floor")
        check_speckle_params(dict(self.speckle))
        if not (type(self.facet_oversampling) is int and 1 <= self.facet_oversampling <= MAX_FACET_OVERSAMPLING):
            raise ConfigError(
                "sentinel1.facet_oversampling", self.facet_oversampling,
                f"give a whole number from 1 to {MAX_FACET_OVERSAMPLING} (DEM facets per grid pixel along each axis)",
            )  # fmt: skip

    def speckle_params(self) -> dict[str, Any]:
        """The speckle filter parameters (``name`` plus what was set)."""
        return dict(self.speckle)

    def to_dict(self) -> dict[str, Any]:
        """The options as the keys of the configuration's ``sentinel1`` section (plain JSON/YAML data)."""
        return {
            "speckle_filter": self.speckle_params(),
            "dem": self.dem,
            "geoid": self.geoid,
            "orbit_folder": self.orbit_folder,
            "noise_removal": self.noise_removal,
            "negative_power": self.negative_power,
            "db_floor": self.db_floor,
            "resampling": self.resampling,
            "backend": self.backend,
            "orbit_direction": self.orbit_direction,
            "relative_orbits": list(self.relative_orbits),
            "facet_oversampling": self.facet_oversampling,
        }


def check_speckle_params(params: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` (naming the ``sentinel1.speckle_filter`` key) for unknown keys or bad values."""
    unknown = sorted(set(params) - set(SPECKLE_KEYS))
    if unknown:
        fix = f"known keys are {', '.join(SPECKLE_KEYS)}"
        raise ConfigError(f"sentinel1.speckle_filter.{unknown[0]}", params[unknown[0]], fix)
    SpeckleFilter(**params)  # raises ConfigError naming the key for any bad value
