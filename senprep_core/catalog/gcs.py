"""The ``gcs`` source: Google Cloud's public Sentinel-2 bucket ``gcp-public-data-sentinel-2``.

The bucket holds the SAFE folders as objects, L1C under ``tiles/<zone>/<band>/<square>/<product>.SAFE/...``
and L2A under ``L2/tiles/...`` (plus ``index.csv.gz`` tables of everything, too large to read for one
search). Everything goes through Cloud Storage's JSON API on ``storage.googleapis.com``, anonymously or with
a Google credentials file (:mod:`senprep_core.fetch.google_auth`):

* ``search``: the MGRS tiles whose squares meet the ROI (:mod:`senprep_core.geo.mgrs`); per tile one listing
  ``GET /storage/v1/b/<bucket>/o?prefix=<tile folder>/&delimiter=/`` (paged with ``pageToken``) gives the
  product folders (``prefixes``), named by product; those in the date windows get their product
  ``MTD_MSIL*.xml`` read (cloud cover, footprint, orbit) and every filter is checked on the records.
* ``fetch``: the listing of the product folder gives each object's size and ``md5Hash`` / ``crc32c``; the
  objects are downloaded with ``alt=media`` (resumable with Range, checksum verified) into
  ``<cache>/gcs/<id>.SAFE``: in ROI mode only the files a run reads (as the CDSE provider's Nodes mode,
  :func:`~senprep_core.catalog.cdse_odata.s2_needed`), in product mode all of them. A folder completed earlier
  is used without any request.

``gcs:URL`` (or ``$SENPREP_GCS_URL``) overrides ``https://storage.googleapis.com`` (tests, mirrors).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from shapely.geometry import box

from senprep_core.catalog.cdse_odata import s2_needed
from senprep_core.catalog.partial_safe import MemberFile, build_safe
from senprep_core.catalog.records import FetchRequest, ProductProblem, ProductRecord, SearchQuery, SearchResult
from senprep_core.errors import CredentialsError, MetadataError, SourceError
from senprep_core.events import EventRelay
from senprep_core.fetch.cache import read_partial_marker, safe_cache_name
from senprep_core.fetch.checksum import Checksum, crc32c_available, from_base64
from senprep_core.fetch.google_auth import GoogleAuth, read_google_credentials
from senprep_core.fetch.http import HttpClient, HttpStatusError
from senprep_core.geo.mgrs import mgrs_tiles, square_bounds, tile_folder
from senprep_core.geo.projection import project
from senprep_core.product_names import parse_product_name
from senprep_core.s2.metadata import epsg_from_mgrs, summarise_product_mtd

log = logging.getLogger(__name__)

GCS_URL = "https://storage.googleapis.com"
BUCKET = "gcp-public-data-sentinel-2"
ENV_GCS_URL = "SENPREP_GCS_URL"
#: senprep product type -> the bucket's folder of tiles
ROOTS = {"S2MSI1C": "tiles", "S2MSI2A": "L2/tiles"}
_MTD = {"S2MSI1C": "MTD_MSIL1C.xml", "S2MSI2A": "MTD_MSIL2A.xml"}
_PLACEHOLDER = "_$folder$"  # empty "folder" objects some uploaders left


def object_checksum(obj: Mapping[str, Any]) -> Checksum | None:
    """The object's MD5 (``md5Hash``), else its CRC32C (composite objects have no MD5) when it can be checked."""
    if obj.get("md5Hash"):
        return from_base64("md5", str(obj["md5Hash"]))
    if obj.get("crc32c") and crc32c_available():
        return from_base64("crc32c", str(obj["crc32c"]))
    return None


def tile_footprint(tile_id: str) -> Any:
    """The lon/lat outline of a Sentinel-2 tile (its 100 km square plus the 9.8 km margin), used when a
    product's metadata gives none."""
    epsg = epsg_from_mgrs(tile_id)
    left, bottom, right, top = square_bounds(tile_id)
    return project(box(left - 20, bottom - 9780, right - 20 + 9800, top), epsg, 4326)


