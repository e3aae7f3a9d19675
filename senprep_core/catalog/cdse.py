"""The Copernicus Data Space Ecosystem (CDSE) provider: OData search, whole-product or per-file downloads.

* ``search``: ``GET <odata>/Products`` with a ``$filter`` per product type and date window
  (:mod:`senprep_core.catalog.cdse_odata`), ``@odata.nextLink`` paging, windows split in halves when
  a search holds more results than ``$skip`` can reach. No token is needed.
* ``fetch``: offline (long-term archive) products are ordered and polled for a bounded time, then
  ``ProductOfflineError``. Whole products come from ``<download>/Products(<Id>)/$value`` into
  ``<cache>/cdse/<product>.zip`` (MD5 checked); ROI mode reads ``manifest.safe`` through the
  ``Nodes(...)`` API and fetches only the files a run needs into a partial
  ``<cache>/cdse/<product>.SAFE`` (built under a temporary name, renamed when complete, marked by
  ``.complete``) that the ordinary SAFE readers open.
* ``fetch_orbit``: S1 ``AUX_POEORB`` / ``AUX_RESORB`` files covering an acquisition, cached as ``.EOF``.

All HTTP goes through one :class:`~senprep_core.fetch.http.HttpClient` (at most ``max_connections``
requests at once) with :class:`~senprep_core.fetch.cdse_auth.CdseAuth` tokens. CDSE allows an account 4
connections at once: with a ``slots`` plan (:mod:`senprep_core.fetch.slots`) every authenticated request
holds one of the account's 4 slots, shared by all the processes of a run.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from senprep_core.catalog.cdse_odata import (
    PRODUCT_TYPES,
    build_filter,
    checksums_of,
    day_start,
    manifest_files,
    node_url,
    odata_time,
    record_from_odata,
    s1_needed,
    s2_needed,
    stem,
    string_attribute,
)
from senprep_core.catalog.partial_safe import MemberFile, fetch_members, finish_partial, seed_from_previous
from senprep_core.catalog.records import FetchRequest, ProductProblem, ProductRecord, SearchQuery, SearchResult
from senprep_core.errors import (
    MetadataError,
    OrbitError,
    ProductOfflineError,
    SenprepError,
    SourceError,
)
from senprep_core.events import Event, EventCallback, Message, no_op
from senprep_core.fetch.cache import PARTIAL_COMPLETE, file_lock, remove_marker, safe_cache_name
from senprep_core.fetch.cdse_auth import CDSE_TOKEN_URL, CdseAuth
from senprep_core.fetch.credentials import Credentials, load_credentials
from senprep_core.fetch.http import Checksum, HttpClient
from senprep_core.fetch.slots import AccountSlots, SlotPlan, account_key
from senprep_core.s1.orbit_files import COVER_MARGIN, find_orbit_file, parse_orbit_file_name

log = logging.getLogger(__name__)

CDSE_ODATA_URL = "https://catalogue.dataspace.copernicus.eu/odata/v1"
CDSE_DOWNLOAD_URL = "https://download.dataspace.copernicus.eu/odata/v1"
MAX_SKIP = 10_000  # CDSE refuses $skip beyond this: longer searches are split by time
ACCOUNT_CONNECTIONS = 4  # CDSE's limit of concurrent connections per account


def _checksum(checksums: Sequence[Mapping[str, str]]) -> Checksum | None:
    """MD5 when the catalogue gives it, else BLAKE3 when the ``blake3`` module is installed."""
    by_name = {c.get("algorithm", "").lower(): c.get("value", "") for c in checksums}
    if by_name.get("md5"):
        return Checksum("md5", by_name["md5"])
    if by_name.get("blake3"):
        try:
            import blake3  # noqa: F401
        except ImportError:
            return None
        return Checksum("blake3", by_name["blake3"])
    return None


class CdseProvider:
    """Search and fetch Sentinel-1 GRD / Sentinel-2 L1C, L2A products from CDSE.

    ``credentials`` are needed for downloads only; None loads them on first use with
    :func:`~senprep_core.fetch.credentials.load_credentials` (environment, then netrc).
    ``order_timeout`` / ``order_poll`` bound the wait for an ordered offline product (seconds). ``slots``:
    how the account's :data:`ACCOUNT_CONNECTIONS` are shared with other processes (None: per process only).
    """

    name = "cdse"
    serves = tuple(PRODUCT_TYPES)  # the product types it can search
    whole_products = True  # fetch with roi_only=False gives the product zip

    def __init__(
        self,
        odata_url: str = CDSE_ODATA_URL,
        download_url: str = CDSE_DOWNLOAD_URL,
        token_url: str = CDSE_TOKEN_URL,
        credentials: Credentials | None = None,
        *,
        max_connections: int = 4,
        page_size: int = 100,
        order_timeout: float = 600.0,
        order_poll: float = 20.0,
        timeout: float = 60.0,
        retries: int = 5,
        backoff: float = 0.5,
        slots: SlotPlan | None = None,
    ) -> None:
        if not 1 <= page_size <= 1000:
            raise SourceError(f"CDSE page_size {page_size} is not valid: use 1 to 1000 (the $top limit)")
        if max_connections < 1:
            raise SourceError(f"CDSE max_connections {max_connections} is not valid: use 1 to 4")
        self.odata_url = odata_url.rstrip("/")
        self.download_url = download_url.rstrip("/")
        self.token_url = token_url
        self.page_size = page_size
        self.max_connections = max_connections
        self.order_timeout = order_timeout
        self.order_poll = order_poll
        self._credentials = credentials
        self._local = threading.local()
        self._lock = threading.Lock()
        self._auth: CdseAuth | None = None
        self.http = HttpClient(
            name="cdse",
            max_connections=max_connections,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            auth=_LazyAuth(self),
            on_event=self._emit,
            account=AccountSlots(slots, self.account, ACCOUNT_CONNECTIONS),
        )

    def __repr__(self) -> str:
        return f"CdseProvider(odata_url={self.odata_url!r}, download_url={self.download_url!r})"

    # ------------------------------------------------------------------ events and auth

    def _emit(self, event: Event) -> None:
        callback: EventCallback = getattr(self._local, "on_event", no_op)
        callback(event)

    def _say(self, text: str) -> None:
        log.info("%s", text)
        self._emit(Message(text))

    def account(self) -> str:
        """The key of the account the credentials belong to (connection slots are per account and server)."""
        return account_key("cdse", self.auth.username, self.token_url)

    @property
    def auth(self) -> CdseAuth:
        """The token source (credentials are loaded on first use)."""
        with self._lock:
            if self._auth is None:
                credentials = self._credentials or load_credentials(service="CDSE")
                self._auth = CdseAuth(credentials, self.token_url)
            return self._auth

    # ------------------------------------------------------------------ search

    def _get(self, url: str, params: Mapping[str, str] | None = None) -> Mapping[str, Any]:
        answer = self.http.get_json(url, params)
        if not isinstance(answer, Mapping):
            raise SourceError(
                f"CDSE answered {self.http.shown_url(url, params)} with a {type(answer).__name__}, not a JSON "
                "object; try again later"
            )
        return answer

    def _pages(self, make_filter: Callable[[datetime, datetime], str], start: datetime, end: datetime) -> Iterator[Any]:
        """The result pages of one search over ``[start, end)``; split in two halves while it holds more
        products than ``$skip`` can page through."""
        params = {
            "$filter": make_filter(start, end),
            "$orderby": "ContentDate/Start asc",
            "$top": str(self.page_size),
            "$expand": "Attributes",
            "$count": "True",
        }
        page = self._get(f"{self.odata_url}/Products", params)
        count = page.get("@odata.count")
        if isinstance(count, int) and count > MAX_SKIP + self.page_size and end - start > timedelta(minutes=2):
            middle = start + (end - start) / 2
            log.info("CDSE search holds %d products; splitting %s .. %s in two", count, start, end)
            yield from self._pages(make_filter, start, middle)
            yield from self._pages(make_filter, middle, end)
            return
        yield page
        seen = 1
        while isinstance(page.get("@odata.nextLink"), str):
            page = self._get(str(page["@odata.nextLink"]))
            seen += 1
            yield page
        log.debug("CDSE search: %d page(s)", seen)

    def search(self, query: SearchQuery) -> SearchResult:
        """Products matching the query: one OData search per product type and date window; the ROI,
        dates and cloud range are checked again on the returned records."""
        found: dict[str, ProductRecord] = {}
        problems: list[ProductProblem] = []
        lo, hi = query.cloud_cover
        for product_type in dict.fromkeys(query.product_types):
            if product_type not in PRODUCT_TYPES:
                raise SourceError(
                    f"CDSE search: product type '{product_type}' is not supported; use {', '.join(PRODUCT_TYPES)}"
                )
            collection, values = PRODUCT_TYPES[product_type]
            cloud = (lo, hi) if collection == "SENTINEL-2" else None
            for window in query.windows:
                start, end = day_start(window.start), day_start(window.end + timedelta(days=1))

                def make_filter(a: datetime, b: datetime, c: str = collection, v: Any = values, cc: Any = cloud) -> str:
                    return build_filter(c, v, query.roi, a, b, cc)

                for page in self._pages(make_filter, start, end):
                    for item in page.get("value") or []:
                        try:
                            record = record_from_odata(item, self.odata_url, self.name)
                        except MetadataError as exc:
                            name = str(item.get("Name", "?"))
                            problems.append(ProductProblem(name, str(item.get("Id", "")), type(exc).__name__, str(exc)))
                            continue
                        if (
                            record.product_type == product_type
                            and query.in_windows(record.sensing_time)
                            and record.meets(query.roi)
                            and (record.cloud_cover is None or lo <= record.cloud_cover <= hi)
                        ):
                            found[record.product_id] = record
        products = sorted(found.values(), key=lambda r: (r.sensing_time, r.product_id))
        return SearchResult(tuple(products), tuple(problems))

    # ------------------------------------------------------------------ online / order

    def _product(self, ident: str) -> Mapping[str, Any]:
        return self._get(f"{self.odata_url}/Products({ident})")

    def ensure_online(self, ident: str, name: str) -> None:
        """Order an offline product and poll until it is online; ProductOfflineError after ``order_timeout``."""
        if self._product(ident).get("Online", True):
            return
        self._say(f"CDSE product {name} is offline (long-term archive); ordering it")
        try:
            self.http.post_form(f"{self.odata_url}/Products({ident})/OData.CSC.Order", {}, auth=True)
        except SenprepError as exc:
            raise ProductOfflineError(
                f"CDSE product {name} is offline and could not be ordered ({type(exc).__name__}); "
                "order it in the Copernicus Browser or run again later"
            ) from exc
        deadline = time.monotonic() + self.order_timeout
        while True:
            time.sleep(max(0.0, min(self.order_poll, deadline - time.monotonic())))
            if self._product(ident).get("Online", False):
                self._say(f"CDSE product {name} is online again")
                return
            if time.monotonic() >= deadline:
                raise ProductOfflineError(
                    f"CDSE product {name} is offline (long-term archive): it was ordered but not restored within "
                    f"{self.order_timeout:.0f} s; it is skipped for now, run again later (restores can take hours)"
                )

    # ------------------------------------------------------------------ fetch

    def fetch(self, record: ProductRecord, request: FetchRequest) -> ProductRecord:
        """Download the product (whole, or only the files of ``request.bands`` in ROI mode) into the cache
        and return the record with ``href`` set to the local ``.zip`` or partial ``.SAFE`` folder."""
        safe_cache_name(record.product_id)
        ident = record.extra.get("odata_id")
        if not ident:
            raise SourceError(
                f"product {record.product_id} did not come from a CDSE search (no OData id); search with --source cdse"
            )
        name = str(record.extra.get("name") or record.product_id + ".SAFE")
        cache = Path(request.cache_dir).expanduser() / "cdse"
        cache.mkdir(parents=True, exist_ok=True)
        self._local.on_event = request.on_event
        try:
            whole = cache / f"{record.product_id}.zip"
            if whole.is_file():
                return replace(record, href=str(whole), online=True)
            if request.roi_only:
                partial = self._cached_partial(cache / f"{record.product_id}.SAFE", record, request.bands)
                if partial is not None:
                    return replace(record, href=str(partial), online=True)
            if not record.online:
                self.ensure_online(str(ident), name)
            if request.roi_only:
                path = self._fetch_nodes(record, str(ident), name, cache, request)
            else:
                result = self.http.download(
                    f"{self.download_url}/Products({ident})/$value",
                    whole,
                    size=record.size_bytes,
                    checksum=_checksum(record.extra.get("checksums") or []),
                    check_zip=True,
                    auth=True,
                    label=record.product_id,
                )
                path = result.path
            return replace(record, href=str(path), online=True)
        finally:
            self._local.on_event = no_op

    def _needed(self, record: ProductRecord, manifest: bytes, bands: Sequence[str], label: str) -> list[Any]:
        files = manifest_files(manifest, label)
        members = [f.member for f in files]
        if record.family == "S2":
            wanted = set(s2_needed(members, record.level, bands))
        else:
            wanted = set(s1_needed(members, bands))
        return [f for f in files if f.member in wanted]

    def _cached_partial(self, safe: Path, record: ProductRecord, bands: Sequence[str]) -> Path | None:
        if not (safe / PARTIAL_COMPLETE).is_file() or not (safe / "manifest.safe").is_file():
            return None
        try:
            needed = self._needed(record, (safe / "manifest.safe").read_bytes(), bands, str(safe / "manifest.safe"))
        except (MetadataError, OSError):
            return None
        if all((safe / f.member).is_file() for f in needed):
            return safe
        return None

    def _fetch_nodes(self, record: ProductRecord, ident: str, name: str, cache: Path, request: FetchRequest) -> Path:
        """The partial SAFE of ``record``, built by one process or thread at a time (units of several
        processes may need the same product): whoever waited finds it complete, or adds what it lacks."""
        final = cache / f"{record.product_id}.SAFE"
        cache.mkdir(parents=True, exist_ok=True)
        with file_lock(cache / f"{record.product_id}.SAFE.lock"):
            ready = self._cached_partial(final, record, request.bands)
            if ready is not None:
                return ready
            return self._build_partial(record, ident, name, cache, request)

    def _build_partial(self, record: ProductRecord, ident: str, name: str, cache: Path, request: FetchRequest) -> Path:
        """Fetch ``manifest.safe`` and the needed members into ``.tmp-<id>.SAFE`` (resumable: the HTTP client
        keeps ``.part`` / ``.verified`` files there), drop the client's markers, write ``.complete`` and
        rename the folder to ``<id>.SAFE``. Files of an earlier complete partial are reused, not fetched."""
        final = cache / f"{record.product_id}.SAFE"
        work = cache / f".tmp-{record.product_id}.SAFE"
        trusted = seed_from_previous(final, work)
        callback = request.on_event

        def bind() -> None:
            self._local.on_event = callback

        def files(items: Sequence[tuple[str, int | None, Checksum | None]]) -> list[MemberFile]:
            return [MemberFile(m, node_url(self.download_url, ident, name, m), size, c) for m, size, c in items]

        manifest = files([("manifest.safe", None, None)])
        fetch_members(self.http, work, manifest, label=record.product_id, auth=True, trusted=trusted)
        needed = self._needed(record, (work / "manifest.safe").read_bytes(), request.bands, f"manifest.safe of {name}")
        jobs = files([(f.member, f.size, Checksum("md5", f.checksum) if f.checksum_name == "MD5" and f.checksum
                       else None) for f in needed])  # fmt: skip
        fetch_members(self.http, work, jobs, label=record.product_id, auth=True, trusted=trusted,
                      workers=self.max_connections, bind=bind)  # fmt: skip
        total = sum(f.size or 0 for f in needed if f.member not in trusted)
        log.info("%s: fetched %d file(s), %.1f MB (ROI mode)", record.product_id, len(needed), total / 1e6)
        members = ["manifest.safe", *(f.member for f in needed)]
        return finish_partial(work, final, members, product=name, odata_id=ident)

    # ------------------------------------------------------------------ orbits

    def fetch_orbit(
        self,
        mission: str,
        sensing_start: datetime,
        sensing_stop: datetime,
        kind: str = "POEORB",
        *,
        cache_dir: Path,
    ) -> Path:
        """The ``.EOF`` orbit file of ``kind`` ("POEORB" precise or "RESORB" restituted) covering the
        acquisition (plus 60 s each side), downloaded into ``cache_dir`` (unzipped) unless one is there.

        ``cache_dir`` is then the orbit folder to give the S1 chain. Raises :class:`OrbitError` when CDSE
        has no covering file (precise orbits appear about three weeks after the acquisition).
        """
        kind = kind.upper()
        if kind not in ("POEORB", "RESORB"):
            raise OrbitError(f"orbit kind '{kind}' is not valid: use 'POEORB' (precise) or 'RESORB' (restituted)")
        start, stop = (_utc(sensing_start), _utc(sensing_stop))
        folder = Path(cache_dir).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        cached = find_orbit_file(folder, mission, start, stop)
        if cached is not None and (kind == "RESORB" or "POEORB" in cached.name.upper()):
            return cached
        pad = timedelta(seconds=COVER_MARGIN)
        filt = " and ".join(
            [
                "Collection/Name eq 'SENTINEL-1'",
                string_attribute("productType", [f"AUX_{kind}"]),
                f"ContentDate/Start le {odata_time(start - pad)}",
                f"ContentDate/End ge {odata_time(stop + pad)}",
            ]
        )
        params = {"$filter": filt, "$orderby": "ContentDate/Start desc", "$top": "50"}
        items = list(self._get(f"{self.odata_url}/Products", params).get("value") or [])
        best: tuple[datetime, Mapping[str, Any]] | None = None
        for item in items:
            info = parse_orbit_file_name(Path(stem(str(item.get("Name", ""))).removesuffix(".EOF") + ".EOF"))
            if info is None or info.kind != kind or info.mission not in (mission.upper(), "S1_"):
                continue
            if info.covers(start, stop) and (best is None or info.produced > best[0]):
                best = (info.produced, item)
        if best is None:
            raise OrbitError(
                f"CDSE holds no {mission} AUX_{kind} file covering {start:%Y-%m-%dT%H:%M:%S} to "
                f"{stop:%Y-%m-%dT%H:%M:%S}; precise orbits appear about 3 weeks after acquisition: use 'RESORB', "
                "or leave the orbit folder empty to use the annotation orbit"
            )
        item = best[1]
        ident, name = str(item["Id"]), str(item["Name"])
        eof = folder / (stem(name).removesuffix(".EOF") + ".EOF")
        if not item.get("Online", True):
            self.ensure_online(ident, name)
        download = folder / f".tmp-{eof.name}.download"
        self.http.download(
            f"{self.download_url}/Products({ident})/$value",
            download,
            size=int(item["ContentLength"]) if item.get("ContentLength") else None,
            checksum=_checksum(checksums_of(item)),
            check_zip=False,
            auth=True,
            label=name,
        )
        _unpack_eof(download, eof)
        remove_marker(download)
        return eof


class _LazyAuth:
    """The provider's :class:`CdseAuth`, created (credentials loaded) only when a request needs a token."""

    def __init__(self, provider: CdseProvider) -> None:
        self._provider = provider

    def headers(self) -> dict[str, str]:
        return self._provider.auth.headers()

    def invalidate(self) -> None:
        self._provider.auth.invalidate()


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


def _unpack_eof(download: Path, eof: Path) -> None:
    """Move a downloaded orbit file to ``eof``, extracting the single ``.EOF`` of a zip."""
    try:
        if zipfile.is_zipfile(download):
            with zipfile.ZipFile(download) as zf:
                names = [n for n in zf.namelist() if n.upper().endswith(".EOF")]
                if len(names) != 1:
                    raise OrbitError(f"orbit archive {eof.name} holds {len(names)} .EOF files (expected 1)")
                part = eof.with_name(f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}-{eof.name}")
                part.write_bytes(zf.read(names[0]))
                os.replace(part, eof)
            download.unlink()
        else:
            os.replace(download, eof)
    except (OSError, zipfile.BadZipFile) as exc:
        raise OrbitError(f"cannot unpack the orbit file {eof.name} ({exc}); download it again") from exc


__all__ = ["CDSE_DOWNLOAD_URL", "CDSE_ODATA_URL", "CdseProvider"]
