"""The product a Sentinel-1/2 STAC item describes: :func:`stac_product` (pure: no I/O).

One mapping reads the dialects senprep meets, property by property with fallbacks:

- Earth Search v1 (``sentinel-2-l2a``, ``sentinel-2-c1-l2a``, ``sentinel-2-l1c``): ``s2:product_uri``,
  ``grid:code`` / ``mgrs:*``, ``s2:processing_baseline``, ``earthsearch:boa_offset_applied``; the older v0
  items (``sentinel:product_id``, ``sentinel:grid_square``) too.
- Planetary Computer (``sentinel-2-l2a``: ``s2:mgrs_tile``, ``s2:product_uri``; ``sentinel-1-grd``:
  ``sat:orbit_state``, ``sat:relative_orbit``, ``sar:polarizations``, SAFE folder in the asset hrefs).
- CDSE STAC 1.1 (``sentinel-2-l2a`` / ``sentinel-2-l1c`` / ``sentinel-1-grd``): item id = SAFE name,
  ``product:type``, ``grid:code``, ``processing:version``.

The product id is the SAFE product name whenever the item tells it, so the same product found through
two catalogues (or in a local folder) has the same id. Catalogues turn a :class:`StacProduct` into a
product record (:func:`senprep_core.catalog.stac_items.item_to_record`); the S2 reader reads an item's
metadata from it (:mod:`senprep_core.s2.cog`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pystac
from pystac.utils import str_to_datetime
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from senprep_core.errors import MetadataError
from senprep_core.product_names import parse_product_name

__all__ = ["StacProduct", "item_dict", "processing_baseline", "self_href", "stac_product"]

_SAFE_SUFFIX = re.compile(r"(\.SAFE)?(\.zip)?$", re.IGNORECASE)
_MGRS = re.compile(r"^(\d{1,2})([C-X])([A-Z]{2})$")
_S2_NAME_IN_PATH = re.compile(r"(S2[A-D]_MSIL(?:1C|2A)_\d{8}T\d{6}_N\d{4}_R\d{3}_T\d{2}[A-Z]{3}_\d{8}T\d{6})")
_S1_NAME_IN_PATH = re.compile(
    r"(S1[A-D]_(?:IW|EW|SM|S\d|WV)_(?:GRD|SLC)[FHM_]_\d[SA](?:SH|SV|DH|DV|HH|HV|VV|VH)_"
    r"\d{8}T\d{6}_\d{8}T\d{6}_\d{6}_[0-9A-F]{6}(?:_[0-9A-F]{4})?)"
)
_BASELINE = re.compile(r"^\d{2}\.\d{2}$")


def item_dict(item: pystac.Item | Mapping[str, Any]) -> dict[str, Any]:
    """The plain JSON dict of an item (hrefs left as they are)."""
    if isinstance(item, pystac.Item):
        return item.to_dict(include_self_link=True, transform_hrefs=False)
    return dict(item)


def _props(item: Mapping[str, Any]) -> Mapping[str, Any]:
    props = item.get("properties")
    return props if isinstance(props, Mapping) else {}


def _asset_hrefs(item: Mapping[str, Any]) -> list[str]:
    assets = item.get("assets")
    if not isinstance(assets, Mapping):
        return []
    out = []
    for asset in assets.values():
        if isinstance(asset, Mapping):
            for key in ("href", "file:local_path"):
                if isinstance(asset.get(key), str):
                    out.append(asset[key])
    return out


def _strip_safe(name: str) -> str:
    return _SAFE_SUFFIX.sub("", name.strip())


def _family(item: Mapping[str, Any]) -> str | None:
    props = _props(item)
    collection = str(item.get("collection") or "").lower()
    platform = str(props.get("platform") or "").lower()
    ptype = str(props.get("product:type") or props.get("s2:product_type") or "").upper()
    if "sentinel-2" in collection or "s2" in collection.split("-") or platform.startswith("sentinel-2"):
        return "S2"
    if ptype.startswith("S2MSI") or any(str(k).startswith("s2:") for k in props):
        return "S2"
    if "sentinel-1" in collection or platform.startswith("sentinel-1") or "sar:polarizations" in props:
        return "S1"
    info = parse_product_name(str(item.get("id") or ""))
    return info.family if info else None


def _product_id(item: Mapping[str, Any], family: str) -> str:
    props = _props(item)
    item_id = str(item.get("id") or "")
    for key in ("s2:product_uri", "sentinel:product_id", "s1:product_identifier", "eopf:product_name"):
        value = props.get(key)
        if isinstance(value, str) and parse_product_name(value) is not None:
            return _strip_safe(value)
    if parse_product_name(item_id) is not None:
        stem = _strip_safe(item_id)
        if family == "S1":  # PC ids drop the product's CRC; the SAFE folder in the asset hrefs keeps it
            for href in _asset_hrefs(item):
                m = _S1_NAME_IN_PATH.search(href)
                if m and m.group(1).startswith(stem):
                    return m.group(1)
        return stem
    pattern = _S2_NAME_IN_PATH if family == "S2" else _S1_NAME_IN_PATH
    for href in _asset_hrefs(item):
        m = pattern.search(href)
        if m:
            return m.group(1)
    if not item_id:
        raise MetadataError("STAC item has no id; the catalogue answered with a malformed item")
    return item_id


def _product_type(item: Mapping[str, Any], family: str, product_id: str) -> str:
    props = _props(item)
    if family == "S1":
        sar_type = str(props.get("sar:product_type") or props.get("product:type") or "").upper()
        collection = str(item.get("collection") or "").lower()
        info = parse_product_name(product_id)
        if "GRD" in sar_type or "grd" in collection or (info is not None and info.product_type == "GRD"):
            return "GRD"
        if "SLC" in sar_type or "slc" in collection:
            return "SLC"
        raise MetadataError(f"STAC item {item.get('id')}: cannot tell the Sentinel-1 product type (GRD or SLC)")
    for key in ("s2:product_type", "product:type"):
        value = str(props.get(key) or "").upper()
        if value in ("S2MSI2A", "S2MSI1C"):
            return value
    collection = str(item.get("collection") or "").lower()
    if "l2a" in collection:
        return "S2MSI2A"
    if "l1c" in collection:
        return "S2MSI1C"
    info = parse_product_name(product_id) or parse_product_name(str(item.get("id") or ""))
    if info is not None and info.family == "S2":
        return info.product_type
    level = str(props.get("processing:level") or "").upper()
    if level in ("L2A", "L1C"):
        return "S2MSI2A" if level == "L2A" else "S2MSI1C"
    raise MetadataError(f"STAC item {item.get('id')}: cannot tell the Sentinel-2 level (L1C or L2A)")


def _mission(props: Mapping[str, Any], product_id: str) -> str:
    platform = str(props.get("platform") or "").strip().lower()
    m = re.fullmatch(r"sentinel-?([12])([a-d])", platform)
    if m:
        return f"S{m.group(1)}{m.group(2).upper()}"
    if re.match(r"S[12][A-D]_", product_id):
        return product_id[:3]
    raise MetadataError(f"STAC item for {product_id}: cannot tell the mission (no platform, no S2A_/S1A_ name)")


def _sensing_time(item: Mapping[str, Any]) -> datetime:
    props = _props(item)
    value = props.get("datetime") or props.get("start_datetime")
    if not isinstance(value, str) or not value:
        raise MetadataError(f"STAC item {item.get('id')} has no datetime nor start_datetime")
    try:
        when = str_to_datetime(value)
    except ValueError as exc:
        raise MetadataError(f"STAC item {item.get('id')}: datetime {value!r} is not an ISO-8601 time") from exc
    if when.tzinfo is None:
        return when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc)


def _tile_id(props: Mapping[str, Any], product_id: str) -> str | None:
    candidates: list[str] = []
    for key in ("s2:mgrs_tile", "grid:code", "mgrs:tile", "tile_id"):
        value = props.get(key)
        if isinstance(value, str):
            candidates.append(re.sub(r"^MGRS-", "", value.strip(), flags=re.IGNORECASE))
    zone, band, square = (props.get(f"mgrs:{k}") for k in ("utm_zone", "latitude_band", "grid_square"))
    if zone is None:
        zone, band, square = (props.get(f"sentinel:{k}") for k in ("utm_zone", "latitude_band", "grid_square"))
    if zone is not None and band and square:
        candidates.append(f"{int(zone)}{band}{square}")
    for value in candidates:
        m = _MGRS.match(value.upper())
        if m:
            return f"{int(m.group(1)):02d}{m.group(2)}{m.group(3)}"
    info = parse_product_name(product_id)
    return info.tile_id if info is not None else None


def processing_baseline(props: Mapping[str, Any], product_id: str) -> str | None:
    """The S2 processing baseline ("05.11") from the item properties or the product name."""
    for key in ("s2:processing_baseline", "processing:version", "sentinel:processing_baseline"):
        value = props.get(key)
        if isinstance(value, str) and _BASELINE.match(value.strip()):
            return value.strip()
    m = re.search(r"_N(\d{2})(\d{2})_", product_id + "_")
    return f"{m.group(1)}.{m.group(2)}" if m else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _footprint(item: Mapping[str, Any]) -> BaseGeometry | None:
    geom = item.get("geometry")
    if not isinstance(geom, Mapping):
        return None
    try:
        return shape(geom)
    except (ValueError, TypeError, AttributeError) as exc:
        raise MetadataError(f"STAC item {item.get('id')}: geometry is not valid GeoJSON ({exc})") from exc


def self_href(item: Mapping[str, Any]) -> str | None:
    """The item's ``self`` link, if any."""
    for link in item.get("links") or []:
        if isinstance(link, Mapping) and link.get("rel") == "self" and isinstance(link.get("href"), str):
            return str(link["href"])
    return None


