"""Run one work unit: verify what is there, fetch, read block by block onto the grid, keep patches,
commit the manifest last.

:func:`execute_unit` is the task every executor runs (in this process, a worker process or on a Dask
worker). It never raises for a failed product: the failure becomes the unit's result, and the unit's
unfinished files are removed. A unit is skipped only when its manifest verifies (every file's size
and checksum), so a truncated or altered patch is redone.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from senprep_core.bands import COLLOCATION_BITS, COLLOCATION_FLAGS
from senprep_core.catalog.records import ProductRecord
from senprep_core.errors import SenprepError
from senprep_core.events import PATCH_PROGRESS_SECONDS, EventCallback, Message, PatchProgress, PatchWritten, UnitStarted
from senprep_core.fetch.redact import scrub
from senprep_core.geo.grid import PixelWindow
from senprep_core.outputs.legacy_layout import place_unit_links
from senprep_core.outputs.records import PatchEntry, RoiFractions, SkippedPatch, UnitManifest, UnitResult
from senprep_core.outputs.run_folder import RunFolder
from senprep_core.outputs.stac_item import write_unit_items
from senprep_core.outputs.zarr_cube import write_unit_slots
from senprep_core.unit.fetching import FetchOptions, cloud_probe_layers, fetch_record, is_remote, layers_of
from senprep_core.unit.integrity import verify_product
from senprep_core.unit.model import UnitSpec, WorkUnit
from senprep_core.unit.patches import BLOCK_PIXELS, Block, decide_patch, inside_mask, plan_blocks
from senprep_core.unit.s1_snap import SnapS1Source
from senprep_core.unit.s1_source import S1Source
from senprep_core.unit.s1_stack import block_reader
from senprep_core.unit.s2_source import S2Source
from senprep_core.unit.source import BlockData, RoiStats, UnitSource
from senprep_core.unit.writer import PatchWriter

log = logging.getLogger(__name__)


def execute_unit(
    unit: WorkUnit, emit: EventCallback, outdir: Path, rebuild: bool = False, fetch: FetchOptions | None = None
) -> UnitResult:
    """Run one unit into the run folder ``outdir``; every failure becomes a recorded result.

    ``emit`` carries the unit's progress events back to the caller; remote products are fetched first
    (into the shared cache, or as COG windows), on the worker that processes them.
    """
    t0 = time.perf_counter()
    worker = worker_name()
    folder = RunFolder(outdir)
    emit(UnitStarted(unit_id=unit.unit_id, description=unit.describe(), worker=worker))
    with folder.writer_session():
        try:
            result = _run(unit, emit, folder, rebuild, fetch, t0)
        except Exception as exc:  # one failed product must never stop the others
            folder.discard_unfinished(unit.unit_id)
            result = _failed(unit.unit_id, exc, t0)
        except BaseException:  # cancelled (KeyboardInterrupt): nothing half-written stays
            folder.discard_unfinished(unit.unit_id)
            raise
    return replace(result, worker=worker)


def worker_name() -> str:
    """Where a unit runs: the Dask worker address, else host and process id."""
    distributed = sys.modules.get("distributed")  # loaded on every Dask worker; never imported for other runs
    if distributed is not None:
        try:
            return str(distributed.get_worker().address)
        except ValueError:
            pass
    return f"{socket.gethostname()}:{os.getpid()}"


def _failed(unit_id: str, exc: Exception, t0: float) -> UnitResult:
    """The failed unit's result; its message and traceback (chained causes included) with the secrets this
    process knows and everything that looks secret masked, here, where the secrets are known."""
    if not isinstance(exc, SenprepError):
        log.exception("unexpected failure in unit %s", unit_id)
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-4))
    return UnitResult(unit_id, "failed", seconds=time.perf_counter() - t0, error_type=type(exc).__name__,
                      error_message=scrub(str(exc)), traceback=scrub(tb))  # fmt: skip


def _run(
    unit: WorkUnit, emit: EventCallback, folder: RunFolder, rebuild: bool, fetch: FetchOptions | None, t0: float
) -> UnitResult:
    spec = unit.spec
    if not rebuild:
        check = folder.check_unit(unit.unit_id, spec.fingerprint)
        if check.complete and check.manifest is not None:
            if unit.legacy_dir is not None:  # the plan may have renumbered the unit's folder since
                place_unit_links(folder, check.manifest.patches, unit.legacy_dir)
            return _skipped(check.manifest, t0)
        if check.state == "damaged":
            text = f"unit {unit.unit_id} is redone: {'; '.join(check.problems)}"
            log.info("%s", text)
            emit(Message(text, level="warning"))
    records = list(unit.products)
    cloudy = cloud_precheck(unit, records, fetch, emit)
    if cloudy is not None:  # too cloudy over the ROI: decided on the cloud layer alone
        return _reject(folder, unit.unit_id, records, spec, cloudy[0], cloudy[1], t0)
    records = [fetch_record(r, spec, fetch, emit) for r in records]
    options = fetch or FetchOptions.default()
    if options.verify:
        for record in (r for r in unit.products if not is_remote(r)):  # remote ones were checked as downloaded
            verify_product(record, layers_of(record, spec), options.cache_dir)
    sources = open_sources(records, unit, fetch)
    try:
        return _process(unit, records, sources, folder, emit, t0)
    finally:
        for source in sources:
            source.close()


def _skipped(manifest: UnitManifest, t0: float) -> UnitResult:
    return UnitResult(manifest.unit_id, "skipped", seconds=time.perf_counter() - t0,
                      reason="complete from an earlier run", roi_valid_fraction=manifest.roi_valid_fraction,
                      roi_cloud_fraction=manifest.roi_cloud_fraction)  # fmt: skip


def open_sources(records: Sequence[ProductRecord], unit: WorkUnit, fetch: FetchOptions | None) -> list[UnitSource]:
    """One source per product of the unit, in role order (a failure releases those already open)."""
    cache_dir = (fetch or FetchOptions.default()).cache_dir
    sources: list[UnitSource] = []
    try:
        for record, role in zip(records, unit.roles, strict=True):
            sources.append(_open(record, role, unit.unit_id, unit.spec, cache_dir))
    except BaseException:
        for opened in sources:
            opened.close()
        raise
    return sources


def _open(record: ProductRecord, role: str, unit_id: str, spec: UnitSpec, cache_dir: Path) -> UnitSource:
    """The chain that reads ``record``: the S2 reader, or the S1 chain of the configured backend."""
    if record.family == "S2":
        return S2Source(record, unit_id, spec, modality=role)
    if spec.s1.options.backend == "snap":
        return SnapS1Source(record, unit_id, spec, modality=role)
    return S1Source(record, unit_id, spec, cache_dir, modality=role)


def cloud_precheck(
    unit: WorkUnit, records: list[ProductRecord], options: FetchOptions | None, emit: EventCallback
) -> tuple[str, RoiStats] | None:
    """With an ROI cloud threshold, the ROI cloud fraction of each remote S2 product from its cloud layer
    alone (SCL, or the L1C cloud masks), fetched before any band: ``(reason, stats)`` when one is too
    cloudy, so its bands are never downloaded. None when every product passes (or nothing is remote)."""
    spec = unit.spec
    if spec.s2.roi_cloud_threshold is None or options is None:
        return None
    for record in records:
        if record.family != "S2" or not is_remote(record):
            continue
        probe = fetch_record(record, spec, options, emit, layers=cloud_probe_layers(spec))
        source = S2Source(probe, unit.unit_id, spec)
        try:
            stats = source.roi_stats()
        finally:
            source.close()
        reason = None if stats is None else source.rejection(stats)
        if stats is not None and reason is not None:
            log.info("%s: %s (from its cloud layer; bands not fetched)", record.product_id, reason)
            return (reason if len(records) == 1 else f"S2: {reason}"), stats
    return None


class _RoiCounter:
    """Accumulates valid / cloudy ROI pixels over blocks (when no up-front statistics exist)."""

    def __init__(self) -> None:
        self.n_roi = self.n_valid = self.n_cloud = 0
        self.has_cloud = False

    def add(self, valid: np.ndarray, cloud: np.ndarray | None, roi: np.ndarray) -> None:
        self.n_roi += int(roi.sum())
        v = valid & roi
        self.n_valid += int(v.sum())
        if cloud is not None:
            self.has_cloud = True
            self.n_cloud += int((cloud & v).sum())

    def stats(self) -> RoiStats:
        vf = self.n_valid / self.n_roi if self.n_roi else 0.0
        cf = (self.n_cloud / self.n_valid if self.n_valid else 0.0) if self.has_cloud else None
        return RoiStats(vf, cf)


class _PatchTally:
    """A unit's patches decided so far (written or left out), sent as :class:`PatchProgress` at most every
    :data:`PATCH_PROGRESS_SECONDS` and once more when the unit's last patch is decided."""

    def __init__(self, unit_id: str, total: int, emit: EventCallback) -> None:
        self.unit_id, self.total, self.emit = unit_id, total, emit
        self.written = self.skipped = 0
        self._sent_at = time.monotonic()
        self._sent: tuple[int, int] = (0, 0)

    def wrote(self) -> None:
        self.written += 1
        self._maybe_send()

    def left_out(self, skipped: int) -> None:
        """The number of patches left out so far (a running total)."""
        self.skipped = skipped
        self._maybe_send()

    def finish(self) -> None:
        if self._sent != (self.written, self.skipped):
            self._send(time.monotonic())

    def _maybe_send(self) -> None:
        now = time.monotonic()
        if now - self._sent_at >= PATCH_PROGRESS_SECONDS:
            self._send(now)

    def _send(self, now: float) -> None:
        self._sent_at, self._sent = now, (self.written, self.skipped)
        self.emit(PatchProgress(unit_id=self.unit_id, done=self.written + self.skipped, total=self.total,
                                written=self.written))  # fmt: skip


