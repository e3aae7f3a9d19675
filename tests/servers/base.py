"""What every test server shares: a quiet HTTP/1.1 handler, a threaded server on a free 127.0.0.1 port, and
answers in JSON or as byte ranges of a body (``Range``, ``206`` / ``416``, dropped connections)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 (keep-alive) and no request log on stderr."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass


def start_server(handler: type[BaseHTTPRequestHandler], **state: Any) -> ThreadingHTTPServer:
    """Serve ``handler`` (a subclass made with ``state`` as class attributes) on a free port, in a thread."""
    bound = type(handler.__name__, (handler,), state)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), bound)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return httpd


def stop_server(httpd: ThreadingHTTPServer | None) -> None:
    """Stop a server from :func:`start_server` (None: nothing to stop)."""
    if httpd is not None:
        httpd.shutdown()
        httpd.server_close()


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 64 * 1024


def byte_span(header: str | None, size: int) -> tuple[int, int, bool] | None:
    """(first, last, partial) of the bytes a ``Range`` header asks for; None when it cannot be satisfied."""
    if not header:
        return 0, size - 1, False
    m = _RANGE.match(header.strip())
    if not m or (not m[1] and not m[2]):
        return None
    if m[1]:
        start, end = int(m[1]), min(int(m[2]), size - 1) if m[2] else size - 1
    else:
        start, end = max(0, size - int(m[2])), size - 1
    return (start, end, True) if start < size and start <= end else None


def send_json(
    handler: BaseHTTPRequestHandler, status: int, body: Any, headers: Mapping[str, str] | None = None
) -> None:
    """Answer ``body`` as JSON (no body for HEAD)."""
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json; charset=UTF-8")
    handler.send_header("Content-Length", str(len(data)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(data)


def send_bytes(
    handler: BaseHTTPRequestHandler,
    data: bytes,
    headers: Mapping[str, str] | None = None,
    *,
    drop_after: int | None = None,
    counted: Callable[[int], None] | None = None,
) -> int:
    """Answer ``data`` honouring ``Range`` (206 with Content-Range, 416 when unsatisfiable), as object stores do.

    ``drop_after``: close the connection after that many body bytes (a dropped download); ``counted(n)`` is
    called for the bytes written. Returns the body bytes sent."""
    size = len(data)
    span = byte_span(handler.headers.get("Range"), size)
    if span is None:
        handler.send_response(416)
        handler.send_header("Content-Range", f"bytes */{size}")
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return 0
    start, end, partial = span
    handler.send_response(206 if partial else 200)
    handler.send_header("Content-Type", "application/octet-stream")
    handler.send_header("Accept-Ranges", "bytes")
    handler.send_header("Content-Length", str(end - start + 1))
    if partial:
        handler.send_header("Content-Range", f"bytes {start}-{end}/{size}")
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    if handler.command == "HEAD":
        return 0
    sent = 0
    for offset in range(start, end + 1, CHUNK):
        chunk = data[offset : min(offset + CHUNK, end + 1)]
        if drop_after is not None and sent + len(chunk) > drop_after:
            chunk = chunk[: max(0, drop_after - sent)]
            handler.close_connection = True
        try:
            handler.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            return sent
        sent += len(chunk)
        if counted is not None:
            counted(len(chunk))
        if handler.close_connection and drop_after is not None and sent >= drop_after:
            handler.wfile.flush()
            return sent  # the client sees a short body
    return sent
