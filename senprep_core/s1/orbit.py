"""Sentinel-1 orbit interpolation: satellite position, velocity and acceleration at any time.

The orbit is given as state vectors (position + velocity, Earth-fixed) every ~10 s. Two
interpolators, both exact at the samples and built once as one polynomial per sample interval:

- ``"lagrange"`` (default): the degree-7 polynomial through the 8 samples centred on the
  interval, separately for positions and for velocities; the acceleration is the derivative
  of the velocity polynomial. This reproduces the IPF: the zero-Doppler times of the
  annotation tie points are matched to their 1 µs rounding, also for "Downlink" annotation
  orbits whose velocities disagree with the derivative of the positions by ~1.5 cm/s.
- ``"hermite"``: the cubic matching positions and velocities at both ends of the interval;
  velocity and acceleration are its derivatives. Its error is below 1 mm for a consistent
  orbit, but it mixes the two kinds of samples, which costs up to 0.03 line on downlink orbits.

Times are float64 seconds since the orbit's ``epoch`` (the product epoch for annotation orbits).
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from senprep_core.errors import OrbitError
from senprep_core.s1.model import OrbitStateVectors

DEFAULT_MAX_EXTRAPOLATION = 5.0  # seconds beyond the first/last sample still accepted
LAGRANGE_ORDER = 8  # samples used by the Lagrange interpolator
_MAX_LOOPED_INTERVALS = 16


class Orbit:
    """Interpolated satellite orbit built from :class:`OrbitStateVectors`.

    ``method`` is ``"lagrange"`` (default; ``order`` samples around each interval, fewer when the
    orbit has fewer) or
    ``"hermite"`` (cubic Hermite on positions and velocities). Times farther than
    ``max_extrapolation`` seconds outside the samples raise :class:`OrbitError`.
    """

    __slots__ = ("_acc_coef", "_h", "_p", "_pos_coef", "_t", "_vel_coef", "max_extrapolation", "method", "vectors")

    def __init__(
        self,
        vectors: OrbitStateVectors,
        method: str = "lagrange",
        max_extrapolation: float = DEFAULT_MAX_EXTRAPOLATION,
        order: int = LAGRANGE_ORDER,
    ) -> None:
        if method not in ("hermite", "lagrange"):
            raise OrbitError(f"unknown orbit interpolation method {method!r}: use 'hermite' or 'lagrange'")
        times = np.asarray(vectors.times, dtype=np.float64).ravel()
        positions = np.asarray(vectors.positions, dtype=np.float64)
        velocities = np.asarray(vectors.velocities, dtype=np.float64)
        n = times.size
        if positions.shape != (n, 3) or velocities.shape != (n, 3):
            raise OrbitError(
                f"orbit ({vectors.source}) has {n} times but positions {positions.shape} and velocities "
                f"{velocities.shape}; expected ({n}, 3) each: the orbit data is malformed, re-read the product"
            )
        if not (np.isfinite(times).all() and np.isfinite(positions).all() and np.isfinite(velocities).all()):
            raise OrbitError(f"orbit ({vectors.source}) holds non-finite values: the orbit data is corrupt")
        order_idx = np.argsort(times, kind="stable")
        times, positions, velocities = times[order_idx], positions[order_idx], velocities[order_idx]
        keep = np.concatenate([[True], np.diff(times) > 0.0])
        times, positions, velocities = times[keep], positions[keep], velocities[keep]
        if times.size < 2:
            raise OrbitError(
                f"orbit ({vectors.source}) has {times.size} distinct state vector(s); interpolation needs at "
                "least 2 (8 for full accuracy): use an orbit file (POEORB/RESORB) covering the acquisition"
            )
        self.vectors = vectors
        self.method = method
        self.max_extrapolation = float(max_extrapolation)
        self._t = times
        self._p = positions
        self._h = np.diff(times)
        if method == "hermite":
            self._pos_coef = _hermite_coefficients(positions, velocities, self._h)
            self._vel_coef = _derivative(self._pos_coef, self._h)
        else:
            self._pos_coef = _lagrange_coefficients(times, positions, order)
            self._vel_coef = _lagrange_coefficients(times, velocities, order)
            self._vel_coef[:, 0] += velocities[:-1]
        self._acc_coef = _derivative(self._vel_coef, self._h)

    # ----- coverage -----------------------------------------------------------------------------
    @property
    def start(self) -> float:
        """Time of the first state vector (seconds since epoch)."""
        return float(self._t[0])

    @property
    def stop(self) -> float:
        """Time of the last state vector (seconds since epoch)."""
        return float(self._t[-1])

    @property
    def times(self) -> np.ndarray:
        """Sorted, distinct sample times (seconds since epoch)."""
        return self._t

    def covers(self, t: np.ndarray | float) -> np.ndarray:
        """True where ``t`` lies within the samples extended by ``max_extrapolation``."""
        t = np.asarray(t, dtype=np.float64)
        return (t >= self.start - self.max_extrapolation) & (t <= self.stop + self.max_extrapolation)

    def check_times(self, t: np.ndarray | float) -> None:
        """Raise :class:`OrbitError` when a finite time in ``t`` is outside the orbit's coverage."""
        t = np.asarray(t, dtype=np.float64)
        finite = t[np.isfinite(t)]
        if finite.size == 0:
            return
        lo, hi = float(finite.min()), float(finite.max())
        if lo < self.start - self.max_extrapolation or hi > self.stop + self.max_extrapolation:
            epoch = self.vectors.epoch
            raise OrbitError(
                f"orbit ({self.vectors.source}) covers {epoch + timedelta(seconds=self.start)} to "
                f"{epoch + timedelta(seconds=self.stop)} but times from {epoch + timedelta(seconds=lo)} to "
                f"{epoch + timedelta(seconds=hi)} were asked for: use an orbit (POEORB/RESORB file) that covers "
                "the acquisition, or check that the product's times are right"
            )

    # ----- evaluation ---------------------------------------------------------------------------
    def position(self, t: np.ndarray | float) -> np.ndarray:
        """Satellite position (..., 3) in metres (ECEF) at times ``t``."""
        return self.state(t, derivatives=0)[0]

    def velocity(self, t: np.ndarray | float) -> np.ndarray:
        """Satellite velocity (..., 3) in m/s (ECEF) at times ``t``."""
        return self.state(t, derivatives=1)[1]

    def acceleration(self, t: np.ndarray | float) -> np.ndarray:
        """Satellite acceleration (..., 3) in m/s² (ECEF frame) at times ``t``."""
        return self.state(t, derivatives=2)[2]

    def state(self, t: np.ndarray | float, derivatives: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(position, velocity, acceleration) at times ``t``, each (..., 3); checks coverage.

        With ``derivatives`` < 2 the unrequested arrays are empty (saves time).
        """
        self.check_times(t)
        return self.state_unchecked(t, derivatives)

    def state_unchecked(self, t: np.ndarray | float, derivatives: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Like :meth:`state` without the coverage check (times are clipped to the coverage)."""
        times = np.asarray(t, dtype=np.float64)
        if times.ndim == 0:
            one = self.state_unchecked(times[None], derivatives)
            return one[0][0], one[1][0] if one[1].size else one[1], one[2][0] if one[2].size else one[2]
        times = np.clip(times, self.start - self.max_extrapolation, self.stop + self.max_extrapolation)
        k = np.clip(np.searchsorted(self._t, times, side="right") - 1, 0, self._t.size - 2)
        used = np.flatnonzero(np.bincount(k.ravel(), minlength=self._t.size - 1))
        if used.size > _MAX_LOOPED_INTERVALS:
            return self._evaluate(k, times, derivatives)
        # few intervals (the usual case: one image spans ~3 intervals): no per-element gathers
        if used.size == 1:
            return self._evaluate(used, times, derivatives)
        position = np.empty((*times.shape, 3))
        velocity = np.empty((*times.shape, 3)) if derivatives >= 1 else np.zeros(0)
        acceleration = np.empty((*times.shape, 3)) if derivatives >= 2 else np.zeros(0)
        for j in used:
            mask = k == j
            part = self._evaluate(used[used == j], times[mask], derivatives)
            position[mask] = part[0]
            if derivatives >= 1:
                velocity[mask] = part[1]
            if derivatives >= 2:
                acceleration[mask] = part[2]
        return position, velocity, acceleration

    def _evaluate(self, k: np.ndarray, t: np.ndarray, derivatives: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Evaluate the interval polynomials ``k`` (same shape as ``t``, or one interval) at ``t``."""
        if k.shape != t.shape:  # one interval: its coefficients broadcast over every time
            k = k.reshape((1,) * t.ndim)
        s = (t - self._t[k]) / self._h[k]
        position = self._p[k] + _horner(self._pos_coef, k, s)
        empty = np.zeros(0)
        velocity = acceleration = empty
        if derivatives >= 1:
            velocity = _horner(self._vel_coef, k, s)
        if derivatives >= 2:
            acceleration = _horner(self._acc_coef, k, s)
        return position, velocity, acceleration


def _hermite_coefficients(pos: np.ndarray, vel: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Cubic Hermite coefficients (n-1, 4, 3) of ``p(s) - p_k`` in ``s = (t - t_k) / h_k`` per interval."""
    p0, p1 = pos[:-1], pos[1:]
    m0, m1 = vel[:-1] * h[:, None], vel[1:] * h[:, None]
    dp = p1 - p0
    return np.stack([np.zeros_like(p0), m0, 3 * dp - 2 * m0 - m1, m0 + m1 - 2 * dp], axis=1)


def _lagrange_coefficients(times: np.ndarray, values: np.ndarray, order: int) -> np.ndarray:
    """Per interval k, monomial coefficients (n-1, order, 3) in ``s = (t - t_k) / h_k`` of the polynomial
    through the ``order`` samples centred on the interval, minus ``values[k]``."""
    n = times.size
    order = min(order, n)
    k = np.arange(n - 1)
    first = np.clip(k - (order // 2 - 1), 0, n - order)
    idx = first[:, None] + np.arange(order)
    h = times[k + 1] - times[k]
    nodes = (times[idx] - times[k, None]) / h[:, None]
    vandermonde = nodes[..., None] ** np.arange(order)
    return np.linalg.solve(vandermonde, values[idx] - values[k, None, :])


def _derivative(coefficients: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Coefficients of d/dt of per-interval polynomials in ``s = (t - t_k) / h_k``."""
    degrees = np.arange(1, coefficients.shape[1])[None, :, None]
    return coefficients[:, 1:] * degrees / h[:, None, None]


def _horner(coefficients: np.ndarray, k: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Evaluate the polynomial of interval ``k`` at ``s`` (per element) -> (..., 3)."""
    s = s[..., None]
    result = coefficients[k, -1]
    for degree in range(coefficients.shape[1] - 2, -1, -1):
        result = result * s + coefficients[k, degree]
    return result
