"""Sentinel-1 GRD range-Doppler geometry: ground point <-> (line, pixel) of an image.

Forward (:meth:`RadarGeometry.radar_coordinates`): a ground point (lat, lon, ellipsoidal height)
is seen at the zero-Doppler time ``t_zd`` when the satellite velocity is perpendicular to the
line of sight, at the slant range ``R = |x - p(t_zd)|``. The GRD line is the azimuth time
``t_zd`` shifted by the bistatic delay (when the annotation says it was applied, lines hold
``t_line = t_zd - (tau - tau_mid) / 2`` with ``tau = 2 R / c`` and ``tau_mid`` the two-way
slant-range time at mid swath, see :meth:`RadarGeometry._mid_swath_slant_range_time`); the
pixel is the ground range divided by the pixel spacing, the ground range being the exact
inverse of the ground -> slant range polynomial (``grsrCoefficients``) of the
coordinate-conversion record nearest in time (the annotation's tie points are computed with
that polynomial: its inverse reproduces them to 1e-10 pixel, the separately fitted
``srgrCoefficients`` only to 0.008 pixel). Details that matter at the sub-pixel level are in
``shared/notes/s1-geometry.md``.

Inverse (:meth:`RadarGeometry.geolocate`): (line, pixel) -> slant range (ground -> slant
polynomial) and zero-Doppler time (undoing the bistatic shift), then the point at ellipsoidal
height ``h`` on the zero-Doppler plane at that range, on the right of the track
(Sentinel-1 looks right).

Everything is vectorised over N-D arrays. Times are float64 seconds since the product epoch
(:class:`~senprep_core.s1.model.S1Metadata`), ECEF coordinates (..., 3) arrays in metres on
WGS84, angles in degrees at the public edges.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from senprep_core.errors import MetadataError
from senprep_core.s1 import geocoding_kernels as kernels
from senprep_core.s1.model import SPEED_OF_LIGHT, CoordinateConversion, S1Image
from senprep_core.s1.orbit import Orbit
from senprep_core.threads import run_in_strips

__all__ = [
    "WGS84_A",
    "WGS84_B",
    "WGS84_E2",
    "Orbit",
    "RadarGeometry",
    "RadarSolution",
    "ecef_to_geodetic",
    "ellipsoid_normal",
    "geodetic_to_ecef",
]

log = logging.getLogger(__name__)

WGS84_A = 6_378_137.0
WGS84_F = 1.0 / 298.257223563
WGS84_B = WGS84_A * (1.0 - WGS84_F)
WGS84_E2 = WGS84_F * (2.0 - WGS84_F)
_EP2 = WGS84_E2 / (1.0 - WGS84_E2)

ZERO_DOPPLER_TOLERANCE = 1e-9  # seconds: Newton stops once every update is below this
GEOLOCATE_TOLERANCE = 1e-12  # radians (~6 µm)
MAX_ITERATIONS = 12
MAX_EXPANSIONS = 4  # orbit evaluations per point in the zero-Doppler search (1 in practice)
TAYLOR_LIMIT = 0.05  # seconds: largest Newton correction trusted to the Taylor expansion
GROUND_RANGE_ITERATIONS = 1  # Newton steps inverting grsr from the srgr estimate (8 cm -> 1e-8 m)
STRIP_POINTS = 1 << 18  # points per strip of the compiled (line, pixel) conversion on the thread budget
TAU_MID_CONSISTENCY = 5e-6  # seconds: spread of the per-tie-point mid-swath time estimates


# ----- geodesy ---------------------------------------------------------------------------------
def geodetic_to_ecef(
    lat: np.ndarray | float, lon: np.ndarray | float, h: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """WGS84 geodetic latitude/longitude (degrees) and ellipsoidal height (m) -> ECEF x, y, z (m)."""
    phi = np.radians(np.asarray(lat, dtype=np.float64))
    lam = np.radians(np.asarray(lon, dtype=np.float64))
    h = np.asarray(h, dtype=np.float64)
    sin_phi, cos_phi = np.sin(phi), np.cos(phi)
    n = WGS84_A / np.sqrt(1.0 - WGS84_E2 * sin_phi * sin_phi)
    r = (n + h) * cos_phi
    return r * np.cos(lam), r * np.sin(lam), (n * (1.0 - WGS84_E2) + h) * sin_phi


def ecef_to_geodetic(
    x: np.ndarray | float, y: np.ndarray | float, z: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ECEF x, y, z (m) -> WGS84 latitude, longitude (degrees) and ellipsoidal height (m).

    Bowring's formula iterated twice: < 1e-13 degree and 1e-8 m from the surface out to
    satellite altitude (1 iteration leaves 4 mm at 800 km).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    p = np.hypot(x, y)
    lam = np.arctan2(y, x)
    beta = np.arctan2(z * WGS84_A, p * WGS84_B)  # reduced latitude, first guess
    for _ in range(2):
        sin_b, cos_b = np.sin(beta), np.cos(beta)
        phi = np.arctan2(z + _EP2 * WGS84_B * sin_b**3, p - WGS84_E2 * WGS84_A * cos_b**3)
        beta = np.arctan2((1.0 - WGS84_F) * np.sin(phi), np.cos(phi))
    sin_phi, cos_phi = np.sin(phi), np.cos(phi)
    h = p * cos_phi + z * sin_phi - WGS84_A * np.sqrt(1.0 - WGS84_E2 * sin_phi * sin_phi)
    return np.degrees(phi), np.degrees(lam), h


def ellipsoid_normal(lat: np.ndarray | float, lon: np.ndarray | float) -> np.ndarray:
    """Unit outward normal (..., 3) of the WGS84 ellipsoid (local "up") at geodetic lat/lon (degrees)."""
    phi = np.radians(np.asarray(lat, dtype=np.float64))
    lam = np.radians(np.asarray(lon, dtype=np.float64))
    return np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)], axis=-1)


def _stack(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    x, y, z = np.broadcast_arrays(x, y, z)
    return np.stack([x, y, z], axis=-1)


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("...k,...k->...", a, b)


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


# ----- coordinate conversion -------------------------------------------------------------------
def _polyval(coefficients: np.ndarray, record: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Horner evaluation of the polynomial ``coefficients[record]`` at ``x`` (per element)."""
    rows = coefficients[record]  # one gather of whole rows, then strided columns
    result = rows[..., -1].copy()
    for degree in range(coefficients.shape[1] - 2, -1, -1):
        result *= x
        result += rows[..., degree]
    return result


