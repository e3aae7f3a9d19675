"""From the products found to work units, one mode at a time, with a reason for every product left out;
pairing by closest time and ROI coverage.

- ``s2_only`` / ``s1_only`` / ``time_series``: one unit per product (``time_series`` stacks every S2
  acquisition of the period on the same grid, or every S1 one when only S1 bands are listed; with bands of
  both sensors each S2 acquisition comes with its closest S1, as ``s2_with_closest_s1``, the gap recorded);
- ``s2_with_closest_s1`` / ``s1_with_closest_s2``: each primary of the date windows with the secondary
  closest in time within ``pairing.max_days`` (optionally only before / after); for S1 primaries the S2
  candidates are ranked by cloud cover first, then by the time gap;
- ``s1_multitemporal``: each S1 of the date windows with the latest acquisition of the same relative
  orbit and pass direction a whole number of 6-day repeat steps earlier (12 days with one satellite,
  6 days with two); with ``multitemporal.count`` N > 2 the N - 1 earlier ones, each the previous of the
  next (one ``s1_stack`` unit, roles ``S1``, ``S1_t1``...); with ``count: all`` one stack per relative
  orbit and pass holding every acquisition of the windows.

``pairing.per_window: best`` keeps the least cloudy primary (time series: S2) per date window, or per
Monday-Sunday week with ``pairing.weekly`` (the 2022 tool's weekly bins). S1 products are filtered by
``sentinel1.orbit_direction`` / ``relative_orbits``, and one whose footprint reaches the ROI only within
2 km of the scene edge is not used.

Pure functions on :class:`ProductRecord` lists: no I/O.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from senprep_core.bands import parse_s1_bands
from senprep_core.catalog.records import ProductRecord
from senprep_core.catalog.selection import DroppedProduct
from senprep_core.checks import check_choice
from senprep_core.config import Config, Mode
from senprep_core.config.model import PAIR_DIRECTIONS
from senprep_core.errors import ConfigError, MetadataError
from senprep_core.geo.antimeridian import lonlat_intersection
from senprep_core.geo.projection import project_lonlat
from senprep_core.geo.roi import ROI
from senprep_core.outputs.records import stack_roles
from senprep_core.product_names import parse_product_name
from senprep_core.timeutil import DateWindow
from senprep_core.unit.model import UnitSpec, WorkUnit

__all__ = ["Pair", "closest_pairs", "plan_units", "roi_coverage", "search_padding"]

#: Sentinel-1's repeat step with two satellites; one satellite repeats every two steps (12 days).
REPEAT_STEP = timedelta(days=6)
#: How far an acquisition time may be from a whole number of repeat steps (same orbit, same slice).
REPEAT_TOLERANCE = timedelta(minutes=10)
#: Repeat steps searched back for an earlier acquisition of the same orbit.
MAX_REPEAT_STEPS = 4
#: S1 scene borders (noisy, partly empty) are not used to cover an ROI: footprints are inset by this much.
S1_BORDER_M = 2000.0


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
    overlaps = [region is None or s.meets(region) for s in ordered]
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

    The overlap is cut in lon/lat (unwrapped, so across the antimeridian too), then the overlap and the
    ROI are densified and projected to the ROI's UTM zone (UPS for a polar ROI), where their areas are
    compared: right for small ROIs at any latitude, in either hemisphere and across UTM zone edges.
    ``roi`` is a lon/lat geometry or an :class:`ROI`.
    """
    region = _roi_geometry(roi)
    footprint = record.footprint_unwrapped
    if footprint is None:
        return None
    if not footprint.is_valid:
        footprint = shapely.make_valid(footprint)
    overlap = lonlat_intersection(region.geometry, footprint)
    if overlap.is_empty:
        return 0.0
    epsg = region.grid_epsg()
    roi_area = project_lonlat(region.geometry, epsg, DENSIFY_DEGREES).area
    covered = project_lonlat(overlap, epsg, DENSIFY_DEGREES).area
    return float(min(100.0, 100.0 * covered / roi_area))


