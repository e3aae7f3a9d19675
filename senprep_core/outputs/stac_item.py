"""The STAC Item of one written patch (one modality, or both sensors of a pair on one grid).

Units write their own items, next to their patches (``patches/<unit_id>/<patch_id>_item.json``), as they
finish, with a summary per collection (bbox, times, platforms) in their manifest; the run's catalog and
collections are then only indexes of those (:mod:`senprep_core.outputs.stac`).

Item fields:

- ``proj:*`` (projection v2.0): the patch grid (EPSG code, shape, transform, bbox);
- ``eo:cloud_cover`` (eo v1.1): the S2 patch's cloud percentage, when there is an S2 patch;
- ``sar:*`` (sar v1.0), when there is an S1 patch: ``instrument_mode`` and ``product_type`` (from the
  product name, e.g. IW / GRD), ``frequency_band`` "C", ``center_frequency`` 5.405 (GHz),
  ``polarizations`` (from the band names, else the product name);
- ``sat:*`` (sat v1.0): ``orbit_state`` and ``relative_orbit`` (S1: from the manifest; S2: always
  descending, relative orbit from the product name), ``absolute_orbit`` (S1, from the name) and
  ``platform_international_designator`` (COSPAR id, for the platforms listed in ``COSPAR_IDS``);
- common metadata: ``platform``, ``constellation``, ``instruments``; STAC 1.1 ``bands`` on data assets;
- ``senprep:unit_id``, ``senprep:patch_id``, ``senprep:valid_fraction``, ``senprep:product_ids``.

A pair Item's ``datetime`` is the primary's sensing time and ``start_datetime`` / ``end_datetime``
span both acquisitions, so a time search finds the pair by either. It adds ``senprep:primary``,
``senprep:s1_datetime``, ``senprep:s2_datetime`` and ``senprep:delta_t_hours`` (secondary minus
primary, signed, as in the manifest's ``pair``). Its item-level ``platform`` / ``constellation`` are
the primary's, ``instruments`` lists both sensors, ``sar``/``sat`` fields describe the S1 acquisition
and ``eo:cloud_cover`` the S2 one; each data asset also carries its own sensor's ``datetime``,
``platform``, ``constellation``, ``instruments`` and extension fields.

An S1 stack's Item (``s1_multitemporal`` with ``multitemporal.count`` > 2 or ``all``; assets ``S1``, ``S1_t1``...,
newest first) is in ``sentinel-1``: ``datetime`` is the newest acquisition's, ``start_datetime`` /
``end_datetime`` span the stack, ``senprep:stack`` lists each member's modality, datetime and time gap to the
newest (hours), and each data asset carries its own ``datetime``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import pystac
import xxhash
from pystac.extensions.eo import EOExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.sar import SarExtension
from pystac.extensions.sat import SatExtension
from shapely.geometry import MultiPolygon, Polygon, mapping, shape

from senprep_core.atomic import dump_json, write_bytes_atomic
from senprep_core.geo.antimeridian import lonlat_bbox, merged_lonlat, split_at_antimeridian
from senprep_core.geo.grid import TargetGrid
from senprep_core.geo.projection import project
from senprep_core.outputs.records import CollectionSummary, FileRecord, ModalityPatch, PatchEntry, is_stack_role
from senprep_core.outputs.run_folder import RunFolder
from senprep_core.outputs.zarr_cube import band_info
from senprep_core.product_names import NameInfo, parse_product_name
from senprep_core.timeutil import format_utc

COLLECTION_FILE = "collection.json"
S1_COLLECTION = "sentinel-1"
S2_COLLECTION = "sentinel-2"
PAIRS_COLLECTION = "sentinel-1-2-pairs"
COLLECTION_TEXT = {
    S1_COLLECTION: ("Sentinel-1 patches", "Sentinel-1 GRD backscatter patches on the run's grid"),
    S2_COLLECTION: ("Sentinel-2 patches", "Sentinel-2 reflectance and mask patches on the run's grid"),
    PAIRS_COLLECTION: (
        "Sentinel-1 / Sentinel-2 pairs",
        "Collocated Sentinel-1 and Sentinel-2 patches on one grid, one item per patch holding both",
    ),
}
SENTINEL_LICENSE_URL = "https://sentinel.esa.int/documents/247904/690755/Sentinel_Data_Legal_Notice"
_MISSION_FIELDS: dict[str, dict[str, Any]] = {
    "S1": {"constellation": "sentinel-1", "instruments": ["c-sar"]},
    "S2": {"constellation": "sentinel-2", "instruments": ["msi"]},
}
#: COSPAR international designators of the platforms (``sat:platform_international_designator``).
COSPAR_IDS = {
    "sentinel-1a": "2014-016A",
    "sentinel-1b": "2016-025A",
    "sentinel-2a": "2015-028A",
    "sentinel-2b": "2017-013A",
    "sentinel-2c": "2024-157A",
}
S1_CENTER_FREQUENCY_GHZ = 5.405
_BAND_POL = re.compile(r"(?<![A-Z])(VV|VH|HH|HV)(?![A-Z])")


def grid_footprint_lonlat(grid: TargetGrid) -> Polygon | MultiPolygon:
    """The grid's outline in lon/lat (densified so the projected edges stay faithful), in RFC 7946 form:
    a MultiPolygon cut at ±180 when the grid crosses the antimeridian (a polar grid's outline round the
    pole is closed over the pole)."""
    b = grid.bounds
    box = Polygon.from_bounds(b.left, b.bottom, b.right, b.top)
    outline = project(box, grid.epsg, 4326, densify=max(b.width, b.height) / 8)
    return cast(Polygon | MultiPolygon, split_at_antimeridian(outline))


def collection_id(entry: PatchEntry) -> str:
    """The collection of an entry: both sensors -> pairs, else the sensor's own collection."""
    families = {m.family for m in entry.modalities} & set(_MISSION_FIELDS)
    if families == {"S1", "S2"}:
        return PAIRS_COLLECTION
    return S1_COLLECTION if families == {"S1"} else S2_COLLECTION


