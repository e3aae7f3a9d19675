"""Checksums (MD5, SHA3-256, BLAKE3, CRC32C) and zip integrity checks for downloaded files.

Catalogues give them in several forms: hex (CDSE's MD5, ASF's ``md5sum``), base64 (Google Cloud Storage's
``md5Hash`` and ``crc32c``) or multihash hex (STAC ``file:checksum``); :func:`from_base64` and
:func:`from_multihash` turn the latter two into a :class:`Checksum`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from senprep_core.errors import DownloadError, MetadataError

log = logging.getLogger(__name__)

ALGORITHMS = ("md5", "sha3-256", "blake3", "crc32c")
#: multihash codes (https://github.com/multiformats/multicodec) -> (algorithm, digest length in bytes)
_MULTIHASH = {0xD5: ("md5", 16), 0x16: ("sha3-256", 32), 0x1E: ("blake3", 32)}
_READ = 1 << 20


class Hasher(Protocol):
    """What hashlib and blake3 objects share."""

    def update(self, data: bytes, /) -> object: ...

    def hexdigest(self) -> str: ...


@dataclass(frozen=True)
class Checksum:
    """An expected checksum: ``algorithm`` is one of :data:`ALGORITHMS` (any case), ``value`` its hex digest."""

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


class _Crc32c:
    """google-crc32c's checksum with a text ``hexdigest`` (its own gives bytes)."""

    def __init__(self) -> None:
        import google_crc32c

        self._inner = google_crc32c.Checksum()

    def update(self, data: bytes, /) -> object:
        return self._inner.update(data)

    def hexdigest(self) -> str:
        return bytes(self._inner.digest()).hex()


def new_hasher(algorithm: str) -> Hasher:
    """A fresh hash object for ``algorithm``; BLAKE3 needs the optional ``blake3`` package, CRC32C the
    ``google-crc32c`` package."""
    if algorithm == "md5":
        return hashlib.md5(usedforsecurity=False)
    if algorithm == "sha3-256":
        return hashlib.sha3_256()
    if algorithm == "crc32c":
        try:
            return _Crc32c()
        except ImportError:
            raise DownloadError(
                "this file's checksum is CRC32C, which needs the optional 'google-crc32c' package: "
                "pip install 'senprep[gcs]' (or pip install google-crc32c)"
            ) from None
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


def crc32c_available() -> bool:
    """Whether CRC32C checksums can be verified here (the optional ``google-crc32c`` package)."""
    try:
        import google_crc32c  # noqa: F401
    except ImportError:
        return False
    return True


def from_base64(algorithm: str, value: str) -> Checksum | None:
    """A checksum given as base64 of its digest (GCS ``md5Hash`` / ``crc32c``); None when unreadable."""
    try:
        return Checksum(algorithm, base64.b64decode(value, validate=True).hex())
    except (binascii.Error, ValueError):
        return None


def from_multihash(value: str) -> Checksum | None:
    """A checksum given as a multihash in hex (STAC ``file:checksum``); None when its code is unknown or its
    length does not match the algorithm (some catalogues label other digests as MD5)."""
    try:
        data = bytes.fromhex(value.strip())
    except ValueError:
        return None
    code, shift, i = 0, 0, 0
    while i < len(data):  # unsigned varint
        code |= (data[i] & 0x7F) << shift
        shift += 7
        i += 1
        if not data[i - 1] & 0x80:
            break
    if code not in _MULTIHASH or i >= len(data):
        return None
    algorithm, length = _MULTIHASH[code]
    digest = data[i + 1 :]
    if data[i] != length or len(digest) != length:
        return None
    return Checksum(algorithm, digest.hex())


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


__all__ = [
    "ALGORITHMS",
    "Checksum",
    "Hasher",
    "crc32c_available",
    "file_matches",
    "from_base64",
    "from_multihash",
    "hash_file",
    "new_hasher",
    "zip_problem",
]
