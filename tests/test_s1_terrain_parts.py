"""Pieces of the S1 terrain correction that need no product: positions lattice, sampling, slopes, flattening."""

from __future__ import annotations

import numpy as np
import pytest

from senprep_core.bands import parse_s1_bands
from senprep_core.errors import ConfigError
from senprep_core.geo.grid import PixelWindow, TargetGrid
from senprep_core.s1.flattening import (
    facet_areas,
    flatten_gamma0,
    layover_and_shadow,
    oversample_heights,
    splat_areas,
)
from senprep_core.s1.positions import RadarPositions, lonlat_of, radar_positions
from senprep_core.s1.terrain import local_incidence, sample, to_enu

GRID = TargetGrid(epsg=32633, resolution=10.0, left=290000.0, top=4650000.0, width=300, height=260)


def _locator(lat: np.ndarray, lon: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A smooth, mildly non-linear stand-in for a range-Doppler solution (lines along lat, pixels along lon)."""
    line = (42.0 - lat) * 11000.0 + 0.02 * h + 2e-7 * h**2  # curvature ~10x a real GRD
    pixel = (lon - 12.4) * 8200.0 + 0.15 * h + 40.0 * (lat - 41.95) ** 2
    return line, pixel


def test_lattice_positions_match_the_per_pixel_solution() -> None:
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0 : GRID.height, 0 : GRID.width]
    heights = 400 + 300 * np.sin(xx / 37.0) * np.cos(yy / 23.0) + rng.normal(0, 5, GRID.shape)
    fast = radar_positions(GRID, heights, _locator)
    exact = radar_positions(GRID, heights, _locator, exact=True)
    assert np.abs(fast.line - exact.line).max() < 0.01
    assert np.abs(fast.pixel - exact.pixel).max() < 0.01


def test_lonlat_lattice_is_exact_to_micro_degrees() -> None:
    from pyproj import Transformer

    lon, lat = lonlat_of(GRID)
    xs, ys = GRID.pixel_centres()
    ref_lon, ref_lat = Transformer.from_crs(32633, 4326, always_xy=True).transform(*np.meshgrid(xs, ys))
    assert np.abs(lon - ref_lon).max() < 1e-7
    assert np.abs(lat - ref_lat).max() < 1e-7


def test_radar_bounds_and_nan_heights() -> None:
    heights = np.zeros(GRID.shape)
    heights[:5, :5] = np.nan
    pos = radar_positions(GRID, heights, _locator)
    assert np.isnan(pos.line[:5, :5]).all() and np.isfinite(pos.line[5:, 5:]).all()
    bounds = pos.radar_bounds(3, lines=10**6, samples=10**6)
    assert bounds is not None
    l0, p0, nl, npx = bounds
    ok = np.isfinite(pos.line)
    assert l0 <= np.floor(pos.line[ok].min()) - 3 + 1e-9 and l0 + nl >= np.ceil(pos.line[ok].max()) + 3
    assert p0 <= np.floor(pos.pixel[ok].min()) - 3 + 1e-9 and p0 + npx >= np.ceil(pos.pixel[ok].max()) + 3
    assert pos.radar_bounds(0, lines=10, samples=10) is None  # every position is beyond line 10


def test_sample_bilinear_and_nearest_and_nodata() -> None:
    image = np.add.outer(np.arange(50.0), 2 * np.arange(60.0)).astype(np.float32)  # linear: bilinear is exact
    window = PixelWindow(100, 200, 50, 60)
    line = np.array([[110.25, 120.5], [149.6, 300.0]])
    pixel = np.array([[210.5, 230.0], [205.0, 210.0]])
    pos = RadarPositions(TargetGrid(32633, 10.0, 0.0, 20.0, 2, 2), line, pixel)
    out = sample(image, pos, window, "bilinear")
    assert out[0, 0] == pytest.approx(10.25 + 2 * 10.5)
    assert out[0, 1] == pytest.approx(20.5 + 2 * 30.0)
    assert np.isnan(out[1, 1])  # outside the window
    near = sample(image, pos, window, "nearest")
    assert near[0, 0] == image[10, 10] or near[0, 0] == image[10, 11]
    holey = image.copy()
    holey[20, 30] = np.nan
    assert np.isnan(sample(holey, pos, window, "bilinear")[0, 1])
    cubic = sample(image, pos, window, "bicubic")
    assert cubic[0, 0] == pytest.approx(out[0, 0], rel=1e-4)


def test_local_incidence_on_a_tilted_plane() -> None:
    grid = TargetGrid(32633, 10.0, 0.0, 200.0, 20, 20)
    slope = np.tan(np.radians(10.0))
    xs = (np.arange(-1, 21) + 0.5) * 10.0
    heights = np.tile(slope * xs, (22, 1))  # rises towards the east
    theta = np.radians(35.0)
    look = np.zeros((3, 20, 20))
    look[0], look[2] = -np.sin(theta), np.cos(theta)  # satellite to the west, 35 deg from vertical
    lia, layover, shadow = local_incidence(grid, heights, look)
    assert lia == pytest.approx(np.full((20, 20), 25.0), abs=1e-6)  # facing the radar: 35 - 10
    assert not layover.any() and not shadow.any()
    steep = np.tile(np.tan(np.radians(40.0)) * xs, (22, 1))
    assert local_incidence(grid, steep, look)[1].all()  # slope 40 deg towards the radar > 35 deg: layover
    away = np.tile(-np.tan(np.radians(60.0)) * xs, (22, 1))
    assert local_incidence(grid, away, look)[2].all()  # slope 60 deg away from the radar > 55 deg: shadow


def test_to_enu_at_the_equator_and_pole() -> None:
    v = np.array([1.0, 0.0, 0.0]).reshape(3, 1)
    enu = to_enu(v, np.array([0.0]), np.array([0.0]))
    assert enu[:, 0] == pytest.approx([0.0, 0.0, 1.0])
    enu = to_enu(np.array([0.0, 0.0, 1.0]).reshape(3, 1), np.array([90.0]), np.array([0.0]))
    assert enu[:, 0] == pytest.approx([0.0, 0.0, 1.0])


def test_flattening_on_flat_terrain_gives_ellipsoid_gamma0() -> None:
    # radar pixels 10 m x 10 m on the ground, aligned with the map: 1 facet of 10 m per radar pixel
    grid = TargetGrid(32633, 10.0, 0.0, 400.0, 40, 40)
    theta = np.radians(38.0)
    heights = np.zeros((42, 42))
    look = np.zeros((3, 40, 40))
    look[0], look[2] = -np.sin(theta), np.cos(theta)
    areas = facet_areas(10.0, heights, look)
    rows, cols = np.mgrid[0:40, 0:40].astype(float)
    pos = RadarPositions(grid, rows, cols)
    window = PixelWindow(5, 5, 30, 30)
    a_gamma = splat_areas(pos, areas, window)
    a_beta = np.full((1, 30), 100.0 * np.sin(theta))
    beta0 = np.full((30, 30), 0.2, dtype=np.float32)
    gamma0t = flatten_gamma0(beta0, a_gamma, a_beta)
    assert gamma0t == pytest.approx(np.full((30, 30), 0.2 * np.tan(theta)), rel=1e-6)
    shadowed = flatten_gamma0(beta0, np.zeros_like(a_gamma), a_beta)
    assert np.isnan(shadowed).all()


def test_oversampled_heights_of_a_plane_are_exact() -> None:
    rows, cols = np.mgrid[-1:21, -1:31].astype(float)
    plane = 100.0 + 3.0 * rows - 2.0 * cols  # heights of a 20 x 30 grid plus a one-pixel border
    fine = oversample_heights(plane, 3)
    assert fine.shape == (20 * 3 + 2, 30 * 3 + 2)
    fr, fc = np.mgrid[-1:61, -1:91].astype(float)
    expected = 100.0 + 3.0 * ((fr + 0.5) / 3 - 0.5) - 2.0 * ((fc + 0.5) / 3 - 0.5)
    assert fine == pytest.approx(expected, abs=1e-9)
    holey = plane.copy()
    holey[5, 5] = np.nan
    assert np.isnan(oversample_heights(holey, 2)).sum() > 0


def _profile(heights: np.ndarray, x: np.ndarray, theta_deg: float = 40.0) -> tuple[np.ndarray, np.ndarray]:
    """Layover and shadow along one range profile on a flat Earth (10 m GRD pixels, one azimuth line)."""
    tan = np.tan(np.radians(theta_deg))
    line = np.zeros_like(x)
    pixel = (x - heights / tan) / 10.0  # higher points appear nearer in range
    ray = (x + heights * tan) / 10.0  # where the ray through the point meets height 0
    return layover_and_shadow(line[None], pixel[None], (x / 10.0)[None], ray[None], 2)


def test_layover_and_shadow_on_a_steep_ridge_and_none_on_a_gentle_hill() -> None:
    x = np.arange(0.0, 3000.0, 5.0)
    gentle = 100.0 * np.exp(-0.5 * ((x - 1500.0) / 400.0) ** 2)  # slopes below 9 degrees
    layover, shadow = _profile(gentle, x)
    assert not layover.any() and not shadow.any()
    # a 300 m plateau between 1000 and 1500 m with 72 degree faces (rises 300 m over ~100 m)
    ridge = 300.0 * (np.clip((x - 950.0) / 100.0, 0, 1) - np.clip((x - 1500.0) / 100.0, 0, 1))
    layover, shadow = _profile(ridge, x)
    layover, shadow = layover[0], shadow[0]
    assert layover[(x > 960) & (x < 1040)].all()  # the face towards the radar
    # the top edge (1050 m, 300 m high) appears 300 / tan 40 = 358 m nearer: at the range of the ground at 692 m;
    # the ground from there to the face, and the plateau up to 950 + 358 m, share the face's ranges
    assert layover[(x > 700) & (x < 950)].all() and not layover[x < 685].any()
    assert layover[(x > 1050) & (x < 1300)].all() and not layover[(x > 1315) & (x < 1500)].any()
    assert shadow[(x > 1510) & (x < 1590)].all()  # the face away from the radar
    # cast shadow: 300 m * tan 40 = 252 m beyond the top edge at 1500 m
    assert shadow[(x > 1600) & (x < 1740)].all() and not shadow[x > 1770].any()
    assert not shadow[x < 1500].any()


def test_band_requests() -> None:
    reqs = parse_s1_bands(["sigma0_VV", "gamma0T_VH_dB", "local_incidence_angle"])
    assert [(r.calibration, r.polarisation, r.db) for r in reqs] == [
        ("sigma0", "VV", False),
        ("gamma0T", "VH", True),
        (None, None, False),
    ]
    with pytest.raises(ConfigError):
        parse_s1_bands(["sigma1_VV"])
