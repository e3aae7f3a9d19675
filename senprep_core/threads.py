"""How many threads one work unit may use, so parallel units do not oversubscribe the cores.

A unit reads band files two at a time, compresses patches on writer threads, filters speckle in row
strips and lets GDAL decode on its own threads. Run alone (the serial executor) it should use every
core; run as one of N worker processes on C cores it should use about C / N, or the processes fight
for the cores and the run gets slower, not faster. The budget is read from ``SENPREP_THREADS``
(a positive integer), else the cores this process may run on. The executors set it for their
workers: ``--njobs N`` gives each worker process ``max(1, cores // N)``; Dask tasks get 1 (Dask runs
one task per worker thread) unless the worker's environment sets ``SENPREP_THREADS``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)

ENV_THREADS = "SENPREP_THREADS"


def available_cpus() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells, else the CPU count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


def thread_budget() -> int:
    """Threads one work unit may keep busy: ``SENPREP_THREADS`` when set to a positive integer, else every core."""
    value = os.environ.get(ENV_THREADS, "").strip()
    if value:
        try:
            budget = int(value)
        except ValueError:
            budget = 0
        if budget >= 1:
            return budget
        log.warning("%s=%r is not a positive integer; using every core (%d)", ENV_THREADS, value, available_cpus())
    return available_cpus()


def threads_for(wanted: int) -> int:
    """``wanted`` threads, capped by the budget (at least 1)."""
    return max(1, min(wanted, thread_budget()))


def worker_budget(workers: int) -> int:
    """The budget of each of ``workers`` processes sharing this machine's cores."""
    return max(1, available_cpus() // max(1, workers))


def set_budget(threads: int) -> None:
    """Set this process's budget (worker initialisers), GDAL's decoder threads included."""
    os.environ[ENV_THREADS] = str(max(1, threads))
    os.environ["GDAL_NUM_THREADS"] = str(max(1, threads))


@contextlib.contextmanager
def budget(threads: int) -> Iterator[None]:
    """Run a block with ``threads`` as the budget (and GDAL's threads), restoring the environment after."""
    saved = {key: os.environ.get(key) for key in (ENV_THREADS, "GDAL_NUM_THREADS")}
    set_budget(threads)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_in_strips(work: Callable[[int, int], None], n: int, strip: int = 256) -> None:
    """Run ``work(start, stop)`` over ``0..n`` in strips of ``strip`` items on the unit's thread budget.

    For compiled kernels that release the GIL: each strip writes its own part of the result."""
    starts = range(0, n, max(1, strip))
    workers = min(len(starts), thread_budget())
    if workers <= 1:
        for start in starts:
            work(start, min(start + strip, n))
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="senprep-strip") as pool:
        list(pool.map(lambda start: work(start, min(start + strip, n)), starts))
