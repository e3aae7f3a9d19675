"""Where work units run: in this process, in local worker processes, or on a Dask cluster.

Every executor takes the same units and the same task, yields each unit's result as it
finishes, and passes the task's progress events to ``dispatch`` in the caller's thread while
the units run (from worker processes through a queue, from Dask workers through Dask's
event topics), so progress is live whatever the executor. Units are idempotent (temporary
names, manifest last), so a unit retried after a lost worker never duplicates output.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import queue
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, Protocol

from senprep_core.errors import ConfigError
from senprep_core.events import Event, event_from_dict
from senprep_core.threads import ENV_THREADS, set_budget, worker_budget

log = logging.getLogger(__name__)

Emit = Callable[[Event], None]
POLL_SECONDS = 0.1
UNIT_MEMORY_BYTES = 1_500_000_000  # budget per concurrent unit (peak RSS of a 20 km S2 unit is ~0.6 GB)


class Executor(Protocol):
    """Runs ``task(unit, emit)`` for every unit and yields the results as they finish."""

    name: str

    def map_units(
        self, units: Sequence[Any], task: Callable[[Any, Emit], Any], dispatch: Emit, cancel: threading.Event
    ) -> Iterator[Any]: ...

    def close(self) -> None:
        """Release worker processes / the Dask client (an executor serves several runs until closed)."""


class SerialExecutor:
    """One unit after the other in the calling thread (events are dispatched directly)."""

    name = "serial"

    def map_units(
        self, units: Sequence[Any], task: Callable[[Any, Emit], Any], dispatch: Emit, cancel: threading.Event
    ) -> Iterator[Any]:
        def checked(event: Event) -> None:
            dispatch(event)
            if cancel.is_set():  # an interrupt swallowed on its way (e.g. inside a C callback) still stops the unit
                raise KeyboardInterrupt

        for unit in units:
            if cancel.is_set():
                return
            yield task(unit, checked)

    def close(self) -> None:
        return None


# ----- local processes -------------------------------------------------------------------------

_WORKER_QUEUE: Any = None


def _init_worker(events: Any, threads: int) -> None:
    global _WORKER_QUEUE
    _WORKER_QUEUE = events
    set_budget(threads)  # the machine's cores shared between the workers (no oversubscription)


class _QueueEmit:
    """Picklable emitter used in worker processes: events travel as dicts through the pool's queue."""

    def __call__(self, event: Event) -> None:
        if _WORKER_QUEUE is not None:
            _WORKER_QUEUE.put(event.to_dict())


def _drain(source: Any, dispatch: Emit) -> None:
    while True:
        try:
            item = source.get_nowait()
        except queue.Empty:
            return
        dispatch(event_from_dict(item))


def memory_capped_workers(requested: int, per_unit: int = UNIT_MEMORY_BYTES) -> int:
    """``requested`` worker processes, fewer when the available memory cannot hold that many units."""
    try:
        import psutil

        available = int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil is a dependency of distributed and of the bench extra
        return requested
    fits = max(1, math.floor(available / per_unit))
    if fits < requested:
        log.warning("running %d worker processes instead of %d: the available memory holds %d units", fits,
                    requested, fits)  # fmt: skip
    return min(requested, fits)


