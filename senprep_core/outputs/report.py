"""The run report (``run.json``): per-unit status, timings and errors, updated as units finish.

While a run goes on, the run folder keeps a compact summary (:meth:`RunReport.summary`: status and counts)
plus one journal line per finished unit, so recording a unit costs the same at the 2,000th unit as at the
first; the whole report (:meth:`RunReport.to_dict`: the plan and every unit) is written once, at the end.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from senprep_core import __version__
from senprep_core.outputs.records import UnitResult

RUN_STATES = ("running", "complete", "partial", "failed", "cancelled", "empty")


@dataclass
class RunReport:
    """Mutable during a run; its :meth:`to_dict` is what the run folder writes to ``run.json``."""

    name: str
    config_fingerprint: str
    plan: dict[str, Any]
    started: float = field(default_factory=time.time)
    finished: float | None = None
    status: str = "running"
    units: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[dict[str, Any]] = field(default_factory=list)
    holder: dict[str, Any] | None = None
    stopped: str | None = None  # why the run stopped early (a full disk)
    _totals: Counter[str] = field(default_factory=Counter, repr=False)

    def record(self, result: UnitResult) -> dict[str, Any]:
        """Record (or replace) a unit's result; return its row."""
        old = self.units.get(result.unit_id)
        if old is not None:
            self._add(old, -1)
        row = result.to_dict()
        self.units[result.unit_id] = row
        self._add(row, 1)
        return row

    def _add(self, row: dict[str, Any], sign: int) -> None:
        self._totals[row["status"]] += sign
        for key in ("patches_written", "patches_skipped", "retries"):
            self._totals[key] += sign * int(row.get(key) or 0)

    def counts(self) -> dict[str, int]:
        out = {s: self._totals[s] for s in ("done", "skipped", "rejected", "failed", "cancelled", "pending")}
        out["products_unreadable"] = len(self.problems)
        for key in ("patches_written", "patches_skipped", "retries"):
            out[key] = self._totals[key]
        return out

    def summary(self) -> dict[str, Any]:
        """The report without the plan and the per-unit rows (what ``run.json`` holds while the run goes on)."""
        return self.to_dict(with_units=False)

    def to_dict(self, with_units: bool = True) -> dict[str, Any]:
        out = {
            "name": self.name,
            "status": self.status,
            "software": {"name": "senprep", "version": __version__},
            "config_fingerprint": self.config_fingerprint,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.finished)) if self.finished else None,
            "seconds": round((self.finished or time.time()) - self.started, 3),
            "process": self.holder,
            "stopped": self.stopped,
            "counts": self.counts(),
            "unreadable_products": self.problems,
        }
        if with_units:
            out["plan"] = self.plan
            out["units"] = [self.units[k] for k in sorted(self.units)]
        return out
