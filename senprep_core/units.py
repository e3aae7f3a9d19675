"""Run one work unit: a modality source read block by block onto the grid -> kept patches -> manifest.

The S1 and S2 chains differ only in how a block of the target grid is read
(:class:`UnitSource`); deciding, writing and recording patches, skipping complete units and
cleaning up after failures are shared here. A unit's manifest (``unit.json``) is written last:
its presence with the run's config fingerprint marks the unit complete.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from senprep_core.catalog.records import ProductRecord
from senprep_core.config import Config
from senprep_core.errors import OutputError
from senprep_core.geo.grid import PixelWindow, TargetGrid
from senprep_core.geo.tiling import Patch
from senprep_core.outputs.atomic import write_json_atomic
from senprep_core.outputs.report import UnitResult
from senprep_core.patches import (
    BLOCK_PIXELS,
    PatchDecision,
    decide_patch,
    inside_mask,
    plan_blocks,
    sidecar_for,
    write_patch,
)
from senprep_core.threads import threads_for
from senprep_core.timeutil import parse_utc

log = logging.getLogger(__name__)
MANIFEST = "unit.json"
WRITER_THREADS = 2  # patch compression threads per unit

PatchCallback = Callable[[str, str], None]


@dataclass(frozen=True)
class BlockData:
    """A block of the target grid as read by a source: (bands, rows, cols) float32 and masks."""

    data: np.ndarray
    valid: np.ndarray
    cloud: np.ndarray | None = None


@dataclass(frozen=True)
class RoiStats:
    """Valid and cloud fractions of a product over the ROI."""

    valid_fraction: float
    cloud_fraction: float | None


class UnitSource(Protocol):
    """What a modality chain provides to :func:`run_unit`."""

    modality: str  # "S1" | "S2": the suffix of patch files and the key of their assets
    bands: list[str]
    extra: dict[str, Any]  # sidecar fields shared by every patch (must hold sensing_time and platform)

    def read_block(self, grid: TargetGrid) -> BlockData:
        """Read every band of a block of the target grid."""
        ...

    def roi_stats(self) -> RoiStats | None:
        """Cheap ROI fractions before the full read (None: take them from the blocks)."""
        ...

    def rejection(self, stats: RoiStats) -> str | None:
        """Why the product is not used for this ROI (None: use it)."""
        ...


def unit_dir_for(outdir: Path, unit_id: str) -> Path:
    """Where a unit's patches and manifest live."""
    return outdir / "patches" / unit_id


def load_complete_manifest(outdir: Path, unit_id: str, fingerprint: str) -> dict[str, Any] | None:
    """The unit's manifest if the unit is complete for this config (every listed file present)."""
    path = unit_dir_for(outdir, unit_id) / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("config_fingerprint") != fingerprint:
        return None
    for entry in manifest.get("patches", []):
        for rel in entry["files"].values():
            if not (outdir / rel).exists():
                return None
    return manifest


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


def run_unit(
    unit_id: str,
    records: Sequence[ProductRecord],
    config: Config,
    outdir: Path,
    open_sources: Callable[[], Sequence[UnitSource]],
    rebuild: bool = False,
    on_patch: PatchCallback | None = None,
) -> UnitResult:
    """Process one product, or a pair of products on the same grid, into patches.

    With several sources (primary first), a patch is written only where every source keeps it, and
    the unit is rejected when any source is (its reason is prefixed with the modality). Raises for
    product problems (the pipeline records them).
    """
    t0 = time.perf_counter()
    fingerprint = config.fingerprint()
    if not rebuild:
        manifest = load_complete_manifest(outdir, unit_id, fingerprint)
        if manifest is not None:
            return UnitResult(
                unit_id,
                "skipped",
                seconds=time.perf_counter() - t0,
                reason="complete from an earlier run",
                roi_valid_fraction=manifest.get("roi_valid_fraction"),
                roi_cloud_fraction=manifest.get("roi_cloud_fraction"),
                patch_entries=tuple(manifest.get("patches", [])),
            )
    sources = list(open_sources())
    try:
        return _process(unit_id, records, config, outdir, sources, fingerprint, on_patch, t0)
    finally:
        for source in sources:
            close = getattr(source, "close", None)
            if close is not None:
                close()


