"""Pair acquisitions by closest time (e.g. each Sentinel-2 with the nearest Sentinel-1), and ROI coverage.

Pure functions on :class:`~senprep_core.catalog.records.ProductRecord` lists: no I/O. Used by the
app's pairing preview and by the pairing modes.
"""

from __future__ import annotations

import bisect
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from senprep_core.catalog.records import ProductRecord
from senprep_core.checks import check_choice
from senprep_core.config.model import PAIR_DIRECTIONS
from senprep_core.errors import ConfigError, MetadataError
from senprep_core.geo.projection import project_lonlat
from senprep_core.geo.roi import ROI

__all__ = ["Pair", "closest_pairs", "roi_coverage"]

#: Longest edge (degrees) before projecting: projected edges then follow the lon/lat ones.
DENSIFY_DEGREES = 0.01
#: How each direction's time window reads in a :class:`Pair` reason.
_WINDOW_TEXT = {"closest": "within {}", "before": "up to {} before", "after": "up to {} after"}
_UNBOUNDED_TEXT = {"closest": "at any time", "before": "at any time before", "after": "at any time after"}


@dataclass(frozen=True)
class Pair:
    """A primary acquisition and its closest secondary (None when there is none).

    ``dt_hours`` is signed: secondary time minus primary time, in hours (None without a
    secondary). ``reason`` says in words why this secondary was chosen or why there is none.
    """

    primary: ProductRecord
    secondary: ProductRecord | None
    dt_hours: float | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (product ids, time gap, reason)."""
        return {
            "primary": self.primary.product_id,
            "secondary": self.secondary.product_id if self.secondary is not None else None,
            "dt_hours": self.dt_hours,
            "reason": self.reason,
        }


def _check_max_days(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value) or value < 0:
        raise ConfigError("pairing.max_days", value, "give a number of days >= 0 (e.g. 3)")
    return float(value)


def _roi_geometry(roi: ROI | BaseGeometry) -> ROI:
    return roi if isinstance(roi, ROI) else ROI.from_geometry(roi, key="roi")


def _check_aware(record: ProductRecord) -> datetime:
    t = record.sensing_time
    if t.tzinfo is None or t.utcoffset() is None:
        raise MetadataError(
            f"product {record.product_id} has a sensing time without a time zone ({t.isoformat()}); "
            "records must carry timezone-aware (UTC) times"
        )
    return t


def _describe(found: bool, family: str, direction: str, max_days: float, roi_missed: bool) -> str:
    """The reason text, e.g. ``closest S1 within 3 days`` or ``no S1 up to 3 days before``."""
    if math.isinf(max_days):
        window = _UNBOUNDED_TEXT[direction]
    else:
        window = _WINDOW_TEXT[direction].format(f"{max_days:g} day" + ("" if max_days == 1 else "s"))
    if found:
        return f"closest {family} {window}"
    if roi_missed:
        return f"no {family} overlapping the ROI {window}"
    return f"no {family} {window}"


def _window(times: list[datetime], t: datetime, max_days: float, direction: str) -> tuple[int, int]:
    """Index range of the sorted ``times`` within ``max_days`` of ``t`` on the ``direction`` side."""
    try:
        span = timedelta(days=max_days)
        lo, hi = bisect.bisect_left(times, t - span), bisect.bisect_right(times, t + span)
    except OverflowError:  # infinite or beyond the calendar: no limit
        lo, hi = 0, len(times)
    if direction == "before":
        hi = min(hi, bisect.bisect_right(times, t))
    elif direction == "after":
        lo = max(lo, bisect.bisect_left(times, t))
    return lo, hi


def closest_pairs(
    primaries: Sequence[ProductRecord],
    secondaries: Sequence[ProductRecord],
    max_days: float,
    direction: str = "closest",
    roi: ROI | BaseGeometry | None = None,
) -> list[Pair]:
    """Pair each primary with the secondary closest in time, one :class:`Pair` per primary, in input order.

    Only secondaries within ``max_days`` (inclusive; ``math.inf`` for no limit) count. ``direction``
    ``"before"`` keeps secondaries acquired at or before the primary, ``"after"`` those at or after
    it, ``"closest"`` both. With ``roi`` (a lon/lat geometry or :class:`ROI`), secondaries whose
    footprint does not intersect it are ignored; an unknown footprint (None) is kept, as in the
    catalog search. Ties in ``|Δt|`` go to the earlier secondary, then the smaller product id.
    A secondary may be the partner of several primaries.

    Raises :class:`ConfigError` for a negative or non-numeric ``max_days``, an unknown
    ``direction`` or an unusable ``roi``; :class:`MetadataError` for a time without a time zone.
    """
    days = _check_max_days(max_days)
    direction = check_choice(direction, "pairing.direction", PAIR_DIRECTIONS)
    region = _roi_geometry(roi).geometry if roi is not None else None
    ordered = sorted(secondaries, key=lambda s: (_check_aware(s), s.product_id))
    times = [s.sensing_time for s in ordered]
    overlaps = [region is None or s.footprint is None or s.footprint.intersects(region) for s in ordered]
    families = sorted({s.family for s in ordered})
    unmatched_family = "/".join(families) if families else "secondary product"
    pairs = []
    for primary in primaries:
        t = _check_aware(primary)
        lo, hi = _window(times, t, days, direction)
        candidates = [i for i in range(lo, hi) if overlaps[i]]
        if not candidates:
            reason = _describe(False, unmatched_family, direction, days, roi_missed=hi > lo)
            pairs.append(Pair(primary, None, None, reason))
            continue
        # ``ordered`` is sorted by (time, id): among equal |Δt| the first index is the earlier, then smaller id
        best = min(candidates, key=lambda i: (abs(times[i] - t), i))
        secondary = ordered[best]
        dt_hours = (secondary.sensing_time - t).total_seconds() / 3600.0
        pairs.append(Pair(primary, secondary, dt_hours, _describe(True, secondary.family, direction, days, False)))
    return pairs


def roi_coverage(record: ProductRecord, roi: ROI | BaseGeometry) -> float | None:
    """Percent (0..100) of the ROI's area inside the record's footprint; None when the footprint is unknown.

    The overlap is cut in lon/lat, then the overlap and the ROI are densified and projected to the
    ROI's UTM zone, where their areas are compared: right for small ROIs at any latitude, in
    either hemisphere and across UTM zone edges. ``roi`` is a lon/lat geometry or an :class:`ROI`.
    """
    region = _roi_geometry(roi)
    footprint = record.footprint
    if footprint is None:
        return None
    if not footprint.is_valid:
        footprint = shapely.make_valid(footprint)
    overlap = footprint.intersection(region.geometry)
    if overlap.is_empty:
        return 0.0
    epsg = region.utm_epsg()
    roi_area = project_lonlat(region.geometry, epsg, DENSIFY_DEGREES).area
    covered = project_lonlat(overlap, epsg, DENSIFY_DEGREES).area
    return float(min(100.0, 100.0 * covered / roi_area))
