"""A Zarr cube of a run: every written patch on the run's grid, one group per modality.

Layout of ``<run>/cube.zarr`` (Zarr format 2, consolidated metadata, CF-1.8 attributes):

- the root group holds attributes only (run name, modalities, cube grid, a fingerprint of the inputs);
- one group per modality (``S2``, ``S1``; every member of an S1 stack is in ``S1`` at its own time) holds
  a dataset with dims ``time``, ``band``, ``y``, ``x`` and
  ``patch``: the variable named like the modality (float32, NaN where no patch holds data, chunked by
  patch: one chunk = 1 time x all bands x one patch), the ``spatial_ref`` grid mapping, per-time
  coordinates (``product_ids``, ``platform``, for S1 ``orbit_direction`` / ``relative_orbit``, for the
  primary modality of paired runs ``pair_time`` and ``delta_t_hours``), per-patch coordinates (``patch_id``
  and its pixel window) and the per-(time, patch) sample table (``valid_fraction``, ``cloud_fraction``,
  ``unit_id``, ``is_sample``: True where the cell is a sample's primary modality, False where it only holds
  a pair partner).

Open a modality with ``xarray.open_zarr(path, group="S2")`` or everything with
``xarray.open_datatree(path, engine="zarr")``. Pixel values are copied from the patch COGs, so the cube
holds exactly their values.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from senprep_core import __version__
from senprep_core.atomic import dump_json, replace_folder
from senprep_core.bands import S2_BANDS, BandKind, canonical_s2_band
from senprep_core.errors import ConfigError, OutputError, SenprepError
from senprep_core.geo.grid import PixelWindow, TargetGrid
from senprep_core.outputs.records import PatchEntry, is_stack_role, time_axis_group
from senprep_core.outputs.run_folder import RunFolder
from senprep_core.timeutil import parse_utc

log = logging.getLogger(__name__)

CUBE_VERSION = 1
_TMP = ".tmp-"
_OLD = ".old-"
CODEC = ("zstd", 3)  # Blosc compressor and level (with byte shuffle)
TIME_ENCODING = {"units": "microseconds since 1970-01-01", "calendar": "proleptic_gregorian", "dtype": "int64"}


@dataclass(frozen=True)
class CubeLayer:
    """One modality of one written patch (a manifest entry holds one per modality)."""

    modality: str
    primary: bool  # the entry's own modality (a sample); False for the partner of a pair
    time: np.datetime64
    patch_id: str
    unit_id: str
    path: Path
    metadata_path: Path | None
    grid: TargetGrid
    bands: tuple[str, ...]
    product_ids: tuple[str, ...]
    platform: str | None
    valid_fraction: float
    cloud_fraction: float | None
    orbit_direction: str | None = None
    relative_orbit: int | None = None
    pair_modality: str | None = None
    pair_time: np.datetime64 | None = None
    stack: bool = False  # a member of an S1 stack (overlapping stacks hold a date more than once)


def parse_time(text: str) -> np.datetime64:
    """An ISO 8601 time ("...Z", "+00:00" or naive UTC) as a naive UTC ``datetime64[us]``."""
    return np.datetime64(parse_utc(text).replace(tzinfo=None), "us")


def delta_hours(primary: np.datetime64, secondary: np.datetime64) -> float:
    """Signed time difference secondary minus primary in hours (rounded to 1e-6 h, a few ms)."""
    micro = (secondary.astype("datetime64[us]") - primary.astype("datetime64[us]")).astype("int64")
    return round(float(micro) / 3.6e9, 6)


def entry_layers(entry: PatchEntry, root: Path) -> list[CubeLayer]:
    """The cube layers of one patch entry: its primary modality first, then a pair partner if any."""
    primary = entry.primary
    partner = entry.pair.secondary if entry.pair is not None and entry.pair.primary == primary.modality else None
    partner_part = entry.get(partner) if partner else None
    pair_time = parse_time(partner_part.sensing_time) if partner_part is not None else None
    layers = []
    stack = any(is_stack_role(m.modality) for m in entry.modalities)
    for part in sorted(entry.modalities, key=lambda m: (m is not primary, m.modality)):
        is_primary = part is primary
        layers.append(
            CubeLayer(
                modality=time_axis_group(part.modality),
                primary=is_primary,
                time=parse_time(part.sensing_time),
                patch_id=entry.patch_id,
                unit_id=entry.unit_id,
                path=root / part.image,
                metadata_path=root / part.sidecar,
                grid=entry.grid,
                bands=part.bands,
                product_ids=part.product_ids,
                platform=part.platform,
                valid_fraction=part.valid_fraction,
                cloud_fraction=part.cloud_fraction,
                orbit_direction=part.sar.orbit_direction if part.sar else None,
                relative_orbit=part.sar.relative_orbit if part.sar else None,
                pair_modality=partner if is_primary and pair_time is not None else None,
                pair_time=pair_time if is_primary else None,
                stack=stack,
            )
        )
    return layers


def require_zarr() -> Any:
    """The zarr module; a :class:`ConfigError` saying how to install it when it is missing or too old."""
    try:
        import zarr
    except ImportError:
        raise ConfigError("output.zarr", True, "the Zarr cube needs the zarr package: pip install 'zarr>=3'") from None
    if int(zarr.__version__.split(".")[0]) < 3:
        raise ConfigError("output.zarr", True, f"zarr {zarr.__version__} is too old: pip install 'zarr>=3'")
    return zarr


def _union_grid(layers: Sequence[CubeLayer]) -> TargetGrid:
    """The smallest grid holding every patch grid (all must share CRS, resolution and pixel lattice)."""
    first = layers[0].grid
    for layer in layers:
        if layer.grid.epsg != first.epsg or abs(layer.grid.resolution - first.resolution) > 1e-9:
            raise OutputError(
                f"patch {layer.patch_id} of {layer.unit_id} is on EPSG:{layer.grid.epsg} at {layer.grid.resolution} m "
                f"but others are on EPSG:{first.epsg} at {first.resolution} m; a Zarr cube needs one grid per run"
            )
    left = min(g.grid.bounds.left for g in layers)
    top = max(g.grid.bounds.top for g in layers)
    right = max(g.grid.bounds.right for g in layers)
    bottom = min(g.grid.bounds.bottom for g in layers)
    res = first.resolution
    return TargetGrid(first.epsg, res, left, top, round((right - left) / res), round((top - bottom) / res))


def _patch_windows(grid: TargetGrid, layers: Iterable[CubeLayer]) -> dict[str, PixelWindow]:
    """Each patch id's pixel window in the cube grid (one window per id)."""
    windows: dict[str, PixelWindow] = {}
    for layer in layers:
        try:
            window = grid.window_of(layer.grid)
        except ValueError as exc:
            raise OutputError(f"patch {layer.patch_id} of {layer.unit_id} is off the run's pixel grid: {exc}") from exc
        if windows.setdefault(layer.patch_id, window) != window:
            raise OutputError(f"patch id {layer.patch_id} names two different windows; the run's manifests disagree")
    return dict(sorted(windows.items()))


