"""The run report (``run.json``): per-unit status, timings and errors, rewritten as units finish."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from senprep_core import __version__
from senprep_core.outputs.atomic import write_json_atomic

UnitStatus = Literal["pending", "done", "skipped", "rejected", "failed", "cancelled"]


@dataclass(frozen=True)
class UnitResult:
    """What happened to one work unit."""

    unit_id: str
    status: UnitStatus
    seconds: float = 0.0
    patches_written: int = 0
    patches_skipped: int = 0
    reason: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    roi_valid_fraction: float | None = None
    roi_cloud_fraction: float | None = None
    retries: int | None = None  # times the unit was started again after a lost worker
    worker: str | None = None  # where the attempt that produced this result ran
    patch_entries: tuple[dict[str, Any], ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("patch_entries")
        return {k: v for k, v in d.items() if v is not None}


@dataclass
class RunReport:
    """Mutable during a run; serialised to ``run.json`` after each unit."""

    name: str
    outdir: Path
    config_fingerprint: str
    plan: dict[str, Any]
    started: float = field(default_factory=time.time)
    finished: float | None = None
    status: str = "running"
    units: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[dict[str, Any]] = field(default_factory=list)

    def record(self, result: UnitResult) -> None:
        self.units[result.unit_id] = result.to_dict()

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in ("done", "skipped", "rejected", "failed", "cancelled", "pending")}
        for u in self.units.values():
            out[u["status"]] += 1
        out["products_unreadable"] = len(self.problems)
        out["patches_written"] = sum(u.get("patches_written", 0) for u in self.units.values())
        out["patches_skipped"] = sum(u.get("patches_skipped", 0) for u in self.units.values())
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
            "counts": self.counts(),
            "plan": self.plan,
            "units": [self.units[k] for k in sorted(self.units)],
            "unreadable_products": self.problems,
        }

    def save(self) -> None:
        write_json_atomic(self.outdir / "run.json", self.to_dict())


def summarise_run(outdir: Path) -> dict[str, Any]:
    """What ``senprep status`` shows: status, counts, failures and the units a re-run would redo."""
    import json

    from senprep_core.errors import OutputError

    path = Path(outdir) / "run.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise OutputError(f"{path} is missing or unreadable ({exc}); give the folder of a senprep run") from exc
    units = {u["unit_id"]: u for u in data.get("units", [])}
    planned = [u["unit_id"] for u in data.get("plan", {}).get("units", [])]
    to_redo = [u for u in planned if units.get(u, {}).get("status") not in ("done", "skipped", "rejected")]
    return {
        "name": data.get("name"),
        "outdir": str(outdir),
        "status": data.get("status"),
        "counts": data.get("counts", {}),
        "failed": [u for u in units.values() if u.get("status") == "failed"],
        "to_redo": to_redo,
    }
