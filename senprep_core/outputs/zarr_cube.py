"""A Zarr cube of a run: every written patch on the run's grid, one group per modality.

Layout of ``<run>/cube.zarr`` (Zarr format 2, consolidated metadata, CF-1.8 attributes):

- the root group holds attributes only (run name, modalities, cube grid, a fingerprint of the inputs);
- one group per modality (``S2``, ``S1``) holds a dataset with dims ``time``, ``band``, ``y``, ``x`` and
  ``patch``: the variable named like the modality (float32, NaN where no patch holds data, chunked by
  patch: one chunk = 1 time x all bands x one patch), the ``spatial_ref`` grid mapping, per-time
  coordinates (``product_ids``, ``platform``, for S1 ``orbit_direction`` / ``relative_orbit``, for the
  primary modality of paired runs ``pair_time`` and ``delta_t_hours``), per-patch coordinates (``patch_id``
  and its pixel window) and the per-(time, patch) sample table (``valid_fraction``, ``cloud_fraction``,
  ``unit_id``, ``is_sample``: True where the cell is a sample's primary modality, False where it only holds
  a pair partner).

How a run builds it without a serial tail: the plan lays the cube out (:mod:`.cube_layout`); before the
units start the driver creates the arrays in ``cube-building.zarr`` (:func:`prepare_cube`); each unit
writes the time slots it alone fills, in place, as soon as its patches exist (:func:`write_unit_slots`);
at the end the driver only checks each slot's marker against the units' manifests, fills the few slots
several units share, writes the small coordinate variables and renames the store into place
(:func:`finish_cube`). Pixel values are copied from the patch COGs, so the cube holds exactly their values.

Open a modality with ``xarray.open_zarr(path, group="S2")`` or everything with
``xarray.open_datatree(path, engine="zarr")``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from senprep_core import __version__
from senprep_core.atomic import dump_json, replace_folder
from senprep_core.errors import ConfigError, OutputError
from senprep_core.outputs.cube_gather import EntryLayers, ManifestLayers, WrittenSlot, gather, map_slots
from senprep_core.outputs.cube_layout import CUBE_VERSION, CubeLayout, UnitCubeTarget, make_layout
from senprep_core.outputs.cube_slots import (
    MARKERS_DIR,
    clear_marker,
    entry_layers,
    fill_slot,
    parse_time,
    read_marker,
    slot_token,
    write_marker,
    write_order,
)
from senprep_core.outputs.cube_variables import (
    CODEC,
    NAT,
    PatchTables,
    band_info,
    data_attrs,
    time_attrs,
    time_values,
    write_axes,
    write_bands,
    write_variable,
)
from senprep_core.outputs.records import FileRecord, PatchEntry
from senprep_core.outputs.run_folder import RunFolder

__all__ = ["band_info", "cube_attrs", "delta_hours", "finish_cube", "parse_time", "prepare_cube", "require_zarr",
           "write_unit_slots", "write_zarr_cube"]  # fmt: skip

log = logging.getLogger(__name__)

_OLD = ".old-"
LAYOUT_ATTR = "senprep:layout"


def require_zarr() -> Any:
    """The zarr module; a :class:`ConfigError` saying how to install it when it is missing or too old."""
    try:
        import zarr
    except ImportError:
        raise ConfigError("output.zarr", True, "the Zarr cube needs the zarr package: pip install 'zarr>=3'") from None
    if int(zarr.__version__.split(".")[0]) < 3:
        raise ConfigError("output.zarr", True, f"zarr {zarr.__version__} is too old: pip install 'zarr>=3'")
    return zarr


def delta_hours(primary: np.datetime64, secondary: np.datetime64) -> float:
    """Signed time difference secondary minus primary in hours (rounded to 1e-6 h, a few ms)."""
    micro = (secondary.astype("datetime64[us]") - primary.astype("datetime64[us]")).astype("int64")
    return round(float(micro) / 3.6e9, 6)


def cube_attrs(path: Path) -> dict[str, Any]:
    """The root attributes of a cube (empty when there is none or it cannot be read)."""
    try:
        return dict(json.loads((Path(path) / ".zattrs").read_text()))
    except (OSError, ValueError):
        return {}


def prepare_cube(folder: RunFolder, layout: CubeLayout) -> Path:
    """Create the empty pixel arrays of ``layout`` in the folder's staging store (kept, with the slots
    already filled, when an interrupted run left one of the same layout); return the store's path."""
    zarr = require_zarr()
    from numcodecs import Blosc

    store = folder.cube_staging_path
    if cube_attrs(store).get(LAYOUT_ATTR) == layout.fingerprint:
        return store
    try:
        shutil.rmtree(store, ignore_errors=True)
        root = zarr.open_group(str(store), mode="w", zarr_format=2)
        for modality in layout.modalities:
            group = root.create_group(modality.name)
            group.create_array(
                modality.name,
                shape=(len(modality.slots), len(modality.bands), layout.grid.height, layout.grid.width),
                chunks=(1, len(modality.bands), *layout.chunk),
                dtype="float32",
                fill_value=np.float32("nan"),
                compressors=Blosc(cname=CODEC[0], clevel=CODEC[1], shuffle=Blosc.SHUFFLE),
                attributes={"_ARRAY_DIMENSIONS": ["time", "band", "y", "x"]},
            )
        root.attrs[LAYOUT_ATTR] = layout.fingerprint  # last: a store without it is never reused
    except OSError as exc:
        raise OutputError(
            f"cannot create the Zarr cube {store}: {exc}; check the folder is writable and has space"
        ) from exc
    return store


