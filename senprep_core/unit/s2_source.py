"""The Sentinel-2 chain as a unit source: product -> ROI-window reads on the target grid."""

from __future__ import annotations

import logging
from typing import Any

from senprep_core.catalog.records import ProductRecord
from senprep_core.geo.grid import TargetGrid
from senprep_core.productfs import ProductLocation
from senprep_core.s2.jp2 import area_decoding_available
from senprep_core.s2.masks import roi_fractions
from senprep_core.s2.metadata import S2Metadata
from senprep_core.s2.product import open_s2_metadata
from senprep_core.s2.reader import OpenFiles, read_s2_window
from senprep_core.unit.model import UnitSpec
from senprep_core.unit.source import BlockData, RoiStats, no_valid_pixel

log = logging.getLogger(__name__)
MODALITY = "S2"


class S2Source:
    """Reads an S2 product's configured bands onto blocks of the target grid."""

    def __init__(self, record: ProductRecord, unit_id: str, spec: UnitSpec, modality: str = MODALITY) -> None:
        self.files = OpenFiles()
        self.meta = open_s2_metadata(record.href)
        #: A block's patches are written while the next block is read, and the files stay open between
        #: blocks. GDAL decodes whole 1024 px JPEG2000 tiles and keeps them: 512 px blocks suit it.
        #: OpenJPEG's area decoding (local JP2 files) decodes each block's own area and pays a fixed cost
        #: per read: 1024 px blocks suit it (measured in benchmarks/bench_s2_roi.py).
        self.block_pixels = 1 << 20 if _area_decoded(self.meta) else 1 << 18
        self.modality = modality
        self.spec = spec
        self.settings = spec.s2
        self.bands = list(spec.s2.bands)
        self.extra = _sidecar_extra(self.meta, record, unit_id, spec)

    def read_block(self, grid: TargetGrid) -> BlockData:
        w = read_s2_window(self.meta, grid, self.bands, self.settings.resampling, self.files)
        return BlockData(w.data, w.valid, w.cloud)

    def roi_stats(self) -> RoiStats | None:
        """ROI-level valid and cloud fractions from the class layer only (one small read), before any band.

        Needed only for an ROI cloud threshold (``max_roi_cloud``, or the legacy ``cloud_mask_filtering``
        with the ``cloud_cover`` maximum). Without one, the unit's only rejection is "no valid
        pixel", which refuses every patch anyway: the fractions then come from the blocks as they are
        read (None here), and the class layer is not decoded twice.
        """
        if self.settings.roi_cloud_threshold is None:
            return None
        probe = ["SCL"] if self.meta.level == "L2A" else [self.bands[0]]
        window = read_s2_window(self.meta, self.spec.grid, probe, "nearest", self.files)
        f = roi_fractions(window.valid, window.cloud, self.spec.roi_mask.array())
        return RoiStats(f.valid_fraction, f.cloud_fraction)

    def close(self) -> None:
        """Release the product's open files."""
        self.files.close()

    def rejection(self, stats: RoiStats) -> str | None:
        if (empty := no_valid_pixel(stats)) is not None:
            return empty
        limit = self.settings.roi_cloud_threshold
        if limit is not None and stats.cloud_fraction is not None and 100 * stats.cloud_fraction > limit:
            return f"ROI cloud {100 * stats.cloud_fraction:.1f} % > {limit:g} %"
        return None


def _area_decoded(meta: S2Metadata) -> bool:
    """True when the product's band files are local JP2 files that OpenJPEG decodes by area."""
    if not isinstance(meta.location, ProductLocation) or meta.location.is_zip or not area_decoding_available():
        return False
    return any(m.lower().endswith(".jp2") for files in meta.band_files.values() for m in files.values())


def _sidecar_extra(meta: S2Metadata, record: ProductRecord, unit_id: str, spec: UnitSpec) -> dict[str, Any]:
    return {
        "unit_id": unit_id,
        "product_ids": [record.product_id],
        "platform": {"S2A": "sentinel-2a", "S2B": "sentinel-2b", "S2C": "sentinel-2c"}.get(meta.mission, meta.mission),
        "sensing_time": meta.sensing_time.isoformat().replace("+00:00", "Z"),
        "tile_id": meta.tile_id,
        "processing_level": meta.level,
        "processing_baseline": meta.processing_baseline,
        "reflectance": {
            "formula": "(DN + offset) / quantification_value",
            "quantification_value": meta.quantification_value,
            "offsets": dict(sorted(meta.offsets.items())),
            "resampling": spec.s2.resampling,
        },
        "config_fingerprint": spec.fingerprint,
        "roi_name": spec.run_name,
    }
