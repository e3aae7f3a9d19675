"""Checksums (MD5, BLAKE3) and zip integrity checks for downloaded files."""

from __future__ import annotations

import hashlib
import logging
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from senprep_core.errors import DownloadError, MetadataError

log = logging.getLogger(__name__)

ALGORITHMS = ("md5", "blake3")
_READ = 1 << 20


class Hasher(Protocol):
    """What hashlib and blake3 objects share."""

    def update(self, data: bytes, /) -> object: ...

    def hexdigest(self) -> str: ...


@dataclass(frozen=True)
class Checksum:
    """An expected checksum: ``algorithm`` is "md5" or "blake3" (any case), ``value`` its hex digest."""

    algorithm: str
    value: str

    def __post_init__(self) -> None:
        algorithm = self.algorithm.strip().lower()
        if algorithm not in ALGORITHMS:
            raise MetadataError(
                f"unsupported checksum algorithm {self.algorithm!r}: senprep verifies {' or '.join(ALGORITHMS)}; "
                "pass one of those (or no checksum)"
            )
        object.__setattr__(self, "algorithm", algorithm)
        object.__setattr__(self, "value", self.value.strip().lower())

    @staticmethod
    def supported(algorithm: str) -> bool:
        """Whether senprep can verify ``algorithm`` (e.g. a catalogue's "MD5", "BLAKE3")."""
        return algorithm.strip().lower() in ALGORITHMS

    def matches(self, hexdigest: str) -> bool:
        """Whether ``hexdigest`` is this checksum's value."""
        return hexdigest.strip().lower() == self.value


def new_hasher(algorithm: str) -> Hasher:
    """A fresh hash object for ``algorithm``; BLAKE3 needs the optional ``blake3`` package."""
    if algorithm == "md5":
        return hashlib.md5(usedforsecurity=False)
    if algorithm == "blake3":
        try:
            from blake3 import blake3
        except ImportError:
            raise DownloadError(
                "this file's checksum is BLAKE3, which needs the optional 'blake3' package: "
                "pip install 'senprep[blake3]' (or pip install blake3)"
            ) from None
        hasher: Hasher = blake3()
        return hasher
    raise MetadataError(f"unsupported checksum algorithm {algorithm!r}; use {' or '.join(ALGORITHMS)}")


def hash_file(path: Path, algorithm: str, hasher: Hasher | None = None) -> Hasher:
    """Feed the whole of ``path`` into ``hasher`` (a new one for ``algorithm`` when None) and return it."""
    hasher = hasher if hasher is not None else new_hasher(algorithm)
    with path.open("rb") as f:
        while chunk := f.read(_READ):
            hasher.update(chunk)
    return hasher


def file_matches(path: Path, checksum: Checksum) -> bool:
    """Whether the file at ``path`` has the expected ``checksum``."""
    return checksum.matches(hash_file(path, checksum.algorithm).hexdigest())


def zip_problem(path: Path) -> str | None:
    """None when ``path`` is a readable zip whose every member passes its CRC check, else what is wrong."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except NotImplementedError as exc:  # a compression method Python cannot read: nothing to check
        log.warning("cannot check the zip %s (%s); accepting it unchecked", path.name, exc)
        return None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        return f"not a readable zip archive ({type(exc).__name__}: {exc})"
    if bad is not None:
        return f"zip member {bad!r} fails its CRC check"
    return None


__all__ = ["ALGORITHMS", "Checksum", "Hasher", "file_matches", "hash_file", "new_hasher", "zip_problem"]
