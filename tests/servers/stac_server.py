"""A real STAC API on 127.0.0.1 for tests: rustac's server (in-memory backend) behind a recording proxy.

``rustac serve`` answers the STAC API (item search with ``intersects`` / ``datetime`` / ``collections``,
paging through POST ``next`` links with ``skip``). The thin proxy in front of it records every request
(method, path, JSON body) so tests can count pages server-side and see which filters a client sent,
and can advertise extra conformance classes while stripping the matching body keys, to play a server
that declares a filter but ignores it.

Found with rustac 0.9 (CLI 0.2.18), memory backend: conformance is core, ogcapi-features, collections
and item-search only. A POST body holding ``query`` or ``filter-lang`` gets an EMPTY answer (not the
unfiltered one), a bare CQL2 ``filter`` is ignored, ``sortby`` / ``fields`` are ignored, and a GET
``/search`` with ``collections`` plus ``limit`` fails with HTTP 500. POST searches page correctly.

The module also builds synthetic Sentinel-1/2 items in each catalogue's dialect (Earth Search,
Planetary Computer, CDSE).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from tests.servers.base import QuietHandler, start_server, stop_server

#: Body keys dropped for each advertised conformance class when ``ignore_filters`` is set.
_FILTER_KEYS = ("query", "filter", "filter-lang", "filter_lang", "filter-crs")
QUERY_CONFORMANCE = "https://api.stacspec.org/v1.0.0/item-search#query"
FILTER_CONFORMANCE = "https://api.stacspec.org/v1.0.0-rc.2/item-search#filter"


def rustac_command() -> list[str] | None:
    """How to run rustac (the venv's script next to the interpreter, or on PATH); None if not installed."""
    local = Path(sys.executable).parent / "rustac"
    if local.exists():
        return [str(local)]
    found = shutil.which("rustac")
    return [found] if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class StacServer:
    """``rustac serve`` loaded with ``items`` (dicts), reached through a recording proxy at :attr:`url`.

    ``advertise``: extra conformance URIs added to the landing page and ``/conformance``.
    ``ignore_filters``: drop ``query`` / ``filter`` keys from search bodies before rustac sees them.
    """

    def __init__(
        self, items: Iterable[dict[str, Any]], *, advertise: Sequence[str] = (), ignore_filters: bool = False
    ) -> None:
        self.items = list(items)
        self.advertise = list(advertise)
        self.ignore_filters = ignore_filters
        self.requests: list[tuple[str, str, dict[str, Any] | None]] = []
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._proxy: ThreadingHTTPServer | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.backend = ""

    @property
    def url(self) -> str:
        if self._proxy is None:
            raise RuntimeError("server not started")
        return f"http://127.0.0.1:{self._proxy.server_address[1]}"

    @property
    def search_bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies of every POST /search, in order (as the client sent them)."""
        with self._lock:
            return [b or {} for m, p, b in self.requests if m == "POST" and p.rstrip("/").endswith("/search")]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def start(self, timeout: float = 30.0) -> StacServer:
        command = rustac_command()
        if command is None:
            raise RuntimeError("rustac is not installed; pip install rustac")
        self._tmp = tempfile.TemporaryDirectory(prefix="stac-server-")
        data = Path(self._tmp.name) / "items.json"
        data.write_text(json.dumps({"type": "FeatureCollection", "features": self.items}), encoding="utf-8")
        self._start_proxy()
        self.backend = f"127.0.0.1:{_free_port()}"
        log = (Path(self._tmp.name) / "rustac.log").open("wb")
        self._proc = subprocess.Popen(
            [*command, "serve", "--create-collections", "-a", self.url, "-b", self.backend, str(data)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                out = (Path(self._tmp.name) / "rustac.log").read_text(errors="replace")
                self.stop()
                raise RuntimeError(f"rustac serve exited with {self._proc.returncode}: {out[-2000:]}")
            try:
                if requests.get(f"http://{self.backend}/", timeout=2).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"rustac serve did not answer on {self.backend} within {timeout} s")
            time.sleep(0.1)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        stop_server(self._proxy)
        self._proxy = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # ------------------------------------------------------------ the proxy

    def _start_proxy(self) -> None:
        self._proxy = start_server(_ProxyHandler, server_owner=self)


class _ProxyHandler(QuietHandler):
    server_owner: StacServer

    def do_GET(self) -> None:
        self._forward(None)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        self._forward(body if isinstance(body, dict) else None, raw)

    def _forward(self, body: dict[str, Any] | None, raw: bytes = b"") -> None:
        owner = self.server_owner
        path = self.path.split("?", 1)[0]
        with owner._lock:
            owner.requests.append((self.command, path, json.loads(json.dumps(body)) if body is not None else None))
        target = f"http://{owner.backend}{self.path}"
        if self.command == "POST":
            sent = dict(body or {})
            if owner.ignore_filters:
                for key in _FILTER_KEYS:
                    sent.pop(key, None)
            answer = requests.post(target, json=sent, timeout=30) if body is not None else None
            if answer is None:
                answer = requests.post(target, data=raw, headers={"Content-Type": "application/json"}, timeout=30)
        else:
            answer = requests.get(target, timeout=30)
        content = answer.content
        if self.command == "GET" and path in ("/", "/conformance") and owner.advertise and answer.ok:
            doc = answer.json()
            doc["conformsTo"] = [*doc.get("conformsTo", []), *owner.advertise]
            content = json.dumps(doc).encode()
        self.send_response(answer.status_code)
        self.send_header("Content-Type", answer.headers.get("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)


@contextmanager
def serve_stac(items: Iterable[dict[str, Any]], **kwargs: Any) -> Iterator[StacServer]:
    """Run a :class:`StacServer` for the block's duration."""
    server = StacServer(items, **kwargs).start()
    try:
        yield server
    finally:
        server.stop()


def load_items(*folders: Path) -> list[dict[str, Any]]:
    """Every STAC item JSON (``"type": "Feature"``) in the folders, sorted by file name."""
    out = []
    for folder in folders:
        for path in sorted(Path(folder).glob("*.json")):
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("type") == "Feature":
                out.append(data)
    return out


# ---------------------------------------------------------------- synthetic items

#: Key holding the product id a synthetic item stands for (what the mapping must find).
EXPECTED_ID = "test:expected_product_id"


def _box(lon: float, lat: float, size: float) -> dict[str, Any]:
    ring = [[lon, lat], [lon + size, lat], [lon + size, lat + size], [lon, lat + size], [lon, lat]]
    return {"type": "Polygon", "coordinates": [ring]}


def _stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def synthetic_s2_items(
    dialect: str,
    *,
    n: int = 25,
    start: datetime = datetime(2023, 5, 1, 10, 20, 31, tzinfo=timezone.utc),
    step: timedelta = timedelta(days=2),
    origin: tuple[float, float] = (11.0, 47.0),
    level: str = "L2A",
    tile: str = "32TPT",
) -> list[dict[str, Any]]:
    """``n`` S2 items every ``step`` from ``start``, with cloud covers spread over 0-100 %.

    Footprints are 0.5 degree boxes at ``origin``; every fifth item lies 3 degrees further east (it does
    not touch an ROI near ``origin``). ``dialect``: "earth-search", "planetary-computer" or "cdse".
    """
    items = []
    for i in range(n):
        t = start + i * step
        mission = "S2A" if i % 2 else "S2B"
        orbit = 65 + (i % 3)
        generation = (t + timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
        safe = f"{mission}_MSI{level}_{t:%Y%m%dT%H%M%S}_N0511_R{orbit:03d}_T{tile}_{generation:%Y%m%dT%H%M%S}"
        lon = origin[0] + (3.0 if i % 5 == 4 else 0.0)
        cloud = round((i * 37 % 100) + 0.25, 2)
        geometry = _box(lon, origin[1], 0.5)
        bbox = [lon, origin[1], lon + 0.5, origin[1] + 0.5]
        platform = f"sentinel-2{mission[-1].lower()}"
        props: dict[str, Any] = {"datetime": _stamp(t), "platform": platform, "eo:cloud_cover": cloud}
        base = f"https://example.invalid/{dialect}/{safe}"
        transform = [10, 0, 600000, 0, -10, 5300040]
        if dialect == "earth-search":
            collection = "sentinel-2-c1-l2a" if level == "L2A" else "sentinel-2-l1c"
            item_id = f"{mission}_T{tile}_{t:%Y%m%dT%H%M%S}_{level}"
            props.update({
                "grid:code": f"MGRS-{tile}", "mgrs:utm_zone": int(tile[:2]), "mgrs:latitude_band": tile[2],
                "mgrs:grid_square": tile[3:], "s2:product_uri": safe + ".SAFE", "s2:processing_baseline": "05.11",
                "s2:product_type": f"S2MSI{level[1:]}", "proj:epsg": 32632,
            })  # fmt: skip
            raster = [{"nodata": 0, "scale": 0.0001, "offset": -0.1}]
            assets = {
                "red": {"href": f"{base}/B04.tif", "type": "image/tiff; application=geotiff", "gsd": 10,
                        "proj:shape": [10980, 10980], "proj:transform": transform, "raster:bands": raster},
            }  # fmt: skip
        elif dialect == "planetary-computer":
            collection = "sentinel-2-l2a"
            item_id = f"{mission}_MSI{level}_{t:%Y%m%dT%H%M%S}_R{orbit:03d}_T{tile}_{generation:%Y%m%dT%H%M%S}"
            props.update({
                "s2:mgrs_tile": tile, "s2:product_uri": safe + ".SAFE", "s2:processing_baseline": "05.11",
                "s2:product_type": f"S2MSI{level[1:]}", "sat:relative_orbit": orbit, "proj:epsg": 32632,
                "sat:orbit_state": "descending",
            })  # fmt: skip
            blob = f"https://sentinel2l2a01.blob.core.windows.net/sentinel2-l2/32/T/PT/{safe}.SAFE"
            assets = {"B04": {"href": f"{blob}/B04_10m.tif", "type": "image/tiff; application=geotiff",
                              "gsd": 10.0, "proj:shape": [10980, 10980], "proj:transform": transform,
                              "roles": ["data"]}}  # fmt: skip
        elif dialect == "cdse":
            collection = f"sentinel-2-{level.lower()}"
            item_id = safe
            props.update({
                "grid:code": f"MGRS-{tile}", "product:type": f"S2MSI{level[1:]}", "processing:version": "05.11",
                "sat:relative_orbit": orbit, "sat:orbit_state": "descending",
            })  # fmt: skip
            assets = {
                "B04_10m": {"href": f"s3://eodata/Sentinel-2/{safe}.SAFE/B04_10m.jp2", "type": "image/jp2", "gsd": 10,
                            "proj:code": "EPSG:32632", "proj:shape": [10980, 10980], "proj:transform": transform,
                            "raster:scale": 0.0001, "raster:offset": -0.1},
            }  # fmt: skip
        else:
            raise ValueError(f"unknown dialect {dialect!r}")
        props[EXPECTED_ID] = safe
        items.append(_feature(item_id, collection, geometry, bbox, props, assets))
    return items


def synthetic_s1_items(
    dialect: str,
    *,
    n: int = 12,
    start: datetime = datetime(2023, 5, 2, 5, 30, 10, tzinfo=timezone.utc),
    step: timedelta = timedelta(days=3),
    origin: tuple[float, float] = (10.5, 46.5),
) -> list[dict[str, Any]]:
    """``n`` S1 IW GRDH items (dialect "planetary-computer" or "cdse"); every fourth lies 4 degrees east."""
    items = []
    for i in range(n):
        t = start + i * step
        mission = "S1A"
        absolute = 48000 + 37 * i
        relative = ((absolute - 73) % 175) + 1
        stop = t + timedelta(seconds=25)
        stem = f"{mission}_IW_GRDH_1SDV_{t:%Y%m%dT%H%M%S}_{stop:%Y%m%dT%H%M%S}_{absolute:06d}_{0x5A000 + i:06X}"
        safe = f"{stem}_{(0xA1B0 + i) & 0xFFFF:04X}"
        lon = origin[0] + (4.0 if i % 4 == 3 else 0.0)
        geometry = _box(lon, origin[1], 2.0)
        bbox = [lon, origin[1], lon + 2.0, origin[1] + 2.0]
        props: dict[str, Any] = {
            "datetime": _stamp(t),
            "start_datetime": _stamp(t),
            "end_datetime": _stamp(stop),
            "platform": "sentinel-1a",
            "sar:instrument_mode": "IW",
            "sar:polarizations": ["VV", "VH"],
            "sar:product_type": "GRD",
            "sat:orbit_state": "ascending" if i % 2 else "descending",
            "sat:relative_orbit": relative,
            "sat:absolute_orbit": absolute,
            EXPECTED_ID: safe,
        }
        if dialect == "planetary-computer":
            item_id = stem  # PC drops the product CRC from the id
            blob = f"https://sentinel1euwest.blob.core.windows.net/s1-grd/GRD/{t:%Y/%-m/%-d}/IW/DV/{safe}"
            assets = {
                "vv": {"href": f"{blob}/measurement/iw-vv.tiff", "type": "image/tiff; application=geotiff"},
                "vh": {"href": f"{blob}/measurement/iw-vh.tiff", "type": "image/tiff; application=geotiff"},
                "safe-manifest": {"href": f"{blob}/manifest.safe", "type": "application/xml"},
            }
        elif dialect == "cdse":
            item_id = safe
            props["product:type"] = "IW_GRDH_1S"
            assets = {"Product": {"href": f"https://download.example.invalid/{safe}.zip", "file:size": 1_700_000_000}}
        else:
            raise ValueError(f"unknown dialect {dialect!r}")
        items.append(_feature(item_id, "sentinel-1-grd", geometry, bbox, props, assets))
    return items


def _feature(
    item_id: str,
    collection: str,
    geometry: dict[str, Any],
    bbox: list[float],
    props: dict[str, Any],
    assets: dict[str, Any],
) -> dict[str, Any]:
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [],
        "id": item_id,
        "collection": collection,
        "geometry": geometry,
        "bbox": bbox,
        "properties": props,
        "links": [],
        "assets": assets,
    }


def cdse_stac_item(entry: Any, cdse_url: str) -> dict[str, Any]:
    """The CDSE STAC item of a product the CDSE test server holds (an ``Entry`` with an archive): the shape of
    the real CDSE STAC 1.1 item in ../shared/data/real-samples/stac/cdse (``s3://eodata`` hrefs with ``https``
    alternates on the OData ``Nodes`` endpoint, a ``Product`` asset with ``file:size`` and an MD5 multihash
    ``file:checksum``, SHA3-256 multihashes on the files, the ``oidc`` scheme of ``auth:schemes``), pointing at
    the test server ``cdse_url``."""
    import hashlib
    import zipfile

    from shapely.geometry import mapping

    safe = entry.name
    stem = safe.removesuffix(".SAFE")
    s2 = entry.collection == "SENTINEL-2"
    level = "L2A" if "MSIL2A" in stem else "L1C"
    folder = f"Sentinel-2/MSI/{level}" if s2 else "Sentinel-1/SAR/IW_GRDH_1S"
    s3 = f"s3://eodata/{folder}/{entry.start:%Y/%m/%d}/{safe}"
    oidc = f"{cdse_url}/auth/realms/CDSE/.well-known/openid-configuration"
    assets: dict[str, Any] = {
        "Product": {"href": f"{cdse_url}/download/odata/v1/Products({entry.id})/$value", "type": "application/zip",
                    "file:size": entry.length, "file:checksum": "d50110" + entry.checksums[0]["Value"],
                    "roles": ["data", "metadata", "archive"], "title": "Zipped product", "auth:refs": ["oidc"]},
    }  # fmt: skip
    names = {"manifest.safe": "safe_manifest", "MTD_MSIL2A.xml": "product_metadata",
             "MTD_MSIL1C.xml": "product_metadata", "MTD_TL.xml": "granule_metadata"}  # fmt: skip
    with zipfile.ZipFile(entry.archive) as zf:
        for info in zf.infolist():
            member = info.filename.split("/", 1)[1]
            leaf = member.rsplit("/", 1)[-1]
            if info.is_dir() or not (leaf in names or leaf.endswith(".jp2")):
                continue
            key = names.get(leaf) or leaf.removesuffix(".jp2").split("_", 2)[-1]
            nodes = "/".join(f"Nodes({p})" for p in [safe, *member.split("/")])
            digest = hashlib.sha3_256(zf.read(info)).hexdigest()
            https = f"{cdse_url}/zipper/odata/v1/Products({entry.id})/{nodes}/$value"
            assets[key] = {"href": f"{s3}/{member}", "file:size": info.file_size, "file:checksum": "1620" + digest,
                           "alternate": {"https": {"href": https, "auth:refs": ["oidc"], "alternate:name": "HTTPS"}},
                           "auth:refs": ["s3"], "alternate:name": "S3"}  # fmt: skip
    props: dict[str, Any] = {
        "datetime": _stamp(entry.start), "start_datetime": _stamp(entry.start), "end_datetime": _stamp(entry.end),
        "platform": f"sentinel-{'2' if s2 else '1'}{stem[2].lower()}",
        "constellation": "sentinel-2" if s2 else "sentinel-1",
        "sat:relative_orbit": entry.attribute("relativeOrbitNumber"), "sat:orbit_state": "descending",
        "auth:schemes": {"s3": {"type": "s3"}, "oidc": {"type": "openIdConnect", "openIdConnectUrl": oidc}},
    }  # fmt: skip
    if s2:
        baseline = stem[28:30] + "." + stem[30:32]
        props.update({"eo:cloud_cover": entry.attribute("cloudCover"), "grid:code": f"MGRS-{entry.attribute('tileId')}",
                      "product:type": entry.attribute("productType"), "processing:version": baseline})  # fmt: skip
    else:
        props.update({"product:type": "IW_GRDH_1S", "sar:instrument_mode": "IW", "sar:polarizations": ["VV", "VH"],
                      "sar:product_type": "GRD"})  # fmt: skip
    collection = f"sentinel-2-{level.lower()}" if s2 else "sentinel-1-grd"
    geometry = mapping(entry.footprint)
    return _feature(stem, collection, geometry, list(entry.footprint.bounds), props, assets)
