"""Makes tests/data/real, the trimmed copy of ../shared/data/real-samples that the tests read.

Run it from anywhere: ``python tests/data/copy_real_samples.py``. It copies the files listed below with their
sub-paths, and trims two things (tests/data/real/*/README.md say so per folder):

- the S1 measurement TIFFs: the originals are full size but blank (all pixels 0 or 1). Each is replaced by a
  TIFF of the same size, data type, nodata, CRS and pixel value, in 1024 x 1024 tiles instead of one-row
  strips, which zstd shrinks to a few kB;
- the ``antennaPatternList`` of the GRD annotations (1.3 MB of each 1.7 MB file) is emptied (``count="0"``,
  as in senprep's demo annotations): neither senprep nor the tests (nor the xarray-sentinel readers they
  compare with) read it.

The ``manifest.safe`` of a product with trimmed files gets those files' new sizes and MD5s, so the trimmed
products pass senprep's check of local products against their manifest like the originals do.

The READMEs in tests/data/real are written by hand and left as they are. The copy must stay under 15 MB
(``du -sb tests/data/real``).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / ".." / "shared" / "data" / "real-samples"
DEST = ROOT / "tests" / "data" / "real"
LIMIT = 15_000_000

ROME = "sarsen-testdata/S1B_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993_5371.SAFE"
ROME_STEM = "s1b-iw-grd-vv-20211223t051122-20211223t051147-030148-039993-001"
SLC = "sarsen-testdata/S1A_IW_SLC__1SDV_20220104T170557_20220104T170624_041314_04E951_F1F1.SAFE"
ECC8 = "xarray-sentinel-testdata/S1B_IW_GRDH_1SDV_20210401T052623_20210401T052648_026269_032297_ECC8.SAFE"
ECC8_STEM = "s1b-iw-grd-{pol}-20210401t052623-20210401t052648-026269-032297-{n}"
T29UNU = "stactools-sentinel2/S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE"
GRANULE = "GRANULE/L2A_T29UNU_A038058_20221005T115407"

COPIED = [
    "sarsen-testdata/Rome-30m-DEM.tif",
    f"{ROME}/manifest.safe",
    f"{ROME}/annotation/calibration/calibration-{ROME_STEM}.xml",
    f"{ROME}/annotation/calibration/noise-{ROME_STEM}.xml",
    f"{ROME}/annotation/rfi/rfi-{ROME_STEM}.xml",
    f"{SLC}/manifest.safe",  # the SLC is refused from its manifest
    f"{ECC8}/manifest.safe",
    # the real L2A product: its metadata, and the pixels of B04 (60 m), SCL (20 m), AOT (10 m) and the preview
    f"{T29UNU}/manifest.safe",
    f"{T29UNU}/MTD_MSIL2A.xml",
    f"{T29UNU}/INSPIRE.xml",
    f"{T29UNU}/{GRANULE}/MTD_TL.xml",
    f"{T29UNU}/{GRANULE}/IMG_DATA/R60m/T29UNU_20221005T115411_B04_60m.jp2",
    f"{T29UNU}/{GRANULE}/IMG_DATA/R20m/T29UNU_20221005T115411_SCL_20m.jp2",
    f"{T29UNU}/{GRANULE}/IMG_DATA/R10m/T29UNU_20221005T115411_AOT_10m.jp2",
    f"{T29UNU}/{GRANULE}/QI_DATA/T29UNU_20221005T115411_PVI.jp2",
]
BLANK_TIFFS = [
    f"{ROME}/measurement/{ROME_STEM}.tiff",
    f"{ECC8}/measurement/{ECC8_STEM.format(pol='vv', n='001')}.tiff",
]
NO_ANTENNA_PATTERN = [
    f"{ROME}/annotation/{ROME_STEM}.xml",
    f"{ECC8}/annotation/{ECC8_STEM.format(pol='vv', n='001')}.xml",
    f"{ECC8}/annotation/{ECC8_STEM.format(pol='vh', n='002')}.xml",
]
# the metadata-only stactools-sentinel2 folders: what read_s2_metadata reads, and the expected STAC item
S2_METADATA_NAMES = {"mtd_msil1c.xml", "mtd_msil2a.xml", "mtd_tl.xml", "metadata.xml", "product_metadata.xml",
                     "tileinfo.json", "expected_output.json"}  # fmt: skip


def listed_files() -> list[str]:
    """Every file copied as it is, relative to the sample roots."""
    files = list(COPIED)
    for folder in sorted((SOURCE / "stactools-sentinel2").glob("S2*")):
        if folder.is_dir() and folder.name != Path(T29UNU).name:
            files += [p.relative_to(SOURCE).as_posix() for p in sorted(folder.rglob("*"))
                      if p.is_file() and p.name.lower() in S2_METADATA_NAMES]  # fmt: skip
    for folder in ("cdse", "earth-search", "planetary-computer", "odc-stac-testdata"):
        files += [p.relative_to(SOURCE).as_posix() for p in sorted((SOURCE / "stac" / folder).glob("*.json"))
                  if not p.name.endswith(".collection.json")]  # fmt: skip
    return files


def write_blank_tiff(src: Path, dst: Path) -> None:
    """A tiled TIFF with the size, data type, nodata, CRS and (single, checked) pixel value of ``src``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # GRD TIFFs have no transform
        with rasterio.open(src) as ds:
            profile = ds.profile
            values: set[int] = set()
            for row in range(0, ds.height, 2048):
                values |= set(np.unique(ds.read(1, window=Window(0, row, ds.width, min(2048, ds.height - row)))))
        if len(values) != 1:
            raise SystemExit(f"{src} is not blank: values {sorted(values)[:10]}")
        (value,) = values
        profile.update(tiled=True, blockxsize=1024, blockysize=1024, compress="zstd")
        with rasterio.open(dst, "w", **profile) as out:
            block = np.full((1024, 1024), value, dtype=profile["dtype"])
            for row in range(0, out.height, 1024):
                for col in range(0, out.width, 1024):
                    h, w = min(1024, out.height - row), min(1024, out.width - col)
                    out.write(block[:h, :w], 1, window=Window(col, row, w, h))


