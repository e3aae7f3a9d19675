"""Speckle filters for Sentinel-1 intensity images in radar geometry.

Every filter works on a 2-D intensity image (linear power, e.g. sigma0 before dB), NaN (or any
non-finite value) meaning "no data". Notation: ``z`` the centre pixel, ``m`` and ``v`` the local
mean and (unbiased) variance over the filter window, ``L`` the equivalent number of looks of the
input (:attr:`SpeckleFilter.looks`), ``Cu² = 1/L`` the squared speckle coefficient of variation,
``Ci² = v/m²`` the local one.

``boxcar``
    ``x = m``. Mean preserving; raises the ENL by about the number of pixels in the window;
    blurs edges symmetrically (an edge keeps its position) and smears point targets.
``median``
    ``x = c(L, n) · median(window)``. The median of speckle is below its mean (for single-look
    intensity the population median is ``ln 2 ≈ 0.69`` of the mean), so the plain median darkens
    the image. The output is multiplied by ``c(L, n) = 1 / E[median of n unit-mean Gamma(L)
    samples]`` (:func:`median_bias_factor`; 1.403 for L = 1 and a 5x5 window), which makes the
    filter mean preserving on homogeneous L-look speckle. The factor assumes speckle: on
    noise-free data it scales values by ``c``.
``lee`` (Lee 1980)
    Local linear MMSE: ``x = m + k (z - m)``, ``k = clip(v_x / v, 0, 1)``,
    ``v_x = (v - m² Cu²) / (1 + Cu²)``. Homogeneous areas (``Ci ≤ Cu``) get the mean, strongly
    varying areas keep ``z``.
``refined_lee`` (Lee 1981, refined filter)
    The window (7x7 by default) is split into a 3x3 arrangement of overlapping sub-windows
    (3x3 pixels at a stride of 2 for 7x7); four edge templates (vertical, horizontal, two
    diagonals) applied to the sub-window means give the edge direction with the largest
    gradient; of the two half windows along that edge (each half includes the edge line), the
    one whose neighbouring sub-window mean is closer to the centre sub-window mean is kept, and
    the Lee MMSE formula is applied with the mean and variance of that half window only. Edges
    stay sharp because statistics never mix both sides; homogeneous areas are averaged over half
    the window.
``lee_sigma`` (Lee et al. 2009, improved sigma filter)
    1. Point targets: ``Z98 = q98(L) · m_N`` is the 98th percentile of L-look speckle scaled by
       the window mean (a local stand-in for the paper's whole-image 98th percentile, so the
       result does not depend on the image extent). A pixel with ``z ≥ Z98`` whose target
       window (3x3) holds at least ``K = ceil(5 T² / 9)`` pixels ``≥ Z98`` (K = 5 for 3x3) is
       kept unfiltered.
    2. A-priori mean ``x0``: the Lee MMSE estimate over the target window.
    3. Pixels of the window (7x7) inside ``[I1 x0, I2 x0]`` are selected, where ``[I1, I2]``
       holds probability ``sigma`` of unit-mean Gamma(L) speckle and the speckle restricted to it
       still has mean 1 (:func:`lee_sigma_range`); ``η²`` is its normalised variance.
    4. ``x = Lee MMSE of z`` with the mean and variance of the selected pixels and ``η²`` in
       place of ``Cu²``. Without any selected pixel ``x = x0``.
``gamma_map`` (Lopes et al. 1990)
    ``Ci² ≤ T``: ``x = m``; ``Ci ≥ Cmax = √2 Cu``: ``x = z``; otherwise the maximum a posteriori
    estimate for Gamma-distributed reflectivity, ``α = (1 + Cu²) / (Ci² - Cu²)``,
    ``x = (B m + sqrt(m² B² + 4 α L z m)) / (2 α)`` with ``B = α - L - 1``. ``T`` is the 97.5 %
    level of ``Ci²`` on pure speckle (:func:`gamma_map_homogeneity_limit`). Lopes' test ``Ci ≤ Cu``
    sends ~40 % of a homogeneous area to the MAP branch only because window statistics are
    noisy, and the posterior mode lies below the mean: -4.6 % of the mean at L = 1.
``frost`` (Frost et al. 1982)
    ``x = Σ w z / Σ w`` over the window with ``w = exp(-K Ci² d)``, ``d`` the distance to the
    centre in pixels and ``K`` the damping factor (narrow on single-look data, where ``Ci² ≈ 1``).

Mean ratio / ENL gain on simulated homogeneous speckle (512², defaults, ``looks`` = the data's L)::

    filter        L = 1           L = 4.4         filter        L = 1           L = 4.4
    boxcar        1.000 / 25      1.000 / 25      lee_sigma     0.985 / 17      0.997 / 15
    median        1.00  / 12.5    1.001 / 15      refined_lee   0.985 / 17      0.997 / 15
    lee           1.000 / 20      1.000 / 16      gamma_map     0.994 / 12.8    0.997 / 16
    frost         1.000 / 2.8     1.000 / 21   (K = 2; 9.6 on L = 1 with K = 1)

Lee Sigma and refined Lee lose ~1.5 % of the mean on single-look data because their pixel
selection (sigma range around a noisy a-priori mean; the half window away from the strongest
gradient, which bright outliers dominate) favours the darker samples of the skewed
distribution. Step edges (10x contrast) stay within 0.2 px for every filter except the median,
which on single-look data moves an edge ~1 px into the bright side (0.35 px at L = 4.4): a
window straddling the edge takes its median from the lower tail of the bright side. 2000² float32
on two cores: 0.05 s (boxcar) to 0.9 s (refined Lee).

No-data (NaN, ±inf, and beyond the image borders) stays NaN and never spreads: every other pixel
uses the valid pixels of its window only.

Window independence: a pixel's result only depends on the input within :attr:`SpeckleFilter.margin`
pixels of it, and the computation is the same arithmetic wherever the pixel sits, so filtering
``ROI + margin`` and cropping gives bit-identical values to filtering the whole image and
cropping. The image is processed in row strips on a small thread pool. Lee Sigma, Lee, boxcar and
Gamma-MAP run compiled kernels (:mod:`speckle_kernels`, numba, GIL released) doing the numpy kernels'
arithmetic in the same order (same values; 2.5-3x faster for Lee Sigma); the others run numpy and
``scipy.ndimage``, which release the GIL too.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, special

from senprep_core.errors import ConfigError
from senprep_core.s1 import speckle_kernels as kernels
from senprep_core.s1.speckle_stats import gamma_map_homogeneity_limit, lee_sigma_range, median_bias_factor
from senprep_core.threads import threads_for

__all__ = [
    "DEFAULT_WINDOWS",
    "FILTER_NAMES",
    "SpeckleFilter",
    "apply_speckle_filter",
    "gamma_map_homogeneity_limit",
    "lee_sigma_range",
    "median_bias_factor",
]

logger = logging.getLogger(__name__)

FILTER_NAMES = ("none", "boxcar", "median", "lee", "lee_sigma", "refined_lee", "gamma_map", "frost")
"""The filters :func:`apply_speckle_filter` knows."""

DEFAULT_WINDOWS = {
    "none": 1,
    "boxcar": 5,
    "median": 5,
    "lee": 5,
    "gamma_map": 5,
    "frost": 5,
    "refined_lee": 7,
    "lee_sigma": 7,
}
"""Window size used when :attr:`SpeckleFilter.window` is 0 (SNAP-like defaults)."""

MAX_WINDOW = 25
_KEY = "sentinel1.speckle_filter"
_STRIP_PIXELS = 160_000


@dataclass(frozen=True)
class SpeckleFilter:
    """Which speckle filter to run and its parameters.

    ``window``: odd window size in pixels (3..25; 5..25 for ``refined_lee`` and 5..17 for
    ``lee_sigma``); 0 picks the filter's default (7 for ``lee_sigma`` and ``refined_lee``,
    5 otherwise) and is replaced by it. ``target_window`` (3 or 5) and ``sigma`` (0.5..0.9)
    are used by ``lee_sigma`` only, ``damping`` (0..100] by ``frost`` only. ``looks`` is the
    equivalent number of looks of the input: 1.0 (single look) is the conservative default;
    Sentinel-1 IW GRDH has ENL ≈ 4.4, and a higher value makes the adaptive filters smooth less
    (they then treat less variance as speckle).
    """

    name: str = "lee_sigma"
    window: int = 0
    target_window: int = 3
    sigma: float = 0.9
    looks: float = 1.0
    damping: float = 2.0

    def __post_init__(self) -> None:
        if self.name not in FILTER_NAMES:
            raise ConfigError(f"{_KEY}.name", self.name, f"use one of {', '.join(FILTER_NAMES)}")
        window = self.window
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)):
            raise ConfigError(f"{_KEY}.window", window, "give an odd whole number of pixels, e.g. 5 or 7 (0 = default)")
        window = int(window)
        if window == 0:
            window = DEFAULT_WINDOWS[self.name]
        low = 5 if self.name in ("refined_lee", "lee_sigma") else 3
        high = 17 if self.name == "lee_sigma" else MAX_WINDOW
        if self.name != "none" and (window % 2 == 0 or not low <= window <= high):
            raise ConfigError(
                f"{_KEY}.window", self.window, f"the {self.name} window must be odd and between {low} and {high}"
            )
        object.__setattr__(self, "window", window if self.name != "none" else 1)
        target = self.target_window
        if isinstance(target, bool) or target not in (3, 5):
            raise ConfigError(f"{_KEY}.target_window", target, "use 3 or 5 (the Lee Sigma target window)")
        if self.name == "lee_sigma" and target >= window:
            raise ConfigError(
                f"{_KEY}.target_window", target, f"must be smaller than the window ({window}); use 3 or a larger window"
            )
        object.__setattr__(self, "target_window", int(target))
        self._set_number("sigma", 0.5, 0.9, "use a value from 0.5 to 0.9 (SNAP offers 0.5, 0.6, 0.7, 0.8, 0.9)")
        self._set_number("looks", 1e-3, 1000.0, "give the input's equivalent number of looks, > 0 (1 = single look)")
        self._set_number("damping", 1e-6, 100.0, "use a damping factor > 0 and <= 100 (SNAP's default is 2)")

    def _set_number(self, field: str, low: float, high: float, fix: str) -> None:
        value = getattr(self, field)
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ConfigError(f"{_KEY}.{field}", value, fix)
        number = float(value)
        if not (math.isfinite(number) and low <= number <= high):
            raise ConfigError(f"{_KEY}.{field}", value, fix)
        object.__setattr__(self, field, number)

    @property
    def margin(self) -> int:
        """Pixels of context needed on each side: read the ROI window grown by this much."""
        return 0 if self.name == "none" else self.window // 2


# --------------------------------------------------------------------------------------------
# Block helpers. A block holds the rows of one strip plus ``m`` rows/columns of context on every
# side (NaN outside the image). Kernels return the (h, w) interior.


@dataclass(frozen=True)
class _Block:
    data: np.ndarray  # float32 with NaN for no data, shape (h + 2m, w + 2m)
    valid: np.ndarray  # float32 1/0
    values: np.ndarray  # float32, 0 where no data
    squares: np.ndarray  # float32
    full: bool  # True when every pixel of the block is valid
    m: int

    @classmethod
    def of(cls, data: np.ndarray, m: int) -> _Block:
        valid = np.isfinite(data)
        values = np.where(valid, data, np.float32(0.0))
        return cls(data, valid.astype(np.float32), values, values * values, bool(valid.all()), m)

    @property
    def h(self) -> int:
        return self.data.shape[0] - 2 * self.m

    @property
    def w(self) -> int:
        return self.data.shape[1] - 2 * self.m

    def shifted(self, array: np.ndarray, di: int = 0, dj: int = 0, grow: int = 0) -> np.ndarray:
        """View of ``array`` shifted by (di, dj) over the interior grown by ``grow`` on each side."""
        m = self.m
        return array[m + di - grow : m + di + self.h + grow, m + dj - grow : m + dj + self.w + grow]

    def box_sum(self, array: np.ndarray, size: int, grow: int = 0) -> np.ndarray:
        """Sum over a size x size window centred on each interior pixel (float64, shape h x w + 2 grow)."""
        r = size // 2
        h, w = self.h + 2 * grow, self.w + 2 * grow
        sub = self.shifted(array, grow=grow + r)
        rows = sub[0:h].astype(np.float64)
        for k in range(1, size):
            rows += sub[k : k + h]
        out = rows[:, 0:w].copy()
        for k in range(1, size):
            out += rows[:, k : k + w]
        return out

    def count(self, size: int, grow: int = 0) -> np.ndarray | float:
        """Valid pixels per window (a plain number when the block has no no-data)."""
        return float(size * size) if self.full else self.box_sum(self.valid, size, grow)

    def stats(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Masked mean and unbiased variance over a size x size window."""
        return _mean_var(self.box_sum(self.values, size), self.box_sum(self.squares, size), self.count(size))