# ----- the modes: products -> work units -----------------------------------------------------------


def _in_windows(config: Config, record: ProductRecord) -> bool:
    return any(w.contains(record.sensing_time) for w in config.date_windows)


def bins(config: Config) -> list[DateWindow]:
    """The date windows a run selects in: the configured ones, or their Monday-Sunday weeks (``weekly``)."""
    if not config.weekly:
        return list(config.date_windows)
    out = []
    for window in config.date_windows:
        day = window.start
        while day <= window.end:
            sunday = day + timedelta(days=6 - day.weekday())
            out.append(DateWindow(day, min(sunday, window.end)))
            day = sunday + timedelta(days=1)
    return out


def best_per_window(config: Config, primaries: list[ProductRecord]) -> tuple[list[ProductRecord], list[DroppedProduct]]:
    """With ``per_window: best``, the least cloudy acquisition of each window / week (then the earliest, then
    the smallest id); every one per window with ``all``."""
    if config.per_window == "all":
        return primaries, []
    kept, dropped = [], []
    for window in bins(config):
        inside = [p for p in primaries if window.contains(p.sensing_time)]
        if not inside:
            continue
        best = min(inside, key=lambda p: (_cloud(p), p.sensing_time, p.product_id))
        kept.append(best)
        for p in inside:
            if p is not best:
                why = f"{best.product_id} is the best of window {window.label} (cloud {_cloud(best):g} %)"
                dropped.append(DroppedProduct(p, why))
    kept_ids = {p.product_id for p in kept}
    return [p for p in primaries if p.product_id in kept_ids], dropped


def _single(products: Sequence[ProductRecord], kind: str, spec: UnitSpec) -> list[WorkUnit]:
    return [WorkUnit(p.product_id, kind, (p,), spec) for p in products]


def _pair_units(
    config: Config,
    primaries: list[ProductRecord],
    secondaries: list[ProductRecord],
    rank_by_cloud: bool,
    spec: UnitSpec,
) -> tuple[list[WorkUnit], list[DroppedProduct]]:
    days, direction = config.max_time_difference_days, config.pair_direction
    if rank_by_cloud:  # per primary, only the least cloudy candidates within reach compete on time
        # (with no candidate in reach, all of them go in, so the reason names the sensor)
        pairs = [closest_pairs([p], _least_cloudy(p, secondaries, config) or secondaries, days, direction,
                               config.roi)[0] for p in primaries]  # fmt: skip
    else:
        pairs = closest_pairs(primaries, secondaries, days, direction, config.roi)
    units: list[WorkUnit] = []
    dropped: list[DroppedProduct] = []
    used: set[str] = set()
    for pair in pairs:
        if pair.secondary is None:
            dropped.append(DroppedProduct(pair.primary, pair.reason))
            continue
        used.add(pair.secondary.product_id)
        primary, secondary = pair.primary, pair.secondary
        kind = f"{primary.family.lower()}+{secondary.family.lower()}"
        unit_id = f"{primary.product_id}__{secondary.product_id}"
        units.append(WorkUnit(unit_id, kind, (primary, secondary), spec, delta_t_hours=round(pair.dt_hours or 0.0, 4)))
    first = primaries[0].family if primaries else ""
    for record in secondaries:
        if record.product_id not in used:
            why = f"not the chosen partner of any {first}" if primaries else "no primary acquisition in the windows"
            dropped.append(DroppedProduct(record, why))
    return units, dropped


def _least_cloudy(primary: ProductRecord, secondaries: list[ProductRecord], config: Config) -> list[ProductRecord]:
    """The S2 candidates within reach of an S1 primary that share the lowest cloud cover."""
    reach = []
    for s in secondaries:
        dt = (s.sensing_time - primary.sensing_time).total_seconds()
        if abs(dt) <= config.max_time_difference_days * 86400 and _direction_ok(config.pair_direction, dt):
            reach.append(s)
    if not reach:
        return []
    best = min(_cloud(s) for s in reach)
    return [s for s in reach if _cloud(s) == best]


