"""Thread budgets: what a unit may use alone, in --njobs workers and on Dask workers."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pytest

from senprep_core import threads
from senprep_core.executors import DaskExecutor, ProcessExecutor
from senprep_core.s1.speckle import SpeckleFilter, apply_speckle_filter


@dataclass(frozen=True)
class _Unit:
    unit_id: str


def _worker_environment(unit: Any, emit: Any) -> dict[str, str | None]:
    """A task that reports what the process running it sees."""
    return {
        "unit": unit.unit_id,
        "budget": str(threads.thread_budget()),
        "gdal": os.environ.get("GDAL_NUM_THREADS"),
        "malloc_trim": os.environ.get("MALLOC_TRIM_THRESHOLD_"),
    }


def test_budget_defaults_to_every_core_and_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(threads.ENV_THREADS, raising=False)
    assert threads.thread_budget() == threads.available_cpus() >= 1
    monkeypatch.setenv(threads.ENV_THREADS, "1")
    assert threads.thread_budget() == 1
    assert threads.threads_for(4) == 1
    monkeypatch.setenv(threads.ENV_THREADS, "three")
    assert threads.thread_budget() == threads.available_cpus()  # a bad value is logged and ignored
    monkeypatch.setenv(threads.ENV_THREADS, "0")
    assert threads.thread_budget() == threads.available_cpus()


def test_budget_context_restores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(threads.ENV_THREADS, raising=False)
    monkeypatch.setenv("GDAL_NUM_THREADS", "ALL_CPUS")
    with threads.budget(1):
        assert threads.thread_budget() == 1
        assert os.environ["GDAL_NUM_THREADS"] == "1"
    assert threads.ENV_THREADS not in os.environ
    assert os.environ["GDAL_NUM_THREADS"] == "ALL_CPUS"


def test_worker_budget_shares_the_cores() -> None:
    cpus = threads.available_cpus()
    assert threads.worker_budget(1) == cpus
    assert threads.worker_budget(cpus) == 1
    assert threads.worker_budget(4 * cpus) == 1


def test_process_workers_get_cores_divided_by_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    monkeypatch.delenv(threads.ENV_THREADS, raising=False)
    executor = ProcessExecutor(2)
    try:
        results = list(
            executor.map_units([_Unit("a"), _Unit("b")], _worker_environment, lambda e: None, threading.Event())
        )
    finally:
        executor.close()
    expected = str(threads.worker_budget(executor.workers))
    assert {r["budget"] for r in results} == {expected}
    assert {r["gdal"] for r in results} == {expected}
    assert threads.ENV_THREADS not in os.environ  # the driver's own budget is untouched


def test_dask_tasks_get_one_thread_and_glibc_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    monkeypatch.delenv(threads.ENV_THREADS, raising=False)
    executor = DaskExecutor(None, 1)
    try:
        results = list(executor.map_units([_Unit("a")], _worker_environment, lambda e: None, threading.Event()))
    finally:
        executor.close()
    assert results[0]["budget"] == "1"
    assert results[0]["gdal"] == "1"
    assert results[0]["malloc_trim"] is None  # Dask's nanny default (65536) made units ~1.5x slower


def test_speckle_filter_gives_the_same_values_with_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    rng = np.random.default_rng(3)
    image = rng.gamma(4.4, 1 / 4.4, size=(700, 300)).astype(np.float32)
    spec = SpeckleFilter("lee_sigma", looks=4.4)
    monkeypatch.delenv(threads.ENV_THREADS, raising=False)
    many = apply_speckle_filter(image, spec)
    monkeypatch.setenv(threads.ENV_THREADS, "1")
    one = apply_speckle_filter(image, spec)
    np.testing.assert_array_equal(many, one)
