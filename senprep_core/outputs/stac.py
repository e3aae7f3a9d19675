"""A STAC catalog of a run: one Item per patch and time step, in one Collection per kind of patch.

Files (every href relative, so the run folder can be moved or zipped)::

    catalog.json                                 root catalog; one child link per collection
    collections/<collection>/collection.json     "sentinel-1", "sentinel-2", "sentinel-1-2-pairs"
    items/<unit_id>_<patch_id>.json              one Item per written patch

Single-modality patches go to ``sentinel-1`` or ``sentinel-2``; the patches of a paired unit (S1 and
S2 on the identical grid) go to ``sentinel-1-2-pairs`` as **one** Item holding both COGs (asset keys
``S1`` and ``S2``) and both sidecars (``S1_metadata``, ``S2_metadata``, role ``metadata``). Each
collection's extent covers its items (bbox union; first to last time).

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
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import pystac
from pystac.extensions.eo import EOExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.sar import SarExtension
from pystac.extensions.sat import SatExtension
from shapely.geometry import Polygon, mapping

from senprep_core.geo.grid import TargetGrid
from senprep_core.geo.projection import project
from senprep_core.outputs.atomic import write_json_atomic
from senprep_core.product_names import NameInfo, parse_product_name
from senprep_core.timeutil import format_utc, parse_utc

ITEMS_DIR = "items"
COLLECTIONS_DIR = "collections"
S1_COLLECTION = "sentinel-1"
S2_COLLECTION = "sentinel-2"
PAIRS_COLLECTION = "sentinel-1-2-pairs"
_COLLECTION_TEXT = {
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


def grid_footprint_lonlat(grid: TargetGrid) -> Polygon:
    """The grid's outline in lon/lat (densified so the projected edges stay faithful)."""
    b = grid.bounds
    box = Polygon.from_bounds(b.left, b.bottom, b.right, b.top)
    return cast(Polygon, project(box, grid.epsg, 4326, densify=max(b.width, b.height) / 8))


def _family(key: str) -> str | None:
    return key[:2] if key[:2] in _MISSION_FIELDS else None


