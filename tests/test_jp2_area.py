"""OpenJPEG area decoding (senprep_core.s2.jp2) gives GDAL's pixels, and runs give the same patches either way."""

from __future__ import annotations

import filecmp
from pathlib import Path

import numpy as np
import pytest
import rasterio

from senprep_core.geo.grid import PixelWindow
from senprep_core.s2 import jp2
from senprep_core.s2.metadata import read_s2_metadata
from senprep_core.s2.reader import OpenFiles, read_s2_window
from tests.conftest import IN_CI, need_real_samples

SAFE = "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE"
IMG = "GRANULE/L2A_T29UNU_A038058_20221005T115407/IMG_DATA"


@pytest.fixture(scope="module", autouse=True)
def area_decoding() -> None:
    """The area path must exist where tests run in CI (.ci/run installs libopenjp2-7)."""
    if not jp2.area_decoding_available():
        message = "glymur with OpenJPEG >= 2.3 is not available (apt-get install libopenjp2-7)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def _windows(height: int, width: int, tile: int) -> list[PixelWindow]:
    """Windows inside one tile, across tile corners, at the file's last row/column, one pixel, the whole file."""
    return [
        PixelWindow(3, 5, 40, 60),
        PixelWindow(tile - 17, tile - 9, 50, 70),
        PixelWindow(height - 33, width - 45, 33, 45),
        PixelWindow(tile, tile, 1, 1),
        PixelWindow(0, 0, height, width),
    ]


@pytest.mark.parametrize(
    "member",
    [
        "R10m/T29UNU_20221005T115411_AOT_10m.jp2",
        "R20m/T29UNU_20221005T115411_SCL_20m.jp2",
        "R60m/T29UNU_20221005T115411_B04_60m.jp2",
        "R60m/T29UNU_20221005T115411_B09_60m.jp2",
    ],
)
def test_real_band_windows_equal_gdal(member: str) -> None:
    path = need_real_samples("stactools-sentinel2", SAFE, IMG, member)
    reader = jp2.open_area_reader(str(path))
    assert reader is not None
    reader._jp2 = None  # only the low-level decoder (64 KB stream buffer) may answer, not glymur's own reader
    with rasterio.open(path) as ds:
        tile = ds.block_shapes[0][0]
        windows = _windows(ds.height, ds.width, tile)
        if ds.width > 6000:  # the 10 m file: a 2 x 2 km window across four tiles, not the whole file
            windows[-1] = PixelWindow(tile - 100, tile - 100, 200, 200)
        for window in windows:
            expected = ds.read([1], window=window.to_rasterio())
            got = reader.read(window)
            assert got.dtype == expected.dtype
            np.testing.assert_array_equal(got, expected, err_msg=f"{member} {window}")


def test_files_that_gdal_must_read() -> None:
    """Zip members, several components and a window outside the file are GDAL's (or refused)."""
    tci = need_real_samples("stactools-sentinel2", SAFE, IMG, "R60m/T29UNU_20221005T115411_TCI_60m.jp2")
    assert jp2.open_area_reader(str(tci)) is None  # three components
    assert jp2.open_area_reader(f"/vsizip/x.zip/{tci.name}") is None
    b04 = jp2.open_area_reader(str(tci).replace("TCI_60m", "B04_60m"))
    assert b04 is not None
    with pytest.raises(ValueError, match="outside"):
        b04.read(PixelWindow(1800, 1800, 40, 40))


def test_environment_switch_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    path = need_real_samples("stactools-sentinel2", SAFE, IMG, "R60m/T29UNU_20221005T115411_B04_60m.jp2")
    monkeypatch.setenv(jp2.ENV_DECODER, "gdal")
    assert not jp2.area_decoding_available()
    assert jp2.open_area_reader(str(path)) is None


