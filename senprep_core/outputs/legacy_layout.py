"""The 2022 senprep folder layout (``output.layout: legacy``), made of hard links to a run's patch COGs.

A run with the legacy layout writes its normal outputs (``patches/``, sidecars, ``unit.json``
manifests, STAC) **and** this tree inside the same output folder, so scripts written for the 2022
Strathclyde tool find the files where they used to be::

    Sentinel_Patches/<name>/<YYYYMMDD>/ROI<n>/S1/Patches/S1_<s1id>_S2_<s2id>_<row>_<col>_<w>x<h>.tif
    Sentinel_Patches/<name>/<YYYYMMDD>/ROI<n>/S2/Patches/S1_<s1id>_S2_<s2id>_<row>_<col>_<w>x<h>.tif

Single-modality runs use the names the 2022 tool gave with ``--skip_secondary``::

    Sentinel_Patches/<name>/<YYYYMMDD>/ROI<n>/S2/Patches/S2_<s2id>_<row>_<col>_<w>x<h>.tif
    Sentinel_Patches/<name>/<YYYYMMDD>/ROI<n>/S1/Patches/S1_<s1id>_<row>_<col>_<w>x<h>.tif

What each part meant in 2022, and what it is here:

``<name>``
    The configuration's ``name``.
``<YYYYMMDD>``
    2022: the tool searched week by week (Monday to Sunday) and named the folder after the Monday of
    the week in which the primary product was found. Here: the Monday on or before the UTC date of
    the primary modality's sensing time (S2 for S2-primary pairs, S1 for S1-primary pairs).
``ROI<n>``
    2022: within one week, each selected product (or S1/S2 pair) covered a part of the ROI; the parts
    were sorted by their share of the ROI, largest first, and numbered from 1. Here: the work units
    (one acquisition or pair each) whose primary falls in that week, sorted by the share of the ROI
    their primary product's footprint covers, descending, then by primary sensing time, then by unit
    id, and numbered from 1 -- decided by the plan, before any unit runs, so each unit writes its own
    folder while the run goes on. (Outside a run, :func:`legacy_files` ranks by the number of patches
    instead.) A week with one acquisition has only ``ROI1``.
``<s1id>``, ``<s2id>``
    2022: the product UUID of the ESA SciHub. SciHub closed in 2023 and its UUIDs exist in no current
    catalogue, so here it is the ESA product name (without ``.SAFE``) with every ``_`` replaced by
    ``-``: the id holds no ``_``, so scripts that split names on ``_`` find the same fields at the
    same positions, and the replacement is reversible (product names hold no ``-``). A patch made
    from several products of one sensor joins their ids with ``+``; when that would make the name
    longer than 255 bytes, the first id is followed by ``+`` and 8 hex digits of a SHA-1 of all ids.
``<row>_<col>``
    Pixel offsets (not patch indices) of the patch's upper-left corner: 2022 stepped
    ``row_pixel_start`` / ``column_pixel_start`` over the ROI raster; here they are the patch
    window's offsets in the run's ROI grid (``window_in_roi_grid`` in the sidecar).
``<w>x<h>``
    Patch width x height in pixels (2022 wrote ``size[1]`` x ``size[0]``).
``S1|S2/Patches``
    The folder the 2022 tool's last version wrote patches to. Its intermediate ``Collocated/`` and
    ``Clipped/`` rasters and ``ROI<n>.geojson`` are not reproduced; the sidecars, STAC catalog and
    run report of the normal outputs hold the metadata.

Only the ``S1`` and ``S2`` files of an entry are placed (other keys, such as a multi-temporal
reference acquisition, have no 2022 counterpart). Every file is a hard link to the patch COG when
the file system allows it (no extra space), otherwise a copy; each is made under a temporary name and
renamed. In a run each unit places the links of its patches in its own ``ROI<n>`` folder as soon as
they exist (:func:`place_unit_links`), also when it is skipped as complete; at the end the driver only
removes the folders no complete unit of the run owns (:func:`prune_legacy`). Re-running leaves
correct files untouched, replaces outdated ones and removes legacy files of patches the run no longer has.
"""

from __future__ import annotations

