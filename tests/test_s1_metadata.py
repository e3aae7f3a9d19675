"""Sentinel-1 GRD metadata, measurement windows and `senprep inspect` on real products (folder and zip)."""

from __future__ import annotations

import dataclasses
import json
import re
import time
import warnings
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from shapely import wkt
from shapely.geometry import Point

from senprep_core.cli import main
from senprep_core.errors import CorruptProductError, MetadataError, OutsideSceneError
from senprep_core.geo.grid import PixelWindow
from senprep_core.productfs import ProductLocation
from senprep_core.s1 import clip_window, read_dn, read_s1_metadata
from senprep_core.s1.model import S1Metadata
from tests.conftest import need_real_samples

ROME = ("sarsen-testdata", "S1B_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993_5371.SAFE")
ECC8 = ("xarray-sentinel-testdata", "S1B_IW_GRDH_1SDV_20210401T052623_20210401T052648_026269_032297_ECC8.SAFE")
SLC = ("sarsen-testdata", "S1A_IW_SLC__1SDV_20220104T170557_20220104T170624_041314_04E951_F1F1.SAFE")
ROME_STEM = "s1b-iw-grd-vv-20211223t051122-20211223t051147-030148-039993-001"
ROME_ANNOTATION = f"annotation/{ROME_STEM}.xml"
ROME_NOISE = f"annotation/calibration/noise-{ROME_STEM}.xml"
ROME_CALIBRATION = f"annotation/calibration/calibration-{ROME_STEM}.xml"
ROME_MEASUREMENT = f"measurement/{ROME_STEM}.tiff"

EXPECTED = {
    ROME: dict(
        mission="S1B", mode="IW", pols=("VV",), direction="DESCENDING", relative=22, absolute=30148, slice=9,
        ipf="003.40", size=(16705, 26102), calibrated=True,
        epoch=datetime(2021, 12, 23, 5, 11, 22, 594441, tzinfo=timezone.utc),
    ),
    ECC8: dict(
        mission="S1B", mode="IW", pols=("VV", "VH"), direction="DESCENDING", relative=168, absolute=26269, slice=7,
        ipf="003.31", size=(16685, 25788), calibrated=False,
        epoch=datetime(2021, 4, 1, 5, 26, 23, 794457, tzinfo=timezone.utc),
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def rome() -> S1Metadata:
    return read_s1_metadata(need_real_samples(*ROME))


def _xs_seconds(values: Any, epoch: datetime) -> np.ndarray:
    """xarray-sentinel datetime64 values as seconds since ``epoch``."""
    origin = np.datetime64(epoch.replace(tzinfo=None), "ns")
    return (np.asarray(values, dtype="datetime64[ns]") - origin).astype(np.int64) / 1e9


def _product_copy(tmp_path: Path, parts: tuple[str, str], replace: dict[str, bytes | None]) -> Path:
    """A product folder in tmp_path: symlinks to the real members, except ``replace`` (bytes written, None dropped)."""
    src = need_real_samples(*parts)
    dst = tmp_path / parts[1]
    for member in ProductLocation.open(src).members():
        target = dst / member
        target.parent.mkdir(parents=True, exist_ok=True)
        if member in replace:
            content = replace[member]
            if content is not None:
                target.write_bytes(content)
        else:
            target.symlink_to(src / member)
    for member, content in replace.items():
        if content is not None and not (dst / member).exists():
            (dst / member).parent.mkdir(parents=True, exist_ok=True)
            (dst / member).write_bytes(content)
    return dst


def _assert_same(a: Any, b: Any, where: str = "meta") -> None:
    """Recursive equality of value objects holding numpy arrays (ProductLocation skipped)."""
    if isinstance(a, ProductLocation):
        return
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        assert type(a) is type(b), where
        for f in dataclasses.fields(a):
            _assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}[{k}]")
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b), where
    else:
        assert a == b, where


# ----- real products ----------------------------------------------------------------------------


