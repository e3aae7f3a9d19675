"""The variables of a Zarr cube group besides its pixel array, written with zarr directly (Zarr format 2,
``_ARRAY_DIMENSIONS`` and CF attributes, as xarray reads them): band metadata, axes, the grid mapping,
per-time coordinates and the per-(time, patch) tables, the tables one time step at a time so a
cube's driver never holds a table of every patch of every date.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from senprep_core.bands import S2_BANDS, BandKind, canonical_s2_band
from senprep_core.errors import SenprepError
from senprep_core.geo.grid import TargetGrid

TIME_UNITS = "microseconds since 1970-01-01"
NAT = np.iinfo("int64").min  # the fill value of time variables (NaT)
TABLE_CELLS = 1 << 20  # cells of a (time, patch) table held and written at once
CODEC = ("zstd", 3)  # Blosc compressor and level of the pixel arrays (with byte shuffle)


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


def data_attrs(modality: str, bands: Sequence[str], level: str | None) -> dict[str, Any]:
    """CF attributes of a modality's pixel array."""
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


def write_variable(
    group: Any, name: str, dims: Sequence[str], values: np.ndarray, attrs: dict[str, Any], fill: Any = None
) -> Any:
    """Create (or replace) the variable ``name`` of ``group`` holding ``values`` in one chunk; strings are
    variable-length UTF-8, floats use NaN for no data, other types ``fill`` (None: no fill value)."""
    values = np.asarray(values)
    strings = values.dtype.kind in "OU"
    if strings:
        fill = ""
    elif values.dtype.kind == "f":
        fill = np.nan
    array = group.create_array(
        name,
        shape=values.shape,
        chunks=tuple(max(1, n) for n in values.shape),
        dtype=str if strings else values.dtype,
        fill_value=fill,
        attributes={"_ARRAY_DIMENSIONS": list(dims), **attrs},
        overwrite=True,
    )
    if values.shape:
        array[...] = values.astype(object) if strings else values
    else:
        array[()] = values
    return array


def time_values(times: Sequence[np.datetime64 | None]) -> np.ndarray:
    """Times as int64 microseconds since 1970 (:data:`NAT` for none), as :data:`TIME_UNITS` say."""
    out = np.full(len(times), NAT, dtype="int64")
    for i, t in enumerate(times):
        if t is not None and not np.isnat(t):
            out[i] = t.astype("datetime64[us]").astype("int64")
    return out


def time_attrs(long_name: str, axis: bool = False) -> dict[str, Any]:
    attrs = {"long_name": long_name, "units": TIME_UNITS, "calendar": "proleptic_gregorian"}
    if axis:
        attrs.update({"standard_name": "time", "axis": "T"})
    return attrs


def crs_attrs(grid: TargetGrid) -> dict[str, Any]:
    """The CF grid-mapping attributes, as rioxarray and odc-geo write them."""
    from pyproj import CRS

    crs = CRS.from_epsg(grid.epsg)
    attrs = dict(crs.to_cf())
    attrs["spatial_ref"] = attrs.get("crs_wkt", crs.to_wkt())
    t = grid.transform
    attrs["GeoTransform"] = " ".join(repr(float(v)) for v in (t.c, t.a, t.b, t.f, t.d, t.e))
    return attrs


def write_axes(group: Any, grid: TargetGrid) -> None:
    """The ``x`` / ``y`` pixel-centre coordinates and the ``spatial_ref`` grid mapping."""
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
    write_variable(group, "x", ["x"], np.asarray(xs, dtype="float64"), x_attrs)
    write_variable(group, "y", ["y"], np.asarray(ys, dtype="float64"), y_attrs)
    write_variable(group, "spatial_ref", [], np.array(0, dtype="int64"), crs_attrs(grid))


def write_bands(group: Any, modality: str, bands: Sequence[str]) -> None:
    infos = [band_info(modality, b) for b in bands]
    write_variable(group, "band", ["band"], np.array(bands, dtype=object), {"long_name": "band name"})
    for i, name in enumerate(("band_kind", "band_units", "band_description")):
        write_variable(group, name, ["band"], np.array([info[i] for info in infos], dtype=object), {})


class PatchTables:
    """The per-(time, patch) tables of a group, filled one time step at a time and written in blocks of rows
    (a block is one chunk of at most :data:`TABLE_CELLS` cells: memory bounded, few writes)."""

    def __init__(self, group: Any, n_times: int, patch_ids: Sequence[str]) -> None:
        self.index = {p: i for i, p in enumerate(patch_ids)}
        self.n = n = len(patch_ids)
        self.block = max(1, min(n_times, TABLE_CELLS // max(n, 1)))
        shape, chunks, dims = (n_times, n), (self.block, max(n, 1)), ["time", "patch"]

        def table(name: str, dtype: Any, fill: Any, attrs: dict[str, Any]) -> Any:
            return group.create_array(name, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill,
                                      attributes={"_ARRAY_DIMENSIONS": dims, **attrs}, overwrite=True)  # fmt: skip

        valid_about = {"long_name": "fraction of valid pixels in the patch", "units": "1", "comment": "NaN: no patch"}
        cloud_about = {"long_name": "cloudy fraction of the valid pixels", "units": "1",
                       "comment": "NaN: no patch or unknown"}  # fmt: skip
        self.valid = table("valid_fraction", "float64", np.nan, valid_about)
        self.cloud = table("cloud_fraction", "float64", np.nan, cloud_about)
        self.unit = table("unit_id", str, "", {"long_name": "work unit that wrote the patch"})
        sample_about = {"long_name": "the cell is a sample's primary modality (False: a pair partner)"}
        self.sample = table("is_sample", "bool", None, sample_about)
        self.start = 0
        self._new_block()

    def _new_block(self) -> None:
        shape = (self.block, self.n)
        self.rows = [np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, "", dtype=object),
                     np.zeros(shape, dtype=bool)]  # fmt: skip

    def write_row(self, t: int, layers: Sequence[Any]) -> None:
        """Row ``t`` (rows come in order) from the slot's layers (a sample's own values win over a pair
        partner's)."""
        if t >= self.start + self.block:
            self.flush()
        valid, cloud, units, sample = (a[t - self.start] for a in self.rows)
        for layer in layers:
            i = self.index[layer.patch_id]
            if layer.primary or not units[i]:
                valid[i] = layer.valid_fraction
                cloud[i] = np.nan if layer.cloud_fraction is None else layer.cloud_fraction
                units[i] = layer.unit_id
            sample[i] |= layer.primary

    def flush(self) -> None:
        """Write the rows filled so far (call once after the last row)."""
        stop = min(self.start + self.block, self.valid.shape[0])
        if stop > self.start:
            for array, rows in zip((self.valid, self.cloud, self.unit, self.sample), self.rows, strict=True):
                array[self.start : stop] = rows[: stop - self.start]
        self.start += self.block
        self._new_block()
