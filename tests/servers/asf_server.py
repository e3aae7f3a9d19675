"""ASF's Sentinel-1 archive and NASA Earthdata Login on 127.0.0.1: two servers answering as the real ones do.

Where the shapes come from:

* the Search API (``GET /services/search/param``, keywords ``platform``, ``processingLevel``, ``beamMode``,
  ``start``, ``end``, ``intersectsWith`` (WKT), ``maxResults``, ``output``; keywords are case sensitive,
  errors come back as JSON): ASF's documentation, https://docs.asf.alaska.edu/api/keywords/ ;
* the ``output=geojson`` answer, a FeatureCollection whose features' properties are ``beamModeType``,
  ``browse``, ``bytes``, ``centerLat``, ``centerLon``, ``faradayRotation``, ``fileID``, ``fileName``,
  ``flightDirection``, ``frameNumber``, ``groupID``, ``granuleType``, ``insarStackId``, ``md5sum``,
  ``offNadirAngle``, ``orbit``, ``pathNumber``, ``platform``, ``pointingAngle``, ``polarization``,
  ``processingDate``, ``processingLevel``, ``sceneName``, ``sensor``, ``startTime``, ``stopTime``, ``url``:
  the recorded Sentinel-1 GRD answer in asf_search's tests (asfadmin/Discovery-asf_search,
  ``tests/yml_tests/Resources/S1_response.yml``) and its GeoJSON writer (``asf_search/export/geojson.py``);
* the download flow: a datapool URL ``/GRD_HD/SA/<scene>.zip`` redirects (307) a client without a valid
  ``asf-urs`` session cookie to Earthdata Login's ``/oauth/authorize?client_id=...&response_type=code&
  redirect_uri=<asf>/login&state=<path>``; Earthdata Login answers Basic credentials with a 302 to the
  ``redirect_uri`` holding a one-time ``code``, or 401 with ``WWW-Authenticate: Basic``; ASF's ``/login``
  redeems the code, sets ``asf-urs`` (and ``urs-user-id``, ``urs-access-token``) and redirects to the file,
  which comes from a signed storage URL (307 to ``/s3/...?X-Amz-...&X-Amz-Signature=...``, served with
  byte ranges): asf_search's ``ASFSession`` (``_legacy_creds_auth``, ``rebuild_auth``, the
  ``asf.alaska.edu`` / ``earthdata.nasa.gov`` auth domains) and ``download.py`` (``strip_auth_if_aws``),
  and NASA's Earthdata Login documentation (https://urs.earthdata.nasa.gov/documentation).

Test hooks: ``session_lifetime`` (seconds an ``asf-urs`` session is accepted; :meth:`AsfServer.expire_sessions`
ends them all), ``drop_after`` (the next signed download closes its connection after that many bytes; with
``expire_on_drop`` every session ends then too),
``corrupt`` (scene names served with a flipped byte), counters ``searches``, ``bytes_served``,
``basic_seen`` (requests to ASF that carried an Authorization header: must stay 0) and the login
server's ``logins`` / ``refused`` / ``basic_paths``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
import zipfile
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from shapely import wkt as shapely_wkt
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from senprep_core.catalog.local import LocalProvider
from tests.servers.base import QuietHandler, send_bytes, send_json, start_server, stop_server

CLIENT_ID = "BO_n7nTIlMljdvU6kRRB3g"  # asf_search's Earthdata Login client id
KEYWORDS = {"platform", "processingLevel", "beamMode", "start", "end", "intersectsWith", "maxResults", "output",
            "granule_list", "flightDirection", "relativeOrbit"}  # fmt: skip
_PLATFORMS = {"S1": "", "SENTINEL-1": "", "SENTINEL": "", "SA": "A", "SENTINEL-1A": "A", "SB": "B",
              "SENTINEL-1B": "B"}  # fmt: skip


def _stamp(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class Scene:
    """One Sentinel-1 GRD product of the archive (its zip and the metadata of its search feature)."""

    name: str
    start: datetime
    stop: datetime
    footprint: BaseGeometry
    relative_orbit: int
    direction: str
    archive: Path
    md5: str = ""
    size: int = 0

    def __post_init__(self) -> None:
        data = self.archive.read_bytes()
        self.md5, self.size = hashlib.md5(data).hexdigest(), len(data)

    @property
    def mission(self) -> str:
        return self.name[:3]

    @property
    def path(self) -> str:
        return f"/GRD_HD/S{self.mission[-1]}/{self.name}.zip"

    def feature(self, base: str) -> dict[str, Any]:
        centre = self.footprint.centroid
        absolute = int(self.name.split("_")[6])
        return {
            "type": "Feature",
            "geometry": mapping(self.footprint),
            "properties": {
                "beamModeType": "IW", "browse": f"{base}/BROWSE/S{self.mission[-1]}/{self.name}.jpg",
                "bytes": self.size, "centerLat": round(centre.y, 4), "centerLon": round(centre.x, 4),
                "faradayRotation": None, "fileID": f"{self.name}-GRD_HD", "fileName": f"{self.name}.zip",
                "flightDirection": self.direction.upper(), "frameNumber": "210",
                "groupID": f"{self.mission}_IWDV_0210_0215_{absolute:06d}_{self.relative_orbit:03d}",
                "granuleType": f"SENTINEL_1{self.mission[-1]}_FRAME", "insarStackId": None, "md5sum": self.md5,
                "offNadirAngle": None, "orbit": absolute, "pathNumber": self.relative_orbit,
                "platform": f"Sentinel-1{self.mission[-1]}", "pointingAngle": None, "polarization": "VV+VH",
                "processingDate": _stamp(self.start), "processingLevel": "GRD_HD", "sceneName": self.name,
                "sensor": "C-SAR", "startTime": _stamp(self.start), "stopTime": _stamp(self.stop),
                "url": base + self.path,
            },
        }  # fmt: skip


class EarthdataLoginServer:
    """NASA Earthdata Login (URS): ``/oauth/authorize`` with Basic credentials gives a one-time code."""

    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username, password
        self.logins = 0
        self.refused = 0
        self.basic_paths: list[str] = []  # paths that received Basic credentials
        self._codes: dict[str, str] = {}
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self.url = ""

    def start(self) -> EarthdataLoginServer:
        self._httpd = start_server(_UrsHandler, owner=self)
        self.url = f"http://127.0.0.1:{self._httpd.server_port}"
        return self

    def stop(self) -> None:
        stop_server(self._httpd)

    def authorize(self, header: str | None) -> str | None:
        """A code for valid Basic credentials, else None."""
        import base64

        if not header or not header.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        if (user, password) != (self.username, self.password):
            with self._lock:
                self.refused += 1
            return None
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = user
            self.logins += 1
        return code

    def redeem(self, code: str) -> str | None:
        """The user of a one-time code (what ASF's /login asks Earthdata Login, server to server)."""
        with self._lock:
            return self._codes.pop(code, None)


class _UrsHandler(QuietHandler):
    owner: EarthdataLoginServer

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        owner = self.owner
        header = self.headers.get("Authorization")
        if header:
            with owner._lock:
                owner.basic_paths.append(parts.path)
        if parts.path != "/oauth/authorize":
            send_json(self, 404, {"error": "not_found"})
            return
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if query.get("client_id") != CLIENT_ID or query.get("response_type") != "code":
            refusal = {"error": "invalid_request", "error_description": "Invalid client_id or response_type"}
            send_json(self, 400, refusal)
            return
        code = owner.authorize(header)
        if code is None:
            body = b"HTTP Basic: Access denied.\n"
            self.send_response(401)
            self.send_header(
                "WWW-Authenticate",
                'Basic realm="Please enter your Earthdata Login credentials. If you '
                'do not have a Earthdata Login, create one at https://urs.earthdata.nasa.gov//users/new"',
            )
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        target = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query.get('state', '')})}"
        self.send_response(302)
        self.send_header("Location", target)
        self.send_header("Content-Length", "0")
        self.end_headers()


