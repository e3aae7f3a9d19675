"""One resumable transfer of a URL's body into a ``.part`` file.

After a dropped connection the next attempt asks for ``Range: bytes=<bytes already on disk>-`` and
appends the answer (a ``206`` whose ``Content-Range`` starts at that offset); a server that answers
``200`` instead sends the whole file again, so the part is restarted. The checksum is computed while
the bytes arrive (after re-reading what an earlier run left in the part), so verification costs no
second pass over the file.
"""

from __future__ import annotations

import errno
import logging
import math
import re
import shutil
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import requests
import urllib3

from senprep_core.errors import DiskSpaceError, DownloadError
from senprep_core.events import BytesProgress, EventCallback
from senprep_core.fetch.checksum import Hasher, hash_file, new_hasher
from senprep_core.fetch.redact import scrub
from senprep_core.fetch.retry import Attempts, Retryable

log = logging.getLogger(__name__)

DISK_MARGIN = 32 * 1024 * 1024  # bytes kept free on top of what a download still needs
PROGRESS_INTERVAL = 0.2  # seconds between BytesProgress events of one transfer (at most 5 per second)

NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.HTTPError,
    TimeoutError,
    ConnectionError,
)

_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)
_UNSATISFIED_RANGE = re.compile(r"^\s*bytes\s+\*/(\d+)\s*$", re.IGNORECASE)

# opens one attempt: headers in, a response (status already checked) out; raises Retryable
OpenAttempt = Callable[[dict[str, str]], AbstractContextManager[requests.Response]]


def describe_network_error(exc: BaseException) -> str:
    """A short, secret-free description of a network exception (its text may hold a URL, redirect target
    included: secret-looking parts and every secret this process knows are masked)."""
    text = scrub(str(exc))
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def human_bytes(n: float) -> str:
    """``1.5 GB`` style sizes for messages."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def ensure_free_space(folder: Path, needed: int, label: str) -> None:
    """Raise DiskSpaceError unless ``folder``'s disk has ``needed`` bytes plus a small margin free."""
    free = shutil.disk_usage(folder).free
    if free < needed + DISK_MARGIN:
        raise DiskSpaceError(
            f"not enough free disk space in {folder} for {label}: {human_bytes(needed)} still to download "
            f"(plus a {human_bytes(DISK_MARGIN)} margin) but only {human_bytes(free)} free. "
            "Free some space or point the download cache (SENPREP_CACHE) at a larger disk."
        )