def _process(
    unit_id: str,
    records: Sequence[ProductRecord],
    config: Config,
    outdir: Path,
    sources: Sequence[UnitSource],
    fingerprint: str,
    on_patch: PatchCallback | None,
    t0: float,
) -> UnitResult:
    unit_dir = unit_dir_for(outdir, unit_id)
    grid = config.grid()
    roi_mask = config.roi_mask()
    block_pixels = min(getattr(s, "block_pixels", BLOCK_PIXELS) for s in sources)
    blocks = plan_blocks(config.patches(), block_pixels)
    full = PixelWindow(0, 0, grid.height, grid.width)
    single = len(blocks) == 1 and blocks[0].window.intersection(full) == full
    up_front = config.roi_cloud_threshold is not None or not single
    stats: list[RoiStats | None] = [s.roi_stats() if up_front else None for s in sources]
    reject = _rejection(sources, stats)
    if reject is not None:
        return record_rejection(outdir, unit_id, records, fingerprint, reject, stats[0], t0)
    counters = [_RoiCounter() for _ in sources]
    entries: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    writer = _PatchWriter(unit_dir, sources, config.output.compress, on_patch)
    try:
        for block in blocks:
            windows = [s.read_block(grid.subgrid(block.window)) for s in sources]  # overlaps earlier writes
            entries.extend(writer.drain())
            inside = inside_mask(grid, block.window)
            roi_part = full.intersection(block.window)
            if roi_part is not None:
                sl = roi_part.shifted(-block.window.row_off, -block.window.col_off).slices()
                for i, window in enumerate(windows):
                    if stats[i] is None:
                        counters[i].add(window.valid[sl], None if window.cloud is None else window.cloud[sl],
                                        roi_mask[roi_part.slices()])  # fmt: skip
                if single and all(st is None for st in stats):
                    reject = _rejection(sources, [c.stats() for c in counters])
                    if reject is not None:
                        return record_rejection(outdir, unit_id, records, fingerprint, reject,
                                                counters[0].stats(), t0)  # fmt: skip
            for patch in block.patches:
                rows, cols = patch.window.shifted(-block.window.row_off, -block.window.col_off).slices()
                decisions = []
                for window in windows:
                    valid = window.valid[rows, cols] & inside[rows, cols]
                    cloud = None if window.cloud is None else window.cloud[rows, cols]
                    decisions.append(decide_patch(valid, cloud, config.output.min_valid_fraction,
                                                  config.output.max_patch_cloud))  # fmt: skip
                refused = [(s.modality, d) for s, d in zip(sources, decisions, strict=True) if not d.keep]
                if refused:
                    reason = "; ".join(f"{m}: {d.reason}" if len(sources) > 1 else str(d.reason) for m, d in refused)
                    skipped.append({"patch_id": patch.patch_id, "reason": reason})
                    continue
                arrays = []
                for window in windows:
                    data = window.data[:, rows, cols]  # a view: the block is not changed while it is written
                    outside = ~inside[rows, cols]
                    if outside.any():  # padded edge patches
                        data = data.copy()
                        data[:, outside] = np.nan
                    arrays.append(data)
                writer.submit(patch, arrays, decisions, _entry(unit_id, patch, sources, records, decisions))
        entries.extend(writer.drain())
    finally:
        writer.close()
    final = [st if st is not None else c.stats() for st, c in zip(stats, counters, strict=True)]
    if not entries and (reject := _rejection(sources, final)):
        return record_rejection(outdir, unit_id, records, fingerprint, reject, final[0], t0)
    manifest = {
        "unit_id": unit_id,
        "status": "done",
        "config_fingerprint": fingerprint,
        "product": records[0].to_dict(),
        "products": [r.to_dict() for r in records],
        "roi_valid_fraction": final[0].valid_fraction,
        "roi_cloud_fraction": final[0].cloud_fraction,
        "roi_fractions": {
            s.modality: {"valid": st.valid_fraction, "cloud": st.cloud_fraction}
            for s, st in zip(sources, final, strict=True)
        },
        "patches": entries,
        "skipped_patches": skipped,
    }
    _commit_manifest(unit_dir, manifest)
    return UnitResult(
        unit_id,
        "done",
        seconds=time.perf_counter() - t0,
        patches_written=len(entries),
        patches_skipped=len(skipped),
        roi_valid_fraction=final[0].valid_fraction,
        roi_cloud_fraction=final[0].cloud_fraction,
        patch_entries=tuple(entries),
    )