def test_real_product_window_is_the_same_with_either_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """read_s2_window (resampling, masks, valid, cloud) on the real product: identical arrays."""
    from senprep_core.geo.grid import TargetGrid

    # B8A, B09 and the 20 m AOT are read below: the copy in tests/data/real lacks them
    needed = [f"{IMG}/R60m/T29UNU_20221005T115411_B8A_60m.jp2", f"{IMG}/R60m/T29UNU_20221005T115411_B09_60m.jp2",
              f"{IMG}/R20m/T29UNU_20221005T115411_AOT_20m.jp2"]  # fmt: skip
    meta = read_s2_metadata(need_real_samples("stactools-sentinel2", SAFE, members=needed))
    grid = TargetGrid(epsg=32629, resolution=10.0, left=499980.0 + 12340.0, top=5900040.0 - 23450.0, width=700,
                      height=600)  # fmt: skip
    bands = ["B04", "B8A", "B09", "SCL", "scl_cloud_shadow_M", "AOT"]
    files = OpenFiles()
    area = read_s2_window(meta, grid, bands, "bilinear", files)
    assert any(r is not None for r in files._areas.values())  # the area path really ran
    files.close()
    monkeypatch.setenv(jp2.ENV_DECODER, "gdal")
    files = OpenFiles()
    gdal = read_s2_window(meta, grid, bands, "bilinear", files)
    assert all(r is None for r in files._areas.values())
    files.close()
    np.testing.assert_array_equal(area.data, gdal.data)
    np.testing.assert_array_equal(area.valid, gdal.valid)
    np.testing.assert_array_equal(area.cloud, gdal.cloud)


def _iso(yyyymmdd: str) -> str:
    return f"{yyyymmdd[:4]}-{yyyymmdd[4:6]}-{yyyymmdd[6:]}"


def test_runs_write_identical_patches_with_either_decoder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, demo_products: Path
) -> None:
    """The demo's SAFE-folder products through OpenJPEG (1024 px blocks) and through GDAL (512 px blocks)."""
    from pyproj import Transformer

    from senprep_core.config import parse_config
    from senprep_core.demo.catalog import DEMO_DATES, DEMO_EPSG, DEMO_ULX, DEMO_ULY
    from senprep_core.pipeline import run

    # 11 x 11 km of the 12 km demo tile: 3 x 3 blocks of 512 px, 2 x 2 of 1024 px
    left, top = DEMO_ULX + 500.0, DEMO_ULY - 500.0
    to_ll = Transformer.from_crs(DEMO_EPSG, 4326, always_xy=True).transform
    ring = [to_ll(x, y) for x, y in [(left, top - 11000), (left + 11000, top - 11000), (left + 11000, top),
                                     (left, top), (left, top - 11000)]]  # fmt: skip
    config = parse_config(
        {
            "name": "decoders",
            "roi": {"type": "Polygon", "coordinates": [ring]},
            "dates": [[_iso(DEMO_DATES[0]), _iso(DEMO_DATES[1])]],
            "mode": "s2_only",
            "grid": {"resolution": 10, "epsg": DEMO_EPSG},
            "patches": {"size": [256, 256], "overlap": [32, 32], "edge": "shift"},
            "sentinel2": {"level": "L2A", "bands": ["B02", "B05", "B09", "SCL", "scl_cloud_shadow_M"]},
            "output": {"min_valid_fraction": 0.0},
        }
    )
    outputs = {}
    for decoder in ("auto", "gdal"):
        monkeypatch.setenv(jp2.ENV_DECODER, decoder)
        outdir = tmp_path / decoder
        result = run(config, outdir, sources=[f"local:{demo_products}"])
        assert result.status == "complete"
        outputs[decoder] = outdir
    tifs = sorted(p.relative_to(outputs["auto"]) for p in outputs["auto"].rglob("*_S2.tif"))
    assert len(tifs) >= 4
    assert tifs == sorted(p.relative_to(outputs["gdal"]) for p in outputs["gdal"].rglob("*_S2.tif"))
    for rel in tifs:
        assert filecmp.cmp(outputs["auto"] / rel, outputs["gdal"] / rel, shallow=False), rel


def test_without_the_openjpeg_library_gdal_reads_everything() -> None:
    """A machine without libopenjp2 (glymur finds no library): the area path is off, with a log line."""
    import subprocess
    import sys

    code = (
        "import ctypes.util, logging\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "ctypes.util.find_library = lambda name: None\n"
        "from senprep_core.s2.jp2 import area_decoding_available, open_area_reader\n"
        "print(area_decoding_available(), open_area_reader('/data/x_B04_10m.jp2'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip().splitlines()[-1] == "False None"
    assert "decoded by GDAL" in done.stderr
