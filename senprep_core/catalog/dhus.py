"""The ``dhus`` provider: any DHuS-compatible mirror (national collaborative hubs) through sentinelsat.

Search goes through sentinelsat's OpenSearch client (``search?format=json&q=...``, paged, HTTP basic
auth); product details (size, MD5, online state, download URL) through its OData call
``Products('<uuid>')?$format=json``. The product zip is fetched with senprep's
:class:`~senprep_core.fetch.http.HttpClient` into ``<cache_dir>/dhus/<name>/<name>.zip``: resumable ``.part``
file, MD5 checked against the catalogue, zip integrity check, atomic rename, progress events; a complete
file in the cache is used without any request. Offline (long-term archive) products are ordered and
reported with :class:`~senprep_core.errors.ProductOfflineError`.

sentinelsat is an optional dependency (``pip install senprep[dhus]``), imported when the provider is built.
Credentials (:mod:`senprep_core.fetch.credentials`) are the legacy JSON
``{"username", "password", "sentinel_url_endpoint"}``, environment variables or netrc; the password never
appears in messages, logs or URLs.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import shapely
from shapely import wkt
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from senprep_core.catalog.records import FetchRequest, ProductProblem, ProductRecord, SearchQuery, SearchResult
from senprep_core.errors import (
    CredentialsError,
    DownloadError,
    ProductOfflineError,
    SenprepError,
    SourceError,
)
from senprep_core.events import Event, EventCallback
from senprep_core.fetch.cache import ProductCache, is_complete
from senprep_core.fetch.credentials import Credentials, load_credentials
from senprep_core.fetch.http import Checksum, HttpClient
from senprep_core.fetch.redact import register_secret, scrub
from senprep_core.fetch.slots import AccountSlots, SlotPlan, account_key
from senprep_core.geo.antimeridian import crosses_antimeridian, needs_fixing, search_parts
from senprep_core.product_names import parse_product_name

log = logging.getLogger(__name__)

DHUS_PRODUCT_TYPES = {"S2MSI2A": "S2MSI2A", "S2MSI1C": "S2MSI1C", "GRD": "GRD", "SLC": "SLC"}
"""senprep product types -> the DHuS ``producttype`` values searched."""
_MAX_QUERY_FRACTION = 0.8  # of sentinelsat's estimated DHuS query length limit
_SIZE = re.compile(r"^\s*([\d.]+)\s*([KMGT]?B)\s*$", re.IGNORECASE)
_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
ACCOUNT_CONNECTIONS = 2  # concurrent downloads per account on DHuS hubs (SciHub's rule; mirrors follow it)


def public_url(url: str) -> str:
    """``url`` without any ``user:password@`` part, for messages."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class _BasicAuth:
    """HTTP basic auth header for the HTTP client (DHuS has no tokens: nothing to refresh). The encoded
    credentials are registered as a known secret: a server echoing the header is masked."""

    def __init__(self, username: str, password: str) -> None:
        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        register_secret(token)
        self._headers = {"Authorization": f"Basic {token}"}

    def __repr__(self) -> str:
        return "_BasicAuth(***)"

    def headers(self) -> dict[str, str]:
        return dict(self._headers)

    def invalidate(self) -> None:
        return None


class _EventRelay:
    """Forwards the shared HTTP client's events to the callback of the fetch running in the current thread."""

    def __init__(self) -> None:
        self._local = threading.local()

    def __call__(self, event: Event) -> None:
        target = getattr(self._local, "target", None)
        if target is not None:
            target(event)

    def set(self, target: EventCallback | None) -> None:
        self._local.target = target


def _import_sentinelsat() -> Any:
    try:
        import sentinelsat
    except ImportError:
        raise SourceError(
            "the dhus source needs the optional package sentinelsat; fix: install senprep[dhus] "
            "(pip install 'senprep[dhus]' or pip install sentinelsat)"
        ) from None
    return sentinelsat


