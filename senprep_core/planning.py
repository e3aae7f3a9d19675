"""From the products found to work units, one mode at a time, with a reason for every product left out.

- ``s2_only`` / ``s1_only`` / ``time_series``: one unit per product (``time_series`` stacks every S2
  acquisition of the period on the same grid);
- ``s2_with_closest_s1`` / ``s1_with_closest_s2``: each primary of the date windows with the secondary
  closest in time within ``pairing.max_days`` (optionally only before / after); for S1 primaries the S2
  candidates are ranked by cloud cover first, then by the time gap;
- ``s1_multitemporal``: each S1 of the date windows with the latest acquisition of the same relative
  orbit and pass direction a whole number of 6-day repeat steps earlier (12 days with one satellite,
  6 days with two).

``pairing.per_window: best`` keeps the least cloudy primary (time series: S2) per date window, or per
Monday-Sunday week with ``pairing.weekly`` (the 2022 tool's weekly bins). S1 products are filtered by
``sentinel1.orbit_direction`` / ``relative_orbits``, and one whose footprint reaches the ROI only within
2 km of the scene edge is not used.

Pure functions on :class:`ProductRecord` lists: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from senprep_core.catalog.records import ProductRecord
from senprep_core.catalog.selection import DroppedProduct
from senprep_core.config import Config, Mode
from senprep_core.geo.projection import project_lonlat
from senprep_core.pairing import DENSIFY_DEGREES, closest_pairs
from senprep_core.product_names import parse_product_name
from senprep_core.s1.terrain import parse_s1_bands
from senprep_core.timeutil import DateWindow

#: Sentinel-1's repeat step with two satellites; one satellite repeats every two steps (12 days).
REPEAT_STEP = timedelta(days=6)
#: How far an acquisition time may be from a whole number of repeat steps (same orbit, same slice).
REPEAT_TOLERANCE = timedelta(minutes=10)
#: Repeat steps searched back for an earlier acquisition of the same orbit.
MAX_REPEAT_STEPS = 4
#: S1 scene borders (noisy, partly empty) are not used to cover an ROI: footprints are inset by this much.
S1_BORDER_M = 2000.0


@dataclass(frozen=True)
class WorkUnit:
    """One independent piece of work: one product, or a primary with its partner, over the ROI.

    ``roles`` are the modality keys of the products (patch file suffixes and asset keys): ``S2``,
    ``S1``, or ``S1_previous`` for the earlier acquisition of a multitemporal unit.
    """

    unit_id: str
    kind: str  # "s2", "s1", "s2+s1", "s1+s2", "s1+s1"
    products: tuple[ProductRecord, ...]
    roles: tuple[str, ...] = ()
    delta_t_hours: float | None = None

    def __post_init__(self) -> None:
        if not self.roles:
            object.__setattr__(self, "roles", tuple(p.family for p in self.products))

    def describe(self) -> str:
        return f"{self.kind} {', '.join(p.product_id for p in self.products)}"

    def to_dict(self) -> dict[str, object]:
        return {
            "unit_id": self.unit_id,
            "kind": self.kind,
            "roles": list(self.roles),
            "delta_t_hours": self.delta_t_hours,
            "products": [p.to_dict() for p in self.products],
        }


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


def _single(products: Sequence[ProductRecord], kind: str) -> list[WorkUnit]:
    return [WorkUnit(p.product_id, kind, (p,)) for p in products]


def _pair_units(
    config: Config, primaries: list[ProductRecord], secondaries: list[ProductRecord], rank_by_cloud: bool
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
        units.append(WorkUnit(unit_id, kind, (primary, secondary), delta_t_hours=round(pair.dt_hours or 0.0, 4)))
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


def _multitemporal(config: Config, s1: list[ProductRecord]) -> tuple[list[WorkUnit], list[DroppedProduct]]:
    units: list[WorkUnit] = []
    dropped: list[DroppedProduct] = []
    used: set[str] = set()
    for primary in (p for p in s1 if _in_windows(config, p)):
        earlier = [
            c
            for c in s1
            if c.sensing_time < primary.sensing_time
            and c.relative_orbit == primary.relative_orbit
            and c.orbit_direction == primary.orbit_direction
            and _whole_steps(primary.sensing_time - c.sensing_time)
        ]
        if not earlier:
            dropped.append(DroppedProduct(primary, f"no earlier acquisition of relative orbit {primary.relative_orbit} "
                                          f"within {MAX_REPEAT_STEPS} repeat steps of 6 days"))  # fmt: skip
            continue
        previous = max(earlier, key=lambda c: (c.sensing_time, c.product_id))
        used.update((primary.product_id, previous.product_id))
        dt = (previous.sensing_time - primary.sensing_time).total_seconds() / 3600.0
        units.append(WorkUnit(f"{primary.product_id}__{previous.product_id}", "s1+s1", (primary, previous),
                              roles=("S1", "S1_previous"), delta_t_hours=round(dt, 4)))  # fmt: skip
    for record in s1:
        if record.product_id not in used and not any(d.record is record for d in dropped):
            dropped.append(DroppedProduct(record, "outside the date windows and not an earlier acquisition of any"))
    return units, dropped


def _whole_steps(gap: timedelta) -> bool:
    steps = gap / REPEAT_STEP
    n = round(steps)
    return 1 <= n <= MAX_REPEAT_STEPS and abs(gap - n * REPEAT_STEP) <= REPEAT_TOLERANCE


def plan_units(config: Config, products: Sequence[ProductRecord]) -> tuple[list[WorkUnit], list[DroppedProduct]]:
    """The work units of ``config.mode`` from the selected products, and the products left out with reasons."""
    s2 = [p for p in products if p.family == "S2"]
    s1 = [p for p in products if p.family == "S1"]
    s1, dropped = _orbit_filter(config, s1)
    mode = config.mode
    if mode is Mode.S2_ONLY:
        return _single(s2, "s2"), dropped
    if mode is Mode.TIME_SERIES:
        series, more = best_per_window(config, [p for p in s2 if _in_windows(config, p)])
        return _single(series, "s2"), dropped + more
    if mode is Mode.S1_ONLY:
        return _single(s1, "s1"), dropped
    if mode.is_pairing:
        primaries, secondaries = (s2, s1) if mode is Mode.S2_WITH_CLOSEST_S1 else (s1, s2)
        inside, more = best_per_window(config, [p for p in primaries if _in_windows(config, p)])
        dropped += [DroppedProduct(p, "outside the date windows") for p in primaries if not _in_windows(config, p)]
        dropped += more
        units, more = _pair_units(config, inside, secondaries, rank_by_cloud=mode is Mode.S1_WITH_CLOSEST_S2)
        return units, dropped + more
    units, more = _multitemporal(config, s1)
    return units, dropped + more


def _orbit_filter(config: Config, s1: list[ProductRecord]) -> tuple[list[ProductRecord], list[DroppedProduct]]:
    """S1 products of the configured pass direction and relative orbits."""
    want_pass, want_orbits = config.s1.orbit_direction, set(config.s1.relative_orbits)
    want_pols = {r.polarisation for r in parse_s1_bands(config.bands_s1) if r.polarisation is not None}
    kept, dropped = [], []
    epsg = config.roi.utm_epsg()
    roi = config.roi.projected(epsg)
    for record in s1:
        direction = (record.orbit_direction or "").lower()
        inner = (
            None
            if record.footprint is None
            else project_lonlat(record.footprint, epsg, DENSIFY_DEGREES).buffer(-S1_BORDER_M)
        )
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
        return REPEAT_STEP * MAX_REPEAT_STEPS + timedelta(days=1), timedelta(0)
    pad = timedelta(days=math.ceil(config.max_time_difference_days))
    return pad, pad