class ProcessExecutor:
    """Units in parallel worker processes (``--njobs N``), capped by available memory.

    Workers come from a fork server that has imported senprep once, so they start fast; the
    pool is kept for later runs until :meth:`close` (or discarded when a run is interrupted).
    """

    name = "processes"

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ConfigError("njobs", workers, "give a number of worker processes >= 1")
        self.workers = memory_capped_workers(workers)
        self._pool: ProcessPoolExecutor | None = None
        self._events: Any = None

    def _start(self) -> ProcessPoolExecutor:
        if self._pool is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["senprep_core.pipeline"])
            self._events = context.Queue()
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=context,
                initializer=_init_worker,
                initargs=(self._events, worker_budget(self.workers)),
            )
        return self._pool

    def map_units(
        self, units: Sequence[Any], task: Callable[[Any, Emit], Any], dispatch: Emit, cancel: threading.Event
    ) -> Iterator[Any]:
        pool = self._start()
        futures: dict[Future[Any], Any] = {pool.submit(task, unit, _QueueEmit()): unit for unit in units}
        try:
            while futures and not cancel.is_set():
                done, _ = wait(futures, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
                _drain(self._events, dispatch)
                for future in done:
                    futures.pop(future)
                    yield future.result()
            _drain(self._events, dispatch)
        finally:
            if futures:  # cancelled, interrupted or abandoned: stop now, running units included
                self._kill()

    def _kill(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        processes = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(timeout=2)
        self._close_queue()

    def _close_queue(self) -> None:
        if self._events is not None:
            self._events.close()
            self._events = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._close_queue()


# ----- Dask ----------------------------------------------------------------------------------------


class _DaskEmit:
    """Picklable emitter used on Dask workers: events go to a topic the client subscribes to."""

    def __init__(self, topic: str) -> None:
        self.topic = topic

    def __call__(self, event: Event) -> None:
        from distributed import get_worker

        get_worker().log_event(self.topic, event.to_dict())


class _DaskTask:
    """A unit's task on a Dask worker, with one thread as its budget: Dask runs one task per worker thread.

    A worker whose environment sets ``SENPREP_THREADS`` keeps that budget instead.
    """

    def __init__(self, task: Callable[[Any, Emit], Any]) -> None:
        self.task = task

    def __call__(self, unit: Any, emit: Emit) -> Any:
        if ENV_THREADS not in os.environ:
            set_budget(1)
        return self.task(unit, emit)


class DaskExecutor:
    """Units as tasks on a Dask cluster: an existing scheduler (``--scheduler``) or a local one."""

    name = "dask"

    def __init__(self, address: str | None = None, n_workers: int | None = None) -> None:
        if address is None and (n_workers is None or n_workers < 1):
            raise ConfigError("dask_workers", n_workers, "give a scheduler address or a number of workers >= 1")
        self.address = address
        self.n_workers = n_workers
        self._client_obj: Any = None

    def _client(self) -> Any:
        if self._client_obj is None:
            self._client_obj = self._connect()
        return self._client_obj

    def close(self) -> None:
        client, self._client_obj = self._client_obj, None
        if client is None:
            return
        cluster = getattr(client, "cluster", None)
        client.close()
        if cluster is not None and self.address is None:
            cluster.close()

    def _connect(self) -> Any:
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise ConfigError("scheduler", self.address, "install Dask's scheduler: pip install distributed") from exc
        if self.address is not None:
            try:
                return Client(self.address, timeout="10s", set_as_default=False)  # no global dask change
            except OSError as exc:
                raise ConfigError("scheduler", self.address, f"no Dask scheduler answers there ({exc})") from exc
        import dask

        # Dask's nannies set MALLOC_TRIM_THRESHOLD_=65536 in their workers; that also turns off glibc's
        # adaptive mmap threshold, so every large array is a fresh mmap (page faults, zeroing) and units
        # ran ~1.5x slower than in --njobs workers (benchmarks/bench_scaleout.py). senprep's own local
        # cluster leaves glibc's defaults.
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
            cluster = LocalCluster(n_workers=self.n_workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=logging.WARNING)  # fmt: skip
        return Client(cluster, set_as_default=False)

    def map_units(
        self, units: Sequence[Any], task: Callable[[Any, Emit], Any], dispatch: Emit, cancel: threading.Event
    ) -> Iterator[Any]:
        client = self._client()
        topic = f"senprep-{uuid.uuid4().hex}"
        received: queue.Queue[dict[str, Any]] = queue.Queue()

        def on_event(message: Any) -> None:
            payload = message[1] if isinstance(message, tuple) else message
            received.put(payload)

        client.subscribe_topic(topic, on_event)
        emit = _DaskEmit(topic)
        pending = {
            client.submit(
                _DaskTask(task), unit, emit, key=f"senprep-unit-{unit.unit_id}-{uuid.uuid4().hex[:8]}", pure=False
            ): unit
            for unit in units
        }
        try:
            while pending and not cancel.is_set():
                done = [f for f in pending if f.done()]  # polled: the client is not dask's global default
                if not done:
                    cancel.wait(POLL_SECONDS)
                _drain(received, dispatch)
                for future in done:
                    pending.pop(future)
                    yield future.result()
            _drain(received, dispatch)
        finally:
            if pending:
                client.cancel(list(pending))
            client.unsubscribe_topic(topic)


def make_executor(njobs: int = 1, scheduler: str | None = None, dask_workers: int | None = None) -> Executor:
    """The executor the CLI flags ask for: Dask when a scheduler or Dask workers are given, else processes or serial."""
    if scheduler is not None or dask_workers is not None:
        return DaskExecutor(scheduler, dask_workers)
    if njobs > 1:
        return ProcessExecutor(njobs)
    return SerialExecutor()
