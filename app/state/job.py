"""One background pipeline job per browser session: progress, ETA, live log, counts, cancel."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import param

from app.state.options import credential_files, forget_credentials
from senprep_core.config import Config
from senprep_core.errors import RunFolderBusyError, SenprepError
from senprep_core.events import (
    Event,
    Message,
    PatchProgress,
    PatchWritten,
    RunFinished,
    RunStarted,
    StageProgress,
    UnitFinished,
    UnitStarted,
)
from senprep_core.outputs.run_folder import RunFolder

MAX_LOG_LINES = 400


@dataclass(frozen=True)
class RunRequest:
    """One pipeline run of a job: its config, output folder, sources and worker processes.

    ``workers`` 0 runs the units in the job's own thread; 1 or more runs them in that many worker
    processes, which keeps the app's event loop free of the pipeline's Python work.
    """

    config: Config
    outdir: Path
    sources: tuple[str, ...]
    workers: int = 0
    credentials: Path | None = None  # a private credentials file, removed when the job ends
    overwrite: bool = False  # delete the run already in ``outdir`` first (RunFolder.clear: not while in use)


class JobState(param.Parameterized):
    """Runs a sequence of pipeline runs in a background thread and publishes their progress.

    At most one job is active at a time; :meth:`start` refuses a second one.
    """

    status = param.String(
        default="idle", constant=True, doc="idle, preparing, running, cancelling (asked to stop), then the job's status"
    )
    stages = param.Dict(default={}, constant=True, doc="stage name -> (done, total)")
    units_total = param.Integer(default=0, constant=True)
    units_done = param.Integer(default=0, constant=True)
    units_failed = param.Integer(default=0, constant=True)
    current_unit = param.String(default="", constant=True)
    patches_written = param.Integer(default=0, constant=True)
    patches_skipped = param.Integer(default=0, constant=True)
    patches_total = param.Integer(default=0, constant=True, doc="patches the job's runs decide (per unit x units)")
    patches_done = param.Integer(default=0, constant=True, doc="patches decided so far: written or left out")
    patches_kept = param.Integer(default=0, constant=True, doc="patches of the units that finished (kept on disk)")
    running_units = param.Dict(default={}, constant=True, doc="unit id -> (patches decided, patches) while it runs")
    patches = param.List(default=[], constant=True, doc="paths of the patches written by this job")
    log = param.List(default=[], constant=True, doc="the live log (newest last)")
    failures = param.List(default=[], constant=True, doc="'unit: error' for each failed unit")
    outdirs = param.List(default=[], constant=True)
    error = param.String(default="", constant=True, doc="why the job stopped before running")
    started_at = param.Number(default=None, allow_None=True, constant=True)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._done_before = 0
        self._decided: dict[str, int] = {}  # patches decided per unit of the job (all its runs)
        self._per_unit = 0  # patches per unit of the current run
        self._patches_from: tuple[float, int] | None = None  # (time, patches decided) when the units started
        self.on_patch: Callable[[str], None] | None = None
        #: called with a unit's patch folder when it finishes done or already complete (skipped)
        self.on_unit: Callable[[Path], None] | None = None
        #: called when a run's folder is in use by another run (the job started nothing there)
        self.on_busy: Callable[[RunFolderBusyError], None] | None = None
        self._outdir: Path | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def fraction(self) -> float:
        """Overall progress 0..1: patches decided over patches planned (units when the plan has no patches)."""
        if self.patches_total:
            return min(1.0, self.patches_done / self.patches_total)
        return self.units_done / self.units_total if self.units_total else 0.0

    def eta_seconds(self, now: float | None = None) -> float | None:
        """Time left, from the patch throughput since the units started (None before the first patch)."""
        if not self.running or self._patches_from is None or not self.patches_total:
            return None
        since, done_then = self._patches_from
        done = self.patches_done - done_then
        if done <= 0:
            return None
        elapsed = (now or time.time()) - since
        return max(0.0, elapsed / done * (self.patches_total - self.patches_done))

    def start(self, runs: Sequence[RunRequest], prepare: Callable[[], None] | None = None) -> bool:
        """Start the runs in the background (``prepare`` runs first in that thread, e.g. building the
        demo catalogue). Returns False when a job is already running."""
        with self._lock:
            if self.running:
                for request in runs:
                    forget_credentials(request.credentials)
                return False
            self._cancel.clear()
            with param.parameterized.batch_call_watchers(self), param.edit_constant(self):
                self.status, self.stages, self.units_total, self.units_done, self.units_failed = (
                    "preparing",
                    {},
                    0,
                    0,
                    0,
                )
                self.current_unit, self.patches_written, self.patches_skipped = "", 0, 0
                self.patches_total, self.patches_done, self.patches_kept, self.running_units = 0, 0, 0, {}
                self.patches, self.log, self.failures, self.error = [], [], [], ""
                self.outdirs = [str(r.outdir) for r in runs]
                self.started_at = time.time()
            self._done_before, self._decided, self._per_unit, self._patches_from = 0, {}, 0, None
            self._thread = threading.Thread(
                target=self._work, args=(list(runs), prepare), name="senprep-job", daemon=True
            )
            self._thread.start()
            return True

    def cancel(self) -> None:
        """Ask the job to stop: no new unit starts, the running ones are stopped and their files removed.

        The status says ``cancelling`` at once, until the job has stopped."""
        self._cancel.set()
        with self._lock:
            if self.running and self.status in ("preparing", "running"):
                with param.edit_constant(self):
                    self.status = "cancelling"

    def wait(self, timeout: float = 300.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _say(self, line: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        self.log = [*self.log[-(MAX_LOG_LINES - 1) :], f"{stamp} {line}"]

    def on_event(self, event: Event) -> None:
        """Fold one pipeline event into the state (called from the job's thread)."""
        with param.parameterized.batch_call_watchers(self), param.edit_constant(self):
            if isinstance(event, RunStarted):  # a job may hold several runs: units and patches add up
                self._done_before, self._per_unit = self.units_done, event.patches_per_unit
                self.units_total += event.n_units
                self.patches_total += event.patches_total
                if self.status != "cancelling":
                    self.status = "running"
                self._say(f"run {event.run_id}: {event.n_units} units of {event.patches_per_unit} patches "
                          f"-> {event.outdir}")  # fmt: skip
            elif isinstance(event, UnitStarted):
                self.current_unit = event.unit_id
                self._count(event.unit_id, self._decided.get(event.unit_id, 0), running=True)
            elif isinstance(event, PatchProgress):
                self._count(event.unit_id, event.done, running=True)
            elif isinstance(event, PatchWritten):
                self.patches.append(event.path)  # in place: a run writes thousands (no watcher reads this list)
                self.patches_written += 1
            elif isinstance(event, UnitFinished):
                self._unit_finished(event)
            elif isinstance(event, StageProgress):
                self.stages = {**self.stages, event.stage: (event.done, event.total)}
                if event.stage == "process":
                    self.units_done = self._done_before + event.done
            elif isinstance(event, Message):
                self._say(f"{event.level}: {event.text}")
            elif isinstance(event, RunFinished):
                self._say(f"run {event.run_id} {event.status} in {event.seconds:.1f} s")
        if isinstance(event, PatchWritten) and self.on_patch is not None:
            self.on_patch(event.path)
        unit_folder = self._unit_folder(event)
        if unit_folder is not None and self.on_unit is not None:
            self.on_unit(unit_folder)

    def _count(self, unit_id: str, decided: int, running: bool) -> None:
        """A unit's patches decided so far (its row while it runs, the job's total)."""
        if self._patches_from is None:
            self._patches_from = (time.time(), self.patches_done)
        self._decided[unit_id] = decided
        self.patches_done = sum(self._decided.values())
        rows = {k: v for k, v in self.running_units.items() if k != unit_id}
        self.running_units = {**rows, unit_id: (decided, self._per_unit)} if running else rows

    def _unit_finished(self, event: UnitFinished) -> None:
        # done, skipped (complete before), rejected or failed: every patch of the unit is decided
        self._count(event.unit_id, self._per_unit, running=False)
        self.patches_skipped += event.patches_skipped
        if event.status in ("done", "skipped"):
            self.patches_kept += event.patches_written
        if event.status == "failed":
            self.units_failed += 1
            self.failures = [*self.failures, f"{event.unit_id}: {event.error}"]
        detail = f" ({event.error})" if event.error else ""
        self._say(f"{event.unit_id}: {event.status}, {event.patches_written} patches{detail}")

    def _unit_folder(self, event: Event) -> Path | None:
        """The patch folder of a unit that finished with its patches on disk (written now or before)."""
        if isinstance(event, UnitFinished) and event.status in ("done", "skipped") and self._outdir is not None:
            return RunFolder(self._outdir).unit_dir(event.unit_id)
        return None

    @staticmethod
    def _executor(request: RunRequest) -> Any:
        """Worker processes for the run (None: run() uses the job's thread)."""
        if request.workers < 1:
            return None
        from senprep_core.executors import ProcessExecutor

        return ProcessExecutor(request.workers)

    def _work(self, runs: list[RunRequest], prepare: Callable[[], None] | None) -> None:
        try:
            self._work_runs(runs, prepare)
        finally:
            for request in runs:
                forget_credentials(request.credentials)

    def _work_runs(self, runs: list[RunRequest], prepare: Callable[[], None] | None) -> None:
        from senprep_core.fetch.cache import default_cache_dir
        from senprep_core.outputs.run_folder import RunFolder
        from senprep_core.pipeline import run
        from senprep_core.unit.fetching import FetchOptions

        statuses = []
        try:
            if prepare is not None:
                prepare()
            for request in runs:
                if self._cancel.is_set():
                    break
                self._outdir = request.outdir
                if request.overwrite:
                    removed = RunFolder(request.outdir).clear(request.config.name)
                    with param.edit_constant(self):
                        self._say(f"overwrite: removed the earlier run in {request.outdir} ({len(removed)} entries)")
                executor = self._executor(request)
                try:
                    fetch = FetchOptions(default_cache_dir(), credential_files(request.credentials, request.sources))
                    result = run(request.config, request.outdir, sources=list(request.sources),
                                 callback=self.on_event, cancel=self._cancel, executor=executor,
                                 fetch=fetch)  # fmt: skip
                finally:
                    if executor is not None:
                        executor.close()
                statuses.append(result.status)
        except RunFolderBusyError as exc:
            self._busy(exc, started=bool(statuses))
            return
        except SenprepError as exc:
            with param.edit_constant(self):
                self.status, self.error = "failed", str(exc)
                self._say(f"error: {exc}")
            return
        except Exception as exc:  # the app must show any failure, not lose it in a thread
            with param.edit_constant(self):
                self.status, self.error = "failed", f"{type(exc).__name__}: {exc}"
                self._say(f"error: {type(exc).__name__}: {exc}")
            return
        with param.edit_constant(self):
            self.current_unit, self.running_units = "", {}
            if self._cancel.is_set():
                self.status = "cancelled"
            elif statuses and all(s == "empty" for s in statuses):
                self.status = "empty"  # the log says why: nothing matched, or everything was left out
            elif all(s in ("complete", "empty") for s in statuses):
                self.status = "complete"
            elif all(s == "failed" for s in statuses):
                self.status = "failed"
            else:
                self.status = "partial"

    def _busy(self, exc: RunFolderBusyError, started: bool) -> None:
        """Another run holds the folder: nothing was written; a job that ran nothing yet goes back to idle."""
        with param.parameterized.batch_call_watchers(self), param.edit_constant(self):
            self.error = str(exc)
            self._say(f"not started: {exc}")
            if started:
                self.status = "failed"
            else:
                self.status, self.outdirs, self.started_at = "idle", [], None
        if self.on_busy is not None:
            self.on_busy(exc)
