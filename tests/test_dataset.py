"""The ML loader: samples from a run's STAC catalog and from its Zarr cube agree; shapes, metadata, filters."""

from __future__ import annotations

import importlib.util
import sys
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio

from senprep_core.dataset import PatchDataset, Sample
from senprep_core.errors import ConfigError
from senprep_core.geo.grid import TargetGrid
from senprep_core.outputs.run_folder import RunFolder
from senprep_core.outputs.zarr_cube import delta_hours, parse_time
from tests.test_zarr_cube import build_runs


@pytest.fixture(scope="module")
def runs(demo_products: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_runs(demo_products, tmp_path_factory.mktemp("loader"))


def _entries(outdir: Path) -> list[dict[str, Any]]:
    """The run's patch entries in their manifest (JSON) form."""
    return [e.to_dict() for e in RunFolder(outdir).entries()]


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def _assert_same_samples(a: PatchDataset, b: PatchDataset) -> None:
    assert len(a) == len(b) > 0
    assert a.metadata == b.metadata
    for x, y in zip(a, b, strict=True):
        assert x.arrays.keys() == y.arrays.keys() and x.masks.keys() == y.masks.keys()
        for mod in x.arrays:
            assert np.array_equal(x.arrays[mod], y.arrays[mod], equal_nan=True)
        for name in x.masks:
            assert np.array_equal(x.masks[name], y.masks[name])


@pytest.mark.parametrize("kind", ["s2", "s1", "pairs"])
def test_stac_and_zarr_give_the_same_samples(runs: dict[str, Path], kind: str) -> None:
    stac = PatchDataset(runs[kind], source="stac")
    cube = PatchDataset(runs[kind], source="zarr")
    assert (stac.source, cube.source) == ("stac", "zarr")
    _assert_same_samples(stac, cube)
    # auto picks the catalog in a run folder; a cube.zarr path opens the cube
    assert PatchDataset(runs[kind]).source == "stac"
    assert PatchDataset(RunFolder(runs[kind]).cube_path).source == "zarr"
    assert PatchDataset(runs[kind] / "catalog.json").metadata == stac.metadata


@pytest.mark.parametrize("source", ["stac", "zarr"])
def test_s2_samples_shapes_dtypes_and_metadata(runs: dict[str, Path], source: str) -> None:
    outdir = runs["s2"]
    entries = _entries(outdir)
    ds = PatchDataset(outdir, source=source)  # type: ignore[arg-type]
    assert len(ds) == len(entries)
    by_key = {(e["unit_id"], e["patch_id"]): e for e in entries}
    keys = [(m.time, m.unit_id, m.patch_id) for m in ds.metadata]
    assert keys == sorted(keys)  # deterministic: time, unit, patch
    for index, sample in enumerate(ds):
        assert isinstance(sample, Sample)
        m = sample.metadata
        e = by_key[(m.unit_id, m.patch_id)]
        assert sample.s1 is None and sample["S1"] is None
        assert sample.s2 is not None and sample.s2.dtype == np.float32
        assert sample.s2.shape == (len(e["bands"]), e["grid"]["height"], e["grid"]["width"])
        with rasterio.open(outdir / e["files"]["S2"]) as src:
            assert np.array_equal(sample.s2, src.read(), equal_nan=True)
        assert set(sample.masks) == {"S2_valid", "scl_cloud_shadow", "scl_cloud_high_proba", "opaque_clouds"}
        for mask in sample.masks.values():
            assert mask.dtype == bool and mask.shape == sample.s2.shape[1:]
        assert np.array_equal(sample.masks["scl_cloud_shadow"], sample.s2[e["bands"].index("scl_cloud_shadow")] == 1)
        assert sample.masks["S2_valid"].mean() == pytest.approx(e["valid_fraction"], abs=0.02)
        assert m.primary == "S2" and m.modalities == ("S2",)
        assert m.time == _utc(e["sensing_time"]) and m.sensing_time == {"S2": _utc(e["sensing_time"])}
        assert m.product_ids == {"S2": tuple(e["product_ids"])} and m.platform == {"S2": e["platform"]}
        assert m.valid_fraction == {"S2": e["valid_fraction"]} and m.cloud == e["cloud_fraction"]
        assert m.grid == TargetGrid.from_dict(e["grid"]) and m.crs == "EPSG:32630"
        assert m.transform == tuple(e["grid"]["transform"]) and m.delta_t_hours is None
        d = sample.as_dict()
        assert d["S1"] is None and d["S2"] is sample.s2 and d["metadata"]["grid"] == e["grid"]
        assert d["metadata"]["sensing_time"]["S2"] == e["sensing_time"]
        assert ds[index].metadata == m
    assert ds[-1].metadata == ds.metadata[-1]
    with pytest.raises(IndexError):
        ds[len(ds)]


@pytest.mark.parametrize("source", ["stac", "zarr"])
def test_s1_samples(runs: dict[str, Path], source: str) -> None:
    entries = _entries(runs["s1"])
    ds = PatchDataset(runs["s1"], source=source)  # type: ignore[arg-type]
    assert len(ds) == len(entries)
    sample = ds[0]
    assert sample.s2 is None and sample.s1 is not None
    assert sample.s1.shape == (3, 128, 128) and sample.s1.dtype == np.float32
    assert set(sample.masks) == {"S1_valid"}
    m = sample.metadata
    assert m.primary == "S1" and m.cloud is None and m.delta_t_hours is None
    assert m.orbit_direction == {"S1": entries[0]["orbit_direction"]}
    assert m.relative_orbit == {"S1": entries[0]["relative_orbit"]}
    assert m.bands == {"S1": ("sigma0_VV_dB", "sigma0_VH_dB", "local_incidence_angle")}
    assert len(ds.filter(max_cloud=0.0)) == len(ds)  # no cloud information: the cloud filter passes S1
    assert len(ds.filter(modalities=["S2"])) == 0


@pytest.mark.parametrize("source", ["stac", "zarr"])
def test_paired_samples_and_delta_t_filter(runs: dict[str, Path], source: str) -> None:
    outdir = runs["pairs"]
    entries = _entries(outdir)
    ds = PatchDataset(outdir, source=source)  # type: ignore[arg-type]
    assert len(ds) == len(entries)
    for sample in ds:
        m = sample.metadata
        assert m.modalities == ("S2", "S1") and sample.s1 is not None and sample.s2 is not None
        assert sample.s1.shape[1:] == sample.s2.shape[1:]
        assert set(sample.masks) >= {"S1_valid", "S2_valid"}
        expected = delta_hours(
            parse_time(m.sensing_time["S2"].isoformat()), parse_time(m.sensing_time["S1"].isoformat())
        )
        assert m.delta_t_hours == expected
    deltas = {e["unit_id"]: e["pair"]["delta_t_hours"] for e in entries}
    close = [e for e in entries if abs(e["pair"]["delta_t_hours"]) <= 24]
    assert 0 < len(close) < len(entries)
    near = ds.filter(max_delta_t_hours=24)
    assert len(near) == len(close)
    assert all(abs(deltas[m.unit_id]) <= 24 for m in near.metadata)
    assert len(PatchDataset(outdir, source=source, max_delta_t_hours=24)) == len(close)  # type: ignore[arg-type]
    assert len(ds.filter(modalities=("S1", "S2"))) == len(ds)
    # samples without a pair fail a Δt limit
    assert len(PatchDataset(runs["s2"], source=source, max_delta_t_hours=1e6)) == 0  # type: ignore[arg-type]


@pytest.mark.parametrize("source", ["stac", "zarr"])
def test_cloud_and_date_filters(runs: dict[str, Path], source: str) -> None:
    outdir = runs["s2"]
    entries = _entries(outdir)
    ds = PatchDataset(outdir, source=source)  # type: ignore[arg-type]
    clouds = [e["cloud_fraction"] for e in entries]
    assert min(clouds) <= 0.2 < max(clouds)
    clear = ds.filter(max_cloud=0.2)
    assert len(clear) == sum(c <= 0.2 for c in clouds)
    assert all(m.cloud is not None and m.cloud <= 0.2 for m in clear.metadata)
    assert len(PatchDataset(outdir, source=source, max_cloud=0.2)) == len(clear)  # type: ignore[arg-type]
    days = sorted({_utc(e["sensing_time"]).date() for e in entries})
    assert len(days) >= 2
    first = [e for e in entries if _utc(e["sensing_time"]).date() == days[0]]
    # a date end includes its whole day; a start excludes earlier days; strings, dates and times work
    assert len(ds.filter(end=days[0])) == len(first)
    assert len(ds.filter(end=days[0].isoformat())) == len(first)
    assert len(ds.filter(start=days[1])) == len(entries) - len(first)
    assert len(ds.filter(start=days[0], end=days[0])) == len(first)
    at = _utc(first[0]["sensing_time"])
    assert len(ds.filter(end=at)) == len(first) and len(ds.filter(start=at.replace(tzinfo=None))) == len(entries)
    assert len(ds.filter(end=date(1999, 1, 1))) == 0
    both = ds.filter(start=days[1]).filter(max_cloud=0.2)
    assert len(both) == sum(c <= 0.2 and _utc(e["sensing_time"]).date() >= days[1]
                            for c, e in zip(clouds, entries, strict=True))  # fmt: skip
    assert len(ds) == len(entries)  # filtering returns new datasets


def test_bad_filters_and_sources_are_refused(
    runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match="between 0 and 1"):
        PatchDataset(runs["s2"], max_cloud=20)
    with pytest.raises(ConfigError, match="hours"):
        PatchDataset(runs["s2"], max_delta_t_hours=-1)
    with pytest.raises(ConfigError, match="subset of S1, S2"):
        PatchDataset(runs["s2"], modalities=["S3"])
    with pytest.raises(ConfigError, match="before the start"):
        PatchDataset(runs["s2"], start="2022-05-01", end="2022-04-01")
    with pytest.raises(ConfigError, match="ISO date"):
        PatchDataset(runs["s2"], start="last tuesday")
    with pytest.raises(ConfigError, match="'stac'"):
        PatchDataset(runs["s2"], source="cog")  # type: ignore[arg-type]
    (tmp_path / "run.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"no ZARR output.*output.zarr true"):
        PatchDataset(tmp_path, source="zarr")
    with pytest.raises(ConfigError, match="no STAC output"):
        PatchDataset(tmp_path, source="stac")
    with pytest.raises(ConfigError, match=r"catalog\.json or cube\.zarr"):
        PatchDataset(tmp_path)
    monkeypatch.setitem(sys.modules, "zarr", None)  # as if zarr were not installed
    with pytest.raises(ConfigError, match="pip install 'zarr>=3'"):
        PatchDataset(runs["s2"], source="zarr")


def test_torch_wrapper_or_a_clear_error(runs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    ds = PatchDataset(runs["pairs"], source="zarr")
    if importlib.util.find_spec("torch") is not None:
        import torch
        from torch.utils.data import DataLoader

        wrapped = ds.as_torch()
        assert len(wrapped) == len(ds)
        item = wrapped[0]
        assert item["S2"].dtype == torch.float32 and tuple(item["S2"].shape) == ds[0].s2.shape  # type: ignore[union-attr]
        batch = next(iter(DataLoader(wrapped, batch_size=2)))
        assert tuple(batch["S1"].shape)[:1] == (2,) and len(batch["metadata"]["patch_id"]) == 2
        assert ds.as_torch(transform=lambda s: s.metadata.patch_id)[0] == ds[0].metadata.patch_id
    monkeypatch.setitem(sys.modules, "torch", None)  # as if PyTorch were not installed
    monkeypatch.setitem(sys.modules, "torch.utils", None)
    monkeypatch.setitem(sys.modules, "torch.utils.data", None)
    with pytest.raises(ConfigError, match="pip install torch"):
        ds.as_torch()