class Progress:
    """Throttled BytesProgress events of one transfer (at most one per ``interval`` plus a final one)."""

    def __init__(
        self,
        label: str,
        total: int | None,
        on_event: EventCallback,
        *,
        interval: float = PROGRESS_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.received = 0
        self._on_event = on_event
        self._interval = interval
        self._clock = clock
        self._began = clock()
        self._last = -math.inf

    @property
    def rate(self) -> float:
        """Bytes per second received by this transfer so far."""
        elapsed = self._clock() - self._began
        return self.received / elapsed if elapsed > 0 else 0.0

    def add(self, n: int) -> None:
        """Count ``n`` more bytes; emit an event if the last one is old enough."""
        self.done += n
        self.received += n
        now = self._clock()
        if now - self._last >= self._interval:
            self._last = now
            self._emit()

    def final(self) -> None:
        """The closing event."""
        self._emit()

    def _emit(self) -> None:
        self._on_event(BytesProgress(self.label, self.done, self.total, self.rate))


@dataclass(frozen=True)
class TransferOutcome:
    """What a transfer left in the part: its size, the size the server announced, the bytes received
    in this call, and the hex digest (when a checksum algorithm was asked for)."""

    size: int
    total: int | None
    transferred: int
    digest: str | None


class ResumableTransfer:
    """Fill ``part`` with the body of the URL behind ``open_attempt``, resuming with Range after drops.

    ``size`` is the expected size (None when unknown); ``algorithm`` the checksum to compute on the fly;
    ``ensure_space(n)`` is called with the bytes still needed once the server told the size (when
    ``size`` was unknown). Failures go through ``attempts`` (which sleeps, or raises when exhausted).
    """

    def __init__(
        self,
        open_attempt: OpenAttempt,
        part: Path,
        *,
        size: int | None,
        algorithm: str | None,
        attempts: Attempts,
        progress: Progress,
        chunk_size: int = 1 << 20,
        ensure_space: Callable[[int], None] | None = None,
    ) -> None:
        self.open_attempt = open_attempt
        self.part = part
        self.size = size
        self.total = size
        self.algorithm = algorithm
        self.attempts = attempts
        self.progress = progress
        self.chunk_size = chunk_size
        self.ensure_space = ensure_space
        self.transferred = 0
        self._hasher: Hasher | None = None

    def run(self) -> TransferOutcome:
        """Transfer until the part is complete; returns what it holds."""
        offset = self._part_size()
        if self.size is not None and offset > self.size:
            log.info("%s: the partial file is longer than expected; starting over", self.progress.label)
            offset = self._restart()
        self._hasher = self._resume_hasher(offset)
        self.progress.done = offset
        while True:
            offset = self._part_size()
            if self.total is not None and offset >= self.total:
                break
            try:
                if self._attempt(offset):
                    break
            except Retryable as error:
                self.attempts.retry(error)
        digest = self._hasher.hexdigest() if self._hasher is not None else None
        return TransferOutcome(self._part_size(), self.total, self.transferred, digest)

    # ------------------------------------------------------------------ one attempt

    def _attempt(self, offset: int) -> bool:
        """One request; True when the part is complete. Raises Retryable to try again."""
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        with self.open_attempt(headers) as response:
            self.attempts.answered()
            if response.status_code == 416:
                return self._after_unsatisfiable(response, offset)
            start, total = self._body_start(response, offset)
            if offset and start == 0:
                log.info("%s: the server sent the whole file again; restarting the part", self.progress.label)
                self._restart()
            self._accept_total(total)
            if self.ensure_space is not None and self.size is None and self.total is not None:
                self.ensure_space(self.total - start)
            received, dropped = self._write_body(response, start)
        if received:
            self.attempts.progressed()
        if dropped is not None:
            raise dropped
        have = self._part_size()
        if self.total is not None and have < self.total:
            raise Retryable(f"the body ended after {have} of {self.total} bytes")
        if self.total is None:
            self.total = have  # no length announced: the body ends where the connection closed cleanly
        return True

    def _body_start(self, response: requests.Response, offset: int) -> tuple[int, int | None]:
        """Where the body starts in the file and the file's total size (None when unknown)."""
        status = response.status_code
        if status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if match is None:
                raise DownloadError(
                    f"{self.progress.label}: the server answered 206 without a valid Content-Range; "
                    "it cannot be resumed safely. Try again later or another source."
                )
            start = int(match[1])
            total = None if match[3] == "*" else int(match[3])
            if start != offset:
                self._restart()
                raise Retryable(f"the server sent bytes from {start} instead of {offset}")
            return start, total
        if status == 200:
            length = response.headers.get("Content-Length")
            known = length is not None and length.isdigit() and not _is_encoded(response)
            return 0, int(length) if known and length is not None else None
        raise DownloadError(
            f"{self.progress.label}: the server answered HTTP {status} {scrub(response.reason or '')} instead of the "
            "file; try again later or another source."
        )

    def _after_unsatisfiable(self, response: requests.Response, offset: int) -> bool:
        """A 416 to our Range: complete if the server's size is what we have, else start over."""
        match = _UNSATISFIED_RANGE.match(response.headers.get("Content-Range", ""))
        if match is not None and int(match[1]) == offset and self.size in (None, offset):
            self.total = offset
            return True
        self._restart()
        raise Retryable(f"the server refused to resume at byte {offset} (HTTP 416)")

    def _accept_total(self, total: int | None) -> None:
        if total is None:
            return
        if self.size is not None and total != self.size:
            raise DownloadError(
                f"{self.progress.label}: the server announces {total} bytes but the catalogue says {self.size}; "
                "the product may have changed: search again, or try another source."
            )
        self.total = total
        self.progress.total = total

    def _write_body(self, response: requests.Response, start: int) -> tuple[int, Retryable | None]:
        """Append the body to the part; returns the bytes written and the drop that ended it, if any."""
        received = 0
        encoded = _is_encoded(response)
        # raw reads hand over every byte that arrived before a drop (decoded reads would lose the last chunk)
        chunks = response.iter_content(self.chunk_size) if encoded else response.raw.stream(self.chunk_size, False)
        try:
            with self.part.open("ab" if start else "wb") as f:
                while True:
                    try:
                        chunk = next(chunks)
                    except StopIteration:
                        break
                    except NETWORK_ERRORS as exc:
                        if encoded:  # offsets of a compressed body do not map to the file: start over
                            self._restart()
                        return received, Retryable(
                            f"connection dropped after {start + received} bytes ({describe_network_error(exc)})"
                        )
                    f.write(chunk)
                    if self._hasher is not None:
                        self._hasher.update(chunk)
                    received += len(chunk)
                    self.transferred += len(chunk)
                    self.progress.add(len(chunk))
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise DiskSpaceError(
                    f"the disk holding {self.part.parent} filled up while downloading {self.progress.label}; "
                    "free some space (the partial file is kept and the download resumes next time)"
                ) from None
            raise
        return received, None

    # ------------------------------------------------------------------ the part file

    def _part_size(self) -> int:
        try:
            return self.part.stat().st_size
        except FileNotFoundError:
            return 0

    def _restart(self) -> int:
        """Empty the part and the running checksum."""
        self.part.write_bytes(b"")
        self._hasher = new_hasher(self.algorithm) if self.algorithm else None
        self.progress.done = 0
        return 0

    def _resume_hasher(self, offset: int) -> Hasher | None:
        """A hasher fed with the bytes already in the part (left by an earlier, interrupted run)."""
        if self.algorithm is None:
            return None
        if offset == 0:
            return new_hasher(self.algorithm)
        return hash_file(self.part, self.algorithm)


def _is_encoded(response: requests.Response) -> bool:
    """Whether the body is compressed in transit (despite our ``Accept-Encoding: identity``)."""
    return response.headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity")


__all__ = [
    "DISK_MARGIN",
    "NETWORK_ERRORS",
    "OpenAttempt",
    "Progress",
    "ResumableTransfer",
    "TransferOutcome",
    "describe_network_error",
    "ensure_free_space",
    "human_bytes",
]