def _first_product(part: ModalityPatch) -> NameInfo | None:
    """The parsed name of the modality's first product (None when it has none or it is not a SAFE name)."""
    return parse_product_name(part.product_ids[0]) if part.product_ids else None


def sar_fields(part: ModalityPatch) -> dict[str, Any]:
    """``sar:*`` fields of an S1 modality (empty when mode or polarisations are unknown)."""
    info = _first_product(part)
    m = info if info is not None and info.family == "S1" else None
    sar = part.sar
    mode = (sar.instrument_mode if sar else None) or (m.mode if m else None)
    product_type = (sar.product_type if sar else None) or (m.product_type if m else None)
    pols = list(sar.polarizations) if sar else []
    if not pols:
        for band in part.bands:
            pols += [p for p in _BAND_POL.findall(band) if p not in pols]
    if not pols and m:
        pols = list(m.polarisations or ())
    if not mode or not pols:
        return {}
    fields: dict[str, Any] = {
        "sar:instrument_mode": mode,
        "sar:frequency_band": "C",
        "sar:center_frequency": S1_CENTER_FREQUENCY_GHZ,
        "sar:polarizations": pols,
    }
    if product_type:
        fields["sar:product_type"] = product_type
    return fields


def sat_fields(part: ModalityPatch) -> dict[str, Any]:
    """``sat:*`` fields of one modality, as far as they are known."""
    info = _first_product(part)
    fields: dict[str, Any] = {}
    if part.family == "S1":
        state = part.sar.orbit_direction if part.sar else None
        relative = part.sar.relative_orbit if part.sar else None
        if info is not None and info.family == "S1" and info.absolute_orbit:
            fields["sat:absolute_orbit"] = info.absolute_orbit
    else:
        state = "descending"  # Sentinel-2 images on the descending (daytime) pass
        relative = info.relative_orbit if info is not None and info.family == "S2" else None
    if state:
        fields["sat:orbit_state"] = str(state).lower()
    if relative:
        fields["sat:relative_orbit"] = int(relative)
    designator = COSPAR_IDS.get(str(part.platform or "").lower())
    if designator:
        fields["sat:platform_international_designator"] = designator
    return fields


def _eo_cloud(part: ModalityPatch) -> float | None:
    return None if part.cloud_fraction is None else round(100.0 * part.cloud_fraction, 4)