def _direction_ok(direction: str, dt_seconds: float) -> bool:
    return direction == "closest" or (dt_seconds <= 0 if direction == "before" else dt_seconds >= 0)


def _cloud(record: ProductRecord) -> float:
    return record.cloud_cover if record.cloud_cover is not None else 100.0


def _multitemporal(
    config: Config, s1: list[ProductRecord], spec: UnitSpec
) -> tuple[list[WorkUnit], list[DroppedProduct]]:
    count = config.multitemporal.count
    if count is None:
        units, dropped = _whole_stacks(config, s1, spec)
    else:
        units, dropped = _counted_stacks(config, s1, spec, count)
    used = {p.product_id for u in units for p in u.products}
    for record in s1:
        if record.product_id not in used and not any(d.record is record for d in dropped):
            dropped.append(DroppedProduct(record, "outside the date windows and not an earlier acquisition of any"))
    return units, dropped


def _counted_stacks(
    config: Config, s1: list[ProductRecord], spec: UnitSpec, count: int
) -> tuple[list[WorkUnit], list[DroppedProduct]]:
    """Each S1 of the windows with the ``count - 1`` acquisitions of its orbit before it, one repeat gap apart
    (each at most :data:`MAX_REPEAT_STEPS` steps before the next); ``count`` 2 is the 2022 pair."""
    units: list[WorkUnit] = []
    dropped: list[DroppedProduct] = []
    for primary in (p for p in s1 if _in_windows(config, p)):
        chain = [primary]
        while len(chain) < count and (earlier := previous_of(chain[-1], s1)) is not None:
            chain.append(earlier)
        if len(chain) < count:
            found = f"only {len(chain) - 1}" if len(chain) > 1 else "no"
            dropped.append(DroppedProduct(primary, f"{found} earlier acquisition(s) of relative orbit "
                                          f"{primary.relative_orbit} (each within {MAX_REPEAT_STEPS} repeat steps of "
                                          f"6 days of the next); the stack needs {count - 1}"))  # fmt: skip
            continue
        units.append(_stack_unit(chain, spec, pair=count == 2))
    return units, dropped


def _whole_stacks(
    config: Config, s1: list[ProductRecord], spec: UnitSpec
) -> tuple[list[WorkUnit], list[DroppedProduct]]:
    """One stack per relative orbit and pass direction holding every acquisition of the windows."""
    groups: dict[tuple[int | None, str | None], list[ProductRecord]] = {}
    for record in (p for p in s1 if _in_windows(config, p)):
        groups.setdefault((record.relative_orbit, record.orbit_direction), []).append(record)
    units: list[WorkUnit] = []
    dropped: list[DroppedProduct] = []
    for (orbit, _direction), members in groups.items():
        if len(members) < 2:
            dropped.append(DroppedProduct(members[0], f"the only acquisition of relative orbit {orbit} in the "
                                          "date windows: a stack needs two or more"))  # fmt: skip
            continue
        chain = sorted(members, key=lambda c: (c.sensing_time, c.product_id), reverse=True)
        units.append(_stack_unit(chain, spec, pair=False))
    return units, dropped


def _stack_unit(chain: Sequence[ProductRecord], spec: UnitSpec, pair: bool) -> WorkUnit:
    """The unit of a stack, newest first (a pair keeps the 2022 roles ``S1`` / ``S1_previous``)."""
    primary = chain[0]
    dt = round((chain[1].sensing_time - primary.sensing_time).total_seconds() / 3600.0, 4)
    if pair:
        return WorkUnit(f"{primary.product_id}__{chain[1].product_id}", "s1+s1", tuple(chain), spec,
                        roles=("S1", "S1_previous"), delta_t_hours=dt)  # fmt: skip
    digest = hashlib.sha256(" ".join(p.product_id for p in chain).encode()).hexdigest()[:8]
    return WorkUnit(f"{primary.product_id}__stack{len(chain)}_{digest}", "s1_stack", tuple(chain), spec,
                    roles=stack_roles(len(chain)), delta_t_hours=dt)  # fmt: skip


