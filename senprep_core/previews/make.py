"""``preview()``: what a run would make of a product or pair over an area, on a coarse grid, in about a second.

The grid is the run's (CRS, pixel lattice) at a whole multiple of its resolution; the settings are the run's
(:func:`~senprep_core.planning.s2_settings`, the ``sentinel1`` options). Only what is shown is read: S2 at
reduced resolution, S1 decimated (see :mod:`senprep_core.previews.s2` and :mod:`senprep_core.previews.s1`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from shapely.geometry import box

from senprep_core.catalog import Provider
from senprep_core.catalog.records import ProductRecord
from senprep_core.config import Config
from senprep_core.errors import PreviewError, ProductNotFoundError
from senprep_core.geo.grid import Bounds, TargetGrid
from senprep_core.planning import s2_settings, search
from senprep_core.previews.model import Preview, ProductPreview, preview_grid, resolution_for
from senprep_core.previews.s1 import s1_preview
from senprep_core.previews.s2 import RENDER_BANDS, s2_preview
from senprep_core.unit.fetching import FetchOptions, is_remote
from senprep_core.unit.model import RoiMask, S1Settings, UnitSpec

#: The S1 layers previewed when the configuration names none (a mode without S1).
DEFAULT_S1_BANDS = ("sigma0_VV_dB", "sigma0_VH_dB")


def preview(
    config: Config,
    products: ProductRecord | Sequence[ProductRecord],
    bounds: Bounds | Sequence[float] | None = None,
    resolution: float | None = 60.0,
    bands_s2: Sequence[str] = RENDER_BANDS,
    cache_dir: str | Path | None = None,
    screen_px: int = 1000,
) -> Preview:
    """The processed layers of a product or pair (one or two records) over ``bounds`` at about ``resolution`` m.

        ``bounds`` is west, south, east, north in degrees (default: the configuration's ROI); the grid is the run's
        CRS at the smallest whole multiple of the run's resolution not finer than ``resolution``, its corners on the
        run's pixel lattice (``resolution=None``: the finest such showing ``bounds`` in ``screen_px`` pixels along its
    longer side). S2 products give ``bands_s2`` (reflectance, default the bands of true and false colour)
        and the run's cloud mask; S1 products give the configuration's backscatter bands (else
        :data:`DEFAULT_S1_BANDS`) with its calibration, speckle filter, DEM and resampling. ``cache_dir`` holds
        fetched DEM tiles and orbit files (default: the shared cache). Raises :class:`PreviewError` for a preview that
        cannot be made as asked, and the run's own errors for unreadable products.
    """
    t0 = time.perf_counter()
    records = [products] if isinstance(products, ProductRecord) else list(products)
    if not 1 <= len(records) <= 2:
        raise PreviewError(f"a preview shows one product or a pair, not {len(records)}; choose one or two")
    for record in records:
        if is_remote(record):
            raise PreviewError(f"{record.product_id} is at {record.provider} and previews read local products "
                               "only; download it into a folder and preview it with --source local:FOLDER")  # fmt: skip
    if bounds is None:
        box_ll = Bounds(*config.roi.geometry.bounds)
    else:
        box_ll = bounds if isinstance(bounds, Bounds) else Bounds(*(float(v) for v in bounds))
    if resolution is None:
        resolution = resolution_for(box_ll, config.target_epsg(), config.resolution, screen_px)
    grid = preview_grid(box_ll, config.target_epsg(), config.resolution, resolution)
    spec = _spec(config, grid, box_ll)
    cache = Path(cache_dir) if cache_dir is not None else FetchOptions.default().cache_dir
    made: list[ProductPreview] = []
    for record, role in zip(records, _roles(records), strict=True):
        if record.family == "S2":
            made.append(s2_preview(record, grid, spec.s2, bands_s2, role))
        else:
            made.append(s1_preview(record, spec, cache, role))
    return Preview(grid, config.resolution, tuple(made), time.perf_counter() - t0)


def _roles(records: Sequence[ProductRecord]) -> list[str]:
    """The records' roles as in a run's patches: ``S2``, ``S1``, and ``S1_previous`` for the earlier of two S1."""
    roles = [r.family for r in records]
    if roles == ["S1", "S1"]:
        earlier = min(range(2), key=lambda i: records[i].sensing_time)
        roles[earlier] = "S1_previous"
    return roles


def _spec(config: Config, grid: TargetGrid, bounds: Bounds) -> UnitSpec:
    """The unit spec of a run over the preview grid: the run's settings, the preview area as the ROI."""
    bands_s1 = tuple(config.bands_s1) or DEFAULT_S1_BANDS
    return UnitSpec(run_name=config.name, fingerprint=config.fingerprint(), grid=grid,
                    roi_mask=RoiMask.from_array(np.ones(grid.shape, dtype=bool)), roi_lonlat=box(*bounds.as_tuple()),
                    patches=(), s2=s2_settings(config), s1=S1Settings(bands_s1, config.s1))  # fmt: skip


def find_products(config: Config, providers: Sequence[Provider], product_ids: Sequence[str]) -> list[ProductRecord]:
    """The records of ``product_ids`` among the products the configuration's search finds (in that order)."""
    found, _ = search(config, providers)
    by_id = {r.product_id: r for r in found}
    missing = [p for p in product_ids if p.removesuffix(".SAFE").removesuffix(".zip") not in by_id]
    if missing:
        known = ", ".join(sorted(by_id)[:6]) + (" ..." if len(by_id) > 6 else "") if by_id else "none"
        raise ProductNotFoundError(f"no product {', '.join(missing)} matches the configuration's ROI, dates and mode "
                                   f"in these sources (found: {known}); list them with senprep search")  # fmt: skip
    return [by_id[p.removesuffix(".SAFE").removesuffix(".zip")] for p in product_ids]
