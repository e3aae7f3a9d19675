"""The run folder: the one module that knows its file names and formats.

::

    .senprep.lock                    the run lock: who runs here now (or ran last)
    .senprep-writers.lock            shared by the processes writing units (see folder_lock)
    run.json                         the run report
    config.json                      the run's configuration (modern form)
    patches/<unit_id>/unit.json      a complete unit's manifest, written last
    patches/<unit_id>/<patch_id>_<modality>.tif|.json    patch COGs and their sidecars
    items/<unit_id>_<patch_id>.json                      the patch's STAC item (written by its unit)
    catalog.json, collections/                            the STAC catalog and collections (indexes)
    cube.zarr/                       the Zarr cube
    cube-building.zarr/              the cube being filled by the units of a running run
    Sentinel_Patches/                the 2022 layout (hard links)

A run holds the folder's lock for its whole life (:meth:`RunFolder.lock`); every file is written to a
temporary name and renamed; a unit is complete only when its manifest lists every file it wrote with
a size and checksum that still match (:meth:`RunFolder.check_unit`).
"""

from __future__ import annotations

import contextlib
import errno
import glob
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson
import xxhash

from senprep_core.atomic import TMP_MARK, dump_json, write_bytes_atomic, write_json_atomic
from senprep_core.errors import DiskFullError, OutputError
from senprep_core.geo.grid import TargetGrid
from senprep_core.outputs.cog import write_cog
from senprep_core.outputs.folder_lock import FolderLock, LockHolder, current_holder, shared_lock, wait_exclusive
from senprep_core.outputs.records import MANIFEST_FORMAT, FileRecord, PatchEntry, UnitManifest, file_digest

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
PLAN_FILE = "plan.json"  # a running run's plan (folded into run.json at its end)
JOURNAL_FILE = "run-units.jsonl"  # a running run's finished units, one JSON line each
CONFIG_FILE = "config.json"
LOCK_FILE = ".senprep.lock"
WRITERS_FILE = ".senprep-writers.lock"
PATCHES_DIR = "patches"
UNIT_FILE = "unit.json"
CATALOG_FILE = "catalog.json"
ITEMS_DIR = "items"
COLLECTIONS_DIR = "collections"
CUBE_DIR = "cube.zarr"
CUBE_STAGING_DIR = "cube-building.zarr"
LEGACY_DIR = "Sentinel_Patches"
#: Every name a run folder may hold at its top level.
RUN_NAMES = frozenset({RUN_FILE, PLAN_FILE, JOURNAL_FILE, CONFIG_FILE, LOCK_FILE, WRITERS_FILE, PATCHES_DIR,
                       CATALOG_FILE, ITEMS_DIR, COLLECTIONS_DIR, CUBE_DIR, CUBE_STAGING_DIR, LEGACY_DIR})  # fmt: skip

UnitState = Literal["complete", "missing", "stale", "damaged"]
_ITEM_NAME = re.compile(r"(.+)_r\d+_c\d+\.json")


@dataclass(frozen=True)
class UnitCheck:
    """Whether a unit's files are all there as its manifest lists them.

    ``complete``: manifest for this config, every file verified; ``missing``: no usable manifest;
    ``stale``: made with another config; ``damaged``: a listed file is missing, truncated or altered.
    """

    unit_id: str
    state: UnitState
    problems: tuple[str, ...] = ()
    manifest: UnitManifest | None = None

    @property
    def complete(self) -> bool:
        return self.state == "complete"


@dataclass(frozen=True)
class RunSummary:
    """What ``senprep status`` shows."""

    name: str | None
    outdir: Path
    status: str
    counts: dict[str, int]
    failed: tuple[dict[str, Any], ...]
    to_redo: tuple[str, ...]
    holder: LockHolder | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "outdir": str(self.outdir),
            "status": self.status,
            "counts": self.counts,
            "failed": list(self.failed),
            "to_redo": list(self.to_redo),
            "holder": None if self.holder is None else self.holder.describe(),
        }


