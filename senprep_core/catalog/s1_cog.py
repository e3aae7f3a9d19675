"""Sentinel-1 GRD products of a COG source (Planetary Computer) made readable in place: a partial SAFE.

Planetary Computer serves each GRD as a folder of the SAFE (``.../s1-grd/GRD/<y>/<m>/<d>/<mode>/<pol>/<name>/``)
whose measurement TIFFs were converted to COGs and whose per-image files were renamed to short names
(``measurement/iw-vv.tiff``, ``annotation/iw-vv.xml``, ``annotation/calibration/calibration-iw-vv.xml``,
``annotation/calibration/noise-iw-vv.xml``), while ``manifest.safe`` still lists the ESA names
(``measurement/s1a-iw-grd-vv-...-001.tiff``). Item assets: ``vv`` / ``vh`` / ``hh`` / ``hv`` (the COGs),
``safe-manifest``, ``schema-product-<pol>``, ``schema-calibration-<pol>``, ``schema-noise-<pol>``,
``thumbnail``. Some items point ``schema-product-<pol>`` at the RFI annotation (``rfi-iw-vv.xml``)
instead of the image annotation; such hrefs are not used, the short name in the folder is.

:func:`fetch_s1_partial_safe` builds ``<cache>/<provider>/<product>.SAFE``: ``manifest.safe`` and the
annotation, calibration and noise XML of the requested polarisations under their ESA names (downloaded,
small), and for each measurement a GDAL VRT under the ESA ``.tiff`` name whose source is the signed COG
(``/vsicurl?...&url=<href>``, directory listing off). The ordinary SAFE reader opens the folder; GDAL
reads only the blocks of the ROI window over HTTP. The folder is built under a temporary name, renamed
when complete, and reused by later fetches, which only rewrite the VRTs (fresh signatures).
"""

from __future__ import annotations

import logging
import re
import shutil
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import rasterio
from lxml import etree
from rasterio.errors import NotGeoreferencedWarning, RasterioError

from senprep_core.atomic import replace_folder, write_bytes_atomic
from senprep_core.catalog.cdse_odata import manifest_files, s1_needed, s1_polarisations
from senprep_core.catalog.records import FetchRequest
from senprep_core.errors import DownloadError, MetadataError, SourceError
from senprep_core.events import BytesProgress
from senprep_core.fetch.cache import (
    PARTIAL_COMPLETE,
    file_lock,
    mark_partial_complete,
    read_partial_marker,
    safe_cache_name,
)
from senprep_core.fetch.http import HttpClient
from senprep_core.fetch.redact import scrub, scrub_url
from senprep_core.s1.manifest import MANIFEST

log = logging.getLogger(__name__)

#: Marker of a finished partial SAFE: JSON with the product, its polarisations and members.
COMPLETE = PARTIAL_COMPLETE
#: ``/vsicurl?`` options of the measurement sources: no directory listing, retries on transient errors.
VSICURL_QUERY = "empty_dir=yes&max_retry=4&retry_delay=1"

# s1a-iw-grd-vv-20230628t210705-20230628t210730-049191-05ea4d-001
_ESA_STEM = re.compile(r"^s1[a-d]-(?P<swath>[a-z0-9]+)-grd-(?P<pol>hh|hv|vh|vv)-", re.IGNORECASE)
_GDAL_TYPES = {"uint8": "Byte", "int16": "Int16", "uint16": "UInt16", "int32": "Int32", "float32": "Float32"}


@dataclass(frozen=True)
class ImageFile:
    """One per-image file of the SAFE: its ESA member path, kind, swath and polarisation."""

    member: str
    kind: str  # "annotation" | "calibration" | "noise" | "measurement"
    swath: str  # "iw", "ew", "s3"...
    pol: str  # "vv", "vh", "hh", "hv"

    @property
    def short_path(self) -> str:
        """The path of the file in the Planetary Computer folder (``measurement/iw-vv.tiff`` ...)."""
        name = f"{self.swath}-{self.pol}"
        return {
            "measurement": f"measurement/{name}.tiff",
            "annotation": f"annotation/{name}.xml",
            "calibration": f"annotation/calibration/calibration-{name}.xml",
            "noise": f"annotation/calibration/noise-{name}.xml",
        }[self.kind]

    @property
    def asset_key(self) -> str:
        """The STAC asset key of the file (``vv``, ``schema-product-vv`` ...)."""
        prefix = {
            "measurement": "",
            "annotation": "schema-product-",
            "calibration": "schema-calibration-",
            "noise": "schema-noise-",
        }[self.kind]
        return prefix + self.pol


def image_file(member: str) -> ImageFile | None:
    """The :class:`ImageFile` of a SAFE member (None for members that are not per-image GRD files)."""
    path = PurePosixPath(member.lower())
    parent, name = str(path.parent), path.name
    kind = None
    if parent == "measurement" and name.endswith((".tiff", ".tif")):
        kind = "measurement"
    elif parent == "annotation" and name.endswith(".xml"):
        kind = "annotation"
    elif parent == "annotation/calibration" and name.endswith(".xml"):
        for prefix in ("calibration", "noise"):
            if name.startswith(f"{prefix}-"):
                kind, name = prefix, name[len(prefix) + 1 :]
    m = _ESA_STEM.match(name)
    if kind is None or m is None:
        return None
    return ImageFile(member, kind, m["swath"].lower(), m["pol"].lower())


