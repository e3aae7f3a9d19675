"""A STAC catalog of a run: one Item per patch and time step, with proj and eo fields."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import shapely
from pyproj import Transformer
from pystac.extensions.eo import EOExtension
from pystac.extensions.projection import ProjectionExtension
from shapely.geometry import Polygon, mapping

from senprep_core.geo.grid import TargetGrid
from senprep_core.outputs.atomic import write_json_atomic

ITEMS_DIR = "items"
_MISSION_FIELDS: dict[str, dict[str, Any]] = {
    "S1": {"constellation": "sentinel-1", "instruments": ["c-sar"]},
    "S2": {"constellation": "sentinel-2", "instruments": ["msi"]},
}


def grid_footprint_lonlat(grid: TargetGrid) -> Polygon:
    """The grid's outline in lon/lat (densified so the projected edges stay faithful)."""
    b = grid.bounds
    box = Polygon.from_bounds(b.left, b.bottom, b.right, b.top).segmentize(max(b.width, b.height) / 8)
    to_lonlat = Transformer.from_crs(grid.epsg, 4326, always_xy=True).transform
    return shapely.transform(box, lambda xy: np.column_stack(to_lonlat(xy[:, 0], xy[:, 1])))


def patch_item(entry: dict[str, Any], outdir: Path) -> pystac.Item:
    """A STAC Item for one written patch described by its manifest ``entry``."""
    grid = TargetGrid.from_dict(entry["grid"])
    footprint = grid_footprint_lonlat(grid)
    props: dict[str, Any] = {
        "senprep:unit_id": entry["unit_id"],
        "senprep:patch_id": entry["patch_id"],
        "senprep:valid_fraction": entry["valid_fraction"],
        "senprep:product_ids": entry["product_ids"],
        "platform": entry.get("platform"),
        **_MISSION_FIELDS[entry.get("modality", "S2")],
    }
    item = pystac.Item(
        id=f"{entry['unit_id']}_{entry['patch_id']}",
        geometry=mapping(footprint),
        bbox=list(footprint.bounds),
        datetime=datetime.fromisoformat(entry["sensing_time"].replace("Z", "+00:00")),
        properties=props,
    )
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    proj.epsg = grid.epsg
    proj.shape = [grid.height, grid.width]
    proj.transform = list(grid.transform)[:6]
    proj.bbox = list(grid.bounds.as_tuple())
    if entry.get("cloud_fraction") is not None:
        EOExtension.ext(item, add_if_missing=True).cloud_cover = round(100.0 * entry["cloud_fraction"], 4)
    for key, rel in entry["files"].items():
        is_data = rel.endswith(".tif")
        item.add_asset(
            key,
            pystac.Asset(
                href=str((outdir / rel).resolve()),
                media_type=pystac.MediaType.COG if is_data else pystac.MediaType.JSON,
                roles=["data"] if is_data else ["metadata"],
                title=f"{key} patch ({', '.join(entry['bands'])})" if is_data else "senprep sidecar metadata",
            ),
        )
    return item


def write_catalog(outdir: Path, run_name: str, entries: Iterable[dict[str, Any]]) -> int:
    """Write ``catalog.json`` and ``items/*.json`` for the patch ``entries``; return files rewritten.

    Files whose content did not change are left alone; items of patches that no longer exist
    are removed.
    """
    outdir = outdir.resolve()
    catalog = pystac.Catalog(
        id=run_name,
        description=f"senprep patches of run '{run_name}'",
        catalog_type=pystac.CatalogType.SELF_CONTAINED,
    )
    catalog.set_self_href(str(outdir / "catalog.json"))
    items = [patch_item(e, outdir) for e in entries]
    items.sort(key=lambda i: i.id)
    for item in items:
        catalog.add_item(item)
        item.set_self_href(str(outdir / ITEMS_DIR / f"{item.id}.json"))
        item.make_asset_hrefs_relative()
    written = int(
        write_json_atomic(outdir / "catalog.json", catalog.to_dict(include_self_link=False, transform_hrefs=True))
    )
    keep = set()
    for item in items:
        path = outdir / ITEMS_DIR / f"{item.id}.json"
        keep.add(path.name)
        written += int(write_json_atomic(path, item.to_dict(include_self_link=False, transform_hrefs=True)))
    items_dir = outdir / ITEMS_DIR
    if items_dir.exists():
        for stale in items_dir.glob("*.json"):
            if stale.name not in keep:
                stale.unlink()
    return written