class RunFolder:
    """A run's output folder: its paths, its lock, its unit manifests and its report."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # ----- paths -----------------------------------------------------------------------------------

    @property
    def run_file(self) -> Path:
        return self.root / RUN_FILE

    @property
    def config_file(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def catalog_file(self) -> Path:
        return self.root / CATALOG_FILE

    @property
    def collections_dir(self) -> Path:
        return self.root / COLLECTIONS_DIR

    @property
    def cube_path(self) -> Path:
        return self.root / CUBE_DIR

    @property
    def cube_staging_path(self) -> Path:
        """Where the units of a running run fill the cube; renamed to :attr:`cube_path` at the run's end."""
        return self.root / CUBE_STAGING_DIR

    @property
    def legacy_root(self) -> Path:
        return self.root / LEGACY_DIR

    @property
    def patches_dir(self) -> Path:
        return self.root / PATCHES_DIR

    def unit_dir(self, unit_id: str) -> Path:
        """Where a unit's patches and manifest live."""
        return self.patches_dir / unit_id

    def patch_files(self, unit_id: str, patch_id: str, modality: str) -> tuple[Path, Path]:
        """The COG and the JSON sidecar of one patch of one modality."""
        stem = f"{patch_id}_{modality}"
        folder = self.unit_dir(unit_id)
        return folder / f"{stem}.tif", folder / f"{stem}.json"

    @property
    def items_dir(self) -> Path:
        return self.root / ITEMS_DIR

    def item_file(self, unit_id: str, patch_id: str) -> Path:
        """The STAC item of one patch."""
        return self.items_dir / f"{unit_id}_{patch_id}.json"

    def unit_items(self, unit_id: str) -> list[Path]:
        """The item files of a unit present in the items folder (whatever made them)."""
        if not self.items_dir.is_dir():
            return []
        own = re.compile(rf"{re.escape(unit_id)}_r\d+_c\d+\.json")
        return [p for p in self.items_dir.glob(f"{glob.escape(unit_id)}_r*_c*.json") if own.fullmatch(p.name)]

    def item_unit(self, name: str) -> str | None:
        """The unit an item file name belongs to (``<unit_id>_r000_c000.json``), None for another name."""
        m = _ITEM_NAME.fullmatch(name)
        return m.group(1) if m else None

    def relative(self, path: Path) -> str:
        """``path`` relative to the run folder, as manifests and STAC items store it."""
        return path.relative_to(self.root).as_posix()

    # ----- the folder and its lock -------------------------------------------------------------------

    def is_run(self) -> bool:
        """True when the folder holds a run report (it is a senprep run folder)."""
        return self.run_file.is_file()

    def check_usable(self) -> None:
        """Refuse a folder that is neither empty nor a senprep run, or that cannot be written (nothing is touched)."""
        if not str(self.root).strip():
            raise OutputError("the output folder is an empty path; give --outdir a folder name")
        if not self.root.exists():
            return
        if not self.root.is_dir():
            raise OutputError(f"output folder {self.root} is a file; choose a folder")
        if not os.access(self.root, os.W_OK | os.X_OK) or _read_only_mount(self.root):
            raise OutputError(f"output folder {self.root} cannot be written (permission denied or a read-only file "
                              "system); choose a folder you can write")  # fmt: skip
        foreign = sorted(p.name for p in self.root.iterdir() if p.name not in RUN_NAMES)
        if foreign and not self.is_run():
            raise OutputError(f"output folder {self.root} is not empty and is not a senprep run ({foreign[0]} is "
                              "there); choose a new folder")  # fmt: skip

    def create(self) -> bool:
        """Make the folder (and its parents); True when it did not exist."""
        existed = self.root.is_dir()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create output folder {self.root}: {exc}") from exc
        return not existed

    def free_bytes(self) -> int:
        """Free bytes on the file system holding the folder (or its nearest existing parent)."""
        path = self.root
        while not path.exists() and path != path.parent:
            path = path.parent
        return shutil.disk_usage(path).free

    def lock(self, run_name: str) -> FolderLock:
        """The folder's run lock (not yet taken): see :meth:`FolderLock.acquire`."""
        return FolderLock(self.root / LOCK_FILE, run_name)

    def holder(self) -> LockHolder | None:
        """The run holding the folder now, None when no run does."""
        return current_holder(self.root / LOCK_FILE)

    def writer_session(self) -> contextlib.AbstractContextManager[None]:
        """Held by a process while it writes a unit here (so a later run can wait for stragglers)."""
        return shared_lock(self.root / WRITERS_FILE)

    def wait_for_writers(self, timeout: float, on_wait: Callable[[], None] | None = None) -> bool:
        """Wait until no process writes a unit here (e.g. workers of a killed run finishing); False on timeout."""
        if not (self.root / WRITERS_FILE).exists():
            return True
        return wait_exclusive(self.root / WRITERS_FILE, timeout, on_wait)

    def remove_temps(self) -> list[Path]:
        """Delete temporary files below the folder; only while holding its lock and with no writer left."""
        removed: list[Path] = []
        if not self.root.is_dir():
            return removed
        for p in self.root.rglob(f"*{TMP_MARK}*"):
            if p.is_file():
                p.unlink(missing_ok=True)
                removed.append(p)
            elif p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
        return removed

    def clear(self, run_name: str = "", writers_timeout: float = 10.0) -> list[str]:
        """Delete a run's files so the folder can take a fresh run (an "overwrite"); returns the names removed.

        Only a senprep run folder (it has ``run.json`` and nothing senprep did not write) that no run holds:
        the folder's lock is taken for the deletion (:class:`RunFolderBusyError` names the holder) and the
        lock files stay. Raises :class:`OutputError`, deleting nothing, for any other folder."""
        if not self.is_run():
            raise OutputError(f"{self.root} holds no senprep run (no {RUN_FILE}): nothing is deleted")
        foreign = sorted(p.name for p in self.root.iterdir() if p.name not in RUN_NAMES and TMP_MARK not in p.name)
        if foreign:
            raise OutputError(f"{self.root} holds files senprep did not write ({foreign[0]}): nothing is deleted; "
                              "choose another folder")  # fmt: skip
        lock = self.lock(run_name)
        lock.acquire()
        try:
            if not self.wait_for_writers(writers_timeout):
                raise OutputError(f"processes of an earlier run are still writing into {self.root}: nothing is deleted")
            removed = []
            for path in sorted(self.root.iterdir()):
                if path.name in (LOCK_FILE, WRITERS_FILE):
                    continue
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
                removed.append(path.name)
            return removed
        finally:
            lock.release()

    def remove_if_unused(self) -> None:
        """Remove the folder when it holds nothing but lock files (a run that failed before writing)."""
        if not self.root.is_dir():
            return
        if all(p.name in (LOCK_FILE, WRITERS_FILE) for p in self.root.iterdir()):
            shutil.rmtree(self.root, ignore_errors=True)

    # ----- patches and units ----------------------------------------------------------------------------

    def write_patch(
        self,
        unit_id: str,
        patch_id: str,
        modality: str,
        data: np.ndarray,
        grid: TargetGrid,
        bands: Sequence[str],
        sidecar: dict[str, Any],
        compress: str,
    ) -> tuple[FileRecord, FileRecord]:
        """Write one patch's COG and sidecar; return their records (size and checksum)."""
        tif, meta = self.patch_files(unit_id, patch_id, modality)
        body = dump_json(sidecar)
        with self._disk_full_is_clear(tif):
            write_cog(tif, data, grid, bands, tags={"senprep_patch": patch_id, "senprep_modality": modality},
                      compress=compress)  # fmt: skip
            write_bytes_atomic(meta, body)
        image = FileRecord(self.relative(tif), tif.stat().st_size, file_digest(tif))
        return image, FileRecord(self.relative(meta), len(body), xxhash.xxh3_128(body).hexdigest())

    def commit_unit(self, manifest: UnitManifest) -> None:
        """Write the manifest last (it marks the unit complete), then drop the unit's files it does not list."""
        folder = self.unit_dir(manifest.unit_id)
        with self._disk_full_is_clear(folder / UNIT_FILE):
            folder.mkdir(parents=True, exist_ok=True)
            write_json_atomic(folder / UNIT_FILE, manifest.to_dict())
        keep = {UNIT_FILE} | {Path(f.path).name for f in manifest.files}
        for stale in [*folder.iterdir(), *self.unit_items(manifest.unit_id)]:
            if stale.is_file() and stale.name not in keep:
                stale.unlink(missing_ok=True)

    def read_manifest(self, unit_id: str, products: bool = True) -> UnitManifest | None:
        """A unit's manifest as written (not verified; without its product records when ``products`` is
        False); None when it is missing or unreadable."""
        path = self.unit_dir(unit_id) / UNIT_FILE
        try:
            return UnitManifest.from_dict(orjson.loads(path.read_bytes()), products)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, OutputError) as exc:
            log.info("unit manifest %s cannot be used (%s): the unit is redone", path, exc)
            return None

    def check_unit(self, unit_id: str, fingerprint: str | None = None) -> UnitCheck:
        """Verify a unit: its manifest for ``fingerprint`` (any when None) and every file's size and checksum."""
        path = self.unit_dir(unit_id) / UNIT_FILE
        if not path.exists():
            return UnitCheck(unit_id, "missing")
        try:
            data = orjson.loads(path.read_bytes())
        except (OSError, ValueError) as exc:
            return UnitCheck(unit_id, "damaged", (f"{self.relative(path)} cannot be read ({exc})",))
        if data.get("format") != MANIFEST_FORMAT:
            return UnitCheck(unit_id, "stale", (f"{self.relative(path)} was written by an older senprep",))
        try:
            manifest = UnitManifest.from_dict(data)
        except OutputError as exc:
            return UnitCheck(unit_id, "damaged", (str(exc),))
        if fingerprint is not None and manifest.fingerprint != fingerprint:
            return UnitCheck(unit_id, "stale", ("made with another configuration",), manifest)
        problems = tuple(p for f in manifest.files if (p := self._file_problem(f)) is not None)
        return UnitCheck(unit_id, "damaged" if problems else "complete", problems, manifest)

    def _file_problem(self, record: FileRecord) -> str | None:
        path = self.root / record.path
        try:
            size = path.stat().st_size
        except OSError:
            return f"{record.path} is missing"
        if size != record.size:
            return f"{record.path} has {size} bytes instead of {record.size}"
        if file_digest(path) != record.digest:
            return f"{record.path} was altered (its checksum differs)"
        return None

    def discard_unfinished(self, unit_id: str) -> None:
        """Remove the unit's files that its manifest does not list (nothing half-done stays)."""
        folder = self.unit_dir(unit_id)
        manifest = self.read_manifest(unit_id)
        keep = set() if manifest is None else {UNIT_FILE} | {Path(f.path).name for f in manifest.files}
        present = [*folder.iterdir()] if folder.is_dir() else []
        for path in [*present, *self.unit_items(unit_id)]:
            if path.is_file() and path.name not in keep:
                path.unlink(missing_ok=True)
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()

    def unit_ids(self) -> list[str]:
        """The units that have a folder here, sorted."""
        if not self.patches_dir.is_dir():
            return []
        return sorted(p.name for p in self.patches_dir.iterdir() if p.is_dir())

    def manifests(self) -> Iterator[UnitManifest]:
        """Every unit's manifest that can be read, in unit order (not verified)."""
        for unit_id in self.unit_ids():
            manifest = self.read_manifest(unit_id)
            if manifest is not None:
                yield manifest

    def entries(self) -> list[PatchEntry]:
        """The patch entries of every unit with a manifest, in unit order (what the cube, the legacy layout
        and the ML loader are built from)."""
        return [e for m in self.manifests() for e in m.patches]

    def verify(self, unit_ids: Sequence[str] | None = None, fingerprint: str | None = None) -> list[UnitCheck]:
        """Check every unit (those with a folder, plus ``unit_ids``)."""
        ids = sorted(set(self.unit_ids()) | set(unit_ids or ()))
        return [self.check_unit(u, fingerprint) for u in ids]

    # ----- the run report and config ----------------------------------------------------------------

    def write_config(self, data: dict[str, Any]) -> None:
        write_json_atomic(self.config_file, data)

    def write_report(self, data: dict[str, Any]) -> None:
        """Write the whole report (at a run's end): the journal and plan of the running run are then folded in."""
        with self._disk_full_is_clear(self.run_file):
            write_json_atomic(self.run_file, data)
        for name in (JOURNAL_FILE, PLAN_FILE):
            (self.root / name).unlink(missing_ok=True)

    def start_report(self, summary: dict[str, Any], plan: dict[str, Any]) -> None:
        """A run begins: its plan (written once), an empty journal, and the compact summary as ``run.json``."""
        with self._disk_full_is_clear(self.run_file):
            write_json_atomic(self.root / PLAN_FILE, plan)
            (self.root / JOURNAL_FILE).write_bytes(b"")
            write_json_atomic(self.run_file, summary)

    def record_unit(self, row: dict[str, Any], summary: dict[str, Any]) -> None:
        """A unit finished: one line appended to the journal and the compact summary rewritten (both small)."""
        with self._disk_full_is_clear(self.root / JOURNAL_FILE):
            with open(self.root / JOURNAL_FILE, "ab") as journal:
                journal.write(orjson.dumps(row) + b"\n")
            write_json_atomic(self.run_file, summary)

    @contextlib.contextmanager
    def _disk_full_is_clear(self, path: Path) -> Iterator[None]:
        """A full disk while writing ``path`` raises :class:`DiskFullError` saying so (the write left nothing)."""
        try:
            yield
        except OSError as exc:
            if exc.errno != errno.ENOSPC and "No space left" not in str(exc):
                raise
            raise DiskFullError(
                f"the disk holding {self.root} is full ({self.free_bytes() >> 20} MB free) while "
                f"writing {path.name}; free some space and run again: complete units are kept"
            ) from exc

    def read_report(self) -> dict[str, Any]:
        """``run.json``; raises :class:`OutputError` when this is not a run folder."""
        try:
            data = orjson.loads(self.run_file.read_bytes())
        except (OSError, ValueError) as exc:
            raise OutputError(f"{self.run_file} is missing or unreadable ({exc}); give the folder of a senprep "
                              "run") from exc  # fmt: skip
        if not isinstance(data, dict):
            raise OutputError(f"{self.run_file} is not a senprep run report; give the folder of a senprep run")
        if "units" not in data:  # a run going on (or killed): the plan and the journal hold the rest
            data = {**data, "plan": self._read_json(PLAN_FILE, {}), "units": self._journal_rows()}
        return data

    def _read_json(self, name: str, default: Any) -> Any:
        try:
            return orjson.loads((self.root / name).read_bytes())
        except (OSError, ValueError):
            return default

    def _journal_rows(self) -> list[dict[str, Any]]:
        """The journal's unit rows, the last one of each unit (a line cut by a crash is left out)."""
        rows: dict[str, dict[str, Any]] = {}
        try:
            lines = (self.root / JOURNAL_FILE).read_bytes().splitlines()
        except OSError:
            return []
        for line in lines:
            try:
                row = orjson.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and "unit_id" in row:
                rows[str(row["unit_id"])] = row
        return [rows[k] for k in sorted(rows)]

    def summary(self) -> RunSummary:
        """The run's status and counts; a report still saying "running" for a run that is gone says
        "interrupted", and a live run is named with its holder."""
        data = self.read_report()
        units = {u["unit_id"]: u for u in data.get("units", [])}
        planned = [u["unit_id"] for u in data.get("plan", {}).get("units", [])]
        done = ("done", "skipped", "rejected")
        holder = self.holder()
        status = str(data.get("status"))
        if status == "running" and holder is None:
            status = "interrupted"
        return RunSummary(
            name=data.get("name"),
            outdir=self.root,
            status=status,
            counts=dict(data.get("counts", {})),
            failed=tuple(u for u in units.values() if u.get("status") == "failed"),
            to_redo=tuple(u for u in planned if units.get(u, {}).get("status") not in done),
            holder=holder,
        )


def _read_only_mount(path: Path) -> bool:
    """True when ``path`` lies on a file system mounted read-only (root may write anywhere else)."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # pragma: no cover - no statvfs on this platform
        return False
