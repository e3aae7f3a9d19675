"""Plan a run (ROI -> grid -> search -> work units), execute the units, write the run outputs.

``run()`` is the one entry point the CLI, the app and notebooks share. Work units are
idempotent (every file is written to a temporary name and renamed; a unit's manifest is
written last), so a re-run skips complete units and redoes the rest.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from senprep_core.catalog import Provider, SearchQuery, open_provider
from senprep_core.catalog.records import ProductProblem, ProductRecord
from senprep_core.catalog.selection import DroppedProduct, deduplicate, minimum_cover
from senprep_core.config import Config, Mode
from senprep_core.errors import ConfigError, OutputError, SenprepError
from senprep_core.events import (
    Event,
    EventCallback,
    Message,
    PatchWritten,
    RunFinished,
    RunStarted,
    StageProgress,
    UnitFinished,
    UnitStarted,
    no_op,
)
from senprep_core.executors import Emit, Executor, make_executor
from senprep_core.fetch.needs import FetchOptions, cloud_precheck, fetch_record
from senprep_core.geo.grid import TargetGrid
from senprep_core.outputs.atomic import remove_stale_temps, write_json_atomic
from senprep_core.outputs.report import RunReport, UnitResult
from senprep_core.outputs.stac import write_catalog
from senprep_core.planning import WorkUnit, plan_units, search_padding
from senprep_core.process_s2 import S2Source
from senprep_core.timeutil import DateWindow
from senprep_core.units import UnitSource, discard_unfinished, load_complete_manifest, record_rejection, run_unit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """Everything decided before any pixel is read."""

    config: Config
    grid: TargetGrid
    n_patches: int
    units: tuple[WorkUnit, ...]
    problems: tuple[ProductProblem, ...]
    sources: tuple[str, ...]
    not_selected: tuple[DroppedProduct, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.config.name,
            "mode": self.config.mode.value,
            "grid": self.grid.to_dict(),
            "patches_per_unit": self.n_patches,
            "sources": list(self.sources),
            "units": [u.to_dict() for u in self.units],
            "unreadable_products": [p.__dict__ for p in self.problems],
            "not_selected": [{"product_id": d.product_id, "reason": d.reason} for d in self.not_selected],
        }


@dataclass(frozen=True)
class RunResult:
    """What a run did: the plan, each unit's result, and the overall status."""

    plan: Plan
    outdir: Path
    results: tuple[UnitResult, ...]
    status: str
    seconds: float

    @property
    def failed(self) -> tuple[UnitResult, ...]:
        return tuple(r for r in self.results if r.status == "failed")

    @property
    def patches_written(self) -> int:
        return sum(r.patches_written for r in self.results)

    @property
    def exit_code(self) -> int:
        """0 when everything worked, 1 when some product failed or could not be read, 130 if cancelled."""
        if self.status == "cancelled":
            return 130
        return 1 if (self.failed or self.plan.problems) else 0


def _check_outputs(config: Config) -> None:
    """Refuse, before any work, an output whose package is missing."""
    if config.output.zarr:
        from senprep_core.outputs.zarr_cube import require_zarr

        require_zarr()


def resolve_sources(config: Config, sources: Sequence[str] | None) -> tuple[str, ...]:
    """The sources to search: the explicit ones, else the config's, else an error."""
    chosen = tuple(sources or ()) or tuple(config.sources)
    if not chosen:
        raise ConfigError("sources", [], "give --source local:DIR (a folder of .SAFE/.zip products) or --source demo")
    return chosen


