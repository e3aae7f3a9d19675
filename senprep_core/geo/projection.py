"""Cached coordinate transformers (building a PROJ pipeline costs ~1 ms; patches reuse a few)."""

from __future__ import annotations

from functools import lru_cache

from pyproj import Transformer


@lru_cache(maxsize=64)
def transformer(src_epsg: int, dst_epsg: int) -> Transformer:
    """An x/y-ordered (lon, lat for EPSG:4326) transformer between two EPSG codes, built once per pair.

    pyproj transformers are safe to share between threads (pyproj >= 3.1).
    """
    return Transformer.from_crs(src_epsg, dst_epsg, always_xy=True)
