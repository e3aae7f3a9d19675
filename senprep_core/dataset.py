"""Iterate a run's patches as machine-learning samples: numpy arrays, masks and metadata.

A sample is one written patch of one work unit: the arrays of its modalities (``S2`` and/or ``S1``,
each ``(bands, height, width)`` float32 with NaN as no-data), boolean masks (``S2_valid``, ``S1_valid``
and every 0/1 mask band such as ``scl_cloud_shadow``) and its metadata (patch and unit ids, sensing
times, product ids, Δt of a pair, cloud and valid fractions, grid). Samples come from a run's STAC
catalog (``source="stac"``: items -> COG assets and sidecars) or from its Zarr cube (``source="zarr"``),
in the same deterministic order (primary sensing time, unit id, patch id) with the same values::

    ds = PatchDataset("runs/glasgow", source="zarr", max_cloud=0.2, start="2022-04-01")
    for sample in ds:
        x = sample.s2  # (bands, h, w)

``ds.as_torch()`` wraps it as a ``torch.utils.data.Dataset`` when PyTorch is installed.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import rasterio

from senprep_core.errors import ConfigError, OutputError
from senprep_core.geo.grid import PixelWindow, TargetGrid
from senprep_core.outputs.run_folder import RunFolder
from senprep_core.outputs.zarr_cube import band_info, cube_attrs, delta_hours, parse_time, require_zarr

Source = Literal["auto", "stac", "zarr"]
MODALITIES = ("S1", "S2")
_BATCH = 32  # samples read together while iterating
_GDAL_ENV = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}  # run folders hold many files: no directory listing


@dataclass(frozen=True)
class SampleMetadata:
    """What is known about one sample; per-modality fields are keyed by modality ("S1", "S2")."""

    patch_id: str
    unit_id: str
    primary: str
    sensing_time: Mapping[str, datetime]
    product_ids: Mapping[str, tuple[str, ...]]
    platform: Mapping[str, str | None]
    bands: Mapping[str, tuple[str, ...]]
    valid_fraction: Mapping[str, float]
    cloud_fraction: Mapping[str, float | None]
    grid: TargetGrid
    delta_t_hours: float | None = None
    orbit_direction: Mapping[str, str | None] = field(default_factory=dict)
    relative_orbit: Mapping[str, int | None] = field(default_factory=dict)

    @property
    def modalities(self) -> tuple[str, ...]:
        """The sample's modalities, primary first."""
        return tuple(sorted(self.sensing_time, key=lambda m: (m != self.primary, m)))

    @property
    def time(self) -> datetime:
        """The primary modality's sensing time (UTC)."""
        return self.sensing_time[self.primary]

    @property
    def cloud(self) -> float | None:
        """The Sentinel-2 cloud fraction when the sample has S2, else the primary's (None: unknown)."""
        return self.cloud_fraction.get("S2", self.cloud_fraction.get(self.primary))

    @property
    def crs(self) -> str:
        return self.grid.crs

    @property
    def transform(self) -> tuple[float, ...]:
        return tuple(self.grid.transform)[:6]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (times as ISO strings)."""
        out: dict[str, Any] = {k: getattr(self, k) for k in ("patch_id", "unit_id", "primary", "delta_t_hours")}
        for key in ("product_ids", "platform", "bands", "valid_fraction", "cloud_fraction", "orbit_direction",
                    "relative_orbit"):  # fmt: skip
            out[key] = {m: list(v) if isinstance(v, tuple) else v for m, v in getattr(self, key).items()}
        out["modalities"] = list(self.modalities)
        out["sensing_time"] = {m: t.isoformat().replace("+00:00", "Z") for m, t in self.sensing_time.items()}
        out.update(grid=self.grid.to_dict(), crs=self.crs, transform=list(self.transform))
        return out


@dataclass(frozen=True)
class Sample:
    """One sample: arrays per modality, boolean masks and metadata. ``sample["S2"]`` works like a dict."""

    arrays: Mapping[str, np.ndarray]
    masks: Mapping[str, np.ndarray]
    metadata: SampleMetadata

    @property
    def s1(self) -> np.ndarray | None:
        return self.arrays.get("S1")

    @property
    def s2(self) -> np.ndarray | None:
        return self.arrays.get("S2")

    def __getitem__(self, key: str) -> Any:
        if key in MODALITIES:
            return self.arrays.get(key)
        if key == "masks":
            return self.masks
        if key == "metadata":
            return self.metadata
        raise KeyError(f"{key!r}: a sample has 'S1', 'S2', 'masks' and 'metadata'")

    def as_dict(self) -> dict[str, Any]:
        """``{"S1": array | None, "S2": array | None, "masks": {...}, "metadata": {...}}``."""
        return {"S1": self.s1, "S2": self.s2, "masks": dict(self.masks), "metadata": self.metadata.to_dict()}


def make_masks(arrays: Mapping[str, np.ndarray], bands: Mapping[str, Sequence[str]]) -> dict[str, np.ndarray]:
    """``<MOD>_valid`` (every band holds data) per modality, plus each 0/1 mask band as booleans."""
    masks: dict[str, np.ndarray] = {}
    for mod, data in arrays.items():
        masks[f"{mod}_valid"] = np.isfinite(data).all(axis=0)
        for index, name in enumerate(bands[mod]):
            if band_info(mod, name)[0] == "mask":
                masks[name] = data[index] >= 0.5
    return masks


@dataclass(frozen=True)
class _Ref:
    """A sample before its pixels are read: metadata plus where each modality's pixels are."""

    metadata: SampleMetadata
    locations: tuple[tuple[str, Any], ...]  # (modality, backend-specific location)

    def key(self) -> tuple[datetime, str, str, str]:
        m = self.metadata
        return (m.time, m.unit_id, m.patch_id, m.primary)


