"""The Sentinel-1 preview: the run's chain (noise removal, calibration, speckle filter, terrain correction) on a
decimated read of the GRD, at the preview's resolution.

A preview pixel of ``f`` GRD pixels (``f`` = preview resolution / GRD pixel spacing) is one cell of the decimated
image: the calibrated intensity averaged over ``looks x looks`` GRD pixels at its centre (all ``f x f`` when ``f``
is small), so the read and the arithmetic follow the preview's pixels, not its area. The speckle filter then runs
on the cells (the run's filter and window, at preview resolution) and the cells are geocoded onto the grid by the
run's range-Doppler positions and resampling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from senprep_core.catalog.records import ProductRecord
from senprep_core.errors import PreviewError
from senprep_core.geo.grid import PixelWindow
from senprep_core.previews.model import ProductPreview
from senprep_core.s1.measurement import read_dn_lattice
from senprep_core.s1.positions import RadarPositions
from senprep_core.s1.radiometry import RadarLattice, calibrate, remove_thermal_noise, to_db
from senprep_core.s1.speckle import apply_speckle_filter
from senprep_core.s1.terrain import block_window, sample
from senprep_core.unit.model import UnitSpec
from senprep_core.unit.s1_source import S1Source

#: GRD pixels averaged per cell along each axis, at most: 2 x 2 GRD pixels (about 18 looks with IW GRDH's 4.4)
#: before the speckle filter, which averages cells further.
MAX_LOOKS = 2


@dataclass(frozen=True)
class Decimation:
    """Cells of ``factor`` x ``factor`` GRD pixels from ``window``, each the mean of ``looks`` x ``looks`` of them."""

    window: PixelWindow
    factor: int
    looks: int
    rows: int
    cols: int

    @classmethod
    def of(cls, window: PixelWindow, factor: int, max_looks: int, lines: int, samples: int) -> Decimation:
        looks = max(1, min(factor, max_looks))
        skip = (factor - looks) // 2
        rows = min(math.ceil(window.height / factor), (lines - window.row_off - skip - looks) // factor + 1)
        cols = min(math.ceil(window.width / factor), (samples - window.col_off - skip - looks) // factor + 1)
        return cls(window, factor, looks, max(rows, 0), max(cols, 0))

    @property
    def skip(self) -> int:
        return (self.factor - self.looks) // 2

    def lattice(self) -> RadarLattice:
        """The GRD lines x pixels read: ``looks`` consecutive ones at the centre of each cell."""
        within = self.skip + np.arange(self.looks)
        lines = self.window.row_off + (self.factor * np.arange(self.rows)[:, None] + within).ravel()
        pixels = self.window.col_off + (self.factor * np.arange(self.cols)[:, None] + within).ravel()
        return RadarLattice(lines.astype(np.float64), pixels.astype(np.float64))

    def cell_positions(self, positions: RadarPositions) -> RadarPositions:
        """GRD positions as (fractional) cell indices: a cell's value stands at the centre of its read pixels."""
        centre = self.skip + (self.looks - 1) / 2
        line = (positions.line - self.window.row_off - centre) / self.factor
        pixel = (positions.pixel - self.window.col_off - centre) / self.factor
        return replace(positions, line=line, pixel=pixel)

    def average(self, values: np.ndarray) -> np.ndarray:
        """The mean of each cell's ``looks x looks`` values (NaN = no data; NaN when a cell has none)."""
        blocks = values.reshape(self.rows, self.looks, self.cols, self.looks)
        finite = np.isfinite(blocks)
        total = np.where(finite, blocks, 0.0).sum(axis=(1, 3), dtype=np.float32)
        count = finite.sum(axis=(1, 3))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / count, np.nan).astype(np.float32)


def s1_preview(
    record: ProductRecord, spec: UnitSpec, cache_dir: Path, role: str = "S1", max_looks: int = MAX_LOOKS
) -> ProductPreview:
    """The backscatter bands of ``spec`` for the GRD ``record`` on the preview grid ``spec.grid``."""
    if spec.s1.options.backend != "native":
        raise PreviewError(f"previews run senprep's own S1 chain; the {spec.s1.options.backend} backend has none: "
                           "preview with sentinel1.backend: native")  # fmt: skip
    source = S1Source(record, "preview", spec, cache_dir, modality=role)
    requests = [r for r in source.requests if r.is_backscatter]
    if not requests:
        raise PreviewError(f"sentinel1.bands ({', '.join(source.bands)}) hold no backscatter band to preview; "
                           "add one, e.g. sigma0_VV_dB")  # fmt: skip
    if any(r.calibration == "gamma0T" for r in requests):
        raise PreviewError("previews do not flatten terrain (gamma0T) yet; preview sigma0 or gamma0 bands instead")
    grid, image, options = spec.grid, source.reference, source.options
    positions = source.positions(grid, source.heights(grid))
    spacing = max(image.range_pixel_spacing, image.azimuth_pixel_spacing)
    factor = max(1, math.floor(grid.resolution / spacing + 1e-6))
    data = np.full((len(requests), grid.height, grid.width), np.nan, dtype=np.float32)
    window = block_window(positions, (source.speckle.margin + 1) * factor, source.meta, source.polarisations[0])
    cells = None if window is None else Decimation.of(window, factor, max_looks, image.lines, image.samples)
    if cells is not None and cells.rows and cells.cols:
        lattice = cells.lattice()
        at = cells.cell_positions(positions)
        whole = PixelWindow(0, 0, cells.rows, cells.cols)
        for pol in source.polarisations:
            pol_image = source.meta.image(pol)
            dn = read_dn_lattice(source.meta, pol, lattice.lines, lattice.pixels)
            if options.noise_removal and pol_image.noise is not None:
                power = remove_thermal_noise(dn, pol_image.noise, lattice, options.negative_power)
            else:
                power = np.square(dn, dtype=np.float32)
            power[dn <= 0] = np.nan
            for i, req in enumerate(requests):
                if req.polarisation != pol or req.calibration is None:
                    continue
                looked = cells.average(calibrate(power, pol_image.calibration, lattice, req.calibration))
                if source.speckle.name != "none":
                    looked = apply_speckle_filter(looked, source.speckle)
                values = sample(looked, at, whole, options.resampling)
                data[i] = to_db(values, options.db_floor) if req.db else values
    valid = np.asarray(np.isfinite(data).all(axis=0))
    return ProductPreview(record.product_id, "S1", role, tuple(r.name for r in requests), data, valid)
