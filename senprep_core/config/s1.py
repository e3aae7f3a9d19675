"""The ``sentinel1`` section of a configuration, read into :class:`~senprep_core.s1.options.S1Options`.

Relative paths (``dem``, ``orbit_folder``) start at the configuration file's folder; a filter name
or mapping becomes the speckle parameters; every invalid value raises
:class:`~senprep_core.errors.ConfigError` naming its ``sentinel1.*`` key.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from senprep_core.checks import check_choice, check_number
from senprep_core.config.values import check_bool
from senprep_core.errors import ConfigError
from senprep_core.s1.options import (
    BACKENDS,
    GEOIDS,
    NEGATIVE_POWER,
    ORBIT_DIRECTIONS,
    S1_SAMPLINGS,
    S1Options,
    check_speckle_params,
)

__all__ = ["S1_OPTION_KEYS", "parse_s1_options"]

S1_OPTION_KEYS = ("speckle_filter", "dem", "geoid", "orbit_folder", "noise_removal", "negative_power", "db_floor",
                  "resampling", "backend", "orbit_direction", "relative_orbits", "facet_oversampling")  # fmt: skip


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
    check_speckle_params(params)
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
        facet_oversampling=section.get("facet_oversampling", 2),
    )


def _orbits(value: object) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 175 for v in value
    ):
        raise ConfigError("sentinel1.relative_orbits", value, "give a list of relative orbit numbers from 1 to 175")
    return tuple(sorted(set(value)))
