"""Search preview: every product found (footprint, cloud, ROI coverage, whether a run would use it and why
not) and the work units a run would process.

The preview plans with the core (:func:`~senprep_core.planning.plan_products`, as ``senprep plan`` and a
run do), so its units and pairs are the run's: selection, orbit filters, best per window, the cloud
ranking of S1 primaries and the multitemporal mode included.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import param

from app.state.options import credential_files, forget_credentials
from senprep_core.catalog import ProductRecord, open_provider
from senprep_core.config import Config, Mode
from senprep_core.errors import SenprepError
from senprep_core.pairing import roi_coverage
from senprep_core.planning import Plan, plan_products, search
from senprep_core.unit.model import WorkUnit

#: The family of the primary acquisition of each mode whose units are pairs.
PRIMARY_FAMILY = {Mode.S2_WITH_CLOSEST_S1: "S2", Mode.S1_WITH_CLOSEST_S2: "S1", Mode.S1_MULTITEMPORAL: "S1",
                  Mode.S2_WITH_TWO_S1: "S2"}  # fmt: skip
#: Why a product no unit uses is left out, when the plan gives no reason (a mission the mode does not read).
NOT_USED = "not used by this mode"


def _rings(record: ProductRecord) -> list[list[tuple[float, float]]]:
    geometry: Any = record.footprint
    if geometry is None:
        return []
    parts = list(geometry.geoms) if hasattr(geometry, "geoms") else [geometry]
    return [
        [(round(x, 6), round(y, 6)) for x, y in part.exterior.coords] for part in parts if hasattr(part, "exterior")
    ]


def product_row(record: ProductRecord, coverage: float | None) -> dict[str, Any]:
    """One table row / map footprint for a found product (without its use: see :func:`preview_rows`)."""
    return {
        "product_id": record.product_id,
        "family": record.family,
        "mission": record.mission,
        "level": record.level,
        "date": record.sensing_time.strftime("%Y-%m-%d %H:%M"),
        "cloud": None if record.cloud_cover is None else round(float(record.cloud_cover), 1),
        "coverage": None if coverage is None else round(coverage, 1),
        "online": record.online,
        "href": record.href,
        "footprint": _rings(record),
    }


def preview_rows(plan: Plan) -> list[dict[str, Any]]:
    """Every product the search found, in search order: :func:`product_row` plus ``used`` (some unit reads
    it), ``units`` (the ids of those units) and ``why`` (the plan's reason for leaving it out, '' if used)."""
    units_of: dict[str, list[str]] = {}
    for unit in plan.units:
        for record in unit.products:
            units_of.setdefault(record.product_id, []).append(unit.unit_id)
    reasons: dict[str, str] = {}
    for dropped in plan.not_selected:
        reasons.setdefault(dropped.product_id, dropped.reason)
    roi = plan.config.roi
    rows = []
    for record in plan.found:
        units = units_of.get(record.product_id, [])
        why = "" if units else reasons.get(record.product_id, NOT_USED)
        rows.append({**product_row(record, roi_coverage(record, roi)), "used": bool(units), "units": units, "why": why})
    return rows


def unit_row(unit: WorkUnit) -> dict[str, Any]:
    """One work unit as the preview lists it: id, kind, product ids (primary first), roles and time gap."""
    return {
        "unit_id": unit.unit_id,
        "kind": unit.kind,
        "products": [p.product_id for p in unit.products],
        "roles": list(unit.roles),
        "date": unit.products[0].sensing_time.strftime("%Y-%m-%d %H:%M"),
        "dt_hours": None if unit.delta_t_hours is None else round(unit.delta_t_hours, 1),
    }


def _window_text(config: Config) -> str:
    days, direction = config.max_time_difference_days, config.pair_direction
    if math.isinf(days):
        return {"before": "at any time before", "after": "at any time after"}.get(direction, "at any time")
    span = f"{days:g} day" + ("" if days == 1 else "s")
    return {"before": f"up to {span} before", "after": f"up to {span} after"}.get(direction, f"within {span}")


def _pair_reason(unit: WorkUnit, config: Config) -> str:
    """Why the unit's second product goes with its first, in words."""
    primary, partner = unit.products[0], unit.products[1]
    if unit.kind == "s1+s1":
        days = abs(unit.delta_t_hours or 0.0) / 24.0
        return f"earlier acquisition of relative orbit {primary.relative_orbit}, {days:g} days before"
    if unit.kind == "s1_stack":
        span = (primary.sensing_time - unit.products[-1].sensing_time).total_seconds() / 86400.0
        return (f"stack of {len(unit.products)} acquisitions of relative orbit {primary.relative_orbit}, "
                f"back to {span:.0f} days before")  # fmt: skip
    if unit.kind == "s1+s2":
        return f"least cloudy {partner.family} {_window_text(config)}, then the closest"
    return f"closest {partner.family} {_window_text(config)}"


def preview_pairs(plan: Plan) -> list[dict[str, Any]]:
    """In the modes whose units are pairs, each primary acquisition in the date windows: its partner and the
    time gap (secondary minus primary, hours), or ``secondary`` None and the plan's reason why it has none."""
    config = plan.config
    family = PRIMARY_FAMILY.get(config.mode)
    if family is None:
        return []
    entries: list[tuple[ProductRecord, str | None, float | None, str]] = []
    for unit in plan.units:
        if len(unit.products) > 1:
            dt = round(unit.delta_t_hours or 0.0, 1)
            entries.append((unit.products[0], unit.products[1].product_id, dt, _pair_reason(unit, config)))
    for dropped in plan.not_selected:
        record = dropped.record
        if record.family == family and any(w.contains(record.sensing_time) for w in config.date_windows):
            entries.append((record, None, None, dropped.reason))
    entries.sort(key=lambda e: (e[0].sensing_time, e[0].product_id))
    return [{"primary": p.product_id, "secondary": s, "dt_hours": dt, "reason": why} for p, s, dt, why in entries]


class SearchState(param.Parameterized):
    """Runs a catalogue search in the background and keeps its rows, pairs and problems."""

    status = param.Selector(default="idle", objects=["idle", "searching", "done", "failed"], constant=True)
    rows = param.List(default=[], constant=True, doc="one dict per product found (see preview_rows)")
    units = param.List(default=[], constant=True, doc="the work units a run would process (see unit_row)")
    pairs = param.List(default=[], constant=True, doc="primary / secondary / dt_hours / reason (see preview_pairs)")
    problems = param.List(default=[], constant=True, doc="products that could not be read")
    error = param.String(default="", constant=True)
    selected = param.String(default="", doc="the product selected in the table (its footprint stands out)")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(
        self,
        config: Config,
        sources: list[str],
        credentials: Path | None = None,
        prepare: Callable[[], None] | None = None,
    ) -> bool:
        """Search in a background thread (the UI stays live); False while a search is running.

        ``credentials`` is a credentials file for sources that need an account; it is removed afterwards.
        ``prepare`` runs first in that thread (e.g. building the demo catalogue)."""
        if self.busy:
            forget_credentials(credentials)
            return False
        with param.edit_constant(self):
            self.status, self.error = "searching", ""
        self._thread = threading.Thread(target=self.run_now, args=(config, sources, credentials, prepare),
                                        name="senprep-search", daemon=True)  # fmt: skip
        self._thread.start()
        return True

    def wait(self, timeout: float = 120.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def run_now(
        self,
        config: Config,
        sources: list[str],
        credentials: Path | None = None,
        prepare: Callable[[], None] | None = None,
    ) -> None:
        """Search and plan synchronously (as a run would: :func:`~senprep_core.planning.plan_products`) and
        publish the results."""
        try:
            if prepare is not None:
                prepare()
            cred = credential_files(credentials, sources)
            providers = [open_provider(s, credentials=cred) for s in sources]
            found, problems = search(config, providers)
            plan = plan_products(config, found, problems, sources)
            rows, units, pairs = preview_rows(plan), [unit_row(u) for u in plan.units], preview_pairs(plan)
        except SenprepError as exc:
            with param.edit_constant(self):
                self.status, self.error, self.rows, self.units, self.pairs = "failed", str(exc), [], [], []
            return
        finally:
            forget_credentials(credentials)
        with param.parameterized.batch_call_watchers(self), param.edit_constant(self):
            self.rows, self.units, self.pairs = rows, units, pairs
            self.problems = [f"{p.name}: {p.message}" for p in plan.problems]
            self.status = "done"

    def clear(self) -> None:
        """Forget the results (the ROI, dates or mode they were for changed)."""
        with param.parameterized.batch_call_watchers(self), param.edit_constant(self):
            self.rows, self.units, self.pairs, self.problems, self.error = [], [], [], [], ""
            self.status = "idle"
        self.selected = ""

    def paired_ids(self) -> set[str]:
        """Products in a unit of two (a pair, or an acquisition with its earlier one): drawn bold on the map."""
        return {pid for unit in self.units if len(unit["products"]) > 1 for pid in unit["products"]}

    def used_ids(self) -> set[str]:
        """Products some unit uses (what a run would read)."""
        return {pid for unit in self.units for pid in unit["products"]}
