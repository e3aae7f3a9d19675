"""Search preview: candidate products (footprints, cloud, ROI coverage) and the pairs a mode would use."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import param

from app.state.options import forget_credentials
from senprep_core.catalog import ProductRecord, open_provider
from senprep_core.config import Config
from senprep_core.errors import SenprepError
from senprep_core.planning import search


def _rings(record: ProductRecord) -> list[list[tuple[float, float]]]:
    geometry: Any = record.footprint
    if geometry is None:
        return []
    parts = list(geometry.geoms) if hasattr(geometry, "geoms") else [geometry]
    return [
        [(round(x, 6), round(y, 6)) for x, y in part.exterior.coords] for part in parts if hasattr(part, "exterior")
    ]


def product_row(record: ProductRecord, coverage: float | None) -> dict[str, Any]:
    """One table row / map footprint for a found product."""
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


class SearchState(param.Parameterized):
    """Runs a catalogue search in the background and keeps its rows, pairs and problems."""

    status = param.Selector(default="idle", objects=["idle", "searching", "done", "failed"], constant=True)
    rows = param.List(default=[], constant=True, doc="one dict per product found (see product_row)")
    pairs = param.List(default=[], constant=True, doc="primary / secondary / dt_hours / reason per pair")
    problems = param.List(default=[], constant=True, doc="products that could not be read")
    error = param.String(default="", constant=True)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, config: Config, sources: list[str], credentials: Path | None = None) -> bool:
        """Search in a background thread (the UI stays live); False while a search is running.

        ``credentials`` is a credentials file for sources that need an account; it is removed afterwards."""
        if self.busy:
            forget_credentials(credentials)
            return False
        with param.edit_constant(self):
            self.status, self.error = "searching", ""
        self._thread = threading.Thread(target=self.run_now, args=(config, sources, credentials),
                                        name="senprep-search", daemon=True)  # fmt: skip
        self._thread.start()
        return True

    def wait(self, timeout: float = 120.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def run_now(self, config: Config, sources: list[str], credentials: Path | None = None) -> None:
        """Search synchronously and publish the results."""
        from senprep_core.pairing import closest_pairs, roi_coverage

        try:
            cred = str(credentials) if credentials else None
            products, problems = search(config, [open_provider(s, credentials=cred) for s in sources])
            rows = [product_row(p, roi_coverage(p, config.roi.geometry)) for p in products]
            pairs: list[dict[str, Any]] = []
            if config.mode.is_pairing:
                s2_first = config.mode.value == "s2_with_closest_s1"
                primary_family = "S2" if s2_first else "S1"
                primaries = [
                    p
                    for p in products
                    if p.family == primary_family and any(w.contains(p.sensing_time) for w in config.date_windows)
                ]
                secondaries = [p for p in products if p.family != primary_family]
                for pair in closest_pairs(
                    primaries,
                    secondaries,
                    config.max_time_difference_days,
                    config.pair_direction,
                    roi=config.roi.geometry,
                ):
                    pairs.append(
                        {
                            "primary": pair.primary.product_id,
                            "secondary": pair.secondary.product_id if pair.secondary is not None else None,
                            "dt_hours": None if pair.dt_hours is None else round(pair.dt_hours, 1),
                            "reason": pair.reason,
                        }
                    )
        except SenprepError as exc:
            with param.edit_constant(self):
                self.status, self.error, self.rows, self.pairs = "failed", str(exc), [], []
            return
        finally:
            forget_credentials(credentials)
        with param.parameterized.batch_call_watchers(self), param.edit_constant(self):
            self.rows, self.pairs = rows, pairs
            self.problems = [f"{p.name}: {p.message}" for p in problems]
            self.status = "done"

    def paired_ids(self) -> set[str]:
        """Products used by some pair (highlighted on the map and in the table)."""
        used: set[str] = set()
        for pair in self.pairs:
            if pair["secondary"] is not None:
                used.update((pair["primary"], pair["secondary"]))
        return used
