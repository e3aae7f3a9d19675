"""CDSE OData pieces without I/O: ``$filter`` building, product JSON -> :class:`ProductRecord`, and the
choice of the files a run needs from a SAFE ``manifest.safe`` (per-file "Nodes" downloads).

Filter syntax (CDSE OData catalogue): ``Collection/Name eq 'SENTINEL-2'``,
``OData.CSC.Intersects(area=geography'SRID=4326;POLYGON((lon lat, ...))')``,
``ContentDate/Start ge 2024-01-01T00:00:00.000Z``, and attributes through
``Attributes/OData.CSC.StringAttribute/any(att:att/Name eq 'productType' and
att/OData.CSC.StringAttribute/Value eq 'S2MSI2A')`` (``DoubleAttribute`` for ``cloudCover``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from lxml import etree
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from senprep_core.bands import CLASSI_LAYERS, S2_BANDS, S2_REFLECTANCE, BandKind, canonical_s2_band
from senprep_core.catalog.records import ProductRecord
from senprep_core.errors import MetadataError, UnknownBandError
from senprep_core.geo.antimeridian import search_parts
from senprep_core.product_names import parse_product_name
from senprep_core.s2.metadata import parse_time, scan_band_files, scan_mask_files
from senprep_core.xmlsafe import parse_xml

log = logging.getLogger(__name__)

#: senprep product type -> (CDSE collection, CDSE ``productType`` attribute values).
PRODUCT_TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "S2MSI2A": ("SENTINEL-2", ("S2MSI2A",)),
    "S2MSI1C": ("SENTINEL-2", ("S2MSI1C",)),
    "GRD": ("SENTINEL-1", ("IW_GRDH_1S",)),
}
MAX_WKT = 3000  # longer ROI polygons are simplified to their convex hull / bounding box in the URL
_POLS = ("VV", "VH", "HH", "HV")


# ---------------------------------------------------------------- $filter


def odata_time(when: datetime) -> str:
    """``2024-01-01T00:00:00.000Z`` (UTC, milliseconds)."""
    if when.tzinfo is not None:
        when = when.astimezone(timezone.utc).replace(tzinfo=None)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def day_start(day: date) -> datetime:
    """Midnight UTC at the start of ``day``."""
    return datetime.combine(day, time(0, 0), tzinfo=timezone.utc)


def roi_wkt(roi: BaseGeometry) -> str:
    """The ROI as WKT for ``OData.CSC.Intersects`` (lon lat), coarsened when it would make the URL too long.

    A coarser search area only finds more products; the provider keeps those whose footprint meets the ROI.
    """
    text = roi.wkt
    if len(text) > MAX_WKT:
        text = roi.convex_hull.wkt
    if len(text) > MAX_WKT:
        text = roi.envelope.wkt
    return text


def _attribute(kind: str, name: str, op: str, literal: str) -> str:
    return f"Attributes/OData.CSC.{kind}/any(att:att/Name eq '{name}' and att/OData.CSC.{kind}/Value {op} {literal})"


def string_attribute(name: str, values: Sequence[str]) -> str:
    """``productType`` eq one of ``values`` (an ``or`` of attribute clauses when several)."""
    parts = [_attribute("StringAttribute", name, "eq", f"'{v}'") for v in values]
    return parts[0] if len(parts) == 1 else "(" + " or ".join(parts) + ")"


def build_filter(
    collection: str,
    product_types: Sequence[str],
    roi: BaseGeometry | None,
    start: datetime,
    end: datetime,
    cloud_cover: tuple[float, float] | None = None,
    extra: Iterable[str] = (),
) -> str:
    """The ``$filter`` of one search: collection, ROI, ``start <= ContentDate/Start < end``, product type
    and (S2) a cloud-cover range; ``extra`` clauses are and-ed on. An ROI across the antimeridian is
    searched as its parts on either side (``Intersects(part 1) or Intersects(part 2)``)."""
    parts = [f"Collection/Name eq '{collection}'"]
    if roi is not None:
        areas = [f"OData.CSC.Intersects(area=geography'SRID=4326;{roi_wkt(p)}')" for p in search_parts(roi)]
        parts.append(areas[0] if len(areas) == 1 else "(" + " or ".join(areas) + ")")
    parts.append(f"ContentDate/Start ge {odata_time(start)}")
    parts.append(f"ContentDate/Start lt {odata_time(end)}")
    if product_types:
        parts.append(string_attribute("productType", product_types))
    if cloud_cover is not None:
        lo, hi = cloud_cover
        if lo > 0:
            parts.append(_attribute("DoubleAttribute", "cloudCover", "ge", f"{lo:.2f}"))
        if hi < 100:
            parts.append(_attribute("DoubleAttribute", "cloudCover", "le", f"{hi:.2f}"))
    parts.extend(extra)
    return " and ".join(parts)


# ---------------------------------------------------------------- product JSON -> record


def attributes_of(product: Mapping[str, Any]) -> dict[str, Any]:
    """``Attributes`` (``$expand=Attributes``) as a name -> value dict."""
    out: dict[str, Any] = {}
    for att in product.get("Attributes") or []:
        if isinstance(att, Mapping) and "Name" in att:
            out[str(att["Name"])] = att.get("Value")
    return out


def checksums_of(product: Mapping[str, Any]) -> list[dict[str, str]]:
    """``Checksum`` as ``[{"algorithm": "md5", "value": ...}]`` (lower-case algorithm names)."""
    out = []
    for item in product.get("Checksum") or []:
        if isinstance(item, Mapping) and item.get("Algorithm") and item.get("Value"):
            out.append({"algorithm": str(item["Algorithm"]).lower(), "value": str(item["Value"]).lower()})
    return out


def stem(name: str) -> str:
    """A product name without ``.SAFE`` / ``.zip``."""
    return re.sub(r"(\.SAFE)?(\.zip)?$", "", name, flags=re.IGNORECASE)


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def record_from_odata(product: Mapping[str, Any], odata_url: str, provider: str) -> ProductRecord:
    """Map one OData ``Products`` entry onto a :class:`ProductRecord`; MetadataError when it is not a
    Sentinel-1/2 product senprep can name."""
    name = str(product.get("Name") or "")
    ident = str(product.get("Id") or "")
    info = parse_product_name(name)
    if info is None or not ident:
        raise MetadataError(f"CDSE product {name or ident!r} is not a Sentinel-1/2 product name senprep knows")
    attrs = attributes_of(product)
    content = product.get("ContentDate") or {}
    sensing = info.start
    if isinstance(content, Mapping) and content.get("Start"):
        sensing = parse_time(str(content["Start"]), f"CDSE product {name}")
    footprint = None
    geo = product.get("GeoFootprint")
    if isinstance(geo, Mapping) and geo.get("coordinates"):
        try:
            footprint = shape(geo)
        except (ValueError, TypeError, AttributeError) as exc:
            log.warning("CDSE product %s: unreadable GeoFootprint (%s)", name, exc)
    tile = attrs.get("tileId") or info.tile_id
    return ProductRecord(
        product_id=stem(name),
        family=info.family,
        mission=info.mission,
        product_type=info.product_type,
        sensing_time=sensing,
        footprint=footprint,
        href=f"{odata_url}/Products({ident})",
        provider=provider,
        cloud_cover=_float(attrs.get("cloudCover")) if info.family == "S2" else None,
        tile_id=str(tile) if tile else None,
        relative_orbit=_int(attrs.get("relativeOrbitNumber")) or info.relative_orbit,
        size_bytes=_int(product.get("ContentLength")),
        online=bool(product.get("Online", True)),
        orbit_direction=str(attrs["orbitDirection"]).lower() if attrs.get("orbitDirection") else None,
        extra={
            "odata_id": ident,
            "name": name,
            "checksums": checksums_of(product),
            "content_end": (content.get("End") if isinstance(content, Mapping) else None),
        },
    )


# ---------------------------------------------------------------- Nodes URLs and manifest.safe


def node_url(download_url: str, product_id: str, safe_name: str, member: str) -> str:
    """``<download>/Products(<Id>)/Nodes(<SAFE>)/Nodes(<part>)/.../$value`` of one member of the SAFE."""
    parts = [safe_name, *PurePosixPath(member).parts]
    nodes = "/".join(f"Nodes({quote(p, safe='')})" for p in parts)
    return f"{download_url}/Products({product_id})/{nodes}/$value"


@dataclass(frozen=True)
class ManifestFile:
    """One file listed in ``manifest.safe``: path relative to the SAFE root, size and checksum (if given)."""

    member: str
    size: int | None
    checksum_name: str | None
    checksum: str | None


def manifest_files(data: bytes, label: str = "manifest.safe") -> list[ManifestFile]:
    """The ``dataObject`` files of a SAFE manifest (``byteStream/fileLocation@href``)."""
    root = parse_xml(data, label)
    out: list[ManifestFile] = []
    for obj in root.iter(etree.Element):
        if etree.QName(obj).localname != "byteStream":
            continue
        href = size = cname = cvalue = None
        size = _int(obj.get("size"))
        for child in obj:
            local = etree.QName(child).localname
            if local == "fileLocation":
                href = child.get("href")
            elif local == "checksum":
                cname, cvalue = child.get("checksumName"), (child.text or "").strip() or None
        if not href:
            continue
        member = PurePosixPath(href.replace("\\", "/")).as_posix().removeprefix("./").lstrip("/")
        if ".." in PurePosixPath(member).parts:
            raise MetadataError(f"{label} lists the unsafe path {href!r}; the product cannot be fetched file by file")
        out.append(ManifestFile(member, size, cname.upper() if cname else None, cvalue))
    if not out:
        raise MetadataError(f"{label} lists no files (no dataObject/byteStream/fileLocation)")
    return out


def _pick_native(files: Mapping[int, str], band: str) -> str:
    native = S2_REFLECTANCE.get(band) or (S2_BANDS[band].resolution if band in S2_BANDS else 20)
    return files[native] if native in files else files[min(files)]


def _s2_bands(bands: Sequence[str]) -> list[str]:
    out = []
    for band in bands:
        try:
            out.append(canonical_s2_band(band))
        except UnknownBandError:
            continue  # an S1 band of a mixed request
    return list(dict.fromkeys(out))


def s2_needed(members: Sequence[str], level: str, bands: Sequence[str]) -> list[str]:
    """The members of an S2 SAFE a read of ``bands`` needs: product and tile MTD, each band at its native
    resolution, SCL (L2A) or the cloud masks (L1C) for the valid / cloud layers, and requested masks."""
    names = _s2_bands(bands)
    if not names:
        return list(members)
    needed = [m for m in members if PurePosixPath(m).name.lower() in ("mtd_msil1c.xml", "mtd_msil2a.xml", "mtd_tl.xml")]
    band_files = scan_band_files(list(members))
    masks = scan_mask_files(list(members))

    def band(name: str) -> None:
        if band_files.get(name):
            needed.append(_pick_native(band_files[name], name))

    def classi() -> None:
        member = masks.get("classi") or masks.get("clouds_gml")
        if member:
            needed.append(member)

    for name in names:
        kind = S2_BANDS[name].kind
        if kind in (BandKind.REFLECTANCE, BandKind.AUXILIARY) or name == "SCL":
            band(name)
        elif name.startswith("scl_"):
            band("SCL")
        elif name in CLASSI_LAYERS:
            classi()
        elif kind == BandKind.PROBABILITY:
            prefix = "cldprb" if name == "cloud_probability" else "snwprb"
            member = masks.get(f"{prefix}_20m") or masks.get(f"{prefix}_60m")
            if member:
                needed.append(member)
    if level == "L2A":
        band("SCL")  # valid / cloud layers of L2A come from SCL
    else:
        classi()  # L1C cloud layers come from MSK_CLASSI (or the GML masks before 04.00)
    if not any(S2_BANDS[n].kind == BandKind.REFLECTANCE for n in names) and not (
        level == "L2A" and "SCL" in band_files
    ):
        for fallback in ("B04", "B03", "B02", "B08", "B8A", "B11"):
            if band_files.get(fallback):
                band(fallback)
                break
    return list(dict.fromkeys(needed))


def s1_polarisations(bands: Sequence[str]) -> list[str]:
    """The polarisations named in ``bands`` (``VV``, ``sigma0_VH_dB``...), in first-seen order."""
    found = []
    for band in bands:
        for pol in re.findall(r"(?<![A-Za-z])(VV|VH|HH|HV)(?![A-Za-z])", band.upper().replace("_", " ")):
            found.append(pol)
    return list(dict.fromkeys(found))


def s1_needed(members: Sequence[str], bands: Sequence[str]) -> list[str]:
    """The members of an S1 GRD SAFE for the requested polarisations (all when none is named): annotation,
    calibration and noise XML and the measurement TIFF of each."""
    pols = s1_polarisations(bands)
    needed = []
    for member in members:
        path = PurePosixPath(member.lower())
        parent = str(path.parent)
        if parent not in ("annotation", "annotation/calibration", "measurement"):
            continue
        if not path.name.endswith((".xml", ".tiff", ".tif")):
            continue
        m = re.search(r"-(vv|vh|hh|hv)-", path.name)
        if m is None:
            continue
        if pols and m.group(1).upper() not in pols:
            continue
        needed.append(member)
    return needed


__all__ = [
    "PRODUCT_TYPES",
    "ManifestFile",
    "build_filter",
    "checksums_of",
    "day_start",
    "manifest_files",
    "node_url",
    "odata_time",
    "record_from_odata",
    "s1_needed",
    "s1_polarisations",
    "s2_needed",
    "stem",
]
