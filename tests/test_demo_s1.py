"""Synthetic Sentinel-1 GRD products: format (xarray-sentinel, senprep reader) and closed-loop truth.

The simulator has its own orbit/range-Doppler solver; these tests check it against the chain's
independent :mod:`senprep_core.s1.geometry` and :mod:`senprep_core.s1.radiometry`.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray_sentinel
from pyproj import Geod, Transformer

from senprep_core.demo.catalog import demo_s1_specs
from senprep_core.demo.s1 import make_s1_product, s1_ground_truth
from senprep_core.demo.s1_image import PixelLocator, solve_height, srgr_residual
from senprep_core.demo.s1_spec import S1DemoSpec
from senprep_core.errors import ConfigError
from senprep_core.geo.grid import PixelWindow, TargetGrid
from senprep_core.s1.geometry import RadarGeometry
from senprep_core.s1.measurement import read_dn
from senprep_core.s1.metadata import read_s1_metadata
from senprep_core.s1.model import S1Image
from senprep_core.s1.radiometry import calibrate, interpolate_lut, noise_power, remove_thermal_noise

GROUPS = ("orbit", "gcp", "coordinate_conversion", "calibration", "noise_range", "noise_azimuth")


def _smooth_sigma0(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """A bright, smooth sigma0 (DN ~ 1500-2000, so uint16 rounding stays below 1e-3 of DN**2)."""
    return 30.0 + 8.0 * np.sin(np.radians(lat) * 6000.0) * np.cos(np.radians(lon) * 4000.0)


def _dim_sigma0(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """A realistic smooth sigma0 around -13 dB."""
    return 0.05 * (1.0 + 0.5 * np.sin(np.radians(lat) * 5000.0 + np.radians(lon) * 3000.0))


BASE = S1DemoSpec(
    start_time=datetime(2022, 7, 3, 17, 41, 5, 250000),
    centre_lon=-4.25,
    centre_lat=55.86,
    lines=400,
    samples=320,
    incidence_near=36.0,
    seed=3,
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("s1-demo")


@pytest.fixture(scope="module")
def demo_product(folder: Path) -> Path:
    """The default demo product (ascending, hilly, speckled, noisy); timed once."""
    spec = demo_s1_specs()[0]
    t0 = time.perf_counter()
    path = make_s1_product(spec, folder)
    print(
        f"default demo product {spec.lines}x{spec.samples}x{len(spec.polarisations)}: {time.perf_counter() - t0:.2f} s"
    )
    return path


@pytest.fixture(scope="module")
def clean_hilly(folder: Path) -> tuple[S1DemoSpec, Path]:
    """No speckle, no noise, a bright smooth sigma0 on the hilly DEM, descending."""
    spec = replace(BASE, looks=math.inf, nesz_db=None, sigma0=_smooth_sigma0, dem="hilly", pass_direction="DESCENDING")
    return spec, make_s1_product(spec, folder)


def _locate_on_dem(geometry: RadarGeometry, dem, line: np.ndarray, pixel: np.ndarray):  # type: ignore[no-untyped-def]
    """Chain geolocation of (line, pixel) on a DEM (secant iteration on the height)."""
    return solve_height(lambda h: geometry.geolocate(line, pixel, h), dem, np.zeros(line.shape), tolerance=1e-5)


# ----------------------------------------------------------------------------- format


def test_default_demo_layout_and_readers(demo_product: Path) -> None:
    spec = demo_s1_specs()[0]
    assert demo_product.name == f"{spec.product_id}.SAFE"
    parts = spec.product_id.split("_")
    assert parts[:4] == ["S1A", "IW", "GRDH", "1SDV"] and len(parts[6]) == 6 and len(parts[8]) == 4
    stem = spec.file_stem("VV")
    for member in (
        f"measurement/{stem}.tiff",
        f"annotation/{stem}.xml",
        f"annotation/calibration/calibration-{stem}.xml",
        f"annotation/calibration/noise-{stem}.xml",
        "manifest.safe",
    ):
        assert (demo_product / member).is_file(), member
    assert stem.endswith("-001") and spec.file_stem("VH").endswith("-002")
    for pol in ("VV", "VH"):
        for group in GROUPS:
            ds = xarray_sentinel.open_sentinel1_dataset(demo_product, group=f"IW/{pol}/{group}")
            assert ds.sizes, (pol, group)
        image = xarray_sentinel.open_sentinel1_dataset(demo_product, group=f"IW/{pol}")
        assert image.measurement.shape == (spec.lines, spec.samples)
    gcp = xarray_sentinel.open_sentinel1_dataset(demo_product, group="IW/VV/gcp")
    assert dict(gcp.sizes) == {"azimuth_time": 10, "slant_range_time": 21}
    meta = read_s1_metadata(demo_product)
    assert (meta.mission, meta.mode, meta.product_type, meta.orbit_direction) == ("S1A", "IW", "GRD", "ASCENDING")
    assert meta.polarisations == ("VV", "VH") and meta.ipf_version == "003.71"
    assert (meta.absolute_orbit, meta.relative_orbit) == (spec.absolute_orbit, spec.relative_orbit)
    im = meta.image("VV")
    assert (im.lines, im.samples, im.bistatic_delay_applied) == (spec.lines, spec.samples, True)
    assert im.noise is not None and len(im.noise.azimuth) == 1
    # the measurement carries the tie points as GCPs, like real GRD TIFFs
    with rasterio.open(demo_product / f"measurement/{stem}.tiff") as src:
        gcps, crs = src.gcps
        assert src.dtypes == ("uint16",) and len(gcps) == 210 and crs.to_epsg() == 4326


def test_zip_product_reads_like_the_folder(folder: Path) -> None:
    spec = replace(BASE, lines=120, samples=100, polarisations=("VV",), as_zip=True)
    path = make_s1_product(spec, folder)
    assert path.suffix == ".zip" and "_1SSV_" in path.name
    meta = read_s1_metadata(path)
    assert meta.polarisations == ("VV",)
    dn = read_dn(meta, "VV", PixelWindow(0, 0, 120, 100))
    assert dn.shape == (120, 100) and float(dn.max()) > 0


def test_geolocation_grid_matches_chain_geometry(demo_product: Path, clean_hilly: tuple[S1DemoSpec, Path]) -> None:
    """Tie points written by the simulator's own solver, re-projected by the chain: < 0.05 px
    (ascending and descending, both on the hilly DEM)."""
    for spec, product in ((demo_s1_specs()[0], demo_product), clean_hilly):
        meta = read_s1_metadata(product)
        dem = s1_ground_truth(spec).dem
        for pol in meta.polarisations:
            im = meta.image(pol)
            grid = im.geolocation
            line, pixel = RadarGeometry(im).radar_coordinates(grid.latitude, grid.longitude, grid.height)
            err_l = np.abs(line - grid.line).max()
            err_p = np.abs(pixel - grid.pixel).max()
            print(f"tie points {spec.pass_direction} {pol}: max line error {err_l:.2e}, max pixel error {err_p:.2e}")
            assert err_l < 0.05 and err_p < 0.05
            assert np.allclose(grid.height, dem(grid.latitude, grid.longitude), atol=1e-3)  # heights are the DEM's
            assert np.ptp(grid.height) > 50  # on real relief


def test_ground_range_is_ellipsoid_arc_length(clean_hilly: tuple[S1DemoSpec, Path]) -> None:
    """Chain geolocation (its own Newton + the annotated polynomials) at h = 0 along a line: the
    geodesic distance from pixel 0 grows by the 10 m spacing (WGS84 geodesics from PROJ)."""
    spec, path = clean_hilly
    im = read_s1_metadata(path).image("VV")
    geometry = RadarGeometry(im)
    geod = Geod(ellps="WGS84")
    pixels = np.arange(0, spec.samples, 7, dtype=np.float64)
    worst = 0.0
    for line in (0.0, 199.0, 399.0):
        lat, lon = geometry.geolocate(np.full(pixels.shape, line), pixels, np.zeros(pixels.shape))
        _, _, dist = geod.inv(np.full(pixels.shape, lon[0]), np.full(pixels.shape, lat[0]), lon, lat)
        worst = max(worst, float(np.max(np.abs(np.asarray(dist) / spec.pixel_spacing - pixels))))
    print(f"ground range vs ellipsoid geodesic: max {worst:.2e} px")
    assert worst < 0.05
    g = spec.geometry
    residuals = [srgr_residual(g, k) for k in range(g.record_times.size)]
    assert max(max(r) for r in residuals) < 1e-3  # metres: the degree-5 fits are exact for the purpose


# ----------------------------------------------------------------------------- closed loop


def _chain_sigma0(meta, pol: str) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    im: S1Image = meta.image(pol)
    window = PixelWindow(0, 0, im.lines, im.samples)
    dn = read_dn(meta, pol, window)
    power = remove_thermal_noise(dn, im.noise, window, negative="nodata")
    return calibrate(power, im.calibration, window, "sigma0"), dn


def test_clean_product_gives_sigma0_truth_on_hilly_terrain(clean_hilly: tuple[S1DemoSpec, Path]) -> None:
    spec, path = clean_hilly
    truth = s1_ground_truth(spec)
    meta = read_s1_metadata(path)
    rng = np.random.default_rng(0)
    line = rng.uniform(0, spec.lines - 1, 3000).round()
    pixel = rng.uniform(10, spec.samples - 3, 3000).round()  # away from the no-data borders
    for pol in spec.polarisations:
        sigma0, dn = _chain_sigma0(meta, pol)
        lat, lon, _ = _locate_on_dem(RadarGeometry(meta.image(pol)), truth.dem, line, pixel)
        expected = truth.sigma0(pol, lat, lon)
        got = sigma0[line.astype(int), pixel.astype(int)].astype(np.float64)
        rel = np.abs(got / expected - 1.0)
        print(f"clean hilly {pol}: max relative sigma0 error {rel.max():.2e} (median {np.median(rel):.1e})")
        assert rel.max() < 1e-3
        assert (dn[:, :3] == 0).all() and (dn[:, -2:] == 0).all() and (dn[:, 8:-2] > 0).all()


def test_noisy_product_is_truth_plus_annotated_noise_to_the_dn_rounding(folder: Path) -> None:
    """No speckle, realistic sigma0 and noise: DN = round(sqrt(sigma0 LUT**2 + noise)) exactly,
    with LUT and noise as the chain interpolates them and positions from the chain's geometry."""
    spec = replace(BASE, looks=math.inf, sigma0=_dim_sigma0, dem=120.0, nesz_db=-22.0, seed=9)
    meta = read_s1_metadata(make_s1_product(spec, folder))
    im = meta.image("VH")
    window = PixelWindow(0, 0, im.lines, im.samples)
    dn = read_dn(meta, "VH", window).astype(np.float64)
    assert im.calibration is not None and im.noise is not None
    lut = interpolate_lut(im.calibration.luts["sigma0"], window).astype(np.float64)
    noise = noise_power(im.noise, window).astype(np.float64)
    rows, cols = np.meshgrid(np.arange(0, im.lines, 3.0), np.arange(8, im.samples - 2, 3.0), indexing="ij")
    lat, lon = RadarGeometry(im).geolocate(rows, cols, np.full(rows.shape, 120.0))
    r, c = rows.astype(int), cols.astype(int)
    predicted = np.sqrt(_dim_sigma0(lat, lon) * lut[r, c] ** 2 + noise[r, c])
    err = np.abs(dn[r, c] - predicted)
    print(
        f"noisy VH: max |DN - model| {err.max():.4f} DN (rounding bound 0.5); "
        f"median NESZ {np.median(noise / lut**2):.4f}"
    )
    assert err.max() <= 0.5 + 1e-3
    nesz = noise / lut**2
    assert 10 ** (-22.0 / 10) * 0.9 < nesz.min() < 10 ** (-22.0 / 10) * 1.1  # NESZ profile minimum, +-6 % scalloping


