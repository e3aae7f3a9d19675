"""The shape of a run's Zarr cube, decided once before any unit runs: grid, patches, chunks and time slots.

The cube holds one group per modality (``S2``, ``S1``, ``S1_previous``) with an array of
``(time, band, y, x)``. Its *time slots* are the distinct acquisitions of that modality: the plan
knows them from the catalogue (each unit's product per role and its sensing time), so each unit can
be told which slots it alone fills and write them in place while the run goes on. A slot that several
units fill (a Sentinel-1 partner shared by two pairs, two tiles of one datatake) belongs to no unit:
the driver fills it at the end, in a fixed order, so the cube never depends on which unit finished
first. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property

from senprep_core.atomic import dump_json
from senprep_core.errors import OutputError
from senprep_core.geo.grid import PixelWindow, TargetGrid

CUBE_VERSION = 2


@dataclass(frozen=True)
class CubeSlot:
    """One time step of a modality: the acquisition it holds and the units that write patches into it."""

    index: int
    key: str  # ISO 8601 UTC time that orders and groups the slot's acquisitions
    products: tuple[str, ...]
    units: tuple[str, ...]

    @property
    def owner(self) -> str | None:
        """The one unit that fills this slot during the run; None when several do (the driver fills it)."""
        return self.units[0] if len(self.units) == 1 else None


@dataclass(frozen=True)
class CubeModality:
    """One group of the cube: its bands and time slots."""

    name: str
    bands: tuple[str, ...]
    slots: tuple[CubeSlot, ...]

    def slot_of(self, product_id: str) -> CubeSlot:
        """The slot a product's layers land in."""
        for slot in self.slots:
            if product_id in slot.products:
                return slot
        raise OutputError(f"product {product_id} has no {self.name} time step in the run's Zarr cube; re-run the run")


@dataclass(frozen=True)
class UnitCubeTarget:
    """What one unit needs to fill its slots: small, shipped with the unit to any worker."""

    fingerprint: str  # the layout's, so a unit never writes into a cube of another shape
    grid: TargetGrid
    chunk: tuple[int, int]
    slots: tuple[tuple[str, int, tuple[str, ...]], ...]  # (modality, slot index, its products) it alone fills
    bands: tuple[tuple[str, tuple[str, ...]], ...]  # (modality, bands) of those slots

    def bands_of(self, modality: str) -> tuple[str, ...]:
        return dict(self.bands)[modality]


@dataclass(frozen=True)
class CubeLayout:
    """The cube of a run: its grid, every patch's window in it, the chunk shape and the groups."""

    grid: TargetGrid
    patch_ids: tuple[str, ...]
    windows: tuple[PixelWindow, ...]
    chunk: tuple[int, int]
    modalities: tuple[CubeModality, ...]

    def modality(self, name: str) -> CubeModality:
        for modality in self.modalities:
            if modality.name == name:
                return modality
        raise OutputError(f"the run's Zarr cube has no {name} group; re-run the run")

    def window_of(self, patch_id: str) -> PixelWindow:
        """The pixel window of a patch in the cube."""
        return self._windows[patch_id]

    @cached_property
    def _windows(self) -> dict[str, PixelWindow]:
        return dict(zip(self.patch_ids, self.windows, strict=True))

    @cached_property
    def fingerprint(self) -> str:
        """Changes whenever the cube's shape, bands, slots or their owners change."""
        text = dump_json(
            [
                CUBE_VERSION,
                self.grid.to_dict(),
                self.chunk,
                [
                    [p, w.row_off, w.col_off, w.height, w.width]
                    for p, w in zip(self.patch_ids, self.windows, strict=True)
                ],
                [[m.name, m.bands, [[s.key, s.products, s.units] for s in m.slots]] for m in self.modalities],
            ]
        )
        return hashlib.sha256(text).hexdigest()[:16]

    def targets(self) -> dict[str, UnitCubeTarget]:
        """The slots each unit alone fills, by unit id (units that fill none are left out)."""
        owned: dict[str, list[tuple[str, int, tuple[str, ...]]]] = defaultdict(list)
        for m in self.modalities:
            for s in m.slots:
                if s.owner is not None:
                    owned[s.owner].append((m.name, s.index, s.products))
        bands = {m.name: m.bands for m in self.modalities}
        return {
            unit: UnitCubeTarget(
                self.fingerprint,
                self.grid,
                self.chunk,
                tuple(slots),
                tuple((name, bands[name]) for name in sorted({n for n, _, _ in slots})),
            )
            for unit, slots in owned.items()
        }