def _sensor_fields(part: ModalityPatch) -> dict[str, Any]:
    """Common metadata and extension fields of one sensor, for the data asset of a multi-sensor item."""
    fields: dict[str, Any] = {"platform": part.platform, **_MISSION_FIELDS.get(part.family, {})}
    fields["datetime"] = format_utc(part.time)
    if part.family == "S1":
        fields.update(sar_fields(part))
    elif _eo_cloud(part) is not None:
        fields["eo:cloud_cover"] = _eo_cloud(part)
    fields.update(sat_fields(part))
    return {k: v for k, v in fields.items() if v is not None}


def _pair_properties(entry: PatchEntry) -> tuple[dict[str, Any], datetime, datetime]:
    times = {m.modality: m.time for m in entry.modalities}
    primary = entry.modality
    if entry.pair is not None:
        delta: float | None = entry.pair.delta_t_hours
    else:
        secondary = entry.modalities[1].modality
        delta = round((times[secondary] - times[primary]).total_seconds() / 3600.0, 3)
    props: dict[str, Any] = {
        "senprep:primary": primary,
        "senprep:delta_t_hours": delta,
        "instruments": sorted({i for m in entry.modalities for i in _MISSION_FIELDS.get(m.family, {})["instruments"]}),
    }
    for key in ("S1", "S2"):
        if key in times:
            props[f"senprep:{key.lower()}_datetime"] = format_utc(times[key])
    if any(is_stack_role(m) for m in times):  # an S1 stack: every member's time, newest first
        props["senprep:stack"] = [{"modality": m.modality, "datetime": format_utc(m.time), "delta_t_hours":
                                   round((m.time - times[primary]).total_seconds() / 3600.0, 4)}
                                  for m in entry.modalities]  # fmt: skip
    return props, min(times.values()), max(times.values())


def patch_item(entry: PatchEntry, root: Path) -> pystac.Item:
    """A STAC Item for one written patch (one or two modalities); ``root`` is the resolved run folder."""
    grid = entry.grid
    footprint = grid_footprint_lonlat(grid)
    primary = entry.primary
    multi = len(entry.modalities) > 1
    props: dict[str, Any] = {
        "senprep:unit_id": entry.unit_id,
        "senprep:patch_id": entry.patch_id,
        "senprep:valid_fraction": primary.valid_fraction,
        "senprep:product_ids": [p for m in entry.modalities for p in m.product_ids]
        if multi
        else list(primary.product_ids),
        "platform": primary.platform,
        **_MISSION_FIELDS.get(primary.family, _MISSION_FIELDS["S2"]),
    }
    start = end = None
    if multi:
        pair_props, start, end = _pair_properties(entry)
        props.update(pair_props)
    item = pystac.Item(id=f"{entry.unit_id}_{entry.patch_id}", geometry=mapping(footprint),
                       bbox=list(lonlat_bbox(footprint)), datetime=primary.time, properties=props,
                       start_datetime=start, end_datetime=end)  # fmt: skip
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    proj.epsg = grid.epsg
    proj.shape = [grid.height, grid.width]
    proj.transform = list(grid.transform)[:6]
    proj.bbox = list(grid.bounds.as_tuple())
    s2 = next((m for m in entry.modalities if m.family == "S2"), None)
    s1 = next((m for m in entry.modalities if m.family == "S1"), None)
    cloud = _eo_cloud(s2) if s2 else None
    if cloud is not None:
        EOExtension.ext(item, add_if_missing=True).cloud_cover = cloud
    sar = sar_fields(s1) if s1 else {}
    if sar:
        SarExtension.ext(item, add_if_missing=True)
        item.properties.update(sar)
    sat = sat_fields(s1 if s1 else primary)
    if sat:
        SatExtension.ext(item, add_if_missing=True)
        item.properties.update(sat)
    for part in entry.modalities:
        _add_assets(item, part, root, multi)
    return item


def _band_field(modality: str, band: str) -> dict[str, str]:
    """A data asset's STAC 1.1 band object: its name, and ``unit`` for the angle bands (degrees)."""
    units = band_info(modality, band)[1]
    return {"name": band, "unit": units} if units == "degree" else {"name": band}


