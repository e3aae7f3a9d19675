"""Product quicklooks (S2 PVI, S1 quick-look.png) from folders and zips, demo and real products."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from senprep_core.demo.catalog import build_demo_catalog
from senprep_core.errors import CorruptProductError
from senprep_core.productfs import ProductLocation
from senprep_core.quicklook import quicklook_member, read_quicklook
from tests.conftest import need_real_samples


@pytest.fixture(scope="module")
def demo_products(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("ql-demo")
    build_demo_catalog(folder)
    return sorted(p for p in folder.iterdir() if p.suffix in (".SAFE", ".zip"))


def test_every_demo_product_has_a_quicklook_folder_or_zip(demo_products: list[Path]) -> None:
    assert {p.suffix for p in demo_products} == {".SAFE", ".zip"}
    for product in demo_products:
        image = read_quicklook(product, size=64)
        assert image is not None and image.dtype == np.uint8 and image.shape[2] == 3, product.name
        assert max(image.shape[:2]) <= 64 and image.std() > 3  # a picture, not a flat fill
        member = quicklook_member(ProductLocation.open(product))
        expected = "preview/quick-look.png" if product.name.startswith("S1") else "_PVI.jp2"
        assert member is not None and member.endswith(expected)


def test_s2_preview_matches_the_true_colour_bands(demo_products: list[Path]) -> None:
    """The demo PVI is B04/B03/B02 averaged to 320 m: its red is brighter where B04 reflectance is higher."""
    import rasterio

    product = next(p for p in demo_products if "MSIL2A" in p.name and p.suffix == ".SAFE")
    image = read_quicklook(product, size=1000)
    assert image is not None
    b04 = next(product.rglob("*_B04_10m.jp2"))
    with rasterio.open(b04) as src:
        red = src.read(1, out_shape=image.shape[:2], resampling=rasterio.enums.Resampling.average).astype(float)
    assert np.corrcoef(red.ravel(), image[..., 0].astype(float).ravel())[0, 1] > 0.9


def test_real_s2_product_preview() -> None:
    safe = need_real_samples("stactools-sentinel2", "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE")
    image = read_quicklook(safe, size=128)
    assert image is not None and image.shape == (128, 128, 3) and 20 < image.mean() < 235


def test_no_quicklook_and_broken_quicklook(demo_products: list[Path], tmp_path: Path) -> None:
    product = next(p for p in demo_products if p.suffix == ".SAFE" and p.name.startswith("S2"))
    copy = tmp_path / product.name
    shutil.copytree(product, copy)
    preview = next(copy.rglob("*_PVI.jp2"))
    preview.write_bytes(preview.read_bytes()[:100])
    with pytest.raises(CorruptProductError, match="quicklook"):
        read_quicklook(copy)
    preview.unlink()
    assert read_quicklook(copy) is None
