"""Range-Doppler geometry of Sentinel-1 GRDs checked against real annotations.

The annotation's geolocation grid gives, for every tie point, lat/lon/height and the (line,
pixel), zero-Doppler time, slant-range time, incidence and elevation angles the ESA processor
computed: the forward model must reproduce them, the inverse must find the tie points again.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest
from pyproj import Transformer
from scipy.interpolate import BarycentricInterpolator, CubicHermiteSpline

from senprep_core.errors import MetadataError, OrbitError
from senprep_core.s1.geometry import (
    WGS84_A,
    WGS84_B,
    RadarGeometry,
    ecef_to_geodetic,
    ellipsoid_normal,
    geodetic_to_ecef,
)
from senprep_core.s1.metadata import read_s1_metadata
from senprep_core.s1.model import SPEED_OF_LIGHT, CoordinateConversion, S1Image, S1Metadata
from senprep_core.s1.orbit import Orbit
from tests.conftest import need_real_samples

pytestmark = pytest.mark.realdata

ROME = ("sarsen-testdata", "S1B_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993_5371.SAFE")
XS = ("xarray-sentinel-testdata", "S1B_IW_GRDH_1SDV_20210401T052623_20210401T052648_026269_032297_ECC8.SAFE")
CASES = [(ROME, "VV"), (XS, "VV"), (XS, "VH")]
CASE_IDS = ["rome-vv", "20210401-vv", "20210401-vh"]

_CACHE: dict[tuple[str, str], S1Metadata] = {}


def _metadata(parts: tuple[str, str]) -> S1Metadata:
    path: Path = need_real_samples(*parts)
    if parts not in _CACHE:
        _CACHE[parts] = read_s1_metadata(path)
    return _CACHE[parts]


def _image(parts: tuple[str, str], pol: str) -> S1Image:
    return _metadata(parts).image(pol)


def _metres(lat0: np.ndarray, lon0: np.ndarray, lat1: np.ndarray, lon1: np.ndarray) -> np.ndarray:
    """Distance (m) between nearby geodetic points at the same height."""
    a = np.stack(geodetic_to_ecef(lat0, lon0, 0.0), axis=-1)
    b = np.stack(geodetic_to_ecef(lat1, lon1, 0.0), axis=-1)
    return np.asarray(np.linalg.norm(a - b, axis=-1))


# ----- geodesy -----------------------------------------------------------------------------------
def test_geodetic_ecef_known_points_and_pyproj() -> None:
    x, y, z = geodetic_to_ecef(np.array([0.0, 90.0, 0.0]), np.array([0.0, 0.0, 90.0]), np.array([0.0, 0.0, 100.0]))
    np.testing.assert_allclose(x, [WGS84_A, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(y, [0.0, 0.0, WGS84_A + 100.0], atol=1e-6)
    np.testing.assert_allclose(z, [0.0, WGS84_B, 0.0], atol=1e-6)

    rng = np.random.default_rng(7)
    lat = rng.uniform(-90, 90, 20_000)
    lon = rng.uniform(-180, 180, 20_000)
    h = rng.uniform(-500.0, 900e3, 20_000)
    mine = geodetic_to_ecef(lat, lon, h)
    proj = Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True).transform(lon, lat, h)
    for a, b in zip(mine, proj, strict=True):
        assert np.abs(a - b).max() < 1e-6

    lat2, lon2, h2 = ecef_to_geodetic(*mine)
    assert np.abs(lat2 - lat).max() < 1e-11
    assert np.abs((lon2 - lon + 180.0) % 360.0 - 180.0).max() < 1e-11
    assert np.abs(h2 - h).max() < 1e-6


# ----- orbit -------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["lagrange", "hermite"])
@pytest.mark.parametrize("parts", [ROME, XS], ids=["rome", "20210401"])
def test_orbit_reproduces_its_samples(parts: tuple[str, str], method: str) -> None:
    vectors = _image(parts, "VV").orbit
    position, velocity, acceleration = Orbit(vectors, method=method).state(vectors.times)
    assert np.abs(position - vectors.positions).max() < 1e-6
    assert np.abs(velocity - vectors.velocities).max() < 1e-9
    gravity = np.linalg.norm(acceleration, axis=-1)
    assert ((gravity > 7.0) & (gravity < 9.0)).all()  # ~GM/r**2 at 700 km, plus ECEF terms


@pytest.mark.parametrize("parts", [ROME, XS], ids=["rome", "20210401"])
def test_orbit_interpolators_agree_with_independent_ones(parts: tuple[str, str]) -> None:
    vectors = _image(parts, "VV").orbit
    t = np.linspace(vectors.times[0], vectors.times[-1], 2001)
    hermite = Orbit(vectors, method="hermite").state(t)
    spline = CubicHermiteSpline(vectors.times, vectors.positions, vectors.velocities)
    assert np.abs(hermite[0] - spline(t)).max() < 1e-6
    assert np.abs(hermite[1] - spline(t, 1)).max() < 1e-9

    lagrange = Orbit(vectors).state(t)
    n = vectors.times.size
    interval = np.clip(np.searchsorted(vectors.times, t, side="right") - 1, 0, n - 2)
    first = np.clip(interval - 3, 0, n - 8)
    for start in np.unique(first):
        sel = first == start
        window = slice(start, start + 8)
        pos = BarycentricInterpolator(vectors.times[window], vectors.positions[window])
        vel = BarycentricInterpolator(vectors.times[window], vectors.velocities[window])
        assert np.abs(lagrange[0][sel] - pos(t[sel])).max() < 1e-6
        assert np.abs(lagrange[1][sel] - vel(t[sel])).max() < 1e-9
        assert np.abs(lagrange[2][sel] - vel.derivative(t[sel])).max() < 1e-9


def test_orbit_interpolation_is_smooth_and_method_independent() -> None:
    rome = _image(ROME, "VV")
    t = np.linspace(rome.first_line_time - 10, rome.last_line_time + 10, 4001)
    lagrange = Orbit(rome.orbit).state(t)
    hermite = Orbit(rome.orbit, method="hermite").state(t)
    higher = Orbit(rome.orbit, order=12).state(t)
    assert np.linalg.norm(hermite[0] - lagrange[0], axis=-1).max() < 0.01  # measured 0.3 mm
    assert np.linalg.norm(higher[0] - lagrange[0], axis=-1).max() < 1e-3
    # velocity is the derivative of position, acceleration that of velocity, also across samples
    dt = t[1] - t[0]
    np.testing.assert_allclose(np.gradient(lagrange[0], dt, axis=0)[1:-1], lagrange[1][1:-1], atol=1e-3)
    np.testing.assert_allclose(np.gradient(lagrange[1], dt, axis=0)[1:-1], lagrange[2][1:-1], atol=1e-3)

    # the 20210401 annotation orbit is a "Downlink" one: its velocities disagree with the
    # derivative of its positions by ~1.5 cm/s, and the cubic Hermite, which mixes both, moves by ~1 cm
    xs = _image(XS, "VV")
    t = np.linspace(xs.first_line_time - 10, xs.last_line_time + 10, 4001)
    lagrange = Orbit(xs.orbit).state(t)
    assert np.linalg.norm(Orbit(xs.orbit, method="hermite").state(t)[0] - lagrange[0], axis=-1).max() < 0.02
    assert np.linalg.norm(Orbit(xs.orbit, order=12).state(t)[0] - lagrange[0], axis=-1).max() < 1e-3


def test_orbit_refuses_times_outside_and_bad_vectors() -> None:
    vectors = _image(ROME, "VV").orbit
    orbit = Orbit(vectors)
    orbit.state(np.array([vectors.times[-1] + 3.0]))  # a little extrapolation is fine
    with pytest.raises(OrbitError, match="covers"):
        orbit.state(np.array([vectors.times[0], vectors.times[-1] + 60.0]))
    with pytest.raises(OrbitError):
        orbit.position(vectors.times[0] - 30.0)
    with pytest.raises(OrbitError, match="malformed"):
        Orbit(dataclasses.replace(vectors, positions=vectors.positions[:-1]))
    with pytest.raises(OrbitError, match="at least"):
        Orbit(
            dataclasses.replace(
                vectors, times=vectors.times[:1], positions=vectors.positions[:1], velocities=vectors.velocities[:1]
            )
        )
    few = dataclasses.replace(
        vectors, times=vectors.times[:4], positions=vectors.positions[:4], velocities=vectors.velocities[:4]
    )
    middle = vectors.times[1] + 4.0
    np.testing.assert_allclose(Orbit(few).position(middle), Orbit(vectors).position(middle), atol=0.01)
    bad = vectors.positions.copy()
    bad[2, 1] = np.nan
    with pytest.raises(OrbitError, match="non-finite"):
        Orbit(dataclasses.replace(vectors, positions=bad))


# ----- forward geocoding -------------------------------------------------------------------------
@pytest.mark.parametrize(("parts", "pol"), CASES, ids=CASE_IDS)
def test_forward_geocoding_reproduces_tie_points(parts: tuple[str, str], pol: str) -> None:
    image = _image(parts, pol)
    grid = image.geolocation
    geometry = RadarGeometry(image)
    solution = geometry.solve(grid.latitude, grid.longitude, grid.height)
    d_line = np.abs(solution.line - grid.line)
    d_pixel = np.abs(solution.pixel - grid.pixel)
    # brief: median < 0.1 and max < 0.5; measured: line median 0.0006, max 0.0010 (the 1 µs rounding
    # of the annotated times is 0.0007 line), pixel max 2e-6
    assert np.median(d_line) < 0.002 and d_line.max() < 0.005
    assert np.median(d_pixel) < 1e-4 and d_pixel.max() < 1e-3
    assert np.abs(solution.azimuth_time - grid.azimuth_time).max() < 2e-6  # tie times have 1 µs steps
    tau = 2.0 * solution.slant_range / SPEED_OF_LIGHT
    assert np.abs(tau - grid.slant_range_time).max() < 1e-12


def test_mid_swath_time_from_tie_points_and_fallback(caplog: pytest.LogCaptureFixture) -> None:
    image = _image(ROME, "VV")
    geometry = RadarGeometry(image)
    grid = image.geolocation
    # the processor's reference: 5.8675 ms, 38 µs beyond the middle pixel's slant-range time
    assert geometry.tau_mid == pytest.approx(5.8675e-3, abs=0.2e-6)
    per_point = grid.slant_range_time + 2 * (geometry.line_to_time(grid.line) - grid.azimuth_time)
    assert np.abs(per_point - geometry.tau_mid).max() < 3e-6

    # tie points with one time per row (as some readers give them) do not define it: fallback
    row_times = geometry.line_to_time(grid.line)
    degraded = dataclasses.replace(image, geolocation=dataclasses.replace(grid, azimuth_time=row_times))
    with caplog.at_level(logging.WARNING, logger="senprep_core.s1.geometry"):
        fallback = RadarGeometry(degraded)
    assert "mid-swath" in caplog.text
    assert abs(fallback.tau_mid - geometry.tau_mid) > 10e-6
    line, _ = fallback.radar_coordinates(grid.latitude, grid.longitude, grid.height)
    assert np.abs(line - grid.line).max() < 0.05

    # without the bistatic correction lines are zero-Doppler times
    plain = RadarGeometry(dataclasses.replace(image, bistatic_delay_applied=False))
    solution = plain.solve(grid.latitude, grid.longitude, grid.height)
    np.testing.assert_allclose(solution.line, plain.time_to_line(solution.azimuth_time), atol=1e-9)
    assert np.abs(solution.line - grid.line).max() > 0.1  # that is what the correction is worth


def test_nearest_conversion_record_is_used() -> None:
    image = _image(ROME, "VV")
    geometry = RadarGeometry(image)
    conv = image.conversion
    k = 10
    half = (conv.azimuth_time[k + 1] - conv.azimuth_time[k]) / 2
    ground = np.array([50_000.0, 50_000.0])
    times = np.array([conv.azimuth_time[k] + half - 1e-3, conv.azimuth_time[k] + half + 1e-3])
    slant = geometry.ground_to_slant_range(ground, times)
    expected = [np.polyval(conv.grsr[j][::-1], 50_000.0 - conv.gr0[j]) for j in (k, k + 1)]
    np.testing.assert_allclose(slant, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(geometry.slant_to_ground_range(slant, times), ground, atol=1e-6)


# ----- inverse geocoding -------------------------------------------------------------------------
@pytest.mark.parametrize(("parts", "pol"), CASES, ids=CASE_IDS)
def test_geolocate_finds_tie_points(parts: tuple[str, str], pol: str) -> None:
    image = _image(parts, pol)
    grid = image.geolocation
    geometry = RadarGeometry(image)
    lat, lon = geometry.geolocate(grid.line, grid.pixel, grid.height)
    error = _metres(lat, lon, grid.latitude, grid.longitude)
    assert error.max() < 0.05  # measured 0.010 m (the 1 µs rounding of tie times is 0.7 cm along track)
    line, pixel = geometry.radar_coordinates(lat, lon, grid.height)
    assert np.abs(line - grid.line).max() < 1e-3
    assert np.abs(pixel - grid.pixel).max() < 1e-3


@pytest.mark.parametrize("parts", [ROME, XS], ids=["rome", "20210401"])
def test_round_trip_everywhere_in_the_image(parts: tuple[str, str]) -> None:
    image = _image(parts, "VV")
    geometry = RadarGeometry(image)
    rng = np.random.default_rng(3)
    line = rng.uniform(-200, image.lines + 200, 20_000)
    pixel = rng.uniform(-200, image.samples + 200, 20_000)
    h = rng.uniform(-100.0, 4800.0, 20_000)
    lat, lon = geometry.geolocate(line, pixel, h)
    assert np.isfinite(lat).all() and np.isfinite(lon).all()
    line2, pixel2 = geometry.radar_coordinates(lat, lon, h)
    assert np.abs(line2 - line).max() < 1e-3  # measured 1e-6
    assert np.abs(pixel2 - pixel).max() < 1e-3
    # at one slant range a higher point lies farther from the satellite's ground track (layover):
    # farther west for a descending, right-looking pass
    assert image.pass_direction == "DESCENDING"
    _, lon0 = geometry.geolocate(line, pixel, 0.0)
    assert ((lon - lon0)[h > 100] < 0).all() and ((lon - lon0)[h < -10] > 0).all()


@pytest.mark.parametrize(("parts", "pol"), CASES, ids=CASE_IDS)
def test_look_vectors_match_annotated_angles(parts: tuple[str, str], pol: str) -> None:
    image = _image(parts, pol)
    grid = image.geolocation
    geometry = RadarGeometry(image)
    geocentric = geometry.incidence_angle(grid.latitude, grid.longitude, grid.height, reference="geocentric")
    assert np.abs(geocentric - grid.incidence_angle).max() < 1e-6  # measured 4e-11 degree
    assert (
        np.abs(geometry.elevation_angle(grid.latitude, grid.longitude, grid.height) - grid.elevation_angle).max() < 1e-6
    )
    ellipsoid = geometry.incidence_angle(grid.latitude, grid.longitude, grid.height)
    assert 0.02 < np.abs(ellipsoid - grid.incidence_angle).max() < 0.05

    xyz = np.stack(geodetic_to_ecef(grid.latitude, grid.longitude, grid.height), axis=-1)
    look = geometry.look_vectors(xyz)
    np.testing.assert_allclose(np.linalg.norm(look, axis=-1), 1.0, atol=1e-12)
    satellite = geometry.orbit.position(geometry.zero_doppler_time(xyz))
    np.testing.assert_allclose(xyz + look * geometry.solve_ecef(xyz).slant_range[:, None], satellite, atol=1e-4)
    # right-looking: the target is on the right of the velocity
    velocity = geometry.orbit.velocity(geometry.zero_doppler_time(xyz))
    right = np.cross(velocity, satellite)
    assert (np.einsum("ij,ij->i", -look, right) > 0).all()
    assert (np.einsum("ij,ij->i", look, ellipsoid_normal(grid.latitude, grid.longitude)) > 0.6).all()


# ----- shapes, NaN, errors -----------------------------------------------------------------------
def test_shapes_scalars_and_nan() -> None:
    image = _image(ROME, "VV")
    geometry = RadarGeometry(image)
    grid = image.geolocation
    lat = grid.latitude.reshape(10, 21)
    lon = grid.longitude.reshape(10, 21)
    line, pixel = geometry.radar_coordinates(lat, lon, 0.0)
    assert line.shape == pixel.shape == (10, 21)
    solution = geometry.solve(lat, lon, 0.0)
    assert solution.satellite.shape == solution.look.shape == (10, 21, 3)
    one_line, one_pixel = geometry.radar_coordinates(float(lat[3, 4]), float(lon[3, 4]), 0.0)
    assert np.ndim(one_line) == 0 and one_line == pytest.approx(line[3, 4], abs=1e-9)
    assert one_pixel == pytest.approx(pixel[3, 4], abs=1e-9)
    one_lat, one_lon = geometry.geolocate(float(line[3, 4]), float(pixel[3, 4]), 0.0)
    assert np.ndim(one_lat) == 0 and one_lat == pytest.approx(lat[3, 4], abs=1e-9)
    assert one_lon == pytest.approx(lon[3, 4], abs=1e-9)
    assert geometry.geolocate_ecef(line, pixel, 0.0).shape == (10, 21, 3)

    lat_nan = np.array([np.nan, grid.latitude[0], grid.latitude[0] + 25.0])
    lon_nan = np.array([grid.longitude[0], grid.longitude[0], grid.longitude[0]])
    line, pixel = geometry.radar_coordinates(lat_nan, lon_nan, np.array([0.0, np.nan, 0.0]))
    assert np.isnan(line).all() and np.isnan(pixel).all()  # NaN input, NaN height, outside the orbit
    lat2, lon2 = geometry.geolocate(np.array([np.nan, 0.0, 1e6]), np.array([0.0, np.nan, 0.0]), 0.0)
    assert np.isnan(lat2).all() and np.isnan(lon2).all()


def test_radar_geometry_refuses_unusable_metadata() -> None:
    image = _image(ROME, "VV")
    empty = CoordinateConversion(
        azimuth_time=np.zeros(0),
        slant_range_time=np.zeros(0),
        sr0=np.zeros(0),
        srgr=np.zeros((0, 9)),
        gr0=np.zeros(0),
        grsr=np.zeros((0, 9)),
    )
    with pytest.raises(MetadataError, match="coordinateConversionList"):
        RadarGeometry(dataclasses.replace(image, conversion=empty))
    with pytest.raises(MetadataError, match="positive"):
        RadarGeometry(dataclasses.replace(image, azimuth_time_interval=0.0))
    # an orbit that ends before the image starts
    vectors = image.orbit
    early = vectors.times < image.first_line_time - 30.0
    short = dataclasses.replace(
        vectors, times=vectors.times[early], positions=vectors.positions[early], velocities=vectors.velocities[early]
    )
    with pytest.raises(OrbitError):
        RadarGeometry(image, Orbit(short))