@dataclass(frozen=True)
class RadarSolution:
    """Where ground points are seen by the radar (all arrays share the points' shape).

    ``azimuth_time`` is the zero-Doppler time (seconds since epoch), ``slant_range`` one-way (m),
    ``satellite`` the satellite position (..., 3) at that time and ``look`` the unit vector
    (..., 3) from the point to the satellite (ECEF). NaN where the point cannot be solved
    (non-finite input, zero-Doppler time outside the orbit).
    """

    line: np.ndarray
    pixel: np.ndarray
    azimuth_time: np.ndarray
    slant_range: np.ndarray
    satellite: np.ndarray
    look: np.ndarray


def _check_image(image: S1Image) -> None:
    """Raise :class:`MetadataError` when the image lacks what the geometry needs."""
    label = f"{image.annotation or 'annotation'} ({image.polarisation})"
    if not (image.azimuth_time_interval > 0 and image.range_pixel_spacing > 0 and image.lines > 0):
        raise MetadataError(
            f"{label}: azimuthTimeInterval {image.azimuth_time_interval}, rangePixelSpacing "
            f"{image.range_pixel_spacing} and numberOfLines {image.lines} must all be positive: "
            "the annotation is corrupt, download the product again"
        )
    conversion = image.conversion
    n = np.asarray(conversion.azimuth_time).size
    grsr = np.atleast_2d(np.asarray(conversion.grsr, dtype=np.float64))
    srgr = np.atleast_2d(np.asarray(conversion.srgr, dtype=np.float64))
    if n == 0 or grsr.shape[0] != n or srgr.shape[0] != n or grsr.shape[1] < 2 or not np.isfinite(grsr).all():
        raise MetadataError(
            f"{label}: the coordinateConversionList is missing or malformed ({n} records, grsr "
            f"{grsr.shape}, srgr {srgr.shape}); senprep needs it to map slant range to ground range. "
            "Only GRD products carry it: check that the product is a GRD and is complete"
        )


