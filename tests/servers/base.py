"""What every test server shares: a quiet HTTP/1.1 handler and a threaded server on a free 127.0.0.1 port."""

from __future__ import annotations

import threading
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