def test_speckle_statistics_and_noise_removal(demo_product: Path) -> None:
    """Default scene (speckle ENL 4.4, noise floor -24 dB): on grassland the noise-removed sigma0
    keeps its mean and (signal + noise) / truth has the spec's ENL; the lake, under the noise
    floor, comes back after noise subtraction (mean of unclipped values) and is twice too bright
    without it."""
    spec = demo_s1_specs()[0]
    truth = s1_ground_truth(spec)
    meta = read_s1_metadata(demo_product)
    im = meta.image("VV")
    assert im.noise is not None and im.calibration is not None
    window = PixelWindow(0, 0, im.lines, im.samples)
    lut2 = interpolate_lut(im.calibration.luts["sigma0"], window).astype(np.float64) ** 2
    raw = read_dn(meta, "VV", window).astype(np.float64) ** 2 / lut2  # no noise removal
    nesz = noise_power(im.noise, window) / lut2
    rows, cols = np.meshgrid(np.arange(0, im.lines, 2.0), np.arange(10, im.samples - 2, 2.0), indexing="ij")
    lat, lon, _ = _locate_on_dem(RadarGeometry(im), truth.dem, rows, cols)
    expected = truth.sigma0("VV", lat, lon)
    r, c = rows.astype(int), cols.astype(int)
    grass = (expected == 0.05) & (c > 12)
    removed = (raw - nesz)[r, c][grass]
    speckle = (raw / (0.05 + nesz))[r, c][grass]
    enl = speckle.mean() ** 2 / speckle.var()
    print(f"grass: {removed.size} px, noise-removed mean {removed.mean():.5f} (truth 0.05), ENL {enl:.2f} (spec 4.4)")
    assert abs(removed.mean() / 0.05 - 1) < 0.01 and abs(enl - spec.looks) < 0.2
    lake = expected == 0.003
    removed_lake = (raw - nesz)[r, c][lake]
    raw_lake = raw[r, c][lake]
    print(f"lake: {removed_lake.size} px, noise-removed mean {removed_lake.mean():.5f}, raw {raw_lake.mean():.5f}")
    assert removed_lake.size > 3000 and abs(removed_lake.mean() / 0.003 - 1) < 0.05
    assert raw_lake.mean() > 0.006
    # the chain's own noise removal + calibration agree with the above where the power stays positive
    chain, _ = _chain_sigma0(meta, "VV")
    ok = np.isfinite(chain)
    assert np.allclose(chain[ok], (raw - nesz)[ok], rtol=1e-4, atol=1e-6)