@dataclass(frozen=True)
class SlotClaim:
    """A unit's claim on a slot: it will write ``modality`` layers of ``product_ids`` sensed at ``time``."""

    unit_id: str
    modality: str
    time: datetime
    product_ids: tuple[str, ...]
    bands: tuple[str, ...]


def iso(t: datetime) -> str:
    """``t`` as ISO 8601 UTC with a ``Z``, to the microsecond."""
    if t.tzinfo is not None:
        t = t.astimezone(timezone.utc).replace(tzinfo=None)
    return t.isoformat(timespec="microseconds") + "Z"


def union_grid(grids: Iterable[TargetGrid], what: str = "patches") -> TargetGrid:
    """The smallest grid holding every grid (all must share CRS, resolution and pixel lattice)."""
    grids = list(grids)
    if not grids:
        raise OutputError(f"there are no {what}, so there is nothing to put in a Zarr cube")
    first = grids[0]
    for grid in grids:
        if grid.epsg != first.epsg or abs(grid.resolution - first.resolution) > 1e-9:
            raise OutputError(
                f"{what} lie on EPSG:{grid.epsg} at {grid.resolution} m and on EPSG:{first.epsg} at "
                f"{first.resolution} m; a Zarr cube needs one grid per run"
            )
    left = min(g.bounds.left for g in grids)
    top = max(g.bounds.top for g in grids)
    right = max(g.bounds.right for g in grids)
    bottom = min(g.bounds.bottom for g in grids)
    res = first.resolution
    return TargetGrid(first.epsg, res, left, top, round((right - left) / res), round((top - bottom) / res))


def make_layout(patches: Sequence[tuple[str, TargetGrid]], claims: Iterable[SlotClaim]) -> CubeLayout:
    """The cube of ``patches`` (id and grid, in order) filled by ``claims``.

    Claims of one modality at one time form a slot; slots are in time order. Raises
    :class:`OutputError` when there is no patch or no claim, when the patches are on different grids or
    off one pixel lattice, or when one modality would have different bands.
    """
    grid = union_grid([g for _, g in patches])
    windows: dict[str, PixelWindow] = {}
    for patch_id, patch_grid in patches:
        try:
            window = grid.window_of(patch_grid)
        except ValueError as exc:
            raise OutputError(f"patch {patch_id} is off the run's pixel grid: {exc}") from exc
        if windows.setdefault(patch_id, window) != window:
            raise OutputError(f"patch id {patch_id} names two different windows; the run's manifests disagree")
    shapes = Counter((w.height, w.width) for w in windows.values())
    chunk = shapes.most_common(1)[0][0]
    by_modality: dict[str, dict[str, list[SlotClaim]]] = defaultdict(lambda: defaultdict(list))
    for claim in claims:
        by_modality[claim.modality][iso(claim.time)].append(claim)
    if not by_modality:
        raise OutputError("no unit writes patches, so there is nothing to put in a Zarr cube")
    groups = [_modality(name, by_time) for name, by_time in sorted(by_modality.items())]
    ids = tuple(sorted(windows))
    return CubeLayout(grid, ids, tuple(windows[p] for p in ids), chunk, tuple(groups))


def _modality(name: str, by_time: dict[str, list[SlotClaim]]) -> CubeModality:
    bands = {c.bands for claims in by_time.values() for c in claims}
    if len(bands) > 1:
        listed = " and ".join(str(list(b)) for b in sorted(bands))
        raise OutputError(
            f"{name} patches have bands {listed}; a Zarr cube needs the same bands in every patch of a modality "
            "(re-run with --rebuild)"
        )
    slots = []
    for index, key in enumerate(sorted(by_time)):
        claims = by_time[key]
        products = tuple(sorted({p for c in claims for p in c.product_ids}))
        slots.append(CubeSlot(index, key, products, tuple(sorted({c.unit_id for c in claims}))))
    return CubeModality(name, bands.pop(), tuple(slots))