def write_unit_slots(folder: RunFolder, target: UnitCubeTarget, entries: Sequence[PatchEntry],
                     files: Sequence[FileRecord]) -> int:  # fmt: skip
    """Write the time slots a unit alone fills from its just-written patches; return the patches copied.

    Nothing is written when the folder's staging store is not of the unit's layout (a unit run outside
    a run, or a store laid out anew): the driver then fills the slots at the end."""
    store = folder.cube_staging_path
    if cube_attrs(store).get(LAYOUT_ATTR) != target.fingerprint:
        return 0
    zarr = require_zarr()
    digests = {f.path: f.digest for f in files}
    layers = [g for e in entries for g in entry_layers(e, digests)]
    windows = {e.patch_id: target.grid.window_of(e.grid) for e in entries}
    root = zarr.open_group(str(store), mode="r+", zarr_format=2)
    copied = 0
    for modality, index, products in target.slots:  # a stack unit fills several slots of one group
        mine = [g for g in layers if g.modality == modality and set(g.product_ids) <= set(products)]
        order = write_order(mine, windows.__getitem__)
        if not order:
            continue
        clear_marker(store, modality, index)
        copied += fill_slot(root[modality][modality], index, target.chunk[0], order, windows.__getitem__, folder.root)
        write_marker(store, modality, index, slot_token(target.fingerprint, order), order[0].unit_id)
    return copied


def finish_cube(folder: RunFolder, layout: CubeLayout, unit_ids: Sequence[str], name: str) -> Path | None:
    """Complete the cube of a run whose units ``unit_ids`` are done; return its path (None: no patch)."""
    return _build(folder, layout, ManifestLayers(folder, unit_ids), name)


def write_zarr_cube(folder: RunFolder, entries: Sequence[PatchEntry], name: str) -> Path:
    """Build the run folder's Zarr cube from patch ``entries`` alone (outside a run); return its path.

    Raises :class:`OutputError` when the entries cannot form one cube (no patches, several grids, missing
    files) and :class:`ConfigError` when the zarr package is missing."""
    source = EntryLayers(folder.root, entries)
    written = gather(source.unit_ids, source.layers)
    if not written:
        raise OutputError(f"run '{name}' wrote no patches, so there is nothing to put in a Zarr cube")
    claims = [c for slots in written.values() for s in slots for c in s.claims()]
    path = _build(folder, make_layout([(e.patch_id, e.grid) for e in entries], claims), source, name)
    if path is None:  # gather found patches above
        raise OutputError(f"run '{name}' wrote no patches, so there is nothing to put in a Zarr cube")
    return path