class RadarGeometry:
    """Range-Doppler model of one GRD image (one polarisation) with its orbit.

    ``orbit`` defaults to the image's annotation orbit; pass an :class:`Orbit` built from a
    precise orbit file for better absolute accuracy.
    """

    def __init__(self, image: S1Image, orbit: Orbit | None = None) -> None:
        _check_image(image)
        self.image = image
        self.orbit = orbit if orbit is not None else Orbit(image.orbit)
        self.orbit.check_times(np.array([image.first_line_time, image.last_line_time]))
        conversion = image.conversion
        order = np.argsort(conversion.azimuth_time, kind="stable")
        self._conversion = CoordinateConversion(
            azimuth_time=np.asarray(conversion.azimuth_time, dtype=np.float64)[order],
            slant_range_time=np.asarray(conversion.slant_range_time, dtype=np.float64)[order],
            sr0=np.asarray(conversion.sr0, dtype=np.float64)[order],
            srgr=np.atleast_2d(np.asarray(conversion.srgr, dtype=np.float64))[order],
            gr0=np.asarray(conversion.gr0, dtype=np.float64)[order],
            grsr=np.atleast_2d(np.asarray(conversion.grsr, dtype=np.float64))[order],
        )
        grsr = self._conversion.grsr
        self._grsr_slope = grsr[:, 1:] * np.arange(1, grsr.shape[1])
        times = self._conversion.azimuth_time
        self._record_edges = (times[1:] + times[:-1]) / 2.0
        self.tau_mid = self._mid_swath_slant_range_time()

    # ----- time and range conventions ------------------------------------------------------------
    def line_to_time(self, line: np.ndarray | float) -> np.ndarray:
        """Azimuth time (seconds since epoch) of (fractional) image lines."""
        return self.image.first_line_time + np.asarray(line, dtype=np.float64) * self.image.azimuth_time_interval

    def time_to_line(self, t: np.ndarray | float) -> np.ndarray:
        """(Fractional) image line of azimuth times (seconds since epoch)."""
        return (np.asarray(t, dtype=np.float64) - self.image.first_line_time) / self.image.azimuth_time_interval

    def bistatic_shift(self, tau: np.ndarray | float) -> np.ndarray:
        """Line time minus zero-Doppler time for two-way slant-range times ``tau`` (s; 0 if not applied)."""
        tau = np.asarray(tau, dtype=np.float64)
        if not self.image.bistatic_delay_applied:
            return np.zeros_like(tau)
        return -(tau - self.tau_mid) / 2.0

    def conversion_record(self, t: np.ndarray | float) -> np.ndarray:
        """Index of the coordinate-conversion record nearest in azimuth time to ``t``."""
        return np.searchsorted(self._record_edges, np.asarray(t, dtype=np.float64))

    def slant_to_ground_range(self, slant_range: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Ground range (m from the first pixel) of one-way slant ranges seen at azimuth times ``t``.

        The exact inverse of :meth:`ground_to_slant_range` (Newton's method started from the
        annotation's slant -> ground polynomial), so forward and inverse geocoding round-trip.
        """
        c = self._conversion
        slant_range, t = np.broadcast_arrays(np.asarray(slant_range, np.float64), np.asarray(t, np.float64))
        ground = kernels.slant_to_ground(
            np.ascontiguousarray(slant_range).ravel(), np.ascontiguousarray(t).ravel(), self._record_edges,
            c.sr0, c.srgr, c.gr0, c.grsr, self._grsr_slope, GROUND_RANGE_ITERATIONS,
        )  # fmt: skip
        return ground.reshape(slant_range.shape)

    def ground_to_slant_range(self, ground_range: np.ndarray, t: np.ndarray) -> np.ndarray:
        """One-way slant range (m) of ground ranges (m from the first pixel) at azimuth times ``t``."""
        c = self._conversion
        ground_range, t = np.broadcast_arrays(np.asarray(ground_range, np.float64), np.asarray(t, np.float64))
        k = self.conversion_record(t)
        return _polyval(c.grsr, k, ground_range - c.gr0[k])

    def _mid_swath_slant_range_time(self) -> float:
        """Two-way mid-swath slant-range time, the reference of the bistatic delay correction.

        The annotation does not state it, but its tie points do: their azimuth time is the
        zero-Doppler time while their line is the bistatic-shifted one, so every tie point gives
        ``tau_mid = tau + 2 (t_line - t_zd)`` (consistent to the microsecond rounding of the
        annotated times). Falls back to the slant-range time of the middle pixel of the middle
        line when the tie points do not give one consistent value (0.01 line difference).
        """
        im = self.image
        t_mid = self.line_to_time((im.lines - 1) / 2.0)
        slant = self.ground_to_slant_range(np.asarray((im.samples - 1) / 2.0 * im.range_pixel_spacing), t_mid)
        fallback = float(2.0 * slant / SPEED_OF_LIGHT)
        grid = im.geolocation
        if not im.bistatic_delay_applied:
            return fallback
        estimates = np.asarray(grid.slant_range_time, np.float64) + 2.0 * (
            self.line_to_time(grid.line) - np.asarray(grid.azimuth_time, np.float64)
        )
        estimates = estimates[np.isfinite(estimates)]
        if estimates.size >= 3 and float(np.std(estimates)) < TAU_MID_CONSISTENCY:
            return float(np.median(estimates))
        log.warning(
            "%s: the geolocation tie points do not give one mid-swath slant-range time (spread %.3g s); "
            "using the middle pixel's (%.9g s) for the bistatic delay, which may shift lines by ~0.01",
            im.annotation,
            float(np.std(estimates)) if estimates.size else float("nan"),
            fallback,
        )
        return fallback

    # ----- forward: ground -> radar ----------------------------------------------------------------
    def zero_doppler_time(self, xyz: np.ndarray) -> np.ndarray:
        """Zero-Doppler time (seconds since epoch) of ECEF points ``xyz`` (..., 3).

        Newton's method on ``f(t) = v(t) . (x - p(t))`` (converged to < 1e-9 s), see
        :meth:`_zero_doppler`. NaN where the input is not finite, the time falls outside the
        orbit, or Newton did not converge.
        """
        return self._zero_doppler(xyz)[0]

    def _zero_doppler(self, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Zero-Doppler times (...,) and satellite positions (..., 3) of ECEF points (..., 3).

        The first guess is the secant of ``f`` between the image's first and last line times
        (within 2 ms of the solution for points in and around the image). The orbit is then
        evaluated once per point, at that guess, and Newton's steps use its second-order Taylor
        expansion around it (exact to 1e-10 m within 50 ms); points whose correction grows
        beyond that are re-expanded at their new time.
        """
        xyz = np.asarray(xyz, dtype=np.float64)
        shape = xyz.shape[:-1]
        xyz = xyz.reshape(-1, 3)
        im = self.image
        ends = np.array([im.first_line_time, im.last_line_time])
        if not ends[1] > ends[0]:
            ends = np.array([im.first_line_time - 1.0, im.first_line_time + 1.0])
        p_ends, v_ends, _ = self.orbit.state_unchecked(ends, derivatives=1)
        f0 = _dot(xyz - p_ends[0], v_ends[0])
        f1 = _dot(xyz - p_ends[1], v_ends[1])
        with np.errstate(divide="ignore", invalid="ignore"):
            t = ends[0] - f0 * (ends[1] - ends[0]) / (f1 - f0)
        t = np.where(np.isfinite(t), t, np.nan)
        satellite = np.full(xyz.shape, np.nan)
        todo = np.flatnonzero(np.isfinite(t))
        for _ in range(MAX_EXPANSIONS):
            if todo.size == 0:
                break
            x = xyz[todo]
            p0, v0, a0 = self.orbit.state_unchecked(t[todo], derivatives=2)
            dt = np.zeros(todo.size)
            for _ in range(MAX_ITERATIONS):
                d = x - (p0 + (v0 + a0 * (0.5 * dt)[:, None]) * dt[:, None])
                v = v0 + a0 * dt[:, None]
                with np.errstate(divide="ignore", invalid="ignore"):
                    step = _dot(v, d) / (_dot(a0, d) - _dot(v, v))
                dt -= step
                if not (np.abs(step) > ZERO_DOPPLER_TOLERANCE).any():  # NaN steps do not hold the others
                    break
            t[todo] += dt
            satellite[todo] = p0 + (v0 + a0 * (0.5 * dt)[:, None]) * dt[:, None]
            redo = (np.abs(step) > ZERO_DOPPLER_TOLERANCE) | (np.abs(dt) > TAYLOR_LIMIT)
            todo = todo[redo & self.orbit.covers(t[todo])]  # beyond the orbit: NaN below, no retry
        if todo.size:
            log.warning("zero-Doppler time did not converge for %d point(s); they are set to NaN", todo.size)
            t[todo] = np.nan
        outside = ~self.orbit.covers(t)
        t[outside] = np.nan
        satellite[outside] = np.nan
        return t.reshape(shape), satellite.reshape((*shape, 3))

    def solve_ecef(self, xyz: np.ndarray) -> RadarSolution:
        """Full radar solution (line, pixel, times, ranges, look vectors) of ECEF points (..., 3)."""
        xyz = np.asarray(xyz, dtype=np.float64)
        t_zd, satellite = self._zero_doppler(xyz)
        to_sat = satellite - xyz
        slant = np.linalg.norm(to_sat, axis=-1)
        look = to_sat / slant[..., None]
        line, pixel = self.image_coordinates(t_zd, slant)
        return RadarSolution(
            line=line,
            pixel=pixel,
            azimuth_time=t_zd,
            slant_range=slant,
            satellite=satellite,
            look=look,
        )

    def image_coordinates(self, t_zd: np.ndarray, slant: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(line, pixel) of zero-Doppler times and one-way slant ranges (bistatic shift, nearest record)."""
        t_zd, slant = np.broadcast_arrays(np.asarray(t_zd, np.float64), np.asarray(slant, np.float64))
        im, c = self.image, self._conversion
        times, ranges = np.ascontiguousarray(t_zd).ravel(), np.ascontiguousarray(slant).ravel()
        line, pixel = np.empty(times.size), np.empty(times.size)

        def strip(start: int, stop: int) -> None:
            line[start:stop], pixel[start:stop] = kernels.image_coordinates(
                times[start:stop], ranges[start:stop], bool(im.bistatic_delay_applied), float(self.tau_mid),
                SPEED_OF_LIGHT, float(im.first_line_time), float(im.azimuth_time_interval),
                float(im.range_pixel_spacing), self._record_edges, (c.sr0, c.srgr, c.gr0, c.grsr, self._grsr_slope),
                GROUND_RANGE_ITERATIONS,
            )  # fmt: skip

        run_in_strips(strip, times.size, STRIP_POINTS)
        return line.reshape(t_zd.shape), pixel.reshape(t_zd.shape)

    def range_time(
        self, lat: np.ndarray | float, lon: np.ndarray | float, h: np.ndarray | float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Zero-Doppler time and one-way slant range of geodetic points: smooth functions of position,
        unlike (line, pixel), which jump where the slant/ground-range record changes."""
        solution = self.solve(lat, lon, h)
        return solution.azimuth_time, solution.slant_range

    def solve(self, lat: np.ndarray | float, lon: np.ndarray | float, h: np.ndarray | float) -> RadarSolution:
        """Full radar solution of geodetic points (degrees, ellipsoidal metres)."""
        return self.solve_ecef(_stack(*geodetic_to_ecef(lat, lon, h)))

    def radar_coordinates(
        self, lat: np.ndarray | float, lon: np.ndarray | float, h: np.ndarray | float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fractional (line, pixel) where geodetic points (degrees, ellipsoidal m) appear; NaN if unsolvable."""
        solution = self.solve(lat, lon, h)
        return solution.line, solution.pixel

    def look_vectors(self, xyz: np.ndarray) -> np.ndarray:
        """Unit vectors (..., 3) from ECEF points to the satellite at their zero-Doppler times."""
        return self.solve_ecef(xyz).look

    def incidence_angle(
        self,
        lat: np.ndarray | float,
        lon: np.ndarray | float,
        h: np.ndarray | float,
        reference: str = "ellipsoid",
    ) -> np.ndarray:
        """Incidence angle (degrees) at geodetic points.

        ``reference="ellipsoid"`` measures it from the ellipsoid normal (the local vertical, for
        radiometry); ``"geocentric"`` from the direction away from the Earth's centre, which is
        the annotation's ``incidenceAngle`` convention (up to ~0.04 degree smaller at mid
        latitudes).
        """
        lat, lon, h = np.broadcast_arrays(*(np.asarray(v, np.float64) for v in (lat, lon, h)))
        if reference == "ellipsoid":
            solution = self.solve(lat, lon, h)
            up = ellipsoid_normal(lat, lon)
        elif reference == "geocentric":
            xyz = _stack(*geodetic_to_ecef(lat, lon, h))
            solution = self.solve_ecef(xyz)
            up = _unit(xyz)
        else:
            raise ValueError(f"reference must be 'ellipsoid' or 'geocentric', not {reference!r}")
        return np.degrees(np.arccos(np.clip(_dot(solution.look, up), -1.0, 1.0)))

    def elevation_angle(self, lat: np.ndarray | float, lon: np.ndarray | float, h: np.ndarray | float) -> np.ndarray:
        """Off-nadir angle (degrees) at the satellite between the line of sight and the direction to
        the Earth's centre (the annotation's ``elevationAngle``)."""
        solution = self.solve(lat, lon, h)
        return np.degrees(np.arccos(np.clip(_dot(solution.look, _unit(solution.satellite)), -1.0, 1.0)))

    # ----- inverse: radar -> ground ----------------------------------------------------------------
    def range_and_time(self, line: np.ndarray, pixel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One-way slant range (m) and zero-Doppler time (s since epoch) of image (line, pixel).

        The conversion record is the one nearest to the line's time, as in the forward direction.
        """
        line, pixel = np.broadcast_arrays(np.asarray(line, np.float64), np.asarray(pixel, np.float64))
        t_line = self.line_to_time(line)
        slant = self.ground_to_slant_range(pixel * self.image.range_pixel_spacing, t_line)
        t_zd = t_line - self.bistatic_shift(2.0 * slant / SPEED_OF_LIGHT)
        return slant, t_zd

    def geolocate_ecef(self, line: np.ndarray, pixel: np.ndarray, h: np.ndarray | float) -> np.ndarray:
        """ECEF point (..., 3) at ellipsoidal height ``h`` seen at image (line, pixel)."""
        lat, lon = self.geolocate(line, pixel, h)
        return _stack(*geodetic_to_ecef(lat, lon, np.broadcast_to(np.asarray(h, np.float64), lat.shape)))

    def geolocate(
        self, line: np.ndarray | float, pixel: np.ndarray | float, h: np.ndarray | float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Latitude, longitude (degrees) of the point at ellipsoidal height ``h`` seen at (line, pixel).

        Solves the zero-Doppler plane and the range sphere for geodetic (lat, lon) at fixed
        height by Newton's method, from a spherical-Earth first guess on the right-looking side
        (3-4 steps to 1e-12 rad). NaN where the time falls outside the orbit or the range does
        not reach the surface.
        """
        line, pixel, h = np.broadcast_arrays(
            np.asarray(line, np.float64), np.asarray(pixel, np.float64), np.asarray(h, np.float64)
        )
        shape = line.shape
        line, pixel, h = line.ravel(), pixel.ravel(), h.ravel()
        slant, t_zd = self.range_and_time(line, pixel)
        ok = np.isfinite(slant) & np.isfinite(t_zd) & np.isfinite(h) & self.orbit.covers(t_zd)
        lat = np.full(line.shape, np.nan)
        lon = np.full(line.shape, np.nan)
        idx = np.flatnonzero(ok)
        if idx.size:
            p, v, _ = self.orbit.state_unchecked(t_zd[idx], derivatives=1)
            phi, lam, converged = _solve_geodetic(p, _unit(v), slant[idx], h[idx])
            stuck = ~converged & np.isfinite(phi)  # NaN: the range does not reach the surface
            if stuck.any():
                log.warning("geolocation did not converge for %d point(s); they are set to NaN", stuck.sum())
            phi[~converged] = np.nan
            lat[idx] = np.degrees(phi)
            lon[idx] = np.degrees((lam + np.pi) % (2 * np.pi) - np.pi)
        return lat.reshape(shape), lon.reshape(shape)


def _solve_geodetic(
    p: np.ndarray, v_hat: np.ndarray, slant: np.ndarray, h: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Geodetic (lat, lon) in radians at height ``h`` with ``v_hat . (x - p) = 0`` and ``|x - p| = slant``.

    Newton's method on the two equations (metres) in (lat, lon), component-wise for speed.
    Returns (lat, lon, converged).
    """
    phi, lam = _first_guess(p, v_hat, slant, h)
    px, py, pz = p[:, 0], p[:, 1], p[:, 2]
    vx, vy, vz = v_hat[:, 0], v_hat[:, 1], v_hat[:, 2]
    active = np.isfinite(phi)
    converged = np.zeros(phi.shape, dtype=bool)
    for _ in range(MAX_ITERATIONS):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        ph, la, hh, r = phi[idx], lam[idx], h[idx], slant[idx]
        sp, cp, sl, cl = np.sin(ph), np.cos(ph), np.sin(la), np.cos(la)
        w2 = 1.0 - WGS84_E2 * sp * sp
        n = WGS84_A / np.sqrt(w2)
        m = n * (1.0 - WGS84_E2) / w2 + hh
        nh = (n + hh) * cp
        dx, dy, dz = nh * cl - px[idx], nh * sl - py[idx], (n * (1.0 - WGS84_E2) + hh) * sp - pz[idx]
        # partial derivatives of x: d/dphi = m * (-sp cl, -sp sl, cp); d/dlam = nh * (-sl, cl, 0)
        ax, ay, az = vx[idx], vy[idx], vz[idx]
        f1 = ax * dx + ay * dy + az * dz
        f2 = (dx * dx + dy * dy + dz * dz - r * r) / (2.0 * r)
        j11 = m * (-(ax * cl + ay * sl) * sp + az * cp)
        j12 = nh * (ay * cl - ax * sl)
        j21 = m * (-(dx * cl + dy * sl) * sp + dz * cp) / r
        j22 = nh * (dy * cl - dx * sl) / r
        det = j11 * j22 - j12 * j21
        d_phi = (f1 * j22 - f2 * j12) / det
        d_lam = (f2 * j11 - f1 * j21) / det
        phi[idx] = ph - d_phi
        lam[idx] = la - d_lam
        done = np.maximum(np.abs(d_phi), np.abs(d_lam)) <= GEOLOCATE_TOLERANCE
        converged[idx[done]] = True
        active[idx[done | ~np.isfinite(d_phi)]] = False
    return phi, lam, converged


def _first_guess(p: np.ndarray, v_hat: np.ndarray, slant: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Geodetic (lat, lon) in radians of the right-looking point at range ``slant`` from ``p`` on a
    sphere of the ellipsoid radius under the satellite + ``h``, in the plane perpendicular to ``v_hat``."""
    p_perp = p - _dot(p, v_hat)[..., None] * v_hat
    norm_perp = np.linalg.norm(p_perp, axis=-1)
    up = p_perp / norm_perp[..., None]
    right = np.cross(v_hat, up)
    norm_p = np.linalg.norm(p, axis=-1)
    sin2 = (p[..., 2] / norm_p) ** 2
    radius = WGS84_A * WGS84_B / np.sqrt(WGS84_B**2 * (1.0 - sin2) + WGS84_A**2 * sin2) + h
    cos_look = (norm_p**2 + slant**2 - radius**2) / (2.0 * slant * norm_perp)
    cos_look = np.where(np.abs(cos_look) <= 1.0, cos_look, np.nan)
    sin_look = np.sqrt(1.0 - cos_look**2)
    x = p + slant[..., None] * (sin_look[..., None] * right - cos_look[..., None] * up)
    lat, lon, _ = ecef_to_geodetic(x[..., 0], x[..., 1], x[..., 2])
    return np.radians(lat), np.radians(lon)
