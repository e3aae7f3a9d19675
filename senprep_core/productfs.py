"""Uniform access to a Sentinel product stored as a folder or as a ``.zip`` archive.

Members are POSIX paths relative to the product root (``GRANULE/.../MTD_TL.xml``). Zips are
never extracted: rasters are read through GDAL's ``/vsizip/`` virtual file system.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from senprep_core.errors import CorruptProductError, ProductNotFoundError, UnsafeArchiveError

logger = logging.getLogger(__name__)

_SUFFIXES = (".zip", ".safe")


def _check_entry(zip_path: Path, name: str) -> None:
    """Raise :class:`UnsafeArchiveError` when a zip entry would escape the archive folder."""
    posix = name.replace("\\", "/")
    parts = PurePosixPath(posix).parts
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":") or ".." in parts:
        raise UnsafeArchiveError(
            f"zip archive {zip_path} holds the unsafe entry {name!r} (absolute path or '..' part); "
            "senprep refuses to read it. Re-download the product from a trusted source."
        )


def _common_root(names: list[str]) -> str:
    """The single top folder shared by every entry (``"X.SAFE/"``), or ``""``."""
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) == 1 and all("/" in n for n in names):
        return next(iter(tops)) + "/"
    return ""


@dataclass(frozen=True)
class ProductLocation:
    """A product stored as a folder (.SAFE or AWS tile layout) or a .zip archive.

    Members are POSIX paths relative to the product root.
    """

    path: Path  # the folder or the .zip file
    root: str  # inside a zip: the top folder prefix like "S2A_MSIL2A_....SAFE/" (or ""); for folders ""
    _members: tuple[str, ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def open(cls, path: str | Path) -> ProductLocation:
        """Open a product folder or zip; list its members (and check zip entries are safe)."""
        p = Path(path).expanduser()
        if not p.exists():
            raise ProductNotFoundError(f"product {p} does not exist; check the path (or download the product first)")
        p = p.resolve()
        if p.is_dir():
            members = []
            for dirpath, _dirs, files in os.walk(p):
                rel_dir = Path(dirpath).relative_to(p).as_posix()
                for f in files:
                    members.append(f if rel_dir == "." else f"{rel_dir}/{f}")
            return cls(path=p, root="", _members=tuple(sorted(members)))
        if not p.is_file():
            raise ProductNotFoundError(f"product {p} is neither a folder nor a .zip file")
        if not zipfile.is_zipfile(p):
            if p.suffix.lower() == ".zip":
                raise CorruptProductError(f"{p} is not a readable zip archive (truncated download?); download it again")
            raise ProductNotFoundError(
                f"product {p} is neither a folder nor a .zip file; give a .SAFE folder or a .zip"
            )
        try:
            with zipfile.ZipFile(p) as zf:
                names = [i.filename for i in zf.infolist()]
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise CorruptProductError(f"zip archive {p} is corrupt ({exc}); download it again") from exc
        for name in names:
            _check_entry(p, name)
        files = [n for n in names if not n.endswith("/")]
        root = _common_root(files)
        members = sorted(n[len(root) :] for n in files if n.startswith(root))
        return cls(path=p, root=root, _members=tuple(members))

    @property
    def is_zip(self) -> bool:
        """True when the product is a zip archive."""
        return self.path.is_file()

    @property
    def name(self) -> str:
        """The product name without ``.SAFE`` / ``.zip`` suffix."""
        name = self.path.name
        for _ in range(2):  # "X.SAFE.zip"
            lowered = name.lower()
            for suffix in _SUFFIXES:
                if lowered.endswith(suffix):
                    name = name[: -len(suffix)]
                    lowered = name.lower()
        return name

    def members(self) -> list[str]:
        """All file members, relative to the root, sorted."""
        return list(self._members)

    def find(self, pattern: str) -> list[str]:
        """Members matching an fnmatch glob, case-insensitive (``*`` also crosses ``/``)."""
        pat = pattern.lower()
        return [m for m in self._members if fnmatch.fnmatchcase(m.lower(), pat)]

    def _require(self, member: str) -> str:
        member = member.lstrip("/")
        if member not in self._members:
            raise ProductNotFoundError(f"product {self.path} has no member {member!r}")
        return member

    def read_bytes(self, member: str) -> bytes:
        """The bytes of one member."""
        member = self._require(member)
        try:
            if self.is_zip:
                with zipfile.ZipFile(self.path) as zf:
                    return zf.read(self.root + member)
            return (self.path / member).read_bytes()
        except (zipfile.BadZipFile, OSError, EOFError, KeyError) as exc:
            raise CorruptProductError(
                f"cannot read {member!r} of product {self.path}: {exc}; the product is damaged, download it again"
            ) from exc

    @contextmanager
    def open_member(self, member: str) -> Iterator[tuple[IO[bytes], int]]:
        """A binary stream of one member (seekable; cheap for stored zip entries) and its size in bytes."""
        member = self._require(member)
        try:
            if self.is_zip:
                with zipfile.ZipFile(self.path) as zf:
                    info = zf.getinfo(self.root + member)
                    with zf.open(info) as stream:
                        yield stream, info.file_size
            else:
                path = self.path / member
                with path.open("rb") as stream:
                    yield stream, path.stat().st_size
        except (zipfile.BadZipFile, EOFError, KeyError) as exc:
            raise CorruptProductError(
                f"cannot read {member!r} of product {self.path}: {exc}; the product is damaged, download it again"
            ) from exc

    def tail_bytes(self, member: str, n: int) -> bytes | None:
        """The last ``n`` bytes of a member, or None when that needs decompressing a deflated zip entry."""
        member = self._require(member)
        if self.is_zip:
            with zipfile.ZipFile(self.path) as zf:
                info = zf.getinfo(self.root + member)
                if info.compress_type != zipfile.ZIP_STORED:
                    return None
        with self.open_member(member) as (stream, size):
            stream.seek(max(0, size - n))
            return stream.read(n)

    def gdal_path(self, member: str) -> str:
        """A path GDAL can open: the real file for folders, ``/vsizip/<zip>/<root><member>`` for zips."""
        member = self._require(member)
        if self.is_zip:
            return f"/vsizip/{self.path.as_posix()}/{self.root}{member}"
        return str(self.path / member)