def _fingerprint(outdir: Path, name: str, entries: Sequence[PatchEntry], layers: Sequence[CubeLayer]) -> str:
    """Changes when the entries, the run name or any patch file changes (not when the run folder moves)."""
    stamps = []
    for layer in layers:
        try:
            st = layer.path.stat()
        except OSError as exc:
            raise OutputError(f"patch file {layer.path} is missing ({exc}); re-run the run to rewrite it") from exc
        stamps.append((layer.path.relative_to(outdir).as_posix(), st.st_size, st.st_mtime_ns))
    order = [e.to_dict() for e in sorted(entries, key=lambda e: (e.unit_id, e.patch_id))]
    return hashlib.sha256(dump_json([CUBE_VERSION, name, order, sorted(stamps)])).hexdigest()[:16]


def cube_attrs(path: Path) -> dict[str, Any]:
    """The root attributes of a cube (empty when there is none or it cannot be read)."""
    try:
        return dict(json.loads((Path(path) / ".zattrs").read_text()))
    except (OSError, ValueError):
        return {}


def band_info(modality: str, name: str) -> tuple[str, str, str]:
    """(kind, CF units, description) of a band name."""
    if modality == "S2":
        try:
            info = S2_BANDS[canonical_s2_band(name)]
        except SenprepError:
            return "unknown", "1", name
        units = {BandKind.PROBABILITY: "percent", BandKind.ANGLE: "degree"}.get(
            info.kind, "cm" if info.name == "WVP" else "1"
        )
        return info.kind.value, units, info.description
    lower = name.lower()
    if lower.startswith(("sigma0", "gamma0", "beta0")):
        return "backscatter", "dB" if lower.endswith("_db") else "1", f"{name} backscatter"
    if lower == "local_incidence_angle":
        return "angle", "degree", "local incidence angle"
    if lower in ("layover_shadow", "collocation_flags"):
        return "mask", "1", name.replace("_", " ")
    return "unknown", "1", name