def test_point_targets_appear_where_the_chain_geometry_puts_them(folder: Path) -> None:
    spec = replace(BASE, lines=900, samples=700, looks=math.inf, nesz_db=None, dem="hilly", seed=4)
    truth = s1_ground_truth(spec)
    meta = read_s1_metadata(make_s1_product(spec, folder))
    geometry = RadarGeometry(meta.image("VV"))
    sigma0, _ = _chain_sigma0(meta, "VV")
    found = 0
    for lon, lat in truth.point_targets:
        h = truth.dem(np.array(lat), np.array(lon))
        line, pixel = (float(v) for v in geometry.radar_coordinates(lat, lon, h))
        if not (5 < line < spec.lines - 6 and 12 < pixel < spec.samples - 7):
            continue
        r0, c0 = round(line), round(pixel)
        patch = sigma0[r0 - 4 : r0 + 5, c0 - 4 : c0 + 5].astype(np.float64)
        weights = np.clip(patch - np.median(patch), 0, None)
        rr, cc = np.mgrid[r0 - 4 : r0 + 5, c0 - 4 : c0 + 5]
        cl, cp = (weights * rr).sum() / weights.sum(), (weights * cc).sum() / weights.sum()
        print(f"point target: centroid - geometry = {cl - line:+.3f} lines, {cp - pixel:+.3f} px")
        assert abs(cl - line) < 0.05 and abs(cp - pixel) < 0.05
        found += 1
    assert found >= 2


