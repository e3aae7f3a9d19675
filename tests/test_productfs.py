"""ProductLocation: folders and zips, safety checks, /vsizip/ paths."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from senprep_core.errors import CorruptProductError, ProductNotFoundError, UnsafeArchiveError
from senprep_core.productfs import ProductLocation


def _folder(tmp_path: Path) -> Path:
    root = tmp_path / "S2A_MSIL2A_X.SAFE"
    (root / "GRANULE" / "G" / "IMG_DATA").mkdir(parents=True)
    (root / "MTD_MSIL2A.xml").write_text("<a/>")
    (root / "GRANULE" / "G" / "MTD_TL.xml").write_text("<b/>")
    (root / "GRANULE" / "G" / "IMG_DATA" / "T_B04_10m.jp2").write_bytes(b"jp2")
    return root


def test_folder(tmp_path: Path) -> None:
    loc = ProductLocation.open(_folder(tmp_path))
    assert not loc.is_zip and loc.root == "" and loc.name == "S2A_MSIL2A_X"
    assert loc.members() == ["GRANULE/G/IMG_DATA/T_B04_10m.jp2", "GRANULE/G/MTD_TL.xml", "MTD_MSIL2A.xml"]
    assert loc.find("*mtd_tl.XML") == ["GRANULE/G/MTD_TL.xml"]
    assert loc.read_bytes("MTD_MSIL2A.xml") == b"<a/>"
    assert loc.gdal_path("GRANULE/G/IMG_DATA/T_B04_10m.jp2") == str(loc.path / "GRANULE/G/IMG_DATA/T_B04_10m.jp2")
    with pytest.raises(ProductNotFoundError, match="no member"):
        loc.read_bytes("nope.xml")


def test_zip_with_root_folder(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    zpath = tmp_path / "S2A_MSIL2A_X.SAFE.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in sorted(folder.rglob("*")):
            zf.write(f, f.relative_to(tmp_path).as_posix())
    loc = ProductLocation.open(zpath)
    assert loc.is_zip and loc.root == "S2A_MSIL2A_X.SAFE/" and loc.name == "S2A_MSIL2A_X"
    assert "GRANULE/G/MTD_TL.xml" in loc.members()
    assert loc.read_bytes("GRANULE/G/MTD_TL.xml") == b"<b/>"
    member = "GRANULE/G/IMG_DATA/T_B04_10m.jp2"
    assert loc.gdal_path(member) == f"/vsizip/{zpath.resolve().as_posix()}/S2A_MSIL2A_X.SAFE/{member}"


@pytest.mark.parametrize("bad", ["../evil", "X.SAFE/../../evil", "/etc/passwd"])
def test_zip_unsafe_entries(tmp_path: Path, bad: str) -> None:
    zpath = tmp_path / "p.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("X.SAFE/MTD_MSIL2A.xml", "<a/>")
        zf.writestr(zipfile.ZipInfo(bad), "x")
    with pytest.raises(UnsafeArchiveError, match=r"evil|passwd"):
        ProductLocation.open(zpath)


def test_missing_and_not_a_product(tmp_path: Path) -> None:
    with pytest.raises(ProductNotFoundError, match="does not exist"):
        ProductLocation.open(tmp_path / "missing.SAFE")
    txt = tmp_path / "a.txt"
    txt.write_text("hi")
    with pytest.raises(ProductNotFoundError, match=r"neither a folder nor a \.zip"):
        ProductLocation.open(txt)
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CorruptProductError):
        ProductLocation.open(bad)
