"""STAC API providers: Earth Search and Planetary Computer (S2 read as COGs, no download) and CDSE STAC
(downloads through CDSE, :mod:`senprep_core.catalog.cdse_stac`).

One :class:`StacProvider` class with presets (:meth:`StacProvider.earth_search`,
:meth:`StacProvider.planetary_computer`; CDSE's subclass is
:class:`~senprep_core.catalog.cdse_stac.CdseStacProvider`). A search runs one STAC item search per date
window and product family (pystac-client, following the ``next`` links until done), maps the items with
:func:`senprep_core.catalog.stac_items.item_to_record`, merges and de-duplicates them, and re-checks every
filter client-side, so the result is exact even when a server ignores a filter. The cloud-cover range goes
to the server as a CQL2 ``filter`` or a ``query`` only when the API declares that conformance class (some
servers answer nothing at all to an unknown one).

``fetch`` of a COG provider writes the (signed) item JSON into the cache; the S2 reader then reads
the band windows straight from the asset hrefs over HTTP; when angle bands are asked for, the item's
tile metadata (MTD_TL.xml, which holds the angle grids) is downloaded next to it. S1 GRD items
(Planetary Computer) become a partial SAFE whose measurements are read by window from the COGs
(:mod:`senprep_core.catalog.s1_cog`).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlparse

import shapely
from pystac_client import Client
from pystac_client.conformance import ConformanceClasses
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO
from shapely.geometry import MultiPolygon, Polygon, mapping
from shapely.geometry.base import BaseGeometry

from senprep_core.atomic import write_bytes_atomic, write_json_atomic
from senprep_core.bands import S2_BANDS, BandKind
from senprep_core.catalog.records import (
    FetchRequest,
    ProductProblem,
    ProductRecord,
    SearchQuery,
    SearchResult,
)
from senprep_core.catalog.stac_items import item_to_record
from senprep_core.errors import (
    CredentialsError,
    DownloadError,
    MetadataError,
    ProductNotFoundError,
    SenprepError,
    SourceError,
)
from senprep_core.fetch.cache import safe_cache_name
from senprep_core.fetch.redact import register_secret, scrub, scrub_url
from senprep_core.geo.antimeridian import crosses_antimeridian, search_parts
from senprep_core.s2.cog import s2_metadata_from_item, tile_metadata_asset
from senprep_core.stac_product import self_href
from senprep_core.timeutil import DateWindow

log = logging.getLogger(__name__)

EARTH_SEARCH_URL = "https://earth-search.aws.element84.com/v1"
PLANETARY_COMPUTER_URL = "https://planetarycomputer.microsoft.com/api/stac/v1"
PLANETARY_COMPUTER_SAS_URL = "https://planetarycomputer.microsoft.com/api/sas/v1"
CDSE_STAC_URL = "https://stac.dataspace.copernicus.eu/v1"

#: Environment variables that override the public URLs (test servers, mirrors).
ENV_EARTH_SEARCH_URL = "SENPREP_EARTH_SEARCH_URL"
ENV_PLANETARY_COMPUTER_URL = "SENPREP_PLANETARY_COMPUTER_URL"
ENV_PLANETARY_COMPUTER_SAS_URL = "SENPREP_PLANETARY_COMPUTER_SAS_URL"
ENV_CDSE_STAC_URL = "SENPREP_CDSE_STAC_URL"
#: The Planetary Computer subscription key (optional: anonymous signing works with lower limits).
ENV_PLANETARY_COMPUTER_KEY = "PC_SDK_SUBSCRIPTION_KEY"

FAMILY = {"S2MSI2A": "S2", "S2MSI1C": "S2", "GRD": "S1"}
MAX_ROI_COORDS = 200  # larger ROIs are sent as their convex hull (results are re-checked client-side)


def search_area(roi: BaseGeometry) -> BaseGeometry:
    """The ``intersects`` geometry of a search: the ROI in RFC 7946 form (cut at the antimeridian, so the
    area never spans the globe), each part as its convex hull when the whole has too many coordinates."""
    many = shapely.get_num_coordinates(roi) > MAX_ROI_COORDS
    if not crosses_antimeridian(roi):
        return roi.convex_hull if many else roi
    parts = search_parts(roi)
    if many:
        parts = [p.convex_hull for p in parts]
    merged = shapely.union_all(parts)  # hulls of parts on one side may overlap
    return merged if isinstance(merged, (Polygon, MultiPolygon)) else MultiPolygon(parts)


ItemSigner = Callable[[dict[str, Any]], dict[str, Any]]


# ---------------------------------------------------------------- Planetary Computer signing


class _KeyAuth:
    """The PC subscription key as a request header (never logged: HttpClient keeps headers out of logs)."""

    def __init__(self, key: str) -> None:
        self._key = key
        register_secret(key)

    def headers(self) -> dict[str, str]:
        return {"Ocp-Apim-Subscription-Key": self._key}

    def invalidate(self) -> None:
        """A rejected key cannot be refreshed; the next request fails with the server's answer."""