def _data_attrs(modality: str, bands: Sequence[str], level: str | None) -> dict[str, Any]:
    """CF attributes of a modality's data variable."""
    infos = [band_info(modality, b) for b in bands]
    kinds = {i[0] for i in infos}
    units = {i[1] for i in infos}
    mission = {"S1": "Sentinel-1", "S2": "Sentinel-2"}.get(modality, modality)
    attrs: dict[str, Any] = {
        "long_name": f"{mission} {level + ' ' if level else ''}patches",
        "grid_mapping": "spatial_ref",
        "comment": "NaN where no patch holds data; per-band kind and units in band_kind / band_units",
    }
    if len(units) == 1:
        attrs["units"] = units.pop()
    if kinds == {"reflectance"} and level in ("L1C", "L2A"):
        attrs["standard_name"] = (
            "surface_bidirectional_reflectance" if level == "L2A" else "toa_bidirectional_reflectance"
        )
    if kinds == {"backscatter"} and attrs.get("units") == "1" and all(b.lower().startswith("sigma0") for b in bands):
        attrs["standard_name"] = "surface_backwards_scattering_coefficient_of_radar_wave"
    return attrs


def _crs_variable(grid: TargetGrid) -> Any:
    """The CF grid-mapping variable, as rioxarray and odc-geo write it."""
    import xarray as xr
    from pyproj import CRS

    crs = CRS.from_epsg(grid.epsg)
    attrs = dict(crs.to_cf())
    attrs["spatial_ref"] = attrs.get("crs_wkt", crs.to_wkt())
    t = grid.transform
    attrs["GeoTransform"] = " ".join(repr(float(v)) for v in (t.c, t.a, t.b, t.f, t.d, t.e))
    return xr.Variable((), np.int64(0), attrs)


def _axis_variables(grid: TargetGrid) -> dict[str, Any]:
    import xarray as xr
    from pyproj import CRS

    xs, ys = grid.pixel_centres()
    if CRS.from_epsg(grid.epsg).is_geographic:
        x_attrs = {"standard_name": "longitude", "long_name": "longitude", "units": "degrees_east", "axis": "X"}
        y_attrs = {"standard_name": "latitude", "long_name": "latitude", "units": "degrees_north", "axis": "Y"}
    else:
        x_attrs = {"standard_name": "projection_x_coordinate", "long_name": "x coordinate of projection",
                   "units": "m", "axis": "X"}  # fmt: skip
        y_attrs = {"standard_name": "projection_y_coordinate", "long_name": "y coordinate of projection",
                   "units": "m", "axis": "Y"}  # fmt: skip
    return {"x": xr.Variable("x", xs, x_attrs), "y": xr.Variable("y", ys, y_attrs)}


def _level(layer: CubeLayer) -> str | None:
    """The processing level a patch's sidecar names (L1C / L2A), if any."""
    if layer.metadata_path is None:
        return None
    try:
        level = json.loads(layer.metadata_path.read_text()).get("processing_level")
    except (OSError, ValueError):
        return None
    return str(level) if level else None


def _joined(values: Iterable[Any]) -> str:
    return " ".join(sorted({str(v) for v in values if v not in (None, "")}))


