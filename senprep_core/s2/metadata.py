"""Sentinel-2 product metadata: one reader for SAFE folders / zips and AWS tile folders.

Layouts handled: a SAFE (folder or zip) with ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml`` and optional
``GRANULE/*/MTD_TL.xml``; a folder holding only the product MTD; an AWS tile folder with
``metadata.xml`` (tile metadata), ``tileInfo.json`` and optional ``product_metadata.xml``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, cast

import numpy as np
from lxml import etree
from shapely.geometry import MultiPolygon, Polygon, shape

from senprep_core.bands import S2_REFLECTANCE
from senprep_core.errors import MetadataError
from senprep_core.geo.antimeridian import split_at_antimeridian
from senprep_core.geo.grid import TargetGrid
from senprep_core.geo.projection import transformer
from senprep_core.productfs import ProductLocation
from senprep_core.remotefs import RemoteLocation
from senprep_core.xmlsafe import parse_xml

logger = logging.getLogger(__name__)

#: ESA ``band_id`` index (0..12) of each canonical reflectance band.
BAND_IDS: tuple[str, ...] = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")

_TILE_RE = re.compile(r"_T(\d{2}[C-X][A-Z]{2})(?:_|$)")
_BASELINE_TILE_RE = re.compile(r"_N(\d{2}\.\d{2})$")
_BASELINE_NAME_RE = re.compile(r"_N(\d{2})(\d{2})(?:_|$)")
_ORBIT_RE = re.compile(r"_R(\d{3})(?:_|$)")
_IMG_RE = re.compile(r"(?:^|_)(B0[1-9]|B1[0-2]|B8A|SCL|AOT|WVP)(?:_(10|20|60)m)?\.(?:jp2|tif)$", re.IGNORECASE)
_RES_DIR_RE = re.compile(r"^R(10|20|60)m$", re.IGNORECASE)
_MASKS = {
    "msk_classi_b00.jp2": "classi",
    "msk_clouds_b00.gml": "clouds_gml",
    "msk_cldprb_20m.jp2": "cldprb_20m",
    "msk_cldprb_60m.jp2": "cldprb_60m",
    "msk_snwprb_20m.jp2": "snwprb_20m",
    "msk_snwprb_60m.jp2": "snwprb_60m",
    "cld_20m.jp2": "cldprb_20m",
    "cld_60m.jp2": "cldprb_60m",
    "snw_20m.jp2": "snwprb_20m",
    "snw_60m.jp2": "snwprb_60m",
}


@dataclass(frozen=True)
class TileGeocoding:
    """The pixel grid of a tile at one resolution (upper-left corner, size)."""

    resolution: int
    ulx: float
    uly: float
    nrows: int
    ncols: int

    def grid(self, epsg: int) -> TargetGrid:
        """This geocoding as a :class:`TargetGrid` in ``epsg``."""
        return TargetGrid(epsg, float(self.resolution), self.ulx, self.uly, self.ncols, self.nrows)


@dataclass(frozen=True)
class S2Metadata:
    """What senprep needs to know of one Sentinel-2 tile product."""

    product_id: str
    mission: str
    level: str
    product_type: str
    sensing_time: datetime
    tile_id: str
    epsg: int
    processing_baseline: str
    quantification_value: float
    offsets: Mapping[str, int]
    offsets_source: str
    cloud_cover: float | None
    footprint: Polygon | MultiPolygon | None  # lon/lat; split in two at the antimeridian
    relative_orbit: int | None
    geocoding: Mapping[int, TileGeocoding] = field(default_factory=dict)
    band_files: Mapping[str, Mapping[int, str]] = field(default_factory=dict)
    mask_files: Mapping[str, str] = field(default_factory=dict)
    layout: str = "SAFE"
    location: ProductLocation | RemoteLocation | None = None
    tile_metadata: str | None = None  # the member (or path) of MTD_TL.xml / metadata.xml: angle grids

    @property
    def baseline_number(self) -> float:
        """The processing baseline as a number (``"04.00"`` -> 4.0)."""
        return float(self.processing_baseline)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (footprint as WKT), used by ``senprep inspect --json``."""
        return {
            "product_id": self.product_id,
            "mission": self.mission,
            "level": self.level,
            "product_type": self.product_type,
            "sensing_time": self.sensing_time.isoformat().replace("+00:00", "Z"),
            "tile_id": self.tile_id,
            "epsg": self.epsg,
            "processing_baseline": self.processing_baseline,
            "quantification_value": self.quantification_value,
            "offsets": dict(self.offsets),
            "offsets_source": self.offsets_source,
            "cloud_cover": self.cloud_cover,
            "footprint": self.footprint.wkt if self.footprint is not None else None,
            "relative_orbit": self.relative_orbit,
            "geocoding": {
                str(r): {"ulx": g.ulx, "uly": g.uly, "nrows": g.nrows, "ncols": g.ncols}
                for r, g in self.geocoding.items()
            },
            "band_files": {b: {str(r): m for r, m in files.items()} for b, files in self.band_files.items()},
            "mask_files": dict(self.mask_files),
            "layout": self.layout,
            "location": str(self.location.path) if self.location is not None else None,
            "tile_metadata": self.tile_metadata,
        }


