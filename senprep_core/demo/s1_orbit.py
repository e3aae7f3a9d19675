"""Orbit and range-Doppler geometry of the synthetic Sentinel-1 products (the simulator's own solver).

The simulator deliberately does not reuse the processing chain's geometry module
(:mod:`senprep_core.s1.geometry`): an independent forward model is what lets the closed-loop
tests catch a bug in either one. Everything here is vectorised numpy on the WGS84 ellipsoid.

- :class:`CircularOrbit`: a Keplerian circular orbit (no J2) expressed in the Earth-fixed frame,
  i.e. the inertial orbit rotated by ``OMEGA_EARTH * (t - t_ref)``, so state vectors carry the
  Earth-rotation term ``-omega x p`` in their velocities exactly like real ITRF state vectors.
- :func:`design_orbit`: the orbit (ascending or descending, right-looking) that sees a ground
  point at zero Doppler at a given time and incidence angle.
- :func:`zero_doppler_time`: Newton on ``v(t) . (x - p(t)) = 0``.
- :func:`ground_point`: the point at geodetic height ``h`` on the zero-Doppler plane of a
  satellite state at slant range ``R``, right of the track (Newton in latitude / longitude).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

WGS84_A = 6_378_137.0
WGS84_F = 1.0 / 298.257223563
WGS84_B = WGS84_A * (1.0 - WGS84_F)
WGS84_E2 = WGS84_F * (2.0 - WGS84_F)
OMEGA_EARTH = 7.2921151467e-5  # rad/s
GM_EARTH = 3.986004418e14  # m^3/s^2
#: Sentinel-1 reference orbit: ~693 km altitude, 98.18 degrees inclination.
S1_ALTITUDE = 693_000.0
S1_INCLINATION = 98.18


def geodetic_to_ecef(lat: np.ndarray | float, lon: np.ndarray | float, h: np.ndarray | float) -> np.ndarray:
    """WGS84 geodetic latitude/longitude (degrees) and height (m) to ECEF metres, shape (..., 3)."""
    phi = np.radians(np.asarray(lat, dtype=np.float64))
    lam = np.radians(np.asarray(lon, dtype=np.float64))
    height = np.asarray(h, dtype=np.float64)
    sin_phi = np.sin(phi)
    n = WGS84_A / np.sqrt(1.0 - WGS84_E2 * sin_phi**2)
    x = (n + height) * np.cos(phi) * np.cos(lam)
    y = (n + height) * np.cos(phi) * np.sin(lam)
    z = (n * (1.0 - WGS84_E2) + height) * sin_phi
    return np.stack(np.broadcast_arrays(x, y, z), axis=-1)


def ecef_to_geodetic(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ECEF metres (..., 3) to WGS84 latitude, longitude (degrees) and height (m).

    Fixed-point iteration on the latitude (converges to < 1e-12 rad in a few steps for points
    within a few thousand km of the surface, which covers satellites too).
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    p = np.hypot(x, y)
    lon = np.arctan2(y, x)
    phi = np.arctan2(z, p * (1.0 - WGS84_E2))
    h = np.zeros_like(p)
    for _ in range(8):
        sin_phi = np.sin(phi)
        n = WGS84_A / np.sqrt(1.0 - WGS84_E2 * sin_phi**2)
        h = p / np.cos(phi) - n
        phi = np.arctan2(z, p * (1.0 - WGS84_E2 * n / (n + h)))
    return np.degrees(phi), np.degrees(lon), h


def ellipsoid_normal(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Unit outward normal of the WGS84 ellipsoid at geodetic latitude/longitude (degrees), (..., 3)."""
    phi = np.radians(np.asarray(lat, dtype=np.float64))
    lam = np.radians(np.asarray(lon, dtype=np.float64))
    return np.stack(np.broadcast_arrays(np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)), axis=-1)


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("...i,...i->...", a, b)


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