@pytest.mark.parametrize("parts", [ROME, ECC8], ids=["rome", "ecc8"])
def test_real_grd_parses(parts: tuple[str, str]) -> None:
    exp = EXPECTED[parts]
    started = time.perf_counter()
    meta = read_s1_metadata(need_real_samples(*parts))
    elapsed = time.perf_counter() - started
    assert elapsed < 3.0  # parsed with lxml once per file: ~0.03 s here
    assert (meta.mission, meta.mode, meta.product_type, meta.resolution_class) == (exp["mission"], "IW", "GRD", "H")
    assert meta.polarisations == exp["pols"] and tuple(meta.images) == exp["pols"]
    assert (meta.orbit_direction, meta.relative_orbit, meta.absolute_orbit) == (
        exp["direction"],
        exp["relative"],
        exp["absolute"],
    )
    assert (meta.slice_number, meta.ipf_version) == (exp["slice"], exp["ipf"])
    assert meta.product_id == parts[1].removesuffix(".SAFE")
    assert meta.epoch == exp["epoch"] and meta.start_time == exp["epoch"]
    assert 24.9 < (meta.stop_time - meta.start_time).total_seconds() < 25.1
    for pol, image in meta.images.items():
        assert image.polarisation == pol and image.swath == "IW"
        assert (image.lines, image.samples) == exp["size"]
        assert image.first_line_time == 0.0
        assert image.last_line_time == pytest.approx((image.lines - 1) * image.azimuth_time_interval, abs=1e-5)
        assert image.range_pixel_spacing == image.azimuth_pixel_spacing == 10.0
        assert image.radar_frequency == pytest.approx(5.405e9, rel=1e-4)
        assert 30 < image.incidence_angle_mid < 45
        assert image.bistatic_delay_applied and image.pass_direction == exp["direction"]
        assert image.geolocation.line.size == 210 and np.unique(image.geolocation.line).size == 10
        assert image.conversion.azimuth_time.size == 28 and image.conversion.srgr.shape == (28, 9)
        assert image.orbit.times.size >= 16 and np.allclose(np.diff(image.orbit.times), 10.0)
        assert image.orbit.source == "annotation" and image.orbit.epoch == meta.epoch
        assert image.measurement == f"measurement/{Path(image.annotation).stem}.tiff"
        assert (image.calibration is not None) == exp["calibrated"] == (image.calibration_file is not None)
        assert (image.noise is not None) == exp["calibrated"]
        # tie-point times follow the lines (within the bistatic shift, < 1 ms)
        expected_t = image.first_line_time + image.geolocation.line * image.azimuth_time_interval
        assert np.abs(image.geolocation.azimuth_time - expected_t).max() < 1e-3


def test_footprint_is_lon_lat_and_holds_rome(rome: S1Metadata) -> None:
    footprint = wkt.loads(rome.footprint_wkt)
    assert footprint.is_valid and footprint.contains(Point(12.4964, 41.9028))
    assert footprint.bounds == pytest.approx((11.865704, 40.876698, 15.321935, 42.780445))
    lon, lat = rome.images["VV"].geolocation.longitude, rome.images["VV"].geolocation.latitude
    assert footprint.buffer(0.05).contains(Point(float(lon.mean()), float(lat.mean())))


