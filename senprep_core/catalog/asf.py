"""The ``asf`` source: the Sentinel-1 archive of the Alaska Satellite Facility (NASA's ASF DAAC).

ASF keeps every Sentinel-1 product online, also those the Copernicus archive has moved to its long-term
archive, so it serves as a fallback (``--source cdse --source asf``).

* ``search``: ASF's Search API, ``GET <api>/services/search/param`` with the keywords ``platform=Sentinel-1``,
  ``processingLevel=GRD_HD``, ``beamMode=IW``, ``start`` / ``end`` (one search per date window),
  ``intersectsWith`` (the ROI as WKT, one search per side of the antimeridian), ``maxResults`` and
  ``output=geojson``. The answer is a GeoJSON FeatureCollection whose features carry ``sceneName``,
  ``startTime``, ``pathNumber`` (relative orbit), ``flightDirection``, ``bytes``, ``md5sum`` and ``url`` (the
  download URL). Every filter is checked again on the records.
* ``fetch``: the product zip from ``url`` into ``<cache>/asf/<scene>.zip`` through the one HTTP client:
  NASA Earthdata Login session (:mod:`senprep_core.fetch.earthdata`, renewed by itself when it expires),
  retries, resume with Range, size + MD5 + zip checks. ASF serves whole products only, so ROI mode fetches
  the zip too; the readers read it in place.

Credentials: ``--credentials_earthdata FILE`` (``{"username", "password"}``), else
``SENPREP_EARTHDATA_USERNAME`` / ``SENPREP_EARTHDATA_PASSWORD``, else the ``urs.earthdata.nasa.gov`` entry of
``~/.netrc``; needed for downloads only. ``asf:URL`` (or ``$SENPREP_ASF_URL``) overrides the Search API's
base URL (tests, mirrors).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, time, timezone
from pathlib import Path
from typing import Any

from shapely.geometry import shape
from shapely.geometry.polygon import orient

from senprep_core.catalog.cdse_odata import roi_wkt
from senprep_core.catalog.records import FetchRequest, ProductProblem, ProductRecord, SearchQuery, SearchResult
from senprep_core.errors import CredentialsError, MetadataError, SourceError
from senprep_core.events import EventRelay
from senprep_core.fetch.cache import safe_cache_name
from senprep_core.fetch.checksum import Checksum
from senprep_core.fetch.credentials import EARTHDATA_NETRC_HOSTS, load_credentials
from senprep_core.fetch.earthdata import ENV_LOGIN_URL, EarthdataAuth
from senprep_core.fetch.http import HttpClient, HttpStatusError
from senprep_core.geo.antimeridian import search_parts
from senprep_core.product_names import parse_product_name
from senprep_core.timeutil import parse_utc

log = logging.getLogger(__name__)

ASF_API_URL = "https://api.daac.asf.alaska.edu"
SEARCH_PATH = "/services/search/param"
ENV_ASF_URL = "SENPREP_ASF_URL"
#: senprep product type -> ASF ``processingLevel`` (IW GRD high resolution, as CDSE's IW_GRDH_1S)
PROCESSING_LEVELS = {"GRD": "GRD_HD"}
MAX_RESULTS = 5000
_DIRECTIONS = ("ascending", "descending")


def _int(value: Any) -> int | None:
    try:
        return int(float(value)) if value not in (None, "", "NA") else None
    except (TypeError, ValueError):
        return None


def record_from_feature(feature: Mapping[str, Any], provider: str) -> ProductRecord:
    """A :class:`ProductRecord` from one feature of the Search API's GeoJSON answer (MetadataError when it is
    not a Sentinel-1 product senprep can name, or has no download URL)."""
    props = feature.get("properties") or {}
    name = str(props.get("sceneName") or "")
    info = parse_product_name(name)
    url = props.get("url")
    if info is None or info.family != "S1":
        shown = name or props.get("fileID")
        raise MetadataError(f"ASF product {shown!r} is not a Sentinel-1 product name senprep knows")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise MetadataError(f"ASF product {name} has no download URL in the search answer")
    sensing = info.start
    if props.get("startTime"):
        try:
            sensing = parse_utc(str(props["startTime"]))
        except ValueError:
            log.warning("ASF product %s: unreadable startTime %r; using the name's time", name, props["startTime"])
    geometry = feature.get("geometry")
    footprint = shape(geometry) if isinstance(geometry, Mapping) and geometry.get("coordinates") else None
    direction = str(props.get("flightDirection") or "").lower()
    md5 = props.get("md5sum")
    return ProductRecord(
        product_id=name,
        family="S1",
        mission=info.mission,
        product_type=info.product_type,
        sensing_time=sensing,
        footprint=footprint,
        href=url,
        provider=provider,
        relative_orbit=_int(props.get("pathNumber")) or info.relative_orbit,
        size_bytes=_int(props.get("bytes")),
        orbit_direction=direction if direction in _DIRECTIONS else None,
        extra={"md5": str(md5).lower() if md5 else None, "file_name": props.get("fileName"), "url": url},
    )


class _LazyEarthdata:
    """The provider's :class:`EarthdataAuth`, made (credentials loaded) on the first redirect to a login server."""

    def __init__(self, provider: AsfProvider) -> None:
        self._provider = provider

    def headers(self) -> dict[str, str]:
        return {}

    def invalidate(self) -> None:
        return None

    def redirect_headers(self, url: str) -> dict[str, str] | None:
        return self._provider.auth.redirect_headers(url)