# ---------------------------------------------------------------- XML helpers


def _all(root: etree._Element | None, tag: str) -> list[etree._Element]:
    if root is None:
        return []
    return [el for el in root.iter(etree.Element) if etree.QName(el).localname == tag]


def _text(root: etree._Element | None, tag: str) -> str | None:
    for el in _all(root, tag):
        if el.text and el.text.strip():
            return el.text.strip()
    return None


def _float(root: etree._Element | None, tag: str, label: str) -> float | None:
    value = _text(root, tag)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError as exc:
        raise MetadataError(f"{label}: <{tag}> is {value!r}, not a number") from exc


def parse_time(value: str, label: str = "metadata") -> datetime:
    """Parse an ISO-8601 UTC time like ``2022-10-05T11:56:49.581767Z`` (any fraction length)."""
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?", value.strip())
    if not m:
        raise MetadataError(f"{label}: time {value!r} is not an ISO-8601 time like 2022-10-05T11:56:49.58Z")
    frac = (m.group(2) or "0")[:6].ljust(6, "0")
    parsed = datetime.fromisoformat(f"{m.group(1)}.{frac}")
    return parsed.replace(tzinfo=timezone.utc)


# ---------------------------------------------------------------- pure derivations


def epsg_from_mgrs(tile_id: str) -> int:
    """EPSG code of the UTM zone of an MGRS tile id: latitude band >= 'N' is north (326zz), else 327zz."""
    m = re.fullmatch(r"(\d{1,2})([C-X])[A-Z]{2}", tile_id.upper())
    if not m:
        raise MetadataError(f"tile id {tile_id!r} is not an MGRS tile id like '29UNU'")
    zone = int(m.group(1))
    return (32600 if m.group(2) >= "N" else 32700) + zone


def inferred_offset(baseline: str) -> int:
    """The additive DN offset ESA applies from processing baseline 04.00 on (-1000), else 0."""
    return -1000 if float(baseline) >= 4.0 else 0


def lonlat_polygon(coords: list[tuple[float, float]]) -> Polygon | MultiPolygon:
    """A lon/lat ring as a polygon; split into parts at ±180 when it crosses the antimeridian (RFC 7946)."""
    return cast(Polygon | MultiPolygon, split_at_antimeridian(Polygon(coords)))


def _footprint_from_poslist(text: str) -> Polygon | MultiPolygon | None:
    values = [float(v) for v in text.split()]
    if len(values) < 8:
        return None
    # EXT_POS_LIST is "lat lon" pairs, or "lat lon 0" triples in some reprocessed products
    dim = 3 if len(values) >= 9 and values[2] == values[5] == values[8] == 0 else 2
    coords = [(values[i + 1], values[i]) for i in range(0, len(values) - 1, dim)]
    return lonlat_polygon(coords)


