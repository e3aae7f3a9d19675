"""The STAC catalog of a run: an index of the items its units wrote, one collection per kind of patch.

Files (every href relative, so the run folder can be moved or zipped)::

    catalog.json                                 root catalog; one child link per collection
    collections/<collection>/collection.json     "sentinel-1", "sentinel-2", "sentinel-1-2-pairs"
    items/<unit_id>_<patch_id>.json              one Item per written patch (:mod:`.stac_item`), written by its unit

Single-modality patches go to ``sentinel-1`` or ``sentinel-2``; the patches of a paired unit (S1 and
S2 on the identical grid) go to ``sentinel-1-2-pairs`` as **one** Item holding both COGs (asset keys
``S1`` and ``S2``) and both sidecars (``S1_metadata``, ``S2_metadata``, role ``metadata``). Each
collection's extent covers its items (bbox union; first to last time), merged from the summaries the
units record in their manifests; its item links are streamed unit by unit, so writing the catalog holds
one unit's manifest in memory at a time, however many patches the run has.
"""

from __future__ import annotations

import filecmp
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import orjson
import pystac
from shapely.geometry import MultiPolygon, Polygon, box

from senprep_core.atomic import TMP_MARK, dump_json, write_json_atomic
from senprep_core.geo.antimeridian import lonlat_bbox, merged_lonlat
from senprep_core.outputs.records import CollectionSummary, UnitManifest
from senprep_core.outputs.run_folder import RunFolder
from senprep_core.outputs.stac_item import (
    COLLECTION_FILE,
    COLLECTION_TEXT,
    PAIRS_COLLECTION,
    S1_COLLECTION,
    S2_COLLECTION,
    SENTINEL_LICENSE_URL,
    collection_id,
    write_unit_items,
)
from senprep_core.timeutil import parse_utc

__all__ = ["PAIRS_COLLECTION", "S1_COLLECTION", "S2_COLLECTION", "merge_summaries", "write_catalog"]

_ITEM_MEDIA = "application/geo+json"


def _box(bbox: Sequence[float]) -> Polygon | MultiPolygon:
    west, south, east, north = bbox
    if west <= east:
        return box(west, south, east, north)
    return MultiPolygon([box(west, south, 180.0, north), box(-180.0, south, east, north)])


def merge_summaries(parts: Sequence[CollectionSummary]) -> CollectionSummary:
    """One collection's summary from its units' (bbox union, across 180 as RFC 7946 says; first to last time)."""
    if any(p.bbox[0] > p.bbox[2] for p in parts):
        bbox = lonlat_bbox(merged_lonlat(_box(p.bbox) for p in parts))
    else:
        bbox = (min(p.bbox[0] for p in parts), min(p.bbox[1] for p in parts), max(p.bbox[2] for p in parts),
                max(p.bbox[3] for p in parts))  # fmt: skip
    return CollectionSummary(
        parts[0].collection,
        bbox,
        min(parts, key=lambda p: parse_utc(p.start)).start,
        max(parts, key=lambda p: parse_utc(p.end)).end,
        tuple(sorted({v for p in parts for v in p.constellation})),
        tuple(sorted({v for p in parts for v in p.platform})),
        tuple(sorted({v for p in parts for v in p.instruments})),
        sum(p.items for p in parts),
    )


def _collection(summary: CollectionSummary) -> pystac.Collection:
    title, description = COLLECTION_TEXT[summary.collection]
    extent = pystac.Extent(pystac.SpatialExtent([list(summary.bbox)]),
                           pystac.TemporalExtent([[parse_utc(summary.start), parse_utc(summary.end)]]))  # fmt: skip
    values = {"constellation": summary.constellation, "platform": summary.platform,
              "instruments": summary.instruments}  # fmt: skip
    collection = pystac.Collection(id=summary.collection, title=title, description=description, extent=extent,
                                   license="other", summaries=pystac.Summaries({k: list(v) for k, v in values.items()
                                                                               if v}),
                                   catalog_type=pystac.CatalogType.SELF_CONTAINED)  # fmt: skip
    collection.add_link(
        pystac.Link("license", SENTINEL_LICENSE_URL, title="Legal notice on the use of Copernicus Sentinel data")
    )
    return collection


def _unit_order(unit_id: str) -> str:
    """Units in the order of their item ids (``<unit_id>_r000_c000``): the order the collections list them."""
    return f"{unit_id}_r"