def _add_assets(item: pystac.Item, part: ModalityPatch, root: Path, multi: bool) -> None:
    """The modality's COG (data) and sidecar (metadata) assets; hrefs without filesystem calls."""
    data_fields: dict[str, Any] = {"bands": [_band_field(part.modality, b) for b in part.bands]}
    if multi:
        data_fields.update(_sensor_fields(part))
    item.add_asset(part.modality, pystac.Asset(
        href=os.path.normpath(root / part.image), media_type=pystac.MediaType.COG, roles=["data"],
        title=f"{part.modality} patch ({', '.join(part.bands)})", extra_fields=data_fields))  # fmt: skip
    item.add_asset(f"{part.modality}_metadata", pystac.Asset(
        href=os.path.normpath(root / part.sidecar), media_type=pystac.MediaType.JSON, roles=["metadata"],
        title="senprep sidecar metadata"))  # fmt: skip


def _summary(cid: str, items: Sequence[pystac.Item]) -> CollectionSummary:
    """The extent, platforms and count of ``items`` of collection ``cid``."""
    boxes = [tuple(i.bbox or ()) for i in items]
    if any(b[0] > b[2] for b in boxes):  # items across the antimeridian: west > east (RFC 7946 §5.2)
        bbox = lonlat_bbox(merged_lonlat(shape(i.geometry) for i in items))
    else:
        bbox = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
    times = [t for i in items for t in (i.datetime, i.common_metadata.start_datetime,
                                         i.common_metadata.end_datetime) if t is not None]  # fmt: skip
    values = {key: tuple(sorted({str(v) for i in items for v in _as_list(i.properties.get(key)) if v is not None}))
              for key in ("constellation", "platform", "instruments")}  # fmt: skip
    return CollectionSummary(cid, bbox, format_utc(min(times)), format_utc(max(times)), values["constellation"],
                             values["platform"], values["instruments"], len(items))  # fmt: skip


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def collection_stub(cid: str, catalog: pystac.Catalog, root: Path, collections_dir: str) -> pystac.Collection:
    """A collection of ``catalog`` whose self href is set (its extent a placeholder): what item links need."""
    title, description = COLLECTION_TEXT[cid]
    none: list[datetime | None] = [None, None]
    empty = pystac.Extent(pystac.SpatialExtent([[-180.0, -90.0, 180.0, 90.0]]), pystac.TemporalExtent([none]))
    collection = pystac.Collection(id=cid, title=title, description=description, extent=empty, license="other",
                                   catalog_type=pystac.CatalogType.SELF_CONTAINED)  # fmt: skip
    catalog.add_child(collection)
    collection.set_self_href(str(root / collections_dir / cid / COLLECTION_FILE))
    return collection


def write_unit_items(
    folder: RunFolder, entries: Sequence[PatchEntry]
) -> tuple[list[FileRecord], tuple[CollectionSummary, ...]]:
    """Write the STAC item of each of a unit's patches next to its files; their file records and the unit's
    summary per collection (what the run's collections index)."""
    root = folder.root.resolve()
    catalog = pystac.Catalog(id="run", description="", catalog_type=pystac.CatalogType.SELF_CONTAINED)
    catalog.set_self_href(str(root / folder.catalog_file.name))
    stubs: dict[str, pystac.Collection] = {}
    grouped: dict[str, list[pystac.Item]] = {}
    files = []
    for entry in entries:
        cid = collection_id(entry)
        collection = stubs.get(cid) or stubs.setdefault(cid, collection_stub(cid, catalog, root,
                                                                            folder.collections_dir.name))  # fmt: skip
        item = patch_item(entry, root)
        collection.add_item(item)
        path = folder.item_file(entry.unit_id, entry.patch_id)
        item.set_self_href(str(path.resolve()))
        item.make_asset_hrefs_relative()
        body = dump_json(item.to_dict(include_self_link=False, transform_hrefs=True))
        write_bytes_atomic(path, body)
        files.append(FileRecord(folder.relative(path), len(body), xxhash.xxh3_128(body).hexdigest()))
        grouped.setdefault(cid, []).append(item)
        collection.remove_item(item.id)  # the stub holds no items: memory stays flat
    return files, tuple(_summary(cid, items) for cid, items in sorted(grouped.items()))
