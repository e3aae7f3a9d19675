"""Local products are checked before they are read: the files a unit reads against ``manifest.safe``'s
checksums (MD5, or SHA3-256 in newer Sentinel-2 products).

Only the files the run reads (the requested bands at their native resolution, the masks, the metadata XML;
for S1 the measurement TIFF and annotation XML of each polarisation used) are hashed, once: a file that
verified is remembered in the shared cache by its size and modification time, so later runs do not hash
it again. A mismatch fails that product (``CorruptProductError`` naming the file); the run's other units go
on. Products without a manifest (AWS tile folders) and files it lists without a checksum are not checked.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import orjson

from senprep_core.atomic import write_json_atomic
from senprep_core.catalog.cdse_odata import manifest_files, s1_needed, s2_needed
from senprep_core.catalog.records import ProductRecord
from senprep_core.errors import CorruptProductError, MetadataError
from senprep_core.fetch.cache import safe_cache_name
from senprep_core.productfs import ProductLocation

log = logging.getLogger(__name__)

MANIFEST = "manifest.safe"
VERIFIED_DIR = "verified"
_CHUNK = 1 << 20


#: The checksums manifests give: MD5 (Sentinel-1, older Sentinel-2) and SHA3-256 (Sentinel-2 since 2021).
DIGESTS = {"MD5": lambda: hashlib.md5(usedforsecurity=False), "SHA3-256": hashlib.sha3_256}


def _digest(location: ProductLocation, member: str, name: str) -> str:
    h = DIGESTS[name]()
    with location.open_member(member) as (stream, _size):
        while chunk := stream.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _stamp(location: ProductLocation, member: str) -> list[int]:
    """Size and modification time (ns) of a member: of the zip archive itself for zipped products."""
    path = location.path if location.is_zip else location.path / member
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def needed_members(location: ProductLocation, family: str, level: str, layers: Sequence[str]) -> list[str]:
    """The members of a product that a read of ``layers`` (S2 bands, or S1 polarisations) opens."""
    members = location.members()
    return s2_needed(members, level, layers) if family == "S2" else s1_needed(members, layers)


def verify_product(record: ProductRecord, layers: Sequence[str], cache_dir: Path) -> int:
    """Check the files of ``record`` that a read of ``layers`` opens against its manifest's checksums; return how
    many were hashed now (0 when all were verified before). Raises :class:`CorruptProductError`."""
    location = ProductLocation.open(record.href)
    manifest = next((m for m in location.members() if Path(m).name.lower() == MANIFEST), None)
    if manifest is None:
        return 0
    try:
        listed = {f.member: f for f in manifest_files(location.read_bytes(manifest), f"{location.name}/{MANIFEST}")}
    except MetadataError as exc:
        raise CorruptProductError(f"{location.path}: {exc}; download the product again") from exc
    parent = PurePosixPath(manifest).parent.as_posix()
    prefix = "" if parent == "." else parent
    memo_path = Path(cache_dir) / VERIFIED_DIR / f"{safe_cache_name(location.name)}.json"
    memo = _read_memo(memo_path)
    hashed = 0
    for member in needed_members(location, record.family, record.level, layers):
        entry = listed.get(member[len(prefix) + 1 :] if prefix else member)
        if entry is None or entry.checksum_name not in DIGESTS or not entry.checksum:
            continue
        stamp = _stamp(location, member)
        if memo.get(member) == stamp:
            continue
        if _digest(location, member, entry.checksum_name) != entry.checksum.lower():
            raise CorruptProductError(
                f"{member} of {location.name} does not match the {entry.checksum_name} checksum in its {MANIFEST} "
                "(damaged or altered); "
                "download the product again, or run with --no-verify to use it anyway"
            )
        memo[member] = stamp
        hashed += 1
    if hashed:
        write_json_atomic(memo_path, memo)
        log.info("%s: %d files verified against %s", location.name, hashed, MANIFEST)
    return hashed


def _read_memo(path: Path) -> dict[str, list[int]]:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