def _complete(folder: RunFolder, unit_ids: Sequence[str]) -> Iterator[UnitManifest]:
    """The manifests of the complete units among ``unit_ids``, in item order, one at a time; a unit whose
    items were never written (a run without STAC before) gets them now."""
    for unit_id in sorted(unit_ids, key=_unit_order):
        manifest = folder.read_manifest(unit_id, products=False)
        if manifest is None or manifest.status != "done" or not manifest.patches:
            continue
        if not manifest.stac:
            manifest = folder.read_manifest(unit_id) or manifest  # whole, with its products: it is rewritten
            files, summaries = write_unit_items(folder, manifest.patches)
            known = {f.path for f in manifest.files}
            manifest = replace(manifest, files=(*manifest.files, *(f for f in files if f.path not in known)),
                               stac=summaries)  # fmt: skip
            folder.commit_unit(manifest)
        yield manifest


def _item_link(href: str) -> bytes:
    """One item link as the collection file lists it (orjson's layout at that depth)."""
    text = orjson.dumps({"href": href, "rel": "item", "type": _ITEM_MEDIA},
                        option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)  # fmt: skip
    return b"\n".join(b"    " + line for line in text.split(b"\n")) + b",\n"


def _write_collection(folder: RunFolder, catalog: pystac.Catalog, summary: CollectionSummary,
                      unit_ids: Sequence[str]) -> int:  # fmt: skip
    """Stream ``collection.json``: its fields, then every item link unit by unit; 1 when the file changed."""
    root = folder.root.resolve()
    collection = _collection(summary)
    catalog.add_child(collection)
    path = folder.collections_dir / summary.collection / COLLECTION_FILE
    collection.set_self_href(str(root / path.relative_to(folder.root)))
    doc = collection.to_dict(include_self_link=False, transform_hrefs=True)
    marker = "senprep-item-links"
    doc["links"] = [*(lk for lk in doc["links"] if lk["rel"] != "parent"), marker,
                    *(lk for lk in doc["links"] if lk["rel"] == "parent")]  # fmt: skip
    head, tail = dump_json(doc).split(f'    "{marker}",\n'.encode(), 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}{TMP_MARK}{os.getpid()}{path.suffix}")
    with open(tmp, "wb") as f:
        f.write(head)
        for manifest in _complete(folder, unit_ids):
            for entry in manifest.patches:
                if collection_id(entry) == summary.collection:
                    item = folder.item_file(entry.unit_id, entry.patch_id)
                    f.write(_item_link(os.path.relpath(item, path.parent).replace(os.sep, "/")))
        f.write(tail)
    if path.exists() and filecmp.cmp(tmp, path, shallow=False):
        tmp.unlink()
        return 0
    os.replace(tmp, path)
    return 1


def write_catalog(folder: RunFolder, run_name: str, unit_ids: Sequence[str]) -> int:
    """Write ``catalog.json`` and the collections indexing the items of the complete units ``unit_ids``;
    return the files rewritten (unchanged files are left alone; collections with no item are removed)."""
    parts: dict[str, list[CollectionSummary]] = {}
    for manifest in _complete(folder, unit_ids):
        for summary in manifest.stac:
            parts.setdefault(summary.collection, []).append(summary)
    root = folder.root.resolve()
    catalog = pystac.Catalog(id=run_name, description=f"senprep patches of run '{run_name}'",
                             catalog_type=pystac.CatalogType.SELF_CONTAINED)  # fmt: skip
    catalog.set_self_href(str(root / folder.catalog_file.name))
    written = sum(_write_collection(folder, catalog, merge_summaries(parts[cid]), unit_ids) for cid in sorted(parts))
    written += int(write_json_atomic(folder.catalog_file, catalog.to_dict(include_self_link=False,
                                                                          transform_hrefs=True)))  # fmt: skip
    if folder.collections_dir.exists():
        for old in folder.collections_dir.iterdir():
            if old.is_dir() and old.name not in parts and (old / COLLECTION_FILE).exists():
                shutil.rmtree(old)
    _remove_stale_items(folder, set(unit_ids))
    return written


def _remove_stale_items(folder: RunFolder, units: set[str]) -> None:
    """Items of units that are not the run's (a product no longer selected, an earlier config's)."""
    if not folder.items_dir.is_dir():
        return
    with os.scandir(folder.items_dir) as found:
        for entry in found:
            unit = folder.item_unit(entry.name)
            if unit is not None and unit not in units and entry.is_file():
                os.unlink(entry.path)


def item_paths(folder: RunFolder, unit_ids: Sequence[str]) -> Iterator[Path]:
    """The item files of the complete units, in the collections' order."""
    for manifest in _complete(folder, unit_ids):
        for entry in manifest.patches:
            yield folder.item_file(entry.unit_id, entry.patch_id)
