"""STAC items of Sentinel-1/2 products -> :class:`ProductRecord` (pure: no I/O).

:func:`senprep_core.stac_product.stac_product` reads what an item tells about its product (in the
Earth Search, Planetary Computer and CDSE dialects); :func:`item_to_record` makes the catalogue's
record of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pystac

from senprep_core.catalog.records import ProductRecord
from senprep_core.stac_product import self_href, stac_product

__all__ = ["item_to_record"]


def item_to_record(item: pystac.Item | Mapping[str, Any], provider: str, href: str | None = None) -> ProductRecord:
    """Map one STAC item (any dialect :mod:`senprep_core.stac_product` reads) to a product record.

    ``href`` defaults to the item's ``self`` link. ``extra`` keeps the item dict (``stac_item``), its
    collection and id, the orbit direction and polarisations (S1) and the processing baseline (S2).
    Raises :class:`~senprep_core.errors.MetadataError` when the item is not a Sentinel-1/2 product senprep can use.
    """
    product = stac_product(item)
    data = product.item
    extra: dict[str, Any] = {
        "stac_item": data,
        "collection": data.get("collection"),
        "item_id": data.get("id"),
    }
    if product.family == "S1":
        extra["orbit_state"] = product.orbit_state
        extra["polarizations"] = list(product.polarizations)
    else:
        extra["processing_baseline"] = product.processing_baseline
    return ProductRecord(
        product_id=product.product_id,
        family=product.family,
        mission=product.mission,
        product_type=product.product_type,
        sensing_time=product.sensing_time,
        footprint=product.footprint,
        href=href or self_href(data) or "",
        provider=provider,
        cloud_cover=product.cloud_cover,
        tile_id=product.tile_id,
        relative_orbit=product.relative_orbit,
        size_bytes=product.size_bytes,
        online=True,
        orbit_direction=str(extra["orbit_state"]).lower() if extra.get("orbit_state") else None,
        extra=extra,
    )
