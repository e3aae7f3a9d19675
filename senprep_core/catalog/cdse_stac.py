"""The ``cdse-stac`` source: the Copernicus Data Space STAC API, its products fetched with a CDSE token.

Search is the STAC providers' (:class:`~senprep_core.catalog.stac.StacProvider`: S2 L1C / L2A and S1 GRD
collections). CDSE's items point at ``s3://eodata/...`` with ``https`` alternates on CDSE's OData service
(``.../odata/v1/Products(<Id>)/Nodes(<SAFE>)/.../$value``), and a ``Product`` asset for the zip
(``.../Products(<Id>)/$value`` with ``file:size`` and an MD5 ``file:checksum`` multihash); the ``oidc`` entry
of ``auth:schemes`` names the identity server. Those JP2 files are neither COGs nor public, so instead of
window reads ``fetch`` downloads, as the ``cdse`` source does and into the same cache: in ROI mode
``manifest.safe`` and the files a run reads (MD5-checked against the manifest), in product mode the zip.

Tokens go only to CDSE's own hosts (``*.dataspace.copernicus.eu``) or to the host of the STAC API the user
chose (``cdse-stac:URL``, a mirror or a test server). The account is the ``cdse`` source's
(``--credentials``, ``SENPREP_CDSE_USERNAME`` / ``SENPREP_CDSE_PASSWORD`` or ``~/.netrc``), and so are its
4 connections: both sources hold the same per-account slots.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from senprep_core.catalog.cdse import CdseProvider
from senprep_core.catalog.records import FetchRequest, ProductRecord
from senprep_core.catalog.stac import CDSE_STAC_URL, ENV_CDSE_STAC_URL, StacProvider
from senprep_core.errors import MetadataError, SourceError
from senprep_core.fetch.cache import safe_cache_name
from senprep_core.fetch.cdse_auth import CDSE_TOKEN_URL
from senprep_core.fetch.checksum import from_multihash
from senprep_core.fetch.credentials import Credentials, load_credentials
from senprep_core.fetch.slots import SlotPlan

CDSE_DOMAIN = "dataspace.copernicus.eu"
COLLECTIONS = {"S2MSI2A": ("sentinel-2-l2a",), "S2MSI1C": ("sentinel-2-l1c",), "GRD": ("sentinel-1-grd",)}
_PRODUCT = re.compile(r"^(?P<base>https?://[^?#]+?)/Products\((?P<id>[^)]+)\)")
_WELL_KNOWN = "/.well-known/openid-configuration"


def _https(asset: Mapping[str, Any]) -> str | None:
    """The asset's https href: its own, or its ``alternate.https`` one."""
    href = asset.get("href")
    if isinstance(href, str) and href.startswith(("https://", "http://")):
        return href
    alternate = (asset.get("alternate") or {}).get("https") or {}
    href = alternate.get("href") if isinstance(alternate, Mapping) else None
    return href if isinstance(href, str) else None


def odata_location(item: Mapping[str, Any]) -> tuple[str, str, Mapping[str, Any] | None]:
    """(OData download base URL, product Id, the ``Product`` asset or None) of a CDSE STAC item."""
    assets = item.get("assets") or {}
    product = assets.get("Product") if isinstance(assets.get("Product"), Mapping) else None
    candidates = [product] if product is not None else []
    candidates += [a for a in assets.values() if isinstance(a, Mapping) and a is not product]
    for asset in candidates:
        href = _https(asset)
        m = _PRODUCT.match(href or "")
        if m:
            return m["base"], m["id"], product
    raise MetadataError(f"CDSE STAC item {item.get('id')} names no OData product (no https asset "
                        "'.../Products(<Id>)/...'); search with --source cdse instead")  # fmt: skip


