"""The aligned target grid: corners on the resolution lattice, shared edges, rasterising."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely

from senprep_core.geo.grid import Bounds, PixelWindow, TargetGrid
from senprep_core.geo.roi import ROI


def roi_box(lon0: float, lat0: float, lon1: float, lat1: float) -> ROI:
    return ROI.from_geometry(shapely.box(lon0, lat0, lon1, lat1))


def grid_of(roi: ROI, resolution: float = 10.0, epsg: int | None = None) -> TargetGrid:
    epsg = epsg or roi.utm_epsg()
    return TargetGrid.for_geometry(roi.projected(epsg), epsg, resolution)


def on_lattice(value: float, resolution: float) -> bool:
    return math.isclose(value / resolution, round(value / resolution), abs_tol=1e-9)


@pytest.mark.parametrize("resolution", [10.0, 20.0, 60.0, 2.5])
@pytest.mark.parametrize(
    "bounds",
    [(-4.32, 55.83, -4.18, 55.89), (18.38, -33.92, 18.42, -33.88), (-2.82075, 56.7186, -2.77925, 56.7414)],
)
def test_corners_are_multiples_of_resolution(resolution: float, bounds: tuple[float, float, float, float]) -> None:
    roi = roi_box(*bounds)
    grid = grid_of(roi, resolution)
    b = grid.bounds
    for value in b.as_tuple():
        assert on_lattice(value, resolution)
    # the grid holds the projected ROI, with less than one pixel to spare on each side
    minx, miny, maxx, maxy = roi.projected(grid.epsg).bounds
    assert b.left <= minx < b.left + resolution
    assert b.right - resolution < maxx <= b.right
    assert b.bottom <= miny < b.bottom + resolution
    assert b.top - resolution < maxy <= b.top
    assert grid.transform.a == resolution and grid.transform.e == -resolution


def test_bounds_already_on_lattice_are_kept() -> None:
    grid = TargetGrid.covering(Bounds(500000.0, 6200000.0, 502560.0, 6202560.0), 32630, 10.0)
    assert (grid.left, grid.top, grid.width, grid.height) == (500000.0, 6202560.0, 256, 256)


def test_neighbouring_rois_share_pixel_edges() -> None:
    west = roi_box(-4.32, 55.83, -4.25, 55.89)
    east = roi_box(-4.25, 55.83, -4.18, 55.89)
    a, b = grid_of(west), grid_of(east)
    assert a.epsg == b.epsg == 32630
    # every x edge of one grid is an x edge of the other's lattice
    offset_x = (b.left - a.left) / a.resolution
    offset_y = (a.top - b.top) / a.resolution
    assert offset_x == round(offset_x) and offset_y == round(offset_y)
    window = a.window_of(b)
    assert window.col_off == round(offset_x) and window.row_off == round(offset_y)
    # in a grid holding both, the two ROI masks line up pixel for pixel and never claim the same pixel
    both = TargetGrid.covering(Bounds(min(a.left, b.left), min(a.bounds.bottom, b.bounds.bottom),
                                      max(a.bounds.right, b.bounds.right), max(a.top, b.top)), a.epsg)  # fmt: skip
    canvas = np.zeros(both.shape, dtype=int)
    for grid, roi in ((a, west), (b, east)):
        rows, cols = both.window_of(grid).slices()
        canvas[rows, cols] += grid.rasterize(roi.projected(grid.epsg))
    assert canvas.max() == 1
    union = ROI.from_geometry(shapely.union_all([west.geometry, east.geometry]))
    assert (canvas == 1).sum() == both.rasterize(union.projected(both.epsg)).sum()


def test_same_roi_twice_gives_the_same_grid() -> None:
    roi = roi_box(-4.32, 55.83, -4.18, 55.89)
    assert grid_of(roi) == grid_of(ROI.from_geojson(roi.to_geojson()))


def test_rasterize_counts_pixel_centres_and_holes() -> None:
    grid = TargetGrid(epsg=32630, resolution=10.0, left=0.0, top=100.0, width=10, height=10)
    square = shapely.box(0, 0, 100, 100).difference(shapely.box(40, 40, 60, 60))
    mask = grid.rasterize(square)
    assert mask.shape == (10, 10)
    assert mask.sum() == 100 - 4  # the 2x2 pixel hole is left out
    assert not mask[4:6, 4:6].any()
    half = grid.rasterize(shapely.box(0, 0, 100, 44))  # centres at y = 5, 15, 25, 35 are in
    assert half.sum() == 40 and half[-4:].all()
    assert not grid.rasterize(shapely.Polygon()).any()


def test_rasterize_multipolygon_roi() -> None:
    roi = ROI.from_geojson(
        {
            "type": "MultiPolygon",
            "coordinates": [
                [[[-4.30, 55.80], [-4.28, 55.80], [-4.28, 55.81], [-4.30, 55.81], [-4.30, 55.80]]],
                [[[-4.20, 55.80], [-4.18, 55.80], [-4.18, 55.81], [-4.20, 55.81], [-4.20, 55.80]]],
            ],
        }
    )
    grid = grid_of(roi)
    mask = grid.rasterize(roi.projected(grid.epsg))
    area_pixels = mask.sum() * grid.resolution**2
    assert area_pixels == pytest.approx(roi.geodesic_area_m2, rel=0.05)
    # the gap between the parts is not in the mask
    middle_col = grid.width // 2
    assert not mask[:, middle_col].any()


def test_subgrid_and_window_of_are_inverse() -> None:
    grid = TargetGrid(epsg=32630, resolution=10.0, left=1000.0, top=5000.0, width=50, height=40)
    window = PixelWindow(5, -3, 20, 30)
    sub = grid.subgrid(window)
    assert grid.window_of(sub) == window
    assert sub.left == 970.0 and sub.top == 4950.0
    assert grid.buffered(2).window_of(grid) == PixelWindow(2, 2, 40, 50)


def test_window_of_refuses_misaligned_grids() -> None:
    grid = TargetGrid(epsg=32630, resolution=10.0, left=0.0, top=100.0, width=10, height=10)
    with pytest.raises(ValueError):
        grid.window_of(TargetGrid(epsg=32630, resolution=10.0, left=5.0, top=100.0, width=2, height=2))
    with pytest.raises(ValueError):
        grid.window_of(TargetGrid(epsg=32631, resolution=10.0, left=0.0, top=100.0, width=2, height=2))


def test_dict_round_trip_and_pixel_centres() -> None:
    grid = TargetGrid(epsg=32734, resolution=20.0, left=260000.0, top=6250000.0, width=7, height=3)
    assert TargetGrid.from_dict(grid.to_dict()) == grid
    xs, ys = grid.pixel_centres()
    assert np.allclose(xs, 260010.0 + 20.0 * np.arange(7))
    assert np.allclose(ys, 6249990.0 - 20.0 * np.arange(3))


def test_invalid_grid_is_refused() -> None:
    with pytest.raises(ValueError):
        TargetGrid(epsg=32630, resolution=0.0, left=0.0, top=0.0, width=1, height=1)