class AsfServer:
    """ASF's Search API, datapool, login callback and signed storage (see the module docstring)."""

    def __init__(self, work_dir: Path, login: EarthdataLoginServer, *, session_lifetime: float = 3600.0) -> None:
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.login = login
        self.session_lifetime = session_lifetime
        self.scenes: dict[str, Scene] = {}
        self.searches: list[dict[str, str]] = []
        self.bytes_served: Counter[str] = Counter()
        self.basic_seen = 0
        self.sessions_started = 0
        self.drop_after: int | None = None
        self.expire_on_drop = False  # the drop also ends every session: the resume must log in again
        self.corrupt: set[str] = set()
        self._sessions: dict[str, float] = {}
        self._key = secrets.token_bytes(16)
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self.url = ""

    def add_products(self, folder: Path) -> list[Scene]:
        """Every Sentinel-1 product of a folder of SAFE folders / zips (zipped like ASF's)."""
        added = []
        for record in LocalProvider(folder).scan().products:
            if record.family != "S1":
                continue
            source, archive = Path(record.href), self.work_dir / f"{record.product_id}.zip"
            if source.is_file():
                archive.write_bytes(source.read_bytes())
            elif not archive.exists():
                with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
                    for path in sorted(source.rglob("*")):
                        if path.is_file():
                            zf.write(path, f"{record.product_id}.SAFE/{path.relative_to(source).as_posix()}")
            assert record.footprint is not None
            scene = Scene(record.product_id, record.sensing_time, record.sensing_time, record.footprint,
                          int(record.relative_orbit or 1), record.orbit_direction or "ascending", archive)  # fmt: skip
            self.scenes[scene.name] = scene
            added.append(scene)
        return added

    def start(self) -> AsfServer:
        self._httpd = start_server(_AsfHandler, owner=self)
        self.url = f"http://127.0.0.1:{self._httpd.server_port}"
        return self

    def stop(self) -> None:
        stop_server(self._httpd)

    def expire_sessions(self) -> None:
        """End every download session (as when ``asf-urs`` cookies expire)."""
        with self._lock:
            self._sessions.clear()

    def new_session(self) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[token] = time.monotonic() + self.session_lifetime
            self.sessions_started += 1
        return token

    def valid_session(self, cookies: str | None) -> bool:
        for part in (cookies or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == "asf-urs" and self._sessions.get(value, 0.0) > time.monotonic():
                return True
        return False

    def signature(self, path: str) -> str:
        return hmac.new(self._key, path.encode(), hashlib.sha256).hexdigest()

    def search(self, query: dict[str, str]) -> tuple[int, Any]:
        with self._lock:
            self.searches.append(dict(query))
        unknown = sorted(set(query) - KEYWORDS)
        if unknown:
            return 400, {"error": {"type": "KEYWORD", "report": f"Unknown keyword(s): {', '.join(unknown)}"}}
        if query.get("output", "metalink").lower() != "geojson":
            return 400, {"error": {"type": "VALUE", "report": "this server answers output=geojson only"}}
        try:
            area = shapely_wkt.loads(query["intersectsWith"]) if "intersectsWith" in query else None
            start = datetime.fromisoformat(query["start"].replace("Z", "+00:00")) if "start" in query else None
            end = datetime.fromisoformat(query["end"].replace("Z", "+00:00")) if "end" in query else None
            limit = int(query.get("maxResults", "1000000"))
        except (ValueError, KeyError, Exception) as exc:
            return 400, {"error": {"type": "VALUE", "report": f"Validation Error: {exc}"}}
        missions = {_PLATFORMS.get(p.strip().upper(), "?") for p in query.get("platform", "S1").split(",")}
        hits = []
        for scene in sorted(self.scenes.values(), key=lambda s: s.start, reverse=True):  # newest first, as ASF
            if not ("" in missions or scene.mission[-1] in missions):
                continue
            if query.get("processingLevel", "GRD_HD") != "GRD_HD" or query.get("beamMode", "IW") != "IW":
                continue
            if (start and scene.start < start) or (end and scene.start > end):
                continue
            if area is not None and not scene.footprint.intersects(area):
                continue
            hits.append(scene.feature(self.url))
        return 200, {"type": "FeatureCollection", "features": hits[:limit]}


class _AsfHandler(QuietHandler):
    owner: AsfServer

    def _redirect(self, status: int, location: str, cookies: tuple[str, ...] = ()) -> None:
        self.send_response(status)
        self.send_header("Location", location)
        for cookie in cookies:
            self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        owner = self.owner
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if self.headers.get("Authorization"):
            with owner._lock:
                owner.basic_seen += 1
        if path == "/services/search/param":
            send_json(self, *owner.search(query))
        elif path == "/login":
            self._login(query)
        elif path.startswith("/GRD_HD/"):
            self._datapool(path)
        elif path.startswith("/s3/"):
            self._storage(path, query)
        else:
            send_json(self, 404, {"error": {"type": "NOT_FOUND", "report": f"{path} not found"}})

    def _login(self, query: dict[str, str]) -> None:
        owner = self.owner
        user = owner.login.redeem(query.get("code", ""))
        if user is None:
            send_json(self, 401, {"error": "invalid_grant", "error_description": "Code is invalid or expired"})
            return
        token = owner.new_session()
        week = 7 * 24 * 3600
        cookies = (f"asf-urs={token}; Max-Age={week}; Path=/; HttpOnly", f"urs-user-id={user}; Max-Age={week}; Path=/",
                   f"urs-access-token={secrets.token_urlsafe(24)}; Max-Age={week}; Path=/")  # fmt: skip
        self._redirect(302, owner.url + query.get("state", "/"), cookies)

    def _datapool(self, path: str) -> None:
        owner = self.owner
        name = path.rsplit("/", 1)[-1].removesuffix(".zip")
        scene = owner.scenes.get(name)
        if scene is None or scene.path != path:
            send_json(self, 404, {"error": {"type": "NOT_FOUND", "report": f"{path} not found"}})
            return
        if not owner.valid_session(self.headers.get("Cookie")):
            params = {"client_id": CLIENT_ID, "response_type": "code", "redirect_uri": f"{owner.url}/login",
                      "state": path}  # fmt: skip
            self._redirect(307, f"{owner.login.url}/oauth/authorize?{urlencode(params)}")
            return
        target = f"/s3/{quote(name)}.zip"
        signed = {"X-Amz-Algorithm": "AWS4-HMAC-SHA256", "X-Amz-Credential": "ASIAEXAMPLE/us-west-2/s3/aws4_request",
                  "X-Amz-Expires": "3600", "X-Amz-Signature": owner.signature(target)}  # fmt: skip
        self._redirect(307, f"{owner.url}{target}?{urlencode(signed)}")

    def _storage(self, path: str, query: dict[str, str]) -> None:
        owner = self.owner
        name = path.removeprefix("/s3/").removesuffix(".zip")
        scene = owner.scenes.get(name)
        if scene is None or not hmac.compare_digest(query.get("X-Amz-Signature", ""), owner.signature(path)):
            body = b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code></Error>"
            self.send_response(403)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        data = scene.archive.read_bytes()
        if name in owner.corrupt:
            data = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
        with owner._lock:
            drop, owner.drop_after = owner.drop_after, None
        if drop is not None and owner.expire_on_drop:
            owner.expire_sessions()

        def counted(n: int) -> None:
            with owner._lock:
                owner.bytes_served[name] += n

        send_bytes(self, data, {"ETag": f'"{scene.md5}"'}, drop_after=drop, counted=counted)


__all__ = ["AsfServer", "EarthdataLoginServer", "Scene"]