@dataclass(frozen=True)
class CircularOrbit:
    """A circular Keplerian orbit in the Earth-fixed frame.

    ``raan`` (rad) is the right ascension of the ascending node in the inertial frame that
    coincides with the Earth-fixed frame at ``t_ref`` (seconds since the product epoch);
    ``arg_lat_ref`` (rad) is the argument of latitude at ``t_ref``.
    """

    raan: float
    arg_lat_ref: float
    t_ref: float
    radius: float = WGS84_A + S1_ALTITUDE
    inclination_deg: float = S1_INCLINATION

    @property
    def mean_motion(self) -> float:
        """Angular rate along the orbit, rad/s."""
        return math.sqrt(GM_EARTH / self.radius**3)

    @property
    def speed(self) -> float:
        """Inertial speed, m/s."""
        return self.mean_motion * self.radius

    def state(self, t: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Earth-fixed position (m) and velocity (m/s) at times ``t``; shapes (..., 3)."""
        t = np.asarray(t, dtype=np.float64)
        inc = math.radians(self.inclination_deg)
        u = self.arg_lat_ref + self.mean_motion * (t - self.t_ref)
        cu, su = np.cos(u), np.sin(u)
        co, so = math.cos(self.raan), math.sin(self.raan)
        ci, si = math.cos(inc), math.sin(inc)
        r, v = self.radius, self.speed
        pi = np.stack([r * (co * cu - so * su * ci), r * (so * cu + co * su * ci), r * su * si], axis=-1)
        vi = np.stack([v * (-co * su - so * cu * ci), v * (-so * su + co * cu * ci), v * cu * si], axis=-1)
        theta = OMEGA_EARTH * (t - self.t_ref)
        ct, st = np.cos(theta), np.sin(theta)
        px = ct * pi[..., 0] + st * pi[..., 1]
        py = -st * pi[..., 0] + ct * pi[..., 1]
        vx = ct * vi[..., 0] + st * vi[..., 1] + OMEGA_EARTH * py
        vy = -st * vi[..., 0] + ct * vi[..., 1] - OMEGA_EARTH * px
        return np.stack([px, py, pi[..., 2]], axis=-1), np.stack([vx, vy, vi[..., 2]], axis=-1)

    def acceleration(self, t: np.ndarray | float) -> np.ndarray:
        """Earth-fixed acceleration (gravity, Coriolis and centrifugal terms), (..., 3)."""
        p, v = self.state(t)
        grav = -(self.mean_motion**2) * p  # |p| = radius: -GM p / r^3
        w = np.array([0.0, 0.0, OMEGA_EARTH])
        return grav - 2.0 * np.cross(w, v) - np.cross(w, np.cross(w, p))

    def arg_lat(self, t: float) -> float:
        """Argument of latitude (rad, in [0, 2 pi)) at time ``t``."""
        return (self.arg_lat_ref + self.mean_motion * (t - self.t_ref)) % (2.0 * math.pi)

    def ascending_node_time(self, t: float) -> float:
        """Time of the last ascending node crossing at or before ``t``."""
        return t - self.arg_lat(t) / self.mean_motion


def zero_doppler_time(orbit: CircularOrbit, xyz: np.ndarray, t0: np.ndarray | float) -> np.ndarray:
    """Zero-Doppler time of ECEF points ``xyz`` (..., 3): Newton from ``t0`` to < 1e-9 s."""
    xyz = np.asarray(xyz, dtype=np.float64)
    t = np.broadcast_to(np.asarray(t0, dtype=np.float64), xyz.shape[:-1]).copy()
    for _ in range(12):
        p, v = orbit.state(t)
        a = orbit.acceleration(t)
        d = xyz - p
        f = _dot(v, d)
        df = _dot(a, d) - _dot(v, v)
        step = f / df
        t = t - step
        if np.all(np.abs(step) < 1e-10):
            break
    return t


def ground_point(
    pos: np.ndarray, vel: np.ndarray, slant_range: np.ndarray, h: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Latitude, longitude (degrees) of the point at height ``h`` on the zero-Doppler plane of the
    satellite states ``pos``/``vel`` (..., 3) at ``slant_range`` (m), right of the ground track.

    A sphere-based first guess, then Newton on ``|P - S| - R = 0`` and ``v . (P - S) = 0`` in
    (latitude, longitude); converges to well below a millimetre.
    """
    pos, vel = np.broadcast_arrays(np.asarray(pos, dtype=np.float64), np.asarray(vel, dtype=np.float64))
    shape = np.broadcast_shapes(pos.shape[:-1], np.shape(slant_range), np.shape(h))
    pos = np.broadcast_to(pos, (*shape, 3))
    vel = np.broadcast_to(vel, (*shape, 3))
    rng = np.broadcast_to(np.asarray(slant_range, dtype=np.float64), shape)
    h = np.broadcast_to(np.asarray(h, dtype=np.float64), shape)
    vhat = _unit(vel)
    down = -pos + _dot(pos, vhat)[..., None] * vhat
    e1 = _unit(down)
    e2 = np.cross(e1, vhat)  # right of the velocity
    s_norm = np.linalg.norm(pos, axis=-1)
    lat = np.degrees(np.arctan2(pos[..., 2], (1.0 - WGS84_E2) * np.hypot(pos[..., 0], pos[..., 1])))
    for _ in range(3):  # local-sphere guess, refined twice with the guessed latitude's radius
        rho = np.linalg.norm(geodetic_to_ecef(lat, np.zeros_like(lat), h), axis=-1)
        cos_a = np.clip((s_norm**2 + rng**2 - rho**2) / (2.0 * s_norm * rng), -1.0, 1.0)
        guess = pos + rng[..., None] * (cos_a[..., None] * e1 + np.sqrt(1.0 - cos_a**2)[..., None] * e2)
        lat, lon, _ = ecef_to_geodetic(guess)
    phi, lam = np.radians(lat), np.radians(lon)
    for _ in range(10):
        sp, cp, sl, cl = np.sin(phi), np.cos(phi), np.sin(lam), np.cos(lam)
        w = np.sqrt(1.0 - WGS84_E2 * sp**2)
        n = WGS84_A / w
        m = WGS84_A * (1.0 - WGS84_E2) / w**3
        p = np.stack([(n + h) * cp * cl, (n + h) * cp * sl, (n * (1.0 - WGS84_E2) + h) * sp], axis=-1)
        dp_dphi = (m + h)[..., None] * np.stack([-sp * cl, -sp * sl, cp], axis=-1)
        dp_dlam = ((n + h) * cp)[..., None] * np.stack([-sl, cl, np.zeros_like(sl)], axis=-1)
        d = p - pos
        dist = np.linalg.norm(d, axis=-1)
        look = d / dist[..., None]
        f1 = dist - rng
        f2 = _dot(vhat, d)
        a11, a12 = _dot(look, dp_dphi), _dot(look, dp_dlam)
        a21, a22 = _dot(vhat, dp_dphi), _dot(vhat, dp_dlam)
        det = a11 * a22 - a12 * a21
        dphi = (a22 * f1 - a12 * f2) / det
        dlam = (-a21 * f1 + a11 * f2) / det
        phi = phi - dphi
        lam = lam - dlam
        if np.all(np.abs(dphi) < 1e-13) and np.all(np.abs(dlam) < 1e-13):
            break
    return np.degrees(phi), (np.degrees(lam) + 180.0) % 360.0 - 180.0


def incidence_and_elevation(
    lat: np.ndarray, lon: np.ndarray, h: np.ndarray, sat_pos: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Ellipsoid incidence angle at the ground point and elevation (off-nadir) angle at the satellite, degrees."""
    p = geodetic_to_ecef(lat, lon, h)
    los = _unit(sat_pos - p)
    inc = np.degrees(np.arccos(np.clip(_dot(los, ellipsoid_normal(lat, lon)), -1.0, 1.0)))
    slat, slon, _ = ecef_to_geodetic(sat_pos)
    elev = np.degrees(np.arccos(np.clip(_dot(-los, -ellipsoid_normal(slat, slon)), -1.0, 1.0)))
    return inc, elev


def _destination(lat: float, lon: float, bearing: float, distance: float) -> tuple[float, float]:
    """Spherical destination point (degrees) from a start, a bearing (rad from north) and a distance (m)."""
    phi1, lam1 = math.radians(lat), math.radians(lon)
    delta = distance / 6_371_000.0
    phi2 = math.asin(math.sin(phi1) * math.cos(delta) + math.cos(phi1) * math.sin(delta) * math.cos(bearing))
    lam2 = lam1 + math.atan2(
        math.sin(bearing) * math.sin(delta) * math.cos(phi1), math.cos(delta) - math.sin(phi1) * math.sin(phi2)
    )
    return math.degrees(phi2), math.degrees(lam2)


def _residuals(orbit: CircularOrbit, target: np.ndarray, lat: float, lon: float, incidence: float) -> np.ndarray:
    p, v = orbit.state(orbit.t_ref)
    d = target - p
    doppler = float(_dot(v, d)) / (float(np.linalg.norm(v)) * float(np.linalg.norm(d)))
    inc, _ = incidence_and_elevation(np.array(lat), np.array(lon), np.array(0.0), p)
    return np.array([doppler, math.radians(float(inc)) - math.radians(incidence)])


def design_orbit(lat: float, lon: float, incidence: float, t_ref: float, ascending: bool) -> CircularOrbit:
    """The right-looking S1-like orbit seeing (lat, lon, h=0) at zero Doppler at ``t_ref`` under ``incidence`` deg.

    First guess from spherical geometry (the nadir point lies left of the scene, across the ground
    track, at the Earth-central angle of the incidence), then 2-D Newton on the Doppler and
    incidence residuals in (RAAN, argument of latitude).
    """
    inc_orbit = math.radians(S1_INCLINATION)
    radius = WGS84_A + S1_ALTITUDE
    earth_r = 6_371_000.0
    theta = math.radians(incidence)
    look = math.asin(earth_r * math.sin(theta) / radius)
    gamma = theta - look
    phi = math.radians(lat)
    sin_psi = max(-1.0, min(1.0, math.cos(inc_orbit) / math.cos(phi)))
    psi_inertial = math.asin(sin_psi) if ascending else math.pi - math.asin(sin_psi)
    speed = math.sqrt(GM_EARTH / radius) * earth_r / radius
    v_east = speed * math.sin(psi_inertial) - OMEGA_EARTH * earth_r * math.cos(phi)
    v_north = speed * math.cos(psi_inertial)
    heading = math.atan2(v_east, v_north)
    nadir_lat, nadir_lon = _destination(lat, lon, heading - math.pi / 2.0, earth_r * gamma)
    s = max(-1.0, min(1.0, math.sin(math.radians(nadir_lat)) / math.sin(inc_orbit)))
    u = math.asin(s) if ascending else math.pi - math.asin(s)
    raan = math.radians(nadir_lon) - math.atan2(math.cos(inc_orbit) * math.sin(u), math.cos(u))
    target = geodetic_to_ecef(np.array(lat), np.array(lon), np.array(0.0))
    x = np.array([raan, u])
    for _ in range(30):
        orbit = CircularOrbit(float(x[0]), float(x[1]), t_ref, radius)
        f = _residuals(orbit, target, lat, lon, incidence)
        if np.all(np.abs(f) < 1e-13):
            break
        jac = np.empty((2, 2))
        for j in range(2):
            dx = np.zeros(2)
            dx[j] = 1e-7
            other = CircularOrbit(float(x[0] + dx[0]), float(x[1] + dx[1]), t_ref, radius)
            jac[:, j] = (_residuals(other, target, lat, lon, incidence) - f) / 1e-7
        x = x - np.linalg.solve(jac, f)
    orbit = CircularOrbit(float(x[0]) % (2 * math.pi), float(x[1]) % (2 * math.pi), t_ref, radius)
    p, v = orbit.state(t_ref)
    right = np.cross(v, p)
    if float(_dot(target - p, right)) <= 0:  # pragma: no cover - guards the geometry, never expected
        raise RuntimeError("orbit design converged to a left-looking geometry")
    return orbit