def _footprint_from_geojson(geom: Mapping[str, Any], default_epsg: int) -> Polygon | MultiPolygon | None:
    coords = geom.get("coordinates") or []
    if not coords or not coords[0]:
        return None
    crs_name = str(((geom.get("crs") or {}).get("properties") or {}).get("name", ""))
    m = re.search(r"(\d{4,5})$", crs_name)
    epsg = int(m.group(1)) if m else default_epsg
    to_lonlat = transformer(epsg, 4326)
    poly = shape({"type": geom.get("type", "Polygon"), "coordinates": coords})
    if not isinstance(poly, Polygon):
        return None
    ring = np.asarray(poly.exterior.coords)
    xs, ys = to_lonlat.transform(ring[:, 0], ring[:, 1])
    return lonlat_polygon([(float(x), float(y)) for x, y in zip(xs, ys, strict=True)])


def _geocoding(tile: etree._Element | None, label: str) -> dict[int, TileGeocoding]:
    sizes = {int(el.get("resolution", 0)): el for el in _all(tile, "Size")}
    out: dict[int, TileGeocoding] = {}
    for pos in _all(tile, "Geoposition"):
        res = int(pos.get("resolution", 0))
        size = sizes.get(res)
        ulx, uly = _float(pos, "ULX", label), _float(pos, "ULY", label)
        nrows = _float(size, "NROWS", label) if size is not None else None
        ncols = _float(size, "NCOLS", label) if size is not None else None
        if None in (ulx, uly, nrows, ncols):
            raise MetadataError(f"{label}: Tile_Geocoding at {res} m lacks ULX/ULY/NROWS/NCOLS")
        out[res] = TileGeocoding(res, float(ulx or 0), float(uly or 0), int(nrows or 0), int(ncols or 0))
    return out


def scan_band_files(members: list[str], declared: list[str] | None = None) -> dict[str, dict[int, str]]:
    """Canonical band -> {resolution: member} from the image members (and MTD IMAGE_FILE list)."""
    present = set(members)
    candidates = list(members) + [d + ".jp2" for d in declared or [] if d + ".jp2" in present]
    out: dict[str, dict[int, str]] = {}
    for member in candidates:
        path = PurePosixPath(member)
        lowered = [p.lower() for p in path.parts[:-1]]
        if path.name.upper().startswith("MSK_") or "qi_data" in lowered or "qi" in lowered:
            continue
        m = _IMG_RE.search(path.name)
        if not m:
            continue
        band = m.group(1).upper()
        if m.group(2):
            res = int(m.group(2))
        elif path.parent.name and _RES_DIR_RE.match(path.parent.name):
            res = int(path.parent.name[1:-1])
        else:
            res = S2_REFLECTANCE.get(band, 20)
        out.setdefault(band, {}).setdefault(res, member)
    return out


def scan_mask_files(members: list[str]) -> dict[str, str]:
    """Mask key ("classi", "clouds_gml", "cldprb_20m"...) -> member."""
    out: dict[str, str] = {}
    for member in members:
        key = _MASKS.get(PurePosixPath(member).name.lower())
        if key:
            out.setdefault(key, member)
    return out


# ---------------------------------------------------------------- the reader


def _pick(members: list[str], names: tuple[str, ...]) -> str | None:
    hits = [m for m in members if PurePosixPath(m).name.lower() in names]
    return min(hits, key=lambda m: (m.count("/"), m)) if hits else None


def _load(loc: ProductLocation, member: str | None) -> etree._Element | None:
    if member is None:
        return None
    return parse_xml(loc.read_bytes(member), f"{loc.path}/{member}")


def _level(product: etree._Element | None, tile: etree._Element | None, *names: str) -> str | None:
    sources = [_text(product, "PRODUCT_TYPE"), _text(product, "PROCESSING_LEVEL")]
    sources += [etree.QName(x).localname for x in (product, tile) if x is not None]
    for src in [*sources, *names]:
        m = re.search(r"(?:Level-|S2MSI|MSIL|MSI_L|_L)(1C|2A)", src or "", re.IGNORECASE)
        if m:
            return "L" + m.group(1).upper()
    return None


