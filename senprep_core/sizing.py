"""How big a run is before anything is read: grid pixels, patches and output bytes per unit.

Computed from the configuration alone (the grid's outline, not its ROI mask), so a run that cannot fit
is refused before it rasterises a mask of billions of pixels, and sizes far beyond the usual are said
out loud. ``force`` runs anyway.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from senprep_core.config import Config, Mode
from senprep_core.errors import ConfigError, DiskFullError
from senprep_core.geo.tiling import layout_shape

#: Above this many grid pixels per unit (a 200 km square at 10 m) a run is warned about.
WARN_GRID_PIXELS = 400_000_000
#: Above this many patches per unit planning and writing take long: a warning says so.
WARN_PATCHES = 100_000
#: Bytes planning holds per grid pixel (the ROI mask as it is rasterised, and its packed copy).
PLAN_BYTES_PER_PIXEL = 3
#: Compressed size of float32 patches relative to raw (zstd with the floating-point predictor).
COMPRESSION = 0.5


@dataclass(frozen=True)
class RunSize:
    """The size of one unit of a run, and what planning it needs."""

    grid_width: int
    grid_height: int
    resolution: float
    patches: int  # upper bound: the patches of the layout, before those outside the ROI are left out
    bands: int  # output bands of one unit, every modality together
    patch_pixels: int

    @property
    def grid_pixels(self) -> int:
        return self.grid_width * self.grid_height

    @property
    def unit_bytes(self) -> int:
        """About what one unit writes (compressed float32 patches)."""
        return int(self.patches * self.bands * self.patch_pixels * 4 * COMPRESSION)

    @property
    def plan_bytes(self) -> int:
        return self.grid_pixels * PLAN_BYTES_PER_PIXEL

    def describe(self) -> str:
        km = self.resolution / 1000.0
        return (f"a grid of {self.grid_width} x {self.grid_height} pixels ({self.grid_width * km:,.0f} x "
                f"{self.grid_height * km:,.0f} km at {self.resolution:g} m), up to {self.patches:,} patches and "
                f"about {_mb(self.unit_bytes)} per unit")  # fmt: skip


def _mb(n: float) -> str:
    return f"{n / 1e9:,.1f} GB" if n >= 1e9 else f"{n / 1e6:,.1f} MB"


def _output_bands(config: Config) -> int:
    s2 = len(config.bands_s2) if config.reads_s2 else 0
    s1 = len(config.bands_s1) if config.reads_s1 else 0
    if config.mode is Mode.S1_MULTITEMPORAL:  # a stack of ``count`` dates (``all``: counted as 2; not known yet)
        return s1 * (config.multitemporal.count or 2)
    return s2 + (2 * s1 if config.mode is Mode.S2_WITH_TWO_S1 else s1)


def run_size(config: Config) -> RunSize:
    """The size of a unit of ``config`` (cheap: from the grid's outline)."""
    grid = config.grid()
    rows, cols = layout_shape(grid, config.patch)
    h, w = config.patch.size
    return RunSize(grid.width, grid.height, config.resolution, rows * cols, _output_bands(config), h * w)


def available_memory() -> int | None:
    """Bytes of memory available to this process now (None where the system does not tell)."""
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return None


def size_warnings(size: RunSize) -> list[str]:
    """What is unusually large about a run (each with the way out)."""
    out = []
    if size.grid_pixels > WARN_GRID_PIXELS:
        out.append(f"the ROI makes {size.describe()}: larger than a Sentinel-2 tile, so every unit reads several "
                   "tiles and takes long; a coarser grid.resolution or a smaller ROI is quicker")  # fmt: skip
    if size.patches > WARN_PATCHES:
        out.append(f"{size.patches:,} patches per unit: larger patches (patches.size) write fewer files")
    return out


def check_size(size: RunSize, force: bool = False) -> None:
    """Refuse a run this machine cannot plan (its ROI mask would not fit in memory), unless ``force``."""
    memory = available_memory()
    if force or memory is None or size.plan_bytes <= memory:
        return
    raise ConfigError(
        "grid.resolution",
        size.resolution,
        f"the ROI makes {size.describe()}; planning it needs about {_mb(size.plan_bytes)} of memory and "
        f"{_mb(memory)} is free: use a coarser grid.resolution or a smaller ROI (or --force to try anyway)",
    )


def check_disk(size: RunSize, units: int, free: int, force: bool = False) -> None:
    """Refuse a run whose output will not fit on the disk (about ``units`` x the unit's bytes), unless ``force``."""
    need = size.unit_bytes * units
    if force or need <= free:
        return
    raise DiskFullError(
        f"the run will write about {_mb(need)} ({units} units x {_mb(size.unit_bytes)}) and the output folder's "
        f"disk has {_mb(free)} free; free some space, choose another --outdir, or add --force to start anyway"
    )