def previous_of(primary: ProductRecord, s1: Sequence[ProductRecord]) -> ProductRecord | None:
    """The latest acquisition of ``primary``'s relative orbit and pass a whole number of repeat steps earlier."""
    earlier = [
        c
        for c in s1
        if c.sensing_time < primary.sensing_time
        and c.relative_orbit == primary.relative_orbit
        and c.orbit_direction == primary.orbit_direction
        and _whole_steps(primary.sensing_time - c.sensing_time)
    ]
    return max(earlier, key=lambda c: (c.sensing_time, c.product_id)) if earlier else None


def _s2_with_two_s1(
    config: Config, s2: list[ProductRecord], s1: list[ProductRecord], spec: UnitSpec
) -> tuple[list[WorkUnit], list[DroppedProduct]]:
    """Each S2 of the windows with its closest S1 among those that have an earlier acquisition of their orbit
    (the 2022 ``s2_with_previous_two_s1_with_same_orbit``): three products on one grid."""
    primaries, dropped = best_per_window(config, [p for p in s2 if _in_windows(config, p)])
    dropped += [DroppedProduct(p, "outside the date windows") for p in s2 if not _in_windows(config, p)]
    previous = {p.product_id: q for p in s1 if (q := previous_of(p, s1)) is not None}
    candidates = [p for p in s1 if p.product_id in previous]
    units: list[WorkUnit] = []
    used: set[str] = set()
    for pair in closest_pairs(primaries, candidates, config.max_time_difference_days, config.pair_direction,
                              config.roi):  # fmt: skip
        if pair.secondary is None:
            dropped.append(DroppedProduct(pair.primary, f"{pair.reason} that has an earlier acquisition of its "
                                          "relative orbit"))  # fmt: skip
            continue
        earlier = previous[pair.secondary.product_id]
        used.update((pair.secondary.product_id, earlier.product_id))
        products = (pair.primary, pair.secondary, earlier)
        unit_id = "__".join(p.product_id for p in products)
        dt = round(pair.dt_hours or 0.0, 4)
        units.append(WorkUnit(unit_id, "s2+s1+s1", products, spec, roles=("S2", "S1", "S1_previous"), delta_t_hours=dt))
    dropped += [DroppedProduct(p, "not the S1 or the earlier S1 of any S2") for p in s1 if p.product_id not in used]
    return units, dropped


def _whole_steps(gap: timedelta) -> bool:
    steps = gap / REPEAT_STEP
    n = round(steps)
    return 1 <= n <= MAX_REPEAT_STEPS and abs(gap - n * REPEAT_STEP) <= REPEAT_TOLERANCE


def plan_units(
    config: Config, products: Sequence[ProductRecord], spec: UnitSpec
) -> tuple[list[WorkUnit], list[DroppedProduct]]:
    """The work units of ``config.mode`` from the selected products (each with the run's ``spec``), and the
    products left out with reasons."""
    s2 = [p for p in products if p.family == "S2"]
    s1 = [p for p in products if p.family == "S1"]
    s1, dropped = _orbit_filter(config, s1)
    mode = config.mode
    if mode is Mode.S2_ONLY:
        return _single(s2, "s2", spec), dropped
    if mode is Mode.TIME_SERIES:
        return _time_series(config, s2, s1, spec, dropped)
    if mode is Mode.S1_ONLY:
        return _single(s1, "s1", spec), dropped
    if mode is Mode.S2_WITH_TWO_S1:
        units, more = _s2_with_two_s1(config, s2, s1, spec)
        return units, dropped + more
    if mode.is_pairing:
        primaries, secondaries = (s2, s1) if mode is Mode.S2_WITH_CLOSEST_S1 else (s1, s2)
        inside, more = best_per_window(config, [p for p in primaries if _in_windows(config, p)])
        dropped += [DroppedProduct(p, "outside the date windows") for p in primaries if not _in_windows(config, p)]
        dropped += more
        units, more = _pair_units(config, inside, secondaries, mode is Mode.S1_WITH_CLOSEST_S2, spec)
        return units, dropped + more
    units, more = _multitemporal(config, s1, spec)
    return units, dropped + more


