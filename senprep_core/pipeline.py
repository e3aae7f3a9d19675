"""Run a configuration: lock the run folder, plan, execute the units, write the run's indexes.

``run()`` is the one entry point the CLI, the app and notebooks share. A run holds its folder's lock
for its whole life, so two runs never write one folder; a second run is refused naming the first
(or waits with ``wait=True``). Work units are idempotent (temporary names, manifest last, verified
on every re-run), so a re-run skips complete units and redoes exactly the rest.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from senprep_core.catalog import Provider
from senprep_core.config import Config
from senprep_core.errors import DiskFullError, OutputError
from senprep_core.events import (
    Event,
    EventCallback,
    Message,
    RunFinished,
    RunStarted,
    StageProgress,
    UnitFinished,
    UnitStarted,
    clean_event,
    no_op,
)
from senprep_core.executors import Executor, FailedTask, connection_plan, make_executor
from senprep_core.fetch.redact import scrub_known
from senprep_core.outputs.folder_lock import LockHolder
from senprep_core.outputs.legacy_layout import prune_legacy
from senprep_core.outputs.records import PatchEntry, UnitResult
from senprep_core.outputs.report import RunReport
from senprep_core.outputs.run_folder import RunFolder
from senprep_core.outputs.stac import write_catalog
from senprep_core.outputs.zarr_cube import finish_cube, prepare_cube, require_zarr
from senprep_core.planning import Plan, make_plan
from senprep_core.sizing import check_disk, run_size
from senprep_core.unit.fetching import FetchOptions
from senprep_core.unit.runner import execute_unit

log = logging.getLogger(__name__)
#: How long a run waits for processes of an earlier run that are still writing into its folder.
STRAGGLER_SECONDS = 120.0
#: How long a cancelled run waits for its units running elsewhere (Dask tasks) to stop.
CANCEL_WAIT_SECONDS = 30.0

__all__ = ["Plan", "RunResult", "make_plan", "run"]


@dataclass(frozen=True)
class RunResult:
    """What a run did: the plan, each unit's result, and the overall status."""

    plan: Plan
    outdir: Path
    results: tuple[UnitResult, ...]
    status: str
    seconds: float
    stopped: str | None = None  # why the run stopped before its end (a full disk), None otherwise

    @property
    def failed(self) -> tuple[UnitResult, ...]:
        return tuple(r for r in self.results if r.status == "failed")

    @property
    def patches_written(self) -> int:
        return sum(r.patches_written for r in self.results)

    def entries(self, unit_id: str | None = None) -> list[PatchEntry]:
        """The patches of the run's complete units (or of one unit), read from their manifests."""
        folder = RunFolder(self.outdir)
        ids = [unit_id] if unit_id is not None else [r.unit_id for r in self.results if r.status in ("done", "skipped")]
        return [e for u in ids if (m := folder.read_manifest(u)) is not None for e in m.patches]

    @property
    def exit_code(self) -> int:
        """0 when everything worked (or nothing matched), 1 when some product failed or could not be read or the
        run stopped early, 130 if cancelled."""
        if self.status == "cancelled":
            return 130
        return 1 if (self.failed or self.plan.problems or self.stopped) else 0


def run(
    config: Config,
    outdir: str | Path,
    sources: Sequence[str] | None = None,
    rebuild: bool = False,
    njobs: int = 1,
    callback: EventCallback = no_op,
    cancel: threading.Event | None = None,
    providers: Sequence[Provider] | None = None,
    executor: Executor | None = None,
    fetch: FetchOptions | None = None,
    wait: bool = False,
    force: bool = False,
) -> RunResult:
    """Plan and run ``config`` into ``outdir``; returns a :class:`RunResult` (never raises for a failed product).

    Raises :class:`ConfigError` / :class:`OutputError` for bad input before anything is written (a run too large
    for the machine or the disk included, unless ``force``), and :class:`RunFolderBusyError` when another run
    holds ``outdir`` (unless ``wait``: then it waits).
    """
    t0 = time.time()
    halt = _Halt(cancel or threading.Event())
    fetch = fetch or FetchOptions.default()
    callback = _masking(callback)
    if config.output.zarr:
        require_zarr()
    folder = RunFolder(outdir)
    folder.check_usable()
    created = folder.create()
    lock = folder.lock(config.name)

    def waiting(holder: LockHolder | None) -> None:
        who = holder.describe() if holder is not None else "another run"
        callback(Message(f"{folder.root} is in use by {who}: waiting for it to finish", level="warning"))

    runner = executor or make_executor(njobs)
    if fetch.connections is None:  # the workers share each account's connection limit (e.g. CDSE's 4)
        fetch = replace(fetch, connections=connection_plan(runner, fetch.cache_dir))
    try:
        lock.acquire(wait=wait, cancel=halt, on_wait=waiting)
        plan = make_plan(config, sources, providers, fetch.credentials, force)
        _check_disk(plan, folder, rebuild, force)
        if plan.units:
            runner.start()  # e.g. a Dask scheduler that does not answer: refused before anything is written
    except BaseException:
        if created:
            folder.remove_if_unused()
        lock.release()
        if executor is None:
            runner.close()
        raise
    try:
        task = partial(execute_unit, outdir=folder.root, rebuild=rebuild, fetch=fetch)
        return _run_plan(plan, folder, lock.holder, task, runner, callback, halt, t0)
    finally:
        if executor is None:  # made here: release its workers; a caller's executor stays for its next runs
            runner.close()
        lock.release()