class _Backend(Protocol):
    refs: list[_Ref]

    def read_many(self, refs: Sequence[_Ref]) -> list[dict[str, np.ndarray]]: ...


def _utc(value: np.datetime64) -> datetime:
    micro = int(np.asarray(value).astype("datetime64[us]").astype("int64"))
    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=micro)


def _none_if_nan(value: Any) -> float | None:
    return None if value is None or np.isnan(value) else float(value)


# --- STAC ---------------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        raise OutputError(f"cannot read {path}: {exc}; re-run the run to rewrite its outputs") from exc


def _about_from_sidecar(sidecar: dict[str, Any]) -> dict[str, Any]:
    sar = sidecar.get("sar") or {}
    return {
        "time": parse_time(sidecar["sensing_time"]),
        "product_ids": tuple(sidecar.get("product_ids") or ()),
        "platform": sidecar.get("platform"),
        "bands": tuple(sidecar["bands"]),
        "valid_fraction": float(sidecar["valid_fraction"]),
        "cloud_fraction": _none_if_nan(sidecar.get("cloud_fraction")),
        "grid": TargetGrid.from_dict(sidecar["grid"]),
        "orbit_direction": sar.get("orbit_direction", sidecar.get("orbit_direction")),
        "relative_orbit": sar.get("relative_orbit", sidecar.get("relative_orbit")),
    }


def _item_paths(catalog: Path) -> list[Path]:
    """The item files of a catalog, following its child catalogs and collections (each file once)."""
    seen: set[Path] = {catalog}
    pending: list[Path] = [catalog]
    items: list[Path] = []
    while pending:
        node = pending.pop()
        for link in _read_json(node).get("links", []):
            rel, href = link.get("rel"), link.get("href")
            if rel not in ("child", "item") or not href:
                continue
            target = (node.parent / href).resolve()
            if target not in seen:
                seen.add(target)
                (items if rel == "item" else pending).append(target)
    return sorted(items)


