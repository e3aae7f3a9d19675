"""Sentinel-2 metadata from a STAC item whose assets are the band files (COG or JP2), read in place.

:func:`s2_metadata_from_item` is pure: band files, geocoding, EPSG, baseline and DN offsets all come
from the item JSON. :func:`read_stac_item_metadata` loads an item file and, only when the item lacks
``proj:transform`` / ``proj:shape``, opens the first file of a resolution to learn its grid.

DN offsets (reflectance = (DN + offset) / quantification):

- Earth Search ``sentinel-2-l2a`` items carry ``earthsearch:boa_offset_applied``. ``true`` means the
  COG DNs already include ESA's -1000 offset, so the offset is 0 (the ``raster:bands`` offset of -0.1
  these items also show is wrong for them); ``false`` means the offset follows the baseline.
- Otherwise the ``raster:bands`` scale / offset (STAC raster 1.x) or asset ``raster:scale`` /
  ``raster:offset`` (raster 2.0, CDSE) give quantification = 1 / scale and offset = offset / scale.
- Without any of these (Planetary Computer) the offset is -1000 from baseline 04.00 on, else 0.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import rasterio
from rasterio.errors import RasterioError
from shapely.geometry import MultiPolygon, Polygon

from senprep_core.bands import S2_BANDS
from senprep_core.errors import CorruptProductError, MetadataError
from senprep_core.fetch.redact import scrub
from senprep_core.remotefs import RemoteLocation, gdal_path_for
from senprep_core.s2.metadata import BAND_IDS, S2Metadata, TileGeocoding, epsg_from_mgrs, inferred_offset
from senprep_core.stac_product import processing_baseline, stac_product

#: Earth Search v1 asset keys (common names) -> canonical bands.
_COMMON_KEYS = {
    "coastal": "B01", "blue": "B02", "green": "B03", "red": "B04", "rededge1": "B05", "rededge2": "B06",
    "rededge3": "B07", "nir": "B08", "nir08": "B8A", "nir09": "B09", "cirrus": "B10", "swir16": "B11",
    "swir22": "B12", "scl": "SCL", "aot": "AOT", "wvp": "WVP",
}  # fmt: skip
#: Probability layers (Earth Search ``cloud`` = CLD_20m, ``snow`` = SNW_20m) -> mask key prefix.
_MASK_KEYS = {"cloud": "cldprb", "snow": "snwprb"}
_KEY = re.compile(r"^(B0[1-9]|B1[0-2]|B8A|SCL|AOT|WVP)(?:_(10|20|60)m)?$", re.IGNORECASE)
_BAND_NAME = re.compile(r"^B(\d{1,2}|8A)$", re.IGNORECASE)
#: Asset keys of the tile metadata (MTD_TL.xml / metadata.xml, which holds the angle grids).
TILE_METADATA_KEYS = ("granule_metadata", "granule-metadata", "metadata")
_ScaleOffset = tuple[float | None, float | None]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _band_of(key: str, asset: Mapping[str, Any]) -> tuple[str, int | None] | None:
    """(canonical band, resolution from the key or None) of a band asset, None for other assets."""
    name = key[:-4] if key.lower().endswith("-jp2") else key
    m = _KEY.match(name)
    if m:
        return m.group(1).upper(), int(m.group(2)) if m.group(2) else None
    if name.lower() in _COMMON_KEYS:
        return _COMMON_KEYS[name.lower()], None
    bands = asset.get("eo:bands") or asset.get("bands") or []
    if len(bands) == 1 and isinstance(bands[0], Mapping):
        bm = _BAND_NAME.match(str(bands[0].get("name", "")))
        if bm:
            code = bm.group(1).upper()
            band = "B8A" if code == "8A" else f"B{int(code):02d}"
            if band in S2_BANDS:
                return band, None
    return None


def _resolution(asset: Mapping[str, Any], band: str) -> int:
    transform = asset.get("proj:transform")
    raster = asset.get("raster:bands")
    for value in (
        asset.get("gsd"),
        transform[0] if isinstance(transform, list) and transform else None,
        raster[0].get("spatial_resolution") if isinstance(raster, list) and raster and isinstance(raster[0], Mapping)
        else None,
    ):  # fmt: skip
        number = _number(value)
        if number and round(number) in (10, 20, 60):
            return round(number)
    return S2_BANDS[band].resolution if band in S2_BANDS else 20


def _scale_offset(asset: Mapping[str, Any]) -> _ScaleOffset:
    raster = asset.get("raster:bands")
    if isinstance(raster, list) and raster and isinstance(raster[0], Mapping):
        return _number(raster[0].get("scale")), _number(raster[0].get("offset"))
    return _number(asset.get("raster:scale")), _number(asset.get("raster:offset"))


def _resolve(href: str, base: Path | None) -> str:
    if base is not None and "://" not in href and not href.startswith("/"):
        return str((base / href).resolve())
    return href


def _geocoding(asset: Mapping[str, Any], resolution: int) -> TileGeocoding | None:
    transform, shape = asset.get("proj:transform"), asset.get("proj:shape")
    if not (isinstance(transform, list) and len(transform) >= 6 and isinstance(shape, list) and len(shape) == 2):
        return None
    return TileGeocoding(resolution, float(transform[2]), float(transform[5]), int(shape[0]), int(shape[1]))


def _epsg(props: Mapping[str, Any], assets: Mapping[str, Any], tile_id: str) -> int:
    sources = [props.get("proj:epsg"), props.get("proj:code")]
    sources += [a.get("proj:epsg") or a.get("proj:code") for a in assets.values() if isinstance(a, Mapping)]
    for value in sources:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and (m := re.fullmatch(r"EPSG:(\d{4,5})", value.strip(), re.IGNORECASE)):
            return int(m.group(1))
    return epsg_from_mgrs(tile_id)


def _offsets(
    props: Mapping[str, Any], scales: dict[str, _ScaleOffset], baseline: str, level: str, label: str
) -> tuple[float, dict[str, int], str]:
    """(quantification, offsets per reflectance band, source)."""
    bands = [b for b in BAND_IDS if level == "L1C" or b != "B10"]
    applied = props.get("earthsearch:boa_offset_applied")
    if isinstance(applied, bool):
        if applied:
            return 10000.0, dict.fromkeys(bands, 0), "earthsearch:boa_offset_applied"
        return 10000.0, dict.fromkeys(bands, inferred_offset(baseline)), "inferred from baseline"
    scaled = {b: so for b, so in scales.items() if so[0]}
    if not scaled:
        return 10000.0, dict.fromkeys(bands, inferred_offset(baseline)), "inferred from baseline"
    quants = {round(1.0 / (so[0] or 1.0)) for so in scaled.values()}
    if len(quants) > 1:
        raise MetadataError(f"{label}: reflectance assets have different raster scales {sorted(quants)}")
    quant = float(quants.pop())
    offsets = {b: round((so[1] or 0.0) * quant) for b, so in scaled.items()}
    default = next(iter(offsets.values()))
    return quant, {b: offsets.get(b, default) for b in bands}, "STAC raster scale/offset"


def tile_metadata_asset(assets: Mapping[str, Any]) -> tuple[str, str] | None:
    """(key, href) of an item's tile metadata asset (``granule_metadata``, PC's ``granule-metadata``, Earth
    Search v0's ``metadata``): the XML holding the sun and viewing angle grids. None when there is none."""
    for key in TILE_METADATA_KEYS:
        asset = assets.get(key)
        if isinstance(asset, Mapping) and isinstance(asset.get("href"), str):
            href = str(asset["href"])
            if href.lower().split("?")[0].endswith(".xml"):
                return key, href
    return None


