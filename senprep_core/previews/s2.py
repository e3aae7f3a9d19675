"""The Sentinel-2 preview: the run's reflectance and cloud mask, read at reduced resolution onto a coarse grid.

The band files are read at the coarsest JPEG2000 resolution level (or COG overview) not coarser than the grid and
averaged onto it; the class layer (SCL) comes from its coarsest copy not coarser than the grid, by nearest
neighbour, as a run reads it. A preview therefore decodes about as many pixels as it shows, whatever its area.
"""

from __future__ import annotations

from collections.abc import Sequence

from senprep_core.bands import canonical_s2_band
from senprep_core.catalog.records import ProductRecord
from senprep_core.geo.grid import TargetGrid
from senprep_core.previews.model import ProductPreview
from senprep_core.s2.product import open_s2_metadata
from senprep_core.s2.reader import OpenFiles, read_s2_window
from senprep_core.unit.model import S2Settings

#: What the S2 renderings need: true colour (B04, B03, B02) and false colour (B08, B04, B03).
RENDER_BANDS = ("B02", "B03", "B04", "B08")


def s2_preview(
    record: ProductRecord, grid: TargetGrid, settings: S2Settings, bands: Sequence[str], role: str = "S2"
) -> ProductPreview:
    """``bands`` of the S2 product ``record`` on the preview ``grid``, with the run's cloud mask."""
    meta = open_s2_metadata(record.href)
    names = tuple(dict.fromkeys(canonical_s2_band(b) for b in bands))
    files = OpenFiles()
    try:
        window = read_s2_window(meta, grid, names, settings.resampling, files, reduced=True)
    finally:
        files.close()
    return ProductPreview(record.product_id, "S2", role, window.bands, window.data, window.valid, window.cloud)