@dataclass(frozen=True)
class CogFolder:
    """Where a product's files are: the (signed) asset hrefs of its item and its folder URL.

    ``query`` is the signature of the folder's hrefs (PC SAS tokens hold for the whole container);
    it is added to files derived from the folder when the item lacks (or mislabels) their asset.
    """

    product_id: str
    folder: str  # URL of the SAFE folder, no query, no trailing slash
    query: str
    assets: Mapping[str, str]

    @classmethod
    def from_item(cls, item: Mapping[str, Any], product_id: str) -> CogFolder:
        """Read the asset hrefs of a (signed) S1 GRD item; :class:`SourceError` when they are not on HTTP."""
        raw = item.get("assets")
        assets = {
            str(k): str(v["href"])
            for k, v in (raw.items() if isinstance(raw, Mapping) else ())
            if isinstance(v, Mapping) and isinstance(v.get("href"), str)
        }
        anchor = assets.get("safe-manifest")
        suffix = f"/{MANIFEST}"
        if anchor is None:  # no manifest asset: the folder above a measurement COG's folder
            anchor = next((assets[p] for p in ("vv", "vh", "hh", "hv") if p in assets), None)
            suffix = "/measurement/"
        if anchor is None:
            raise MetadataError(
                f"the STAC item of {product_id} has neither a safe-manifest nor a vv/vh/hh/hv asset; "
                "it is not a Sentinel-1 GRD item of a COG source"
            )
        parts = urlsplit(anchor)
        if parts.scheme not in ("http", "https"):
            raise SourceError(
                f"the files of {product_id} are not on public HTTP ({parts.scheme}:// hrefs, e.g. a requester-pays "
                "bucket); use --source cdse for Sentinel-1 products"
            )
        path = parts.path
        cut = path.rfind(suffix)
        if cut < 0:
            raise MetadataError(f"cannot tell the SAFE folder of {product_id} from its asset {scrub_url(anchor)}")
        folder = urlunsplit((parts.scheme, parts.netloc, path[:cut], "", ""))
        return cls(product_id, folder, parts.query, assets)

    def href(self, file: ImageFile | None) -> str:
        """The signed URL of a file (``None``: ``manifest.safe``): its asset when the asset names the
        expected short file, else the short path in the folder."""
        key, short = ("safe-manifest", MANIFEST) if file is None else (file.asset_key, file.short_path)
        asset = self.assets.get(key)
        if asset is not None and PurePosixPath(urlsplit(asset).path).name == PurePosixPath(short).name:
            return asset
        if asset is not None:
            log.debug("%s: asset %s names %s; using %s", self.product_id, key, scrub_url(asset), short)
        return f"{self.folder}/{short}" + (f"?{self.query}" if self.query else "")


def gdal_source(href: str) -> str:
    """The GDAL path of a remote COG with its ``/vsicurl`` options (no directory listing, retries)."""
    return f"/vsicurl?{VSICURL_QUERY}&url={quote(href, safe='')}"


def measurement_vrt(href: str, label: str) -> bytes:
    """A one-band GDAL VRT reading the COG at ``href`` (size, type and blocks from its header, read now)."""
    source = gdal_source(href)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(source) as src:
                width, height, dtype = src.width, src.height, src.dtypes[0]
                block_y, block_x = src.block_shapes[0]
    except RasterioError as exc:
        detail = scrub(str(exc).replace(source, "the COG"))  # the source holds the signature, URL-encoded
        raise DownloadError(
            f"cannot open {label} at {scrub_url(href)} ({detail}); the signed link may have "
            "expired or the file moved: search the catalogue again"
        ) from exc
    gdal_type = _GDAL_TYPES.get(dtype)
    if gdal_type is None:
        raise MetadataError(f"{label} holds {dtype} pixels; a Sentinel-1 GRD measurement holds uint16 amplitudes")
    size = {"xOff": "0", "yOff": "0", "xSize": str(width), "ySize": str(height)}
    root = etree.Element("VRTDataset", rasterXSize=str(width), rasterYSize=str(height))
    band = etree.SubElement(root, "VRTRasterBand", dataType=gdal_type, band="1")
    simple = etree.SubElement(band, "SimpleSource")
    etree.SubElement(simple, "SourceFilename", relativeToVRT="0").text = source
    etree.SubElement(simple, "SourceBand").text = "1"
    etree.SubElement(
        simple,
        "SourceProperties",
        RasterXSize=str(width),
        RasterYSize=str(height),
        DataType=gdal_type,
        BlockXSize=str(block_x),
        BlockYSize=str(block_y),
    )
    etree.SubElement(simple, "SrcRect", attrib=size)
    etree.SubElement(simple, "DstRect", attrib=size)
    return bytes(etree.tostring(root, pretty_print=True))