class AsfProvider:
    """Search ASF for Sentinel-1 IW GRD products and download them with an Earthdata Login account.

    ``credentials`` is the Earthdata credentials file (None: environment, then netrc), loaded on the first
    download; ``login_urls`` are Earthdata Login servers to trust besides NASA's (tests, mirrors).
    """

    name = "asf"
    serves = tuple(PROCESSING_LEVELS)  # product types it can search
    whole_products = True  # fetch gives the product zip

    def __init__(
        self,
        api_url: str = ASF_API_URL,
        credentials: str | Path | None = None,
        *,
        login_urls: Sequence[str] = (),
        max_connections: int = 4,
        max_results: int = MAX_RESULTS,
        timeout: float = 60.0,
        retries: int = 5,
        backoff: float = 0.5,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.max_results = max_results
        self.login_urls = tuple(login_urls)
        self._credentials_path = credentials
        self._auth: EarthdataAuth | None = None
        self._lock = threading.Lock()
        self._relay = EventRelay()
        self.http = HttpClient(name="asf", max_connections=max_connections, timeout=timeout, retries=retries,
                               backoff=backoff, auth=_LazyEarthdata(self), on_event=self._relay)  # fmt: skip

    def __repr__(self) -> str:
        return f"AsfProvider(api_url={self.api_url!r})"

    @property
    def auth(self) -> EarthdataAuth:
        """The Earthdata Login credentials (loaded on first use)."""
        with self._lock:
            if self._auth is None:
                creds = load_credentials(self._credentials_path, service="EARTHDATA", hosts=EARTHDATA_NETRC_HOSTS)
                self._auth = EarthdataAuth(creds, self.login_urls)
            return self._auth

    # ------------------------------------------------------------------ search

    def _params(self, level: str, area: str, start: datetime, end: datetime) -> dict[str, str]:
        return {
            "platform": "Sentinel-1",
            "processingLevel": level,
            "beamMode": "IW",
            "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "intersectsWith": area,
            "maxResults": str(self.max_results),
            "output": "geojson",
        }

    def _features(self, params: Mapping[str, str]) -> list[Mapping[str, Any]]:
        url = self.api_url + SEARCH_PATH
        answer = self.http.get_json(url, params)
        if not isinstance(answer, Mapping) or not isinstance(answer.get("features"), list):
            raise SourceError(
                f"ASF answered {self.http.shown_url(url, params)} without a GeoJSON FeatureCollection; check the "
                "asf:URL (it names the Search API's base URL, e.g. https://api.daac.asf.alaska.edu)"
            )
        features = [f for f in answer["features"] if isinstance(f, Mapping)]
        if len(features) >= self.max_results:
            log.warning("ASF: a search reached maxResults=%d; later products were not listed (narrow the dates)",
                        self.max_results)  # fmt: skip
        return features

    def search(self, query: SearchQuery) -> SearchResult:
        """Sentinel-1 IW GRD products meeting the ROI in the date windows (other product types: none)."""
        found: dict[str, ProductRecord] = {}
        problems: list[ProductProblem] = []
        areas = [roi_wkt(orient(part, 1.0)) for part in search_parts(query.roi)]  # counter-clockwise rings
        for product_type in query.product_types:
            level = PROCESSING_LEVELS.get(product_type)
            if level is None:
                log.info("ASF serves Sentinel-1 GRD only; not searching %s", product_type)
                continue
            for window in query.windows:
                start = datetime.combine(window.start, time.min, tzinfo=timezone.utc)
                end = datetime.combine(window.end, time(23, 59, 59), tzinfo=timezone.utc)
                for area in areas:
                    for feature in self._features(self._params(level, area, start, end)):
                        self._add(feature, query, found, problems)
        products = sorted(found.values(), key=lambda r: (r.sensing_time, r.product_id))
        log.info("ASF: %d products match", len(products))
        return SearchResult(tuple(products), tuple(problems))

    def _add(self, feature: Mapping[str, Any], query: SearchQuery, found: dict[str, ProductRecord],
             problems: list[ProductProblem]) -> None:  # fmt: skip
        try:
            record = record_from_feature(feature, self.name)
        except MetadataError as exc:
            props = feature.get("properties") or {}
            name = str(props.get("sceneName") or props.get("fileID") or "?")
            problems.append(ProductProblem(name, str(props.get("url") or self.api_url), type(exc).__name__, str(exc)))
            return
        if (
            record.product_type in query.product_types
            and query.in_windows(record.sensing_time)
            and record.meets(query.roi)
        ):
            found[record.product_id] = record

    # ------------------------------------------------------------------ fetch

    def fetch(self, record: ProductRecord, request: FetchRequest) -> ProductRecord:
        """Download the product zip (MD5-checked, resumable) into ``<cache>/asf/`` and return the record with
        ``href`` set to it; a complete zip in the cache is used without any request."""
        safe_cache_name(record.product_id)
        url = record.extra.get("url") or record.href
        if not str(url).startswith(("https://", "http://")):
            raise SourceError(f"product {record.product_id} did not come from an ASF search (no download URL); "
                              "search with --source asf")  # fmt: skip
        md5 = record.extra.get("md5")
        dest = Path(request.cache_dir).expanduser() / self.name / f"{record.product_id}.zip"
        self._relay.set(request.on_event)
        try:
            result = self.http.download(str(url), dest, size=record.size_bytes,
                                        checksum=Checksum("md5", md5) if md5 else None, check_zip=True, auth=True,
                                        label=record.product_id)  # fmt: skip
        except CredentialsError:
            raise self._refused() from None
        except HttpStatusError as exc:
            if exc.status in (401, 403):
                raise self._refused(exc.status) from None
            raise
        finally:
            self._relay.set(None)
        log.info("asf: %s fetched (%d bytes transferred)", record.product_id, result.bytes_transferred)
        return replace(record, href=str(result.path), online=True, size_bytes=result.size)

    def _refused(self, status: int = 401) -> CredentialsError:
        source = self._auth.source if self._auth is not None else "the Earthdata credentials"
        return CredentialsError(
            f"NASA Earthdata Login refused the download (HTTP {status}) with the user name and password from "
            f"{source}; check them at https://urs.earthdata.nasa.gov (log in there once and authorize the "
            "'Alaska Satellite Facility Data Access' application), then fix --credentials_earthdata, "
            "SENPREP_EARTHDATA_USERNAME / SENPREP_EARTHDATA_PASSWORD or the urs.earthdata.nasa.gov entry of ~/.netrc"
        )


def open_asf(url: str | None = None, credentials: str | Path | None = None, **kwargs: Any) -> AsfProvider:
    """The ``asf`` source: ``url`` (else ``$SENPREP_ASF_URL``, else ASF's) is the Search API's base URL;
    ``$SENPREP_EARTHDATA_LOGIN_URL`` names one more Earthdata Login server to trust (a test server)."""
    login = os.environ.get(ENV_LOGIN_URL)
    kwargs.setdefault("login_urls", [login] if login else [])
    return AsfProvider(url or os.environ.get(ENV_ASF_URL) or ASF_API_URL, credentials, **kwargs)


__all__ = ["ASF_API_URL", "AsfProvider", "open_asf", "record_from_feature"]
