"""Product catalogs behind one interface: ``search(SearchQuery) -> SearchResult``."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Protocol

from senprep_core.catalog.records import FetchRequest, ProductProblem, ProductRecord, SearchQuery, SearchResult
from senprep_core.errors import SourceError
from senprep_core.fetch.credentials import CredentialFiles
from senprep_core.fetch.slots import SlotPlan


class Provider(Protocol):
    """What every provider offers. Optional attributes: ``serves`` (the product types it can search; a
    search for others is skipped, so a later ``--source`` is asked) and ``whole_products`` (``fetch`` with
    ``roi_only=False`` gives a whole ``.zip`` / ``.SAFE``, as ``senprep download`` needs)."""

    name: str

    def search(self, query: SearchQuery) -> SearchResult: ...

    def fetch(self, record: ProductRecord, request: FetchRequest) -> ProductRecord:
        """Make a found product readable: return a record whose ``href`` the readers open (a local
        ``.SAFE`` folder / ``.zip``, or a STAC item JSON whose assets are read by window over HTTP)."""
        ...


REMOTE_SOURCES = ("cdse", "cdse-stac", "earth-search", "planetary-computer", "dhus", "asf", "gcs")


def open_provider(
    source: str, credentials: CredentialFiles | str | None = None, slots: SlotPlan | None = None
) -> Provider:
    """Build a provider from a ``--source`` value.

    - ``demo``: the embedded synthetic catalog (generated once and cached);
    - ``local:DIR``: a folder of ``.SAFE`` folders / ``.zip`` archives, read in place;
    - ``cdse``: the Copernicus Data Space Ecosystem (OData search, token downloads; ``cdse:URL`` for a
      mirror with the same paths, e.g. a test server);
    - ``earth-search`` / ``planetary-computer``: STAC APIs whose S2 COGs are read by window, no download
      (``earth-search:URL`` overrides the API URL);
    - ``dhus``: a DHuS mirror through sentinelsat; its URL comes from the credentials file
      (``sentinel_url_endpoint``) or ``dhus:URL``;
    - ``asf``: the Alaska Satellite Facility's Sentinel-1 archive (Search API; downloads with a NASA Earthdata
      Login account; ``asf:URL`` for another Search API base URL);
    - ``gcs``: Google Cloud's public Sentinel-2 bucket (listed per MGRS tile; anonymous, or with a Google
      credentials file; ``gcs:URL`` for another storage endpoint);
    - ``cdse-stac``: the CDSE STAC API, its assets fetched with a CDSE token (``cdse-stac:URL``).

    ``credentials``: the run's :class:`~senprep_core.fetch.credentials.CredentialFiles` (a bare path is the
    Copernicus file, the legacy ``--credentials``); each source reads the file of its account kind and
    without it the environment or ``~/.netrc`` (e.g. ``SENPREP_CDSE_USERNAME`` / ``SENPREP_CDSE_PASSWORD``).
    ``slots``: how per-account connection limits are shared with the run's other processes
    (:mod:`senprep_core.fetch.slots`). Remote providers keep ``source`` so a worker can reopen them from a
    record; one instance per (source, credentials, slots) serves a whole process, so its token and
    connections are reused.
    """
    from senprep_core.catalog.local import LocalProvider

    if source == "demo":
        from senprep_core.demo.catalog import build_demo_catalog, default_demo_folder

        folder = default_demo_folder()
        build_demo_catalog(folder)
        return LocalProvider(folder)
    if source.startswith("local:"):
        path = source[len("local:") :]
        if not path.strip():
            raise SourceError("--source local: names no folder; give local:DIR with a folder of .SAFE/.zip products")
        return LocalProvider(Path(path))
    key = (source, CredentialFiles.of(credentials), slots)
    with _REMOTE_LOCK:
        if key not in _REMOTE:
            _REMOTE[key] = _open_remote(source, key[1], slots)
        return _REMOTE[key]


_REMOTE: dict[tuple[str, CredentialFiles, SlotPlan | None], Provider] = {}
_REMOTE_LOCK = threading.Lock()


def _open_remote(source: str, files: CredentialFiles, slots: SlotPlan | None) -> Provider:
    kind, _, given = source.partition(":")
    url = given or None
    provider: Provider
    if kind == "cdse":
        provider = _open_cdse(url, files.copernicus, slots)
    elif kind in ("earth-search", "planetary-computer"):
        from senprep_core.catalog.stac import StacProvider

        provider = StacProvider.earth_search(url) if kind == "earth-search" else StacProvider.planetary_computer(url)
    elif kind == "dhus":
        from senprep_core.catalog.dhus import open_dhus

        provider = open_dhus(files.copernicus, endpoint=url, slots=slots)
    elif kind == "asf":
        from senprep_core.catalog.asf import open_asf

        provider = open_asf(url, files.earthdata)
    elif kind == "cdse-stac":
        from senprep_core.catalog.cdse_stac import open_cdse_stac

        provider = open_cdse_stac(url, files.copernicus, slots)
    elif kind == "gcs":
        from senprep_core.catalog.gcs import open_gcs

        provider = open_gcs(url, files.google)
    else:
        raise SourceError(f"unknown source '{source}': use one of {', '.join(KNOWN_SOURCES)}")
    provider.source = source  # type: ignore[attr-defined]  # how a worker reopens it (records carry it)
    return provider


KNOWN_SOURCES = (*REMOTE_SOURCES, "local:DIR", "demo")


def _open_cdse(base: str | None, credentials: str | None, slots: SlotPlan | None) -> Provider:
    from senprep_core.catalog.cdse import CdseProvider
    from senprep_core.fetch.credentials import load_credentials

    creds = load_credentials(credentials) if credentials else None
    if base is None:
        return CdseProvider(credentials=creds, slots=slots)
    base = base.rstrip("/")
    return CdseProvider(
        odata_url=f"{base}/odata/v1",
        download_url=f"{base}/download/odata/v1",
        token_url=f"{base}/auth/realms/CDSE/protocol/openid-connect/token",
        credentials=creds,
        slots=slots,
    )


def serves(provider: Provider, product_types: tuple[str, ...]) -> bool:
    """Whether ``provider`` can search any of ``product_types`` (providers that do not say: yes)."""
    served = getattr(provider, "serves", None)
    return served is None or any(t in served for t in product_types)


__all__ = [
    "KNOWN_SOURCES",
    "REMOTE_SOURCES",
    "FetchRequest",
    "ProductProblem",
    "ProductRecord",
    "Provider",
    "SearchQuery",
    "SearchResult",
    "open_provider",
    "serves",
]
