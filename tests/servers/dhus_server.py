"""A small DHuS-protocol server on 127.0.0.1, answering the requests sentinelsat makes.

- OpenSearch ``GET <root>search?format=json&rows=R&start=S&q=<query>`` with the query terms sentinelsat
  writes: ``beginPosition:["<iso>" TO "<iso>"]``, ``producttype:"<type>"``,
  ``cloudcoverpercentage:["lo" TO "hi"]``, ``footprint:"Intersects(<WKT>)"``; any other term is refused
  (HTTP 400) so tests see exactly what the client asks. Answers in DHuS JSON (``feed`` / ``entry`` with
  ``str`` / ``int`` / ``double`` / ``date`` lists).
- OData ``Products('<uuid>')?$format=json`` (``{"d": {...}}`` with ``ContentLength``, ``Checksum``,
  ``Online``, ``/Date(ms)/`` times, GML ``ContentGeometry``), ``Products('<uuid>')/Online/$value`` and
  ``Products('<uuid>')/$value`` (GET / HEAD, byte ranges, ``Content-Disposition``; an offline product answers
  a ranged GET with 202 = retrieval ordered).
- HTTP basic auth on every request (401 with an HTML page otherwise, like DHuS).

Fault injection: ``drop_after[uuid] = n`` cuts the next full-body ``$value`` response after ``n`` bytes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from shapely import wkt
from shapely.geometry.base import BaseGeometry

from tests.servers.base import QuietHandler, start_server, stop_server

_TERMS = [
    ("date", re.compile(r'beginPosition:\["([^"]+)" TO "([^"]+)"\]', re.I)),
    ("type", re.compile(r'producttype:"([^"]+)"', re.I)),
    ("cloud", re.compile(r'cloudcoverpercentage:\["([^"]+)" TO "([^"]+)"\]', re.I)),
    ("area", re.compile(r'footprint:"Intersects\(((?:[^"])+)\)"', re.I)),
]
_PRODUCT = re.compile(r"^odata/v1/Products\('([^']+)'\)(/Online/\$value|/\$value)?$")


@dataclass
class DhusProduct:
    """One product the server holds: its zip, metadata, online state; ``md5`` is what the catalogue claims."""

    uuid: str
    name: str
    zip_path: Path
    footprint: BaseGeometry
    product_type: str
    begin: datetime
    cloud: float | None = None
    relative_orbit: int = 0
    tile_id: str | None = None
    online: bool = True
    md5: str = ""

    def __post_init__(self) -> None:
        if not self.md5:
            self.md5 = hashlib.md5(self.zip_path.read_bytes()).hexdigest()

    @property
    def size(self) -> int:
        return self.zip_path.stat().st_size


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _odata_time(t: datetime) -> str:
    return f"/Date({int(t.replace(tzinfo=timezone.utc).timestamp() * 1000)})/"


def _gml(footprint: BaseGeometry) -> str:
    ring = getattr(footprint, "exterior", None) or footprint.geoms[0].exterior  # type: ignore[attr-defined]
    coords = " ".join(f"{lat},{lon}" for lon, lat in ring.coords)
    return ('<gml:Polygon srsName="http://www.opengis.net/gml/srs/epsg.xml#4326" xmlns:gml="http://www.opengis.net/gml">'
            f"<gml:outerBoundaryIs><gml:LinearRing><gml:coordinates>{coords}</gml:coordinates></gml:LinearRing>"
            "</gml:outerBoundaryIs></gml:Polygon>")  # fmt: skip


class DhusServer:
    """The server: ``url`` is the DHuS API root to give sentinelsat (``http://127.0.0.1:<port>/dhus/``)."""

    def __init__(self, products: list[DhusProduct], username: str, password: str) -> None:
        self.products = {p.uuid: p for p in products}
        self._auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.requests: list[tuple[str, str]] = []  # (method, path with query)
        self.queries: list[str] = []  # OpenSearch q values
        self.bytes_served: Counter[str] = Counter()  # uuid -> body bytes of $value
        self.ranges: list[tuple[str, str | None]] = []  # (uuid, Range header) of each $value GET
        self.unauthorized = 0
        self.ordered: list[str] = []  # uuids whose LTA retrieval was triggered
        self.drop_after: dict[str, int] = {}
        self.lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        port = self._httpd.server_address[1]
        return f"http://127.0.0.1:{port}/dhus/"

    def start(self) -> DhusServer:
        self._httpd = start_server(_Handler, server_state=self)
        return self

    def stop(self) -> None:
        stop_server(self._httpd)
        self._httpd = None

    # -- OpenSearch ---------------------------------------------------------------------------------------------

    def search(self, q: str) -> list[DhusProduct]:
        rest = q
        found: dict[str, Any] = {}
        for key, pattern in _TERMS:
            m = pattern.search(rest)
            if m:
                found[key] = m.groups()
                rest = rest[: m.start()] + rest[m.end() :]
        if rest.strip():
            raise ValueError(f"unsupported query terms: {rest.strip()}")
        out = []
        for p in sorted(self.products.values(), key=lambda p: (p.begin, p.name)):
            if "date" in found:
                lo, hi = (datetime.fromisoformat(v.replace("Z", "+00:00")) for v in found["date"])
                if not lo <= p.begin.replace(tzinfo=timezone.utc) <= hi:
                    continue
            if "type" in found and p.product_type != found["type"][0]:
                continue
            if "cloud" in found:
                lo_c, hi_c = (float(v) for v in found["cloud"])
                if p.cloud is None or not lo_c <= p.cloud <= hi_c:
                    continue
            if "area" in found and not wkt.loads(found["area"][0]).intersects(p.footprint):
                continue
            out.append(p)
        return out

    def entry(self, p: DhusProduct) -> dict[str, Any]:
        odata = f"{self.url}odata/v1/Products('{p.uuid}')"
        strings = {"identifier": p.name, "filename": p.name + ".SAFE", "producttype": p.product_type,
                   "uuid": p.uuid, "footprint": p.footprint.wkt, "gmlfootprint": _gml(p.footprint),
                   "size": f"{p.size / 1024**2:.2f} MB", "format": "SAFE",
                   "platformname": "Sentinel-2" if p.name.startswith("S2") else "Sentinel-1"}  # fmt: skip
        if p.tile_id:
            strings["tileid"] = p.tile_id
        m = re.search(r"_N(\d{2})(\d{2})_", p.name)
        if m:
            strings["processingbaseline"] = f"{m.group(1)}.{m.group(2)}"
        links = [f"{odata}/$value", f"{odata}/", f"{odata}/Products('Quicklook')/$value"]
        dates = ["beginposition", "endposition", "ingestiondate"]
        entry: dict[str, Any] = {
            "title": p.name,
            "link": [{"href": links[0]}, {"rel": "alternative", "href": links[1]}, {"rel": "icon", "href": links[2]}],
            "id": p.uuid,
            "summary": f"Date: {_iso(p.begin)}, Size: {strings['size']}",
            "ondemand": "false" if p.online else "true",
            "date": [{"name": name, "content": _iso(p.begin)} for name in dates],
            "int": [{"name": "relativeorbitnumber", "content": str(p.relative_orbit)}],
            "str": [{"name": k, "content": v} for k, v in strings.items()],
        }
        if p.cloud is not None:
            entry["double"] = {"name": "cloudcoverpercentage", "content": f"{p.cloud:.4f}"}
        return entry

    def odata(self, p: DhusProduct) -> dict[str, Any]:
        uri = f"{self.url}odata/v1/Products('{p.uuid}')"
        return {"d": {
            "__metadata": {"id": uri, "uri": uri, "type": "DHuS.Product", "content_type": "application/octet-stream",
                           "media_src": f"{uri}/$value", "edit_media": f"{uri}/$value"},
            "Id": p.uuid, "Name": p.name, "ContentType": "application/octet-stream",
            "ContentLength": str(p.size), "ChildrenNumber": "0", "Value": None,
            "CreationDate": _odata_time(p.begin), "IngestionDate": _odata_time(p.begin),
            "ModificationDate": _odata_time(p.begin), "EvictionDate": None,
            "Online": p.online, "OnDemand": not p.online,
            "ContentDate": {"__metadata": {"type": "DHuS.TimeRange"}, "Start": _odata_time(p.begin),
                            "End": _odata_time(p.begin)},
            "Checksum": {"__metadata": {"type": "DHuS.Checksum"}, "Algorithm": "MD5", "Value": p.md5},
            "ContentGeometry": _gml(p.footprint),
            "Attributes": {"__deferred": {"uri": f"{uri}/Attributes"}},
        }}  # fmt: skip


class _Handler(QuietHandler):
    server_state: DhusServer

    def do_HEAD(self) -> None:
        self._handle(head=True)

    def do_GET(self) -> None:
        self._handle(head=False)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def _odata_error(self, status: int, text: str) -> None:
        self._json(status, {"error": {"code": None, "message": {"lang": "en", "value": text}}})

    def _handle(self, head: bool) -> None:
        state = self.server_state
        with state.lock:
            state.requests.append((self.command, self.path))
        if self.headers.get("Authorization") != state._auth:
            with state.lock:
                state.unauthorized += 1
            page = b"<html><head><title>401 Unauthorized</title></head><body><h1>Unauthorized</h1></body></html>"
            self._send(401, page, "text/html", {"WWW-Authenticate": 'Basic realm="DHuS"'})
            return
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        if not path.startswith("/dhus/"):
            self._send(404, b"not found", "text/plain")
            return
        path = path[len("/dhus/") :]
        if path == "search":
            self._search(parse_qs(parts.query))
            return
        m = _PRODUCT.match(path)
        product = state.products.get(m.group(1)) if m else None
        if m is None or product is None:
            key = m.group(1) if m else path
            self._odata_error(404, f"Invalid key ({key}) to access Products")
            return
        if m.group(2) is None:
            self._json(200, state.odata(product))
        elif m.group(2) == "/Online/$value":
            self._json(200, product.online)
        else:
            self._value(product, head)

    def _search(self, params: dict[str, list[str]]) -> None:
        state = self.server_state
        q = params.get("q", [""])[0]
        with state.lock:
            state.queries.append(q)
        if params.get("format") != ["json"]:
            self._send(400, b"only format=json here", "text/plain")
            return
        try:
            matches = state.search(q)
        except ValueError as exc:
            self._json(400, {"feed": {"error": {"message": str(exc)}}})
            return
        start, rows = int(params.get("start", ["0"])[0]), int(params.get("rows", ["10"])[0])
        page = matches[start : start + rows]
        feed = {"opensearch:totalResults": str(len(matches)), "opensearch:startIndex": str(start),
                "opensearch:itemsPerPage": str(rows), "entry": [state.entry(p) for p in page]}  # fmt: skip
        self._json(200, {"feed": feed})

    def _value(self, p: DhusProduct, head: bool) -> None:
        state = self.server_state
        size = p.size
        rng = self.headers.get("Range")
        if not head:
            with state.lock:
                state.ranges.append((p.uuid, rng))
        if not p.online:
            if rng:  # sentinelsat's trigger: bytes=0-1 on an offline product orders its retrieval
                with state.lock:
                    state.ordered.append(p.uuid)
                self._send(202, b"", "text/plain")
            else:
                self._odata_error(403, "Product is offline: order it first")
            return
        start, end, status = 0, size - 1, 200
        if rng:
            m = re.match(r"^bytes=(\d+)-(\d*)$", rng.strip())
            if not m or int(m.group(1)) >= size:
                self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{size}"})
                return
            start = int(m.group(1))
            end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Content-Disposition", f'inline;filename="{p.name}.zip"')
        self.send_header("ETag", p.md5)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if head:
            return
        with state.lock:
            cut = state.drop_after.pop(p.uuid, None) if status == 200 else None
        data = p.zip_path.read_bytes()[start : end + 1]
        if cut is not None:
            data = data[:cut]
        try:
            for offset in range(0, len(data), 64 * 1024):
                chunk = data[offset : offset + 64 * 1024]
                self.wfile.write(chunk)
                with state.lock:
                    state.bytes_served[p.uuid] += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            return
        if cut is not None:
            self.close_connection = True
            self.wfile.flush()
            self.connection.shutdown(2)


@contextmanager
def serve_dhus(products: list[DhusProduct], username: str, password: str) -> Iterator[DhusServer]:
    """Start a :class:`DhusServer` on 127.0.0.1 (a free port) for the block's duration."""
    server = DhusServer(products, username, password).start()
    try:
        yield server
    finally:
        server.stop()