@dataclass
class _Progress:
    """What a unit has decided so far, block after block."""

    entries: list[PatchEntry]
    skipped: list[SkippedPatch]
    counters: list[_RoiCounter]
    stats: list[RoiStats | None]
    roi: np.ndarray


def _process(
    unit: WorkUnit,
    records: Sequence[ProductRecord],
    sources: Sequence[UnitSource],
    folder: RunFolder,
    emit: EventCallback,
    t0: float,
) -> UnitResult:
    spec, unit_id = unit.spec, unit.unit_id
    block_pixels = min(getattr(s, "block_pixels", BLOCK_PIXELS) for s in sources)
    blocks = plan_blocks(spec.patches, block_pixels)
    full = PixelWindow(0, 0, spec.grid.height, spec.grid.width)
    single = len(blocks) == 1 and blocks[0].window.intersection(full) == full
    up_front = spec.s2.roi_cloud_threshold is not None or not single
    stats = [s.roi_stats() if up_front else None for s in sources]
    if (reject := _rejection(sources, stats)) is not None:
        return _reject(folder, unit_id, records, spec, reject, stats[0], t0)
    state = _Progress([], [], [_RoiCounter() for _ in sources], stats, spec.roi_mask.array())

    tally = _PatchTally(unit_id, len(spec.patches), emit)

    def on_patch(patch_id: str, rel_path: str) -> None:
        emit(PatchWritten(unit_id=unit_id, patch_id=patch_id, path=str(folder.root / rel_path)))
        tally.wrote()

    writer = PatchWriter(folder, unit_id, sources, records, spec.rules.compress, on_patch)
    read = block_reader(sources, spec.s1.stack_filter)
    try:
        for block in blocks:
            windows = read(spec.grid.subgrid(block.window))  # overlaps earlier writes
            _collocation_flags(sources, windows)
            state.entries.extend(writer.drain())
            if single and _count_roi(state, block, windows, full) and all(st is None for st in stats):
                final = [c.stats() for c in state.counters]
                if (reject := _rejection(sources, final)) is not None:
                    return _reject(folder, unit_id, records, spec, reject, final[0], t0)
            _cut_patches(state, block, windows, writer, spec, sources)
            tally.left_out(len(state.skipped))
        state.entries.extend(writer.drain())
        tally.finish()
    finally:
        writer.close()
    final = [st if st is not None else c.stats() for st, c in zip(stats, state.counters, strict=True)]
    if not state.entries and (reject := _rejection(sources, final)):
        return _reject(folder, unit_id, records, spec, reject, final[0], t0)
    fractions = tuple(RoiFractions(s.modality, st.valid_fraction, st.cloud_fraction)
                      for s, st in zip(sources, final, strict=True))  # fmt: skip
    item_files, stac = write_unit_items(folder, state.entries) if spec.stac and state.entries else ([], ())
    if unit.cube is not None and state.entries:
        write_unit_slots(folder, unit.cube, state.entries, writer.files)
    if unit.legacy_dir is not None:
        place_unit_links(folder, state.entries, unit.legacy_dir)
    folder.commit_unit(UnitManifest(unit_id, "done", spec.fingerprint, tuple(records), fractions,
                                    tuple(state.entries), tuple(state.skipped), (*writer.files, *item_files),
                                    stac=stac))  # fmt: skip
    return UnitResult(unit_id, "done", seconds=time.perf_counter() - t0, patches_written=len(state.entries),
                      patches_skipped=len(state.skipped), roi_valid_fraction=final[0].valid_fraction,
                      roi_cloud_fraction=final[0].cloud_fraction)  # fmt: skip


