"""Products read in place from their asset files (COG / JP2) over HTTP, described by a STAC item JSON.

GDAL reads the files by byte range through ``/vsicurl/``: only the blocks covering the ROI window are
fetched. The GDAL options for that are set inside :meth:`RemoteLocation.gdal_env` at read time only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import rasterio

from senprep_core.errors import ProductNotFoundError

#: GDAL options for ``/vsicurl/`` reads: no directory listing on open, only raster extensions are
#: probed, a block cache and retries on transient HTTP errors.
VSICURL_OPTIONS: dict[str, str | bool | int] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.TIF,.tiff,.TIFF,.jp2,.JP2",
    "VSI_CACHE": True,
    "VSI_CACHE_SIZE": 64 * 1024 * 1024,
    "GDAL_HTTP_MAX_RETRY": 4,
    "GDAL_HTTP_RETRY_DELAY": 1,
}

_VSI_PREFIX = re.compile(r"^/vsi[a-z0-9]+/")


def gdal_path_for(href: str) -> str:
    """The path GDAL opens for an asset href: ``/vsicurl/<url>`` for http(s), ``/vsis3/bucket/key`` for
    ``s3://``, the path itself for local files (``file://`` stripped) and ``/vsi...`` paths."""
    if _VSI_PREFIX.match(href):
        return href
    lowered = href.lower()
    if lowered.startswith(("http://", "https://")):
        return f"/vsicurl/{href}"
    if lowered.startswith("s3://"):
        return f"/vsis3/{href[5:]}"
    if lowered.startswith("file://"):
        return href[7:]
    return href


@dataclass(frozen=True)
class RemoteLocation:
    """Where a product's files are: the STAC item JSON (``path``) whose asset hrefs GDAL reads in place.

    Members are GDAL paths (``/vsicurl/https://...`` or local paths) and are opened as they are.
    """

    path: Path  # the STAC item JSON
    product_name: str

    @property
    def name(self) -> str:
        """The product name (the SAFE name without ``.SAFE``)."""
        return self.product_name

    @property
    def is_zip(self) -> bool:
        """Never a zip archive."""
        return False

    def gdal_path(self, member: str) -> str:
        """The member as GDAL opens it (already a GDAL path)."""
        return member

    def read_bytes(self, member: str) -> bytes:
        """The bytes of a local member; remote members are read by GDAL only."""
        if _VSI_PREFIX.match(member):
            raise ProductNotFoundError(
                f"{member} of product {self.product_name} ({self.path}) is remote and is read by window only; "
                "download the product (--source cdse or local) to use whole-file layers such as MSK_CLOUDS GML"
            )
        file = Path(member)
        if not file.is_file():
            raise ProductNotFoundError(f"product {self.product_name} ({self.path}) has no file {member}")
        return file.read_bytes()

    def gdal_env(self) -> rasterio.Env:
        """A ``rasterio.Env`` with the ``/vsicurl/`` options, entered around the window reads."""
        return rasterio.Env(**VSICURL_OPTIONS)
