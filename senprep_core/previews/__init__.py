"""Previews: what a run would make of a product or pair over an area, on a coarse grid aligned with the run's.

:func:`preview` (also ``senprep_core.preview``) makes one; :func:`render` turns it into a picture (true / false
colour with clouds tinted, S1 VV / VH / ratio in dB); :func:`write_png` and :func:`write_geotiff` save it.
"""

from senprep_core.previews.files import write_geotiff, write_png, write_preview
from senprep_core.previews.make import DEFAULT_S1_BANDS, find_products, preview
from senprep_core.previews.model import Preview, ProductPreview, preview_grid, resolution_for
from senprep_core.previews.render import RENDERINGS, Picture, render

__all__ = [
    "DEFAULT_S1_BANDS",
    "RENDERINGS",
    "Picture",
    "Preview",
    "ProductPreview",
    "find_products",
    "preview",
    "preview_grid",
    "render",
    "resolution_for",
    "write_geotiff",
    "write_png",
    "write_preview",
]
