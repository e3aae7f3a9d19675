"""What the units of a run actually wrote into each time slot of its Zarr cube, gathered unit by unit.

The plan decided the cube's slots from the catalogue (:mod:`~senprep_core.outputs.cube_layout`); at the
run's end the driver reads the units' manifests one at a time (never all patches at once) and gathers,
per modality and sensing time, which units wrote layers there and the small per-time facts
(products, platform, orbit, pair time). :func:`map_slots` then says which planned slot holds each
written time step, or that the plan guessed wrong (the driver then lays the cube out again).
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from senprep_core.atomic import dump_json
from senprep_core.outputs.cube_layout import CubeLayout, SlotClaim
from senprep_core.outputs.cube_slots import CubeLayer, entry_layers
from senprep_core.outputs.records import PatchEntry, file_digest
from senprep_core.outputs.run_folder import UNIT_FILE, RunFolder
from senprep_core.timeutil import parse_utc

LayerReader = Callable[[str], list[CubeLayer]]


class ManifestLayers:
    """The cube layers of each unit, read from its manifest (a few manifests kept, most recent first)."""

    def __init__(self, folder: RunFolder, unit_ids: Iterable[str], keep: int = 256) -> None:
        self.folder, self.unit_ids, self.keep = folder, tuple(sorted(unit_ids)), keep
        self._cache: OrderedDict[str, list[CubeLayer]] = OrderedDict()

    def layers(self, unit_id: str) -> list[CubeLayer]:
        if unit_id in self._cache:
            self._cache.move_to_end(unit_id)
            return self._cache[unit_id]
        manifest = self.folder.read_manifest(unit_id, products=False)
        layers: list[CubeLayer] = []
        if manifest is not None:
            digests = {f.path: f.digest for f in manifest.files}
            layers = [g for e in manifest.patches for g in entry_layers(e, digests)]
        self._cache[unit_id] = layers
        if len(self._cache) > self.keep:
            self._cache.popitem(last=False)
        return layers

    def stamp(self) -> str:
        """Changes whenever a unit's manifest does (it lists every patch file with its checksum)."""
        parts = []
        for unit_id in self.unit_ids:
            path = self.folder.unit_dir(unit_id) / UNIT_FILE
            parts.append([unit_id, file_digest(path) if path.exists() else ""])
        return dump_json(parts).hex()


class EntryLayers:
    """The cube layers of patch entries held in memory (a cube built outside a run)."""

    def __init__(self, root: Path, entries: Sequence[PatchEntry]) -> None:
        self.root = root
        self._by_unit: dict[str, list[CubeLayer]] = {}
        self._entries = entries
        for entry in entries:
            self._by_unit.setdefault(entry.unit_id, []).extend(entry_layers(entry))
        self.unit_ids = tuple(sorted(self._by_unit))

    def layers(self, unit_id: str) -> list[CubeLayer]:
        return self._by_unit.get(unit_id, [])

    def stamp(self) -> str:
        """Changes with the entries and every patch file's size and modification time."""
        stamps = []
        for layers in self._by_unit.values():
            for g in layers:
                st = (self.root / g.image).stat()
                stamps.append([g.image, st.st_size, st.st_mtime_ns])
        order = [e.to_dict() for e in sorted(self._entries, key=lambda e: (e.unit_id, e.patch_id))]
        return dump_json([order, sorted(stamps)]).hex()


@dataclass
class WrittenSlot:
    """One time step of a modality as the units wrote it."""

    modality: str
    key: str
    time: np.datetime64
    units: set[str] = field(default_factory=set)
    bands: set[tuple[str, ...]] = field(default_factory=set)
    products: set[str] = field(default_factory=set)
    platforms: set[str] = field(default_factory=set)
    orbit_directions: set[str] = field(default_factory=set)
    relative_orbits: set[int | None] = field(default_factory=set)
    pair_modalities: set[str] = field(default_factory=set)
    pair_time: np.datetime64 | None = None
    sidecar: str | None = None  # of one layer, for the processing level

    def add(self, layer: CubeLayer) -> None:
        self.units.add(layer.unit_id)
        self.bands.add(layer.bands)
        self.products.update(layer.product_ids)
        if layer.platform:
            self.platforms.add(layer.platform)
        if layer.orbit_direction:
            self.orbit_directions.add(layer.orbit_direction)
        self.relative_orbits.add(layer.relative_orbit)
        if layer.pair_modality:
            self.pair_modalities.add(layer.pair_modality)
        if layer.pair_time is not None and (self.pair_time is None or layer.pair_time < self.pair_time):
            self.pair_time = layer.pair_time
        if self.sidecar is None or (layer.sidecar is not None and layer.sidecar < self.sidecar):
            self.sidecar = layer.sidecar

    def claims(self) -> list[SlotClaim]:
        """The slot as claims, to lay a cube out from what was written."""
        when = parse_utc(self.key)
        products = tuple(sorted(self.products))
        return [SlotClaim(u, self.modality, when, products, b) for u in sorted(self.units) for b in self.bands]


def gather(unit_ids: Iterable[str], layers_of: LayerReader) -> dict[str, list[WrittenSlot]]:
    """Per modality, the written time steps in time order."""
    slots: dict[tuple[str, str], WrittenSlot] = {}
    for unit_id in unit_ids:
        for layer in layers_of(unit_id):
            key = (layer.modality, layer.key)
            if key not in slots:
                slots[key] = WrittenSlot(layer.modality, layer.key, layer.time)
            slots[key].add(layer)
    out: dict[str, list[WrittenSlot]] = {}
    for (modality, _), slot in sorted(slots.items()):
        out.setdefault(modality, []).append(slot)
    return out


def map_slots(layout: CubeLayout, written: dict[str, list[WrittenSlot]]) -> dict[str, list[int]] | None:
    """For each modality, the planned slot index of each written slot (in time order; the slot of its
    products); None when the plan does not fit what was written: a modality or a product it did not
    foresee, other bands, two written time steps in one planned slot, or a different order."""
    out: dict[str, list[int]] = {}
    names = {m.name for m in layout.modalities}
    for modality, slots in written.items():
        if modality not in names:
            return None
        planned = layout.modality(modality)
        index_of = {p: s.index for s in planned.slots for p in s.products}
        indexes = []
        for slot in slots:
            if slot.bands != {planned.bands} or not slot.products or not slot.products <= index_of.keys():
                return None
            indexes.append(min(index_of[p] for p in slot.products))
        if any(b <= a for a, b in itertools.pairwise(indexes)):
            return None
        out[modality] = indexes
    return out