class _StacBackend:
    """Samples from ``catalog.json`` -> items -> COG assets (pixels) and sidecar assets (metadata)."""

    def __init__(self, catalog: Path) -> None:
        self.refs = [self._ref(_read_json(path), path.parent) for path in _item_paths(catalog.resolve())]

    @staticmethod
    def _ref(item: dict[str, Any], base: Path) -> _Ref:
        props, assets = item["properties"], item.get("assets", {})
        data = {k: (base / a["href"]).resolve() for k, a in assets.items() if k in MODALITIES}
        abouts = {}
        for mod in data:
            meta = assets.get(f"{mod}_metadata")
            if not meta:
                raise OutputError(f"STAC item {item.get('id')} has no {mod}_metadata sidecar asset; "
                                  "rewrite the catalog with this senprep version, or use source='zarr'")  # fmt: skip
            abouts[mod] = _about_from_sidecar(_read_json((base / meta["href"]).resolve()))
        primary = props.get("senprep:primary")
        if primary not in abouts:  # one modality, or the one sensed at the item's datetime
            same = [m for m in sorted(abouts) if abouts[m]["time"] == parse_time(props["datetime"])]
            primary = same[0] if len(abouts) > 1 and same else min(abouts)
        return _Ref(_metadata(props["senprep:patch_id"], props["senprep:unit_id"], primary, abouts),
                    tuple(sorted(data.items())))  # fmt: skip

    def read_many(self, refs: Sequence[_Ref]) -> list[dict[str, np.ndarray]]:
        out: list[dict[str, np.ndarray]] = [{} for _ in refs]
        with rasterio.Env(**_GDAL_ENV):  # (two reader threads were no faster here)
            for arrays, ref in zip(out, refs, strict=True):
                for mod, path in ref.locations:
                    with rasterio.open(path) as src:
                        arrays[mod] = src.read(out_dtype="float32")
        return out


def _metadata(patch_id: str, unit_id: str, primary: str, abouts: Mapping[str, dict[str, Any]]) -> SampleMetadata:
    """Assemble a sample's metadata from per-modality fields (shared by both backends)."""
    delta = None
    partners = [m for m in abouts if m != primary]
    if partners:
        delta = delta_hours(abouts[primary]["time"], abouts[partners[0]]["time"])
    s1 = [m for m in abouts if m == "S1"]
    return SampleMetadata(
        patch_id=patch_id,
        unit_id=unit_id,
        primary=primary,
        sensing_time={m: _utc(a["time"]) for m, a in abouts.items()},
        product_ids={m: tuple(a["product_ids"]) for m, a in abouts.items()},
        platform={m: a["platform"] or None for m, a in abouts.items()},
        bands={m: tuple(a["bands"]) for m, a in abouts.items()},
        valid_fraction={m: a["valid_fraction"] for m, a in abouts.items()},
        cloud_fraction={m: a["cloud_fraction"] for m, a in abouts.items()},
        grid=abouts[primary]["grid"],
        delta_t_hours=delta,
        orbit_direction={m: abouts[m]["orbit_direction"] or None for m in s1},
        relative_orbit={m: int(abouts[m]["relative_orbit"]) if abouts[m]["relative_orbit"] else None for m in s1},
    )


# --- Zarr ---------------------------------------------------------------------------------------------


class _ZarrGroup:
    """The small variables of one modality group of a cube, loaded into numpy."""

    def __init__(self, cube: Path, modality: str) -> None:
        import xarray as xr

        ds = xr.open_zarr(cube, group=modality, chunks=None)
        small = ds.drop_vars([modality]).load()
        self.attrs = dict(ds.attrs)
        self.times = small["time"].values
        self.t_index = {np.datetime64(t, "us"): i for i, t in enumerate(self.times)}
        self.bands = tuple(str(b) for b in small["band"].values)
        self.product_ids = [tuple(str(s).split()) for s in small["product_ids"].values]
        self.platform = [str(s) or None for s in small["platform"].values]
        self.orbit = [str(s) or None for s in small["orbit_direction"].values] if "orbit_direction" in small else None
        self.rel_orbit = [int(v) or None for v in small["relative_orbit"].values] if "relative_orbit" in small else None
        self.pair_time = small["pair_time"].values if "pair_time" in small else None
        self.patch_ids = [str(p) for p in small["patch_id"].values]
        self.windows = [
            PixelWindow(int(r), int(c), int(h), int(w))
            for r, c, h, w in zip(small["patch_row_off"].values, small["patch_col_off"].values,
                                  small["patch_height"].values, small["patch_width"].values, strict=True)
        ]  # fmt: skip
        self.valid = small["valid_fraction"].values
        self.cloud = small["cloud_fraction"].values
        self.unit_id = small["unit_id"].values
        self.is_sample = small["is_sample"].values.astype(bool)

    def about(self, ti: int, pi: int, grid: TargetGrid) -> dict[str, Any]:
        return {
            "time": np.datetime64(self.times[ti], "us"),
            "product_ids": self.product_ids[ti],
            "platform": self.platform[ti],
            "bands": self.bands,
            "valid_fraction": float(self.valid[ti, pi]),
            "cloud_fraction": _none_if_nan(self.cloud[ti, pi]),
            "grid": grid.subgrid(self.windows[pi]),
            "orbit_direction": None if self.orbit is None else self.orbit[ti],
            "relative_orbit": None if self.rel_orbit is None else self.rel_orbit[ti],
        }