def search_queries(config: Config) -> list[SearchQuery]:
    """One query per mission the mode reads. In a pairing mode the secondary mission's windows are
    widened by the pairing tolerance, so a partner just outside a window is still found."""
    before, after = search_padding(config)
    queries = []
    if config.mode.needs_s2:
        windows = config.date_windows
        if config.mode is Mode.S1_WITH_CLOSEST_S2:
            windows = tuple(DateWindow(w.start - before, w.end + after) for w in windows)
        s2_type = "S2MSI2A" if config.s2_level == "L2A" else "S2MSI1C"
        queries.append(SearchQuery(config.roi.geometry, windows, (s2_type,), config.cloud_cover))
    if config.mode.needs_s1:
        windows = config.date_windows
        if config.mode in (Mode.S2_WITH_CLOSEST_S1, Mode.S1_MULTITEMPORAL):
            windows = tuple(DateWindow(w.start - before, w.end + after) for w in windows)
        queries.append(SearchQuery(config.roi.geometry, windows, (config.s1_product_type,)))
    return queries


def search(config: Config, providers: Sequence[Provider]) -> tuple[list[ProductRecord], list[ProductProblem]]:
    """Products matching the config: for each mission the mode reads, those of the first provider that
    has any (ordered fallback); sorted by time then id."""
    problems: list[ProductProblem] = []
    found: list[ProductRecord] = []
    for query in search_queries(config):
        for provider in providers:
            result = provider.search(query)
            problems.extend(p for p in result.problems if p not in problems)
            if result.products:
                source = getattr(provider, "source", None)  # remote: the --source value that reopens it
                found.extend(replace(r, provider=source) if source else r for r in result.products)
                break
    found.sort(key=lambda r: (r.sensing_time, r.product_id))
    return found, problems


def make_plan(
    config: Config,
    sources: Sequence[str] | None = None,
    providers: Sequence[Provider] | None = None,
    credentials: str | None = None,
) -> Plan:
    """Build the plan: grid, patches, the products found and one work unit per product.

    ``credentials`` is a credentials file for the sources that need one (see :func:`open_provider`)."""
    _check_outputs(config)
    chosen = resolve_sources(config, sources) if providers is None else tuple(p.name for p in providers)
    if providers is None:
        providers = [open_provider(s, credentials=credentials) for s in chosen]
    products, problems = search(config, providers)
    products, dropped = select_products(config, products)
    units, left_out = plan_units(config, products)
    return Plan(config, config.grid(), len(config.patches()), tuple(units), tuple(problems), chosen,
                tuple(dropped + left_out))  # fmt: skip


def select_products(
    config: Config, products: Sequence[ProductRecord]
) -> tuple[list[ProductRecord], list[DroppedProduct]]:
    """Reprocessed duplicates out (newest baseline wins), then per acquisition the fewest tiles / slices
    that cover the ROI; every product left out comes back with its reason."""
    unique = deduplicate(products)
    cover = minimum_cover(unique.kept, config.roi)
    return list(cover.kept), [*unique.dropped, *cover.dropped]


def execute_unit(
    unit: WorkUnit, emit: Emit, config: Config, outdir: Path, rebuild: bool, fetch: FetchOptions | None = None
) -> UnitResult:
    """Run one unit and turn any failure into a recorded result (runs in this process, a worker process
    or on a Dask worker; ``emit`` carries its progress events back to the caller). Remote products are
    fetched first (into the shared cache, or as COG windows), on the worker that processes them."""
    t0 = time.perf_counter()
    worker = _worker_name()
    emit(UnitStarted(unit_id=unit.unit_id, description=unit.describe(), worker=worker))
    return replace(_execute(unit, emit, config, outdir, rebuild, t0, fetch), worker=worker)


