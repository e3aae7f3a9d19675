"""MGRS tiles of points and regions, checked against the tiles of real Sentinel-2 STAC items (their UTM
zone, grid origin and MGRS id as the catalogues give them)."""

from __future__ import annotations

import json

import pytest
from pyproj import Transformer
from shapely.geometry import MultiPolygon, box, shape

from senprep_core.catalog.stac_items import item_to_record
from senprep_core.demo.catalog import DEMO_ROI_GEOJSON
from senprep_core.errors import ConfigError
from senprep_core.geo.mgrs import mgrs_tile, mgrs_tiles, square_bounds, tile_folder
from tests.conftest import need_real_samples


def _real_items() -> list[dict]:  # type: ignore[type-arg]
    folder = need_real_samples("stac")
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*/*.json")) if '"Feature"' in p.read_text()]


@pytest.mark.realdata
def test_the_tile_of_a_point_inside_each_real_item_square() -> None:
    checked = 0
    for item in _real_items():
        if item.get("type") != "Feature":
            continue
        props = item["properties"]
        code = props.get("proj:epsg") or int(str(props.get("proj:code", "EPSG:0")).split(":")[1] or 0)
        asset = next((a for a in item["assets"].values() if "proj:transform" in a), None)
        if asset is None:
            continue
        epsg = code or int(str(asset.get("proj:code", "EPSG:0")).split(":")[1])
        ulx, uly = asset["proj:transform"][2], asset["proj:transform"][5]
        lon, lat = Transformer.from_crs(epsg, 4326, always_xy=True).transform(ulx + 50_000, uly - 50_000)
        assert mgrs_tile(lon, lat) == item_to_record(item, "x").tile_id, item["id"]
        checked += 1
    assert checked >= 8


def test_tiles_of_regions() -> None:
    assert mgrs_tile(-4.25, 55.86) == "30UVG" and mgrs_tiles(shape(DEMO_ROI_GEOJSON)) == ["30UVG"]
    assert mgrs_tiles(box(14.9, 48.3, 15.2, 48.9)) == ["33UVP", "33UVQ", "33UWP", "33UWQ"]
    # across the antimeridian, as one polygon past 180 or split in two: the same tiles of zones 60 and 1
    across = mgrs_tiles(box(179.5, -17.0, 180.5, -16.5))
    split = mgrs_tiles(MultiPolygon([box(179.5, -17.0, 180.0, -16.5), box(-180.0, -17.0, -179.5, -16.5)]))
    assert across == split and {t[:2] for t in across} == {"01", "60"}
    europe = mgrs_tiles(box(-10, 40, 10, 50))
    assert {t[:2] for t in europe} == {"29", "30", "31", "32"} and {t[2] for t in europe} == {"T", "U"}
    assert len(europe) > 200 and europe[0] == "29TME"
    assert mgrs_tiles(box(10, 85, 11, 86)) == []  # beyond UTM's range
    assert tile_folder("30UVG") == "30/U/VG" and tile_folder("T01LAC") == "1/L/AC"
    for tile in ("30UVG", "33UWP", "20EPT", "24MUA", "13TDE", "06VVN", "58UFG", "19HDD"):  # squares round-trip
        left, bottom, right, top = square_bounds(tile)
        epsg = (32600 if tile[2] >= "N" else 32700) + int(tile[:2])
        lon, lat = Transformer.from_crs(epsg, 4326, always_xy=True).transform((left + right) / 2, (bottom + top) / 2)
        assert mgrs_tile(lon, lat) == tile
    assert square_bounds("33UWP") == (500_000, 5_300_000, 600_000, 5_400_000)  # the real item's 499980, 5400000
    with pytest.raises(ConfigError):
        tile_folder("U30VG")
    with pytest.raises(ConfigError):
        mgrs_tile(0.0, 85.0)
