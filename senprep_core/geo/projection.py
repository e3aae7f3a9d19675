"""Coordinate transformers, built once per pair of CRSs (~1 ms each), and lon/lat geometries projected with them."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry


@lru_cache(maxsize=64)
def transformer(src_epsg: int, dst_epsg: int) -> Transformer:
    """An x/y-ordered (lon, lat for EPSG:4326) transformer between two EPSG codes, built once per pair.

    pyproj transformers are safe to share between threads (pyproj >= 3.1).
    """
    return Transformer.from_crs(src_epsg, dst_epsg, always_xy=True)


def project(geometry: BaseGeometry, src_epsg: int, dst_epsg: int, densify: float | None = None) -> BaseGeometry:
    """A geometry from EPSG ``src_epsg`` to ``dst_epsg`` (x/y order; lon/lat for 4326), parts and holes kept.

    With ``densify`` (in source units), edges are first split into pieces no longer than that, so long
    edges follow the projection's curvature instead of staying straight.
    """
    to_xy = transformer(src_epsg, dst_epsg).transform
    source = shapely.segmentize(geometry, densify) if densify else geometry

    def reproject(coords: np.ndarray) -> np.ndarray:
        x, y = to_xy(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    # shapely.transform (not the deprecated shapely.ops.transform) keeps holes and parts
    return shapely.transform(source, reproject)


def project_lonlat(geometry: BaseGeometry, epsg: int, densify_degrees: float | None = None) -> BaseGeometry:
    """A lon/lat geometry in EPSG ``epsg`` (see :func:`project`)."""
    return project(geometry, 4326, epsg, densify_degrees)
