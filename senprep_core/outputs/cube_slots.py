"""Filling time slots of a run's Zarr cube from patch COGs: by the unit that owns a slot, or by the driver.

A slot is written whole, one row of chunks at a time (one chunk high, the cube wide), so no chunk is
ever read back and a chunk left from an earlier content of the slot is replaced or, where no patch
holds data any more, removed. After a slot is written a small marker records a token of what it
holds (the layout's fingerprint and each patch COG's checksum); the driver rewrites only slots whose
marker is missing or does not match the unit manifests, so a killed unit, a unit redone with other
settings or a slot filled by several units always ends with the same cube as a serial run.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from senprep_core.atomic import dump_json, write_json_atomic
from senprep_core.errors import OutputError
from senprep_core.geo.grid import PixelWindow
from senprep_core.outputs.records import PatchEntry, is_stack_role, time_axis_group
from senprep_core.timeutil import parse_utc

log = logging.getLogger(__name__)

MARKERS_DIR = ".senprep-slots"  # inside the cube store; zarr ignores it


@dataclass(frozen=True)
class CubeLayer:
    """One modality of one written patch, as the cube sees it."""

    modality: str
    primary: bool  # the entry's own modality (a sample); False for the partner of a pair
    time: np.datetime64
    patch_id: str
    unit_id: str
    image: str  # the COG, relative to the run folder
    bands: tuple[str, ...]
    product_ids: tuple[str, ...]
    platform: str | None
    valid_fraction: float
    cloud_fraction: float | None
    sidecar: str | None = None
    orbit_direction: str | None = None
    relative_orbit: int | None = None
    pair_modality: str | None = None
    pair_time: np.datetime64 | None = None
    digest: str = ""  # the COG's checksum in the unit's manifest
    stack: bool = False  # a member of an S1 stack (overlapping stacks hold a date more than once)

    @property
    def key(self) -> str:
        """The time slot the layer falls in (ISO 8601 UTC)."""
        return str(np.datetime_as_string(self.time, unit="us")) + "Z"


def parse_time(text: str) -> np.datetime64:
    """An ISO 8601 time ("...Z", "+00:00" or naive UTC) as a naive UTC ``datetime64[us]``."""
    return np.datetime64(parse_utc(text).replace(tzinfo=None), "us")


def entry_layers(entry: PatchEntry, digests: Mapping[str, str] | None = None) -> list[CubeLayer]:
    """The cube layers of one patch entry: its primary modality first, then a pair partner if any.
    ``digests`` maps the run-relative paths of the unit's files to their checksums."""
    digests = digests or {}
    primary = entry.primary
    partner = entry.pair.secondary if entry.pair is not None and entry.pair.primary == primary.modality else None
    partner_part = entry.get(partner) if partner else None
    pair_time = parse_time(partner_part.sensing_time) if partner_part is not None else None
    layers = []
    stack = any(is_stack_role(m.modality) for m in entry.modalities)
    for part in sorted(entry.modalities, key=lambda m: (m is not primary, m.modality)):
        is_primary = part is primary
        layers.append(
            CubeLayer(
                modality=time_axis_group(part.modality),
                primary=is_primary,
                time=parse_time(part.sensing_time),
                patch_id=entry.patch_id,
                unit_id=entry.unit_id,
                image=part.image,
                bands=part.bands,
                product_ids=part.product_ids,
                platform=part.platform,
                valid_fraction=part.valid_fraction,
                cloud_fraction=part.cloud_fraction,
                sidecar=part.sidecar,
                orbit_direction=part.sar.orbit_direction if part.sar else None,
                relative_orbit=part.sar.relative_orbit if part.sar else None,
                pair_modality=partner if is_primary and pair_time is not None else None,
                pair_time=pair_time if is_primary else None,
                digest=digests.get(part.image, ""),
                stack=stack,
            )
        )
    return layers


def write_order(layers: Iterable[CubeLayer], windows: Callable[[str], PixelWindow]) -> list[CubeLayer]:
    """The layers of one slot in the order they are written (the first value written at a pixel stays):
    top to bottom, left to right, a sample before a pair partner, then by unit; one COG once."""
    ordered = sorted(layers, key=lambda g: (windows(g.patch_id).row_off, windows(g.patch_id).col_off,
                                            not g.primary, g.unit_id, g.image))  # fmt: skip
    out, seen = [], set()
    for layer in ordered:
        # a partner patch paired with several primaries; a date of overlapping stacks: the stack it is newest in
        key = (layer.patch_id, "" if layer.stack else layer.image)
        if key not in seen:
            seen.add(key)
            out.append(layer)
    return out


