"""Masks from the scene classification and ROI statistics (pure functions, no I/O)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from lxml import etree
from numpy.typing import ArrayLike
from shapely.geometry import Polygon
from shapely.ops import unary_union

from senprep_core.bands import SCL_CLASSES
from senprep_core.errors import UnknownBandError
from senprep_core.geo.grid import TargetGrid
from senprep_core.geo.projection import project
from senprep_core.xmlsafe import parse_xml

#: SCL classes counted as cloud: medium probability, high probability, thin cirrus.
CLOUD_CLASSES: tuple[int, ...] = (8, 9, 10)


def scl_mask(scl: ArrayLike, name: str) -> np.ndarray:
    """uint8 0/1 mask where the SCL array equals the class of ``name`` (``scl_cloud_shadow`` -> 3).

    Pixels where SCL is 0 (no data) get 0 for every name but ``scl_no_data``; callers mark them
    with their own validity mask.
    """
    if name not in SCL_CLASSES:
        raise UnknownBandError("bands_S2", name, f"use one of {', '.join(SCL_CLASSES)}")
    return (np.asarray(scl) == SCL_CLASSES[name]).astype(np.uint8)


def scl_cloud(scl: ArrayLike) -> np.ndarray:
    """Boolean mask of the SCL cloud classes (:data:`CLOUD_CLASSES`)."""
    return np.isin(np.asarray(scl), CLOUD_CLASSES)


@dataclass(frozen=True)
class RoiFractions:
    """Valid and cloudy shares of the pixels of an ROI."""

    valid_fraction: float  # n(valid & roi) / n(roi); 0.0 for an empty ROI
    cloud_fraction: float | None  # n(cloud & valid & roi) / n(valid & roi); None without cloud layer or valid pixel
    n_roi: int
    n_valid: int
    n_cloud: int


def roi_fractions(valid: ArrayLike, cloud: ArrayLike | None, roi_mask: ArrayLike) -> RoiFractions:
    """Count the valid and cloudy pixels of an ROI (all arrays of the same 2-D shape)."""
    v = np.asarray(valid, dtype=bool)
    r = np.asarray(roi_mask, dtype=bool)
    if v.shape != r.shape or (cloud is not None and np.shape(cloud) != r.shape):
        shapes = f"valid {v.shape}, roi {r.shape}" + ("" if cloud is None else f", cloud {np.shape(cloud)}")
        raise ValueError(f"roi_fractions needs arrays of one shape, got {shapes}")
    valid_roi = v & r
    n_roi = int(r.sum())
    n_valid = int(valid_roi.sum())
    n_cloud = 0
    cloud_fraction: float | None = None
    if cloud is not None:
        n_cloud = int((np.asarray(cloud, dtype=bool) & valid_roi).sum())
        cloud_fraction = n_cloud / n_valid if n_valid else None
    return RoiFractions(
        valid_fraction=n_valid / n_roi if n_roi else 0.0,
        cloud_fraction=cloud_fraction,
        n_roi=n_roi,
        n_valid=n_valid,
        n_cloud=n_cloud,
    )


def _ring(pos_list: etree._Element) -> list[tuple[float, float]]:
    dim_attr = pos_list.get("srsDimension") or "2"
    dim = int(dim_attr) if dim_attr.isdigit() else 2
    values = [float(v) for v in (pos_list.text or "").split()]
    return [(values[i], values[i + 1]) for i in range(0, len(values) - dim + 1, dim)]


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname


def gml_cloud_masks(
    data: bytes | None, epsg: int, grid: TargetGrid, label: str = "MSK_CLOUDS_B00.gml"
) -> dict[str, np.ndarray]:
    """Rasterize the OPAQUE / CIRRUS polygons of an ``MSK_CLOUDS_B00.gml`` onto ``grid``.

    Returns ``{"opaque_clouds": bool, "cirrus_clouds": bool}`` (pixel centres inside the polygons).
    ``data`` None or a file without features means no clouds. Polygons are in ``epsg`` (the tile's
    CRS) unless the GML names another ``srsName``.
    """
    masks = {"opaque_clouds": np.zeros(grid.shape, dtype=bool), "cirrus_clouds": np.zeros(grid.shape, dtype=bool)}
    if not data or not data.strip():
        return masks
    root = parse_xml(data, label)
    polygons: dict[str, list[Polygon]] = {"opaque_clouds": [], "cirrus_clouds": []}
    srs_epsg = epsg
    for el in root.iter(etree.Element):
        srs = el.get("srsName")
        if srs and (m := re.search(r"(\d{4,5})$", srs)):
            srs_epsg = int(m.group(1))
        if _local(el) != "MaskFeature":
            continue
        mask_type = next((c.text or "" for c in el.iter(etree.Element) if _local(c) == "maskType"), "").upper()
        key = {"OPAQUE": "opaque_clouds", "CIRRUS": "cirrus_clouds"}.get(mask_type.strip())
        if key is None:
            continue
        for poly in (c for c in el.iter(etree.Element) if _local(c) == "Polygon"):
            rings = [(_local(r), r) for r in poly.iter(etree.Element) if _local(r) in ("exterior", "interior")]
            ext = [
                _ring(p)
                for name, r in rings
                if name == "exterior"
                for p in r.iter(etree.Element)
                if _local(p) == "posList"
            ]
            holes = [
                _ring(p)
                for name, r in rings
                if name == "interior"
                for p in r.iter(etree.Element)
                if _local(p) == "posList"
            ]
            if ext and len(ext[0]) >= 3:
                polygons[key].append(Polygon(ext[0], [h for h in holes if len(h) >= 3]).buffer(0))
    for key, polys in polygons.items():
        if not polys:
            continue
        geom = unary_union(polys)
        if srs_epsg != grid.epsg:
            geom = project(geom, srs_epsg, grid.epsg)
        masks[key] = grid.rasterize(geom)
    return masks
