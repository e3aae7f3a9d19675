"""Image geometry of a synthetic Sentinel-1 GRD: timing, ground-range polynomials, geolocation.

:func:`build_geometry` places a small GRD image (a sub-swath-size cut) on a designed orbit so
that the scene centre is seen near the middle of the image with the requested near-range
incidence. The conventions are those of ESA GRD annotations (and of the chain's
:mod:`senprep_core.s1.geometry`):

- line ``l`` holds azimuth time ``t_line = first_line_time + l * azimuth_time_interval``; the
  bistatic delay is "applied": a point with zero-Doppler time ``t_zd`` and two-way slant-range
  time ``tau`` lies on ``t_line = t_zd - (tau - tau_mid) / 2``, ``tau_mid`` being the slant-range
  time of the middle pixel of the middle line;
- pixel ``p`` is at ground range ``p * range_spacing``, measured along the WGS84 ellipsoid
  (h = 0) in the zero-Doppler plane from the near-range point of the record's azimuth time;
  ``coordinateConversion`` records (every second) hold that relation as polynomials of degree 5
  (``srgr``: ground = f(slant - sr0); ``grsr``: slant = g(ground - gr0), gr0 = 0), and the record
  nearest to the line time is used.

:class:`ImageGeometry` evaluates these conventions with the simulator's own solver
(:mod:`senprep_core.demo.s1_orbit`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from senprep_core.demo.s1_orbit import (
    CircularOrbit,
    design_orbit,
    geodetic_to_ecef,
    ground_point,
    incidence_and_elevation,
    zero_doppler_time,
)
from senprep_core.demo.s1_scene import Field
from senprep_core.geo.antimeridian import unwrap_near

#: h -> (lat, lon) of each point at height h
Locate = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]

SPEED_OF_LIGHT = 299_792_458.0
SRGR_DEGREE = 5
RECORD_INTERVAL = 1.0  # seconds between coordinate-conversion records


@dataclass(frozen=True)
class ImageGeometry:
    """Timing and range geometry of one synthetic GRD image (times in seconds since the first line)."""

    orbit: CircularOrbit
    lines: int
    samples: int
    azimuth_time_interval: float
    range_spacing: float
    tau0: float  # two-way slant-range time of pixel 0
    tau_mid: float  # two-way mid-swath slant-range time (bistatic reference)
    record_times: np.ndarray  # (k,) zero-Doppler times of the conversion records
    srgr: np.ndarray  # (k, SRGR_DEGREE + 1) ground = srgr(slant - sr0)
    grsr: np.ndarray  # (k, SRGR_DEGREE + 1) slant = grsr(ground)

    @property
    def sr0(self) -> float:
        """One-way slant range of pixel 0 (m)."""
        return self.tau0 * SPEED_OF_LIGHT / 2.0

    @property
    def last_line_time(self) -> float:
        return (self.lines - 1) * self.azimuth_time_interval

    def record_index(self, t_line: np.ndarray) -> np.ndarray:
        """The conversion record nearest in azimuth time to each line time."""
        edges = (self.record_times[1:] + self.record_times[:-1]) / 2.0
        return np.searchsorted(edges, np.asarray(t_line, dtype=np.float64))

    def ground_to_slant(self, ground: np.ndarray, t_line: np.ndarray) -> np.ndarray:
        """One-way slant range (m) of ground ranges (m) on lines at ``t_line``."""
        ground, t_line = np.broadcast_arrays(np.asarray(ground, np.float64), np.asarray(t_line, np.float64))
        k = self.record_index(t_line)
        return _horner(self.grsr[k], ground)

    def slant_to_ground(self, slant: np.ndarray, t_line: np.ndarray) -> np.ndarray:
        """Ground range (m) of one-way slant ranges (m) on lines at ``t_line``."""
        slant, t_line = np.broadcast_arrays(np.asarray(slant, np.float64), np.asarray(t_line, np.float64))
        k = self.record_index(t_line)
        return _horner(self.srgr[k], slant - self.sr0)

    def range_and_time(self, line: np.ndarray, pixel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One-way slant range, two-way slant-range time and zero-Doppler time of (line, pixel)."""
        line, pixel = np.broadcast_arrays(np.asarray(line, np.float64), np.asarray(pixel, np.float64))
        t_line = line * self.azimuth_time_interval
        slant = self.ground_to_slant(pixel * self.range_spacing, t_line)
        tau = 2.0 * slant / SPEED_OF_LIGHT
        return slant, tau, t_line + (tau - self.tau_mid) / 2.0

    def geolocate(self, line: np.ndarray, pixel: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Latitude, longitude (degrees) of the point at ellipsoidal height ``h`` seen at (line, pixel)."""
        slant, _, t_zd = self.range_and_time(line, pixel)
        pos, vel = self.orbit.state(t_zd)
        return ground_point(pos, vel, slant, h)

    def radar_coordinates(self, lat: np.ndarray, lon: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fractional (line, pixel) of geodetic points (the forward model; exact inverse of :meth:`geolocate`)."""
        xyz = geodetic_to_ecef(lat, lon, h)
        t_zd = zero_doppler_time(self.orbit, xyz, self.last_line_time / 2.0)
        pos, _ = self.orbit.state(t_zd)
        slant = np.linalg.norm(xyz - pos, axis=-1)
        t_line = t_zd - (2.0 * slant / SPEED_OF_LIGHT - self.tau_mid) / 2.0
        ground = self.slant_to_ground(slant, t_line)
        return t_line / self.azimuth_time_interval, ground / self.range_spacing

    def geolocate_on_dem(
        self, line: np.ndarray, pixel: np.ndarray, dem: Field, iterations: int = 12
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lat, lon, h) of the terrain point seen at (line, pixel): secant iteration on h = dem(lat, lon).

        Exact solution (no interpolation); for a few thousand points such as tie points.
        """
        line, pixel = np.broadcast_arrays(np.asarray(line, np.float64), np.asarray(pixel, np.float64))
        slant, _, t_zd = self.range_and_time(line, pixel)
        pos, vel = self.orbit.state(t_zd)

        def locate(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return ground_point(pos, vel, slant, h)

        return solve_height(locate, dem, np.zeros(line.shape), iterations)


def solve_height(
    locate: Locate, dem: Field, h_start: np.ndarray, iterations: int = 12, tolerance: float = 1e-4
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Solve ``h = dem(locate(h))`` per point by the secant method; returns (lat, lon, h).

    ``locate(h) -> (lat, lon)`` is the geolocation at height ``h`` of each point. The first step is a
    fixed-point step; the secant steps are guarded against flat denominators (they then fall
    back to fixed-point steps). Converges in 3-5 steps on terrain without layover.
    """
    loc = locate
    h_a = np.asarray(h_start, dtype=np.float64)
    lat, lon = loc(h_a)
    g_a = dem(lat, lon) - h_a
    h_b = h_a + g_a
    lat, lon = loc(h_b)
    g_b = dem(lat, lon) - h_b
    for _ in range(iterations):
        if np.all(np.abs(g_b) < tolerance):
            break
        denom = g_b - g_a
        ok = np.abs(denom) > 1e-12
        step = np.where(ok, -g_b * (h_b - h_a) / np.where(ok, denom, 1.0), g_b)
        h_a, g_a = h_b, g_b
        h_b = h_b + step
        lat, lon = loc(h_b)
        g_b = dem(lat, lon) - h_b
    return lat, lon, h_b


def _horner(coefficients: np.ndarray, x: np.ndarray) -> np.ndarray:
    out = np.zeros(x.shape)
    for d in range(coefficients.shape[-1] - 1, -1, -1):
        out = out * x + coefficients[..., d]
    return out


def _arc_lengths(pos: np.ndarray, vel: np.ndarray, slant: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ellipsoid (h = 0) points of a zero-Doppler plane at increasing slant ranges and the arc
    length (m) along the surface from the first one (chords of <= 25 m: exact to < 1e-6 m)."""
    lat, lon = ground_point(pos, vel, slant, np.zeros_like(slant))
    xyz = geodetic_to_ecef(lat, lon, np.zeros_like(lat))
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(xyz, axis=0), axis=-1))])
    return lat, lon, arc


def _fit(x: np.ndarray, y: np.ndarray, degree: int) -> np.ndarray:
    """Least-squares polynomial coefficients (lowest degree first) of y(x), fitted on a scaled x."""
    scale = float(np.max(np.abs(x))) or 1.0
    coef = np.polynomial.polynomial.polyfit(x / scale, y, degree)
    return coef / scale ** np.arange(degree + 1)


def _srgr_record(orbit: CircularOrbit, t: float, sr0: float, ground_max: float) -> tuple[np.ndarray, np.ndarray]:
    """The (srgr, grsr) polynomials of the zero-Doppler plane at time ``t``, fitted over [0, ground_max]."""
    pos, vel = orbit.state(t)
    # slant range grows ~0.5-0.7 m per metre of ground range: 1.05 x the ground span is enough
    slant = sr0 + np.linspace(0.0, 1.05 * ground_max, max(64, int(ground_max / 15.0)))
    _, _, arc = _arc_lengths(pos, vel, slant)
    keep = arc <= ground_max * 1.01 + 100.0
    srgr = _fit(slant[keep] - sr0, arc[keep], SRGR_DEGREE)
    grsr = _fit(arc[keep], slant[keep], SRGR_DEGREE)
    return srgr, grsr


def footprint_speed(orbit: CircularOrbit, t: float, slant: float) -> float:
    """Ground speed (m/s) of the zero-Doppler footprint at a fixed slant range (h = 0)."""
    dt = 0.5
    pts = []
    for tt in (t - dt, t + dt):
        pos, vel = orbit.state(tt)
        lat, lon = ground_point(pos, vel, np.array(slant), np.array(0.0))
        pts.append(geodetic_to_ecef(lat, lon, 0.0))
    return float(np.linalg.norm(pts[1] - pts[0])) / (2 * dt)


def _near_point(orbit: CircularOrbit, t: float, lat: float, lon: float, ground_offset: float) -> float:
    """Slant range of the ellipsoid point ``ground_offset`` metres nearer to the track than (lat, lon)."""
    pos, vel = orbit.state(t)
    centre = geodetic_to_ecef(lat, lon, 0.0)
    r_c = float(np.linalg.norm(centre - pos))
    slant = r_c - np.linspace(0.0, 1.2 * ground_offset + 1000.0, max(64, int(ground_offset / 15.0)))[::-1]
    _, _, arc = _arc_lengths(pos, vel, slant)
    back = arc[-1] - arc  # arc from each slant range up to the centre
    return float(np.interp(ground_offset, back[::-1], slant[::-1]))


def build_geometry(
    lat: float,
    lon: float,
    incidence_near: float,
    ascending: bool,
    lines: int,
    samples: int,
    range_spacing: float,
    azimuth_spacing: float,
) -> ImageGeometry:
    """The orbit and image geometry seeing (lat, lon, h = 0) at mid image with ``incidence_near`` at pixel 0."""
    half_ground = (samples - 1) / 2.0 * range_spacing
    # azimuth time interval from the footprint speed (provisional orbit with t_ref = 0)
    provisional = design_orbit(lat, lon, incidence_near + 0.5, 0.0, ascending)
    pos, _ = provisional.state(0.0)
    r_c = float(np.linalg.norm(geodetic_to_ecef(lat, lon, 0.0) - pos))
    ati = azimuth_spacing / footprint_speed(provisional, 0.0, r_c)
    t_c = (lines - 1) / 2.0 * ati
    theta_c = incidence_near + half_ground / 6_371_000.0 * 57.29577951308232 * 1.2
    orbit = design_orbit(lat, lon, theta_c, t_c, ascending)
    for _ in range(4):  # adjust the centre incidence until pixel 0 sees incidence_near
        r0 = _near_point(orbit, t_c, lat, lon, half_ground)
        pos, vel = orbit.state(t_c)
        nlat, nlon = ground_point(pos, vel, np.array(r0), np.array(0.0))
        inc, _ = incidence_and_elevation(nlat, nlon, np.array(0.0), pos)
        err = incidence_near - float(inc)
        if abs(err) < 1e-9:
            break
        theta_c += err
        orbit = design_orbit(lat, lon, theta_c, t_c, ascending)
    r0 = _near_point(orbit, t_c, lat, lon, half_ground)
    tau0 = 2.0 * r0 / SPEED_OF_LIGHT
    last = (lines - 1) * ati
    n_before = math.ceil(1.0 / RECORD_INTERVAL)
    count = math.ceil((last + 1.0) / RECORD_INTERVAL) + n_before + 1
    record_times = (np.arange(count) - n_before) * RECORD_INTERVAL
    ground_max = (samples - 1) * range_spacing
    fits = [_srgr_record(orbit, float(t), r0, ground_max) for t in record_times]
    srgr = np.array([f[0] for f in fits])
    grsr = np.array([f[1] for f in fits])
    geometry = ImageGeometry(orbit, lines, samples, ati, range_spacing, tau0, 0.0, record_times, srgr, grsr)
    mid_slant = geometry.ground_to_slant(np.array(half_ground), np.array(t_c))
    tau_mid = float(2.0 * mid_slant / SPEED_OF_LIGHT)
    return ImageGeometry(orbit, lines, samples, ati, range_spacing, tau0, tau_mid, record_times, srgr, grsr)


def srgr_residual(geometry: ImageGeometry, record: int, n: int = 400) -> tuple[float, float]:
    """Max |error| (m) of the srgr and grsr polynomials of one record against the ellipsoid arc length."""
    t = float(geometry.record_times[record])
    pos, vel = geometry.orbit.state(t)
    ground_max = (geometry.samples - 1) * geometry.range_spacing
    slant = geometry.sr0 + np.linspace(0.0, 0.75 * ground_max, 4 * n)
    _, _, arc = _arc_lengths(pos, vel, slant)
    keep = arc <= ground_max
    ground_fit = _horner(geometry.srgr[record], slant[keep] - geometry.sr0)
    slant_fit = _horner(geometry.grsr[record], arc[keep])
    return float(np.max(np.abs(ground_fit - arc[keep]))), float(np.max(np.abs(slant_fit - slant[keep])))


def _lattice(n: int, step: int) -> np.ndarray:
    idx = np.arange(0, n, step, dtype=np.float64)
    return idx if idx[-1] == n - 1 else np.append(idx, n - 1)


@dataclass(frozen=True)
class PixelLocator:
    """Geolocation of every image pixel on a DEM, without solving each pixel exactly.

    (lat, lon) are solved exactly on a lattice (every ``step`` lines and pixels) at three height
    levels spanning the DEM, fitted as a quadratic in height per lattice node and interpolated
    bilinearly between nodes; each pixel's height then solves ``h = dem(lat(h), lon(h))``
    (secant). Interpolation error: well below a millimetre on the ellipsoid, a few millimetres
    over 1 km of relief (tested against the exact solution).
    """

    geometry: ImageGeometry
    dem: Field
    rows: np.ndarray  # lattice lines
    cols: np.ndarray  # lattice pixels
    h_mid: float
    h_scale: float
    lat_coef: np.ndarray  # (3, n_rows, n_cols): value, slope, curvature in u = (h - h_mid) / h_scale
    lon_coef: np.ndarray

    @classmethod
    def build(cls, geometry: ImageGeometry, dem: Field, step: int = 16) -> PixelLocator:
        """Solve the lattice; the DEM's height range is sampled around the h = 0 footprint."""
        rows, cols = _lattice(geometry.lines, step), _lattice(geometry.samples, step)
        rr, cc = np.meshgrid(rows, cols, indexing="ij")
        lat0, lon0 = geometry.geolocate(rr, cc, np.zeros(rr.shape))
        lon0 = unwrap_near(lon0, float(lon0.flat[0]))
        pad_lat, pad_lon = 0.03, 0.03 / max(0.05, math.cos(math.radians(float(np.mean(lat0)))))
        glat = np.linspace(lat0.min() - pad_lat, lat0.max() + pad_lat, 241)
        glon = np.linspace(lon0.min() - pad_lon, lon0.max() + pad_lon, 241)
        sample = dem(*np.meshgrid(glat, glon, indexing="ij"))
        h_lo, h_hi = float(np.min(sample)), float(np.max(sample))
        h_mid, h_scale = (h_lo + h_hi) / 2.0, max(1.0, (h_hi - h_lo) / 2.0 + 5.0)
        levels = [geometry.geolocate(rr, cc, np.full(rr.shape, h_mid + k * h_scale)) for k in (-1, 0, 1)]
        # longitudes continuous across the antimeridian, so the lattice interpolates on the ground
        levels = [(lat, unwrap_near(lon, float(lon0.flat[0]))) for lat, lon in levels]

        def coefficients(index: int) -> np.ndarray:
            f0, f1, f2 = (lv[index] for lv in levels)
            return np.stack([f1, (f2 - f0) / 2.0, (f2 - 2.0 * f1 + f0) / 2.0])

        return cls(geometry, dem, rows, cols, h_mid, h_scale, coefficients(0), coefficients(1))

    def locate(self, line_start: int, line_stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lat, lon, h) of every pixel of image lines [line_start, line_stop), each (n, samples)."""
        r = np.interp(np.arange(line_start, line_stop), self.rows, np.arange(self.rows.size))
        c = np.interp(np.arange(self.geometry.samples), self.cols, np.arange(self.cols.size))
        r0 = np.minimum(np.floor(r).astype(np.int64), self.rows.size - 2)
        c0 = np.minimum(np.floor(c).astype(np.int64), self.cols.size - 2)
        wr = (r - r0)[:, None]
        wc = (c - c0)[None, :]

        def upsample(a: np.ndarray) -> np.ndarray:
            top = a[r0][:, c0] * (1 - wc) + a[r0][:, c0 + 1] * wc
            bottom = a[r0 + 1][:, c0] * (1 - wc) + a[r0 + 1][:, c0 + 1] * wc
            return top * (1 - wr) + bottom * wr

        lat_c = [upsample(a) for a in self.lat_coef]
        lon_c = [upsample(a) for a in self.lon_coef]

        def at_height(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            u = (h - self.h_mid) / self.h_scale
            return lat_c[0] + u * (lat_c[1] + u * lat_c[2]), lon_c[0] + u * (lon_c[1] + u * lon_c[2])

        return solve_height(at_height, self.dem, np.full(lat_c[0].shape, self.h_mid))