def _rejection(sources: Sequence[UnitSource], stats: Sequence[RoiStats | None]) -> str | None:
    """Why the unit is not used: the first source that rejects its ROI statistics (modality-prefixed in pairs)."""
    for source, st in zip(sources, stats, strict=True):
        if st is not None and (reason := source.rejection(st)):
            return reason if len(sources) == 1 else f"{source.modality}: {reason}"
    return None


class _PatchWriter:
    """Writes a unit's patches on two threads, so compression overlaps the next block's read.

    GDAL releases the GIL while it compresses; results are collected in submission order, so the
    manifest, the progress events and the bytes on disk are the same as a serial write.
    """

    def __init__(
        self, unit_dir: Path, sources: Sequence[UnitSource], compress: str, on_patch: PatchCallback | None
    ) -> None:
        self.unit_dir, self.sources, self.compress, self.on_patch = unit_dir, sources, compress, on_patch
        threads = threads_for(WRITER_THREADS)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="senprep-patch-writer")
        self._pending: list[tuple[dict[str, Any], list[Future[dict[str, str]]]]] = []

    def submit(
        self, patch: Patch, arrays: Sequence[np.ndarray], decisions: Sequence[PatchDecision], entry: dict[str, Any]
    ) -> None:
        futures = []
        for source, data, decision in zip(self.sources, arrays, decisions, strict=True):
            sidecar = sidecar_for(patch, source.modality, source.bands, decision, {**source.extra, **_pair(entry)})
            args = (self.unit_dir, patch, source.modality, data, source.bands, sidecar, self.compress)
            futures.append(self._pool.submit(write_patch, *args))
        self._pending.append((entry, futures))

    def drain(self) -> list[dict[str, Any]]:
        """Wait for the submitted patches, in order; report each one written."""
        done = []
        while self._pending:
            entry, futures = self._pending.pop(0)
            for future in futures:
                entry["files"].update(future.result())
            done.append(entry)
            if self.on_patch is not None:
                self.on_patch(entry["patch_id"], entry["files"][self.sources[0].modality])
        return done

    def close(self) -> None:
        """Drop patches not started yet (after a failure or a cancel) and wait for running ones."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def _pair(entry: dict[str, Any]) -> dict[str, Any]:
    return {"pair": entry["pair"]} if "pair" in entry else {}


def _about(source: UnitSource, record: ProductRecord, decision: PatchDecision) -> dict[str, Any]:
    about: dict[str, Any] = {
        "bands": source.bands,
        "sensing_time": source.extra["sensing_time"],
        "product_ids": [record.product_id],
        "platform": source.extra["platform"],
        "valid_fraction": round(decision.valid_fraction, 6),
        "cloud_fraction": None if decision.cloud_fraction is None else round(decision.cloud_fraction, 6),
    }
    sar = source.extra.get("sar")
    if sar:
        about["orbit_direction"] = sar.get("orbit_direction")
        about["relative_orbit"] = sar.get("relative_orbit")
        about["instrument_mode"] = sar.get("instrument_mode")
        about["polarizations"] = sar.get("polarizations")
        about["product_type"] = sar.get("product_type")
    return about


def _entry(
    unit_id: str,
    patch: Patch,
    sources: Sequence[UnitSource],
    records: Sequence[ProductRecord],
    decisions: Sequence[PatchDecision],
) -> dict[str, Any]:
    """The manifest entry of a written patch (its files are added once written).

    The top-level fields describe the unit's primary modality; ``modalities`` holds the same per
    modality, so a paired unit lists both sensors there with the same keys, and ``pair`` gives the
    signed time gap (secondary minus primary, hours).
    """
    abouts = {s.modality: _about(s, r, d) for s, r, d in zip(sources, records, decisions, strict=True)}
    primary = sources[0].modality
    entry: dict[str, Any] = {
        "unit_id": unit_id,
        "patch_id": patch.patch_id,
        "modality": primary,
        "files": {},
        "grid": patch.grid.to_dict(),
        "window": {
            "row_off": patch.window.row_off,
            "col_off": patch.window.col_off,
            "height": patch.window.height,
            "width": patch.window.width,
        },
        **abouts[primary],
        "modalities": abouts,
    }
    if len(sources) > 1:
        secondary = sources[1].modality
        t0, t1 = (parse_utc(abouts[m]["sensing_time"]) for m in (primary, secondary))
        entry["pair"] = {
            "primary": primary,
            "secondary": secondary,
            "delta_t_hours": round((t1 - t0).total_seconds() / 3600.0, 4),
        }
    return entry


def record_rejection(
    outdir: Path,
    unit_id: str,
    records: Sequence[ProductRecord],
    fingerprint: str,
    reason: str,
    stats: RoiStats | None,
    t0: float,
) -> UnitResult:
    """Mark a unit complete as rejected (with its reason), so re-runs skip it."""
    unit_dir = unit_dir_for(outdir, unit_id)
    stats = stats or RoiStats(0.0, None)
    manifest = {
        "unit_id": unit_id,
        "status": "rejected",
        "reason": reason,
        "config_fingerprint": fingerprint,
        "product": records[0].to_dict(),
        "products": [r.to_dict() for r in records],
        "roi_valid_fraction": stats.valid_fraction,
        "roi_cloud_fraction": stats.cloud_fraction,
        "patches": [],
        "skipped_patches": [],
    }
    _commit_manifest(unit_dir, manifest)
    return UnitResult(unit_id, "rejected", seconds=time.perf_counter() - t0, reason=reason,
                      roi_valid_fraction=stats.valid_fraction, roi_cloud_fraction=stats.cloud_fraction)  # fmt: skip


def _commit_manifest(unit_dir: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest last (it marks the unit complete), then drop files the unit no longer has."""
    unit_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(unit_dir / MANIFEST, manifest)
    keep = {MANIFEST}
    for entry in manifest["patches"]:
        keep.update(Path(rel).name for rel in entry["files"].values())
    for stale in unit_dir.iterdir():
        if stale.is_file() and stale.name not in keep:
            stale.unlink()