def s2_metadata_from_item(
    item: Mapping[str, Any], location: RemoteLocation | None = None, base: Path | None = None
) -> S2Metadata:
    """The :class:`S2Metadata` of a Sentinel-2 STAC item whose assets are band files (pure, no I/O).

    ``band_files`` hold GDAL paths (``/vsicurl/<href>`` for http(s) hrefs, local paths as they are;
    relative hrefs are resolved against ``base``). COG assets win over JP2 twins (Earth Search ``*-jp2``).
    """
    product = stac_product(item)
    label = f"STAC item {item.get('id')}"
    if product.family != "S2":
        raise MetadataError(f"{label} is a Sentinel-1 product; read_s2_metadata reads Sentinel-2 items only")
    if product.tile_id is None:
        raise MetadataError(f"{label}: no MGRS tile id (s2:mgrs_tile, grid:code, mgrs:* or _Txxxxx in the name)")
    props = item.get("properties") or {}
    assets: Mapping[str, Any] = item.get("assets") or {}
    baseline = processing_baseline(props, product.product_id)
    if baseline is None:
        raise MetadataError(f"{label}: no processing baseline (s2:processing_baseline, processing:version, _Nxxxx)")

    found = []
    for key, asset in assets.items():
        if not isinstance(asset, Mapping) or not isinstance(asset.get("href"), str):
            continue
        resolution: int | None
        if key.lower() in _MASK_KEYS:
            band, resolution = key.lower(), None
        else:
            hit = _band_of(key, asset)
            if hit is None:
                continue
            band, resolution = hit
        jp2 = key.lower().endswith("-jp2") or asset["href"].lower().split("?")[0].endswith(".jp2")
        res = resolution or _resolution(asset, band)
        found.append((jp2, key, band, res, asset))
    found.sort(key=lambda f: (f[0], f[1]))  # COGs before JP2 twins

    band_files: dict[str, dict[int, str]] = {}
    mask_files: dict[str, str] = {}
    geocoding: dict[int, TileGeocoding] = {}
    scales: dict[str, _ScaleOffset] = {}
    for _jp2, _key, band, res, asset in found:
        path = gdal_path_for(_resolve(asset["href"], base))
        if band in _MASK_KEYS:
            mask_files.setdefault(f"{_MASK_KEYS[band]}_{res}m", path)
            continue
        if res in band_files.get(band, {}):
            continue
        band_files.setdefault(band, {})[res] = path
        if band in BAND_IDS and band not in scales:
            scales[band] = _scale_offset(asset)
        geo = _geocoding(asset, res)
        if geo is not None:
            geocoding.setdefault(res, geo)
    if not band_files:
        raise MetadataError(f"{label} has no band assets (B01..B12, SCL, or Earth Search names like 'red')")

    level = "L2A" if product.product_type == "S2MSI2A" else "L1C"
    quant, offsets, source = _offsets(props, scales, baseline, level, label)
    tile_metadata = (tile_metadata_asset(assets) or (None, None))[1]
    footprint = product.footprint if isinstance(product.footprint, (Polygon, MultiPolygon)) else None
    return S2Metadata(
        product_id=product.product_id,
        mission=product.mission,
        level=level,
        product_type=product.product_type,
        sensing_time=product.sensing_time,
        tile_id=product.tile_id,
        epsg=_epsg(props, assets, product.tile_id),
        processing_baseline=baseline,
        quantification_value=quant,
        offsets=offsets,
        offsets_source=source,
        cloud_cover=product.cloud_cover,
        footprint=footprint,
        relative_orbit=product.relative_orbit,
        geocoding=dict(sorted(geocoding.items())),
        band_files={b: dict(sorted(files.items())) for b, files in band_files.items()},
        mask_files=mask_files,
        layout="STAC",
        location=location,
        tile_metadata=gdal_path_for(_resolve(tile_metadata, base)) if tile_metadata else None,
    )


