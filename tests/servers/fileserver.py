"""A threaded HTTP file server on 127.0.0.1 with byte ranges, byte accounting and concurrency tracking.

Tests use it for /vsicurl/ COG reads and downloads. Fault injection: append rules to
:attr:`FileServer.faults` (or call :meth:`FileServer.add_fault`); each rule applies to one path and is
used up after ``times`` requests (``None`` = every request). Rules:

- :class:`Reply`: answer a status (e.g. 429 with Retry-After, 503) instead of the file;
- :class:`DropAfter`: close the connection after N body bytes;
- :class:`Corrupt`: flip one byte of the body (a wrong checksum / a bad zip CRC);
- :class:`Truncate`: serve only the first N bytes, as if that were the whole file;
- :class:`IgnoreRange`: answer 200 with the whole file even when a Range was asked for.

``required_auth`` makes every request without that exact Authorization header answer 401.
``rate_bps`` throttles each connection; ``link_bps`` throttles all connections together (a shared link).
``POST`` answers ``{"path": ..., "form": {...}}`` (the decoded form) as JSON.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from tests.servers.base import QuietHandler, start_server, stop_server

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 64 * 1024


# ---------------------------------------------------------------------- fault rules


@dataclass(frozen=True)
class Reply:
    """Answer ``status`` (with ``Retry-After: retry_after`` when set) to the first ``times`` requests."""

    path: str
    status: int
    times: int | None = 1
    retry_after: str | None = None


@dataclass(frozen=True)
class DropAfter:
    """Close the connection after ``after`` body bytes, the first ``times`` GETs of ``path``."""

    path: str
    after: int
    times: int | None = 1


@dataclass(frozen=True)
class Corrupt:
    """Flip the byte at ``offset`` of the file in the bodies served."""

    path: str
    offset: int = 0
    times: int | None = None


@dataclass(frozen=True)
class Truncate:
    """Serve only the first ``length`` bytes of the file, as if that were all of it."""

    path: str
    length: int
    times: int | None = None


@dataclass(frozen=True)
class IgnoreRange:
    """Answer 200 with the whole file even when a Range was asked for."""

    path: str
    times: int | None = 1


Fault = Reply | DropAfter | Corrupt | Truncate | IgnoreRange
F = TypeVar("F", Reply, DropAfter, Corrupt, Truncate, IgnoreRange)


@dataclass(frozen=True)
class Logged:
    """One request as the server saw it."""

    method: str
    path: str
    query: str
    range: str | None
    time: float
    headers: dict[str, str] = field(default_factory=dict)


class _Link:
    """A link shared by all connections: each chunk books ``len / rate`` seconds of it, in turn."""

    def __init__(self, rate_bps: float) -> None:
        self.rate = rate_bps
        self._lock = threading.Lock()
        self._free_at = 0.0

    def send(self, n: int) -> None:
        with self._lock:
            now = time.monotonic()
            self._free_at = max(self._free_at, now) + n / self.rate
            wait = self._free_at - now
        if wait > 0:
            time.sleep(wait)


# ---------------------------------------------------------------------- the server


class FileServer:
    """Serves the files under ``root``; counts bytes served per path and the peak of parallel requests."""

    def __init__(
        self,
        root: Path,
        *,
        rate_bps: float | None = None,
        link_bps: float | None = None,
        required_auth: str | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.rate_bps = rate_bps  # per-connection throttle, None = unlimited
        self.link = _Link(link_bps) if link_bps else None  # all connections together
        self.required_auth = required_auth
        self.bytes_served: Counter[str] = Counter()
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.log: list[Logged] = []  # the same requests, with time, query and headers
        self.faults: list[Any] = []  # fault rules, used in order
        self._fault_uses: Counter[int] = Counter()
        self._lock = threading.Lock()
        self._active = 0
        self.max_active = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes_served.values())

    def gets(self, path: str | None = None) -> list[Logged]:
        """The GET requests (of ``path`` only, when given)."""
        return [r for r in self.log if r.method == "GET" and (path is None or r.path == path)]

    def add_fault(self, rule: Fault) -> FileServer:
        self.faults.append(rule)
        return self

    def reset_counters(self) -> None:
        with self._lock:
            self.bytes_served.clear()
            self.requests.clear()
            self.log.clear()
            self.max_active = self._active

    def take_fault(self, kind: type[F], path: str) -> F | None:
        """The first unused rule of ``kind`` for ``path`` (counted as used once more), or None."""
        with self._lock:
            for i, rule in enumerate(self.faults):
                unused = rule.times is None or self._fault_uses[i] < rule.times
                if isinstance(rule, kind) and rule.path == path and unused:
                    self._fault_uses[i] += 1
                    return rule
        return None

    def start(self) -> FileServer:
        self._httpd = start_server(_Handler, owner=self)
        return self

    def stop(self) -> None:
        stop_server(self._httpd)
        self._httpd = None

    def _enter(self) -> None:
        with self._lock:
            self._active += 1
            self.max_active = max(self.max_active, self._active)

    def _leave(self) -> None:
        with self._lock:
            self._active -= 1


class _Handler(QuietHandler):
    owner: FileServer

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_POST(self) -> None:
        owner = self.owner
        owner._enter()
        try:
            path = self._record()
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(parse_qsl(self.rfile.read(length).decode("utf-8"), keep_blank_values=True))
            if self._refused(path):
                return
            self._plain(200, json.dumps({"path": path, "form": form}).encode(), "application/json")
        finally:
            owner._leave()

    def _record(self) -> str:
        path, _, query = self.path.partition("?")
        owner = self.owner
        rng = self.headers.get("Range")
        with owner._lock:
            owner.requests.append((self.command, path, rng))
            owner.log.append(Logged(self.command, path, query, rng, time.monotonic(), dict(self.headers.items())))
        return path

    def _refused(self, path: str) -> bool:
        """Answer 401 / a Reply rule's status instead of the resource; True when it did."""
        owner = self.owner
        if owner.required_auth is not None and self.headers.get("Authorization") != owner.required_auth:
            self._plain(401, b"unauthorized", extra={"WWW-Authenticate": "Bearer"})
            return True
        reply = owner.take_fault(Reply, path)
        if reply is not None:
            extra = {"Retry-After": reply.retry_after} if reply.retry_after is not None else {}
            self._plain(reply.status, f"injected {reply.status}".encode(), extra=extra)
            return True
        return False

    def _serve(self, head: bool) -> None:
        owner = self.owner
        owner._enter()
        try:
            path = self._record()
            if self._refused(path):
                return
            file = (owner.root / path.lstrip("/")).resolve()
            if owner.root not in file.parents or not file.is_file():
                self._plain(404, b"not found")
                return
            size = file.stat().st_size
            truncate = owner.take_fault(Truncate, path)
            if truncate is not None:
                size = min(size, truncate.length)
            rng = self.headers.get("Range")
            if rng and owner.take_fault(IgnoreRange, path) is not None:
                rng = None
            span = self._span(rng, size)
            if span is None:
                return
            start, end, status = span
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(end - start + 1))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            if head:
                return
            self._send_body(file, path, start, end)
        finally:
            owner._leave()

    def _span(self, rng: str | None, size: int) -> tuple[int, int, int] | None:
        """(start, end, status) of the answer, or None after answering 416."""
        if not rng:
            return 0, size - 1, 200
        m = _RANGE.match(rng.strip())
        if not m or (not m[1] and not m[2]):
            self._plain(416, b"bad range")
            return None
        if m[1]:
            start = int(m[1])
            end = min(int(m[2]), size - 1) if m[2] else size - 1
        else:
            start, end = max(0, size - int(m[2])), size - 1
        if start >= size or start > end:
            self._plain(416, b"", extra={"Content-Range": f"bytes */{size}"})
            return None
        return start, end, 206

    def _send_body(self, file: Path, path: str, start: int, end: int) -> None:
        owner = self.owner
        drop = owner.take_fault(DropAfter, path)
        corrupt = owner.take_fault(Corrupt, path)
        began = time.monotonic()
        sent = 0
        with file.open("rb") as f:
            f.seek(start)
            remaining = end - start + 1
            while remaining > 0:
                want = min(CHUNK, remaining)
                if drop is not None:
                    want = min(want, drop.after - sent)
                    if want <= 0:
                        self.close_connection = True  # the client sees a short body
                        return
                chunk = f.read(want)
                if not chunk:
                    break
                if corrupt is not None and start + sent <= corrupt.offset < start + sent + len(chunk):
                    i = corrupt.offset - start - sent
                    chunk = chunk[:i] + bytes([chunk[i] ^ 0xFF]) + chunk[i + 1 :]
                if owner.link is not None:
                    owner.link.send(len(chunk))
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    return
                remaining -= len(chunk)
                sent += len(chunk)
                with owner._lock:
                    owner.bytes_served[path] += len(chunk)
                if owner.rate_bps and remaining > 0:
                    ahead = sent / owner.rate_bps - (time.monotonic() - began)
                    if ahead > 0:
                        time.sleep(ahead)

    def _plain(
        self, status: int, body: bytes, content_type: str = "text/plain", extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def serve_files(root: Path, **kwargs: Any) -> Iterator[FileServer]:
    """Start a :class:`FileServer` on 127.0.0.1 (a free port) for the block's duration."""
    server = FileServer(root, **kwargs).start()
    try:
        yield server
    finally:
        server.stop()