import filecmp
import hashlib
import logging
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from senprep_core.atomic import temp_path_for
from senprep_core.errors import OutputError
from senprep_core.outputs.records import PatchEntry
from senprep_core.outputs.run_folder import LEGACY_DIR, RunFolder

log = logging.getLogger(__name__)

PATCHES_DIR = "Patches"
MODALITIES = ("S1", "S2")
_MAX_NAME_BYTES = 255
_LEGACY_NAME = re.compile(r"^S[12]_.+_\d+_\d+_\d+x\d+\.tif$")


@dataclass(frozen=True)
class LegacyFile:
    """One file of the legacy tree: where it goes and which patch COG it is (both relative to the run folder)."""

    path: str
    source: str


def monday_of(t: datetime) -> date:
    """The Monday on or before the UTC date of ``t`` (the 2022 tool's week folder)."""
    day = t.astimezone(timezone.utc).date() if t.tzinfo is not None else t.date()
    return day - timedelta(days=day.weekday())


def product_token(product_ids: list[str]) -> str:
    """The ``<s1id>`` / ``<s2id>`` part: product names with ``_`` as ``-``, several joined by ``+``."""
    names = [re.sub(r"(\.SAFE)?(\.zip)?$", "", p, flags=re.IGNORECASE).replace("_", "-") for p in product_ids]
    if not names:
        raise OutputError("a manifest entry lists no product id; re-run the unit to rebuild its manifest")
    return "+".join(names)


def _file_name(entry: PatchEntry) -> str:
    present = [p for m in MODALITIES if (p := entry.get(m)) is not None]
    tokens = {p.modality: product_token(list(p.product_ids)) for p in present}
    w, grid = entry.window, entry.grid
    tail = f"_{w.row_off}_{w.col_off}_{grid.width}x{grid.height}.tif"
    name = "_".join(f"{p.modality}_{tokens[p.modality]}" for p in present) + tail
    if len(name.encode()) > _MAX_NAME_BYTES:
        for p in present:
            if len(p.product_ids) > 1:
                digest = hashlib.sha1("\n".join(p.product_ids).encode()).hexdigest()[:8]
                tokens[p.modality] = f"{product_token(list(p.product_ids[:1]))}+{digest}"
        name = "_".join(f"{p.modality}_{tokens[p.modality]}" for p in present) + tail
    return name


@dataclass(frozen=True)
class UnitRank:
    """What orders a unit among those of its week: its primary's sensing time and its share of the ROI."""

    unit_id: str
    time: datetime
    share: float


def plan_folders(ranks: Sequence[UnitRank], name: str) -> dict[str, str]:
    """The ``ROI<n>`` folder (relative to the run folder) of each unit of run ``name``."""
    weeks: dict[date, list[tuple[float, datetime, str]]] = {}
    for r in ranks:
        weeks.setdefault(monday_of(r.time), []).append((-r.share, r.time, r.unit_id))
    folder: dict[str, str] = {}
    for monday, ranked in weeks.items():
        for n, (_, _, unit_id) in enumerate(sorted(ranked), start=1):
            folder[unit_id] = f"{LEGACY_DIR}/{name}/{monday:%Y%m%d}/ROI{n}"
    return folder


def unit_files(entries: Sequence[PatchEntry], folder: str) -> list[LegacyFile]:
    """The legacy files of one unit's ``entries`` in its ``ROI<n>`` ``folder``, sorted by path (pure).
    Raises :class:`OutputError` when two different patches would get the same legacy path."""
    out: dict[str, LegacyFile] = {}
    for entry in entries:
        file_name = _file_name(entry)
        for part in (p for m in MODALITIES if (p := entry.get(m)) is not None):
            path = f"{folder}/{part.modality}/{PATCHES_DIR}/{file_name}"
            if path in out and out[path].source != part.image:
                raise OutputError(
                    f"patches {out[path].source} and {part.image} would both become {path} in the legacy "
                    "layout; use the default layout for this run"
                )
            out[path] = LegacyFile(path, part.image)
    return [out[p] for p in sorted(out)]