def test_pixel_locator_matches_exact_geolocation_on_hills() -> None:
    spec = replace(BASE, dem="hilly", lines=600, samples=500)
    g = spec.geometry
    truth = s1_ground_truth(spec)
    locator = PixelLocator.build(g, truth.dem)
    lat, lon, h = locator.locate(100, 160)
    pixels = np.arange(0, spec.samples, 13, dtype=np.float64)
    line = np.full(pixels.shape, 137.0)
    elat, elon, eh = g.geolocate_on_dem(line, pixels, truth.dem)
    lat_err_m = np.abs(lat[37, ::13] - elat).max() * 111_000
    lon_err_m = np.abs(lon[37, ::13] - elon).max() * 111_000 * math.cos(math.radians(55.9))
    print(f"pixel locator vs exact: {lat_err_m * 1000:.2f} mm north, {lon_err_m * 1000:.2f} mm east")
    assert lat_err_m < 0.01 and lon_err_m < 0.01 and np.abs(h[37, ::13] - eh).max() < 0.01


# ----------------------------------------------------------------------------- spec, cache, truth


def test_cache_determinism_and_spec_identity(folder: Path, tmp_path: Path) -> None:
    spec = replace(BASE, lines=64, samples=48, seed=11)
    first = make_s1_product(spec, folder)
    stamp = (first / "manifest.safe").stat().st_mtime_ns
    assert make_s1_product(spec, folder) == first
    assert (first / "manifest.safe").stat().st_mtime_ns == stamp  # returned from the cache, not rewritten
    again = make_s1_product(spec, tmp_path)

    def digest(root: Path) -> dict[str, str]:
        return {
            p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    assert digest(first) == digest(again)
    other = replace(spec, seed=12)
    assert other.product_id != spec.product_id  # the name carries the spec digest
    assert replace(spec, sigma0=_dim_sigma0).digest != replace(spec, sigma0=_smooth_sigma0).digest


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mission", "S2A"),
        ("pass_direction", "SIDEWAYS"),
        ("polarisations", ("VH", "VV", "HH")),
        ("incidence_near", 60.0),
        ("looks", 0.5),
        ("ipf_version", "new"),
        ("dem", "no/such/dem.tif"),
    ],
)
def test_bad_spec_values_raise_config_error(field: str, value: object) -> None:
    with pytest.raises(ConfigError) as info:
        replace(BASE, **{field: value})
    assert field.split("_")[0] in str(info.value)


