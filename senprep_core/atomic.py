"""Nothing half-written: every output goes to a temporary name in the same folder, then is renamed."""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

TMP_MARK = ".tmp-"


def temp_path_for(path: Path) -> Path:
    """A sibling temporary name of this process and thread that keeps the suffix (GDAL picks drivers by suffix)."""
    return path.with_name(f"{path.stem}{TMP_MARK}{os.getpid()}-{threading.get_ident()}{path.suffix}")


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; rename it onto ``path`` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` atomically unless the file already holds exactly that.

    Returns True when the file was (re)written. Skipping identical content keeps re-runs from
    touching outputs (their mtimes stay put).
    """
    if path.exists() and path.read_bytes() == data:
        return False
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return True


_ORJSON_OPTIONS = (
    orjson.OPT_INDENT_2
    | orjson.OPT_SORT_KEYS
    | orjson.OPT_APPEND_NEWLINE
    | orjson.OPT_NON_STR_KEYS
    | orjson.OPT_PASSTHROUGH_DATETIME  # datetimes and dataclasses go through ``str``, as they always did
    | orjson.OPT_PASSTHROUGH_DATACLASS
)


def dump_json(obj: Any) -> bytes:
    """Stable JSON bytes (sorted keys, 2-space indent, UTF-8, trailing newline); NaN is written as null.

    orjson writes the thousands of STAC items, sidecars and manifests of a large run ~10x faster than
    the standard library's indenting encoder, which is pure Python.
    """
    return orjson.dumps(obj, default=str, option=_ORJSON_OPTIONS)


def write_json_atomic(path: Path, obj: Any) -> bool:
    """Write JSON atomically; unchanged content is not rewritten."""
    return write_bytes_atomic(path, dump_json(obj))


def replace_folder(work: Path, final: Path, aside: Path | None = None, done_marker: str | None = None) -> Path:
    """Rename the finished folder ``work`` onto ``final`` and return ``final``.

    An existing ``final`` is first renamed to ``aside`` (default: a unique ``.tmp-old-`` sibling) and
    removed afterwards, so readers see the old folder or the new one, never a mix. With ``done_marker``,
    a ``final`` that another process completed in the meantime (it holds that file) wins: ``work`` is
    dropped instead of raising.
    """
    old = None
    if final.exists():
        old = aside or final.with_name(f"{TMP_MARK}old-{uuid.uuid4().hex[:8]}-{final.name}")
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
    try:
        os.replace(work, final)
    except OSError:
        if done_marker is None or not (final / done_marker).is_file():
            raise
        shutil.rmtree(work, ignore_errors=True)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete temporary files left by a killed run below ``folder``; return what was removed."""
    removed: list[Path] = []
    if not folder.exists():
        return removed
    for p in folder.rglob(f"*{TMP_MARK}*"):
        if p.is_file():
            p.unlink()
            removed.append(p)
    return removed