def _build(folder: RunFolder, layout: CubeLayout, source: ManifestLayers | EntryLayers, name: str) -> Path | None:
    zarr = require_zarr()
    target, staging = folder.cube_path, folder.cube_staging_path
    for pattern in (f"{target.stem}.tmp-*{target.suffix}", f"{target.stem}{_OLD}*{target.suffix}"):
        for leftover in target.parent.glob(pattern):  # from a writer killed while renaming (or an older version)
            shutil.rmtree(leftover, ignore_errors=True)
    written = gather(source.unit_ids, source.layers)
    if not written:
        shutil.rmtree(staging, ignore_errors=True)
        return None
    content = hashlib.sha256(dump_json([CUBE_VERSION, name, layout.fingerprint, source.stamp()])).hexdigest()[:16]
    if target.is_dir() and cube_attrs(target).get("senprep:fingerprint") == content:
        shutil.rmtree(staging, ignore_errors=True)
        log.info("Zarr cube %s is up to date", target)
        return target
    mapping = map_slots(layout, written)
    if mapping is None:  # the units wrote other time steps than the catalogue said: lay the cube out anew
        log.info("the Zarr cube's time steps differ from the plan's; the driver fills every slot")
        patches = [(p, layout.grid.subgrid(w)) for p, w in zip(layout.patch_ids, layout.windows, strict=True)]
        layout = make_layout(patches, [c for slots in written.values() for s in slots for c in s.claims()])
        mapping = map_slots(layout, written)
        if mapping is None:
            raise OutputError("the Zarr cube cannot be laid out from the units' manifests; re-run with --rebuild")
    try:
        store = prepare_cube(folder, layout)
        root = zarr.open_group(str(store), mode="r+", zarr_format=2)
        del root.attrs[LAYOUT_ATTR]  # from here on the store is changed in ways no later run could reuse
        copied = sum(_finish_group(root[m], store, folder.root, layout, slots, mapping[m], source, name)
                     for m, slots in written.items())  # fmt: skip
        shutil.rmtree(store / MARKERS_DIR, ignore_errors=True)
        root.attrs.update(_root_attrs(name, sorted(written), layout, content))
        zarr.consolidate_metadata(str(store), zarr_format=2)
        replace_folder(store, target, aside=target.with_name(f"{target.stem}{_OLD}{os.getpid()}{target.suffix}"))
    except OSError as exc:
        raise OutputError(
            f"cannot write the Zarr cube {target}: {exc}; check the folder is writable and has space"
        ) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # renamed into place, or half-finished (never reused)
    log.info("Zarr cube %s: %d patches copied by the driver, modalities %s", target, copied, ", ".join(sorted(written)))
    return target


def _finish_group(group: Any, store: Path, root: Path, layout: CubeLayout, slots: Sequence[WrittenSlot],
                  indexes: Sequence[int], source: ManifestLayers | EntryLayers, name: str) -> int:  # fmt: skip
    """Fill the group's slots whose marker does not match what the units wrote, compact its time axis to
    the written slots and write its small variables; return the patches copied here."""
    modality = slots[0].modality
    array = group[modality]
    tables = PatchTables(group, len(slots), layout.patch_ids)
    copied = 0
    for t, (slot, index) in enumerate(zip(slots, indexes, strict=True)):
        layers = [
            g for u in sorted(slot.units) for g in source.layers(u) if g.modality == modality and g.key == slot.key
        ]
        order = write_order(layers, layout.window_of)
        token = slot_token(layout.fingerprint, order)
        if read_marker(store, modality, index) != token:
            clear_marker(store, modality, index)
            copied += fill_slot(array, index, layout.chunk[0], order, layout.window_of, root)
            write_marker(store, modality, index, token, "driver")
        tables.write_row(t, order)
    tables.flush()
    _compact(store / modality / modality, list(indexes), array.shape[0])
    _write_coordinates(group, slots, layout)
    level = _level(root, slots)
    extra = ["band_kind", "band_units", "band_description", "spatial_ref", "product_ids", "platform", "patch_id",
             "patch_row_off", "patch_col_off", "patch_height", "patch_width", "valid_fraction", "cloud_fraction",
             "unit_id", "is_sample"]  # fmt: skip
    extra += [n for n in ("orbit_direction", "relative_orbit", "pair_time", "delta_t_hours") if n in group]
    array = group[modality]
    array.attrs.update({**data_attrs(modality, sorted(slots[0].bands)[0], level), "coordinates": " ".join(extra)})
    partners = sorted({p for s in slots for p in s.pair_modalities})
    group.attrs.update({"Conventions": "CF-1.8", "title": f"senprep {modality} patches of run '{name}'",
                        "source": f"senprep {__version__}", "senprep:modality": modality,
                        **({"senprep:pair_modality": partners[0]} if partners else {})})  # fmt: skip
    return copied


