"""Geoid undulations (EGM96, EGM2008) for turning DEM heights into WGS84 ellipsoidal heights.

``h_ellipsoid = H_geoid + N``. The undulation ``N`` comes from PROJ (via pyproj) with an explicit
``vgridshift`` pipeline naming the grid file that was found, so PROJ can never fall back silently to a
zero-shift "ballpark" operation (which it does when a grid is missing). The grids are looked up, in order,
in ``SENPREP_GEOID_DIR`` (one or more folders), Debian's ``/usr/share/proj`` (package ``proj-data``, which
ships ``egm96_15.gtx``), PROJ's user data folder (where ``projsync`` puts downloads) and pyproj's data
folders. With ``PROJ_NETWORK=ON`` and no local file, PROJ fetches the grid from cdn.proj.org.

Debian's folder is *appended* to pyproj's search path (never set as ``PROJ_DATA``: its ``proj.db`` is older
than the wheel's and breaks it).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyproj
from pyproj import Transformer

from senprep_core.errors import GeoidError
from senprep_core.geo.grid import TargetGrid

log = logging.getLogger(__name__)

GEOID_DIR_ENV = "SENPREP_GEOID_DIR"
SYSTEM_PROJ_DIR = Path("/usr/share/proj")
CDN = "https://cdn.proj.org"


@dataclass(frozen=True)
class GeoidModel:
    """A geoid model: its key, display name, EPSG vertical CRS and the grid file names PROJ knows."""

    key: str
    name: str
    vertical_epsg: int
    file_names: tuple[str, ...]  # searched in this order
    cdn_name: str
    install_hint: str


GEOID_MODELS: dict[str, GeoidModel] = {
    "egm96": GeoidModel(
        key="egm96",
        name="EGM96",
        vertical_epsg=5773,
        file_names=("egm96_15.gtx", "us_nga_egm96_15.tif"),
        cdn_name="us_nga_egm96_15.tif",
        install_hint="on Debian/Ubuntu run `apt-get install proj-data` (it provides /usr/share/proj/egm96_15.gtx)",
    ),
    "egm2008": GeoidModel(
        key="egm2008",
        name="EGM2008",
        vertical_epsg=3855,
        file_names=("egm08_25.gtx", "us_nga_egm08_25.tif"),
        cdn_name="us_nga_egm08_25.tif",
        install_hint=(
            "Debian's proj-data does not ship it: run `projsync --file us_nga_egm08_25.tif` "
            "(needs network), or set sentinel1.geoid: egm96 to use the EGM96 grid instead "
            "(it differs from EGM2008 by typically < 1 m, a few metres in high mountains)"
        ),
    ),
}

# Places where every real geoid is far from zero: (lon, lat, EGM96 N in metres, rounded).
_PROBES = ((12.5, 42.0, 48.6), (78.0, 5.0, -104.7), (147.0, -5.0, 73.5))
_PROBE_MIN_ABS = 10.0


def geoid_model(key: str) -> GeoidModel:
    """The :class:`GeoidModel` for ``"egm96"`` or ``"egm2008"``."""
    try:
        return GEOID_MODELS[key]
    except KeyError:
        raise GeoidError(f"unknown geoid model {key!r}; use one of {', '.join(GEOID_MODELS)}") from None


def geoid_search_dirs() -> list[Path]:
    """The folders searched for geoid grid files, in order (existing folders only)."""
    dirs: list[Path] = []
    for part in os.environ.get(GEOID_DIR_ENV, "").split(os.pathsep):
        if part.strip():
            dirs.append(Path(part.strip()).expanduser())
    dirs.append(SYSTEM_PROJ_DIR)
    dirs.append(Path(pyproj.datadir.get_user_data_dir()))
    dirs.extend(Path(p) for p in pyproj.datadir.get_data_dir().split(os.pathsep) if p)
    for env in ("PROJ_DATA", "PROJ_LIB"):
        dirs.extend(Path(p) for p in os.environ.get(env, "").split(os.pathsep) if p)
    unique = list(dict.fromkeys(dirs))
    return [d for d in unique if d.is_dir()]


def enable_system_grids(dirs: Iterable[Path] | None = None) -> None:
    """Append Debian's PROJ folder and ``SENPREP_GEOID_DIR`` to pyproj's search path (once each).

    This makes their grids usable by any pyproj transformation while keeping the wheel's ``proj.db``
    (which sits first in the path).
    """
    wanted = list(dirs) if dirs is not None else [*_env_dirs(), SYSTEM_PROJ_DIR]
    current = pyproj.datadir.get_data_dir().split(os.pathsep)
    for folder in wanted:
        if folder.is_dir() and str(folder) not in current:
            pyproj.datadir.append_data_dir(str(folder))
            current.append(str(folder))


def _env_dirs() -> list[Path]:
    return [Path(p.strip()).expanduser() for p in os.environ.get(GEOID_DIR_ENV, "").split(os.pathsep) if p.strip()]


def find_geoid_grid(model: str, dirs: Iterable[Path] | None = None) -> Path | None:
    """The first grid file of ``model`` found in ``dirs`` (default :func:`geoid_search_dirs`), else None."""
    spec = geoid_model(model)
    for folder in geoid_search_dirs() if dirs is None else dirs:
        for name in spec.file_names:
            candidate = folder / name
            if candidate.is_file():
                return candidate
    return None


def _pipeline(grid: str) -> str:
    return (
        "+proj=pipeline +step +proj=unitconvert +xy_in=deg +xy_out=rad "
        f"+step +proj=vgridshift +grids={grid} +multiplier=1 "
        "+step +proj=unitconvert +xy_in=rad +xy_out=deg"
    )


def _missing_message(spec: GeoidModel, searched: list[Path]) -> str:
    where = ", ".join(str(d) for d in searched) or "(no folder)"
    return (
        f"the {spec.name} geoid grid is not available: none of {', '.join(spec.file_names)} is in {where}. "
        f"Without it PROJ silently applies a zero shift and heights would be wrong by tens of metres. Fix: "
        f"{spec.install_hint}; or put {spec.file_names[0]} or {spec.cdn_name} ({CDN}/{spec.cdn_name}) in a folder "
        f"and set {GEOID_DIR_ENV} to it; or set PROJ_NETWORK=ON to fetch it online; or set sentinel1.geoid: none "
        "if the DEM heights are already ellipsoidal"
    )


def geoid_transformer(model: str) -> tuple[Transformer, str]:
    """A transformer (lon, lat, H) -> (lon, lat, h = H + N) for ``model`` and a label for sidecars.

    The label is e.g. ``"EGM96 (egm96_15.gtx)"``. Raises :class:`GeoidError` when the grid file is
    missing (and PROJ network access is off) or the transformer turns out to apply no shift.
    """
    spec = geoid_model(model)
    enable_system_grids()
    dirs = geoid_search_dirs()
    path = find_geoid_grid(model, dirs)
    if path is not None:
        grid_ref = str(path)
        if any(c.isspace() for c in grid_ref):  # a PROJ string cannot hold it: let PROJ find it by name
            enable_system_grids([path.parent])
            grid_ref = path.name
        label = f"{spec.name} ({path.name})"
    elif pyproj.network.is_network_enabled():
        grid_ref, label = spec.cdn_name, f"{spec.name} ({spec.cdn_name} from {CDN})"
    else:
        raise GeoidError(_missing_message(spec, dirs))
    try:
        transformer = Transformer.from_pipeline(_pipeline(grid_ref))
    except pyproj.exceptions.ProjError as exc:
        raise GeoidError(f"{_missing_message(spec, dirs)} (PROJ said: {exc})") from exc
    check_geoid_transformer(transformer, model)
    log.debug("geoid %s via %s", spec.name, grid_ref)
    return transformer, label


def check_geoid_transformer(transformer: Transformer, model: str) -> None:
    """Raise :class:`GeoidError` if ``transformer`` cannot be a real ``model`` geoid shift.

    It fails for PROJ's zero-shift "ballpark" operations and no-ops, and when the shift is (near) zero at
    probe points where every geoid model is tens of metres off the ellipsoid. Probes outside a regional
    grid (no finite result) are skipped.
    """
    spec = geoid_model(model)
    description = (transformer.description or "").lower()
    definition = (transformer.definition or "").lower()
    if "ballpark" in description or definition.strip().startswith("proj=noop"):
        raise GeoidError(
            f"the {spec.name} transformation is a zero-shift placeholder ({transformer.description!r}): "
            f"{_missing_message(spec, geoid_search_dirs())}"
        )
    lon = np.array([p[0] for p in _PROBES])
    lat = np.array([p[1] for p in _PROBES])
    with np.errstate(invalid="ignore"):
        shift = np.asarray(transformer.transform(lon, lat, np.zeros_like(lon), errcheck=False)[2], dtype=np.float64)
    finite = np.isfinite(shift) & (np.abs(shift) < 1e10)
    if finite.any() and np.all(np.abs(shift[finite]) < _PROBE_MIN_ABS):
        raise GeoidError(
            f"the {spec.name} transformation applies (almost) no shift where the geoid is tens of metres off the "
            f"ellipsoid (got {np.round(shift[finite], 3).tolist()} m, expected about "
            f"{[p[2] for p, ok in zip(_PROBES, finite, strict=True) if ok]} m): "
            f"{_missing_message(spec, geoid_search_dirs())}"
        )


def geoid_undulation(lon: np.ndarray, lat: np.ndarray, model: str) -> np.ndarray:
    """Geoid undulation N (metres, float64) of ``model`` at WGS84 lon/lat points (any matching shapes)."""
    transformer, _ = geoid_transformer(model)
    return _undulation(transformer, np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64), model)


def _undulation(transformer: Transformer, lon: np.ndarray, lat: np.ndarray, model: str) -> np.ndarray:
    flat_lon, flat_lat = lon.ravel(), lat.ravel()
    with np.errstate(invalid="ignore"):
        out = transformer.transform(flat_lon, flat_lat, np.zeros_like(flat_lon), errcheck=False)[2]
    values = np.asarray(out, dtype=np.float64).reshape(lon.shape)
    bad = ~np.isfinite(values) | (np.abs(values) > 1e4)
    if bad.any():
        spec = geoid_model(model)
        raise GeoidError(
            f"the {spec.name} geoid grid gives no value at {int(bad.sum())} of {bad.size} points "
            f"(lon {np.nanmin(flat_lon):.4f}..{np.nanmax(flat_lon):.4f}, lat {np.nanmin(flat_lat):.4f}.."
            f"{np.nanmax(flat_lat):.4f}); use a global grid ({spec.cdn_name} from {CDN}) in {GEOID_DIR_ENV}"
        )
    return values


def _nodes(n: int, step: int) -> np.ndarray:
    """Pixel indices 0, step, 2*step, ... always ending at n - 1."""
    nodes = np.arange(0, n, step)
    if nodes[-1] != n - 1:
        nodes = np.append(nodes, n - 1)
    return nodes


def _interp_axis(values: np.ndarray, nodes: np.ndarray, n: int, axis: int) -> np.ndarray:
    """Linear interpolation of ``values`` sampled at integer ``nodes`` along ``axis`` onto 0..n-1."""
    if len(nodes) == 1:
        return np.repeat(values, n, axis=axis)
    pos = np.arange(n, dtype=np.float64)
    i = np.clip(np.searchsorted(nodes, pos, side="right") - 1, 0, len(nodes) - 2)
    t = (pos - nodes[i]) / (nodes[i + 1] - nodes[i])
    lo, hi = np.take(values, i, axis=axis), np.take(values, i + 1, axis=axis)
    shape = [1, 1]
    shape[axis] = n
    t = t.reshape(shape)
    return lo * (1.0 - t) + hi * t


def undulation_on_grid(grid: TargetGrid, model: str, step_m: float = 1000.0) -> tuple[np.ndarray, str]:
    """Geoid undulation N (float64 metres) at ``grid``'s pixel centres, and the geoid label for sidecars.

    N is computed exactly on a sub-grid of nodes about ``step_m`` apart (always including the edge
    pixels) and interpolated bilinearly in between; the geoid is smooth enough for this to stay within
    millimetres of a per-pixel computation at a 1 km step.
    """
    transformer, label = geoid_transformer(model)
    if grid.width == 0 or grid.height == 0:
        return np.zeros(grid.shape, dtype=np.float64), label
    step = max(1, int(step_m // grid.resolution))
    rows, cols = _nodes(grid.height, step), _nodes(grid.width, step)
    xs, ys = grid.pixel_centres()
    gx, gy = np.meshgrid(xs[cols], ys[rows])
    to_lonlat = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True)
    lon, lat = to_lonlat.transform(gx, gy)
    coarse = _undulation(transformer, np.asarray(lon), np.asarray(lat), model)
    if np.all(coarse == 0.0):
        spec = geoid_model(model)
        raise GeoidError(
            f"the {spec.name} shift is exactly zero over the whole grid, so its grid file was not applied: "
            f"{_missing_message(spec, geoid_search_dirs())}"
        )
    across = _interp_axis(coarse, cols, grid.width, axis=1)
    return _interp_axis(across, rows, grid.height, axis=0), label