def test_old_ipf_writes_range_only_noise(folder: Path) -> None:
    spec = replace(BASE, lines=80, samples=64, ipf_version="002.84")
    meta = read_s1_metadata(make_s1_product(spec, folder))
    noise = meta.image("VV").noise
    assert noise is not None and noise.azimuth == () and meta.ipf_number == pytest.approx(2.84)
    xml = next((make_s1_product(spec, folder) / "annotation/calibration").glob("noise-*vv*.xml")).read_text()
    assert "<noiseVectorList" in xml and "noiseAzimuthVector" not in xml


def test_demo_specs_cover_the_roi_and_share_one_world(tmp_path: Path) -> None:
    from shapely.geometry import Polygon, shape

    from senprep_core.demo.catalog import DEMO_DATES, DEMO_EPSG, DEMO_ROI_GEOJSON
    from senprep_core.s1.dem import load_dem, parse_dem_source

    specs = demo_s1_specs()
    assert {s.pass_direction for s in specs} == {"ASCENDING", "DESCENDING"}
    start, stop = (datetime.strptime(d, "%Y%m%d") for d in DEMO_DATES)
    roi = shape(DEMO_ROI_GEOJSON)
    truths = [s1_ground_truth(s) for s in specs]
    for spec, truth in zip(specs, truths, strict=True):
        assert start <= spec.start_time <= stop
        assert Polygon(truth.footprint).buffer(-0.01).contains(roi)
    lat, lon = np.array([55.85, 55.87]), np.array([-4.26, -4.24])
    assert np.array_equal(truths[0].dem(lat, lon), truths[1].dem(lat, lon))
    assert np.array_equal(truths[0].sigma0("VH", lat, lon), truths[1].sigma0("VH", lat, lon))
    assert truths[0].point_targets == truths[1].point_targets
    # the DEM written for the chain holds the truth's ellipsoidal heights, and the chain's loader sees them
    path = truths[0].write_dem(tmp_path / "dem.tif")
    with rasterio.open(path) as src:
        heights = src.read(1)
        lon_c, lat_c = src.xy(200, 300)
        assert src.crs.to_epsg() == 4979 and heights.max() > 300
    assert heights[200, 300] == pytest.approx(float(truths[0].dem(np.array(lat_c), np.array(lon_c))), abs=1e-3)
    grid = TargetGrid(DEMO_EPSG, 30.0, 421020.0, 6191620.0, 84, 84)
    on_grid = load_dem(parse_dem_source(str(path)), grid, margin_px=0)
    assert on_grid.geoid == "none"
    x, y = grid.pixel_centres()
    glon, glat = Transformer.from_crs(DEMO_EPSG, 4326, always_xy=True).transform(*np.meshgrid(x, y))
    diff = np.abs(on_grid.heights - truths[0].dem(np.asarray(glat), np.asarray(glon)))
    print(f"chain DEM loader vs truth: max {diff.max():.3f} m")
    assert diff.max() < 0.5