def _execute(
    unit: WorkUnit, emit: Emit, config: Config, outdir: Path, rebuild: bool, t0: float, fetch: FetchOptions | None
) -> UnitResult:

    def on_patch(patch_id: str, rel_path: str) -> None:
        emit(PatchWritten(unit_id=unit.unit_id, patch_id=patch_id, path=str(outdir / rel_path)))

    try:
        records = list(unit.products)
        if rebuild or load_complete_manifest(outdir, unit.unit_id, config.fingerprint()) is None:
            cloudy = cloud_precheck(unit.unit_id, records, config, fetch, emit)
            if cloudy is not None:  # too cloudy over the ROI: decided on the cloud layer alone
                reason, stats = cloudy
                return record_rejection(outdir, unit.unit_id, records, config.fingerprint(), reason, stats, t0)
            records = [fetch_record(r, config, fetch, emit) for r in records]  # a complete unit needs no download
        openers = [_opener(r, fetch) for r in records]

        def open_sources() -> list[UnitSource]:
            sources: list[UnitSource] = []
            try:
                for open_, record, role in zip(openers, records, unit.roles, strict=True):
                    source = open_(record, unit.unit_id, config)
                    source.modality = role  # e.g. "S1_previous" for the earlier acquisition of a multitemporal unit
                    sources.append(source)
            except BaseException:
                for opened in sources:  # a second product failed: release the first one's files
                    close = getattr(opened, "close", None)
                    if close is not None:
                        close()
                raise
            return sources

        return run_unit(unit.unit_id, records, config, outdir, open_sources, rebuild, on_patch)
    except Exception as exc:  # one failed product must never stop the others
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-4))
        if not isinstance(exc, SenprepError):
            log.exception("unexpected failure in unit %s", unit.unit_id)
        discard_unfinished(outdir, unit.unit_id)
        return UnitResult(
            unit.unit_id,
            "failed",
            seconds=time.perf_counter() - t0,
            error_type=type(exc).__name__,
            error_message=str(exc),
            traceback=tb,
        )


def _opener(record: ProductRecord, fetch: FetchOptions | None) -> Callable[[ProductRecord, str, Config], UnitSource]:
    """The chain that reads ``record``: the S2 reader, or the S1 chain (its orbits / DEM cached with the downloads)."""
    if record.family == "S1":
        from senprep_core.process_s1 import open_s1_source

        return partial(open_s1_source, cache_dir=fetch.cache_dir if fetch else None)
    return S2Source


def _worker_name() -> str:
    """Where a unit runs: the Dask worker address, else host and process id."""
    distributed = sys.modules.get("distributed")  # loaded on every Dask worker; never imported for other runs
    if distributed is not None:
        try:
            return str(distributed.get_worker().address)
        except ValueError:
            pass
    return f"{socket.gethostname()}:{os.getpid()}"


