"""The optional SNAP backend as a unit source: one generated gpt graph per product, read back onto the grid.

Selected with ``sentinel1.backend: snap``. SNAP runs the graph of the 2022 framework (orbit,
thermal noise removal, calibration, speckle filter, terrain correction, subset) onto the run's
grid; the result is read into memory and cut into blocks like the native chain's. SNAP writes
one calibration for all polarisations, in linear or dB for all, and has no geometry layers:
other band mixes are refused with a clear error.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.warp import Resampling, reproject

from senprep_core.bands import parse_s1_bands
from senprep_core.catalog.records import ProductRecord
from senprep_core.errors import ConfigError
from senprep_core.geo.grid import TargetGrid
from senprep_core.s1.snap import build_graph, run_graph
from senprep_core.s1.speckle import SpeckleFilter
from senprep_core.unit.model import UnitSpec
from senprep_core.unit.source import BlockData, RoiStats, no_valid_pixel

log = logging.getLogger(__name__)
MARGIN = 2  # grid pixels SNAP's subset may differ by


class SnapS1Source:
    """Runs ESA SNAP's gpt for one GRD and serves blocks of its terrain-corrected output."""

    def __init__(self, record: ProductRecord, unit_id: str, spec: UnitSpec, modality: str = "S1") -> None:
        self.modality = modality
        requests = parse_s1_bands(spec.s1.bands)
        calibrations = {r.calibration for r in requests}
        dbs = {r.db for r in requests}
        if None in calibrations or len(calibrations) != 1 or len(dbs) != 1 or "gamma0T" in calibrations:
            raise ConfigError(
                "sentinel1.bands",
                list(spec.s1.bands),
                "the SNAP backend writes one calibration (sigma0, beta0 or gamma0) for every polarisation, "
                "all linear or all dB, without geometry layers; use such bands or backend: native",
            )
        self.bands = [r.name for r in requests]
        self.grid = spec.grid
        options = spec.s1.options
        dem = None if options.dem is None or options.dem.startswith("flat:") else options.dem
        work = Path(tempfile.mkdtemp(prefix="senprep-snap-"))
        graph = build_graph(
            record.href,
            work / "senprep-snap.tif",
            self.grid.buffered(MARGIN),
            dem,
            [r.polarisation for r in requests if r.polarisation],
            SpeckleFilter(**options.speckle_params()),
            output_db=dbs == {True},
            orbit_type="precise" if options.orbit_folder else "annotation",
            backscatter=str(next(iter(calibrations))),
        )
        try:
            output = run_graph(graph, work)
            self.data, self.transform, self.crs = self._load(output)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self.extra: dict[str, Any] = {
            "unit_id": unit_id,
            "product_ids": [record.product_id],
            "platform": {"S1A": "sentinel-1a", "S1B": "sentinel-1b", "S1C": "sentinel-1c"}.get(
                record.mission, record.mission
            ),
            "sensing_time": record.sensing_time.isoformat().replace("+00:00", "Z"),
            "processing": {"chain": "ESA SNAP gpt graph", "speckle_filter": options.speckle_params(), "dem": dem},
            "config_fingerprint": spec.fingerprint,
            "roi_name": spec.run_name,
        }

    @staticmethod
    def _load(path: Path) -> tuple[np.ndarray, Any, Any]:
        with rasterio.open(path) as src:
            data = src.read(out_dtype="float32", masked=True).filled(np.nan)
            return data, src.transform, src.crs

    def read_block(self, grid: TargetGrid) -> BlockData:
        out = np.full((len(self.bands), grid.height, grid.width), np.nan, dtype=np.float32)
        for i in range(min(len(self.bands), self.data.shape[0])):
            reproject(
                self.data[i],
                out[i],
                src_transform=self.transform,
                src_crs=self.crs,
                dst_transform=grid.transform,
                dst_crs=grid.crs,
                resampling=Resampling.nearest,
                src_nodata=np.nan,
                dst_nodata=np.nan,
            )
        return BlockData(out, np.asarray(np.isfinite(out).all(axis=0)), None)

    def roi_stats(self) -> RoiStats | None:
        return None

    def rejection(self, stats: RoiStats) -> str | None:
        return no_valid_pixel(stats)

    def close(self) -> None:
        return None