def _coords_dataset(
    modality: str, layers: Sequence[CubeLayer], grid: TargetGrid, windows: dict[str, PixelWindow], name: str
) -> tuple[Any, list[np.datetime64], tuple[str, ...]]:
    """The small variables of a modality group (everything but the pixel array)."""
    import xarray as xr

    times = sorted({layer.time for layer in layers})
    t_index = {t: i for i, t in enumerate(times)}
    patch_ids = list(windows)
    p_index = {p: i for i, p in enumerate(patch_ids)}
    bands = layers[0].bands
    for layer in layers:
        if layer.bands != bands:
            raise OutputError(
                f"{modality} patches of {layer.unit_id} have bands {list(layer.bands)} but others have {list(bands)}; "
                "a Zarr cube needs the same bands in every patch of a modality (re-run with --rebuild)"
            )
    n_t, n_p = len(times), len(patch_ids)
    valid = np.full((n_t, n_p), np.nan)
    cloud = np.full((n_t, n_p), np.nan)
    units = np.full((n_t, n_p), "", dtype=object)
    is_sample = np.zeros((n_t, n_p), dtype=bool)
    per_time: dict[str, list[set[Any]]] = defaultdict(lambda: [set() for _ in times])
    pair_time = np.full(n_t, np.datetime64("NaT"), dtype="datetime64[us]")
    for layer in layers:
        ti, pi = t_index[layer.time], p_index[layer.patch_id]
        # the table describes the pixels kept: a primary's, else (a date of overlapping stacks) the first unit's
        earlier_stack = layer.stack and not is_sample[ti, pi] and layer.unit_id < units[ti, pi]
        if layer.primary or not units[ti, pi] or earlier_stack:
            valid[ti, pi] = layer.valid_fraction
            cloud[ti, pi] = np.nan if layer.cloud_fraction is None else layer.cloud_fraction
            units[ti, pi] = layer.unit_id
        is_sample[ti, pi] |= layer.primary
        per_time["product_ids"][ti].update(layer.product_ids)
        per_time["platform"][ti].add(layer.platform)
        per_time["orbit_direction"][ti].add(layer.orbit_direction)
        per_time["relative_orbit"][ti].add(layer.relative_orbit)
        if layer.pair_time is not None and np.isnat(pair_time[ti]):
            pair_time[ti] = layer.pair_time
    infos = [band_info(modality, b) for b in bands]
    time_attrs = {"standard_name": "time", "long_name": f"sensing time (UTC) of the {modality} acquisition",
                  "axis": "T"}  # fmt: skip
    coords: dict[str, Any] = {
        "time": xr.Variable("time", np.array(times, dtype="datetime64[ns]"), time_attrs),
        "band": xr.Variable("band", np.array(bands, dtype=object), {"long_name": "band name"}),
        "band_kind": xr.Variable("band", np.array([i[0] for i in infos], dtype=object)),
        "band_units": xr.Variable("band", np.array([i[1] for i in infos], dtype=object)),
        "band_description": xr.Variable("band", np.array([i[2] for i in infos], dtype=object)),
        **_axis_variables(grid),
        "spatial_ref": _crs_variable(grid),
        "product_ids": xr.Variable("time", np.array([_joined(s) for s in per_time["product_ids"]], dtype=object),
                                   {"long_name": "ids of the products sensed at this time (space separated)"}),
        "platform": xr.Variable("time", np.array([_joined(s) for s in per_time["platform"]], dtype=object),
                                {"long_name": "platform"}),
        "patch_id": xr.Variable("patch", np.array(patch_ids, dtype=object), {"long_name": "patch id"}),
        "patch_row_off": xr.Variable("patch", np.array([windows[p].row_off for p in patch_ids], dtype="int32"),
                                     {"long_name": "first row of the patch in this cube"}),
        "patch_col_off": xr.Variable("patch", np.array([windows[p].col_off for p in patch_ids], dtype="int32"),
                                     {"long_name": "first column of the patch in this cube"}),
        "patch_height": xr.Variable("patch", np.array([windows[p].height for p in patch_ids], dtype="int32")),
        "patch_width": xr.Variable("patch", np.array([windows[p].width for p in patch_ids], dtype="int32")),
        "valid_fraction": xr.Variable(("time", "patch"), valid, {"long_name": "fraction of valid pixels in the patch",
                                                                 "units": "1", "comment": "NaN: no patch"}),
        "cloud_fraction": xr.Variable(("time", "patch"), cloud, {"long_name": "cloudy fraction of the valid pixels",
                                                                 "units": "1", "comment": "NaN: no patch or unknown"}),
        "unit_id": xr.Variable(("time", "patch"), units, {"long_name": "work unit that wrote the patch"}),
        "is_sample": xr.Variable(("time", "patch"), is_sample,
                                 {"long_name": "the cell is a sample's primary modality (False: a pair partner)"}),
    }  # fmt: skip
    if modality == "S1" or any(s != {None} for s in per_time["orbit_direction"]):
        coords["orbit_direction"] = xr.Variable(
            "time", np.array([_joined(s) for s in per_time["orbit_direction"]], dtype=object)
        )
        orbits = [next(iter(s)) if len(s) == 1 and None not in s else 0 for s in per_time["relative_orbit"]]
        coords["relative_orbit"] = xr.Variable(
            "time", np.array(orbits, dtype="int16"), {"long_name": "relative orbit", "comment": "0: unknown or mixed"}
        )
    partners = {layer.pair_modality for layer in layers if layer.pair_modality}
    attrs = {
        "Conventions": "CF-1.8",
        "title": f"senprep {modality} patches of run '{name}'",
        "source": f"senprep {__version__}",
        "senprep:modality": modality,
    }
    if partners:
        partner = sorted(partners)[0]
        attrs["senprep:pair_modality"] = partner
        hours = [np.nan if np.isnat(p) else delta_hours(t, p) for t, p in zip(times, pair_time, strict=True)]
        coords["pair_time"] = xr.Variable(
            "time", pair_time.astype("datetime64[ns]"), {"long_name": f"sensing time (UTC) of the paired {partner}"}
        )
        coords["delta_t_hours"] = xr.Variable(
            "time", np.array(hours), {"long_name": f"{partner} minus {modality} sensing time", "units": "hours"}
        )
    return xr.Dataset(coords=coords, attrs=attrs), times, bands


