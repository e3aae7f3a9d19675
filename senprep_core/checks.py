"""Checks of single values shared by the configuration and the packages it builds on.

Each function takes the raw value and the key it was read from, and returns the value in its
canonical type or raises :class:`~senprep_core.errors.ConfigError` naming the key, the value and
the fix. The configuration's own checks and parsers are in :mod:`senprep_core.config.values`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from senprep_core.errors import ConfigError

__all__ = ["check_choice", "check_cloud_range", "check_number", "is_finite_number"]


def is_finite_number(value: object) -> bool:
    """True for an int or float (not a bool) that is neither NaN nor infinite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_number(value: object, key: str) -> float:
    """A finite number, as a float."""
    if not is_finite_number(value):
        raise ConfigError(key, value, "give a finite number")
    return float(value)  # type: ignore[arg-type]


def check_choice(value: object, key: str, choices: Sequence[str]) -> str:
    """One of ``choices`` (matched without case or surrounding white space), spelt as in ``choices``."""
    if isinstance(value, str):
        for choice in choices:
            if value.strip().lower() == choice.lower():
                return choice
    raise ConfigError(key, value, f"use one of {', '.join(choices)}")


def check_cloud_range(value: object, key: str) -> tuple[float, float]:
    """A ``[min, max]`` cloud percentage range with ``0 <= min <= max <= 100``, as floats."""
    if (
        isinstance(value, (str, bytes))
        or not isinstance(value, Sequence)
        or len(value) != 2
        or not all(is_finite_number(v) for v in value)
    ):
        raise ConfigError(key, value, "give a [min, max] cloud percentage range, e.g. [0, 80]")
    low, high = float(value[0]), float(value[1])
    if not (0 <= low <= 100 and 0 <= high <= 100):
        raise ConfigError(key, list(value), "both limits must be percentages between 0 and 100")
    if low > high:
        raise ConfigError(key, list(value), "the minimum must not exceed the maximum; swap them")
    return (low, high)