def restamp(path: Path) -> None:
    """Give ``path``'s entry in its product's manifest.safe the file's size and MD5 as trimmed."""
    safe = next(p for p in path.parents if p.suffix == ".SAFE")
    manifest = safe / "manifest.safe"
    member = path.relative_to(safe).as_posix()
    text = manifest.read_text(encoding="utf-8")
    pattern = re.compile(r'(<byteStream[^>]*size=")\d+("[^>]*>\s*<fileLocation[^>]*href="\./' + re.escape(member)
                         + r'"[^>]*/>\s*<checksum[^>]*>)[0-9a-fA-F]+(</checksum>)')  # fmt: skip
    digest = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
    text, n = pattern.subn(lambda m: f"{m.group(1)}{path.stat().st_size}{m.group(2)}{digest}{m.group(3)}", text)
    if n != 1:
        raise SystemExit(f"{manifest}: expected one entry for {member}, found {n}")
    manifest.write_text(text, encoding="utf-8")


def main() -> int:
    if not SOURCE.is_dir():
        print(f"no {SOURCE}", file=sys.stderr)
        return 2
    for old in sorted(DEST.rglob("*"), reverse=True):  # a fresh copy: only the READMEs stay
        if old.is_file() and old.name != "README.md":
            old.unlink()
        elif old.is_dir() and not any(old.iterdir()):
            old.rmdir()
    for rel in listed_files():
        target = DEST / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SOURCE / rel, target)
    for rel in NO_ANTENNA_PATTERN:
        text = (SOURCE / rel).read_bytes()
        trimmed, n = re.subn(rb'<antennaPatternList count="\d+">.*?</antennaPatternList>',
                             b'<antennaPatternList count="0"/>', text, flags=re.DOTALL)  # fmt: skip
        if n != 1:
            raise SystemExit(f"{rel}: expected one antennaPatternList, found {n}")
        (DEST / rel).parent.mkdir(parents=True, exist_ok=True)
        (DEST / rel).write_bytes(trimmed)
    for rel in BLANK_TIFFS:
        (DEST / rel).parent.mkdir(parents=True, exist_ok=True)
        write_blank_tiff(SOURCE / rel, DEST / rel)
    for rel in [*NO_ANTENNA_PATTERN, *BLANK_TIFFS]:
        restamp(DEST / rel)
    size = sum(p.stat().st_size for p in DEST.rglob("*") if p.is_file())
    print(f"{DEST.relative_to(ROOT)}: {size / 1e6:.2f} MB in files (limit {LIMIT / 1e6:.0f} MB)")
    return 0 if size <= LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
