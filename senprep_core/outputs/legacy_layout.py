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
    (one acquisition or pair each) whose primary falls in that week, sorted by the number of patches
    written (the ROI area they cover) descending, then by primary sensing time, then by unit id,
    and numbered from 1. A week with one acquisition has only ``ROI1``.
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
renamed. Re-running leaves correct files untouched, replaces outdated ones and removes legacy files
of patches the run no longer has.
"""

from __future__ import annotations

import filecmp
import hashlib
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from senprep_core.errors import OutputError
from senprep_core.outputs.atomic import temp_path_for
from senprep_core.timeutil import parse_utc
from senprep_core.units import run_entries

log = logging.getLogger(__name__)

LEGACY_ROOT = "Sentinel_Patches"
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


def _modalities(entry: dict[str, Any]) -> dict[str, dict[str, Any]]:
    mods = entry.get("modalities")
    if mods:
        return dict(mods)
    return {entry.get("modality", "S2"): entry}


def _primary(entry: dict[str, Any], mods: dict[str, dict[str, Any]]) -> str:
    pair = entry.get("pair") or {}
    primary = pair.get("primary") or entry.get("modality")
    return str(primary) if primary in mods else next(iter(mods))


def _describe(entry: dict[str, Any]) -> str:
    return f"{entry.get('unit_id', '?')}/{entry.get('patch_id', '?')}"


def _file_name(entry: dict[str, Any], mods: dict[str, dict[str, Any]]) -> str:
    window = entry.get("window")
    if not window or "row_off" not in window or "col_off" not in window:
        raise OutputError(
            f"manifest entry {_describe(entry)} has no patch window (row_off/col_off); read the run's entries "
            "with senprep_core.outputs.legacy_layout.read_run_entries(), which takes it from the sidecars"
        )
    grid = entry["grid"]
    present = [m for m in MODALITIES if m in mods]
    tokens = {m: product_token(list(mods[m].get("product_ids") or [])) for m in present}
    tail = f"_{int(window['row_off'])}_{int(window['col_off'])}_{int(grid['width'])}x{int(grid['height'])}.tif"
    name = "_".join(f"{m}_{tokens[m]}" for m in present) + tail
    if len(name.encode()) > _MAX_NAME_BYTES:
        for m in present:
            ids = list(mods[m].get("product_ids") or [])
            if len(ids) > 1:
                digest = hashlib.sha1("\n".join(ids).encode()).hexdigest()[:8]
                tokens[m] = f"{product_token(ids[:1])}+{digest}"
        name = "_".join(f"{m}_{tokens[m]}" for m in present) + tail
    return name


def legacy_files(entries: list[dict[str, Any]], name: str) -> list[LegacyFile]:
    """The legacy tree of ``entries`` (manifest entries with a ``window``) for run ``name``, sorted by path.

    Pure: reads no file. Raises :class:`OutputError` when an entry lacks what the names need, or when two
    different patches would get the same legacy path.
    """
    units: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        units.setdefault(str(entry["unit_id"]), []).append(entry)
    weeks: dict[date, list[tuple[int, datetime, str]]] = {}
    for unit_id, unit_entries in units.items():
        first = unit_entries[0]
        mods = _modalities(first)
        t = parse_utc(str(mods[_primary(first, mods)].get("sensing_time") or first["sensing_time"]))
        weeks.setdefault(monday_of(t), []).append((-len(unit_entries), t, unit_id))
    folder: dict[str, str] = {}
    for monday, ranked in weeks.items():
        for n, (_, _, unit_id) in enumerate(sorted(ranked), start=1):
            folder[unit_id] = f"{LEGACY_ROOT}/{name}/{monday:%Y%m%d}/ROI{n}"
    out: dict[str, LegacyFile] = {}
    for unit_id, unit_entries in units.items():
        for entry in unit_entries:
            mods = _modalities(entry)
            file_name = _file_name(entry, mods)
            for modality in MODALITIES:
                source = entry["files"].get(modality)
                if modality not in mods or not source:
                    continue
                path = f"{folder[unit_id]}/{modality}/{PATCHES_DIR}/{file_name}"
                if path in out and out[path].source != source:
                    raise OutputError(
                        f"patches {out[path].source} and {source} would both become {path} in the legacy layout; "
                        "use the default layout for this run"
                    )
                out[path] = LegacyFile(path, str(source))
    return [out[p] for p in sorted(out)]


def legacy_tree(entries: list[dict[str, Any]], name: str) -> list[str]:
    """The relative paths of the legacy tree of ``entries`` for run ``name``, sorted (pure)."""
    return [f.path for f in legacy_files(entries, name)]


def _window_from_sidecar(outdir: Path, entry: dict[str, Any]) -> dict[str, Any] | None:
    for key, rel in entry.get("files", {}).items():
        if not key.endswith("_metadata"):
            continue
        try:
            sidecar = json.loads((outdir / rel).read_text())
        except (OSError, ValueError):
            continue
        window = sidecar.get("window_in_roi_grid")
        if window:
            return dict(window)
    return None


def with_windows(outdir: Path, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``entries`` where each lacking a ``window`` gets the one its sidecar records (the inputs stay unchanged)."""
    out = []
    for entry in entries:
        if not entry.get("window"):
            window = _window_from_sidecar(Path(outdir), entry)
            if window is not None:
                entry = {**entry, "window": window}
        out.append(entry)
    return out


def read_run_entries(outdir: Path) -> list[dict[str, Any]]:
    """The manifest entries of every complete unit of the run in ``outdir`` (with their patch windows)."""
    return with_windows(Path(outdir), run_entries(Path(outdir)))


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


def write_legacy_layout(outdir: Path, entries: list[dict[str, Any]], config_name: str) -> list[Path]:
    """Write the legacy tree of ``entries`` below ``outdir``; return the paths of all its files, sorted.

    Entries without a ``window`` take it from their sidecar. Files already right are not touched;
    legacy files of patches that are gone are removed.
    """
    outdir = Path(outdir)
    files = legacy_files(with_windows(outdir, entries), config_name)
    paths = [outdir / f.path for f in files]
    written = sum(_place(outdir / f.source, path) for f, path in zip(files, paths, strict=True))
    removed = _remove_stale(outdir / LEGACY_ROOT / config_name, set(paths))
    log.info("legacy layout: %d files (%d written, %d removed)", len(paths), written, removed)
    return paths
