"""Property tests of tile_grid: coverage, bounds, alignment and ROI filtering for every edge policy."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from senprep_core.geo.grid import PixelWindow, TargetGrid
from senprep_core.geo.tiling import EdgePolicy, Patch, PatchLayout, tile_grid

# These strategies never touch the `random` module, but Hypothesis flags any change of its global state
# while a strategy draws, and threads left by earlier tests in the same process (Dask clients, servers)
# do use it: that warning is a false alarm here.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies:hypothesis.errors.HypothesisDeprecationWarning"
)

SETTINGS = settings(
    max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=os.environ.get("CI") == "true",
)  # CI: the same examples every run


@st.composite
def layouts(draw: st.DrawFn, edge: EdgePolicy | None = None) -> PatchLayout:
    h = draw(st.integers(1, 300))
    w = draw(st.integers(1, 300))
    oh = draw(st.integers(0, h - 1))
    ow = draw(st.integers(0, w - 1))
    policy = edge if edge is not None else draw(st.sampled_from(list(EdgePolicy)))
    return PatchLayout(size=(h, w), overlap=(oh, ow), edge=policy)


#: At most this many patches along an axis, so tiny patches on big grids stay fast to check.
MAX_PER_AXIS = 40


@st.composite
def cases(draw: st.DrawFn, edge: EdgePolicy | None = None) -> tuple[TargetGrid, PatchLayout]:
    """A grid of 1..600 pixels a side and a layout; grids are capped at MAX_PER_AXIS patches an axis."""
    layout = draw(layouts(edge))
    resolution = draw(st.sampled_from([10.0, 20.0, 60.0, 2.5]))
    left = draw(st.integers(-100_000, 900_000)) * resolution
    top = draw(st.integers(-100_000, 1_000_000)) * resolution
    max_h = min(600, layout.size[0] + MAX_PER_AXIS * layout.stride[0])
    max_w = min(600, layout.size[1] + MAX_PER_AXIS * layout.stride[1])
    grid = TargetGrid(
        epsg=32630,
        resolution=resolution,
        left=left,
        top=top,
        width=draw(st.integers(1, max_w)),
        height=draw(st.integers(1, max_h)),
    )
    return grid, layout


def coverage(grid: TargetGrid, patches: list[Patch]) -> np.ndarray:
    """How many patches cover each grid pixel."""
    count = np.zeros(grid.shape, dtype=np.int32)
    for patch in patches:
        inside = patch.window.intersection(_full(grid))
        if inside is not None:
            rows, cols = inside.slices()
            count[rows, cols] += 1
    return count


def _full(grid: TargetGrid) -> PixelWindow:
    return PixelWindow(0, 0, grid.height, grid.width)


def inside(grid: TargetGrid, patch: Patch) -> bool:
    w = patch.window
    return w.row_off >= 0 and w.col_off >= 0 and w.row_stop <= grid.height and w.col_stop <= grid.width


@pytest.mark.parametrize("edge", [EdgePolicy.SHIFT, EdgePolicy.PAD])
@SETTINGS
@given(data=st.data())
def test_shift_and_pad_cover_every_pixel(edge: EdgePolicy, data: st.DataObject) -> None:
    grid, layout = data.draw(cases(edge))
    patches = tile_grid(grid, layout)
    assert patches
    assert coverage(grid, patches).min() >= 1


@SETTINGS
@given(case=cases(EdgePolicy.DROP))
def test_drop_patches_lie_inside(case: tuple[TargetGrid, PatchLayout]) -> None:
    grid, layout = case
    patches = tile_grid(grid, layout)
    assert all(inside(grid, p) for p in patches)
    fits = grid.height >= layout.size[0] and grid.width >= layout.size[1]
    assert bool(patches) == fits
    if fits:
        # drop loses less than one stride at the bottom/right edges only
        covered = coverage(grid, patches) > 0
        rows = np.flatnonzero(covered.any(axis=1))
        cols = np.flatnonzero(covered.any(axis=0))
        assert rows[0] == 0 and cols[0] == 0
        assert grid.height - (rows[-1] + 1) < layout.stride[0]
        assert grid.width - (cols[-1] + 1) < layout.stride[1]


@SETTINGS
@given(case=cases(EdgePolicy.SHIFT))
def test_shift_patches_lie_inside_when_grid_fits_a_patch(case: tuple[TargetGrid, PatchLayout]) -> None:
    grid, layout = case
    patches = tile_grid(grid, layout)
    if grid.height >= layout.size[0] and grid.width >= layout.size[1]:
        assert all(inside(grid, p) for p in patches)
    else:
        # only the too-small axis reaches past the grid, from the origin
        assert all(p.window.row_off >= 0 and p.window.col_off >= 0 for p in patches)


@SETTINGS
@given(case=cases(EdgePolicy.PAD))
def test_pad_starts_are_multiples_of_stride(case: tuple[TargetGrid, PatchLayout]) -> None:
    grid, layout = case
    patches = tile_grid(grid, layout)
    for patch in patches:
        assert patch.window.row_off == patch.row * layout.stride[0]
        assert patch.window.col_off == patch.col * layout.stride[1]
        # a padded patch starts inside the grid
        assert patch.window.row_off < grid.height and patch.window.col_off < grid.width


@SETTINGS
@given(case=cases())
def test_patch_grids_are_aligned_and_sized(case: tuple[TargetGrid, PatchLayout]) -> None:
    grid, layout = case
    patches = tile_grid(grid, layout)
    for patch in patches:
        assert patch.grid.shape == layout.size
        assert patch.window.height == layout.size[0] and patch.window.width == layout.size[1]
        assert patch.grid.epsg == grid.epsg and patch.grid.resolution == grid.resolution
        dx = (patch.grid.left - grid.left) / grid.resolution
        dy = (grid.top - patch.grid.top) / grid.resolution
        assert math.isclose(dx, round(dx), abs_tol=1e-6) and math.isclose(dy, round(dy), abs_tol=1e-6)
        assert round(dx) == patch.window.col_off and round(dy) == patch.window.row_off
        assert grid.window_of(patch.grid) == patch.window
        t = patch.grid.transform
        assert (t.a, t.e) == (grid.resolution, -grid.resolution)


@SETTINGS
@given(case=cases())
def test_patch_ids_unique_and_row_major(case: tuple[TargetGrid, PatchLayout]) -> None:
    grid, layout = case
    patches = tile_grid(grid, layout)
    ids = [p.patch_id for p in patches]
    assert len(ids) == len(set(ids))
    assert len({(p.window.row_off, p.window.col_off) for p in patches}) == len(patches)
    assert [(p.row, p.col) for p in patches] == sorted((p.row, p.col) for p in patches)


@st.composite
def masked_cases(draw: st.DrawFn) -> tuple[TargetGrid, PatchLayout, np.ndarray]:
    height, width = draw(st.integers(1, 200)), draw(st.integers(1, 200))
    grid = TargetGrid(epsg=32734, resolution=10.0, left=300_000.0, top=6_250_000.0, width=width, height=height)
    layout = draw(layouts())
    # a few random rectangles make thin, L-shaped or scattered ROIs
    mask = np.zeros(grid.shape, dtype=bool)
    for _ in range(draw(st.integers(0, 4))):
        r0, c0 = draw(st.integers(0, height - 1)), draw(st.integers(0, width - 1))
        r1, c1 = draw(st.integers(r0 + 1, height)), draw(st.integers(c0 + 1, width))
        mask[r0:r1, c0:c1] = True
    return grid, layout, mask


@SETTINGS
@given(case=masked_cases())
def test_roi_mask_keeps_only_useful_patches(case: tuple[TargetGrid, PatchLayout, np.ndarray]) -> None:
    grid, layout, mask = case
    kept = tile_grid(grid, layout, mask)
    every = tile_grid(grid, layout)
    for patch in kept:
        window = patch.window.intersection(_full(grid))
        assert window is not None and mask[window.slices()].any()
    # the ROI filter only removes patches; ids of the kept ones do not change
    assert {p.patch_id: p.window for p in kept}.items() <= {p.patch_id: p.window for p in every}.items()
    if layout.edge is not EdgePolicy.DROP:
        assert coverage(grid, kept)[mask].min(initial=1) >= 1
    if not mask.any():
        assert kept == []


def test_mask_shape_must_match() -> None:
    grid = TargetGrid(epsg=32630, resolution=10.0, left=0.0, top=0.0, width=5, height=5)
    with pytest.raises(ValueError):
        tile_grid(grid, PatchLayout(size=(2, 2)), np.ones((4, 5), dtype=bool))


def test_small_grid_gets_one_padded_patch_with_shift() -> None:
    grid = TargetGrid(epsg=32630, resolution=10.0, left=0.0, top=0.0, width=100, height=300)
    patches = tile_grid(grid, PatchLayout(size=(256, 256), overlap=(0, 0), edge=EdgePolicy.SHIFT))
    assert [(p.window.row_off, p.window.col_off) for p in patches] == [(0, 0), (44, 0)]
