"""SAFE folders built in the cache file by file: only the members a run reads (ROI mode), or all of them.

Sources that can fetch single files of a product (CDSE ``Nodes``, Google Cloud Storage objects, CDSE STAC
assets) build ``<folder>/<id>.SAFE`` the same way: the members are downloaded (resumable, size and checksum
verified, through the one :class:`~senprep_core.fetch.http.HttpClient`) into ``.tmp-<id>.SAFE``, the
client's markers are dropped, a ``.complete`` file listing the members is written and the folder is renamed
into place. A later run that needs more members starts from the complete folder and fetches only the missing
ones. One process or thread at a time builds a product (``<id>.SAFE.lock``); whoever waited finds it done.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from senprep_core.atomic import replace_folder
from senprep_core.fetch.cache import PARTIAL_COMPLETE, file_lock, mark_partial_complete, remove_marker
from senprep_core.fetch.checksum import Checksum
from senprep_core.fetch.http import HttpClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MemberFile:
    """One member of a SAFE to fetch: its path inside the SAFE, URL, size and checksum (when known)."""

    member: str
    url: str
    size: int | None = None
    checksum: Checksum | None = None


def partial_has(safe: Path, members: Iterable[str]) -> bool:
    """Whether ``safe`` is a complete (``.complete``) folder holding every one of ``members``."""
    if not (safe / PARTIAL_COMPLETE).is_file():
        return False
    return all((safe / m).is_file() for m in members)


def seed_from_previous(final: Path, work: Path) -> set[str]:
    """Link the files of an earlier complete ``final`` into ``work`` (copy where links fail); their members,
    which need no new download."""
    trusted: set[str] = set()
    work.mkdir(parents=True, exist_ok=True)
    if not (final / PARTIAL_COMPLETE).is_file():
        return trusted
    for src in final.rglob("*"):
        member = src.relative_to(final).as_posix()
        dst = work / member
        if src.is_file() and src.name != PARTIAL_COMPLETE:
            trusted.add(member)
            if not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(src, dst)
                except OSError:
                    shutil.copy2(src, dst)
    return trusted


def fetch_members(
    http: HttpClient,
    work: Path,
    files: Sequence[MemberFile],
    *,
    label: str,
    auth: bool = False,
    trusted: Iterable[str] = (),
    workers: int = 4,
    bind: Callable[[], None] | None = None,
) -> int:
    """Download ``files`` into ``work`` on up to ``workers`` threads (``bind()`` runs first in each, e.g. to
    route progress events); a trusted member of the right size is kept. Returns the bytes fetched."""
    kept = set(trusted)

    def get(item: MemberFile) -> int:
        if bind is not None:
            bind()
        dest = work / item.member
        if item.member in kept and dest.is_file() and (item.size is None or dest.stat().st_size == item.size):
            return 0
        dest.parent.mkdir(parents=True, exist_ok=True)
        result = http.download(item.url, dest, size=item.size, checksum=item.checksum, check_zip=False, auth=auth,
                               label=f"{label}/{item.member}")  # fmt: skip
        return result.bytes_transferred

    if not files:
        return 0
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(files))), thread_name_prefix="safe-files") as pool:
        return sum(pool.map(get, files))


def finish_partial(work: Path, final: Path, members: Iterable[str], **facts: Any) -> Path:
    """Drop the client's markers of ``members``, write ``.complete`` and rename ``work`` onto ``final``."""
    for member in members:
        remove_marker(work / member)  # the folder's .complete vouches for every file from now on
    mark_partial_complete(work, **facts)
    return replace_folder(work, final, done_marker=PARTIAL_COMPLETE)


def build_safe(
    http: HttpClient,
    folder: Path,
    product_id: str,
    files: Sequence[MemberFile],
    *,
    auth: bool = False,
    workers: int = 4,
    bind: Callable[[], None] | None = None,
    **facts: Any,
) -> Path:
    """``<folder>/<product_id>.SAFE`` holding ``files`` (see the module docstring): returned at once when an
    earlier fetch left it complete, else built (or completed) under the product's lock."""
    final = folder / f"{product_id}.SAFE"
    members = [f.member for f in files]
    if partial_has(final, members):
        return final
    folder.mkdir(parents=True, exist_ok=True)
    with file_lock(folder / f"{product_id}.SAFE.lock"):
        if partial_has(final, members):
            return final
        work = folder / f".tmp-{product_id}.SAFE"
        trusted = seed_from_previous(final, work)
        fetched = fetch_members(http, work, files, label=product_id, auth=auth, trusted=trusted, workers=workers,
                                bind=bind)  # fmt: skip
        log.info("%s: fetched %d of %d file(s), %.1f MB", product_id, len(set(members) - trusted), len(members),
                 fetched / 1e6)  # fmt: skip
        return finish_partial(work, final, members, **facts)


__all__ = ["MemberFile", "build_safe", "fetch_members", "finish_partial", "partial_has", "seed_from_previous"]