class _ZarrBackend:
    """Samples from ``cube.zarr``: the sample table of each modality group, pixels by chunk."""

    def __init__(self, cube: Path) -> None:
        require_zarr()
        attrs = cube_attrs(cube)
        if "senprep:grid" not in attrs:
            raise ConfigError("source", str(cube), "this is not a senprep Zarr cube (its root lacks senprep:grid)")
        self.cube = cube
        grid = TargetGrid.from_dict(attrs["senprep:grid"])
        groups = {m: _ZarrGroup(cube, m) for m in attrs["senprep:modalities"]}
        refs = []
        for mod, group in groups.items():
            partner = str(group.attrs.get("senprep:pair_modality") or "")
            for ti, pi in zip(*np.nonzero(group.is_sample), strict=True):
                abouts = {mod: group.about(ti, pi, grid)}
                locations: list[tuple[str, Any]] = [(mod, (int(ti), group.windows[pi]))]
                if partner in groups and group.pair_time is not None and not np.isnat(group.pair_time[ti]):
                    other = groups[partner]
                    tp = other.t_index.get(np.datetime64(group.pair_time[ti], "us"))
                    if tp is not None and np.isfinite(other.valid[tp, pi]):
                        abouts[partner] = other.about(tp, pi, grid)
                        locations.append((partner, (tp, other.windows[pi])))
                unit = str(group.unit_id[ti, pi])
                refs.append(_Ref(_metadata(group.patch_ids[pi], unit, mod, abouts), tuple(sorted(locations))))
        self.refs = refs
        self._arrays: dict[str, Any] = {}
        self._pid = -1

    def _array(self, modality: str) -> Any:
        if self._pid != os.getpid():  # opened lazily, and again in each worker process
            import zarr

            root = zarr.open_group(str(self.cube), mode="r")
            self._arrays = {m: root[m][m] for m in cube_attrs(self.cube)["senprep:modalities"]}
            self._pid = os.getpid()
        return self._arrays[modality]

    def read_many(self, refs: Sequence[_Ref]) -> list[dict[str, np.ndarray]]:
        """Several samples; side-by-side patches of one time and row are read in one call (one row of chunks)."""
        out: list[dict[str, np.ndarray]] = [{} for _ in refs]
        rows: dict[tuple[str, int, int, int], list[tuple[int, PixelWindow]]] = {}
        for i, ref in enumerate(refs):
            for mod, (ti, window) in ref.locations:
                rows.setdefault((mod, ti, window.row_off, window.height), []).append((i, window))
        for (mod, ti, r0, height), items in rows.items():
            items.sort(key=lambda item: item[1].col_off)
            run: list[tuple[int, PixelWindow]] = []
            for item in [*items, None]:  # runs of touching or overlapping windows
                if run and (item is None or item[1].col_off > max(w.col_stop for _, w in run)):
                    c0, c1 = run[0][1].col_off, max(w.col_stop for _, w in run)
                    block = np.asarray(self._array(mod)[ti, :, r0 : r0 + height, c0:c1], dtype="float32")
                    for i, w in run:
                        out[i][mod] = block[:, :, w.col_off - c0 : w.col_stop - c0].copy()
                    run = []
                if item is not None:
                    run.append(item)
        return out


# --- the dataset --------------------------------------------------------------------------------------