class _Halt(threading.Event):
    """Set when the user cancels (their event) or when the run must stop (a full disk)."""

    def __init__(self, cancel: threading.Event) -> None:
        super().__init__()
        self.user = cancel
        self.reason: str | None = None

    def is_set(self) -> bool:
        return super().is_set() or self.user.is_set()

    def stop(self, reason: str) -> None:
        """Stop the run for ``reason`` (not a cancel: the run fails with that reason)."""
        self.reason = self.reason or reason
        self.set()

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            left = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
            if left <= 0:
                return False
            time.sleep(left)
        return True

    @property
    def cancelled(self) -> bool:
        """True when the user stopped the run."""
        return self.user.is_set() and self.reason is None


def _check_disk(plan: Plan, folder: RunFolder, rebuild: bool, force: bool) -> None:
    """Refuse a run whose units to do will not fit on the output folder's disk (complete ones are not redone)."""
    todo = [u for u in plan.units if rebuild or folder.read_manifest(u.unit_id) is None]
    if todo:
        check_disk(run_size(plan.config), len(todo), folder.free_bytes(), force)


def _masking(callback: EventCallback) -> EventCallback:
    """``callback`` fed events whose text has the secrets this process knows masked (events from worker
    processes had those of their worker masked there)."""

    def masked(event: Event) -> None:
        callback(clean_event(event, scrub_known))

    return masked


def _prepare(folder: RunFolder, plan: Plan, holder: LockHolder | None, callback: EventCallback) -> RunReport:
    """Wait for stragglers of an earlier run, clear its temporary files, write the config and the report."""
    if not folder.wait_for_writers(
        STRAGGLER_SECONDS,
        lambda: callback(
            Message("processes of an earlier run are still writing into the folder: waiting for them", level="warning")
        ),
    ):
        raise OutputError(f"processes of an earlier run kept writing into {folder.root} for {STRAGGLER_SECONDS:g} s; "
                          "stop them (or wait) and run again")  # fmt: skip
    removed = folder.remove_temps()
    if removed:
        log.info("removed %d temporary files left by an interrupted run", len(removed))
    config = plan.config
    folder.write_config(config.to_dict())
    report = RunReport(config.name, config.fingerprint(), plan.to_dict(),
                       holder=None if holder is None else asdict(holder))  # fmt: skip
    report.problems = [p.__dict__ for p in plan.problems]
    for problem in plan.problems:
        callback(Message(f"cannot read product {problem.name}: {problem.message}", level="error"))
    for warning in plan.warnings:
        callback(Message(warning, level="warning"))
    if (empty := plan.empty_reason()) is not None:
        callback(Message(f"nothing to process: {empty}", level="warning"))
    folder.start_report(report.summary(), report.plan)
    return report


class _Tracker:
    """Follows the units as they run: attempts (a start after a lost worker is a retry) and results."""

    def __init__(self, plan: Plan, folder: RunFolder, report: RunReport, callback: EventCallback, halt: _Halt) -> None:
        self.plan, self.folder, self.report, self.callback, self.halt = plan, folder, report, callback, halt
        self.running: dict[str, float] = {}
        self.attempts: dict[str, int] = {}
        self.first_worker: dict[str, str] = {}
        self.results: list[UnitResult] = []

    def dispatch(self, event: Event) -> None:
        if isinstance(event, UnitStarted):
            self.running[event.unit_id] = event.time
            self.attempts[event.unit_id] = self.attempts.get(event.unit_id, 0) + 1
            self.first_worker.setdefault(event.unit_id, event.worker)
        self.callback(event)

    def finished(self, outcome: UnitResult | FailedTask) -> None:
        result = _as_result(outcome)
        self.running.pop(result.unit_id, None)
        retries = max(self.attempts.get(result.unit_id, 1), getattr(outcome, "attempts", 1)) - 1
        # a retry's start event may reach us after its result (Dask delivers events and results
        # separately): a result from another worker than the first start is a retry all the same
        if result.worker and self.first_worker.get(result.unit_id, result.worker) != result.worker:
            retries = max(retries, 1)
        if retries > 0:
            result = replace(result, retries=retries)
        self.results.append(result)
        row = self.report.record(result)
        if result.error_type == DiskFullError.__name__:  # every unit after it would fail the same way
            self.halt.stop(result.error_message or "the output disk is full")
        try:
            self.folder.record_unit(row, self.report.summary())
        except DiskFullError as exc:
            self.halt.stop(str(exc))
        self.callback(UnitFinished(unit_id=result.unit_id,
                                   status="done" if result.status == "rejected" else result.status,  # type: ignore[arg-type]
                                   patches_written=result.patches_written, patches_skipped=result.patches_skipped,
                                   seconds=result.seconds, error=result.error_message or result.reason))  # fmt: skip
        self.callback(StageProgress(stage="process", done=len(self.results), total=len(self.plan.units)))


