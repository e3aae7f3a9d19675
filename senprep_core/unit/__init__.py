"""The work unit: its model (:class:`WorkUnit`, :class:`UnitSpec`, :class:`PatchEntry`, :class:`UnitResult`),
the sensor sources that read a product onto the grid, what a unit fetches, and the runner."""

from senprep_core.unit.model import (
    PatchEntry,
    PatchRules,
    RoiMask,
    S1Settings,
    S2Settings,
    UnitResult,
    UnitSpec,
    WorkUnit,
)

__all__ = ["PatchEntry", "PatchRules", "RoiMask", "S1Settings", "S2Settings", "UnitResult", "UnitSpec", "WorkUnit"]