def test_calibration_noise_geometry_equal_xarray_sentinel(rome: S1Metadata) -> None:
    from xarray_sentinel import sentinel1

    product = need_real_samples(*ROME)
    image = rome.images["VV"]
    assert image.calibration is not None and image.noise is not None

    cal = sentinel1.open_calibration_dataset(str(product / ROME_CALIBRATION))
    assert image.calibration.absolute_calibration_constant == pytest.approx(
        float(cal.attrs["absoluteCalibrationConstant"])
    )
    for ours, theirs in {"sigma0": "sigmaNought", "beta0": "betaNought", "gamma0": "gamma", "dn": "dn"}.items():
        lut = image.calibration.luts[ours]
        assert np.array_equal(lut.lines, cal.line.values)
        assert all(np.array_equal(p, cal.pixel.values) for p in lut.pixels)
        assert np.array_equal(np.stack(lut.values).astype(np.float32), cal[theirs].values), ours
    assert image.calibration.luts["sigma0"].lines.size == 27 and image.calibration.luts["sigma0"].pixels[0].size == 654

    noise = sentinel1.open_noise_range_dataset(str(product / ROME_NOISE))
    assert np.array_equal(image.noise.range.lines, noise.line.values)
    assert np.array_equal(np.stack(image.noise.range.values).astype(np.float32), noise.noiseRangeLut.values)
    assert len(image.noise.range.pixels) == 27 and image.noise.range.pixels[0].size == 657
    az = sentinel1.open_noise_azimuth_dataset(str(product / ROME_NOISE))
    blocks = image.noise.azimuth
    assert len(blocks) == 3  # IW1, IW2, IW3
    assert (blocks[0].first_pixel, blocks[0].last_pixel) == (0, 8889) and blocks[1].first_pixel == 8890
    assert blocks[-1].last_pixel == image.samples - 1 and all(b.last_line == image.lines - 1 for b in blocks)
    assert np.array_equal(blocks[0].lines, az.line.values) and blocks[0].values.size == 1689
    assert np.array_equal(blocks[0].values.astype(np.float32), az.noiseAzimuthLut.values)

    annotation = str(product / ROME_ANNOTATION)
    conv = sentinel1.open_coordinate_conversion_dataset(annotation)
    c = image.conversion
    assert np.abs(c.azimuth_time - _xs_seconds(conv.azimuth_time.values, rome.epoch)).max() < 1e-9
    assert np.array_equal(c.sr0, conv.sr0.values) and np.array_equal(c.gr0, conv.gr0.values)
    assert np.array_equal(c.srgr, conv.srgrCoefficients.values) and np.array_equal(c.grsr, conv.grsrCoefficients.values)

    gcp = sentinel1.open_gcp_dataset(annotation)
    g = image.geolocation
    rows = np.searchsorted(gcp.line.values, g.line)
    cols = np.searchsorted(gcp.pixel.values, g.pixel)
    assert np.array_equal(g.latitude, gcp.latitude.values[rows, cols])
    assert np.array_equal(g.longitude, gcp.longitude.values[rows, cols])
    assert np.array_equal(g.height, gcp.height.values[rows, cols])
    first = g.line == 0  # xarray-sentinel keeps the slant-range times of the first grid line only
    assert np.array_equal(g.slant_range_time[first], gcp.slant_range_time.values[cols[first]])

    orbit = sentinel1.open_orbit_dataset(annotation)
    assert np.abs(image.orbit.times - _xs_seconds(orbit.azimuth_time.values, rome.epoch)).max() < 1e-9
    assert np.array_equal(image.orbit.positions, orbit.position.values.T)
    assert np.array_equal(image.orbit.velocities, orbit.velocity.values.T)


def test_zipped_product_gives_identical_metadata(rome: S1Metadata, tmp_path: Path) -> None:
    src = need_real_samples(*ROME)
    archive = tmp_path / (ROME[1].removesuffix(".SAFE") + ".zip")
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for member in ProductLocation.open(src).members():
            zf.write(src / member, f"{ROME[1]}/{member}")
    zipped = read_s1_metadata(archive)
    assert zipped.location.is_zip and zipped.to_dict() == rome.to_dict()
    _assert_same(zipped, rome)
    window = PixelWindow(100, 200, 30, 40)
    assert np.array_equal(read_dn(zipped, "VV", window), read_dn(rome, "VV", window))


def test_missing_calibration_gives_none(tmp_path: Path) -> None:
    product = _product_copy(tmp_path, ROME, {ROME_CALIBRATION: None, ROME_NOISE: None})
    meta = read_s1_metadata(product)
    image = meta.images["VV"]
    assert image.calibration is None and image.calibration_file is None
    assert image.noise is None and image.noise_file is None
    assert meta.to_dict()["images"]["VV"]["calibration"] is False


