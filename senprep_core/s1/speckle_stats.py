"""Statistics of speckle (unit-mean Gamma(L) intensity) that the speckle filters' thresholds and bias
corrections come from (see :mod:`senprep_core.s1.speckle`)."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import optimize, special


@lru_cache(maxsize=64)
def lee_sigma_range(looks: float, sigma: float) -> tuple[float, float, float]:
    """The improved Lee sigma range ``(I1, I2, eta2)`` for L-look intensity speckle.

    ``[I1, I2]`` holds probability ``sigma`` of unit-mean Gamma(L) speckle and the speckle
    restricted to it keeps mean 1, so averaging the selected pixels is unbiased; ``eta2`` is the
    variance of the restricted speckle (replaces ``1/L`` in the MMSE step).
    """
    shape = float(looks)

    def upper(low: float) -> float:
        start = float(special.gammainc(shape, shape * low))
        return float(special.gammaincinv(shape, min(sigma + start, 1.0))) / shape

    def excess(low: float) -> float:
        high = upper(low)
        first = special.gammainc(shape + 1.0, shape * high) - special.gammainc(shape + 1.0, shape * low)
        return float(first) - sigma

    low_max = float(special.gammaincinv(shape, 1.0 - sigma)) / shape
    low = float(optimize.brentq(excess, 0.0, low_max, xtol=1e-13, rtol=1e-13))
    high = upper(low)
    second = (
        (shape + 1.0)
        / shape
        * (special.gammainc(shape + 2.0, shape * high) - special.gammainc(shape + 2.0, shape * low))
    )
    return low, high, float(second) / sigma - 1.0


@lru_cache(maxsize=64)
def median_bias_factor(looks: float, n: int) -> float:
    """``1 / E[median of n unit-mean Gamma(looks) samples]`` for odd ``n`` (Gauss-Jacobi quadrature).

    The expected sample median is ``∫ F⁻¹(u) Beta(u; k, n-k+1) du`` with ``k = (n+1)/2``; for
    single-look speckle it equals ``H_n - H_(k-1)`` (harmonic numbers).
    """
    if n < 1 or n % 2 == 0:
        raise ValueError(f"median_bias_factor needs an odd sample count, got {n}")
    k = (n + 1) // 2
    nodes, weights = special.roots_jacobi(96, n - k, k - 1)
    quantiles = special.gammaincinv(float(looks), (1.0 + nodes) / 2.0) / float(looks)
    return float(np.sum(weights) / np.sum(weights * quantiles))


GAMMA_MAP_SIGNIFICANCE_Z = 1.96  # one-sided 97.5 % quantile of the standard normal


def gamma_map_homogeneity_limit(looks: float, n: int) -> float:
    """Largest ``Ci²`` that Gamma-MAP still treats as pure speckle in an ``n``-pixel window.

    On homogeneous L-look intensity the window's ``v / m²`` has mean ``Cu² = 1/L`` and, to first
    order, standard deviation ``Cu² sqrt(2 (1 + Cu²) / n)``; the limit is its one-sided 97.5 %
    level, kept below the filter's upper threshold ``2 Cu²``.
    """
    cu2 = 1.0 / looks
    spread = math.sqrt(2.0 * (1.0 + cu2) / n)
    return min(cu2 * (1.0 + GAMMA_MAP_SIGNIFICANCE_Z * spread), 2.0 * cu2)