def slot_token(fingerprint: str, layers: Sequence[CubeLayer]) -> str:
    """What a slot holds: the layout, and each layer's patch, unit, role and COG checksum, in write order."""
    parts = [[g.patch_id, g.unit_id, g.primary, g.image, g.digest] for g in layers]
    return hashlib.sha256(dump_json([fingerprint, parts])).hexdigest()[:24]


def marker_path(store: Path, modality: str, index: int) -> Path:
    return store / MARKERS_DIR / f"{modality}.{index}.json"


def read_marker(store: Path, modality: str, index: int) -> str | None:
    """The token recorded for a slot, None when there is none (never written, or being rewritten)."""
    try:
        return str(json.loads(marker_path(store, modality, index).read_text())["token"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def clear_marker(store: Path, modality: str, index: int) -> None:
    marker_path(store, modality, index).unlink(missing_ok=True)


def write_marker(store: Path, modality: str, index: int, token: str, writer: str) -> None:
    path = marker_path(store, modality, index)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"token": token, "writer": writer})


def read_patch(path: Path, n_bands: int) -> np.ndarray:
    """A patch COG as float32 (bands, rows, cols)."""
    try:
        with rasterio.open(path) as src:
            data = src.read(out_dtype="float32")
    except rasterio.errors.RasterioIOError as exc:
        raise OutputError(f"cannot read patch {path} for the Zarr cube: {exc}; re-run the run to rewrite it") from exc
    if data.shape[0] != n_bands:
        raise OutputError(f"patch {path} has {data.shape[0]} bands, the cube expects {n_bands}")
    return data


def _prefetch(read: Callable[[CubeLayer], np.ndarray], layers: Sequence[CubeLayer], depth: int = 4) -> Iterator[
        tuple[CubeLayer, np.ndarray]]:  # fmt: skip
    """``(layer, read(layer))`` in order, reading a few patches ahead on two threads (GDAL releases the GIL)."""
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="senprep-cube-read") as pool:
        pending: deque[tuple[CubeLayer, Future[np.ndarray]]] = deque()
        for layer in layers:
            pending.append((layer, pool.submit(read, layer)))
            if len(pending) > depth:
                first, future = pending.popleft()
                yield first, future.result()
        while pending:
            first, future = pending.popleft()
            yield first, future.result()


class _SlotStrips:
    """Gathers one slot's patches into rows of whole chunks and writes every row of the slot exactly once.

    Patches arrive sorted by row: a row that ends above the next patch is complete. Rows no patch
    touches are written too (all fill value: zarr then stores no chunk and removes an old one).
    """

    def __init__(self, array: Any, slot: int, chunk_h: int) -> None:
        self.array, self.slot, self.chunk_h = array, slot, chunk_h
        self.n_bands, self.height, self.width = array.shape[1], array.shape[2], array.shape[3]
        self.rows: dict[int, np.ndarray] = {}
        self.next_row = 0  # the first chunk row not yet written

    def _row(self, k: int) -> np.ndarray:
        if k not in self.rows:
            shape = (self.n_bands, min(self.chunk_h, self.height - k * self.chunk_h), self.width)
            self.rows[k] = np.full(shape, np.nan, dtype="float32")
        return self.rows[k]

    def add(self, window: PixelWindow, data: np.ndarray) -> None:
        ch = self.chunk_h
        for k in range(window.row_off // ch, (window.row_stop - 1) // ch + 1):
            r0, r1 = max(window.row_off, k * ch), min(window.row_stop, (k + 1) * ch)
            target = self._row(k)[:, r0 - k * ch : r1 - k * ch, window.col_off : window.col_stop]
            np.copyto(target, data[:, r0 - window.row_off : r1 - window.row_off, :], where=np.isnan(target))

    def flush_before(self, row: int) -> None:
        """Write every chunk row that ends at or above pixel row ``row``."""
        while self.next_row * self.chunk_h < self.height and (self.next_row + 1) * self.chunk_h <= row:
            k = self.next_row
            data = self._row(k)
            self.array[self.slot, :, k * self.chunk_h : k * self.chunk_h + data.shape[1], :] = data
            del self.rows[k]
            self.next_row += 1

    def finish(self) -> None:
        self.flush_before(self.height + self.chunk_h)


def fill_slot(
    array: Any, slot: int, chunk_h: int, layers: Sequence[CubeLayer], windows: Callable[[str], PixelWindow], root: Path
) -> int:
    """Write slot ``slot`` of ``array`` (time, band, y, x) from ``layers`` already in write order; return the
    number of patches copied. Overlapping patches keep the first value written."""
    strips = _SlotStrips(array, slot, chunk_h)
    n_bands = array.shape[1]
    for layer, data in _prefetch(lambda g: read_patch(root / g.image, n_bands), layers):
        window = windows(layer.patch_id)
        strips.flush_before(window.row_off)
        strips.add(window, data)
    strips.finish()
    return len(layers)