def _size_bytes(text: Any) -> int | None:
    m = _SIZE.match(str(text)) if text is not None else None
    if not m:
        return None
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def _utc(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    return None


class DhusProvider:
    """Search and fetch Sentinel-1/2 products on a DHuS mirror (see the module docstring).

    ``client`` is the HTTP client for downloads (default: 2 connections, basic auth from ``credentials``);
    ``timeout`` is sentinelsat's request timeout in seconds; ``slots`` shares the account's
    :data:`ACCOUNT_CONNECTIONS` with the other processes of a run (see :mod:`senprep_core.fetch.slots`).
    """

    serves = tuple(DHUS_PRODUCT_TYPES)  # the product types it can search
    whole_products = True  # fetch gives the product zip

    def __init__(
        self,
        credentials: Credentials,
        *,
        endpoint: str | None = None,
        name: str = "dhus",
        client: HttpClient | None = None,
        max_connections: int = 2,
        timeout: float = 60.0,
        slots: SlotPlan | None = None,
    ) -> None:
        api_url = endpoint or credentials.endpoint
        if not api_url:
            raise CredentialsError(
                f"no DHuS mirror URL for the dhus source (credentials from {credentials.source or 'unknown'}); fix: "
                'add "sentinel_url_endpoint": "https://<mirror>/dhus/" to the credentials file'
            )
        if not urlsplit(api_url).scheme.startswith("http"):
            raise CredentialsError(
                f"the DHuS mirror URL {public_url(api_url)!r} is not an http(s) URL; fix sentinel_url_endpoint"
            )
        self.name = name
        self.endpoint = public_url(api_url)
        self._module = _import_sentinelsat()
        password = credentials.password.reveal()
        self._api = self._module.SentinelAPI(
            credentials.username, password, api_url=api_url, show_progressbars=False, timeout=timeout
        )
        self._relay = _EventRelay()
        self._client = client or HttpClient(
            name=name,
            max_connections=max_connections,
            timeout=timeout,
            auth=_BasicAuth(credentials.username, password),
            on_event=self._relay,
            account=AccountSlots(
                slots, lambda: account_key("dhus", credentials.username, self.endpoint), ACCOUNT_CONNECTIONS
            ),
        )

    def __repr__(self) -> str:
        return f"DhusProvider(endpoint={self.endpoint!r})"

    # -- errors ---------------------------------------------------------------------------------------------------

    def _translate(self, exc: Exception, doing: str) -> SenprepError:
        """A senprep error for a sentinelsat / requests failure, without credentials in the message."""
        import requests

        errors = self._module.exceptions
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if isinstance(exc, errors.UnauthorizedError) or status == 401:
            return CredentialsError(
                f"the DHuS mirror {self.endpoint} rejected the user name or password while {doing} (HTTP 401); "
                "fix: check username and password in the credentials file (or log in on the mirror's web page)"
            )
        if isinstance(exc, errors.InvalidKeyError) or status == 404:
            return DownloadError(f"the DHuS mirror {self.endpoint} does not know it while {doing} (HTTP 404)")
        if isinstance(exc, errors.QuerySyntaxError):
            return SourceError(f"the DHuS mirror {self.endpoint} refused the search query: {scrub(str(exc.msg))}")
        if isinstance(exc, requests.RequestException):
            return DownloadError(
                f"cannot reach the DHuS mirror {self.endpoint} while {doing} ({type(exc).__name__}); fix: check "
                "the network and the sentinel_url_endpoint in the credentials file"
            )
        detail = scrub(str(getattr(exc, "msg", "") or type(exc).__name__))  # the mirror's own words
        code = f"HTTP {status}: " if status else ""
        return DownloadError(f"the DHuS mirror {self.endpoint} failed while {doing}: {code}{detail}")

    # -- search ---------------------------------------------------------------------------------------------------

    def _area_wkts(self, roi: BaseGeometry) -> list[str]:
        """The ROI as WKT for the OpenSearch footprint filter: a polygon, simplified to its hull when long;
        one per side of the antimeridian for an ROI across it (so no search area spans the globe)."""
        parts = search_parts(roi)
        sides = [[p for p in parts if p.centroid.x >= 0], [p for p in parts if p.centroid.x < 0]]
        out = []
        for side in sides if crosses_antimeridian(roi) else [parts]:
            if not side:
                continue
            area: BaseGeometry = side[0] if len(side) == 1 else MultiPolygon(side)
            if isinstance(area, MultiPolygon) or not isinstance(area, Polygon) or len(area.interiors):
                area = area.convex_hull
            text = shapely.to_wkt(area, rounding_precision=6, trim=True)
            if self._api.check_query_length(f'footprint:"Intersects({text})"') > _MAX_QUERY_FRACTION / 2:
                text = shapely.to_wkt(area.envelope, rounding_precision=6, trim=True)
            out.append(text)
        return out

    def search(self, query: SearchQuery) -> SearchResult:
        """Products on the mirror intersecting the ROI in the date windows, of the asked types and S2 cloud range.

        Raises :class:`CredentialsError` (rejected login), :class:`DownloadError` (mirror unreachable / failing)
        or :class:`SourceError` (query refused).
        """
        areas = self._area_wkts(query.roi)
        found: dict[str, ProductRecord] = {}
        problems: list[ProductProblem] = []
        for window in query.windows:
            start = datetime.combine(window.start, time.min)
            end = datetime.combine(window.end + timedelta(days=1), time.min)
            for product_type in query.product_types:
                dhus_type = DHUS_PRODUCT_TYPES.get(product_type)
                if dhus_type is None:
                    raise SourceError(
                        f"the dhus source cannot search product type {product_type}; "
                        f"use one of {', '.join(DHUS_PRODUCT_TYPES)}"
                    )
                keywords: dict[str, Any] = {"producttype": dhus_type}
                if product_type.startswith("S2") and tuple(query.cloud_cover) != (0.0, 100.0):
                    keywords["cloudcoverpercentage"] = (query.cloud_cover[0], query.cloud_cover[1])
                entries: dict[str, Any] = {}
                for area in areas:
                    try:
                        entries.update(self._api.query(area=area, date=(start, end), **keywords))
                    except Exception as exc:
                        raise self._translate(exc, "searching") from None
                for uuid, props in entries.items():
                    record, problem = self._record(uuid, props)
                    if problem is not None:
                        problems.append(problem)
                    elif record is not None and self._wanted(record, query):
                        found[uuid] = record
        products = tuple(sorted(found.values(), key=lambda r: (r.sensing_time, r.product_id)))
        log.info("dhus %s: %d products, %d unreadable entries", self.endpoint, len(products), len(problems))
        return SearchResult(products, tuple(problems))

    @staticmethod
    def _wanted(record: ProductRecord, query: SearchQuery) -> bool:
        if record.product_type not in query.product_types or not query.in_windows(record.sensing_time):
            return False
        if not record.meets(query.roi):
            return False
        if record.family == "S2" and record.cloud_cover is not None:
            low, high = query.cloud_cover
            return low <= record.cloud_cover <= high
        return True

    def _record(self, uuid: str, props: Mapping[str, Any]) -> tuple[ProductRecord | None, ProductProblem | None]:
        """A :class:`ProductRecord` from one sentinelsat OpenSearch entry (or the problem it has)."""
        title = str(props.get("title") or props.get("identifier") or "")
        href = str(props.get("link") or f"{self.endpoint.rstrip('/')}/odata/v1/Products('{uuid}')/$value")
        info = parse_product_name(title)
        if info is None:
            return None, ProductProblem(title or uuid, href, "MetadataError",
                                        "not a Sentinel-1/2 product name senprep reads (old S2 naming?)")  # fmt: skip
        try:
            footprint = wkt.loads(props["footprint"]) if props.get("footprint") else None
        except shapely.errors.GEOSException as exc:
            return None, ProductProblem(title, href, "MetadataError", f"unreadable footprint: {exc}")
        if footprint is not None and not needs_fixing(footprint) and not footprint.is_valid:
            footprint = shapely.make_valid(footprint)  # a footprint wrapped at the antimeridian is cut by the record
        sensing = _utc(props.get("beginposition")) or info.start
        extra: dict[str, Any] = {"uuid": uuid, "endpoint": self.endpoint}
        for key, name in (("processingbaseline", "processing_baseline"), ("ingestiondate", "ingestion_time"),
                          ("orbitdirection", "orbit_direction"), ("orbitnumber", "absolute_orbit"),
                          ("missiondatatakeid", "datatake_id"), ("s2datatakeid", "s2_datatake_id"),
                          ("filename", "safe_name")):  # fmt: skip
            value = props.get(key)
            if value is not None:
                extra[name] = value.replace(tzinfo=timezone.utc).isoformat() if isinstance(value, datetime) else value
        cloud = props.get("cloudcoverpercentage")
        orbit = props.get("relativeorbitnumber")
        record = ProductRecord(
            product_id=title,
            family=info.family,
            mission=info.mission,
            product_type=info.product_type,
            sensing_time=sensing,
            footprint=footprint,
            href=href,
            provider=self.name,
            cloud_cover=float(cloud) if cloud is not None else None,
            tile_id=str(props.get("tileid") or info.tile_id or "") or None,
            relative_orbit=int(orbit) if orbit is not None else info.relative_orbit,
            size_bytes=_size_bytes(props.get("size")),
            online=str(props.get("ondemand", "false")).lower() != "true",
            orbit_direction=str(props["orbitdirection"]).lower() if props.get("orbitdirection") else None,
            extra=extra,
        )
        return record, None

    # -- fetch ----------------------------------------------------------------------------------------------------

    def fetch(self, record: ProductRecord, request: FetchRequest) -> ProductRecord:
        """Download the product zip into ``<cache_dir>/dhus/<name>/`` (MD5-verified, resumable) and return the record
        with ``href`` set to it. A complete zip already in the cache is used without any request.

        Raises :class:`ProductOfflineError` (in the long-term archive: its retrieval was ordered),
        :class:`~senprep_core.errors.ChecksumError`, :class:`DownloadError` or :class:`CredentialsError`.
        """
        uuid = record.extra.get("uuid")
        if not uuid:
            raise SourceError(
                f"{record.product_id} was not found by a dhus search (no DHuS uuid); fix: search it with --source dhus"
            )
        dest = ProductCache(Path(request.cache_dir)).path_for(self.name, record.product_id, f"{record.product_id}.zip")
        if is_complete(dest, None, None):  # verified by an earlier run: no request at all
            return replace(record, href=str(dest), online=True, size_bytes=dest.stat().st_size)
        try:
            info = self._api.get_product_odata(uuid)
        except Exception as exc:
            raise self._translate(exc, f"reading the details of {record.product_id}") from None
        if not info.get("Online", True):
            try:
                triggered = self._api.trigger_offline_retrieval(uuid)
            except Exception as exc:
                raise self._translate(exc, f"ordering {record.product_id} from the long-term archive") from None
            if triggered:
                raise ProductOfflineError(
                    f"{record.product_id} is in the long-term archive of {self.endpoint}; its retrieval was ordered: "
                    "run again later (restores usually take minutes to hours)"
                )
        algorithm, value = ("md5", info.get("md5")) if info.get("md5") else ("sha3-256", info.get("sha3-256"))
        checksum = Checksum(algorithm, str(value)) if value and algorithm == "md5" else None
        if checksum is None:
            log.warning("%s: the mirror gives no MD5 checksum; only size and zip integrity are checked",
                        record.product_id)  # fmt: skip
        dest.parent.mkdir(parents=True, exist_ok=True)
        self._relay.set(request.on_event)
        try:
            result = self._client.download(
                str(info["url"]),
                dest,
                size=int(info["size"]) if info.get("size") else None,
                checksum=checksum,
                check_zip=True,
                auth=True,
                label=record.product_id,
            )
        finally:
            self._relay.set(None)
        log.info("dhus: %s fetched (%d bytes transferred)", record.product_id, result.bytes_transferred)
        return replace(record, href=str(result.path), online=True, size_bytes=result.size)


def open_dhus(credentials_path: str | Path | None = None, endpoint: str | None = None, **kwargs: Any) -> DhusProvider:
    """The ``dhus`` source: credentials from ``--credentials`` (legacy JSON with ``sentinel_url_endpoint``), else
    ``SENPREP_DHUS_USERNAME`` / ``SENPREP_DHUS_PASSWORD`` (or ``SENPREP_USERNAME`` / ``SENPREP_PASSWORD``) or the
    netrc entry of the endpoint's host; ``endpoint`` (else ``SENPREP_DHUS_ENDPOINT``) overrides the file's URL."""
    url = endpoint or os.environ.get("SENPREP_DHUS_ENDPOINT") or None
    hosts = tuple(h for h in [urlsplit(url).hostname] if h) if url else ()
    credentials = load_credentials(credentials_path, service="DHUS", hosts=hosts)
    return DhusProvider(credentials, endpoint=url, **kwargs)
