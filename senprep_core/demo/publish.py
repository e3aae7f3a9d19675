"""Writing a synthetic product safely: build under a temporary name, zip if asked, rename when complete."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import zipfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

log = logging.getLogger(__name__)


def remove(path: Path) -> None:
    """Delete a file or a folder tree if it exists."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


def zip_folder(folder: Path, target: Path, date: datetime) -> None:
    """Zip ``folder`` as ``<folder name>/...`` entries (stored, fixed timestamps: identical bytes each time)."""
    stamp = (max(date.year, 1980), date.month, date.day, date.hour, date.minute, date.second)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zinfo = zipfile.ZipInfo(f"{folder.name}/{path.relative_to(folder).as_posix()}", date_time=stamp)
                zinfo.external_attr = 0o644 << 16
                zf.writestr(zinfo, path.read_bytes())


#: Bumped whenever the generator writes products differently (their names stay the same, so the default demo
#: folders carry it: a cache made by an older generator is not reused).
GENERATOR_VERSION = 2


def publish_product(
    folder: Path, product_id: str, build_safe: Callable[[Path], None], as_zip: bool, date: datetime
) -> Path:
    """Write ``<product_id>.SAFE`` (or ``.zip``) into ``folder`` with ``build_safe``; return its path.

    When the final path exists nothing is written. Work happens under ``<name>.tmp-<pid>-<thread>`` and is
    renamed when complete, so an interrupted run never leaves a partial product under the final name.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = product_id + (".zip" if as_zip else ".SAFE")
    final = folder / name
    if final.exists():
        log.debug("demo product %s exists, skipping", final)
        return final
    tmp = folder / f"{name}.tmp-{os.getpid()}-{threading.get_ident()}"
    remove(tmp)
    log.info("generating demo product %s", name)
    try:
        if as_zip:
            staging = tmp.with_name(tmp.name + ".d")
            remove(staging)
            try:
                build_safe(staging / f"{product_id}.SAFE")
                zip_folder(staging / f"{product_id}.SAFE", tmp, date)
            finally:
                remove(staging)
        else:
            build_safe(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.exists():
                raise
            log.debug("another process finished %s first", final)
    finally:
        remove(tmp)
    return final
