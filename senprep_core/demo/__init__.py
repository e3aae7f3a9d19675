"""Synthetic Sentinel-2 products with an exactly known ground truth (demo and tests)."""

from senprep_core.demo.catalog import (
    DEMO_ROI_GEOJSON,
    build_demo_catalog,
    default_demo_folder,
    demo_config_dict,
    demo_specs,
)
from senprep_core.demo.s2 import S2DemoSpec, ground_truth, make_s2_product, point_targets

__all__ = [
    "DEMO_ROI_GEOJSON",
    "S2DemoSpec",
    "build_demo_catalog",
    "default_demo_folder",
    "demo_config_dict",
    "demo_specs",
    "ground_truth",
    "make_s2_product",
    "point_targets",
]
