"""One Sentinel-2 work unit: product -> ROI-window reads on the target grid -> patches."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from senprep_core.catalog.records import ProductRecord
from senprep_core.config import Config
from senprep_core.geo.grid import PixelWindow
from senprep_core.geo.tiling import Patch
from senprep_core.outputs.atomic import write_json_atomic
from senprep_core.outputs.report import UnitResult
from senprep_core.patches import PatchDecision, decide_patch, inside_mask, plan_blocks, sidecar_for, write_patch
from senprep_core.s2.masks import roi_fractions
from senprep_core.s2.metadata import S2Metadata, read_s2_metadata
from senprep_core.s2.reader import read_s2_window

log = logging.getLogger(__name__)
MANIFEST = "unit.json"
MODALITY = "S2"

PatchCallback = Callable[[str, str], None]


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


def _roi_stats(meta: S2Metadata, config: Config) -> tuple[float, float | None]:
    """ROI-level valid and cloud fractions from the class layer only (cheap: one small read)."""
    grid = config.grid()
    probe = ["SCL"] if meta.level == "L2A" else [config.bands_s2[0]]
    window = read_s2_window(meta, grid, probe, "nearest")
    f = roi_fractions(window.valid, window.cloud, config.roi_mask())
    return f.valid_fraction, f.cloud_fraction


def process_s2_unit(
    unit_id: str,
    record: ProductRecord,
    config: Config,
    outdir: Path,
    rebuild: bool = False,
    on_patch: PatchCallback | None = None,
) -> UnitResult:
    """Process one S2 product into patches; never raises for product problems (the caller records them)."""
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
    meta = read_s2_metadata(record.href)
    grid = config.grid()
    roi_mask = config.roi_mask()
    patches = config.patches()
    blocks = plan_blocks(patches)
    full = PixelWindow(0, 0, grid.height, grid.width)
    single = len(blocks) == 1 and blocks[0].window.intersection(full) == full
    roi_valid: float | None = None
    roi_cloud: float | None = None
    if config.max_roi_cloud is not None or not single:
        roi_valid, roi_cloud = _roi_stats(meta, config)
        reject = _rejection(roi_valid, roi_cloud, config)
        if reject:
            return _finish_rejected(unit_dir, unit_id, record, fingerprint, reject, roi_valid, roi_cloud, t0)
    bands = list(config.bands_s2)
    entries: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    extra = _sidecar_extra(meta, record, unit_id, config, fingerprint)
    for block in blocks:
        block_grid = grid.subgrid(block.window)
        window = read_s2_window(meta, block_grid, bands, config.reflectance_resampling)
        inside = inside_mask(grid, block.window)
        if roi_valid is None:  # one block holding the whole ROI grid: take ROI stats from it
            sl = full.shifted(-block.window.row_off, -block.window.col_off).slices()
            f = roi_fractions(window.valid[sl], None if window.cloud is None else window.cloud[sl], roi_mask)
            roi_valid, roi_cloud = f.valid_fraction, f.cloud_fraction
            reject = _rejection(roi_valid, roi_cloud, config)
            if reject:
                return _finish_rejected(unit_dir, unit_id, record, fingerprint, reject, roi_valid, roi_cloud, t0)
        for patch in block.patches:
            rows, cols = patch.window.shifted(-block.window.row_off, -block.window.col_off).slices()
            valid = window.valid[rows, cols] & inside[rows, cols]
            cloud = None if window.cloud is None else window.cloud[rows, cols]
            decision = decide_patch(valid, cloud, config.output.min_valid_fraction, config.output.max_patch_cloud)
            if not decision.keep:
                skipped.append({"patch_id": patch.patch_id, "reason": decision.reason})
                continue
            data = window.data[:, rows, cols].copy()
            data[:, ~inside[rows, cols]] = np.nan
            sidecar = sidecar_for(patch, MODALITY, bands, decision, extra)
            entry = _entry(unit_id, patch, bands, extra, record, decision)
            entry["files"] = write_patch(unit_dir, patch, MODALITY, data, bands, sidecar, config.output.compress)
            entries.append(entry)
            if on_patch is not None:
                on_patch(entry["patch_id"], entry["files"][MODALITY])
    manifest = {
        "unit_id": unit_id,
        "status": "done",
        "config_fingerprint": fingerprint,
        "product": record.to_dict(),
        "roi_valid_fraction": roi_valid,
        "roi_cloud_fraction": roi_cloud,
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
        roi_valid_fraction=roi_valid,
        roi_cloud_fraction=roi_cloud,
        patch_entries=tuple(entries),
    )


def _entry(
    unit_id: str, patch: Patch, bands: list[str], extra: dict[str, Any], record: ProductRecord, decision: PatchDecision
) -> dict[str, Any]:
    """The manifest entry of a written patch (its files are added once written)."""
    return {
        "unit_id": unit_id,
        "patch_id": patch.patch_id,
        "files": {},
        "grid": patch.grid.to_dict(),
        "bands": bands,
        "sensing_time": extra["sensing_time"],
        "product_ids": [record.product_id],
        "platform": extra["platform"],
        "valid_fraction": round(decision.valid_fraction, 6),
        "cloud_fraction": None if decision.cloud_fraction is None else round(decision.cloud_fraction, 6),
    }


def _rejection(roi_valid: float, roi_cloud: float | None, config: Config) -> str | None:
    if roi_valid == 0:
        return "no valid pixel of the product inside the ROI"
    if config.max_roi_cloud is not None and roi_cloud is not None and 100 * roi_cloud > config.max_roi_cloud:
        return f"ROI cloud {100 * roi_cloud:.1f} % > {config.max_roi_cloud:g} %"
    return None


def _finish_rejected(
    unit_dir: Path,
    unit_id: str,
    record: ProductRecord,
    fingerprint: str,
    reason: str,
    roi_valid: float,
    roi_cloud: float | None,
    t0: float,
) -> UnitResult:
    manifest = {
        "unit_id": unit_id,
        "status": "rejected",
        "reason": reason,
        "config_fingerprint": fingerprint,
        "product": record.to_dict(),
        "roi_valid_fraction": roi_valid,
        "roi_cloud_fraction": roi_cloud,
        "patches": [],
        "skipped_patches": [],
    }
    _commit_manifest(unit_dir, manifest)
    return UnitResult(unit_id, "rejected", seconds=time.perf_counter() - t0, reason=reason,
                      roi_valid_fraction=roi_valid, roi_cloud_fraction=roi_cloud)  # fmt: skip


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


def _sidecar_extra(
    meta: S2Metadata, record: ProductRecord, unit_id: str, config: Config, fingerprint: str
) -> dict[str, Any]:
    return {
        "unit_id": unit_id,
        "product_ids": [record.product_id],
        "platform": {"S2A": "sentinel-2a", "S2B": "sentinel-2b", "S2C": "sentinel-2c"}.get(meta.mission, meta.mission),
        "sensing_time": meta.sensing_time.isoformat().replace("+00:00", "Z"),
        "tile_id": meta.tile_id,
        "processing_level": meta.level,
        "processing_baseline": meta.processing_baseline,
        "reflectance": {
            "formula": "(DN + offset) / quantification_value",
            "quantification_value": meta.quantification_value,
            "offsets": dict(sorted(meta.offsets.items())),
            "resampling": config.reflectance_resampling,
        },
        "config_fingerprint": fingerprint,
        "roi_name": config.name,
    }
