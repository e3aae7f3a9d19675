"""The geoid matters: on the real Rome GRD and DEM, EGM96 heights shift the geocoding by the expected amount."""

from __future__ import annotations

import numpy as np
import pytest

from senprep_core.catalog.local import _s1_record
from senprep_core.config import parse_config
from senprep_core.fetch.cache import default_cache_dir
from senprep_core.planning import unit_spec
from senprep_core.productfs import ProductLocation
from senprep_core.s1.positions import lonlat_of, radar_positions
from senprep_core.unit.s1_source import S1Source
from tests.conftest import need_real_samples

GRD = "S1B_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993_5371.SAFE"
RING = [[12.47, 41.97], [12.53, 41.97], [12.53, 42.03], [12.47, 42.03], [12.47, 41.97]]
ROI = {"type": "Polygon", "coordinates": [RING]}


def _source(geoid: str) -> S1Source:
    folder = need_real_samples("sarsen-testdata")
    config = parse_config(
        {
            "name": "rome",
            "roi": ROI,
            "dates": ["2021-12-20", "2021-12-25"],
            "mode": "s1_only",
            "sentinel1": {"bands": ["sigma0_VV"], "dem": str(folder / "Rome-30m-DEM.tif"), "geoid": geoid},
        }
    )
    return S1Source(
        _s1_record(ProductLocation.open(folder / GRD), "local"), "rome", unit_spec(config), default_cache_dir()
    )


def test_egm96_shifts_range_by_the_undulation_over_tan_incidence() -> None:
    with_geoid, without = _source("auto"), _source("none")
    assert with_geoid.extra["processing"]["geoid"].startswith("EGM96")
    assert without.extra["processing"]["geoid"] == "none"
    grid = with_geoid.grid
    h_geoid = with_geoid._heights(grid, extra=0)
    h_plain = without._heights(grid, extra=0)
    undulation = h_geoid - h_plain
    assert 46.0 < float(np.mean(undulation)) < 50.0  # EGM96 near Rome is about +48 m
    pos_geoid = with_geoid.positions(grid, h_geoid)
    pos_plain = without.positions(grid, h_plain)
    shift = pos_geoid.pixel - pos_plain.pixel
    lon, lat = lonlat_of(grid)
    theta = np.radians(with_geoid.geometry.incidence_angle(lat[::50, ::50], lon[::50, ::50], h_plain[::50, ::50]))
    spacing = with_geoid.reference.range_pixel_spacing
    expected = -undulation[::50, ::50] / np.tan(theta) / spacing  # higher ground is seen nearer in range
    assert np.abs(shift[::50, ::50] - expected).max() < 0.25
    assert 5.0 < float(np.abs(shift).mean()) < 9.0  # 6-8.5 px in ../shared/notes/s1-geometry.md
    assert np.abs(pos_geoid.line - pos_plain.line).max() < 0.5  # height barely moves a point in azimuth


def test_grid_lies_inside_the_image() -> None:
    source = _source("auto")
    grid = source.grid
    pos = source.positions(grid, source._heights(grid, extra=0))
    image = source.reference
    assert np.isfinite(pos.line).all()
    assert pos.line.min() > 0 and pos.line.max() < image.lines
    assert pos.pixel.min() > 0 and pos.pixel.max() < image.samples
    # 10 m grid over ~10 m GRD pixels: the ROI spans roughly as many radar pixels as grid pixels
    assert pos.pixel.max() - pos.pixel.min() == pytest.approx(grid.width * 10.0 / image.range_pixel_spacing, rel=0.35)


def test_positions_lattice_matches_the_exact_solution_over_3000_m_of_relief() -> None:
    source = _source("auto")
    grid = source.grid
    yy, xx = np.mgrid[0 : grid.height, 0 : grid.width]
    heights = 1500.0 + 1500.0 * np.sin(xx / 97.0) * np.cos(yy / 61.0)  # 0 .. 3000 m, steep in places
    fast = source.positions(grid, heights)
    exact = radar_positions(grid, heights, source.geometry.radar_coordinates, exact=True)  # no interpolation
    assert np.abs(fast.line - exact.line).max() < 0.01
    assert np.abs(fast.pixel - exact.pixel).max() < 0.01
