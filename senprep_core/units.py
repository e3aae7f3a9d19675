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
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from senprep_core.catalog.records import ProductRecord
from senprep_core.config import Config
from senprep_core.geo.grid import PixelWindow, TargetGrid
from senprep_core.geo.tiling import Patch
from senprep_core.outputs.atomic import write_json_atomic
from senprep_core.outputs.report import UnitResult
from senprep_core.patches import PatchDecision, decide_patch, inside_mask, plan_blocks, sidecar_for, write_patch

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
    record: ProductRecord,
    config: Config,
    outdir: Path,
    open_source: Callable[[], UnitSource],
    rebuild: bool = False,
    on_patch: PatchCallback | None = None,
) -> UnitResult:
    """Process one product into patches; raises for product problems (the pipeline records them)."""
    t0 = time.perf_counter()
    fingerprint = config.fingerprint()
    unit_dir = unit_dir_for(outdir, unit_id)
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
    source = open_source()
    grid = config.grid()
    roi_mask = config.roi_mask()
    blocks = plan_blocks(config.patches())
    full = PixelWindow(0, 0, grid.height, grid.width)
    single = len(blocks) == 1 and blocks[0].window.intersection(full) == full
    stats = source.roi_stats() if (config.max_roi_cloud is not None or not single) else None
    if stats is not None and (reject := source.rejection(stats)):
        return _finish_rejected(unit_dir, unit_id, record, fingerprint, reject, stats, t0)
    counter = _RoiCounter()
    entries: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    writer = _PatchWriter(unit_dir, source, config.output.compress, on_patch)
    try:
        for block in blocks:
            window = source.read_block(grid.subgrid(block.window))  # overlaps the previous block's writes
            entries.extend(writer.drain())
            inside = inside_mask(grid, block.window)
            roi_part = full.intersection(block.window)
            if stats is None and roi_part is not None:
                sl = roi_part.shifted(-block.window.row_off, -block.window.col_off).slices()
                cloud_part = None if window.cloud is None else window.cloud[sl]
                counter.add(window.valid[sl], cloud_part, roi_mask[roi_part.slices()])
                if single and (reject := source.rejection(counter.stats())):
                    return _finish_rejected(unit_dir, unit_id, record, fingerprint, reject, counter.stats(), t0)
            for patch in block.patches:
                rows, cols = patch.window.shifted(-block.window.row_off, -block.window.col_off).slices()
                valid = window.valid[rows, cols] & inside[rows, cols]
                cloud = None if window.cloud is None else window.cloud[rows, cols]
                decision = decide_patch(valid, cloud, config.output.min_valid_fraction, config.output.max_patch_cloud)
                if not decision.keep:
                    skipped.append({"patch_id": patch.patch_id, "reason": decision.reason})
                    continue
                data = window.data[:, rows, cols]  # a view: the block is not changed while it is written
                outside = ~inside[rows, cols]
                if outside.any():  # padded edge patches
                    data = data.copy()
                    data[:, outside] = np.nan
                writer.submit(patch, data, _entry(unit_id, patch, source.bands, source, record, decision), decision)
        entries.extend(writer.drain())
    finally:
        writer.close()
    if stats is None:
        stats = counter.stats()
        if not entries and (reject := source.rejection(stats)):
            return _finish_rejected(unit_dir, unit_id, record, fingerprint, reject, stats, t0)
    manifest = {
        "unit_id": unit_id,
        "status": "done",
        "config_fingerprint": fingerprint,
        "product": record.to_dict(),
        "roi_valid_fraction": stats.valid_fraction,
        "roi_cloud_fraction": stats.cloud_fraction,
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
        roi_valid_fraction=stats.valid_fraction,
        roi_cloud_fraction=stats.cloud_fraction,
        patch_entries=tuple(entries),
    )


class _PatchWriter:
    """Writes a unit's patches on two threads, so compression overlaps the next block's read.

    GDAL releases the GIL while it compresses; results are collected in submission order, so the
    manifest, the progress events and the bytes on disk are the same as a serial write.
    """

    def __init__(self, unit_dir: Path, source: UnitSource, compress: str, on_patch: PatchCallback | None) -> None:
        self.unit_dir, self.source, self.compress, self.on_patch = unit_dir, source, compress, on_patch
        self._pool = ThreadPoolExecutor(max_workers=WRITER_THREADS, thread_name_prefix="senprep-patch-writer")
        self._pending: list[tuple[dict[str, Any], Future[dict[str, str]]]] = []

    def submit(self, patch: Patch, data: np.ndarray, entry: dict[str, Any], decision: PatchDecision) -> None:
        source = self.source
        sidecar = sidecar_for(patch, source.modality, source.bands, decision, source.extra)
        args = (self.unit_dir, patch, source.modality, data, source.bands, sidecar, self.compress)
        self._pending.append((entry, self._pool.submit(write_patch, *args)))

    def drain(self) -> list[dict[str, Any]]:
        """Wait for the submitted patches, in order; report each one written."""
        done = []
        while self._pending:
            entry, future = self._pending.pop(0)
            entry["files"] = future.result()
            done.append(entry)
            if self.on_patch is not None:
                self.on_patch(entry["patch_id"], entry["files"][self.source.modality])
        return done

    def close(self) -> None:
        """Drop patches not started yet (after a failure or a cancel) and wait for running ones."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def _entry(
    unit_id: str, patch: Patch, bands: list[str], source: UnitSource, record: ProductRecord, decision: PatchDecision
) -> dict[str, Any]:
    """The manifest entry of a written patch (its files are added once written).

    The top-level fields describe the unit's (primary) modality; ``modalities`` holds the same per
    modality, so a paired unit lists both sensors there with the same keys.
    """
    about = {
        "bands": bands,
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
    return {
        "unit_id": unit_id,
        "patch_id": patch.patch_id,
        "modality": source.modality,
        "files": {},
        "grid": patch.grid.to_dict(),
        **about,
        "modalities": {source.modality: about},
    }


def _finish_rejected(
    unit_dir: Path, unit_id: str, record: ProductRecord, fingerprint: str, reason: str, stats: RoiStats, t0: float
) -> UnitResult:
    manifest = {
        "unit_id": unit_id,
        "status": "rejected",
        "reason": reason,
        "config_fingerprint": fingerprint,
        "product": record.to_dict(),
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
