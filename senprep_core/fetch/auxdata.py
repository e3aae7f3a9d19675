"""Auxiliary data fetched for the S1 chain and cached: precise orbits from CDSE, Copernicus DEM GLO-30 tiles.

Configuration values (``sentinel1`` section):

- ``orbit_folder: cdse`` (or ``cdse:URL`` for a CDSE-protocol mirror): the precise orbit (AUX_POEORB)
  covering each product, else the restituted one (AUX_RESORB), fetched into ``<cache>/orbits``;
  the annotation orbit is used (and recorded) when CDSE has neither;
- ``dem: glo30`` (or ``glo30:URL`` for a mirror of the tile bucket): the GLO-30 tiles under the ROI,
  fetched into ``<cache>/dem/copernicus-glo30``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from senprep_core.errors import OrbitError
from senprep_core.s1.dem import DemSource
from senprep_core.s1.metadata import S1Metadata

log = logging.getLogger(__name__)

ORBIT_PREFIX = "cdse"
DEM_PREFIX = "glo30"


def is_fetched_orbit(value: str | None) -> bool:
    """True when ``sentinel1.orbit_folder`` asks for orbits fetched from CDSE."""
    return value is not None and (value == ORBIT_PREFIX or value.startswith(ORBIT_PREFIX + ":"))


def is_fetched_dem(value: str | None) -> bool:
    """True when ``sentinel1.dem`` asks for GLO-30 tiles fetched for the ROI."""
    return value is not None and (value == DEM_PREFIX or value.startswith(DEM_PREFIX + ":"))


def fetched_orbit_folder(value: str, meta: S1Metadata, cache_dir: Path) -> Path:
    """The orbit folder holding an EOF file covering ``meta``'s acquisition (POEORB, else RESORB)."""
    from senprep_core.catalog import open_provider
    from senprep_core.catalog.cdse import CdseProvider

    provider = open_provider(value)
    if not isinstance(provider, CdseProvider):  # pragma: no cover - open_provider("cdse...") is one
        raise OrbitError(f"'{value}' is not a CDSE source")
    folder = Path(cache_dir) / "orbits"
    try:
        provider.fetch_orbit(meta.mission, meta.start_time, meta.stop_time, "POEORB", cache_dir=folder)
    except OrbitError as exc:
        log.warning("no precise orbit for %s (%s); trying the restituted one", meta.product_id, exc)
        try:
            provider.fetch_orbit(meta.mission, meta.start_time, meta.stop_time, "RESORB", cache_dir=folder)
        except OrbitError as exc2:
            log.warning("no orbit file for %s from CDSE (%s): the annotation orbit is used", meta.product_id, exc2)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def fetched_dem(value: str, roi: object, cache_dir: Path) -> DemSource:
    """The DEM source of the GLO-30 tiles under ``roi`` (lon/lat), fetched into the cache once."""
    from senprep_core.fetch.dem_tiles import GLO30_BASE_URL, fetch_dem_tiles

    base = value.partition(":")[2] or GLO30_BASE_URL
    folder = fetch_dem_tiles(roi, Path(cache_dir), base_url=base)  # type: ignore[arg-type]
    return DemSource("copernicus", str(folder))