def _read_patch(path: Path, n_bands: int) -> np.ndarray:
    try:
        with rasterio.open(path) as src:
            data = src.read(out_dtype="float32")
    except rasterio.errors.RasterioIOError as exc:
        raise OutputError(f"cannot read patch {path} for the Zarr cube: {exc}; re-run the run to rewrite it") from exc
    if data.shape[0] != n_bands:
        raise OutputError(f"patch {path} has {data.shape[0]} bands, its manifest lists {n_bands}")
    return data


def _write_group(
    zarr: Any, store: Path, modality: str, layers: Sequence[CubeLayer], grid: TargetGrid,
    windows: dict[str, PixelWindow], name: str,
) -> int:  # fmt: skip
    """Write one modality group; returns the number of patches copied."""
    from numcodecs import Blosc

    ds, times, bands = _coords_dataset(modality, layers, grid, windows, name)
    encoding = {"time": dict(TIME_ENCODING)}
    if "pair_time" in ds:
        encoding["pair_time"] = dict(TIME_ENCODING)
    ds.to_zarr(store, group=modality, mode="w", zarr_format=2, consolidated=False, encoding=encoding)
    shape_counts = Counter((w.height, w.width) for w in windows.values())
    chunk_h, chunk_w = shape_counts.most_common(1)[0][0]
    group = zarr.open_group(str(store / modality), mode="r+", zarr_format=2)
    attrs = {"_ARRAY_DIMENSIONS": ["time", "band", "y", "x"], **_data_attrs(modality, bands, _level(layers[0]))}
    array = group.create_array(
        modality,
        shape=(len(times), len(bands), grid.height, grid.width),
        chunks=(1, len(bands), chunk_h, chunk_w),
        dtype="float32",
        fill_value=np.float32("nan"),
        compressors=Blosc(cname=CODEC[0], clevel=CODEC[1], shuffle=Blosc.SHUFFLE),
        attributes=attrs,
    )
    t_index = {t: i for i, t in enumerate(times)}
    todo, seen = [], set()
    for layer in sorted(layers, key=lambda g: (g.time, windows[g.patch_id].row_off, windows[g.patch_id].col_off,
                                               not g.primary, g.unit_id)):  # fmt: skip
        # one partner patch paired with several primaries; a date of overlapping stacks: the stack it is newest in
        key = (layer.time, layer.patch_id, None if layer.stack else layer.path)
        if key not in seen:
            seen.add(key)
            todo.append(layer)
    strips = _StripWriter(array, len(bands), chunk_h)
    for layer, data in _prefetch(lambda g: _read_patch(g.path, len(bands)), todo):
        ti, window = t_index[layer.time], windows[layer.patch_id]
        strips.flush_before(ti, window.row_off)
        strips.add(ti, window, data)
    strips.flush_before(len(times), 0)
    return len(todo)


def _prefetch(read: Callable[[CubeLayer], np.ndarray], layers: Sequence[CubeLayer], depth: int = 4) -> Iterator[
        tuple[CubeLayer, np.ndarray]]:  # fmt: skip
    """``(layer, read(layer))`` in order, reading a few patches ahead on two threads (GDAL releases the GIL)."""
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="senprep-cube-read") as pool:
        pending: deque[tuple[CubeLayer, Future[np.ndarray]]] = deque()
        for layer in layers:
            pending.append((layer, pool.submit(read, layer)))
            if len(pending) > depth:
                first, future = pending.popleft()
                yield first, future.result()
        while pending:
            first, future = pending.popleft()
            yield first, future.result()