def read_stac_item_metadata(path: str | Path) -> S2Metadata:
    """Read a Sentinel-2 STAC item JSON file (as written by a COG provider's ``fetch``) into metadata.

    Relative asset hrefs are resolved against the file's folder. Resolutions without
    ``proj:transform`` / ``proj:shape`` get their grid from the header of their first file.
    """
    file = Path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MetadataError(f"{file} is not a readable STAC item JSON ({exc}); fetch the product again") from exc
    if not isinstance(data, dict) or data.get("type") != "Feature":
        raise MetadataError(f'{file} is not a STAC item (no "type": "Feature"); give a STAC item JSON file')
    meta = s2_metadata_from_item(data, base=file.resolve().parent)
    location = RemoteLocation(file.resolve(), meta.product_id)
    missing = {r: p for files in meta.band_files.values() for r, p in files.items() if r not in meta.geocoding}
    geocoding = dict(meta.geocoding)
    if missing:
        with location.gdal_env():
            for res, gdal_path in sorted(missing.items()):
                try:
                    with rasterio.open(gdal_path) as ds:
                        geocoding[res] = TileGeocoding(res, ds.transform.c, ds.transform.f, ds.height, ds.width)
                except (RasterioError, OSError) as exc:  # signed hrefs: their signature is masked
                    raise CorruptProductError(
                        scrub(f"cannot open {gdal_path} of product {meta.product_id} ({file}): {exc}; ")
                        + "check the network or fetch the product again"
                    ) from exc
    return replace(meta, geocoding=dict(sorted(geocoding.items())), location=location)
