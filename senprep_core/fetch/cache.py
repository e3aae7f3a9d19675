"""The shared download cache: where products go, and how concurrent runs agree on who fetches a file.

Layout: ``<root>/<provider>/<product id>/<name>``. Next to each file the downloader keeps
``<name>.part`` (the transfer in progress, resumable), ``<name>.lock`` (an inter-process lock held while
one process fetches the file: others wait, then find it complete) and ``<name>.verified`` (a small JSON
marker written once size, checksum and zip integrity were checked, so later runs trust the file without
re-hashing it).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from senprep_core.errors import MetadataError
from senprep_core.fetch.checksum import Checksum, file_matches

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: locks only work inside one process there
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

CACHE_ENV = "SENPREP_CACHE"


def default_cache_dir() -> Path:
    """``$SENPREP_CACHE`` if set, else ``$XDG_CACHE_HOME/senprep`` (``~/.cache/senprep`` by default)."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "senprep"


def _check_part(part: str, what: str) -> None:
    if not part or part in (".", "..") or "\\" in part or "\x00" in part or (":" in part and os.name == "nt"):
        raise MetadataError(
            f"unsafe {what} {part!r} for the download cache: names may not be empty, '.', '..' or hold "
            "backslashes; the catalogue answered an unexpected name"
        )


def safe_cache_name(name: str, what: str = "product id") -> str:
    """``name`` when it can name a file or folder inside the cache (no ``/``, ``\\``, ``..`` or empty), else
    :class:`MetadataError`: catalogue-supplied ids must never lead outside the cache."""
    if "/" in name:
        raise MetadataError(f"unsafe {what} {name!r} for the download cache: it may not contain '/'")
    _check_part(name, what)
    return name


@dataclass(frozen=True)
class ProductCache:
    """The cache folder shared by all runs: ``path_for(provider, product_id, name)`` gives where a file goes."""

    root: Path

    def path_for(self, provider: str, product_id: str, name: str) -> Path:
        """``<root>/<provider>/<product_id>/<name>``; ``name`` may be a relative path (``a/b/c.jp2``).

        Raises MetadataError for names that would leave the cache (``..``, absolute paths, empty parts).
        """
        for value, what in ((provider, "provider name"), (product_id, "product id")):
            if "/" in value:
                raise MetadataError(f"unsafe {what} {value!r} for the download cache: it may not contain '/'")
            _check_part(value, what)
        relative = PurePosixPath(name)
        if relative.is_absolute() or name.startswith("/") or not relative.parts:
            raise MetadataError(f"unsafe file name {name!r} for the download cache: it must be a relative path")
        for part in relative.parts:
            _check_part(part, "file name")
        return Path(self.root, provider, product_id, *relative.parts)

    def product_dir(self, provider: str, product_id: str) -> Path:
        """The folder of one product's files."""
        return self.path_for(provider, product_id, "x").parent


def part_path(dest: Path) -> Path:
    """Where the transfer of ``dest`` is written until it is verified."""
    return dest.with_name(dest.name + ".part")


def lock_path(dest: Path) -> Path:
    """The lock file guarding the download of ``dest``."""
    return dest.with_name(dest.name + ".lock")


def marker_path(dest: Path) -> Path:
    """The marker saying ``dest`` was verified."""
    return dest.with_name(dest.name + ".verified")


_local_locks: dict[str, threading.Lock] = {}
_local_locks_guard = threading.Lock()


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive inter-process lock (``flock``) on ``path`` (created; removed on release).

    Waits while another process or thread holds it. Safe against the file being removed by the
    previous holder: after locking, it checks that ``path`` still names the locked file, else retries.
    """
    if fcntl is None:  # pragma: no cover - Windows
        with _local_locks_guard:
            lock = _local_locks.setdefault(str(path), threading.Lock())
        with lock:
            yield
        return
    fd = _acquire(path)
    try:
        yield
    finally:
        with suppress(FileNotFoundError):
            path.unlink()
        os.close(fd)  # closing the descriptor releases the lock


def _acquire(path: Path) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("waiting for another download of %s to finish", path.name.removesuffix(".lock"))
                fcntl.flock(fd, fcntl.LOCK_EX)
            if _same_file(fd, path):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def read_marker(dest: Path) -> dict[str, Any] | None:
    """The verification marker of ``dest`` (None when missing or unreadable)."""
    try:
        data = json.loads(marker_path(dest).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_marker(dest: Path, size: int, checksum: Checksum | None) -> None:
    """Record that ``dest`` (``size`` bytes) was verified (atomically)."""
    data: dict[str, Any] = {"size": size, "checksum": None}
    if checksum is not None:
        data["checksum"] = {"algorithm": checksum.algorithm, "value": checksum.value}
    marker = marker_path(dest)
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, marker)


def remove_marker(dest: Path) -> None:
    """Forget that ``dest`` was verified."""
    with suppress(FileNotFoundError):
        marker_path(dest).unlink()


def is_complete(dest: Path, size: int | None, checksum: Checksum | None) -> bool:
    """Whether ``dest`` already holds the wanted file: its size matches (when known) and either its marker
    records the same size (and checksum, when given) or its checksum is verified now (then a marker is
    written so the next check is cheap)."""
    try:
        actual = dest.stat().st_size
    except FileNotFoundError:
        return False
    if size is not None and actual != size:
        return False
    marker = read_marker(dest)
    if marker is not None and marker.get("size") == actual:
        recorded = marker.get("checksum")
        if checksum is None:
            return True
        if isinstance(recorded, dict) and recorded.get("algorithm") == checksum.algorithm:
            return checksum.matches(str(recorded.get("value", "")))
    if checksum is not None and file_matches(dest, checksum):
        write_marker(dest, actual, checksum)
        return True
    return False


__all__ = [
    "CACHE_ENV",
    "ProductCache",
    "default_cache_dir",
    "file_lock",
    "is_complete",
    "lock_path",
    "marker_path",
    "part_path",
    "read_marker",
    "remove_marker",
    "write_marker",
]


#: The file that vouches for a partial SAFE folder (only the files a run needs, fetched one by one).
PARTIAL_COMPLETE = ".complete"


def mark_partial_complete(folder: Path, **facts: Any) -> list[str]:
    """Write ``folder``'s :data:`PARTIAL_COMPLETE` file: ``facts`` and the folder's members; return them."""
    members = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    (folder / PARTIAL_COMPLETE).write_text(json.dumps({**facts, "members": members}, indent=1), encoding="utf-8")
    return members


def read_partial_marker(folder: Path) -> dict[str, Any] | None:
    """The facts of a complete partial SAFE folder, None when it is not (yet) complete."""
    try:
        data = json.loads((folder / PARTIAL_COMPLETE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
