"""Shared fixtures. In CI (CI=true) a skipped test is a failure: nothing may be skipped for a missing tool or data."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The trimmed copy of the real samples kept in the repository (tests/data/real/README.md says what it holds)
REAL_SAMPLES_COPY = ROOT / "tests" / "data" / "real"
#: The full set next to the project, with the same sub-paths: what the copy lacks is read from here when present
REAL_SAMPLES = ROOT / ".." / "shared" / "data" / "real-samples"
IN_CI = os.environ.get("CI") == "true"


def find_real_samples(*parts: str, members: Iterable[str] = ()) -> Path | None:
    """``parts`` in the copy in tests/data/real when it holds it (and ``members`` under it), else in
    ../shared/data/real-samples when that does; None when neither does."""
    wanted = tuple(members)
    for root in (REAL_SAMPLES_COPY, REAL_SAMPLES):
        path = root.joinpath(*parts)
        if path.exists() and all((path / member).exists() for member in wanted):
            return path
    return None


def need_real_samples(*parts: str, members: Iterable[str] = ()) -> Path:
    """Path of real sample data (see :func:`find_real_samples`); skip outside CI when it is missing, fail in CI."""
    wanted = tuple(members)
    path = find_real_samples(*parts, members=wanted)
    if path is None:
        what = "/".join(parts) + (f" with {', '.join(Path(m).name for m in wanted)}" if wanted else "")
        message = f"real sample data missing: {what} is neither in tests/data/real nor in ../shared/data/real-samples"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "snap: needs ESA SNAP gpt; the one skip CI allows")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    snap_only = item.get_closest_marker("snap") is not None  # SNAP cannot be installed in CI
    if IN_CI and report.skipped and not hasattr(report, "wasxfail") and not snap_only:
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which is not allowed: {report.longrepr}"


@pytest.fixture(scope="session")
def demo_products(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default demo catalog, generated once per test session."""
    from senprep_core.demo.catalog import build_demo_catalog

    folder = tmp_path_factory.mktemp("demo-products")
    build_demo_catalog(folder)
    return folder


@pytest.fixture(scope="session")
def cog_product(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 30 km synthetic L2A SAFE and COGs of some of its bands (see tests/test_cog_reads.py)."""
    from tests.test_cog_reads import make_cog_product

    return make_cog_product(tmp_path_factory.mktemp("cog-product"))


def make_demo_runs(demo_products: Path, root: Path) -> dict[str, Path]:
    """The demo's runs (S2 legacy-form config "demo", S1 "demo-s1") made by the pipeline under ``root``."""
    from senprep_core.config import parse_config
    from senprep_core.demo.catalog import demo_runs
    from senprep_core.pipeline import run

    out = {}
    for name, data in demo_runs(demo_products):
        result = run(parse_config(data), root / name, sources=[f"local:{demo_products}"])
        assert result.status == "complete" and result.patches_written > 0
        out[name] = root / name
    return out


# ----- eight L2A products over the demo tile: the runs of the scale-out and fault tests ---------------

N_SCALE_PRODUCTS = 8


def scale_config_dict(**changes: Any) -> dict[str, Any]:
    """A modern config over the demo ROI: eight S2 units of 64 px patches with overlap (a few seconds of work)."""
    from senprep_core.demo.catalog import DEMO_ROI_GEOJSON

    data: dict[str, Any] = {
        "name": "scale",
        "roi": DEMO_ROI_GEOJSON,
        "dates": ["2021-01-01", "2023-12-31"],
        "mode": "s2_only",
        "patches": {"size": [64, 64], "overlap": [16, 16]},
        "sentinel2": {"bands": ["B02", "B03", "B04", "B08", "B11", "SCL"]},
        "output": {"min_valid_fraction": 0.0},
    }
    data.update(changes)
    return data


@pytest.fixture(scope="session")
def scale_products(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight L2A demo products (one a month) over the demo tile."""
    from dataclasses import replace
    from datetime import timedelta

    from senprep_core.demo.catalog import demo_specs
    from senprep_core.demo.s2 import make_s2_product

    folder = tmp_path_factory.mktemp("scale-products")
    base = next(s for s in demo_specs() if s.level == "L2A" and s.baseline == "05.00")
    for i in range(N_SCALE_PRODUCTS):
        make_s2_product(replace(base, sensing_time=base.sensing_time - timedelta(days=30 * i), seed=100 + i), folder)
    return folder


@pytest.fixture(scope="session")
def scale_serial_run(scale_products: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The eight-unit run made serially: the reference other executors must match byte for byte."""
    from senprep_core.config import parse_config
    from senprep_core.pipeline import run

    outdir = tmp_path_factory.mktemp("serial") / "run"
    result = run(parse_config(scale_config_dict()), outdir, sources=[f"local:{scale_products}"])
    assert result.status == "complete" and len(result.results) == N_SCALE_PRODUCTS
    return outdir


def run_files(outdir: Path) -> dict[str, bytes]:
    """Every output file of a run folder but the run report and the lock file (they hold times and process ids)."""
    return {str(p.relative_to(outdir)): p.read_bytes() for p in sorted(outdir.rglob("*"))
            if p.is_file() and p.name not in ("run.json", ".senprep.lock")}  # fmt: skip