def _as_result(outcome: UnitResult | FailedTask) -> UnitResult:
    if isinstance(outcome, UnitResult):
        return outcome
    return UnitResult(outcome.unit.unit_id, "failed", error_type=outcome.error_type, error_message=outcome.message)


def _run_plan(
    plan: Plan,
    folder: RunFolder,
    holder: LockHolder | None,
    task: Callable[[Any, EventCallback], UnitResult],
    runner: Executor,
    callback: EventCallback,
    halt: _Halt,
    t0: float,
) -> RunResult:
    report = _prepare(folder, plan, holder, callback)
    callback(RunStarted(run_id=plan.config.name, n_units=len(plan.units), outdir=str(folder.root),
                        patches_per_unit=plan.n_patches))  # fmt: skip
    tracker = _Tracker(plan, folder, report, callback, halt)
    if plan.cube is not None:
        prepare_cube(folder, plan.cube)  # the arrays the units fill in place
    try:
        for outcome in runner.map_units(plan.units, task, tracker.dispatch, halt):
            tracker.finished(outcome)
    except KeyboardInterrupt:
        halt.user.set()
    if halt.is_set():
        _clean_after_cancel(folder, tracker, callback)
    seen = {r.unit_id for r in tracker.results}
    why = halt.reason or "run cancelled before this unit finished"
    for unit in plan.units:
        if unit.unit_id not in seen:
            report.record(UnitResult(unit.unit_id, "cancelled", reason=why))
    if not halt.is_set():
        _write_indexes(plan, folder, tracker.results, callback)
    return _finish(plan, folder, report, tracker.results, halt, callback, t0)


def _clean_after_cancel(folder: RunFolder, tracker: _Tracker, callback: EventCallback) -> None:
    """Stopped mid-way: the units that were running leave nothing half-written, and no temporary file stays.

    Units still running elsewhere (Dask tasks, which cannot be killed) stop at their next progress event;
    their writer sessions tell when they have."""
    folder.wait_for_writers(CANCEL_WAIT_SECONDS, lambda: callback(Message("waiting for running units to stop")))
    for unit_id in list(tracker.running):
        folder.discard_unfinished(unit_id)
    folder.remove_temps()


def _write_indexes(plan: Plan, folder: RunFolder, results: Sequence[UnitResult], callback: EventCallback) -> None:
    """The run-level outputs built from the units' patches: STAC catalog, Zarr cube, 2022 layout."""
    config = plan.config
    done = sorted(r.unit_id for r in results if r.status in ("done", "skipped"))
    steps: list[tuple[str, Callable[[], object]]] = []
    if config.output.stac:
        steps.append(("catalog", lambda: write_catalog(folder, config.name, done)))
    if plan.cube is not None:
        cube = plan.cube
        steps.append(("zarr", lambda: finish_cube(folder, cube, done, config.name)))
    if config.output.layout == "legacy":  # the units placed their links; drop the folders of others
        complete = set(done)
        keep = {u.legacy_dir for u in plan.units if u.unit_id in complete and u.legacy_dir}
        steps.append(("legacy layout", lambda: prune_legacy(folder, config.name, keep)))
    for stage, write in steps:
        callback(StageProgress(stage=stage, done=0, total=1))
        write()
        callback(StageProgress(stage=stage, done=1, total=1))


def _status(plan: Plan, results: Sequence[UnitResult], halt: _Halt) -> str:
    n_failed = sum(r.status == "failed" for r in results)
    if halt.cancelled:
        return "cancelled"
    if not plan.units:
        return "empty"
    if halt.reason is not None:
        return "partial" if any(r.status in ("done", "skipped", "rejected") for r in results) else "failed"
    if n_failed and n_failed == len(plan.units):
        return "failed"
    return "partial" if n_failed or plan.problems else "complete"


def _finish(
    plan: Plan,
    folder: RunFolder,
    report: RunReport,
    results: Sequence[UnitResult],
    halt: _Halt,
    callback: EventCallback,
    t0: float,
) -> RunResult:
    status = _status(plan, results, halt)
    report.status = status
    report.stopped = halt.reason
    report.finished = time.time()
    try:
        folder.write_report(report.to_dict())
    except DiskFullError as exc:  # the report stays as last written; the caller still learns the outcome
        log.error("%s", exc)
    counts = report.counts()
    callback(RunFinished(run_id=plan.config.name, status=status,  # type: ignore[arg-type]
                         units_done=counts["done"], units_skipped=counts["skipped"], units_failed=counts["failed"],
                         patches_written=counts["patches_written"], patches_skipped=counts["patches_skipped"],
                         seconds=time.time() - t0))  # fmt: skip
    return RunResult(plan, folder.root, tuple(results), status, time.time() - t0, halt.reason)