def _size_bytes(item: Mapping[str, Any]) -> int | None:
    assets = item.get("assets") or {}
    for key in ("Product", "product"):  # CDSE: the whole product zip
        asset = assets.get(key)
        if isinstance(asset, Mapping):
            return _int(asset.get("file:size"))
    return None


@dataclass(frozen=True)
class StacProduct:
    """What a Sentinel-1/2 STAC item tells about its product.

    ``item`` is the item's plain JSON dict. ``cloud_cover`` and ``tile_id`` are set for S2 only;
    ``orbit_state`` and ``polarizations`` are the S1 item's ``sat:orbit_state`` / ``sar:polarizations``,
    ``processing_baseline`` the S2 baseline ("05.11").
    """

    item: dict[str, Any] = field(compare=False, hash=False)
    family: str  # "S1" | "S2"
    product_id: str
    product_type: str
    mission: str
    sensing_time: datetime
    footprint: BaseGeometry | None
    cloud_cover: float | None
    tile_id: str | None
    relative_orbit: int | None
    size_bytes: int | None
    orbit_state: Any = None
    polarizations: tuple[Any, ...] = ()
    processing_baseline: str | None = None


def stac_product(item: pystac.Item | Mapping[str, Any]) -> StacProduct:
    """Read the product of one STAC item (any dialect above).

    Raises :class:`MetadataError` when the item is not a Sentinel-1/2 product senprep can use.
    """
    data = item_dict(item)
    props = _props(data)
    family = _family(data)
    if family is None:
        raise MetadataError(
            f"STAC item {data.get('id')} (collection {data.get('collection')}) is neither Sentinel-1 nor Sentinel-2"
        )
    product_id = _product_id(data, family)
    product_type = _product_type(data, family, product_id)
    info = parse_product_name(product_id)
    relative_orbit = _int(props.get("sat:relative_orbit"))
    if relative_orbit is None and info is not None:
        relative_orbit = info.relative_orbit
    cloud = props.get("eo:cloud_cover")
    s1 = family == "S1"
    orbit_state = props.get("sat:orbit_state") if s1 else None
    polarizations = tuple(props.get("sar:polarizations") or []) if s1 else ()
    baseline = None if s1 else processing_baseline(props, product_id)
    return StacProduct(
        item=data,
        family=family,
        product_id=product_id,
        product_type=product_type,
        mission=_mission(props, product_id),
        sensing_time=_sensing_time(data),
        footprint=_footprint(data),
        cloud_cover=float(cloud) if family == "S2" and isinstance(cloud, (int, float)) else None,
        tile_id=_tile_id(props, product_id) if family == "S2" else None,
        relative_orbit=relative_orbit,
        size_bytes=_size_bytes(data),
        orbit_state=orbit_state,
        polarizations=polarizations,
        processing_baseline=baseline,
    )
