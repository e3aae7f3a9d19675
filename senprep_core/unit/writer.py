"""Write a unit's patches on two threads, so compression overlaps the next block's read.

GDAL releases the GIL while it compresses; results are collected in submission order, so the
manifest, the progress events and the bytes on disk are the same as a serial write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from senprep_core.catalog.records import ProductRecord
from senprep_core.geo.tiling import Patch
from senprep_core.outputs.records import FileRecord, ModalityPatch, PairFacts, PatchEntry, SarFacts, is_stack_role
from senprep_core.outputs.run_folder import RunFolder
from senprep_core.threads import threads_for
from senprep_core.timeutil import parse_utc
from senprep_core.unit.patches import PatchDecision, sidecar_for
from senprep_core.unit.source import UnitSource

WRITER_THREADS = 2  # patch compression threads per unit

#: Called with (patch id, path of the primary COG relative to the run folder) as each patch is written.
PatchCallback = Callable[[str, str], None]


@dataclass(frozen=True)
class _Facts:
    """One modality of a patch before its files exist."""

    modality: str
    bands: tuple[str, ...]
    sensing_time: str
    product_ids: tuple[str, ...]
    platform: str | None
    valid_fraction: float
    cloud_fraction: float | None
    sar: SarFacts | None

    def with_files(self, image: FileRecord, sidecar: FileRecord) -> ModalityPatch:
        return ModalityPatch(self.modality, image.path, sidecar.path, self.bands, self.sensing_time,
                             self.product_ids, self.platform, self.valid_fraction, self.cloud_fraction,
                             self.sar)  # fmt: skip


def _facts(source: UnitSource, record: ProductRecord, decision: PatchDecision) -> _Facts:
    sar = source.extra.get("sar")
    return _Facts(
        modality=source.modality,
        bands=tuple(source.bands),
        sensing_time=str(source.extra["sensing_time"]),
        product_ids=(record.product_id,),
        platform=source.extra.get("platform"),
        valid_fraction=round(decision.valid_fraction, 6),
        cloud_fraction=None if decision.cloud_fraction is None else round(decision.cloud_fraction, 6),
        sar=_sar(sar) if sar else None,
    )


def _sar(sar: dict[str, Any]) -> SarFacts:
    return SarFacts(sar.get("instrument_mode"), sar.get("product_type"), tuple(sar.get("polarizations") or ()),
                    sar.get("orbit_direction"), sar.get("relative_orbit"))  # fmt: skip


def pair_facts(sources: Sequence[UnitSource]) -> PairFacts | None:
    """The pair of a two-source unit: its sensors and the signed time gap (secondary minus primary, hours);
    None for one source or a stack (see :func:`stack_facts`)."""
    if len(sources) < 2 or any(is_stack_role(s.modality) for s in sources):
        return None
    t0, t1 = (parse_utc(str(s.extra["sensing_time"])) for s in sources[:2])
    return PairFacts(sources[0].modality, sources[1].modality, round((t1 - t0).total_seconds() / 3600.0, 4))


def stack_facts(sources: Sequence[UnitSource]) -> list[dict[str, Any]]:
    """Per source of a stack unit, its ``stack`` sidecar entry: position (0 newest), size and time gap to the
    newest (hours, negative); empty for other units."""
    if not any(is_stack_role(s.modality) for s in sources):
        return [{} for _ in sources]
    t0 = parse_utc(str(sources[0].extra["sensing_time"]))
    return [
        {"stack": {"index": i, "size": len(sources), "delta_t_hours": round(
            (parse_utc(str(s.extra["sensing_time"])) - t0).total_seconds() / 3600.0, 4)}}
        for i, s in enumerate(sources)
    ]  # fmt: skip


class PatchWriter:
    """Writes the patches of one unit into the run folder and collects their entries and file records."""

    def __init__(
        self,
        folder: RunFolder,
        unit_id: str,
        sources: Sequence[UnitSource],
        records: Sequence[ProductRecord],
        compress: str,
        on_patch: PatchCallback | None,
    ) -> None:
        self.folder, self.unit_id, self.sources, self.records = folder, unit_id, sources, records
        self.compress, self.on_patch = compress, on_patch
        self.pair = pair_facts(sources)
        self.stack = stack_facts(sources)
        self.files: list[FileRecord] = []
        self._pool = ThreadPoolExecutor(max_workers=threads_for(WRITER_THREADS), thread_name_prefix="senprep-writer")
        self._pending: list[tuple[Patch, list[_Facts], list[Future[tuple[FileRecord, FileRecord]]]]] = []
        self._submitted: set[Future[tuple[FileRecord, FileRecord]]] = set()  # not yet drained

    def submit(self, patch: Patch, arrays: Sequence[np.ndarray], decisions: Sequence[PatchDecision]) -> None:
        """Queue one patch: an array per source (bands, rows, cols) and the decisions that kept it."""
        facts, futures = [], []
        pair = {"pair": asdict(self.pair)} if self.pair is not None else {}
        parts = zip(self.sources, self.records, arrays, decisions, self.stack, strict=True)
        for source, record, data, decision, stack in parts:
            facts.append(_facts(source, record, decision))
            sidecar = sidecar_for(patch, source.modality, source.bands, decision, {**source.extra, **pair, **stack})
            futures.append(self._pool.submit(self.folder.write_patch, self.unit_id, patch.patch_id, source.modality,
                                             data, patch.grid, source.bands, sidecar, self.compress))  # fmt: skip
        self._pending.append((patch, facts, futures))
        self._submitted.update(futures)

    def drain(self) -> list[PatchEntry]:
        """Wait for the submitted patches, in order; report each one written."""
        done = []
        while self._pending:
            patch, facts, futures = self._pending.pop(0)
            parts = []
            for fact, future in zip(facts, futures, strict=True):
                image, sidecar = future.result()
                self._submitted.discard(future)
                self.files += [image, sidecar]
                parts.append(fact.with_files(image, sidecar))
            entry = PatchEntry(self.unit_id, patch.patch_id, patch.grid, patch.window, tuple(parts), self.pair)
            done.append(entry)
            if self.on_patch is not None:
                self.on_patch(entry.patch_id, entry.primary.image)
        return done

    def close(self) -> None:
        """Drop patches not started yet (after a failure or a cancel) and wait for running ones.

        The wait cannot be cut short by Ctrl-C: a unit's files are removed after a cancel, and a write
        still running then would land after the removal. An interrupt that comes meanwhile is raised after.
        """
        self._pool.shutdown(wait=False, cancel_futures=True)
        interrupted = False
        while True:
            try:
                wait([f for f in self._submitted if not f.cancelled()])  # a cancelled one never runs
                break
            except KeyboardInterrupt:
                interrupted = True
        self._submitted.clear()
        if interrupted:
            raise KeyboardInterrupt
