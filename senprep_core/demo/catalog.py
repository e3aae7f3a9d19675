"""The demo catalog: small synthetic S2 and S1 products over Glasgow, Scotland, a DEM, and matching configs.

Tile: MGRS ``30UVG`` (UTM zone 30 north, EPSG:32630), the real Sentinel-2 tile that holds Glasgow;
the demo "tile" is a 12 km x 12 km (1200 x 1200 pixels at 10 m) piece of it with its upper-left
corner at (418020, 6200040). The ROI is a 2.5 km square around central Glasgow (55.86 N, 4.25 W)
whose lower-left corner reaches just over the tile's no-data cut.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from senprep_core.demo.publish import GENERATOR_VERSION
from senprep_core.demo.s1 import make_s1_product, s1_ground_truth
from senprep_core.demo.s1_spec import S1DemoSpec
from senprep_core.demo.s2 import S2DemoSpec, make_s2_product

log = logging.getLogger(__name__)

DEMO_TILE_ID = "30UVG"
DEMO_EPSG = 32630
DEMO_ULX = 418020.0
DEMO_ULY = 6200040.0
DEMO_SIZE_10M = 1200
#: The ROI square in the tile CRS (left, bottom, right, top).
DEMO_ROI_BOUNDS_UTM = (421020.0, 6189120.0, 423520.0, 6191620.0)
DEMO_DATES = ("20210501", "20220831")


def _roi_geojson() -> dict[str, Any]:
    from pyproj import Transformer

    left, bottom, right, top = DEMO_ROI_BOUNDS_UTM
    to_lonlat = Transformer.from_crs(DEMO_EPSG, 4326, always_xy=True)
    ring = [(left, bottom), (right, bottom), (right, top), (left, top), (left, bottom)]
    coords = [[round(c, 7) for c in to_lonlat.transform(x, y)] for x, y in ring]
    return {"type": "Polygon", "coordinates": [coords]}


#: A ~2.5 km x 2.5 km lon/lat square over central Glasgow inside the demo tile.
DEMO_ROI_GEOJSON: dict[str, Any] = _roi_geojson()


def demo_config_dict() -> dict[str, Any]:
    """A legacy-form senprep configuration for the demo products."""
    return {
        "name": "demo",
        "geojson": DEMO_ROI_GEOJSON,
        "dates": list(DEMO_DATES),
        "cloudcover": [0, 100],
        "size": [128, 128],
        "overlap": [0, 0],
        "bands_S2": [
            "B2_M",
            "B3_M",
            "B4_M",
            "B8_M",
            "B5_M",
            "B11_M",
            "scl_cloud_shadow_M",
            "scl_cloud_high_proba_M",
            "opaque_clouds_10m_M",
        ],
        "bands_S1": [],
        "callback_find_products": "S2_only",
        "callback_snap": "S2_only",
    }


def demo_specs() -> list[S2DemoSpec]:
    """Three L2A products (baselines 02.14, 04.00, 05.00) and one L1C (04.00), all on the demo tile."""
    base = S2DemoSpec(
        tile_id=DEMO_TILE_ID,
        epsg=DEMO_EPSG,
        ulx=DEMO_ULX,
        uly=DEMO_ULY,
        size_10m=DEMO_SIZE_10M,
        sensing_time=datetime(2022, 7, 29, 11, 36, 29),
        baseline="05.00",
        mission="S2B",
        seed=7,
        cloud_fraction=0.3,
    )
    return [
        replace(base, sensing_time=datetime(2021, 5, 11, 11, 36, 29), baseline="02.14", mission="S2A", seed=11,
                cloud_fraction=0.25),
        replace(base, sensing_time=datetime(2022, 4, 20, 11, 36, 19), baseline="04.00", seed=3, cloud_fraction=0.15),
        replace(base, sensing_time=datetime(2022, 6, 14, 11, 36, 21), baseline="04.00", mission="S2A", level="L1C",
                seed=5, bands=()),
        base,
    ]  # fmt: skip


def demo_s1_specs() -> list[S1DemoSpec]:
    """Two S1A products over the demo ROI (Glasgow): ascending 2021-08-14, descending 2022-04-21 (zipped).

    Both share the default scene and the hilly DEM anchored at the ROI centre, so their
    terrain-corrected sigma0 must agree with each other and with
    :func:`~senprep_core.demo.s1.s1_ground_truth`.
    """
    from pyproj import Transformer

    left, bottom, right, top = DEMO_ROI_BOUNDS_UTM
    lon, lat = Transformer.from_crs(DEMO_EPSG, 4326, always_xy=True).transform((left + right) / 2, (bottom + top) / 2)
    origin = (round(float(lon), 6), round(float(lat), 6))
    base = S1DemoSpec(
        start_time=datetime(2021, 8, 14, 17, 41, 35, 123456),
        centre_lon=origin[0] + 0.012,
        centre_lat=origin[1] + 0.006,
        pass_direction="ASCENDING",
        incidence_near=38.5,
        dem="hilly",
        scene_origin=origin,
        seed=21,
    )
    descending = replace(
        base,
        start_time=datetime(2022, 4, 21, 6, 23, 48, 654321),
        centre_lon=origin[0] - 0.010,
        centre_lat=origin[1] - 0.008,
        pass_direction="DESCENDING",
        incidence_near=33.2,
        seed=22,
        as_zip=True,
    )
    return [base, descending]


def build_demo_catalog(folder: Path) -> list[Path]:
    """Generate :func:`demo_specs` into ``folder`` (the 04.00 L2A one as a .zip); cached.

    Products that already exist are not rewritten, so a second call returns at once.
    """
    folder = Path(folder)
    paths = []
    for spec in demo_specs():
        as_zip = spec.level == "L2A" and spec.baseline == "04.00"
        paths.append(make_s2_product(spec, folder, as_zip=as_zip))
    s1_specs = demo_s1_specs()
    for s1_spec in s1_specs:
        paths.append(make_s1_product(s1_spec, folder))
    dem = folder / DEMO_DEM
    if not dem.exists():
        s1_ground_truth(s1_specs[0]).write_dem(dem)
    log.info("demo catalog ready in %s (%d products)", folder, len(paths))
    return paths


DEMO_DEM = "demo-dem.tif"


def demo_s1_config_dict(folder: Path) -> dict[str, Any]:
    """A modern-form S1 configuration for the demo products in ``folder`` (uses the demo DEM there)."""
    return {
        "name": "demo-s1",
        "roi": DEMO_ROI_GEOJSON,
        "dates": [list(DEMO_DATES)],
        "mode": "s1_only",
        "patches": {"size": [128, 128], "overlap": [0, 0], "edge": "shift"},
        "sentinel1": {
            "bands": ["sigma0_VV_dB", "sigma0_VH_dB", "local_incidence_angle"],
            "dem": str(Path(folder) / DEMO_DEM),
            "speckle_filter": "lee_sigma",
        },
    }


def demo_runs(folder: Path) -> list[tuple[str, dict[str, Any]]]:
    """The demo's runs as (sub-folder name, config dict): Sentinel-2 (legacy form), then Sentinel-1."""
    return [("s2", demo_config_dict()), ("s1", demo_s1_config_dict(folder))]


def default_demo_folder() -> Path:
    """``demo-products-v<generator version>`` in the shared cache (``$SENPREP_CACHE``, else ``~/.cache/senprep``)."""
    from senprep_core.fetch.cache import default_cache_dir

    return default_cache_dir() / f"demo-products-v{GENERATOR_VERSION}"