def _mean_var(total: np.ndarray, squares: np.ndarray, count: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = total / count
        var = np.where(np.greater(count, 1.0), (squares - total * mean) / (np.asarray(count) - 1.0), 0.0)
    return mean, np.maximum(var, 0.0)


def _mmse(z: np.ndarray, mean: np.ndarray, var: np.ndarray, noise2: float) -> np.ndarray:
    """Lee's MMSE estimate ``m + k (z - m)`` for multiplicative noise of squared variation ``noise2``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        signal = (var - mean * mean * noise2) / (1.0 + noise2)
        gain = np.where(var > 0.0, signal / var, 0.0)
    gain = np.clip(gain, 0.0, 1.0)
    return mean + gain * (z - mean)


def _offsets(size: int) -> list[tuple[int, int]]:
    r = size // 2
    return [(di, dj) for di in range(-r, r + 1) for dj in range(-r, r + 1)]


# --------------------------------------------------------------------------------------------
# The filters (each: block -> interior estimate).


def _boxcar(block: _Block, spec: SpeckleFilter) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return block.box_sum(block.values, spec.window) / block.count(spec.window)


def _lee(block: _Block, spec: SpeckleFilter) -> np.ndarray:
    mean, var = block.stats(spec.window)
    return _mmse(block.shifted(block.values), mean, var, 1.0 / spec.looks)


def _gamma_map(block: _Block, spec: SpeckleFilter) -> np.ndarray:
    looks = spec.looks
    cu2 = 1.0 / looks
    mean, var = block.stats(spec.window)
    z = block.shifted(block.values).astype(np.float64)
    out = mean.copy()
    positive = mean > 0.0
    ci2 = np.zeros_like(mean)
    np.divide(var, mean * mean, out=ci2, where=positive)
    homogeneous = gamma_map_homogeneity_limit(looks, spec.window * spec.window)
    middle = positive & (ci2 > homogeneous) & (ci2 < 2.0 * cu2)
    alpha = (1.0 + cu2) / (ci2[middle] - cu2)
    b = alpha - looks - 1.0
    m, zz = mean[middle], z[middle]
    root = np.sqrt(np.maximum(m * m * b * b + 4.0 * alpha * looks * zz * m, 0.0))
    out[middle] = (b * m + root) / (2.0 * alpha)
    strong = positive & (ci2 >= 2.0 * cu2)
    out[strong] = z[strong]
    return out


def _frost(block: _Block, spec: SpeckleFilter) -> np.ndarray:
    mean, var = block.stats(spec.window)
    ci2 = np.zeros_like(mean)
    np.divide(var, mean * mean, out=ci2, where=mean > 0.0)
    rate = spec.damping * ci2
    rings: dict[int, list[tuple[int, int]]] = {}
    for di, dj in _offsets(spec.window):
        rings.setdefault(di * di + dj * dj, []).append((di, dj))
    numerator = np.zeros_like(mean)
    denominator = np.zeros_like(mean)
    for d2, offsets in sorted(rings.items()):
        weight = np.exp(-rate * math.sqrt(d2)) if d2 else np.ones_like(mean)
        ring = np.zeros_like(mean)
        for di, dj in offsets:
            ring += block.shifted(block.values, di, dj)
        numerator += weight * ring
        if block.full:
            denominator += weight * len(offsets)
        else:
            count = np.zeros_like(mean)
            for di, dj in offsets:
                count += block.shifted(block.valid, di, dj)
            denominator += weight * count
    with np.errstate(divide="ignore", invalid="ignore"):
        return numerator / denominator


def _median(block: _Block, spec: SpeckleFilter) -> np.ndarray:
    size = spec.window
    factor = median_bias_factor(spec.looks, size * size)
    out = block.shifted(ndimage.median_filter(block.values, size=size, mode="nearest")).astype(np.float64)
    if not block.full:
        counts = block.box_sum(block.valid, size)
        rows, cols = np.nonzero((counts < size * size) & (counts > 0))
        if rows.size:
            m = block.m
            offsets = np.array(_offsets(size))
            samples = block.data[rows[:, None] + m + offsets[:, 0], cols[:, None] + m + offsets[:, 1]]
            samples.sort(axis=1)  # NaN go last
            n = counts[rows, cols].astype(np.intp)
            lower = np.take_along_axis(samples, ((n - 1) // 2)[:, None], axis=1)[:, 0]
            upper = np.take_along_axis(samples, (n // 2)[:, None], axis=1)[:, 0]
            out[rows, cols] = (lower.astype(np.float64) + upper) / 2.0
    return out * factor


def _lee_sigma(block: _Block, spec: SpeckleFilter) -> np.ndarray:
    looks, size, target = spec.looks, spec.window, spec.target_window
    low, high, eta2 = lee_sigma_range(looks, spec.sigma)
    z = block.shifted(block.values)
    mean_t, var_t = block.stats(target)
    prior = _mmse(z, mean_t, var_t, 1.0 / looks)
    # Point targets: bright pixels with enough bright neighbours stay as they are.
    with np.errstate(divide="ignore", invalid="ignore"):
        local_mean = block.box_sum(block.values, size) / block.count(size)
    z98 = (float(special.gammaincinv(looks, 0.98)) / looks * local_mean).astype(np.float32)
    bright = np.zeros(z.shape, dtype=np.int16)
    for di, dj in _offsets(target):
        bright += block.shifted(block.data, di, dj) >= z98
    point = (z >= z98) & (bright >= math.ceil(5 * target * target / 9))
    # Pixels inside the sigma range around the a-priori mean.
    lo = (low * prior).astype(np.float32)
    hi = (high * prior).astype(np.float32)
    total = np.zeros(z.shape, dtype=np.float32)
    squares = np.zeros(z.shape, dtype=np.float32)
    count = np.zeros(z.shape, dtype=np.float32)
    inside = np.empty(z.shape, dtype=bool)
    below = np.empty(z.shape, dtype=bool)
    picked = np.empty(z.shape, dtype=np.float32)
    for di, dj in _offsets(size):
        sample = block.shifted(block.data, di, dj)
        np.greater_equal(sample, lo, out=inside)
        np.less_equal(sample, hi, out=below)
        inside &= below
        count += inside
        np.multiply(block.shifted(block.values, di, dj), inside, out=picked)
        total += picked
        np.multiply(block.shifted(block.squares, di, dj), inside, out=picked)
        squares += picked
    mean_s, var_s = _mean_var(total.astype(np.float64), squares.astype(np.float64), count.astype(np.float64))
    out = _mmse(z, mean_s, var_s, eta2)
    out = np.where(count > 0, out, prior)
    return np.where(point, z, out)


# Refined Lee: directional half windows. Index: 0 left, 1 right, 2 up, 3 down, 4 lower-left
# (col <= row), 5 upper-right (col >= row), 6 upper-left (row + col <= 0), 7 lower-right.
def _directional_sum(partial: list[np.ndarray], direction: int, half: int, h: int) -> np.ndarray:
    """Sum over one directional half window (see the index above) from :func:`_row_partials`.

    Window row ``i`` (-half..half) of output row ``r`` is row ``r + i + half`` of each partial.
    """
    size = 2 * half + 1
    total = np.zeros_like(partial[0][0:h])
    for i in range(-half, half + 1):
        rows = slice(i + half, i + half + h)
        if direction == 0:
            row = partial[half + 1][rows]
        elif direction == 1:
            row = partial[size][rows] - partial[half][rows]
        elif direction in (2, 3):
            if (direction == 2 and i > 0) or (direction == 3 and i < 0):
                continue
            row = partial[size][rows]
        elif direction == 4:
            row = partial[i + half + 1][rows]
        elif direction == 5:
            row = partial[size][rows] - partial[i + half][rows]
        elif direction == 6:
            row = partial[half - i + 1][rows]
        else:
            row = partial[size][rows] - partial[half - i][rows]
        total += row
    return total


def _row_partials(block: _Block, array: np.ndarray, half: int) -> list[np.ndarray]:
    """Running column sums: ``partial[k][r, c]`` = sum of ``array`` over columns ``c - half .. c - half + k - 1``.

    Rows cover the interior grown by ``half`` above and below; ``partial[0]`` is zero.
    """
    m, h, w = block.m, block.h, block.w
    rows = array[m - half : m + h + half, m - half : m + w + half]
    partial = [np.zeros((h + 2 * half, w), dtype=np.float64)]
    for k in range(2 * half + 1):
        partial.append(partial[-1] + rows[:, k : k + w])
    return partial


def _refined_lee(block: _Block, spec: SpeckleFilter) -> np.ndarray:
    size = spec.window
    half = size // 2
    stride = (size - 1) // 3
    sub = size - 2 * stride
    h, w = block.h, block.w
    with np.errstate(divide="ignore", invalid="ignore"):
        sub_means = block.box_sum(block.values, sub, grow=stride) / block.count(sub, grow=stride)
    sub_means = np.nan_to_num(sub_means, nan=0.0)

    def mean_at(a: int, b: int) -> np.ndarray:
        r0, c0 = stride + a * stride, stride + b * stride
        return sub_means[r0 : r0 + h, c0 : c0 + w]

    grid = {(a, b): mean_at(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1)}
    centre = grid[(0, 0)]

    def side_sum(cells: list[tuple[int, int]]) -> np.ndarray:
        return grid[cells[0]] + grid[cells[1]] + grid[cells[2]]

    gradients = np.stack(
        [
            side_sum([(-1, 1), (0, 1), (1, 1)]) - side_sum([(-1, -1), (0, -1), (1, -1)]),
            side_sum([(1, -1), (1, 0), (1, 1)]) - side_sum([(-1, -1), (-1, 0), (-1, 1)]),
            side_sum([(-1, 0), (-1, 1), (0, 1)]) - side_sum([(0, -1), (1, -1), (1, 0)]),
            side_sum([(-1, -1), (-1, 0), (0, -1)]) - side_sum([(0, 1), (1, 0), (1, 1)]),
        ]
    )
    edge = np.argmax(np.abs(gradients), axis=0)
    del gradients
    # For each edge, the two candidate sides: (first side cell, its direction), (second, direction).
    sides = {
        0: ((0, -1), 0, (0, 1), 1),
        1: ((-1, 0), 2, (1, 0), 3),
        2: ((1, -1), 4, (-1, 1), 5),
        3: ((-1, -1), 6, (1, 1), 7),
    }
    direction = np.zeros((h, w), dtype=np.int8)
    for e, (cell_a, dir_a, cell_b, dir_b) in sides.items():
        closer_b = np.abs(grid[cell_b] - centre) < np.abs(grid[cell_a] - centre)
        on_edge = edge == e
        direction[on_edge & ~closer_b] = dir_a
        direction[on_edge & closer_b] = dir_b
    del edge
    partial_values = _row_partials(block, block.values, half)
    partial_squares = _row_partials(block, block.squares, half)
    partial_valid = None if block.full else _row_partials(block, block.valid, half)
    z = block.shifted(block.values)
    out = np.zeros((h, w), dtype=np.float64)
    for d in range(8):
        where = direction == d
        if not where.any():
            continue
        total = _directional_sum(partial_values, d, half, h)
        squares = _directional_sum(partial_squares, d, half, h)
        if partial_valid is None:
            count: np.ndarray | float = float(size * (half + 1))
        else:
            count = _directional_sum(partial_valid, d, half, h)
        mean, var = _mean_var(total, squares, count)
        out[where] = _mmse(z, mean, var, 1.0 / spec.looks)[where]
    return out


_KERNELS: dict[str, Callable[[_Block, SpeckleFilter], np.ndarray]] = {
    "boxcar": _boxcar,
    "median": _median,
    "lee": _lee,
    "lee_sigma": _lee_sigma,
    "refined_lee": _refined_lee,
    "gamma_map": _gamma_map,
    "frost": _frost,
}
"""The numpy kernels: the reference of the compiled ones, and the path of the filters without one."""

Strip = Callable[[np.ndarray, int], np.ndarray]  # (strip with context, margin) -> float32 interior


def _compiled(spec: SpeckleFilter) -> Strip | None:
    """The compiled kernel of ``spec`` (:mod:`speckle_kernels`) bound to its parameters, if it has one."""
    size, looks = spec.window, spec.looks
    if spec.name == "boxcar":
        return lambda data, m: kernels.boxcar(data, m, size)
    if spec.name == "lee":
        return lambda data, m: kernels.lee(data, m, size, 1.0 / looks)
    if spec.name == "gamma_map":
        limit = gamma_map_homogeneity_limit(looks, size * size)
        return lambda data, m: kernels.gamma_map(data, m, size, looks, limit)
    if spec.name == "lee_sigma":
        low, high, eta2 = lee_sigma_range(looks, spec.sigma)
        q98 = float(special.gammaincinv(looks, 0.98)) / looks
        bright = math.ceil(5 * spec.target_window**2 / 9)
        target = spec.target_window
        return lambda data, m: kernels.lee_sigma(data, m, size, target, looks, low, high, eta2, q98, bright)
    return None


def _numpy(spec: SpeckleFilter) -> Strip:
    kernel = _KERNELS[spec.name]
    return lambda data, m: np.asarray(kernel(_Block.of(data, m), spec), dtype=np.float32)


def apply_speckle_filter(intensity: np.ndarray, spec: SpeckleFilter, compiled: bool = True) -> np.ndarray:
    """Filter speckle in a 2-D intensity image (radar geometry, linear power, NaN = no data).

    Returns a new float32 array of the same shape: NaN where the input is not finite, filtered
    values elsewhere. Pixels closer than ``spec.margin`` to the array edge are computed from the
    part of their window inside the array; read ``spec.margin`` extra pixels around a region of
    interest to get values independent of where the read window starts. ``compiled=False`` runs the
    numpy kernels (the reference the compiled ones are tested against).
    """
    image = np.asarray(intensity)
    if image.ndim != 2:
        raise ValueError(f"apply_speckle_filter needs a 2-D intensity image, got shape {image.shape}")
    data = image.astype(np.float32, copy=True)
    invalid = ~np.isfinite(data)
    data[invalid] = np.nan
    if spec.name == "none" or data.size == 0:
        return data
    m = spec.margin
    height, width = data.shape
    padded = np.full((height + 2 * m, width + 2 * m), np.nan, dtype=np.float32)
    padded[m : m + height, m : m + width] = data
    out = np.empty_like(data)
    kernel = (_compiled(spec) if compiled else None) or _numpy(spec)
    rows = max(8, _STRIP_PIXELS // max(width, 1))
    starts = list(range(0, height, rows))

    def run(start: int) -> None:
        stop = min(start + rows, height)
        out[start:stop] = kernel(padded[start : stop + 2 * m], m)

    workers = min(len(starts), threads_for(4))
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(run, starts))
    else:
        for start in starts:
            run(start)
    out[invalid] = np.nan
    logger.debug("speckle filter %s (window %d) on %dx%d pixels", spec.name, spec.window, height, width)
    return out