def _collocation_flags(sources: Sequence[UnitSource], windows: Sequence[BlockData]) -> None:
    """Fill the ``collocation_flags`` band: the bits (:data:`COLLOCATION_BITS`) of the unit's products that hold
    data at each pixel; a pair's pixel where both sensors do is 3."""
    if not any(COLLOCATION_FLAGS in s.bands for s in sources):
        return
    flags = np.zeros(windows[0].valid.shape, dtype=np.float32)
    for source, window in zip(sources, windows, strict=True):
        flags += COLLOCATION_BITS.get(source.modality, COLLOCATION_BITS["S1_previous"]) * window.valid
    for source, window in zip(sources, windows, strict=True):
        if COLLOCATION_FLAGS in source.bands:
            window.data[source.bands.index(COLLOCATION_FLAGS)] = flags


def _count_roi(state: _Progress, block: Block, windows: Sequence[BlockData], full: PixelWindow) -> bool:
    """Add the block's ROI pixels to the counters of the sources without up-front statistics."""
    roi_part = full.intersection(block.window)
    if roi_part is None:
        return False
    sl = roi_part.shifted(-block.window.row_off, -block.window.col_off).slices()
    for i, window in enumerate(windows):
        if state.stats[i] is None:
            cloud = None if window.cloud is None else window.cloud[sl]
            state.counters[i].add(window.valid[sl], cloud, state.roi[roi_part.slices()])
    return True


