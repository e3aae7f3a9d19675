"""Read a Sentinel-1 ``manifest.safe``: product identity, orbit, footprint, IPF version and file list.

Parsed once with the safe lxml parser; elements are matched by local name so the namespace
prefixes used by different IPF versions do not matter.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from lxml import etree
from shapely.geometry import Polygon

from senprep_core.errors import MetadataError
from senprep_core.geo.antimeridian import split_at_antimeridian
from senprep_core.s1.annotation import child_texts, first_text, parse_utc
from senprep_core.xmlsafe import parse_xml

log = logging.getLogger(__name__)

MANIFEST = "manifest.safe"

# repID of the manifest data objects, by the role senprep gives them
FILE_KINDS = {
    "s1Level1ProductSchema": "annotation",
    "s1Level1CalibrationSchema": "calibration",
    "s1Level1NoiseSchema": "noise",
    "s1Level1MeasurementSchema": "measurement",
}


@dataclass(frozen=True)
class ManifestInfo:
    """What ``manifest.safe`` tells about a Sentinel-1 product.

    ``files`` maps member paths (relative to the product root, no ``./``) to their kind:
    ``annotation``, ``calibration``, ``noise`` or ``measurement``.
    """

    mission: str  # "S1A".."S1D"
    mode: str  # "IW" | "EW" | "SM" | "WV"
    swaths: tuple[str, ...]
    product_type: str  # "GRD", "SLC", ...
    polarisations: tuple[str, ...]
    orbit_direction: str
    absolute_orbit: int
    relative_orbit: int
    slice_number: int | None
    start_time: datetime
    stop_time: datetime
    footprint_wkt: str
    ipf_version: str
    files: dict[str, str]


def _local(tag: object) -> str:
    """An element tag without its namespace (comments and PIs give "")."""
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def _find_all(root: etree._Element, name: str) -> list[etree._Element]:
    """Every descendant element whose local name is ``name`` (document order)."""
    return [e for e in root.iter() if _local(e.tag) == name]


def _required(root: etree._Element, name: str, label: str) -> str:
    found = _find_all(root, name)
    text = (found[0].text or "").strip() if found else ""
    if not text:
        raise MetadataError(
            f"{label} has no <{name}> value; the manifest is incomplete or damaged: download the product again"
        )
    return text


def footprint_wkt(coordinates: str, label: str) -> str:
    """The lon/lat polygon WKT of a manifest ``gml:coordinates`` string (``"lat,lon lat,lon ..."``).

    A footprint across the antimeridian (its corners' longitudes jump from about +180 to about -180)
    comes out as a MultiPolygon cut at ±180 (RFC 7946), not as a polygon wrapping the globe.
    """
    try:
        pairs = [tuple(float(v) for v in item.split(",")) for item in coordinates.split()]
        ring = [(lon, lat) for lat, lon in pairs]
    except ValueError as exc:
        raise MetadataError(
            f"{label}: footprint coordinates {coordinates[:80]!r} are not 'lat,lon' pairs ({exc}); "
            "the manifest is damaged, download the product again"
        ) from exc
    if len(ring) < 3:
        raise MetadataError(f"{label}: the footprint has {len(ring)} corners (needs 3 or more); download it again")
    return str(split_at_antimeridian(Polygon(ring)).wkt)


def parse_manifest(data: bytes, label: str = MANIFEST) -> ManifestInfo:
    """Parse the bytes of a Sentinel-1 ``manifest.safe``; :class:`MetadataError` names what is missing."""
    root = parse_xml(data, label)
    family = _required(root, "familyName", label)
    if family.upper() != "SENTINEL-1":
        raise MetadataError(
            f"{label} describes a {family} product, not Sentinel-1; give a Sentinel-1 GRD product (S1?_??_GRD?_...)"
        )
    number = _required(root, "number", label)
    mode_elems = _find_all(root, "instrumentMode")
    mode = first_text(mode_elems[0], "mode") if mode_elems else None
    if not mode:
        raise MetadataError(f"{label} has no instrument mode; the manifest is damaged: download the product again")
    swaths = tuple(child_texts(mode_elems[0], "swath"))
    pols = tuple((e.text or "").strip().upper() for e in _find_all(root, "transmitterReceiverPolarisation") if e.text)
    product_type = _required(root, "productType", label).upper()

    orbit_direction = _required(root, "pass", label).upper()
    if orbit_direction not in ("ASCENDING", "DESCENDING"):
        raise MetadataError(f"{label}: pass {orbit_direction!r} is neither ASCENDING nor DESCENDING; download again")

    def _orbit(name: str) -> int:
        elems = [e for e in _find_all(root, name) if e.get("type", "start") == "start"]
        if not elems or not (elems[0].text or "").strip().isdigit():
            raise MetadataError(f"{label} has no valid <{name} type='start'>; the manifest is damaged, download again")
        return int((elems[0].text or "").strip())

    slice_elems = _find_all(root, "sliceNumber")
    slice_text = (slice_elems[0].text or "").strip() if slice_elems else ""
    slice_number = int(slice_text) if slice_text.isdigit() else None

    period = _find_all(root, "acquisitionPeriod")
    if not period:
        raise MetadataError(f"{label} has no acquisitionPeriod; the manifest is damaged, download the product again")
    start = parse_utc(_required(period[0], "startTime", label), label)
    stop = parse_utc(_required(period[0], "stopTime", label), label)

    coords = _find_all(root, "coordinates")
    if not coords or not (coords[0].text or "").strip():
        raise MetadataError(f"{label} has no footprint (gml:coordinates); download the product again")
    wkt = footprint_wkt((coords[0].text or "").strip(), label)

    ipf = ""
    for software in _find_all(root, "software"):  # the outermost processing step comes first
        if "IPF" in software.get("name", "") and software.get("version"):
            ipf = software.get("version", "")
            break
    if not ipf:
        log.warning("%s names no Sentinel-1 IPF version; IPF-dependent corrections assume a recent IPF", label)

    files: dict[str, str] = {}
    for obj in _find_all(root, "dataObject"):
        kind = FILE_KINDS.get(obj.get("repID", ""))
        locations = _find_all(obj, "fileLocation")
        if kind is None or not locations:
            continue
        href = locations[0].get("href", "")
        files[href.removeprefix("./").lstrip("/")] = kind

    return ManifestInfo(
        mission=f"S1{number.upper()}",
        mode=mode.upper(),
        swaths=swaths,
        product_type=product_type,
        polarisations=pols,
        orbit_direction=orbit_direction,
        absolute_orbit=_orbit("orbitNumber"),
        relative_orbit=_orbit("relativeOrbitNumber"),
        slice_number=slice_number,
        start_time=start,
        stop_time=stop,
        footprint_wkt=wkt,
        ipf_version=ipf,
        files=files,
    )