def _compact(array_dir: Path, keep: list[int], n_slots: int) -> None:
    """Keep only the time slots ``keep`` (ascending) of a Zarr v2 array, renumbered from 0: chunks of
    other slots deleted, the others renamed in order, the shape updated."""
    if keep == list(range(n_slots)):
        return
    new_of = {old: new for new, old in enumerate(keep)}
    chunks = sorted((int(p.name.split(".", 1)[0]), p) for p in array_dir.iterdir() if not p.name.startswith("."))
    for old, path in chunks:
        if old not in new_of:
            path.unlink()
    for old, path in chunks:
        if old in new_of and new_of[old] != old:
            path.rename(path.with_name(f"{new_of[old]}.{path.name.split('.', 1)[1]}"))
    meta_path = array_dir / ".zarray"
    meta = json.loads(meta_path.read_text())
    meta["shape"][0] = len(keep)
    meta_path.write_text(json.dumps(meta, indent=4))


def _joined(values: set[str]) -> str:
    return " ".join(sorted(v for v in values if v))


def _write_coordinates(group: Any, slots: Sequence[WrittenSlot], layout: CubeLayout) -> None:
    modality = slots[0].modality
    bands = sorted(slots[0].bands)[0]
    write_variable(group, "time", ["time"], time_values([s.time for s in slots]),
                   time_attrs(f"sensing time (UTC) of the {modality} acquisition", axis=True), NAT)  # fmt: skip
    write_bands(group, modality, bands)
    write_axes(group, layout.grid)
    write_variable(group, "product_ids", ["time"], np.array([_joined(s.products) for s in slots], dtype=object),
                   {"long_name": "ids of the products sensed at this time (space separated)"})  # fmt: skip
    write_variable(group, "platform", ["time"], np.array([_joined(s.platforms) for s in slots], dtype=object),
                   {"long_name": "platform"})  # fmt: skip
    w = layout.windows
    write_variable(group, "patch_id", ["patch"], np.array(layout.patch_ids, dtype=object), {"long_name": "patch id"})
    write_variable(group, "patch_row_off", ["patch"], np.array([x.row_off for x in w], dtype="int32"),
                   {"long_name": "first row of the patch in this cube"})  # fmt: skip
    write_variable(group, "patch_col_off", ["patch"], np.array([x.col_off for x in w], dtype="int32"),
                   {"long_name": "first column of the patch in this cube"})  # fmt: skip
    write_variable(group, "patch_height", ["patch"], np.array([x.height for x in w], dtype="int32"), {})
    write_variable(group, "patch_width", ["patch"], np.array([x.width for x in w], dtype="int32"), {})
    if modality == "S1" or any(s.orbit_directions for s in slots):
        write_variable(group, "orbit_direction", ["time"],
                       np.array([_joined(s.orbit_directions) for s in slots], dtype=object), {})  # fmt: skip
        orbits = [next(iter(s.relative_orbits)) or 0 if len(s.relative_orbits) == 1 else 0 for s in slots]
        write_variable(group, "relative_orbit", ["time"], np.array(orbits, dtype="int16"),
                       {"long_name": "relative orbit", "comment": "0: unknown or mixed"})  # fmt: skip
    partners = sorted({p for s in slots for p in s.pair_modalities})
    if partners:
        write_variable(group, "pair_time", ["time"], time_values([s.pair_time for s in slots]),
                       time_attrs(f"sensing time (UTC) of the paired {partners[0]}"), NAT)  # fmt: skip
        hours = [np.nan if s.pair_time is None else delta_hours(s.time, s.pair_time) for s in slots]
        write_variable(group, "delta_t_hours", ["time"], np.array(hours, dtype="float64"),
                       {"long_name": f"{partners[0]} minus {modality} sensing time", "units": "hours"})  # fmt: skip


def _level(root: Path, slots: Sequence[WrittenSlot]) -> str | None:
    """The processing level (L1C / L2A) a patch sidecar of the group names, if any."""
    sidecar = next((s.sidecar for s in slots if s.sidecar), None)
    if sidecar is None:
        return None
    try:
        level = json.loads((root / sidecar).read_text()).get("processing_level")
    except (OSError, ValueError):
        return None
    return str(level) if level else None


def _root_attrs(name: str, modalities: list[str], layout: CubeLayout, content: str) -> dict[str, Any]:
    return {
        "Conventions": "CF-1.8",
        "title": f"senprep patches of run '{name}'",
        "source": f"senprep {__version__}",
        "comment": "one group per modality: xarray.open_zarr(path, group='S2'), or xarray.open_datatree"
        "(path, engine='zarr')",
        "senprep:run": name,
        "senprep:modalities": modalities,
        "senprep:grid": layout.grid.to_dict(),
        "senprep:cube_version": CUBE_VERSION,
        "senprep:fingerprint": content,
    }
