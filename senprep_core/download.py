"""``senprep download``: fetch the whole products a run would use into a folder, and process nothing.

It plans like a run (:func:`~senprep_core.planning.make_plan`: the same search, selection and pairing), then
fetches every product of the plan's units whole, through its source and the shared cache (the one HTTP
client: retries, resume, size / checksum / zip checks, per-account connection slots), and stores it in the
folder under its product name (``<id>.zip`` or ``<id>.SAFE``, hard-linked from the cache where the file
system allows, else copied) by an atomic rename. A product already there is skipped, so a re-run fetches
only what is missing. The folder is then a source of its own: ``senprep run --source local:DIR`` processes
it with no network (the 2022 tool's "download only" then "process only"). ``DIR/download.json`` records what
each product became.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from senprep_core.atomic import dump_json, write_bytes_atomic
from senprep_core.catalog import Provider, open_provider
from senprep_core.catalog.records import ProductRecord
from senprep_core.config import Config
from senprep_core.errors import CancelledError, OutputError, SenprepError, SourceError
from senprep_core.events import (
    Event,
    EventCallback,
    RunFinished,
    RunStarted,
    StageProgress,
    UnitFinished,
    UnitStarted,
    clean_event,
    no_op,
)
from senprep_core.fetch.cache import PARTIAL_COMPLETE, read_partial_marker
from senprep_core.fetch.redact import scrub, scrub_known
from senprep_core.fetch.slots import plan_for
from senprep_core.planning import Plan, make_plan
from senprep_core.unit.fetching import FetchOptions, fetch_record, is_remote

log = logging.getLogger(__name__)

REPORT = "download.json"
_CACHE_FILES = (".part", ".lock", ".verified")  # the HTTP client's files: not part of a product
WHOLE_SOURCES = "cdse, cdse-stac, asf, gcs or dhus"


@dataclass(frozen=True)
class ProductDownload:
    """What became of one product: ``downloaded``, ``skipped`` (already in the folder) or ``failed``."""

    product_id: str
    status: str
    provider: str
    path: str | None = None
    seconds: float = 0.0
    error_type: str | None = None
    error_message: str | None = None


@dataclass(frozen=True)
class DownloadResult:
    """The plan, each product's outcome and the overall status (complete, partial, failed, empty, cancelled)."""

    plan: Plan
    outdir: Path
    results: tuple[ProductDownload, ...]
    status: str
    seconds: float

    @property
    def failed(self) -> tuple[ProductDownload, ...]:
        return tuple(r for r in self.results if r.status == "failed")

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def exit_code(self) -> int:
        """As ``run``: 0 all there, 1 some product failed (or could not be read), 130 cancelled."""
        if self.status == "cancelled":
            return 130
        return 1 if (self.failed or self.plan.problems) else 0


def stored_product(outdir: Path, product_id: str) -> Path | None:
    """The product in the folder, when an earlier download (or the user) put it there."""
    for candidate in (outdir / f"{product_id}.zip", outdir / f"{product_id}.SAFE"):
        if candidate.is_file() or (candidate.is_dir() and not (candidate / PARTIAL_COMPLETE).exists()):
            return candidate
    return None


def products_of(plan: Plan) -> list[ProductRecord]:
    """Every product the plan's units read, once, in time order."""
    seen: dict[str, ProductRecord] = {}
    for unit in plan.units:
        for record in unit.products:
            seen.setdefault(record.product_id, record)
    return sorted(seen.values(), key=lambda r: (r.sensing_time, r.product_id))


def _whole(path: Path, product_id: str) -> None:
    """Refuse what is not a whole product: a partial SAFE (only some files) or an item JSON."""
    if path.is_file() and path.suffix.lower() == ".zip":
        return
    if path.is_dir() and path.name.upper().endswith(".SAFE"):
        facts = read_partial_marker(path)
        listing = facts.get("listing") if facts else None
        if facts is None or (isinstance(listing, list) and all((path / m).is_file() for m in listing)):
            return
    raise SourceError(f"{product_id}: its source gave {path.name}, not a whole .zip / .SAFE product; download it "
                      f"from a source that serves whole products ({WHOLE_SOURCES})")  # fmt: skip


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def store(src: Path, outdir: Path, product_id: str) -> Path:
    """Put the product at ``src`` into ``outdir`` as ``<id>.zip`` / ``<id>.SAFE`` (hard links where possible)
    through a temporary name and an atomic rename; the folder never shows half a product."""
    final = outdir / (f"{product_id}.zip" if src.is_file() else f"{product_id}.SAFE")
    tmp = outdir / f".tmp-{uuid.uuid4().hex[:8]}-{final.name}"
    try:
        if src.is_file():
            _link_or_copy(str(src), str(tmp))
        else:
            ignore = shutil.ignore_patterns(PARTIAL_COMPLETE, *(f"*{s}" for s in _CACHE_FILES))
            shutil.copytree(src, tmp, copy_function=_link_or_copy, ignore=ignore)
        try:
            os.replace(tmp, final)
        except OSError:
            if stored_product(outdir, product_id) is None:  # not another download of the same product
                raise
    except OSError as exc:
        raise OutputError(f"cannot store {product_id} in {outdir} ({exc.strerror or exc}); check the folder's "
                          "permissions and free space") from exc  # fmt: skip
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
    return final