def _resolve(path: Path, source: Source) -> tuple[str, Path]:
    """The backend kind and the file it reads, from a run folder, a catalog.json or a .zarr folder."""
    if source not in ("auto", "stac", "zarr"):
        raise ConfigError("source", source, "use 'stac' (the run's catalog.json) or 'zarr' (the run's cube.zarr)")
    if path.suffix == ".zarr" or (path / ".zgroup").exists():
        found = {"zarr": path}
    elif path.is_file():
        found = {"stac": path}
    else:
        folder = RunFolder(path)
        found = {k: p for k, p in (("stac", folder.catalog_file), ("zarr", folder.cube_path)) if p.exists()}
    if source == "auto":
        if not found:
            raise ConfigError("path", str(path), "give a senprep run folder (with catalog.json or cube.zarr), "
                              "its catalog.json or its cube.zarr")  # fmt: skip
        source = "stac" if "stac" in found else "zarr"
    if source not in found or not found[source].exists():
        fix = {"stac": "run with output.stac true", "zarr": "run with output.zarr true"}[source]
        raise ConfigError("source", source, f"{path} holds no {source.upper()} output of a senprep run; {fix}")
    return source, found[source]


def _as_utc(value: date | datetime | str, end: bool) -> tuple[datetime, bool]:
    """A bound as an aware UTC datetime and whether it is a whole day (dates: the end covers the day)."""
    if isinstance(value, str):
        try:
            value = (
                date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value.replace("Z", "+00:00"))
            )
        except ValueError as exc:
            raise ConfigError("end" if end else "start", value, "give an ISO date (2022-04-01) or time") from exc
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return aware.astimezone(timezone.utc), False
    return datetime(value.year, value.month, value.day, tzinfo=timezone.utc), True


@dataclass(frozen=True)
class Filters:
    """Which samples a :class:`PatchDataset` keeps (None: no limit)."""

    max_cloud: float | None = None
    max_delta_t_hours: float | None = None
    start: date | datetime | str | None = None
    end: date | datetime | str | None = None
    modalities: tuple[str, ...] = ()

    def check(self) -> None:
        if self.max_cloud is not None and not 0.0 <= self.max_cloud <= 1.0:
            raise ConfigError("max_cloud", self.max_cloud, "give a fraction between 0 and 1 (0.2 = 20 %)")
        if self.max_delta_t_hours is not None and self.max_delta_t_hours < 0:
            raise ConfigError("max_delta_t_hours", self.max_delta_t_hours, "give a number of hours >= 0")
        for mod in self.modalities:
            if mod not in MODALITIES:
                raise ConfigError("modalities", mod, f"use a subset of {', '.join(MODALITIES)}")

    def predicate(self) -> Callable[[SampleMetadata], bool]:
        """The filter as a function of a sample's metadata.

        Clouds: the S2 cloud fraction (samples with an unknown one pass). Δt: samples without a pair
        fail a Δt limit. Dates: on the primary sensing time; a date ``end`` includes that whole day.
        """
        self.check()
        lo = None if self.start is None else _as_utc(self.start, end=False)[0]
        hi = None
        if self.end is not None:
            hi_time, whole_day = _as_utc(self.end, end=True)
            hi = hi_time + timedelta(days=1) if whole_day else hi_time + timedelta(microseconds=1)
        if lo is not None and hi is not None and hi <= lo:
            raise ConfigError("end", self.end, f"the end is before the start ({self.start})")

        def keep(m: SampleMetadata) -> bool:
            if self.max_cloud is not None and m.cloud is not None and m.cloud > self.max_cloud:
                return False
            if self.max_delta_t_hours is not None and (
                m.delta_t_hours is None or abs(m.delta_t_hours) > self.max_delta_t_hours
            ):
                return False
            if (lo is not None and m.time < lo) or (hi is not None and m.time >= hi):
                return False
            return all(mod in m.sensing_time for mod in self.modalities)

        return keep