def legacy_files(entries: Sequence[PatchEntry], name: str) -> list[LegacyFile]:
    """The legacy tree of ``entries`` for run ``name`` outside a run (units ranked in their week by the number
    of patches they wrote), sorted by path. Pure: reads no file."""
    units: dict[str, list[PatchEntry]] = {}
    for entry in entries:
        units.setdefault(entry.unit_id, []).append(entry)
    ranks = [UnitRank(u, e[0].primary.time, len(e)) for u, e in units.items()]
    folders = plan_folders(ranks, name)
    files = [f for unit_id, unit_entries in units.items() for f in unit_files(unit_entries, folders[unit_id])]
    return sorted(files, key=lambda f: f.path)


def legacy_tree(entries: Sequence[PatchEntry], name: str) -> list[str]:
    """The relative paths of the legacy tree of ``entries`` for run ``name``, sorted (pure)."""
    return [f.path for f in legacy_files(entries, name)]


def _place(source: Path, dest: Path) -> bool:
    """Make ``dest`` a hard link to ``source`` (else a copy of it); False when it already was one.

    A copy with the right bytes is kept as it is, but only when a hard link cannot be made.
    """
    if not source.is_file():
        raise OutputError(f"patch file {source} is missing; re-run without --rebuild to restore it")
    exists = dest.is_file()
    if exists and os.path.samefile(source, dest):
        return False
    tmp = temp_path_for(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, tmp)
        except OSError as exc:
            if exists and filecmp.cmp(source, dest, shallow=False):
                return False
            log.debug("cannot hard-link %s (%s); copying it", source, exc)
            shutil.copyfile(source, tmp)
        os.replace(tmp, dest)
    except OSError as exc:
        raise OutputError(f"cannot write the legacy layout file {dest}: {exc}") from exc
    finally:
        if tmp.exists():
            tmp.unlink()
    return True


def _remove_stale(root: Path, keep: set[Path]) -> int:
    """Delete legacy-named files below ``root`` that are not in ``keep``, then empty folders."""
    removed = 0
    if not root.is_dir():
        return removed
    for path in sorted(root.rglob("*.tif")):
        if path not in keep and _LEGACY_NAME.match(path.name) and path.is_file():
            path.unlink()
            removed += 1
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    if not any(root.iterdir()):
        root.rmdir()
    return removed


def place_unit_links(folder: RunFolder, entries: Sequence[PatchEntry], legacy_dir: str) -> int:
    """Make the legacy files of one unit's ``entries`` in its own folder ``legacy_dir`` (relative to the run
    folder) and remove legacy files there that the unit no longer has; return the files written."""
    files = unit_files(entries, legacy_dir)
    paths = [folder.root / f.path for f in files]
    written = sum(_place(folder.root / f.source, path) for f, path in zip(files, paths, strict=True))
    _remove_stale(folder.root / legacy_dir, set(paths))
    return written


def prune_legacy(folder: RunFolder, config_name: str, keep: set[str]) -> int:
    """Remove the legacy files of every ``ROI<n>`` folder of run ``config_name`` that is not in ``keep``
    (folders of the run's complete units, relative to the run folder); return the files removed."""
    root = folder.legacy_root / config_name
    if not root.is_dir():
        return 0
    removed = 0
    for week in sorted(p for p in root.iterdir() if p.is_dir()):
        for roi in sorted(p for p in week.iterdir() if p.is_dir() and re.fullmatch(r"ROI\d+", p.name)):
            if folder.relative(roi) not in keep:
                removed += _remove_stale(roi, set())
        if week.is_dir() and not any(week.iterdir()):
            week.rmdir()
    if not any(root.iterdir()):
        root.rmdir()
    return removed


def write_legacy_layout(folder: RunFolder, entries: Sequence[PatchEntry], config_name: str) -> list[Path]:
    """Write the legacy tree of ``entries`` into the run folder; return the paths of all its files, sorted.

    Files already right are not touched; legacy files of patches that are gone are removed.
    """
    outdir = folder.root
    files = legacy_files(entries, config_name)
    paths = [outdir / f.path for f in files]
    written = sum(_place(outdir / f.source, path) for f, path in zip(files, paths, strict=True))
    removed = _remove_stale(folder.legacy_root / config_name, set(paths))
    log.info("legacy layout: %d files (%d written, %d removed)", len(paths), written, removed)
    return paths
