"""The ``sentinel1`` processing options of a configuration (speckle filter, DEM, orbit, radiometry).

Defaults reproduce the 2022 framework's SNAP graph: thermal noise removal, calibration,
Lee Sigma (7x7 window, 3x3 target, sigma 0.9), terrain correction with bilinear sampling.
Unlike that graph, senprep needs a DEM named here; without one it terrain-corrects onto a flat
ellipsoid and says so loudly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from senprep_core.checks import check_choice, check_number
from senprep_core.config_values import check_bool
from senprep_core.errors import ConfigError

SPECKLE_FILTERS = ("none", "boxcar", "median", "lee", "lee_sigma", "refined_lee", "gamma_map", "frost")
SPECKLE_KEYS = ("name", "window", "target_window", "sigma", "looks", "damping")
S1_SAMPLINGS = ("bilinear", "nearest", "bicubic")
NEGATIVE_POWER = ("zero", "nodata")
GEOIDS = ("auto", "egm96", "egm2008", "none")
BACKENDS = ("native", "snap")
S1_OPTION_KEYS = ("speckle_filter", "dem", "geoid", "orbit_folder", "noise_removal", "negative_power", "db_floor",
                  "resampling", "backend", "orbit_direction", "relative_orbits")  # fmt: skip
ORBIT_DIRECTIONS = ("any", "ascending", "descending")


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

    def __post_init__(self) -> None:
        check_choice(self.orbit_direction, "sentinel1.orbit_direction", ORBIT_DIRECTIONS)
        check_choice(self.geoid, "sentinel1.geoid", GEOIDS)
        check_choice(self.negative_power, "sentinel1.negative_power", NEGATIVE_POWER)
        check_choice(self.resampling, "sentinel1.resampling", S1_SAMPLINGS)
        check_choice(self.backend, "sentinel1.backend", BACKENDS)
        check_number(self.db_floor, "sentinel1.db_floor")
        _check_speckle(dict(self.speckle))

    def speckle_params(self) -> dict[str, Any]:
        """The speckle filter parameters (``name`` plus what was set)."""
        return dict(self.speckle)

    def to_dict(self) -> dict[str, Any]:
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
        }


def _check_speckle(params: Mapping[str, Any]) -> None:
    from senprep_core.s1.speckle import SpeckleFilter

    unknown = sorted(set(params) - set(SPECKLE_KEYS))
    if unknown:
        fix = f"known keys are {', '.join(SPECKLE_KEYS)}"
        raise ConfigError(f"sentinel1.speckle_filter.{unknown[0]}", params[unknown[0]], fix)
    SpeckleFilter(**params)  # raises ConfigError naming the key for any bad value


def _speckle(value: object) -> tuple[tuple[str, Any], ...]:
    if value is None or value is False:
        value = {"name": "none"}
    if isinstance(value, str):
        value = (
            {"name": value, "window": 7, "target_window": 3, "sigma": 0.9} if value == "lee_sigma" else {"name": value}
        )
    if not isinstance(value, Mapping):
        fix = "give a filter name (e.g. lee_sigma) or a mapping {name: lee_sigma, window: 7, ...}"
        raise ConfigError("sentinel1.speckle_filter", value, fix)
    params = dict(value)
    params.setdefault("name", "lee_sigma")
    _check_speckle(params)
    return tuple(sorted(params.items()))


def _path(value: object, key: str, base_dir: Path | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"flat:{float(value):g}"
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(key, value, "give a path (relative paths start at the configuration file's folder)")
    text = value.strip()
    if text.startswith("flat:") or text in ("cdse", "glo30") or text.startswith(("cdse:", "glo30:")):
        return text  # a flat height, or auxiliary data fetched into the cache (senprep_core.fetch.auxdata)
    path = Path(text).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return str(path.resolve())


def parse_s1_options(section: Mapping[str, Any], base_dir: Path | None) -> S1Options:
    """Validate the processing keys of the ``sentinel1`` section (paths resolved against ``base_dir``)."""
    return S1Options(
        speckle=_speckle(section.get("speckle_filter", "lee_sigma")),
        dem=_path(section.get("dem"), "sentinel1.dem", base_dir),
        geoid=check_choice(section.get("geoid", "auto"), "sentinel1.geoid", GEOIDS),
        orbit_folder=_path(section.get("orbit_folder"), "sentinel1.orbit_folder", base_dir),
        noise_removal=check_bool(section.get("noise_removal", True), "sentinel1.noise_removal"),
        negative_power=check_choice(section.get("negative_power", "zero"), "sentinel1.negative_power", NEGATIVE_POWER),
        db_floor=check_number(section.get("db_floor", -40.0), "sentinel1.db_floor"),
        resampling=check_choice(section.get("resampling", "bilinear"), "sentinel1.resampling", S1_SAMPLINGS),
        backend=check_choice(section.get("backend", "native"), "sentinel1.backend", BACKENDS),
        orbit_direction=check_choice(
            str(section.get("orbit_direction", "any")).lower(), "sentinel1.orbit_direction", ORBIT_DIRECTIONS
        ),
        relative_orbits=_orbits(section.get("relative_orbits", [])),
    )


def _orbits(value: object) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 175 for v in value
    ):
        raise ConfigError("sentinel1.relative_orbits", value, "give a list of relative orbit numbers from 1 to 175")
    return tuple(sorted(set(value)))
