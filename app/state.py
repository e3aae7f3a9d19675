"""App state as param classes (no Panel import): the demo job and its progress."""

from __future__ import annotations

import threading
from pathlib import Path

import param

from senprep_core.events import Event, PatchWritten, RunFinished, RunStarted, StageProgress, UnitFinished


class DemoJob(param.Parameterized):
    """Runs the embedded demo in a background thread and publishes its progress as parameters."""

    outdir = param.String(default="senprep-demo", doc="run folder")
    status = param.String(default="idle", constant=True)
    units_total = param.Integer(default=0, constant=True)
    units_done = param.Integer(default=0, constant=True)
    patches = param.List(default=[], constant=True, doc="paths of the patches written so far")
    log = param.List(default=[], constant=True)
    error = param.String(default="", constant=True)

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()
        self._done_before = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> bool:
        """Start the demo run unless one is already running for this session."""
        if self.running:
            return False
        self._cancel.clear()
        with param.edit_constant(self):
            self.status, self.units_done, self.patches, self.log, self.error = "starting", 0, [], [], ""
            self.units_total = 0
        self._thread = threading.Thread(target=self._work, name="senprep-demo", daemon=True)
        self._thread.start()
        return True

    def cancel(self) -> None:
        self._cancel.set()

    def _on_event(self, event: Event) -> None:
        with param.edit_constant(self):
            if isinstance(event, RunStarted):  # the demo has one run per mission: units add up
                self._done_before = self.units_done
                self.units_total, self.status = self.units_total + event.n_units, "running"
            elif isinstance(event, PatchWritten):
                self.patches = [*self.patches, event.path]
            elif isinstance(event, UnitFinished):
                self.log = [*self.log, f"{event.unit_id}: {event.status} ({event.patches_written} patches)"]
            elif isinstance(event, StageProgress) and event.stage == "process":
                self.units_done = self._done_before + event.done
            elif isinstance(event, RunFinished):
                self.status = event.status

    def _work(self) -> None:
        from senprep_core.config import parse_config
        from senprep_core.demo.catalog import build_demo_catalog, default_demo_folder, demo_runs
        from senprep_core.errors import SenprepError
        from senprep_core.pipeline import run

        try:
            with param.edit_constant(self):
                self.status = "generating demo products"
            folder = default_demo_folder()
            build_demo_catalog(folder)
            for name, data in demo_runs(folder):
                if self._cancel.is_set():
                    break
                run(parse_config(data), Path(self.outdir) / name, sources=[f"local:{folder}"],
                    callback=self._on_event, cancel=self._cancel)  # fmt: skip
        except SenprepError as exc:
            with param.edit_constant(self):
                self.status, self.error = "failed", str(exc)
