"""The ``multitemporal`` section: how many acquisitions an ``s1_multitemporal`` stack holds, and its filter.

``count``: acquisitions per stack, 2 or more (2: the latest with the previous one of its orbit, the 2022
pair), or ``all``: one stack per relative orbit and pass holding every acquisition of the date windows.
``speckle_filter``: ``none`` or ``quegan`` (Quegan & Yu 2001 across the stack, see
:mod:`senprep_core.s1.multitemporal`), with its local-mean ``window`` (odd, radar pixels).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from senprep_core.checks import check_choice
from senprep_core.errors import ConfigError
from senprep_core.s1.multitemporal import QueganFilter

__all__ = ["MULTITEMPORAL_KEYS", "STACK_FILTERS", "MultitemporalOptions", "parse_multitemporal"]

MULTITEMPORAL_KEYS = ("count", "speckle_filter", "window")
STACK_FILTERS = ("none", "quegan")
MAX_COUNT = 60  # acquisitions in one stack (a year of 6-day repeats)


@dataclass(frozen=True)
class MultitemporalOptions:
    """``count`` acquisitions per stack (None: every one of the windows), the stack filter and its window."""

    count: int | None = 2
    speckle_filter: str = "none"
    window: int = 7

    def __post_init__(self) -> None:
        c = self.count
        if c is not None and (isinstance(c, bool) or not isinstance(c, int) or not 2 <= c <= MAX_COUNT):
            raise ConfigError("multitemporal.count", c, f"give a whole number of acquisitions from 2 to {MAX_COUNT} "
                              "(e.g. 5), or 'all' for every acquisition of the date windows")  # fmt: skip
        check_choice(self.speckle_filter, "multitemporal.speckle_filter", STACK_FILTERS)
        QueganFilter(self.window)  # checks the window

    @property
    def is_default(self) -> bool:
        return self == MultitemporalOptions()

    @property
    def stack_filter(self) -> QueganFilter | None:
        """The filter the units apply (None: no multi-temporal filter)."""
        return QueganFilter(self.window) if self.speckle_filter == "quegan" else None

    def to_dict(self) -> dict[str, Any]:
        return {"count": "all" if self.count is None else self.count, "speckle_filter": self.speckle_filter,
                "window": self.window}  # fmt: skip


def parse_multitemporal(section: Mapping[str, Any]) -> MultitemporalOptions:
    """Read the section (keys already checked) into :class:`MultitemporalOptions`."""
    count: Any = section.get("count", 2)
    if isinstance(count, str):
        if count.strip().lower() != "all":
            raise ConfigError("multitemporal.count", count, "give a whole number of acquisitions (e.g. 5) or 'all'")
        count = None
    elif isinstance(count, float) and count.is_integer():
        count = int(count)
    name = section.get("speckle_filter", "none")
    if name is None or name is False:
        name = "none"
    return MultitemporalOptions(count, name, section.get("window", 7))