def _prepare_outdir(outdir: Path) -> None:
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {outdir}: {exc}") from exc
    foreign = [
        p
        for p in outdir.iterdir()
        if p.name
        not in {
            "run.json",
            "config.json",
            "catalog.json",
            "items",
            "patches",
            "collections",
            "Sentinel_Patches",
            "cube.zarr",
        }
    ]
    if foreign and not (outdir / "run.json").exists():
        raise OutputError(
            f"output folder {outdir} is not empty and is not a senprep run ({foreign[0].name} is there); "
            "choose a new folder"
        )
    removed = remove_stale_temps(outdir)
    if removed:
        log.info("removed %d temporary files left by an interrupted run", len(removed))


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
) -> RunResult:
    """Plan and run ``config`` into ``outdir``; returns a :class:`RunResult` (never raises for a failed product).

    Raises :class:`ConfigError` / :class:`OutputError` for bad input before anything is written.
    """
    t0 = time.time()
    outdir = Path(outdir)
    if fetch is None:
        from senprep_core.fetch.cache import default_cache_dir

        fetch = FetchOptions(default_cache_dir())
    plan = make_plan(config, sources, providers, fetch.credentials)
    _prepare_outdir(outdir)
    write_json_atomic(outdir / "config.json", config.to_dict())
    report = RunReport(config.name, outdir, config.fingerprint(), plan.to_dict())
    report.problems = [p.__dict__ for p in plan.problems]
    for problem in plan.problems:
        callback(Message(f"cannot read product {problem.name}: {problem.message}", level="error"))
    callback(RunStarted(run_id=config.name, n_units=len(plan.units), outdir=str(outdir)))
    report.save()
    results: list[UnitResult] = []
    cancel = cancel or threading.Event()
    running: dict[str, float] = {}
    attempts: dict[str, int] = {}
    first_worker: dict[str, str] = {}

    def dispatch(event: Event) -> None:
        if isinstance(event, UnitStarted):
            running[event.unit_id] = event.time
            attempts[event.unit_id] = attempts.get(event.unit_id, 0) + 1
            first_worker.setdefault(event.unit_id, event.worker)
        callback(event)

    def finished(result: UnitResult) -> None:
        running.pop(result.unit_id, None)
        retries = attempts.get(result.unit_id, 1) - 1
        # a retry's start event may reach us after its result (Dask delivers events and results
        # separately): a result from another worker than the first start is a retry all the same
        if result.worker and first_worker.get(result.unit_id, result.worker) != result.worker:
            retries = max(retries, 1)
        if retries > 0:
            result = replace(result, retries=retries)
        results.append(result)
        report.record(result)
        report.save()
        callback(
            UnitFinished(
                unit_id=result.unit_id,
                status="done" if result.status == "rejected" else result.status,  # type: ignore[arg-type]
                patches_written=result.patches_written,
                patches_skipped=result.patches_skipped,
                seconds=result.seconds,
                error=result.error_message or result.reason,
            )
        )
        callback(StageProgress(stage="process", done=len(results), total=len(plan.units)))

    task = partial(execute_unit, config=config, outdir=outdir, rebuild=rebuild, fetch=fetch)
    runner = executor or make_executor(njobs)
    try:
        for result in runner.map_units(plan.units, task, dispatch, cancel):
            finished(result)
    except KeyboardInterrupt:
        cancel.set()
    finally:
        if executor is None:  # made here: release its workers; a caller's executor stays for its next runs
            runner.close()
    for unit_id in list(running):  # stopped mid-way: nothing half-written stays
        discard_unfinished(outdir, unit_id)
    if cancel.is_set():
        remove_stale_temps(outdir)
    seen = {r.unit_id for r in results}
    for unit in plan.units:
        if unit.unit_id not in seen:
            report.record(UnitResult(unit.unit_id, "cancelled", reason="run cancelled before this unit finished"))
    entries = [e for r in results if r.status in ("done", "skipped") for e in r.patch_entries]
    if config.output.stac and not cancel.is_set():
        callback(StageProgress(stage="catalog", done=0, total=1))
        write_catalog(outdir, config.name, entries)
        callback(StageProgress(stage="catalog", done=1, total=1))
    if config.output.zarr and entries and not cancel.is_set():
        from senprep_core.outputs.zarr_cube import write_zarr_cube

        callback(StageProgress(stage="zarr", done=0, total=1))
        write_zarr_cube(outdir, entries, config.name)
        callback(StageProgress(stage="zarr", done=1, total=1))
    if config.output.layout == "legacy" and not cancel.is_set():
        from senprep_core.outputs.legacy_layout import write_legacy_layout

        callback(StageProgress(stage="legacy layout", done=0, total=1))
        write_legacy_layout(outdir, entries, config.name)
        callback(StageProgress(stage="legacy layout", done=1, total=1))
    n_failed = sum(r.status == "failed" for r in results)
    if cancel.is_set():
        status = "cancelled"
    elif n_failed and n_failed == len(plan.units):
        status = "failed"
    elif n_failed or plan.problems:
        status = "partial"
    else:
        status = "complete"
    report.status = status
    report.finished = time.time()
    report.save()
    counts = report.counts()
    callback(
        RunFinished(
            run_id=config.name,
            status=status,  # type: ignore[arg-type]
            units_done=counts["done"],
            units_skipped=counts["skipped"],
            units_failed=counts["failed"],
            patches_written=counts["patches_written"],
            patches_skipped=counts["patches_skipped"],
            seconds=time.time() - t0,
        )
    )
    return RunResult(plan, outdir, tuple(results), status, time.time() - t0)