def run_entries(outdir: Path) -> list[dict[str, Any]]:
    """The patch entries of every complete unit of a run folder (``patches/*/unit.json``), in unit order
    (rejected units list none). What the Zarr cube, the legacy layout and the ML loader are built from."""
    entries: list[dict[str, Any]] = []
    for path in sorted(Path(outdir).glob(f"patches/*/{MANIFEST}")):
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise OutputError(f"cannot read the unit manifest {path}: {exc}; re-run the run to rewrite it") from exc
        entries.extend(manifest.get("patches", []))
    return entries


def discard_unfinished(outdir: Path, unit_id: str) -> None:
    """After a failure: remove the unit's files that no manifest lists (nothing half-done stays)."""
    unit_dir = unit_dir_for(outdir, unit_id)
    if not unit_dir.exists():
        return
    keep: set[str] = set()
    manifest_path = unit_dir / MANIFEST
    if manifest_path.exists():
        try:
            manifest = json.loads(manifest_path.read_text())
            keep = {MANIFEST} | {Path(rel).name for e in manifest.get("patches", []) for rel in e["files"].values()}
        except (OSError, ValueError):
            keep = set()
    for path in unit_dir.iterdir():
        if path.is_file() and path.name not in keep:
            path.unlink()
    if not any(unit_dir.iterdir()):
        unit_dir.rmdir()