class _StripWriter:
    """Gathers patches into rows of whole chunks (one chunk high, the cube wide) and writes each row once.

    Patches arrive sorted by time, then row: a row that ends above the next patch is complete. Where
    patches overlap, the first value written stays (overlapping patches hold the same values).
    Writing whole rows lets zarr encode and store their chunks together, with no read-modify-write.
    """

    def __init__(self, array: Any, n_bands: int, chunk_h: int) -> None:
        self.array, self.n_bands, self.chunk_h = array, n_bands, chunk_h
        self.height, self.width = array.shape[2], array.shape[3]
        self.rows: dict[tuple[int, int], np.ndarray] = {}

    def add(self, ti: int, window: PixelWindow, data: np.ndarray) -> None:
        ch = self.chunk_h
        for k in range(window.row_off // ch, (window.row_stop - 1) // ch + 1):
            if (ti, k) not in self.rows:
                shape = (self.n_bands, min(ch, self.height - k * ch), self.width)
                self.rows[(ti, k)] = np.full(shape, np.nan, dtype="float32")
            r0, r1 = max(window.row_off, k * ch), min(window.row_stop, (k + 1) * ch)
            target = self.rows[(ti, k)][:, r0 - k * ch : r1 - k * ch, window.col_off : window.col_stop]
            source = data[:, r0 - window.row_off : r1 - window.row_off, :]
            np.copyto(target, source, where=np.isnan(target))

    def flush_before(self, ti: int, row: int) -> None:
        """Write the rows of earlier times and those of time ``ti`` that end at or above ``row``."""
        for key in sorted(self.rows):
            t, k = key
            if t < ti or (t == ti and (k + 1) * self.chunk_h <= row):
                data = self.rows.pop(key)
                self.array[t, :, k * self.chunk_h : k * self.chunk_h + data.shape[1], :] = data


def _remove_leftovers(target: Path, keep: Path | None = None) -> None:
    """Remove temporary cube folders left by an interrupted write next to the cube ``target``."""
    for pattern in (f"{target.stem}{_TMP}*{target.suffix}", f"{target.stem}{_OLD}*{target.suffix}"):
        for path in target.parent.glob(pattern):
            if path != keep and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)


def write_zarr_cube(folder: RunFolder, entries: Sequence[PatchEntry], name: str) -> Path:
    """Build the run folder's Zarr cube from the run's patch ``entries``; return its path.

    The cube is written to a temporary folder and renamed into place, so a reader never sees a
    half-written cube. When the entries, the run name and every patch file are unchanged since the
    existing cube was written, nothing is rewritten. Raises :class:`OutputError` when the entries
    cannot form one cube (no patches, several grids, missing files) and :class:`ConfigError` when
    the zarr package is missing.
    """
    zarr = require_zarr()
    outdir = folder.root
    layers = [layer for entry in entries for layer in entry_layers(entry, outdir)]
    if not layers:
        raise OutputError(f"run '{name}' wrote no patches, so there is nothing to put in a Zarr cube")
    grid = _union_grid(layers)
    windows = _patch_windows(grid, layers)
    target = folder.cube_path
    fingerprint = _fingerprint(outdir, name, entries, layers)
    if target.is_dir() and cube_attrs(target).get("senprep:fingerprint") == fingerprint:
        log.info("Zarr cube %s is up to date", target)
        return target
    _remove_leftovers(target)
    tmp = target.with_name(f"{target.stem}{_TMP}{os.getpid()}{target.suffix}")
    by_modality: dict[str, list[CubeLayer]] = defaultdict(list)
    for layer in layers:
        by_modality[layer.modality].append(layer)
    try:
        copied = 0
        for modality in sorted(by_modality):
            copied += _write_group(zarr, tmp, modality, by_modality[modality], grid, windows, name)
        root = zarr.open_group(str(tmp), mode="r+", zarr_format=2)
        root.attrs.update(
            {
                "Conventions": "CF-1.8",
                "title": f"senprep patches of run '{name}'",
                "source": f"senprep {__version__}",
                "comment": "one group per modality: xarray.open_zarr(path, group='S2'), or xarray.open_datatree"
                "(path, engine='zarr')",
                "senprep:run": name,
                "senprep:modalities": sorted(by_modality),
                "senprep:grid": grid.to_dict(),
                "senprep:cube_version": CUBE_VERSION,
                "senprep:fingerprint": fingerprint,
            }
        )
        zarr.consolidate_metadata(str(tmp), zarr_format=2)
        replace_folder(tmp, target, aside=target.with_name(f"{target.stem}{_OLD}{os.getpid()}{target.suffix}"))
    except OSError as exc:
        raise OutputError(
            f"cannot write the Zarr cube {target}: {exc}; check the folder is writable and has space"
        ) from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("Zarr cube %s: %d patches, modalities %s", target, copied, ", ".join(sorted(by_modality)))
    return target
