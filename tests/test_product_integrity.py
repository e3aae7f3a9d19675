"""Local products are checked against their manifest.safe before they are read; checks are remembered."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from senprep_core.config import parse_config
from senprep_core.pipeline import run
from senprep_core.unit.fetching import FetchOptions
from senprep_core.unit.integrity import verify_product
from tests.conftest import N_SCALE_PRODUCTS, scale_config_dict


@pytest.fixture
def products(scale_products: Path, tmp_path: Path) -> Path:
    """A copy of the eight products whose B03 of one product has 60 kB zeroed inside (same size)."""
    folder = Path(shutil.copytree(scale_products, tmp_path / "products"))
    band = sorted(folder.glob("*/GRANULE/*/IMG_DATA/R10m/*_B03_10m.jp2"))[3]
    data = bytearray(band.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 60_000] = bytes(min(60_000, len(data) - middle))
    band.write_bytes(bytes(data))
    return folder


def test_a_damaged_band_fails_its_unit_naming_the_file_and_the_others_complete(products: Path, tmp_path: Path) -> None:
    result = run(parse_config(scale_config_dict()), tmp_path / "out", sources=[f"local:{products}"],
                 fetch=FetchOptions(tmp_path / "cache"))  # fmt: skip
    assert result.status == "partial" and result.exit_code == 1
    (failed,) = result.failed
    assert failed.error_type == "CorruptProductError"
    assert "_B03_10m.jp2" in (failed.error_message or "") and "checksum in its manifest.safe" in (
        failed.error_message or ""
    )
    assert sum(r.status == "done" for r in result.results) == N_SCALE_PRODUCTS - 1


def test_no_verify_reads_the_products_as_they_are(products: Path, tmp_path: Path) -> None:
    result = run(parse_config(scale_config_dict()), tmp_path / "out", sources=[f"local:{products}"],
                 fetch=FetchOptions(tmp_path / "cache", verify=False))  # fmt: skip
    assert result.status == "complete"


def test_verified_files_are_remembered_and_not_hashed_again(scale_products: Path, tmp_path: Path) -> None:
    from senprep_core.catalog.local import LocalProvider
    from senprep_core.catalog.records import SearchQuery

    config = parse_config(scale_config_dict())
    record = next(iter(LocalProvider(scale_products).search(
        SearchQuery(config.roi.geometry, config.date_windows, ("S2MSI2A",))).products))  # fmt: skip
    assert verify_product(record, ("B02", "B03"), tmp_path) > 0
    assert verify_product(record, ("B02", "B03"), tmp_path) == 0  # same sizes and times: nothing hashed
    assert verify_product(record, ("B02", "B03", "B04"), tmp_path) == 1  # only the new band
