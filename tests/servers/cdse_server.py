"""A CDSE-protocol test server on 127.0.0.1, built from the documented response shapes.

* ``POST /auth/realms/CDSE/protocol/openid-connect/token``: Keycloak password / refresh-token grants
  (client ``cdse-public``), settable lifetimes, counted grants.
* ``GET /odata/v1/Products``: the OData ``$filter`` subset senprep emits (and / or, comparisons,
  ``OData.CSC.Intersects``, attribute ``any(...)``), ``$top``/``$skip`` paging with ``@odata.nextLink``,
  ``$expand=Attributes``, ``$count``; ``GET /odata/v1/Products(<Id>)``; ``POST .../OData.CSC.Order`` (an
  offline product comes online after N polls of its details, or never).
* ``GET|HEAD /download/odata/v1/Products(<Id>)/$value`` (redirected to ``/zipper/...``, as CDSE does) and
  ``.../Nodes(<SAFE>)/Nodes(...)/$value``: byte ranges, optional throttle, valid Bearer token required.

Echoes, for leak tests (each counted in ``echoes``): ``token_echo = (status, reason)`` makes the token
endpoint refuse every grant with that status and reason phrase, echoing the posted form back in the body
as JSON lists, nested objects, ``[name, value]`` pairs and free text (as some gateways do); an entry's
``echo`` makes its downloads echo the caller's Bearer token: ``"body"`` (a 403 whose body repeats it in free
text, a header object and a list), ``"redirect"`` (a redirect to a URL holding ``?token=<token>``, then
the file) or ``"redirect-error"`` (that redirect, then a 404 whose body and reason phrase repeat the URL).

Connections per account (CDSE allows 4 at once): every request carrying a valid Bearer token is counted
while it is served, per account (the user the token was issued to); ``active`` holds the requests in flight
and ``peak`` the most seen at once, per account.

Products come from a folder of SAFE folders / zips (metadata read with senprep's local provider),
metadata-only entries (search decoys) and auxiliary files (orbit ``.EOF``, served zipped).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import time
import uuid
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from senprep_core.catalog.local import LocalProvider
from tests.servers.base import CHUNK, QuietHandler, start_server, stop_server
from tests.servers.base import byte_span as byte_range
from tests.servers.odata_filter import compile_filter, parse_datetime

TOKEN_PATH = "/auth/realms/CDSE/protocol/openid-connect/token"
_PRODUCT = re.compile(r"^/odata/v1/Products\(([^)]+)\)(/OData\.CSC\.Order)?$")
_DOWNLOAD = re.compile(r"^/(download|zipper)/odata/v1/Products\(([^)]+)\)((?:/Nodes\([^)]*\))*)/\$value$")
_NODE = re.compile(r"/Nodes\(([^)]*)\)")


def _iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


@dataclass
class Entry:
    """One catalogue product. ``archive`` is the zip served by ``$value`` (None: metadata only)."""

    name: str
    collection: str
    start: datetime
    end: datetime
    footprint: BaseGeometry | None
    attributes: list[dict[str, Any]]
    online: bool = True
    archive: Path | None = None
    polls_to_online: int | None = None  # after an order: details polls until online (None: never)
    ordered: bool = False
    echo: str | None = None  # None, "body", "redirect" or "redirect-error": see the module docstring
    id: str = ""
    length: int = 0
    checksums: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.id = self.id or str(uuid.uuid5(uuid.NAMESPACE_URL, "cdse-test:" + self.name))
        if self.archive is not None:
            data = self.archive.read_bytes()
            self.length = len(data)
            md5 = hashlib.md5(data).hexdigest()
            self.checksums = [{"Value": md5, "Algorithm": "MD5", "ChecksumDate": _iso(self.start)}]

    def attribute(self, name: str) -> Any:
        return next((a["Value"] for a in self.attributes if a["Name"] == name), None)

    def to_json(self, expand: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "@odata.mediaContentType": "application/octet-stream",
            "Id": self.id,
            "Name": self.name,
            "ContentType": "application/octet-stream",
            "ContentLength": self.length,
            **dict.fromkeys(("OriginDate", "PublicationDate", "ModificationDate"), _iso(self.end)),
            "Online": self.online,
            "EvictionDate": "",
            "S3Path": f"/eodata/{self.collection.title()}/{self.start:%Y/%m/%d}/{self.name}",
            "Checksum": self.checksums,
            "ContentDate": {"Start": _iso(self.start), "End": _iso(self.end)},
            "Footprint": f"geography'SRID=4326;{self.footprint.wkt}'" if self.footprint is not None else None,
            "GeoFootprint": mapping(self.footprint) if self.footprint is not None else None,
        }
        if expand:
            out["Attributes"] = self.attributes
        return out


def attribute(name: str, value: Any) -> dict[str, Any]:
    """An OData.CSC attribute entry of the right type."""
    kind = "String" if isinstance(value, str) else "Integer" if isinstance(value, int) else "Double"
    return {"@odata.type": f"#OData.CSC.{kind}Attribute", "Name": name, "Value": value, "ValueType": kind}


class CdseServer:
    """The server; see the module docstring. Counters: ``grants``, ``bytes_served`` (per URL path),
    ``requests`` (method, path, had a Bearer header), ``unauthorized``, ``searches`` ($filter values)."""

    def __init__(
        self,
        work_dir: Path,
        *,
        username: str = "researcher@example.org",
        password: str = "test-password",
        access_lifetime: float = 600.0,
        refresh_lifetime: float = 3600.0,
        rate_bps: float | None = None,
        redirect: bool = True,
    ) -> None:
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.username, self.password = username, password
        self.access_lifetime, self.refresh_lifetime = access_lifetime, refresh_lifetime
        self.rate_bps = rate_bps
        self.redirect = redirect
        self.entries: dict[str, Entry] = {}
        self.grants: Counter[str] = Counter()
        self.bytes_served: Counter[str] = Counter()
        self.requests: list[tuple[str, str, bool]] = []
        self.searches: list[str] = []
        self.unauthorized = 0
        self.issued: list[str] = []  # every access / refresh token handed out (leak scans)
        self.token_echo: tuple[int, str] | None = None  # (status, reason): refuse grants, echoing the form
        self.echoes: Counter[str] = Counter()  # secrets echoed back, by kind
        self.active: Counter[str] = Counter()  # authenticated requests in flight, per account
        self.peak: Counter[str] = Counter()  # the most in flight at once, per account
        self._access: dict[str, float] = {}
        self._owners: dict[str, str] = {}  # access token -> user name
        self._refresh: dict[str, float] = {}
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self.url = self.token_url = self.odata_url = self.download_url = ""  # set by start()

    # ------------------------------------------------------------------ catalogue

    def add_products(self, folder: Path) -> list[Entry]:
        """Add every product of a folder of SAFE folders / zips (zipped for ``$value`` like CDSE)."""
        added = []
        for record in LocalProvider(folder).scan().products:
            source = Path(record.href)
            safe_name = record.product_id + ".SAFE"
            archive = self.work_dir / f"{record.product_id}.zip"
            if source.is_file():
                archive.write_bytes(source.read_bytes())
            elif not archive.exists():
                with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
                    for path in sorted(source.rglob("*")):
                        if path.is_file():
                            zf.write(path, f"{safe_name}/{path.relative_to(source).as_posix()}")
            if record.family == "S2":
                collection, cloud = "SENTINEL-2", float(record.cloud_cover or 0.0)
                attrs = [attribute("productType", record.product_type), attribute("cloudCover", cloud)]
                attrs.append(attribute("tileId", record.tile_id or ""))
            else:
                collection = "SENTINEL-1"
                attrs = [attribute("productType", "IW_GRDH_1S"), attribute("polarisationChannels", "VV&VH")]
            attrs += [attribute("relativeOrbitNumber", int(record.relative_orbit or 0)),
                      attribute("platformSerialIdentifier", record.mission[-1])]  # fmt: skip
            time_ = record.sensing_time
            entry = Entry(safe_name, collection, time_, time_, record.footprint, attrs, archive=archive)
            self.entries[entry.id] = entry
            added.append(entry)
        return added

    def add_entry(self, entry: Entry) -> Entry:
        """Add a metadata-only (or hand-made) entry."""
        self.entries[entry.id] = entry
        return entry

    def add_aux_file(self, path: Path, product_type: str, start: datetime, end: datetime) -> Entry:
        """Add an auxiliary file (e.g. an orbit ``.EOF``), served as a zip holding it, like CDSE."""
        archive = self.work_dir / f"{path.name}.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.write(path, path.name)
        attrs = [attribute("productType", product_type)]
        entry = Entry(path.name, "SENTINEL-1", start, end, None, attrs, archive=archive)
        self.entries[entry.id] = entry
        return entry

    def by_name(self, product_id: str) -> Entry:
        return next(e for e in self.entries.values() if e.name.removesuffix(".SAFE") == product_id)

    # ------------------------------------------------------------------ lifecycle

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes_served.values())

    def start(self) -> CdseServer:
        self._httpd = start_server(_Handler, owner=self)
        self.url = f"http://127.0.0.1:{self._httpd.server_port}"
        self.token_url, self.odata_url = self.url + TOKEN_PATH, self.url + "/odata/v1"
        self.download_url = self.url + "/download/odata/v1"  # the base URLs the provider gets
        return self

    def stop(self) -> None:
        stop_server(self._httpd)
        self._httpd = None

    # ------------------------------------------------------------------ tokens

    def _issue(self) -> dict[str, Any]:
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            self._access[access] = now + self.access_lifetime
            self._owners[access] = self.username
            self._refresh[refresh] = now + self.refresh_lifetime
            self.issued += [access, refresh]
        return {"access_token": access, "expires_in": self.access_lifetime, "refresh_token": refresh,
                "refresh_expires_in": self.refresh_lifetime, "token_type": "Bearer", "not-before-policy": 0,
                "session_state": str(uuid.uuid4()), "scope": "openid email profile user-context"}  # fmt: skip

    def token_answer(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        grant = form.get("grant_type", "")
        with self._lock:
            self.grants[grant] += 1
        if self.token_echo is not None:
            with self._lock:
                self.echoes["token-form"] += 1
            secret = form.get("password") or form.get("refresh_token", "")
            return self.token_echo[0], {
                "error": "invalid_request",
                "error_description": f"Invalid request for {form.get('username')} with password {secret}",
                **{name: [value] for name, value in form.items()},  # the form as JSON lists
                "request": {"form": {"fields": {name: [value] for name, value in form.items()}},
                            "pairs": [[name, value] for name, value in form.items()]},
            }  # fmt: skip
        if form.get("client_id") != "cdse-public":
            return 401, {"error": "invalid_client", "error_description": "Invalid client or Invalid client credentials"}
        if grant == "password":
            if form.get("username") == self.username and form.get("password") == self.password:
                return 200, self._issue()
            return 401, {"error": "invalid_grant", "error_description": "Invalid user credentials"}
        if grant == "refresh_token":
            expiry = self._refresh.get(form.get("refresh_token", ""))
            if expiry is not None and time.monotonic() < expiry:
                return 200, self._issue()
            return 400, {"error": "invalid_grant", "error_description": "Token is not active"}
        return 400, {"error": "unsupported_grant_type", "error_description": "Unsupported grant_type"}

    @contextmanager
    def connection(self, header: str | None) -> Iterator[Callable[[], None]]:
        """Count the request as one of its account's connections (valid tokens only) until it ends or the
        yielded ``done()`` says its last byte was sent."""
        token = (header or "").removeprefix("Bearer ")
        account = self._owners.get(token) if header and header.startswith("Bearer ") else None
        ended = [account is None]

        def done() -> None:
            with self._lock:
                if not ended[0]:
                    ended[0] = True
                    self.active[str(account)] -= 1

        if account is not None:
            with self._lock:
                self.active[account] += 1
                self.peak[account] = max(self.peak[account], self.active[account])
        try:
            yield done
        finally:
            done()

    def authorised(self, header: str | None) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        expiry = self._access.get(header[len("Bearer ") :])
        return expiry is not None and time.monotonic() < expiry

    # ------------------------------------------------------------------ search

    def search(self, query: dict[str, str], base: str) -> tuple[int, dict[str, Any]]:
        text = query.get("$filter", "")
        with self._lock:
            self.searches.append(text)
        try:
            predicate: Callable[[Entry], bool] = compile_filter(text) if text else (lambda e: True)
            top = int(query.get("$top", "20"))
            skip = int(query.get("$skip", "0"))
        except ValueError as exc:
            return 400, {"detail": f"Invalid query: {exc}"}
        if not 0 <= top <= 1000 or not 0 <= skip <= 10_000:
            return 422, {"detail": [{"type": "less_than_equal", "loc": ["query", "$top/$skip"], "msg": "out of range"}]}
        hits = [e for e in self.entries.values() if predicate(e)]
        hits.sort(key=lambda e: (e.start, e.name), reverse=query.get("$orderby", "").endswith("desc"))
        page = hits[skip : skip + top]
        expand = "Attributes" in query.get("$expand", "")
        out: dict[str, Any] = {"@odata.context": "$metadata#Products", "value": [e.to_json(expand) for e in page]}
        if query.get("$count", "").lower() == "true":
            out["@odata.count"] = len(hits)
        if skip + top < len(hits):
            out["@odata.nextLink"] = f"{base}/odata/v1/Products?" + urlencode({**query, "$skip": str(skip + top)})
        return 200, out

    def details(self, ident: str) -> Entry | None:
        entry = self.entries.get(ident)
        if entry is not None and entry.ordered and not entry.online and entry.polls_to_online is not None:
            with self._lock:
                entry.polls_to_online -= 1
                if entry.polls_to_online <= 0:
                    entry.online = True
        return entry

    def content(self, entry: Entry, nodes: list[str]) -> bytes | None:
        """The bytes of the whole archive (no nodes) or of one SAFE member; None when missing."""
        if entry.archive is None:
            return None
        if not nodes:
            return entry.archive.read_bytes()
        with zipfile.ZipFile(entry.archive) as zf:
            try:
                return zf.read("/".join(nodes))
            except KeyError:
                return None


class _Handler(QuietHandler):
    owner: CdseServer
    _done: Callable[[], None]  # the request's last byte is sent (ends its count as a connection)

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None, reason: str | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status, reason)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _denied(self) -> bool:
        """Answer 401 (and say so) unless the request carries a valid, unexpired Bearer token."""
        if self.owner.authorised(self.headers.get("Authorization")):
            return False
        self.owner.unauthorized += 1
        self._json(401, {"detail": "Expired signature!"})
        return True

    def _missing(self, entry: Entry | None) -> bool:
        if entry is None:
            self._json(404, {"detail": "Product not found"})
        return entry is None

    def _record(self, path: str) -> None:
        with self.owner._lock:
            self.owner.requests.append((self.command, path, bool(self.headers.get("Authorization"))))

    def do_POST(self) -> None:
        with self.owner.connection(self.headers.get("Authorization")) as self._done:
            self._post()

    def _post(self) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        self._record(path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        if path == TOKEN_PATH:
            form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
            status, answer = self.owner.token_answer(form)
            reason = self.owner.token_echo[1] + " " + form.get("password", "") if self.owner.token_echo else None
            self._json(status, answer, reason=reason)
            return
        m = _PRODUCT.match(path)
        if m and m.group(2):
            entry = self.owner.entries.get(m.group(1))
            if self._denied() or self._missing(entry):
                return
            assert entry is not None
            entry.ordered = True
            status = "completed" if entry.online else "queued"
            self._json(200, {"value": {"Id": str(uuid.uuid4()), "Status": status, "Priority": 1}})
            return
        self._json(404, {"detail": "Not Found"})

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        with self.owner.connection(self.headers.get("Authorization")) as self._done:
            self._get()

    def _get(self) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        self._record(path)
        owner = self.owner
        if path == "/odata/v1/Products":
            query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            self._json(*owner.search(query, owner.url))
            return
        m = _PRODUCT.match(path)
        if m and not m.group(2):
            entry = owner.details(m.group(1))
            if not self._missing(entry):
                self._json(200, entry.to_json(expand=True))  # type: ignore[union-attr]
            return
        m = _DOWNLOAD.match(path)
        if m is None:
            self._json(404, {"detail": "Not Found"})
            return
        host, ident, node_part = m.groups()
        entry = owner.entries.get(ident)
        if self._denied() or self._missing(entry):
            return
        assert entry is not None
        if not entry.online:
            self._json(409, {"detail": "Product is offline: order it first"})
            return
        nodes = _NODE.findall(node_part)
        if entry.echo is not None and self._echo(entry.echo, host, parts.query):
            return
        if host == "download" and owner.redirect and not nodes:
            self._json(302, {}, {"Location": path.replace("/download/", "/zipper/", 1)})
            return
        data = owner.content(entry, nodes)
        if data is None:
            self._json(404, {"detail": "Node not found"})
            return
        self._send_bytes(path, data)

    def _echo(self, mode: str, host: str, query: str) -> bool:
        """Echo the caller's Bearer token (see the module docstring); True when the request was answered."""
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        with self.owner._lock:
            self.owner.echoes[mode] += 1
        if mode == "body":
            headers = {"Authorization": [f"Bearer {token}"]}
            self._json(403, {"detail": f"token {token} may not read this product",
                             "request": {"headers": headers, "tokens": [token]}})  # fmt: skip
            return True
        if host == "download":  # both redirect modes: the token travels in the new URL
            self._json(302, {}, {"Location": self.path.replace("/download/", "/zipper/", 1) + f"?token={token}"})
            return True
        if mode == "redirect-error":
            url = f"{self.owner.url}{self.path}"
            self._json(404, {"detail": f"Not found: {url}", "url": url}, reason=f"Not Found {url}")
            return True
        return False  # "redirect" at its target: serve the file

    def _send_bytes(self, path: str, data: bytes) -> None:
        size = len(data)
        span = byte_range(self.headers.get("Range"), size)
        if span is None:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start, end, partial = span
        self.send_response(206 if partial else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if partial:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if self.command == "HEAD":
            return
        began, sent, rate = time.monotonic(), 0, self.owner.rate_bps
        for offset in range(start, end + 1, CHUNK):
            chunk = data[offset : min(offset + CHUNK, end + 1)]
            try:
                self.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                return
            sent += len(chunk)
            if offset + CHUNK > end:  # the last byte is out: the client may start its next request now
                self._done()
            with self.owner._lock:
                self.owner.bytes_served[path] += len(chunk)
            if rate and offset + CHUNK <= end:
                ahead = sent / rate - (time.monotonic() - began)
                if ahead > 0:
                    time.sleep(ahead)


__all__ = ["CdseServer", "Entry", "attribute", "compile_filter", "parse_datetime"]