def _time_series(
    config: Config, s2: list[ProductRecord], s1: list[ProductRecord], spec: UnitSpec, dropped: list[DroppedProduct]
) -> tuple[list[WorkUnit], list[DroppedProduct]]:
    """Every acquisition of the windows on the run's grid: S2 ones, S1 ones, or each S2 with its closest S1
    (within ``pairing.max_days``, the time gap recorded) when both sensors have bands."""
    if not config.reads_s2:
        inside = [p for p in s1 if _in_windows(config, p)]
        dropped += [DroppedProduct(p, "outside the date windows") for p in s1 if not _in_windows(config, p)]
        return _single(inside, "s1", spec), dropped
    series, more = best_per_window(config, [p for p in s2 if _in_windows(config, p)])
    if not config.reads_s1:
        return _single(series, "s2", spec), dropped + more
    dropped += [DroppedProduct(p, "outside the date windows") for p in s2 if not _in_windows(config, p)]
    units, paired = _pair_units(config, series, s1, False, spec)
    return units, dropped + more + paired


def _orbit_filter(config: Config, s1: list[ProductRecord]) -> tuple[list[ProductRecord], list[DroppedProduct]]:
    """S1 products of the configured pass direction and relative orbits."""
    want_pass, want_orbits = config.s1.orbit_direction, set(config.s1.relative_orbits)
    want_pols = {r.polarisation for r in parse_s1_bands(config.bands_s1) if r.polarisation is not None}
    kept, dropped = [], []
    epsg = config.roi.grid_epsg()
    roi = config.roi.projected(epsg)
    for record in s1:
        direction = (record.orbit_direction or "").lower()
        footprint = record.footprint_unwrapped
        inner = None if footprint is None else project_lonlat(footprint, epsg, DENSIFY_DEGREES).buffer(-S1_BORDER_M)
        if inner is not None and not inner.intersects(roi):
            dropped.append(DroppedProduct(record, f"the ROI lies only in the scene's {S1_BORDER_M / 1000:g} km border"))
        elif (held := _polarisations(record.product_id)) is not None and not want_pols <= held:
            need = "/".join(sorted(want_pols - held))
            dropped.append(DroppedProduct(record, f"holds {'/'.join(sorted(held))}; the bands need {need}"))
        elif want_pass != "any" and direction and direction != want_pass:
            dropped.append(DroppedProduct(record, f"{direction} pass; sentinel1.orbit_direction is {want_pass}"))
        elif want_orbits and record.relative_orbit is not None and record.relative_orbit not in want_orbits:
            orbits = ", ".join(str(o) for o in sorted(want_orbits))
            dropped.append(DroppedProduct(record, f"relative orbit {record.relative_orbit} not in {orbits}"))
        else:
            kept.append(record)
    return kept, dropped


def _polarisations(product_id: str) -> set[str] | None:
    """The polarisations an S1 product name tells (``1SDV`` -> VV+VH, ``1SSH`` -> HH), None if it does not."""
    info = parse_product_name(product_id)
    pols = info.polarisations if info is not None else None
    return set(pols) if pols else None


def search_padding(config: Config) -> tuple[timedelta, timedelta]:
    """How far before / after the date windows the secondary mission is searched."""
    if config.mode is Mode.S1_MULTITEMPORAL:
        count = config.multitemporal.count
        if count is None:  # every acquisition of the windows: nothing before them
            return timedelta(0), timedelta(0)
        return REPEAT_STEP * MAX_REPEAT_STEPS * (count - 1) + timedelta(days=1), timedelta(0)
    pad = timedelta(days=math.ceil(config.max_time_difference_days))
    if config.mode is Mode.S2_WITH_TWO_S1:  # the S1 near the S2, and its orbit's earlier acquisition
        return pad + REPEAT_STEP * MAX_REPEAT_STEPS + timedelta(days=1), pad
    return pad, pad