def read_s2_metadata(path: str | Path) -> S2Metadata:
    """Read the metadata of a Sentinel-2 product (SAFE folder or zip, or AWS tile folder).

    A path to the MTD XML itself is accepted too (its folder is used). STAC item ``.json`` files (as
    written by the COG providers) are read by :func:`senprep_core.s2.cog.read_stac_item_metadata`;
    :func:`senprep_core.s2.product.open_s2_metadata` opens either.
    """
    p = Path(path)
    if p.is_file() and p.suffix.lower() == ".xml":
        p = p.parent
    loc = ProductLocation.open(p)
    members = loc.members()
    product_member = _pick(members, ("mtd_msil1c.xml", "mtd_msil2a.xml", "product_metadata.xml"))
    tile_member = _pick(members, ("mtd_tl.xml",))
    aws_tile = _pick([m for m in members if "/" not in m], ("metadata.xml",))
    info_member = _pick(members, ("tileinfo.json",))
    layout = (
        "tile" if (aws_tile or info_member) and not _pick(members, ("mtd_msil1c.xml", "mtd_msil2a.xml")) else "SAFE"
    )
    tile_member = tile_member or aws_tile
    if product_member is None and tile_member is None:
        raise MetadataError(
            f"{loc.path} holds no Sentinel-2 metadata (MTD_MSIL1C.xml, MTD_MSIL2A.xml, MTD_TL.xml or metadata.xml); "
            "give the path of a .SAFE folder, its .zip, or an AWS tile folder"
        )
    product = _load(loc, product_member)
    tile = _load(loc, tile_member)
    info: dict[str, Any] = {}
    if info_member is not None:
        try:
            info = json.loads(loc.read_bytes(info_member))
        except ValueError as exc:
            raise MetadataError(f"{loc.path}/{info_member} is not valid JSON ({exc})") from exc
    label = f"{loc.path}/{product_member or tile_member}"

    uri = _text(product, "PRODUCT_URI")
    product_id = re.sub(r"\.SAFE$", "", uri or str(info.get("productName") or loc.name), flags=re.IGNORECASE)
    tile_ident = _text(tile, "TILE_ID") or ""

    m = _TILE_RE.search(tile_ident) or _TILE_RE.search(product_id) or _TILE_RE.search(loc.name)
    if m:
        tile_id = m.group(1)
    elif info.get("utmZone") and info.get("latitudeBand") and info.get("gridSquare"):
        tile_id = f"{int(info['utmZone']):02d}{info['latitudeBand']}{info['gridSquare']}"
    else:
        raise MetadataError(f"{label}: cannot find the MGRS tile id (no TILE_ID, no _Txxxxx in the product name)")

    cs_code = _text(tile, "HORIZONTAL_CS_CODE")
    epsg = int(cs_code.split(":")[-1]) if cs_code and cs_code.split(":")[-1].isdigit() else epsg_from_mgrs(tile_id)

    baseline = _text(product, "PROCESSING_BASELINE")
    if baseline is None and (mb := _BASELINE_TILE_RE.search(tile_ident)):
        baseline = mb.group(1)
    for name in (product_id, str(info.get("productName") or ""), loc.name):
        if baseline is None and (mn := _BASELINE_NAME_RE.search(name)):
            baseline = f"{mn.group(1)}.{mn.group(2)}"
    if baseline is None:
        raise MetadataError(
            f"{label}: no PROCESSING_BASELINE, no _Nxx.yy TILE_ID suffix and no N0400-like product name"
        )

    level = _level(product, tile, product_id, tile_ident, loc.name)
    if level is None:
        raise MetadataError(
            f"{label}: cannot tell the processing level (L1C or L2A) from PRODUCT_TYPE or the product name"
        )

    mission_src = next((s for s in (product_id, tile_ident, loc.name) if re.match(r"S2[A-D]_", s)), "")
    spacecraft = _text(product, "SPACECRAFT_NAME") or ""
    mission = mission_src[:3] if mission_src else ("S2" + spacecraft[-1] if spacecraft.startswith("Sentinel-2") else "")
    if not mission:
        raise MetadataError(f"{label}: cannot tell the mission (S2A/S2B/S2C) from the product name or SPACECRAFT_NAME")

    sensing = _text(tile, "SENSING_TIME") or _text(product, "PRODUCT_START_TIME") or info.get("timestamp")
    if not sensing:
        raise MetadataError(f"{label}: no SENSING_TIME (tile) nor PRODUCT_START_TIME (product)")
    sensing_time = parse_time(str(sensing), label)

    quant = (
        _float(product, "BOA_QUANTIFICATION_VALUE", label) or _float(product, "QUANTIFICATION_VALUE", label) or 10000.0
    )
    offsets: dict[str, int] = {}
    for el in _all(product, "BOA_ADD_OFFSET") + _all(product, "RADIO_ADD_OFFSET"):
        idx = el.get("band_id")
        if idx is not None and idx.isdigit() and int(idx) < len(BAND_IDS) and el.text:
            offsets[BAND_IDS[int(idx)]] = int(float(el.text))
    level_bands = [b for b in BAND_IDS if level == "L1C" or b != "B10"]
    if offsets:
        source = "metadata"
    elif product is not None and inferred_offset(baseline) == 0:
        offsets, source = dict.fromkeys(level_bands, 0), "metadata"
    else:
        offsets, source = dict.fromkeys(level_bands, inferred_offset(baseline)), "inferred from baseline"

    cloud = _float(tile, "CLOUDY_PIXEL_PERCENTAGE", label)
    if cloud is None:
        cloud = _float(product, "Cloud_Coverage_Assessment", label)

    footprint: Polygon | MultiPolygon | None = None
    poslist = _text(product, "EXT_POS_LIST")
    data_geom = info.get("tileDataGeometry")
    if layout == "tile" and isinstance(data_geom, dict):
        footprint = _footprint_from_geojson(data_geom, epsg)
    elif poslist:
        footprint = _footprint_from_poslist(poslist)

    orbit_text = _text(product, "SENSING_ORBIT_NUMBER")
    mo = _ORBIT_RE.search(product_id)
    relative_orbit = int(orbit_text) if orbit_text and orbit_text.isdigit() else (int(mo.group(1)) if mo else None)

    declared = [el.text.strip() for el in _all(product, "IMAGE_FILE") if el.text]
    return S2Metadata(
        product_id=product_id,
        mission=mission,
        level=level,
        product_type="S2MSI2A" if level == "L2A" else "S2MSI1C",
        sensing_time=sensing_time,
        tile_id=tile_id,
        epsg=epsg,
        processing_baseline=baseline,
        quantification_value=float(quant),
        offsets=offsets,
        offsets_source=source,
        cloud_cover=cloud,
        footprint=footprint,
        relative_orbit=relative_orbit,
        geocoding=_geocoding(tile, f"{loc.path}/{tile_member}"),
        band_files=scan_band_files(members, declared),
        mask_files=scan_mask_files(members),
        layout=layout,
        location=loc,
        tile_metadata=tile_member,
    )