class _Downloader:
    """Fetches one product after the other on a pool of threads; its events carry the product's id."""

    def __init__(self, plan: Plan, outdir: Path, fetch: FetchOptions, callback: EventCallback,
                 cancel: threading.Event) -> None:  # fmt: skip
        self.plan, self.outdir, self.fetch, self.callback, self.cancel = plan, outdir, fetch, callback, cancel
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        with self._lock:
            self.callback(event)
        if self.cancel.is_set():  # a running transfer stops at its next progress event; its .part stays
            raise CancelledError("the download was cancelled")

    def _provider(self, record: ProductRecord) -> Provider:
        return open_provider(record.provider, credentials=self.fetch.files, slots=self.fetch.connections)

    def one(self, record: ProductRecord) -> ProductDownload:
        t0 = time.perf_counter()
        pid = record.product_id
        self.emit(UnitStarted(unit_id=pid, description=f"download from {record.provider}", worker=self.worker))
        try:
            existing = stored_product(self.outdir, pid)
            if existing is not None:
                return ProductDownload(pid, "skipped", record.provider, str(existing), time.perf_counter() - t0)
            if is_remote(record) and not getattr(self._provider(record), "whole_products", False):
                raise SourceError(f"{pid}: {record.provider} serves band COGs read by window, not whole products; "
                                  f"download from a source that serves them ({WHOLE_SOURCES})")  # fmt: skip
            fetched = fetch_record(record, self.plan.spec, self.fetch, self.emit)
            path = Path(fetched.href)
            _whole(path, pid)
            final = store(path, self.outdir, pid)
            return ProductDownload(pid, "downloaded", record.provider, str(final), time.perf_counter() - t0)
        except CancelledError:
            return ProductDownload(pid, "cancelled", record.provider, seconds=time.perf_counter() - t0)
        except Exception as exc:  # one product failing never stops the others
            if not isinstance(exc, SenprepError):
                log.exception("unexpected failure downloading %s", pid)
            return ProductDownload(pid, "failed", record.provider, seconds=time.perf_counter() - t0,
                                   error_type=type(exc).__name__, error_message=scrub(str(exc)))  # fmt: skip

    def finished(self, outcome: ProductDownload, done: int, total: int) -> None:
        status = {"downloaded": "done"}.get(outcome.status, outcome.status)
        self.callback(UnitFinished(unit_id=outcome.product_id, status=status,  # type: ignore[arg-type]
                                   seconds=outcome.seconds, error=outcome.error_message))  # fmt: skip
        self.callback(StageProgress(stage="download", done=done, total=total))


def download(
    config: Config,
    outdir: str | Path,
    sources: Sequence[str] | None = None,
    fetch: FetchOptions | None = None,
    callback: EventCallback = no_op,
    cancel: threading.Event | None = None,
    parallel: int = 2,
    providers: Sequence[Provider] | None = None,
    force: bool = False,
) -> DownloadResult:
    """Fetch the whole products ``config``'s run would use into ``outdir`` (see the module docstring), ``parallel``
    products at once. Never raises for a failed product; ConfigError / SourceError / OutputError for bad input."""
    t0 = time.time()
    folder = Path(outdir).expanduser()
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder} is a file; give --outdir a folder for the products")
    fetch = replace(fetch or FetchOptions.default(), roi_only=False)
    if fetch.connections is None:  # the downloads share each account's connection limit with other runs
        fetch = replace(fetch, connections=plan_for("serial", fetch.cache_dir))
    stop = cancel or threading.Event()

    def masked(event: Event) -> None:
        callback(clean_event(event, scrub_known))

    plan = make_plan(config, sources, providers, fetch.files, force)
    folder.mkdir(parents=True, exist_ok=True)
    records = products_of(plan)
    masked(RunStarted(run_id=config.name, n_units=len(records), outdir=str(folder)))
    worker = _Downloader(plan, folder, fetch, masked, stop)
    results: list[ProductDownload] = []
    pending: set[Future[ProductDownload]] = set()
    queue = list(records)
    with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="senprep-download") as pool:
        try:
            while (queue or pending) and not stop.is_set():
                while queue and len(pending) < max(1, parallel):
                    pending.add(pool.submit(worker.one, queue.pop(0)))
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for future in done:
                    results.append(future.result())
                    worker.finished(results[-1], len(results), len(records))
        except KeyboardInterrupt:
            stop.set()
        for future in pending:  # cancelled: the running transfers stop at their next progress event
            results.append(future.result())
    results += [ProductDownload(r.product_id, "cancelled", r.provider) for r in queue]
    status = _status(results, len(records), stop.is_set())
    result = DownloadResult(plan, folder, tuple(results), status, time.time() - t0)
    _report(result, config)
    masked(RunFinished(run_id=config.name, status=status,  # type: ignore[arg-type]
                       units_done=result.count("downloaded"), units_skipped=result.count("skipped"),
                       units_failed=len(result.failed), patches_written=0, patches_skipped=0,
                       seconds=result.seconds))  # fmt: skip
    return result


def _status(results: Sequence[ProductDownload], total: int, cancelled: bool) -> str:
    if cancelled:
        return "cancelled"
    if not total:
        return "empty"
    failed = sum(r.status == "failed" for r in results)
    return "failed" if failed == total else "partial" if failed else "complete"


def _report(result: DownloadResult, config: Config) -> None:
    data: dict[str, Any] = {
        "name": config.name,
        "status": result.status,
        "sources": list(result.plan.sources),
        "products": [asdict(r) for r in result.results],
        "unreadable_products": [p.__dict__ for p in result.plan.problems],
        "not_selected": [{"product_id": d.product_id, "reason": d.reason} for d in result.plan.not_selected],
        "seconds": round(result.seconds, 3),
    }
    try:
        write_bytes_atomic(result.outdir / REPORT, dump_json(data))
    except OSError as exc:
        log.error("cannot write %s: %s", result.outdir / REPORT, exc)


__all__ = ["DownloadResult", "ProductDownload", "download", "products_of", "store", "stored_product"]
