"""Pure geometry: ROI parsing, the target grid and patch tiling (no raster I/O)."""

from senprep_core.geo.grid import Bounds, PixelWindow, TargetGrid
from senprep_core.geo.roi import ROI
from senprep_core.geo.tiling import EdgePolicy, Patch, PatchLayout, tile_grid

__all__ = ["ROI", "Bounds", "EdgePolicy", "Patch", "PatchLayout", "PixelWindow", "TargetGrid", "tile_grid"]
