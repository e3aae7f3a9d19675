"""Multi-temporal speckle filtering of a stack of Sentinel-1 intensity images (Quegan & Yu 2001).

For N co-registered intensity images ``I_1 .. I_N`` of one orbit, the filtered image of date ``k`` is::

    J_k(x) = E[I_k](x) / N * sum_i I_i(x) / E[I_i](x)

where ``E[I_i](x)`` is the local mean of date ``i`` around ``x`` (here a boxcar over ``window`` x ``window``
radar pixels). ``J_k`` keeps the local mean of date ``k`` (so changes between dates survive at the scale of
the window) and replaces its speckle by the average of the N dates' normalised speckle ``I_i / E[I_i]``.

Assumptions (Quegan & Yu 2001, "Filtering of multichannel SAR images", IEEE TGRS 39(11)):

- multiplicative speckle, independent between dates (true for repeat-pass C-band over most land; not for
  persistent scatterers, whose normalised value is then shared and kept);
- the local mean is a good estimate of the underlying backscatter: homogeneous windows. Then
  ``E[J_k] = E[I_k]`` (the mean is preserved; the finite window adds a bias of order ``1 / (L * window²)``)
  and the ENL grows from ``L`` towards ``N * L`` (bounded by the local mean's own ENL, ``L * window²``);
- a point target present on every date has ``I_i / E[I_i] >> 1`` on every date and is kept; one present on
  a single date is spread over the N dates (divided by about N).

Where: in senprep the local means and the ratios ``I_i / E[I_i]`` are computed per date **in that date's
radar geometry** (GRD lines and pixels, where speckle is independent from pixel to pixel and the window
is a fixed number of looks), and the sum over dates is taken after each date is resampled onto the run's
grid, which is the stack's co-registration (same relative orbit and pass: the geometries differ by an
along-track shift of a few pixels). Pixels where a date has no data average over the dates that have some.

Pure functions on arrays; :class:`QueganFilter` is the value object the plan passes to the units.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from senprep_core.errors import ConfigError
from senprep_core.s1.speckle import SpeckleFilter, apply_speckle_filter

__all__ = ["QueganFilter", "combine_stack", "normalised_speckle"]


@dataclass(frozen=True)
class QueganFilter:
    """The multi-temporal filter's setting: the local-mean window (odd, radar pixels)."""

    window: int = 7

    def __post_init__(self) -> None:
        w = self.window
        if isinstance(w, bool) or not isinstance(w, int) or w < 3 or w > 31 or w % 2 == 0:
            raise ConfigError("multitemporal.window", w, "give an odd whole number of pixels from 3 to 31 (e.g. 7)")

    @property
    def margin(self) -> int:
        """Radar pixels needed around a region to filter it exactly (half the window)."""
        return self.window // 2

    def to_dict(self) -> dict[str, object]:
        return {"name": "quegan_yu", "window": self.window}


def normalised_speckle(intensity: np.ndarray, spec: QueganFilter) -> tuple[np.ndarray, np.ndarray]:
    """``(E[I], I / E[I])`` of one date's radar intensity (NaN: no data).

    The local mean is a NaN-aware boxcar; where it is 0 (noise-removed power clipped to 0 over a whole
    window) the ratio is 1, so such pixels stay 0 and do not pull other dates down.
    """
    mean = apply_speckle_filter(intensity, SpeckleFilter("boxcar", window=spec.window))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(mean > 0, intensity / mean, np.where(np.isfinite(intensity), 1.0, np.nan))
    return mean.astype(np.float32, copy=False), ratio.astype(np.float32, copy=False)


def combine_stack(means: Sequence[np.ndarray | None], ratios: Sequence[np.ndarray | None]) -> list[np.ndarray | None]:
    """``J_k = E_k * mean_i(R_i)`` for every date ``k`` on co-registered arrays (None: the date has no data
    in this block). The mean over dates counts, per pixel, only the dates with a finite ratio."""
    present = [r for r in ratios if r is not None]
    if not present:
        return [None for _ in means]
    total = np.zeros(present[0].shape, dtype=np.float64)
    count = np.zeros(present[0].shape, dtype=np.int32)
    for ratio in present:
        finite = np.isfinite(ratio)
        total[finite] += ratio[finite]
        count += finite
    with np.errstate(divide="ignore", invalid="ignore"):
        average = np.where(count > 0, total / count, np.nan)
    return [None if m is None else (m * average).astype(np.float32) for m in means]