class PatchDataset(Sequence[Sample]):
    """The samples of a run, read from its STAC catalog or Zarr cube, filtered, in a deterministic order.

    ``path`` is a run folder, its ``catalog.json`` or its ``cube.zarr``; ``source`` picks the reader
    ("auto": STAC when there is a catalog, else Zarr). Filters: ``max_cloud`` (fraction), ``max_delta_t_hours``
    (|Δt| of a pair), ``start`` / ``end`` (dates or times, inclusive) and ``modalities`` (the sample must
    have each of them). Pixels are read when a sample is accessed.
    """

    def __init__(
        self,
        path: str | Path,
        source: Source = "auto",
        *,
        max_cloud: float | None = None,
        max_delta_t_hours: float | None = None,
        start: date | datetime | str | None = None,
        end: date | datetime | str | None = None,
        modalities: Sequence[str] = (),
    ) -> None:
        keep = Filters(max_cloud, max_delta_t_hours, start, end, tuple(modalities)).predicate()  # checked first
        kind, target = _resolve(Path(path), source)
        backend: _Backend = _StacBackend(target) if kind == "stac" else _ZarrBackend(target)
        self.source: str = kind
        self.path, self._backend = target, backend
        self._refs = [r for r in sorted(backend.refs, key=_Ref.key) if keep(r.metadata)]

    def filter(
        self,
        *,
        max_cloud: float | None = None,
        max_delta_t_hours: float | None = None,
        start: date | datetime | str | None = None,
        end: date | datetime | str | None = None,
        modalities: Sequence[str] = (),
    ) -> PatchDataset:
        """A dataset holding the samples of this one that also pass these filters (nothing is re-read)."""
        keep = Filters(max_cloud, max_delta_t_hours, start, end, tuple(modalities)).predicate()
        clone = copy.copy(self)
        clone._refs = [r for r in self._refs if keep(r.metadata)]
        return clone

    @property
    def metadata(self) -> list[SampleMetadata]:
        """Every sample's metadata, without reading pixels."""
        return [r.metadata for r in self._refs]

    def __len__(self) -> int:
        return len(self._refs)

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        if not isinstance(index, int | np.integer):
            raise TypeError(f"index samples with an int, not {type(index).__name__}")
        ref = self._refs[index]
        arrays = self._backend.read_many([ref])[0]
        return Sample(arrays, make_masks(arrays, ref.metadata.bands), ref.metadata)

    def __iter__(self) -> Iterator[Sample]:
        """Every sample in order; pixels are read a batch at a time (neighbouring patches together)."""
        for start in range(0, len(self._refs), _BATCH):
            batch = self._refs[start : start + _BATCH]
            for ref, arrays in zip(batch, self._backend.read_many(batch), strict=True):
                yield Sample(arrays, make_masks(arrays, ref.metadata.bands), ref.metadata)

    def __repr__(self) -> str:
        return f"PatchDataset({str(self.path)!r}, source={self.source!r}, samples={len(self)})"

    def as_torch(self, transform: Callable[[Sample], Any] | None = None) -> Any:
        """This dataset as a ``torch.utils.data.Dataset``; needs PyTorch.

        Each item is ``transform(sample)``, by default :func:`torch_item` (tensors and collatable metadata).
        """
        try:
            from torch.utils.data import Dataset
        except ImportError:
            raise ConfigError(
                "as_torch", "torch", "PyTorch is not installed: pip install torch (https://pytorch.org/get-started)"
            ) from None
        convert = transform or torch_item
        samples = self

        class TorchPatchDataset(Dataset):  # type: ignore[misc, type-arg]
            """A run's samples as a PyTorch map-style dataset."""

            def __len__(self) -> int:
                return len(samples)

            def __getitem__(self, index: int) -> Any:
                return convert(samples[int(index)])

        return TorchPatchDataset()


def torch_item(sample: Sample) -> dict[str, Any]:
    """A sample as tensors plus metadata the default ``collate_fn`` can batch (missing values are NaN).

    Keys: the sample's modalities (float32 tensors), ``masks`` (bool tensors) and ``metadata``
    (patch_id, unit_id, primary, time as ISO text, delta_t_hours, cloud_fraction, valid_fraction).
    """
    import torch

    m = sample.metadata
    out: dict[str, Any] = {mod: torch.from_numpy(np.ascontiguousarray(a)) for mod, a in sample.arrays.items()}
    out["masks"] = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sample.masks.items()}
    out["metadata"] = {
        "patch_id": m.patch_id,
        "unit_id": m.unit_id,
        "primary": m.primary,
        "time": m.time.isoformat(),
        "delta_t_hours": float("nan") if m.delta_t_hours is None else m.delta_t_hours,
        "cloud_fraction": float("nan") if m.cloud is None else m.cloud,
        "valid_fraction": m.valid_fraction[m.primary],
    }
    return out