def test_old_noise_layout_and_ragged_vectors(rome: S1Metadata, tmp_path: Path) -> None:
    real = (need_real_samples(*ROME) / ROME_NOISE).read_text()
    old = re.sub(r"<noiseAzimuthVectorList.*</noiseAzimuthVectorList>", "", real, flags=re.DOTALL)
    old = old.replace("noiseRangeVector", "noiseVector").replace("noiseRangeLut", "noiseLut")
    # make the 2nd vector shorter than the others (real products have ragged noise vectors)
    vectors = old.split("<noiseVector>")
    second = vectors[2]
    for tag in ("pixel", "noiseLut"):
        m = re.search(rf"<{tag} count=\"(\d+)\">([^<]*)</{tag}>", second)
        assert m is not None
        second = second.replace(m.group(0), f'<{tag} count="600">{" ".join(m.group(2).split()[:600])}</{tag}>')
    old = "<noiseVector>".join([*vectors[:2], second, *vectors[3:]])
    assert "noiseRange" not in old and "noiseAzimuth" not in old
    meta = read_s1_metadata(_product_copy(tmp_path, ROME, {ROME_NOISE: old.encode()}))
    noise, real_noise = meta.images["VV"].noise, rome.images["VV"].noise
    assert noise is not None and real_noise is not None
    assert noise.azimuth == ()
    assert [p.size for p in noise.range.pixels][:3] == [657, 600, 657]
    assert np.array_equal(noise.range.values[1], real_noise.range.values[1][:600])
    assert np.array_equal(noise.range.values[5], real_noise.range.values[5])


def test_dual_pol_with_missing_measurement(tmp_path: Path) -> None:
    meta = read_s1_metadata(need_real_samples(*ECC8))
    vh = meta.images["VH"]
    assert vh.measurement not in meta.location.members()
    with pytest.raises(
        CorruptProductError, match=r"lacks its VH measurement file measurement/s1b-iw-grd-vh-.*download"
    ):
        read_dn(meta, "VH", PixelWindow(0, 0, 10, 10))
    assert read_dn(meta, "VV", PixelWindow(0, 0, 10, 10)).shape == (10, 10)


# ----- errors ---------------------------------------------------------------------------------------


def test_slc_is_refused() -> None:
    with pytest.raises(MetadataError, match=r"is a SLC product; senprep processes GRD products"):
        read_s1_metadata(need_real_samples(*SLC))