def _cut_patches(
    state: _Progress,
    block: Block,
    windows: Sequence[BlockData],
    writer: PatchWriter,
    spec: UnitSpec,
    sources: Sequence[UnitSource],
) -> None:
    """Decide every patch of the block (written only where every source keeps it) and queue the kept ones."""
    inside = inside_mask(spec.grid, block.window)
    for patch in block.patches:
        rows, cols = patch.window.shifted(-block.window.row_off, -block.window.col_off).slices()
        decisions = []
        for window in windows:
            valid = window.valid[rows, cols] & inside[rows, cols]
            cloud = None if window.cloud is None else window.cloud[rows, cols]
            decisions.append(decide_patch(valid, cloud, spec.rules.min_valid_fraction, spec.rules.max_patch_cloud))
        refused = [(s.modality, d) for s, d in zip(sources, decisions, strict=True) if not d.keep]
        if refused:
            reason = "; ".join(f"{m}: {d.reason}" if len(sources) > 1 else str(d.reason) for m, d in refused)
            state.skipped.append(SkippedPatch(patch.patch_id, reason))
            continue
        arrays = []
        outside = ~inside[rows, cols]
        for window in windows:
            data = window.data[:, rows, cols]  # a view: the block stays unchanged
            if outside.any():  # padded edge patches
                data = data.copy()
                data[:, outside] = np.nan
            arrays.append(data)
        writer.submit(patch, arrays, decisions)


def _rejection(sources: Sequence[UnitSource], stats: Sequence[RoiStats | None]) -> str | None:
    """Why the unit is not used: the first source that rejects its ROI statistics (modality-prefixed in pairs)."""
    for source, st in zip(sources, stats, strict=True):
        if st is not None and (reason := source.rejection(st)):
            return reason if len(sources) == 1 else f"{source.modality}: {reason}"
    return None


def _reject(
    folder: RunFolder,
    unit_id: str,
    records: Sequence[ProductRecord],
    spec: UnitSpec,
    reason: str,
    stats: RoiStats | None,
    t0: float,
) -> UnitResult:
    """Mark a unit complete as rejected (with its reason), so re-runs skip it."""
    stats = stats or RoiStats(0.0, None)
    first = records[0].family if records else "S2"
    fractions = (RoiFractions(first, stats.valid_fraction, stats.cloud_fraction),)
    folder.commit_unit(UnitManifest(unit_id, "rejected", spec.fingerprint, tuple(records), fractions, reason=reason))
    return UnitResult(unit_id, "rejected", seconds=time.perf_counter() - t0, reason=reason,
                      roi_valid_fraction=stats.valid_fraction, roi_cloud_fraction=stats.cloud_fraction)  # fmt: skip


#: The signature of the task executors run for each unit.
UnitTask = Callable[[WorkUnit, EventCallback], UnitResult]
