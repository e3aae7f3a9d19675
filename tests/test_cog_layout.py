"""Patch files are cloud-optimized: directory first, tiles in order, lossless, deterministic."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import rasterio

from senprep_core.geo.grid import TargetGrid
from senprep_core.outputs.cog import write_cog


def _data(bands: int, size: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    data = (rng.random((bands, size, size)) * 0.3).astype(np.float32)
    data[:, :5, :] = np.nan
    return data


def _layout(path: Path) -> tuple[int, list[int]]:
    """First directory offset and every tile offset in file order (bands, then rows, then columns)."""
    ifd = struct.unpack("<I", path.read_bytes()[4:8])[0]
    offsets = []
    with rasterio.open(path) as ds:
        rows = (ds.height + ds.block_shapes[0][0] - 1) // ds.block_shapes[0][0]
        cols = (ds.width + ds.block_shapes[0][1] - 1) // ds.block_shapes[0][1]
        for band in ds.indexes:
            for r in range(rows):
                for c in range(cols):
                    offsets.append(int(ds.get_tag_item(f"BLOCK_OFFSET_{c}_{r}", "TIFF", bidx=band)))
    return ifd, offsets


@pytest.mark.parametrize("compress", ["zstd", "deflate", "lzw", "none"])
@pytest.mark.parametrize("size", [256, 512])
def test_patch_is_a_cog_with_band_interleaved_tiles(tmp_path: Path, compress: str, size: int) -> None:
    grid = TargetGrid(32630, 10.0, 300000.0, 6300000.0, size, size)
    data = _data(4, size)
    path = tmp_path / "p.tif"
    write_cog(path, data, grid, ["B02", "B03", "B04", "SCL"], {"senprep_patch": "r0c0"}, compress=compress)
    ifd, offsets = _layout(path)
    assert ifd < 512, "the image directory must come first"
    assert offsets == sorted(offsets) and offsets[0] > ifd, "tiles must follow the directory, in order"
    with rasterio.open(path) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE")["INTERLEAVE"] == "BAND"
        assert ds.block_shapes[0] == (256, 256)
        assert ds.descriptions == ("B02", "B03", "B04", "SCL")
        assert ds.tags()["senprep_patch"] == "r0c0"
        assert (ds.crs.to_epsg(), ds.transform) == (32630, grid.transform)
        np.testing.assert_array_equal(ds.read(), data)  # lossless, NaN kept as no-data
    first = path.read_bytes()
    write_cog(path, data, grid, ["B02", "B03", "B04", "SCL"], {"senprep_patch": "r0c0"}, compress=compress)
    assert path.read_bytes() == first  # deterministic bytes


def test_large_patches_get_overviews(tmp_path: Path) -> None:
    grid = TargetGrid(32630, 10.0, 300000.0, 6300000.0, 1024, 1024)
    path = tmp_path / "big.tif"
    write_cog(path, _data(2, 1024), grid, ["B02", "B03"])
    with rasterio.open(path) as ds:
        assert ds.overviews(1) == [2, 4]
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