def test_malformed_annotation_names_the_file(tmp_path: Path) -> None:
    real = (need_real_samples(*ROME) / ROME_ANNOTATION).read_bytes()
    product = _product_copy(tmp_path, ROME, {ROME_ANNOTATION: real[: len(real) // 3]})
    with pytest.raises(MetadataError, match=rf"{ROME_ANNOTATION}.*not well-formed XML.*download it again"):
        read_s1_metadata(product)


def test_annotation_missing_a_field_names_it(tmp_path: Path) -> None:
    text = (need_real_samples(*ROME) / ROME_ANNOTATION).read_text()
    text = re.sub(r"<numberOfLines>\d+</numberOfLines>", "", text)
    product = _product_copy(tmp_path, ROME, {ROME_ANNOTATION: text.encode()})
    with pytest.raises(MetadataError, match=r"numberOfLines.*download it again"):
        read_s1_metadata(product)


def test_malformed_calibration_vector_is_refused(tmp_path: Path) -> None:
    text = (need_real_samples(*ROME) / ROME_CALIBRATION).read_text()
    text = text.replace('<sigmaNought count="654">6.638558e+02', '<sigmaNought count="654">six', 1)
    product = _product_copy(tmp_path, ROME, {ROME_CALIBRATION: text.encode()})
    with pytest.raises(MetadataError, match=r"calibration-s1b.*sigmaNought.*not a number"):
        read_s1_metadata(product)


def test_missing_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match=r"no manifest.safe"):
        read_s1_metadata(_product_copy(tmp_path, ROME, {"manifest.safe": None}))


# ----- measurement windows -------------------------------------------------------------------------


def test_read_dn_shapes_and_clipping(rome: S1Metadata) -> None:
    inside = read_dn(rome, "VV", PixelWindow(1000, 2000, 64, 96))
    assert inside.shape == (64, 96) and inside.dtype == np.float32
    assert not inside.any()  # the real sample's measurement is blanked (all 0)
    corner = PixelWindow(16705 - 10, 26102 - 20, 50, 50)
    assert read_dn(rome, "VV", corner).shape == (10, 20)
    assert clip_window(rome, "vv", PixelWindow(-5, -7, 20, 30)) == PixelWindow(0, 0, 15, 23)
    with pytest.raises(OutsideSceneError, match="outside"):
        read_dn(rome, "VV", PixelWindow(17000, 0, 10, 10))
    with pytest.raises(KeyError, match="has no VH image"):
        read_dn(rome, "VH", PixelWindow(0, 0, 10, 10))


def _small_product(tmp_path: Path, data: np.ndarray, truncate: bool) -> Path:
    """The Rome product with a small annotated size and a small measurement TIFF holding ``data``."""
    lines, samples = data.shape
    text = (need_real_samples(*ROME) / ROME_ANNOTATION).read_text()
    text = re.sub(r"<numberOfLines>\d+<", f"<numberOfLines>{lines}<", text)
    text = re.sub(r"<numberOfSamples>\d+<", f"<numberOfSamples>{samples}<", text)
    buffer = tmp_path / "dn.tiff"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # like real GRD TIFFs: GCPs only, no transform
        with rasterio.open(
            buffer, "w", driver="GTiff", width=samples, height=lines, count=1, dtype="uint16", compress="zstd"
        ) as dst:
            dst.write(data, 1)
    tiff = buffer.read_bytes()
    if truncate:
        tiff = tiff[: len(tiff) // 2]
    return _product_copy(tmp_path, ROME, {ROME_ANNOTATION: text.encode(), ROME_MEASUREMENT: tiff})


def test_read_dn_orientation_on_a_small_tiff(tmp_path: Path) -> None:
    data = np.random.default_rng(7).integers(1, 5000, (120, 180), dtype=np.uint16)
    meta = read_s1_metadata(_small_product(tmp_path, data, truncate=False))
    dn = read_dn(meta, "VV", PixelWindow(10, 30, 40, 50))
    assert np.array_equal(dn, data[10:50, 30:80].astype(np.float32))
    assert np.array_equal(read_dn(meta, "VV", PixelWindow(100, 170, 40, 50)), data[100:, 170:])


def test_truncated_tiff_raises_corrupt_product(tmp_path: Path) -> None:
    data = np.random.default_rng(3).integers(1, 5000, (120, 180), dtype=np.uint16)
    meta = read_s1_metadata(_small_product(tmp_path, data, truncate=True))
    with pytest.raises(CorruptProductError, match=rf"{ROME_MEASUREMENT}.*truncated or damaged.*download"):
        read_dn(meta, "VV", PixelWindow(80, 0, 40, 180))


def test_tiff_of_wrong_size_raises_corrupt_product(tmp_path: Path) -> None:
    product = _product_copy(tmp_path, ROME, {})
    target = product / ROME_MEASUREMENT
    target.unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(target, "w", driver="GTiff", width=30, height=20, count=1, dtype="uint16") as dst:
            dst.write(np.ones((20, 30), dtype=np.uint16), 1)
    meta = read_s1_metadata(product)
    with pytest.raises(CorruptProductError, match=r"is 20 x 30 pixels but the annotation says 16705 x 26102"):
        read_dn(meta, "VV", PixelWindow(0, 0, 10, 10))


# ----- CLI -------------------------------------------------------------------------------------------


def test_inspect_s1_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(need_real_samples(*ROME)), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["family"] == "S1" and data["mission"] == "S1B" and data["mode"] == "IW"
    assert data["product_type"] == "GRD" and data["polarisations"] == ["VV"]
    assert (data["orbit_direction"], data["relative_orbit"], data["slice_number"]) == ("DESCENDING", 22, 9)
    assert data["ipf_version"] == "003.40" and data["start_time"].startswith("2021-12-23T05:11:22.594441")
    assert wkt.loads(data["footprint_wkt"]).contains(Point(12.4964, 41.9028))
    assert data["images"]["VV"]["lines"] == 16705 and data["images"]["VV"]["samples"] == 26102


def test_inspect_s1_text_and_slc(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(need_real_samples(*ECC8))]) == 0
    out = capsys.readouterr().out
    assert re.search(r"relative_orbit\s+168", out) and "VH" in out
    assert main(["inspect", str(need_real_samples(*SLC))]) != 0
    assert "SLC product" in capsys.readouterr().err