class PlanetaryComputerSigner:
    """Signs the asset hrefs of Planetary Computer items with a SAS token per collection.

    Tokens come from ``GET <sas_url>/token/<collection>`` (anonymous, or with a subscription ``key``)
    and are reused until a minute before their ``msft:expiry``. Only hrefs on ``hosts`` (Azure blob
    storage by default) that carry no query string yet are signed.
    """

    def __init__(
        self,
        sas_url: str = PLANETARY_COMPUTER_SAS_URL,
        *,
        key: str | None = None,
        hosts: Sequence[str] = (".blob.core.windows.net",),
        get_json: Callable[[str], Any] | None = None,
    ) -> None:
        self.sas_url = sas_url.rstrip("/")
        self.hosts = tuple(h.lower() for h in hosts)
        self._key = key
        self._get_json = get_json
        self._http: Any = None
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def _fetch_json(self, url: str) -> Any:
        if self._get_json is not None:
            return self._get_json(url)
        if self._http is None:
            from senprep_core.fetch.http import HttpClient

            self._http = HttpClient(name="planetary-computer", auth=_KeyAuth(self._key) if self._key else None)
        return self._http.get_json(url, auth=self._key is not None)

    def token(self, collection: str) -> str:
        """A valid SAS token (query string) for a collection's storage container."""
        with self._lock:
            cached = self._tokens.get(collection)
            if cached is not None and cached[1] - 60 > time.time():
                return cached[0]
            answer = self._fetch_json(f"{self.sas_url}/token/{collection}")
            token = answer.get("token") if isinstance(answer, Mapping) else None
            if not isinstance(token, str) or not token:
                raise CredentialsError(
                    f"the Planetary Computer SAS endpoint {self.sas_url} gave no token for collection "
                    f"'{collection}'; check {ENV_PLANETARY_COMPUTER_SAS_URL} or the subscription key"
                )
            register_secret(token)  # the SAS token and its signature: masked wherever they are echoed
            for name, value in parse_qsl(token):
                if name == "sig":
                    register_secret(value)
            expiry = _expiry_epoch(answer.get("msft:expiry"))
            self._tokens[collection] = (token, expiry)
            return token

    def _wants(self, href: str) -> bool:
        parsed = urlparse(href)
        host = (parsed.hostname or "").lower()
        return parsed.scheme in ("http", "https") and not parsed.query and host.endswith(self.hosts)

    def __call__(self, item: dict[str, Any]) -> dict[str, Any]:
        """A copy of the item with its storage hrefs signed."""
        signed = copy.deepcopy(item)
        collection = str(signed.get("collection") or "")
        for asset in (signed.get("assets") or {}).values():
            href = asset.get("href") if isinstance(asset, dict) else None
            if isinstance(href, str) and self._wants(href):
                if not collection:
                    raise MetadataError(f"STAC item {signed.get('id')} names no collection; cannot sign its assets")
                asset["href"] = f"{href}?{self.token(collection)}"
        return signed


def _expiry_epoch(value: Any) -> float:
    from pystac.utils import str_to_datetime

    if isinstance(value, str) and value:
        try:
            return str_to_datetime(value).timestamp()
        except ValueError:
            pass
    return time.time() + 45 * 60  # PC tokens last about an hour


# ---------------------------------------------------------------- the provider


def window_range(window: DateWindow) -> str:
    """The STAC ``datetime`` interval of a date window (both days included, UTC)."""
    return f"{window.start.isoformat()}T00:00:00Z/{window.end.isoformat()}T23:59:59.999999Z"


