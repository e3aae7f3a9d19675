"""Sentinel-2 products: metadata, window reads, masks and radiometry."""

from senprep_core.s2.masks import CLOUD_CLASSES, RoiFractions, roi_fractions, scl_mask
from senprep_core.s2.metadata import S2Metadata, TileGeocoding, read_s2_metadata
from senprep_core.s2.product import open_s2_metadata
from senprep_core.s2.radiometry import dn_to_reflectance
from senprep_core.s2.reader import S2Window, read_s2_window

__all__ = [
    "CLOUD_CLASSES",
    "RoiFractions",
    "S2Metadata",
    "S2Window",
    "TileGeocoding",
    "dn_to_reflectance",
    "open_s2_metadata",
    "read_s2_metadata",
    "read_s2_window",
    "roi_fractions",
    "scl_mask",
]
