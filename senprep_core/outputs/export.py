"""Pack a run folder (finished or partial) into one zip archive for sharing.

The archive holds every file of the run under a top folder named after the run folder, in sorted
order: ``run.json``, ``config.json``, ``catalog.json``, ``collections/``, ``items/*.json``,
``patches/<unit>/*``, and ``cube.zarr/`` and the legacy ``Sentinel_Patches/`` tree when the run wrote
them (the legacy files are hard links on disk but full copies in the archive).
Leftover temporary files (names holding ``.tmp-``), the folder's lock files and the archive itself
are left out. GeoTIFFs are
stored as they are (they are compressed already); the other files are deflated. The archive is
written to a temporary name and renamed, so a reader never sees half of it.
"""

from __future__ import annotations

import logging
import shutil
import zipfile
from pathlib import Path

from senprep_core.atomic import TMP_MARK, atomic_path
from senprep_core.errors import ExportError
from senprep_core.outputs.run_folder import LOCK_FILE, RUN_FILE, WRITERS_FILE, RunFolder

log = logging.getLogger(__name__)

_STORED_SUFFIXES = frozenset({".tif", ".tiff"})
_CHUNK = 1 << 20


def default_zip_path(outdir: Path) -> Path:
    """Where :func:`export_zip` writes by default: ``<outdir>/../<outdir name>.zip``."""
    root = Path(outdir).resolve()
    return root.parent / f"{root.name}.zip"


def _check_run_folder(root: Path) -> None:
    """Raise :class:`ExportError` unless ``root`` is a folder holding a ``run.json``."""
    if not root.is_dir():
        raise ExportError(f"{root} is not a folder; give the --outdir of a senprep run")
    if RunFolder(root).is_run():
        return
    runs = sorted(p.name for p in root.iterdir() if RunFolder(p).is_run())
    hint = (
        f"it holds runs in sub-folders ({', '.join(runs)}); export each of them"
        if runs
        else "give the --outdir of a senprep run"
    )
    raise ExportError(f"{root} is not a senprep run folder (it has no {RUN_FILE}); {hint}")


def _members(root: Path, skip: Path) -> list[tuple[str, Path]]:
    """(name relative to ``root`` in POSIX form, path) of the files to pack, sorted by name."""
    members = []
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if any(TMP_MARK in part for part in relative.parts) or not path.is_file():
            continue
        if relative.as_posix() in (LOCK_FILE, WRITERS_FILE):
            continue
        if path.resolve() == skip:
            continue
        members.append((relative.as_posix(), path))
    members.sort(key=lambda member: member[0])
    return members


def _compression_for(path: Path) -> int:
    return zipfile.ZIP_STORED if path.suffix.lower() in _STORED_SUFFIXES else zipfile.ZIP_DEFLATED


def _pack(archive: Path, top: str, members: list[tuple[str, Path]]) -> int:
    """Write ``members`` under ``top/`` into ``archive``; return how many files were packed.

    A file that disappears between listing and packing (a run still writing) is left out.
    """
    packed = 0
    with zipfile.ZipFile(archive, "w") as zf:
        for name, path in members:
            try:
                info = zipfile.ZipInfo.from_file(path, f"{top}/{name}", strict_timestamps=False)
                source = path.open("rb")
            except FileNotFoundError:
                log.warning("%s disappeared while exporting; left out of the archive", path)
                continue
            info.compress_type = _compression_for(path)
            with source, zf.open(info, "w") as target:
                shutil.copyfileobj(source, target, _CHUNK)
            packed += 1
    return packed


def export_zip(outdir: Path, dest: Path | None = None) -> Path:
    """Pack the run folder ``outdir`` into a zip archive and return the archive's path.

    ``dest`` defaults to :func:`default_zip_path` (next to the run folder). Paths inside the
    archive are relative, under a top folder named after the run folder, in sorted order.
    Temporary files left by an interrupted run, and the archive itself when ``dest`` lies inside
    ``outdir``, are not packed. An existing archive at ``dest`` is replaced atomically.

    Raises :class:`ExportError` when ``outdir`` is not a senprep run (no ``run.json``), when
    ``dest`` is a folder, or when the archive cannot be written.
    """
    root = Path(outdir).resolve()
    _check_run_folder(root)
    target = default_zip_path(root) if dest is None else Path(dest)
    if target.is_dir():
        raise ExportError(f"{target} is a folder; give the path of the zip file to write (e.g. {root.name}.zip)")
    members = _members(root, skip=target.resolve())
    try:
        with atomic_path(target) as tmp:
            packed = _pack(tmp, root.name, members)
    except OSError as exc:
        raise ExportError(
            f"cannot export {root} to {target} ({exc}); check the permissions and the free space, "
            "or write the zip elsewhere (--output)"
        ) from exc
    log.info("exported %d files of %s to %s", packed, root, target)
    return target