def cloud_params(lo: float, hi: float, *, cql2: bool, query: bool) -> dict[str, Any]:
    """Search parameters for a cloud-cover range: CQL2-JSON ``filter``, else ``query``, else nothing."""
    if (lo, hi) == (0.0, 100.0):
        return {}
    if cql2:
        prop = {"property": "eo:cloud_cover"}
        return {
            "filter": {"op": "and", "args": [{"op": ">=", "args": [prop, lo]}, {"op": "<=", "args": [prop, hi]}]},
            "filter_lang": "cql2-json",
        }
    if query:
        return {"query": {"eo:cloud_cover": {"gte": lo, "lte": hi}}}
    return {}


def matches(record: ProductRecord, query: SearchQuery) -> bool:
    """The client-side re-check of every search filter (the same rules as the local provider)."""
    lo, hi = query.cloud_cover
    return (
        record.product_type in query.product_types
        and query.in_windows(record.sensing_time)
        and record.meets(query.roi)
        and (record.family != "S2" or record.cloud_cover is None or lo <= record.cloud_cover <= hi)
    )


class StacProvider:
    """Search a STAC API for Sentinel products; read S2 (and S1 GRD) COGs in place where ``reads_cogs``.

    ``collections`` maps product types ("S2MSI2A", "S2MSI1C", "GRD") to the API's collection ids.
    ``sign`` turns an item dict into one whose asset hrefs can be read (PC SAS tokens). ``page_size``
    is the ``limit`` per page; ``max_items`` caps one search (one window and family).
    """

    def __init__(
        self,
        name: str,
        api_url: str,
        collections: Mapping[str, Sequence[str]],
        *,
        sign: ItemSigner | None = None,
        reads_cogs: bool = True,
        max_items: int = 5000,
        page_size: int = 100,
        timeout: float = 60.0,
        retries: int = 5,
    ) -> None:
        if page_size < 1 or max_items < 1:
            raise SourceError(f"{name}: page_size and max_items must be >= 1 (got {page_size}, {max_items})")
        self.name = name
        self.api_url = api_url.rstrip("/")
        self.collections = {k: tuple(v) for k, v in collections.items()}
        self.sign = sign
        self.reads_cogs = reads_cogs
        self.max_items = max_items
        self.page_size = page_size
        self.timeout = timeout
        self.retries = retries
        self._client: Client | None = None
        self._io: StacApiIO | None = None
        self._lock = threading.Lock()
        self.pages_read = 0  # pages fetched by the searches of this provider (diagnostics)
        self.serves = tuple(self.collections)  # the product types it can search
        self.whole_products = not reads_cogs  # COG providers give item JSON / VRTs, not whole products

    # ------------------------------------------------------------ presets

    @classmethod
    def earth_search(cls, url: str | None = None, **kwargs: Any) -> StacProvider:
        """Element 84 Earth Search v1: S2 L2A (``sentinel-2-c1-l2a`` COGs) and L1C (``sentinel-2-l1c``).

        ``url`` (or ``$SENPREP_EARTH_SEARCH_URL``) overrides the public API URL. L1C assets are JP2 on a
        requester-pays bucket: they are found but cannot be read anonymously (fetch says so).
        """
        collections = kwargs.pop("collections", {"S2MSI2A": ("sentinel-2-c1-l2a",), "S2MSI1C": ("sentinel-2-l1c",)})
        api = url or os.environ.get(ENV_EARTH_SEARCH_URL) or EARTH_SEARCH_URL
        return cls("earth-search", api, collections, **kwargs)

    @classmethod
    def planetary_computer(
        cls, url: str | None = None, *, sas_url: str | None = None, key: str | None = None, **kwargs: Any
    ) -> StacProvider:
        """Microsoft Planetary Computer: S2 L2A (``sentinel-2-l2a``) and S1 GRD (``sentinel-1-grd``).

        Asset hrefs are signed with SAS tokens from ``sas_url`` (or ``$SENPREP_PLANETARY_COMPUTER_SAS_URL``),
        anonymously or with ``key`` (or ``$PC_SDK_SUBSCRIPTION_KEY``). ``url`` (or
        ``$SENPREP_PLANETARY_COMPUTER_URL``) overrides the API URL. Pass ``sign=`` to replace the signer.
        """
        collections = kwargs.pop("collections", {"S2MSI2A": ("sentinel-2-l2a",), "GRD": ("sentinel-1-grd",)})
        api = url or os.environ.get(ENV_PLANETARY_COMPUTER_URL) or PLANETARY_COMPUTER_URL
        if "sign" not in kwargs:
            sas = sas_url or os.environ.get(ENV_PLANETARY_COMPUTER_SAS_URL) or PLANETARY_COMPUTER_SAS_URL
            kwargs["sign"] = PlanetaryComputerSigner(sas, key=key or os.environ.get(ENV_PLANETARY_COMPUTER_KEY))
        return cls("planetary-computer", api, collections, **kwargs)

    # ------------------------------------------------------------ search

    def _open(self) -> Client:
        with self._lock:
            if self._client is None:
                self._io = StacApiIO(timeout=self.timeout, max_retries=self.retries)
                try:
                    self._client = Client.open(self.api_url, stac_io=self._io, timeout=self.timeout)
                except (APIError, OSError) as exc:
                    raise DownloadError(
                        f"{self.name}: cannot open the STAC API at {self.api_url} ({scrub(str(exc))}); "
                        "check the network connection and the catalogue URL"
                    ) from exc
            return self._client

    def _search_pages(self, client: Client, params: dict[str, Any]) -> list[dict[str, Any]]:
        features: list[dict[str, Any]] = []
        try:
            search = client.search(**params, limit=self.page_size, max_items=self.max_items)
            for page in search.pages_as_dicts():
                self.pages_read += 1
                features.extend(f for f in page.get("features", []) if isinstance(f, dict))
        except (APIError, OSError) as exc:
            raise DownloadError(
                f"{self.name}: STAC search at {self.api_url} failed ({scrub(str(exc))}); check the network connection, "
                "or narrow the search (smaller ROI, shorter dates) if the catalogue timed out"
            ) from exc
        if len(features) >= self.max_items:
            log.warning(
                "%s: a search reached max_items=%d; later products were not listed (narrow the dates)",
                self.name,
                self.max_items,
            )
        return features

    def search_items(self, query: SearchQuery) -> list[dict[str, Any]]:
        """The raw item dicts of every page of every search of ``query`` (not re-checked, not de-duplicated)."""
        groups: dict[str, list[str]] = {}
        for ptype in query.product_types:
            family = FAMILY.get(ptype)
            for coll in self.collections.get(ptype, ()):
                if family is not None and coll not in groups.setdefault(family, []):
                    groups[family].append(coll)
        unserved = [p for p in query.product_types if not self.collections.get(p)]
        if not groups:
            raise SourceError(
                f"{self.name} does not serve {', '.join(query.product_types)} products "
                f"(it serves {', '.join(self.collections)}); choose another --source"
            )
        if unserved:
            log.info("%s does not serve %s; searching %s only", self.name, unserved, sorted(groups))
        client = self._open()
        roi = search_area(query.roi)
        cql2 = client.conforms_to(ConformanceClasses.FILTER)
        use_query = client.conforms_to(ConformanceClasses.QUERY)
        items: list[dict[str, Any]] = []
        for window in query.windows:
            for family, colls in sorted(groups.items()):
                params: dict[str, Any] = {
                    "collections": colls,
                    "intersects": mapping(roi),
                    "datetime": window_range(window),
                }
                if family == "S2":
                    params.update(cloud_params(*query.cloud_cover, cql2=cql2, query=use_query))
                items.extend(self._search_pages(client, params))
        return items

    def search(self, query: SearchQuery) -> SearchResult:
        """Products matching ``query``, sorted by time then id; items that cannot be mapped are problems."""
        records: dict[str, ProductRecord] = {}
        problems: list[ProductProblem] = []
        for item in self.search_items(query):
            try:
                record = item_to_record(item, self.name)
            except SenprepError as exc:
                name = str(item.get("id") or "?")
                log.warning("%s: cannot use STAC item %s: %s", self.name, name, exc)
                problems.append(ProductProblem(name, self_href(item) or self.api_url, type(exc).__name__, str(exc)))
                continue
            if matches(record, query):
                records.setdefault(record.product_id, record)
        products = sorted(records.values(), key=lambda r: (r.sensing_time, r.product_id))
        log.info("%s: %d products match (%d pages read so far)", self.name, len(products), self.pages_read)
        return SearchResult(tuple(products), tuple(problems))

    # ------------------------------------------------------------ fetch

    def _item_of(self, record: ProductRecord) -> dict[str, Any]:
        item = record.extra.get("stac_item")
        if isinstance(item, dict):
            return item
        if record.href.startswith(("http://", "https://")):
            self._open()
            try:
                text = self._io.read_text(record.href) if self._io is not None else ""  # the item's self link
                data = json.loads(text)
            except (APIError, OSError, ValueError) as exc:
                raise DownloadError(
                    f"{self.name}: cannot get the STAC item {scrub_url(record.href)} ({scrub(str(exc))})"
                ) from exc
            if isinstance(data, dict):
                return data
        raise ProductNotFoundError(
            f"{self.name}: the record of {record.product_id} holds no STAC item; search the catalogue again"
        )

    def fetch(self, record: ProductRecord, request: FetchRequest) -> ProductRecord:
        """S2: write the (signed) STAC item into ``<cache_dir>/<provider>/<product_id>.json``; return a record
        whose ``href`` is that file. Nothing else is downloaded: the reader reads COG windows over HTTP.
        S1 GRD: build a partial SAFE (XML metadata downloaded, measurements as VRTs over the signed COGs,
        see :mod:`senprep_core.catalog.s1_cog`) and return a record whose ``href`` is that folder."""
        if not self.reads_cogs:
            raise SourceError(
                f"{self.name} is a search-only source: its assets ({record.product_id}) need a CDSE token; "
                "use --source cdse, which downloads them through OData"
            )
        safe_cache_name(record.product_id)  # a catalogue-supplied id names files in the cache
        item = self._item_of(record)
        signed = self.sign(item) if self.sign is not None else item
        if record.family == "S1":
            from senprep_core.catalog.s1_cog import fetch_s1_partial_safe

            safe = fetch_s1_partial_safe(signed, record.product_id, self.name, request)
            return replace(record, href=str(safe), extra={**record.extra, "stac_item_href": record.href})
        meta = s2_metadata_from_item(signed)
        unreadable = sorted(b for b, files in meta.band_files.items() if any(not _readable(p) for p in files.values()))
        if unreadable:
            raise SourceError(
                f"{self.name}: the band files of {record.product_id} ({', '.join(unreadable)}) are not on public "
                "HTTP (e.g. a requester-pays bucket); use --source cdse for this product"
            )
        path = Path(request.cache_dir) / self.name / f"{record.product_id}.json"
        if any(S2_BANDS[b].kind == BandKind.ANGLE for b in request.bands if b in S2_BANDS):
            signed = self._local_tile_metadata(signed, path.with_name(f"{record.product_id}.MTD_TL.xml"))
        write_json_atomic(path, signed)
        log.info("%s: %s -> %s (read in place over HTTP)", self.name, record.product_id, path)
        return replace(record, href=str(path), extra={**record.extra, "stac_item_href": record.href})

    def _local_tile_metadata(self, item: dict[str, Any], path: Path) -> dict[str, Any]:
        """The item with its tile metadata (the angle grids, ~0.5 MB) downloaded to ``path`` and its asset
        pointing there. Items without one, or whose one is not on http(s), come back unchanged (the reader
        then says which angle band it cannot make)."""
        found = tile_metadata_asset(item.get("assets") or {})
        if found is None or not found[1].lower().startswith(("http://", "https://")):
            return item
        key, href = found
        if not path.is_file():
            from senprep_core.fetch.http import HttpClient

            with HttpClient(name=self.name, timeout=self.timeout, retries=self.retries) as http:
                write_bytes_atomic(path, http.get(href).content)
        local = copy.deepcopy(item)
        local["assets"][key]["href"] = str(path.resolve())
        return local


def _readable(gdal_path: str) -> bool:
    return gdal_path.startswith("/vsicurl/") or not gdal_path.startswith("/vsi")


__all__ = [
    "CDSE_STAC_URL",
    "EARTH_SEARCH_URL",
    "PLANETARY_COMPUTER_SAS_URL",
    "PLANETARY_COMPUTER_URL",
    "PlanetaryComputerSigner",
    "StacProvider",
]