class GcsProvider:
    """Search and fetch Sentinel-2 L1C / L2A SAFE products in a Cloud Storage bucket (see the module docstring).

    ``auth``: Google credentials (None: anonymous reads, as the public bucket allows).
    """

    name = "gcs"
    serves = tuple(ROOTS)
    whole_products = True

    def __init__(
        self,
        base_url: str = GCS_URL,
        bucket: str = BUCKET,
        auth: GoogleAuth | None = None,
        *,
        max_connections: int = 4,
        page_size: int = 1000,
        timeout: float = 60.0,
        retries: int = 5,
        backoff: float = 0.5,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.bucket = bucket
        self.page_size = page_size
        self.max_connections = max_connections
        self._auth = auth
        self._relay = EventRelay()
        self.http = HttpClient(name="gcs", max_connections=max_connections, timeout=timeout, retries=retries,
                               backoff=backoff, auth=auth, on_event=self._relay)  # fmt: skip

    def __repr__(self) -> str:
        return f"GcsProvider(base_url={self.base_url!r}, bucket={self.bucket!r})"

    # ------------------------------------------------------------------ JSON API

    def _call(self, url: str, params: Mapping[str, str] | None = None) -> Any:
        try:
            return self.http.get_json(url, params, auth=self._auth is not None)
        except HttpStatusError as exc:
            if exc.status in (401, 403):
                who = f"the Google credentials of {self._auth.source}" if self._auth else "anonymous reads"
                raise CredentialsError(
                    f"Cloud Storage refused {who} (HTTP {exc.status}) for bucket {self.bucket}; give "
                    "--credentials_google with an account that may read it (the public Sentinel-2 bucket needs none)"
                ) from None
            raise

    def list_objects(self, prefix: str, delimiter: str | None = None) -> tuple[list[dict[str, Any]], list[str]]:
        """Every object (and, with ``delimiter``, every sub-folder prefix) under ``prefix``, all pages."""
        url = f"{self.base_url}/storage/v1/b/{quote(self.bucket, safe='')}/o"
        params = {"prefix": prefix, "maxResults": str(self.page_size)}
        if delimiter:
            params["delimiter"] = delimiter
        items: list[dict[str, Any]] = []
        prefixes: list[str] = []
        while True:
            page = self._call(url, params)
            if not isinstance(page, Mapping):
                raise SourceError(f"Cloud Storage answered the listing of {prefix} with no JSON object; check gcs:URL")
            items += [i for i in page.get("items") or [] if isinstance(i, dict) and isinstance(i.get("name"), str)]
            prefixes += [p for p in page.get("prefixes") or [] if isinstance(p, str)]
            token = page.get("nextPageToken")
            if not isinstance(token, str) or not token:
                return items, prefixes
            params = {**params, "pageToken": token}

    def media_url(self, obj: Mapping[str, Any]) -> str:
        """Where an object's bytes come from: its ``mediaLink`` when on this service, else the documented form."""
        link = obj.get("mediaLink")
        if isinstance(link, str) and urlsplit(link)[:2] == urlsplit(self.base_url)[:2]:
            return link
        name = quote(str(obj["name"]), safe="")
        generation = f"&generation={obj['generation']}" if obj.get("generation") else ""
        return f"{self.base_url}/download/storage/v1/b/{quote(self.bucket, safe='')}/o/{name}?alt=media{generation}"

    # ------------------------------------------------------------------ search

    def search(self, query: SearchQuery) -> SearchResult:
        """S2 L1C / L2A products of the tiles meeting the ROI in the date windows and cloud range."""
        candidates: list[tuple[str, str, str]] = []  # (product type, product id, folder prefix)
        tiles = mgrs_tiles(query.roi)
        for product_type in query.product_types:
            root = ROOTS.get(product_type)
            if root is None:
                log.info("gcs serves Sentinel-2 L1C / L2A only; not searching %s", product_type)
                continue
            for tile in tiles:
                _, folders = self.list_objects(f"{root}/{tile_folder(tile)}/", "/")
                for folder in folders:
                    stem = folder.rstrip("/").rsplit("/", 1)[-1].removesuffix(".SAFE")
                    info = parse_product_name(stem)
                    if info is not None and info.product_type == product_type and query.in_windows(info.start):
                        candidates.append((product_type, stem, folder))
        log.info("gcs: %d tile(s), %d product folder(s) in the windows", len(tiles), len(candidates))
        found: dict[str, ProductRecord] = {}
        problems: list[ProductProblem] = []
        with ThreadPoolExecutor(max_workers=self.max_connections, thread_name_prefix="gcs-mtd") as pool:
            for result in pool.map(lambda c: self._record(*c), candidates):
                if isinstance(result, ProductProblem):
                    problems.append(result)
                elif self._wanted(result, query):
                    found.setdefault(result.product_id, result)
        products = sorted(found.values(), key=lambda r: (r.sensing_time, r.product_id))
        return SearchResult(tuple(products), tuple(problems))

    @staticmethod
    def _wanted(record: ProductRecord, query: SearchQuery) -> bool:
        lo, hi = query.cloud_cover
        return record.meets(query.roi) and (record.cloud_cover is None or lo <= record.cloud_cover <= hi)

    def _record(self, product_type: str, product_id: str, folder: str) -> ProductRecord | ProductProblem:
        href = f"gs://{self.bucket}/{folder}"
        info = parse_product_name(product_id)
        assert info is not None
        mtd_name = folder + _MTD[product_type]
        try:
            data = self.http.get(self.media_url({"name": mtd_name}), auth=self._auth is not None).content
            summary = summarise_product_mtd(data, f"{product_id}/{_MTD[product_type]}")
        except (HttpStatusError, MetadataError) as exc:
            why = "the product folder lacks its metadata (an incomplete upload)" if isinstance(exc, HttpStatusError) \
                else str(exc)  # fmt: skip
            return ProductProblem(product_id, href, type(exc).__name__, f"{why}; it is left out")
        tile = info.tile_id
        return ProductRecord(
            product_id=product_id,
            family="S2",
            mission=info.mission,
            product_type=product_type,
            sensing_time=info.start,
            footprint=summary.footprint if summary.footprint is not None else (tile_footprint(tile) if tile else None),
            href=href,
            provider=self.name,
            cloud_cover=summary.cloud_cover,
            tile_id=tile,
            relative_orbit=summary.relative_orbit or info.relative_orbit,
            orbit_direction=summary.orbit_direction,
            extra={"prefix": folder, "bucket": self.bucket},
        )

    # ------------------------------------------------------------------ fetch

    def _cached(self, safe: Path, record: ProductRecord, request: FetchRequest) -> Path | None:
        facts = read_partial_marker(safe)
        listing = facts.get("listing") if facts else None
        if not isinstance(listing, list):
            return None
        wanted = s2_needed(listing, record.level, request.bands) if request.roi_only else listing
        return safe if all((safe / m).is_file() for m in wanted) else None

    def fetch(self, record: ProductRecord, request: FetchRequest) -> ProductRecord:
        """The product's SAFE folder in ``<cache>/gcs/``: the files the run reads (ROI mode) or all of them."""
        safe_cache_name(record.product_id)
        prefix = record.extra.get("prefix") or self._prefix_of(record.href)
        folder = Path(request.cache_dir).expanduser() / self.name
        cached = self._cached(folder / f"{record.product_id}.SAFE", record, request)
        if cached is not None:
            return replace(record, href=str(cached), online=True)
        objects = {
            str(o["name"])[len(prefix) :]: o
            for o in self.list_objects(prefix)[0]
            if not str(o["name"]).endswith(("/", _PLACEHOLDER)) and str(o["name"]) != prefix
        }
        if not objects:
            raise SourceError(f"gcs: the folder {prefix} of bucket {self.bucket} is empty; the product was removed, "
                              "search again")  # fmt: skip
        listing = sorted(objects)
        wanted = s2_needed(listing, record.level, request.bands) if request.roi_only else listing
        if request.roi_only and "manifest.safe" in objects:
            wanted = ["manifest.safe", *wanted]
        files = [MemberFile(m, self.media_url(objects[m]), int(objects[m].get("size", 0)) or None,
                            object_checksum(objects[m])) for m in dict.fromkeys(wanted)]  # fmt: skip
        callback = request.on_event
        self._relay.set(callback)
        try:
            path = build_safe(self.http, folder, record.product_id, files, auth=self._auth is not None,
                              workers=self.max_connections, bind=lambda: self._relay.set(callback),
                              source=f"gs://{self.bucket}/{prefix}", listing=listing)  # fmt: skip
        finally:
            self._relay.set(None)
        return replace(record, href=str(path), online=True)

    def _prefix_of(self, href: str) -> str:
        head = f"gs://{self.bucket}/"
        if not href.startswith(head) or not href.endswith(".SAFE/"):
            raise SourceError(f"{href} is not a product folder of gs://{self.bucket}; search with --source gcs")
        return href[len(head) :]


def open_gcs(url: str | None = None, credentials: str | Path | None = None, **kwargs: Any) -> GcsProvider:
    """The ``gcs`` source: ``url`` (else ``$SENPREP_GCS_URL``, else Google's) is the storage endpoint;
    ``credentials`` a Google credentials file (None: anonymous)."""
    auth = read_google_credentials(credentials) if credentials else None
    return GcsProvider(url or os.environ.get(ENV_GCS_URL) or GCS_URL, auth=auth, **kwargs)


__all__ = ["BUCKET", "GCS_URL", "GcsProvider", "object_checksum", "open_gcs"]