def entry_modalities(entry: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The entry's per-modality facts (entries written before ``modalities`` existed describe one)."""
    mods = entry.get("modalities")
    return dict(mods) if mods else {entry.get("modality", "S2"): entry}


def _primary(entry: dict[str, Any], mods: dict[str, dict[str, Any]]) -> str:
    primary = (entry.get("pair") or {}).get("primary") or entry.get("modality")
    return str(primary) if primary in mods else next(iter(mods))


def collection_id(entry: dict[str, Any]) -> str:
    """The collection of an entry: both sensors -> pairs, else the sensor's own collection."""
    families = {_family(k) for k in entry_modalities(entry)} - {None}
    if families == {"S1", "S2"}:
        return PAIRS_COLLECTION
    return S1_COLLECTION if families == {"S1"} else S2_COLLECTION


def _first_product(about: dict[str, Any]) -> NameInfo | None:
    """The parsed name of the modality's first product (None when it has none or it is not a SAFE name)."""
    ids = about.get("product_ids") or []
    return parse_product_name(str(ids[0])) if ids else None


def sar_fields(about: dict[str, Any]) -> dict[str, Any]:
    """``sar:*`` fields of an S1 modality (empty when mode or polarisations are unknown)."""
    info = _first_product(about)
    m = info if info is not None and info.family == "S1" else None
    mode = about.get("instrument_mode") or (m.mode if m else None)
    product_type = about.get("product_type") or (m.product_type if m else None)
    pols = list(about.get("polarizations") or [])
    if not pols:
        for band in about.get("bands") or []:
            pols += [p for p in _BAND_POL.findall(str(band)) if p not in pols]
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


def sat_fields(modality: str, about: dict[str, Any]) -> dict[str, Any]:
    """``sat:*`` fields of one modality, as far as they are known."""
    info = _first_product(about)
    fields: dict[str, Any] = {}
    if _family(modality) == "S1":
        state = about.get("orbit_direction")
        relative = about.get("relative_orbit")
        if info is not None and info.family == "S1" and info.absolute_orbit:
            fields["sat:absolute_orbit"] = info.absolute_orbit
    else:
        state = "descending"  # Sentinel-2 images on the descending (daytime) pass
        from_name = info.relative_orbit if info is not None and info.family == "S2" else None
        relative = about.get("relative_orbit") or from_name
    if state:
        fields["sat:orbit_state"] = str(state).lower()
    if relative:
        fields["sat:relative_orbit"] = int(relative)
    designator = COSPAR_IDS.get(str(about.get("platform") or "").lower())
    if designator:
        fields["sat:platform_international_designator"] = designator
    return fields


def _eo_cloud(about: dict[str, Any]) -> float | None:
    cloud = about.get("cloud_fraction")
    return None if cloud is None else round(100.0 * float(cloud), 4)


def _sensor_fields(modality: str, about: dict[str, Any]) -> dict[str, Any]:
    """Common metadata and extension fields of one sensor, for the data asset of a multi-sensor item."""
    fields: dict[str, Any] = {"platform": about.get("platform"), **_MISSION_FIELDS.get(modality[:2], {})}
    if about.get("sensing_time"):
        fields["datetime"] = format_utc(parse_utc(str(about["sensing_time"])))
    if _family(modality) == "S1":
        fields.update(sar_fields(about))
    elif _eo_cloud(about) is not None:
        fields["eo:cloud_cover"] = _eo_cloud(about)
    fields.update(sat_fields(modality, about))
    return {k: v for k, v in fields.items() if v is not None}


def _pair_properties(
    entry: dict[str, Any], mods: dict[str, dict[str, Any]], primary: str
) -> tuple[dict[str, Any], datetime, datetime]:
    times = {k: parse_utc(str(v["sensing_time"])) for k, v in mods.items() if v.get("sensing_time")}
    pair = entry.get("pair") or {}
    secondary = pair.get("secondary") or next((k for k in mods if k != primary), primary)
    delta = pair.get("delta_t_hours")
    if delta is None and primary in times and secondary in times:
        delta = round((times[secondary] - times[primary]).total_seconds() / 3600.0, 3)
    props: dict[str, Any] = {
        "senprep:primary": primary,
        "senprep:delta_t_hours": delta,
        "instruments": sorted({i for k in mods for i in _MISSION_FIELDS.get(k[:2], {}).get("instruments", [])}),
    }
    for key in ("S1", "S2"):
        if key in times:
            props[f"senprep:{key.lower()}_datetime"] = format_utc(times[key])
    return props, min(times.values()), max(times.values())


def patch_item(entry: dict[str, Any], outdir: Path) -> pystac.Item:
    """A STAC Item for one written patch described by its manifest ``entry`` (one or two modalities)."""
    grid = TargetGrid.from_dict(entry["grid"])
    footprint = grid_footprint_lonlat(grid)
    mods = entry_modalities(entry)
    primary = _primary(entry, mods)
    about = mods[primary]
    multi = len([k for k in mods if _family(k)]) > 1
    product_ids = [p for k in mods for p in (mods[k].get("product_ids") or [])] if multi else entry["product_ids"]
    props: dict[str, Any] = {
        "senprep:unit_id": entry["unit_id"],
        "senprep:patch_id": entry["patch_id"],
        "senprep:valid_fraction": entry["valid_fraction"],
        "senprep:product_ids": product_ids,
        "platform": entry.get("platform", about.get("platform")),
        **_MISSION_FIELDS[primary[:2] if primary[:2] in _MISSION_FIELDS else "S2"],
    }
    start = end = None
    if multi:
        pair_props, start, end = _pair_properties(entry, mods, primary)
        props.update(pair_props)
    item = pystac.Item(
        id=f"{entry['unit_id']}_{entry['patch_id']}",
        geometry=mapping(footprint),
        bbox=list(footprint.bounds),
        datetime=parse_utc(str(about.get("sensing_time") or entry["sensing_time"])),
        properties=props,
        start_datetime=start,
        end_datetime=end,
    )
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    proj.epsg = grid.epsg
    proj.shape = [grid.height, grid.width]
    proj.transform = list(grid.transform)[:6]
    proj.bbox = list(grid.bounds.as_tuple())
    s2_key = next((k for k in mods if _family(k) == "S2"), None)
    s1_key = next((k for k in mods if _family(k) == "S1"), None)
    cloud = _eo_cloud(mods[s2_key]) if s2_key else None
    if cloud is not None:
        EOExtension.ext(item, add_if_missing=True).cloud_cover = cloud
    sar = sar_fields(mods[s1_key]) if s1_key else {}
    if sar:
        SarExtension.ext(item, add_if_missing=True)
        item.properties.update(sar)
    sat = sat_fields(s1_key, mods[s1_key]) if s1_key else sat_fields(primary, about)
    if sat:
        SatExtension.ext(item, add_if_missing=True)
        item.properties.update(sat)
    for key, rel in entry["files"].items():
        is_data = rel.endswith(".tif")
        sensor = mods.get(key, {})
        bands = list(sensor.get("bands") or (entry["bands"] if key == entry.get("modality") else []))
        extra: dict[str, Any] = {}
        if is_data:
            extra["bands"] = [{"name": b} for b in bands]
            if multi and key in mods:
                extra.update(_sensor_fields(key, sensor))
        item.add_asset(
            key,
            pystac.Asset(
                href=os.path.normpath(outdir / rel),  # outdir is resolved: no filesystem calls per asset
                media_type=pystac.MediaType.COG if is_data else pystac.MediaType.JSON,
                roles=["data"] if is_data else ["metadata"],
                title=f"{key} patch ({', '.join(bands)})" if is_data else "senprep sidecar metadata",
                extra_fields=extra,
            ),
        )
    return item


def _collection(cid: str, items: list[pystac.Item]) -> pystac.Collection:
    boxes = np.array([i.bbox for i in items], dtype=float)
    bbox = [*boxes[:, :2].min(axis=0).tolist(), *boxes[:, 2:].max(axis=0).tolist()]
    times = [
        t
        for i in items
        for t in (i.datetime, i.common_metadata.start_datetime, i.common_metadata.end_datetime)
        if t is not None
    ]
    title, description = _COLLECTION_TEXT[cid]
    summaries: dict[str, list[Any]] = {
        key: sorted({str(v) for i in items for v in _as_list(i.properties.get(key)) if v is not None})
        for key in ("constellation", "platform", "instruments")
    }
    collection = pystac.Collection(
        id=cid,
        title=title,
        description=description,
        extent=pystac.Extent(pystac.SpatialExtent([bbox]), pystac.TemporalExtent([[min(times), max(times)]])),
        license="other",
        summaries=pystac.Summaries({k: v for k, v in summaries.items() if v}),
        catalog_type=pystac.CatalogType.SELF_CONTAINED,
    )
    collection.add_link(
        pystac.Link("license", SENTINEL_LICENSE_URL, title="Legal notice on the use of Copernicus Sentinel data")
    )
    return collection


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def build_catalog(outdir: Path, run_name: str, entries: Iterable[dict[str, Any]]) -> pystac.Catalog:
    """The run's catalog with its collections and items, hrefs set below ``outdir`` (nothing written)."""
    outdir = outdir.resolve()
    catalog = pystac.Catalog(
        id=run_name,
        description=f"senprep patches of run '{run_name}'",
        catalog_type=pystac.CatalogType.SELF_CONTAINED,
    )
    catalog.set_self_href(str(outdir / "catalog.json"))
    groups: dict[str, list[pystac.Item]] = {}
    for entry in entries:
        groups.setdefault(collection_id(entry), []).append(patch_item(entry, outdir))
    for cid in sorted(groups):
        items = sorted(groups[cid], key=lambda i: i.id)
        collection = _collection(cid, items)
        catalog.add_child(collection)
        collection.set_self_href(str(outdir / COLLECTIONS_DIR / cid / "collection.json"))
        for item in items:
            collection.add_item(item)
            item.set_self_href(str(outdir / ITEMS_DIR / f"{item.id}.json"))
            item.make_asset_hrefs_relative()
    return catalog


def write_catalog(outdir: Path, run_name: str, entries: Iterable[dict[str, Any]]) -> int:
    """Write ``catalog.json``, ``collections/*/collection.json`` and ``items/*.json``; return files rewritten.

    Files whose content did not change are left alone; items and collections that no longer have
    patches are removed.
    """
    outdir = outdir.resolve()
    catalog = build_catalog(outdir, run_name, entries)
    written = int(
        write_json_atomic(outdir / "catalog.json", catalog.to_dict(include_self_link=False, transform_hrefs=True))
    )
    keep_collections: set[str] = set()
    keep_items: set[str] = set()
    for collection in catalog.get_children():
        keep_collections.add(collection.id)
        path = outdir / COLLECTIONS_DIR / collection.id / "collection.json"
        written += int(write_json_atomic(path, collection.to_dict(include_self_link=False, transform_hrefs=True)))
        for item in collection.get_items():
            keep_items.add(f"{item.id}.json")
            path = outdir / ITEMS_DIR / f"{item.id}.json"
            written += int(write_json_atomic(path, item.to_dict(include_self_link=False, transform_hrefs=True)))
    items_dir = outdir / ITEMS_DIR
    if items_dir.exists():
        for stale in items_dir.glob("*.json"):
            if stale.name not in keep_items:
                stale.unlink()
    collections_dir = outdir / COLLECTIONS_DIR
    if collections_dir.exists():
        for folder in collections_dir.iterdir():
            if folder.is_dir() and folder.name not in keep_collections and (folder / "collection.json").exists():
                shutil.rmtree(folder)
    return written