@dataclass(frozen=True)
class ProductSummary:
    """What a catalogue search needs from a product-level ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml`` alone."""

    cloud_cover: float | None
    footprint: Polygon | MultiPolygon | None  # lon/lat
    relative_orbit: int | None
    orbit_direction: str | None  # "ascending" | "descending"


def summarise_product_mtd(data: bytes, label: str = "MTD_MSIL2A.xml") -> ProductSummary:
    """Cloud cover (``Cloud_Coverage_Assessment``), footprint (``EXT_POS_LIST``), relative orbit and pass of
    a product-level Sentinel-2 metadata file; MetadataError when it is not one."""
    root = parse_xml(data, label)
    if not _all(root, "Product_Info"):
        raise MetadataError(f"{label} is not a Sentinel-2 product metadata file (no Product_Info)")
    poslist = _text(root, "EXT_POS_LIST")
    orbit = _text(root, "SENSING_ORBIT_NUMBER")
    direction = (_text(root, "SENSING_ORBIT_DIRECTION") or "").lower()
    return ProductSummary(
        cloud_cover=_float(root, "Cloud_Coverage_Assessment", label),
        footprint=_footprint_from_poslist(poslist) if poslist else None,
        relative_orbit=int(orbit) if orbit and orbit.isdigit() else None,
        orbit_direction=direction if direction in ("ascending", "descending") else None,
    )
