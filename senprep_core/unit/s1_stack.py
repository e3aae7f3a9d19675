"""Blocks of a stack unit read together: the multi-temporal speckle filter (Quegan & Yu 2001) across its dates.

Every date is located, calibrated and normalised in its own radar geometry
(:func:`~senprep_core.s1.multitemporal.normalised_speckle`); the local means and the normalised speckle are
sampled onto the block, where the dates are co-registered, and combined
(:func:`~senprep_core.s1.multitemporal.combine_stack`). Units without the filter read each source alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from senprep_core.geo.grid import TargetGrid
from senprep_core.s1.multitemporal import QueganFilter, combine_stack, normalised_speckle
from senprep_core.unit.s1_source import S1Source
from senprep_core.unit.source import BlockData, UnitSource

__all__ = ["BlockReader", "block_reader", "read_filtered_stack"]

#: Reads one block of the grid from every source of a unit, in source order.
BlockReader = Callable[[TargetGrid], list[BlockData]]


def block_reader(sources: Sequence[UnitSource], stack_filter: QueganFilter | None) -> BlockReader:
    """How a unit reads its blocks: the sources one by one, or, for a stack of native S1 sources with a
    filter, all dates together (:func:`read_filtered_stack`)."""
    stack = [s for s in sources if isinstance(s, S1Source)]
    if stack_filter is None or len(stack) < 2 or len(stack) != len(sources):
        return lambda grid: [s.read_block(grid) for s in sources]
    return lambda grid: read_filtered_stack(stack, stack_filter, grid)


def read_filtered_stack(sources: Sequence[S1Source], spec: QueganFilter, grid: TargetGrid) -> list[BlockData]:
    """One block of every date of a stack, each band filtered across the dates (same bands in every source)."""
    located = [s.locate(grid) for s in sources]
    means: list[dict[str, np.ndarray]] = [{} for _ in sources]
    ratios: list[dict[str, np.ndarray]] = [{} for _ in sources]
    for k, (source, where) in enumerate(zip(sources, located, strict=True)):
        for req, intensity in source.intensities(where):
            mean, ratio = normalised_speckle(intensity, spec)
            means[k][req.name] = source.sample_radar(mean, where)
            ratios[k][req.name] = source.sample_radar(ratio, where)
    names = [r.name for r in sources[0].requests if r.is_backscatter]
    linear: list[dict[str, np.ndarray]] = [{} for _ in sources]
    for name in names:
        combined = combine_stack([m.get(name) for m in means], [r.get(name) for r in ratios])
        for k, values in enumerate(combined):
            if values is not None:
                linear[k][name] = values
    return [s.assemble(grid, where, values) for s, where, values in zip(sources, located, linear, strict=True)]