class _Builder:
    """Fetches the files of one product into a folder (XML downloaded, measurements as VRTs)."""

    def __init__(self, cog: CogFolder, http: HttpClient, request: FetchRequest) -> None:
        self.cog = cog
        self.http = http
        self.request = request

    def download(self, file: ImageFile | None, dest: Path) -> None:
        member = MANIFEST if file is None else file.member
        label = f"{self.cog.product_id}/{member}"
        began = time.monotonic()
        data = self.http.get(self.cog.href(file)).content
        write_bytes_atomic(dest, data)
        seconds = max(time.monotonic() - began, 1e-6)
        self.request.on_event(BytesProgress(label, len(data), len(data), len(data) / seconds))

    def write_vrt(self, file: ImageFile, folder: Path) -> None:
        label = f"the {file.pol.upper()} measurement COG of {self.cog.product_id}"
        write_bytes_atomic(folder / file.member, measurement_vrt(self.cog.href(file), label))

    def needed(self, manifest: Path, bands: Sequence[str]) -> list[ImageFile]:
        members = [f.member for f in manifest_files(manifest.read_bytes(), f"{MANIFEST} of {self.cog.product_id}")]
        files = [f for f in (image_file(m) for m in s1_needed(members, bands)) if f is not None]
        if not any(f.kind == "measurement" for f in files):
            wanted = ", ".join(s1_polarisations(bands)) or "any"
            raise MetadataError(
                f"{MANIFEST} of {self.cog.product_id} lists no GRD measurement of polarisation {wanted}; "
                "choose bands of the product's polarisations"
            )
        return files


def fetch_s1_partial_safe(
    item: Mapping[str, Any],
    product_id: str,
    provider: str,
    request: FetchRequest,
    http: HttpClient | None = None,
) -> Path:
    """Make ``<cache_dir>/<provider>/<product_id>.SAFE`` readable for the polarisations of ``request.bands``
    (all the product has when none is named) from a signed S1 GRD item of a COG source; return it.

    Only ``manifest.safe`` and the annotation, calibration and noise XML are downloaded; measurements become
    VRTs over the COGs (read by window at processing time). A complete folder holding the wanted files is
    reused: only its VRTs are rewritten, with the item's fresh signatures. Raises :class:`SourceError`
    when the files are not on HTTP, :class:`DownloadError` when they cannot be fetched and
    :class:`MetadataError` for a manifest without the wanted measurements.
    """
    cog = CogFolder.from_item(item, product_id)
    cache = Path(request.cache_dir).expanduser() / provider
    cache.mkdir(parents=True, exist_ok=True)
    final = cache / f"{safe_cache_name(product_id)}.SAFE"
    own_client = http is None
    client = http if http is not None else HttpClient(name=provider, on_event=request.on_event)
    builder = _Builder(cog, client, request)
    try:
        with file_lock(cache / f"{product_id}.SAFE.lock"):
            if read_partial_marker(final) is not None and (final / MANIFEST).is_file():
                needed = builder.needed(final / MANIFEST, request.bands)
                if all((final / f.member).is_file() for f in needed if f.kind != "measurement"):
                    for file in needed:
                        if file.kind == "measurement":
                            builder.write_vrt(file, final)
                    log.info("%s: partial SAFE %s reused (measurements read over HTTP)", provider, final)
                    return final
            return _build(builder, final, request.bands)
    finally:
        if own_client:
            client.close()


def _build(builder: _Builder, final: Path, bands: Sequence[str]) -> Path:
    """Fill ``.tmp-<name>`` (starting from the files of an earlier partial), mark it complete, swap it in."""
    work = final.with_name(f".tmp-{final.name}")
    shutil.rmtree(work, ignore_errors=True)  # a build killed half-way: its XML are cheap to fetch again
    if final.is_dir():
        shutil.copytree(final, work, ignore=shutil.ignore_patterns(COMPLETE))
    else:
        work.mkdir(parents=True)
    fetched = 0
    try:
        if not (work / MANIFEST).is_file():
            builder.download(None, work / MANIFEST)
        for file in builder.needed(work / MANIFEST, bands):
            if file.kind == "measurement":
                builder.write_vrt(file, work)
            elif not (work / file.member).is_file():
                builder.download(file, work / file.member)
                fetched += 1
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    images = [image_file(p.relative_to(work).as_posix()) for p in work.rglob("*") if p.is_file()]
    pols = sorted({f.pol.upper() for f in images if f is not None and f.kind == "measurement"})
    mark_partial_complete(work, product=builder.cog.product_id, polarisations=pols)
    replace_folder(work, final)
    log.info("%s: partial SAFE %s ready (%d XML fetched; %s read over HTTP)", builder.cog.product_id, final, fetched,
             "/".join(pols))  # fmt: skip
    return final


__all__ = ["COMPLETE", "CogFolder", "ImageFile", "fetch_s1_partial_safe", "gdal_source", "image_file"]
