"""The run report (``run.json``): per-unit status, timings and errors, updated as units finish."""

from __future__ import annotations

import time
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

    def record(self, result: UnitResult) -> None:
        self.units[result.unit_id] = result.to_dict()

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in ("done", "skipped", "rejected", "failed", "cancelled", "pending")}
        for u in self.units.values():
            out[u["status"]] += 1
        out["products_unreadable"] = len(self.problems)
        out["patches_written"] = sum(u.get("patches_written", 0) for u in self.units.values())
        out["patches_skipped"] = sum(u.get("patches_skipped", 0) for u in self.units.values())
        out["retries"] = sum(u.get("retries", 0) for u in self.units.values())
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
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
            "plan": self.plan,
            "units": [self.units[k] for k in sorted(self.units)],
            "unreadable_products": self.problems,
        }