def token_url_of(item: Mapping[str, Any]) -> str:
    """The token endpoint of the item's ``oidc`` scheme (Keycloak layout), else CDSE's."""
    schemes = (item.get("properties") or {}).get("auth:schemes") or {}
    oidc = schemes.get("oidc") if isinstance(schemes, Mapping) else None
    url = oidc.get("openIdConnectUrl") if isinstance(oidc, Mapping) else None
    if isinstance(url, str) and url.endswith(_WELL_KNOWN):
        return url[: -len(_WELL_KNOWN)] + "/protocol/openid-connect/token"
    return CDSE_TOKEN_URL


class CdseStacProvider(StacProvider):
    """The CDSE STAC API with downloads through CDSE (see the module docstring)."""

    whole_products = True

    def __init__(
        self,
        url: str | None = None,
        credentials: Credentials | None = None,
        *,
        slots: SlotPlan | None = None,
        **kwargs: Any,
    ) -> None:
        api = url or os.environ.get(ENV_CDSE_STAC_URL) or CDSE_STAC_URL
        kwargs.setdefault("reads_cogs", False)
        super().__init__("cdse-stac", api, kwargs.pop("collections", COLLECTIONS), **kwargs)
        self._credentials = credentials
        self._slots = slots
        self._downloaders: dict[tuple[str, str], CdseProvider] = {}
        self._guard = threading.Lock()

    def trusted(self, url: str) -> bool:
        """Whether a CDSE token may be sent to ``url``: CDSE's hosts over https, or the STAC API's host."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme == "https" and (host == CDSE_DOMAIN or host.endswith("." + CDSE_DOMAIN)):
            return True
        api = urlsplit(self.api_url)
        return host == (api.hostname or "").lower() and parts.scheme in ("https", api.scheme)

    def downloader(self, download_url: str, token_url: str) -> CdseProvider:
        """The CDSE provider that downloads from ``download_url`` with tokens of ``token_url`` (one per pair)."""
        for url in (download_url, token_url):
            if not self.trusted(url):
                raise SourceError(
                    f"cdse-stac: the item asks for a CDSE token to be sent to {url}, which is not a CDSE host nor "
                    f"the STAC API's ({self.api_url}); refused. Use --source cdse, or cdse-stac:URL of that catalogue"
                )
        with self._guard:
            key = (download_url, token_url)
            if key not in self._downloaders:
                base = download_url.rsplit("/odata/", 1)[0]
                self._downloaders[key] = CdseProvider(f"{base}/odata/v1", download_url, token_url, self._credentials,
                                                      slots=self._slots)  # fmt: skip
            return self._downloaders[key]

    def fetch(self, record: ProductRecord, request: FetchRequest) -> ProductRecord:
        """Download the product through CDSE's OData service: the files a run reads (ROI mode) or the zip."""
        safe_cache_name(record.product_id)
        item = self._item_of(record)
        download_url, ident, product = odata_location(item)
        extra = {**record.extra, "odata_id": ident, "name": f"{record.product_id}.SAFE"}
        size = record.size_bytes
        if product is not None:
            checksum = from_multihash(str(product.get("file:checksum") or ""))
            if checksum is not None and checksum.algorithm == "md5":
                extra["checksums"] = [{"algorithm": "md5", "value": checksum.value}]
            if isinstance(product.get("file:size"), int):
                size = int(product["file:size"])
        cdse = self.downloader(download_url, token_url_of(item))
        fetched = cdse.fetch(replace(record, extra=extra, size_bytes=size, online=True), request)
        return replace(fetched, provider=record.provider, extra=record.extra)


def open_cdse_stac(url: str | None, credentials: str | Path | None, slots: SlotPlan | None = None) -> CdseStacProvider:
    """The ``cdse-stac`` source: ``url`` (else ``$SENPREP_CDSE_STAC_URL``, else CDSE's) is the STAC API; the
    Copernicus credentials file (None: environment or netrc, loaded on the first download)."""
    return CdseStacProvider(url, load_credentials(credentials) if credentials else None, slots=slots)


__all__ = ["CdseStacProvider", "odata_location", "open_cdse_stac", "token_url_of"]
