"""Where work units run: in this process, in local worker processes, or on a Dask cluster.

Every executor takes the same units and the same task, yields each unit's result as it finishes,
and passes the task's progress events to ``dispatch`` in the caller's thread while the units run,
so progress is live whatever the executor. Units are idempotent (temporary names, manifest last),
so a unit started again after a lost worker never duplicates output.

Faults: a worker process that dies (killed, out of memory) has its unit started again in a fresh
worker, up to :data:`MAX_ATTEMPTS` attempts, after which the executor yields a :class:`FailedTask`;
worker processes exit within a second when the process that started them dies; Dask retries the
tasks of a lost worker itself.
"""

from __future__ import annotations

import _thread
import contextlib
import logging
import math
import multiprocessing
import os
import queue
import re
import signal
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Protocol

from senprep_core.errors import CancelledError, ConfigError
from senprep_core.events import Event, Message, clean_event, event_from_dict
from senprep_core.fetch.redact import scrub, scrub_known
from senprep_core.fetch.slots import SlotPlan, plan_for
from senprep_core.threads import ENV_THREADS, set_budget, worker_budget

log = logging.getLogger(__name__)

Emit = Callable[[Event], None]
POLL_SECONDS = 0.1
UNIT_MEMORY_BYTES = 1_500_000_000  # budget per concurrent unit (peak RSS of a 20 km S2 unit is ~0.6 GB)
MAX_ATTEMPTS = 3  # a unit is started at most this often when its worker process keeps dying
ORPHAN_GRACE_SECONDS = 1.0  # a worker whose parent died stops its unit, then exits after this long
CONNECT_SECONDS = 10  # how long to try a Dask scheduler's address
CANCEL_POLL_SECONDS = 0.5  # how often a Dask task looks whether its run was cancelled
#: Most messages taken from one worker's pipe before the run looks at its cancel event again (a cancel is
#: never queued behind thousands of patch events).
MESSAGES_PER_POLL = 200


@dataclass(frozen=True)
class FailedTask:
    """A unit the executor could not get a result for: its worker kept dying, or the task itself broke."""

    unit: Any
    error_type: str
    message: str
    attempts: int = 1


class Executor(Protocol):
    """Runs ``task(unit, emit)`` for every unit and yields the results (or :class:`FailedTask`) as they finish."""

    name: str

    def map_units(
        self, units: Sequence[Any], task: Callable[[Any, Emit], Any], dispatch: Emit, cancel: threading.Event
    ) -> Iterator[Any]: ...

    def start(self) -> None:
        """Get ready to run units (start workers, connect to the scheduler); raises for a setting that cannot work."""

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

    def start(self) -> None:
        return None

    def close(self) -> None:
        return None


# ----- local processes -------------------------------------------------------------------------


class _PipeEmit:
    """The emitter of a worker process: events go back through the worker's pipe, in order with its result,
    with the secrets this worker knows (its own token) masked."""

    def __init__(self, conn: Connection, lock: threading.Lock) -> None:
        self.conn, self.lock = conn, lock

    def __call__(self, event: Event) -> None:
        data = clean_event(event, scrub_known).to_dict()
        with self.lock:
            self.conn.send(("event", data))


def _watch_parent(alive: Connection) -> None:
    """Stop this worker when the process that started it dies (its end of ``alive`` closes)."""
    with contextlib.suppress(EOFError, OSError):
        alive.recv()  # nothing is ever sent: returns only by EOF
    _thread.interrupt_main(signal.SIGUSR1)  # the unit stops and removes its unfinished files...
    time.sleep(ORPHAN_GRACE_SECONDS)
    os._exit(1)  # ...and the process ends, whatever it was doing


def _stop_unit(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _worker_main(conn: Connection, alive: Connection, threads: int) -> None:
    """A worker process: run the tasks sent through ``conn`` one at a time until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent decides
    signal.signal(signal.SIGUSR1, _stop_unit)  # how the parent watch stops a unit (SIGINT is ignored here)
    set_budget(threads)  # the machine's cores shared between the workers (no oversubscription)
    threading.Thread(target=_watch_parent, args=(alive,), name="senprep-parent-watch", daemon=True).start()
    lock = threading.Lock()
    emit = _PipeEmit(conn, lock)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if message is None:
            return
        task, unit = message
        try:
            reply: tuple[str, Any] = ("result", task(unit, emit))
        except KeyboardInterrupt:
            return
        except BaseException as exc:  # the task broke (it records product failures itself): report, go on
            text = scrub("".join(traceback.format_exception_only(type(exc), exc)).strip())  # secrets this worker knows
            reply = ("error", (type(exc).__name__, text))
        with lock:
            conn.send(reply)


@dataclass
class _Worker:
    process: Any
    conn: Connection
    alive: Connection
    unit: Any = None

    @property
    def busy(self) -> bool:
        return self.unit is not None


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


def _death(process: Any) -> str:
    code = process.exitcode
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class ProcessExecutor:
    """Units in parallel worker processes (``--njobs N``), capped by available memory.

    Workers come from a fork server that has imported senprep once, so they start fast; they are
    kept for later runs until :meth:`close`. A worker that dies is replaced and its unit started
    again (at most :data:`MAX_ATTEMPTS` times in all); the others go on undisturbed.
    """

    name = "processes"

    def __init__(self, workers: int, max_attempts: int = MAX_ATTEMPTS) -> None:
        if workers < 1:
            raise ConfigError("njobs", workers, "give a number of worker processes >= 1")
        self.workers = memory_capped_workers(workers)
        self.max_attempts = max_attempts
        self._pool: list[_Worker] = []
        self._context: Any = None

    def start(self) -> None:
        return None  # workers start with the first units (as many as there are units, up to the cap)

    def _spawn(self) -> _Worker:
        if self._context is None:
            self._context = multiprocessing.get_context("forkserver")
            self._context.set_forkserver_preload(["senprep_core.pipeline"])
        conn, child_conn = self._context.Pipe()
        alive_child, alive = self._context.Pipe(duplex=False)
        process = self._context.Process(target=_worker_main, args=(child_conn, alive_child,
                                        worker_budget(self.workers)), name="senprep-worker", daemon=True)  # fmt: skip
        process.start()
        child_conn.close()
        alive_child.close()
        return _Worker(process, conn, alive)

    def map_units(
        self, units: Sequence[Any], task: Callable[[Any, Emit], Any], dispatch: Emit, cancel: threading.Event
    ) -> Iterator[Any]:
        while len(self._pool) < min(self.workers, max(1, len(units))):
            self._pool.append(self._spawn())
        pending: deque[Any] = deque(units)
        attempts: dict[int, int] = {}
        try:
            while (pending or any(w.busy for w in self._pool)) and not cancel.is_set():
                for worker in self._pool:
                    if not worker.busy and pending:
                        worker.unit = pending.popleft()
                        attempts[id(worker.unit)] = attempts.get(id(worker.unit), 0) + 1
                        with contextlib.suppress(OSError):  # a dead worker is found below; its unit starts again
                            worker.conn.send((task, worker.unit))
                busy = [w for w in self._pool if w.busy]
                wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=POLL_SECONDS)
                for worker in busy:
                    yield from self._collect(worker, dispatch, pending, attempts)
        finally:
            if any(w.busy for w in self._pool):  # cancelled, interrupted or abandoned: stop the running units now
                self._kill()

    def _collect(self, worker: _Worker, dispatch: Emit, pending: deque[Any], attempts: dict[int, int]) -> Iterator[Any]:
        """Pass on a worker's events and yield its result; replace it when it died.

        At most :data:`MESSAGES_PER_POLL` messages are taken at a time: the rest wait for the next round."""
        try:
            for _ in range(MESSAGES_PER_POLL):
                if not worker.conn.poll():
                    break
                kind, payload = worker.conn.recv()
                if kind == "event":
                    dispatch(event_from_dict(payload))
                    continue
                unit, worker.unit = worker.unit, None
                if kind == "error":
                    yield FailedTask(unit, payload[0], payload[1], attempts.pop(id(unit), 1))
                else:
                    attempts.pop(id(unit), None)
                    yield payload
                return
            else:
                return  # more messages wait in the pipe (the worker's result may be among them)
        except (EOFError, OSError):
            pass
        if worker.process.is_alive():
            return
        worker.process.join()
        unit, worker.unit = worker.unit, None
        how = _death(worker.process)
        self._pool[self._pool.index(worker)] = self._spawn()
        if unit is None:
            return
        n = attempts.get(id(unit), 1)
        uid = getattr(unit, "unit_id", unit)
        if n < self.max_attempts:
            log.warning("the worker running unit %s died (%s): starting it again", uid, how)
            dispatch(Message(f"the worker running unit {uid} died ({how}); starting it again", level="warning"))
            pending.appendleft(unit)
        else:
            attempts.pop(id(unit), None)
            yield FailedTask(unit, "WorkerLostError", f"the worker process running this unit died {n} times "
                             f"(last {how}); if it ran out of memory, lower --njobs", n)  # fmt: skip

    def _kill(self) -> None:
        """End every worker now and wait until each is gone (nothing they write can land after this)."""
        for worker in self._pool:
            if worker.process.is_alive():
                worker.process.kill()
        for worker in self._pool:
            worker.process.join(timeout=10)
            worker.conn.close()
            worker.alive.close()
        self._pool = []

    def close(self) -> None:
        for worker in self._pool:
            with contextlib.suppress(OSError):
                worker.conn.send(None)
        for worker in self._pool:
            worker.process.join(timeout=5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
            worker.alive.close()
        self._pool = []


# ----- Dask ----------------------------------------------------------------------------------------


class _DaskEmit:
    """Picklable emitter used on Dask workers: events go to a topic the client subscribes to, with the
    secrets this worker knows (its own token) masked.

    It also stops the unit when the run is cancelled: Dask cannot stop a running task, so the task looks
    at the run's cancel event (at most every :data:`CANCEL_POLL_SECONDS`) and raises; the unit then
    removes its unfinished files like any failed unit.
    """

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self._checked = 0.0
        self._worker: Any = None
        self._cancel: Any = None

    def bind(self) -> _DaskEmit:
        """This emitter for the task running in this thread, holding on to its worker and cancel event, so that
        the threads a unit starts (downloads reporting their bytes) can emit too."""
        from distributed import Event as DaskEvent
        from distributed import get_client, get_worker

        bound = _DaskEmit(self.topic)
        bound._worker = get_worker()
        bound._cancel = DaskEvent(f"{self.topic}-cancel", client=get_client())
        return bound

    def __call__(self, event: Event) -> None:
        from distributed import Event as DaskEvent
        from distributed import get_worker

        worker = self._worker or get_worker()
        worker.log_event(self.topic, clean_event(event, scrub_known).to_dict())
        now = time.monotonic()
        if now - self._checked >= CANCEL_POLL_SECONDS:
            self._checked = now
            if (self._cancel or DaskEvent(f"{self.topic}-cancel")).is_set():
                raise CancelledError("the run was cancelled")


class _DaskTask:
    """A unit's task on a Dask worker, with one thread as its budget: Dask runs one task per worker thread.

    A worker whose environment sets ``SENPREP_THREADS`` keeps that budget instead.
    """

    def __init__(self, task: Callable[[Any, Emit], Any]) -> None:
        self.task = task

    def __call__(self, unit: Any, emit: Emit) -> Any:
        if ENV_THREADS not in os.environ:
            set_budget(1)
        return self.task(unit, emit.bind() if isinstance(emit, _DaskEmit) else emit)


class DaskExecutor:
    """Units as tasks on a Dask cluster: an existing scheduler (``--scheduler``) or a local one."""

    name = "dask"

    def __init__(self, address: str | None = None, n_workers: int | None = None) -> None:
        if address is None and (n_workers is None or n_workers < 1):
            raise ConfigError("dask_workers", n_workers, "give a scheduler address or a number of workers >= 1")
        if address is not None:
            check_scheduler_address(address)
        self.address = address
        self.n_workers = n_workers
        self._client_obj: Any = None

    def start(self) -> None:
        self._client()

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
                return Client(self.address, timeout=f"{CONNECT_SECONDS}s", set_as_default=False)  # no global change
            except (OSError, ValueError) as exc:
                raise ConfigError(
                    "scheduler",
                    self.address,
                    f"no Dask scheduler answers there within "
                    f"{CONNECT_SECONDS} s ({exc}); check the address and that it runs",
                ) from exc
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
        from distributed import as_completed

        finished = as_completed(list(pending), loop=client.loop)  # the run's client, not dask's global default
        try:
            while pending and not cancel.is_set():
                done = finished.next_batch(block=False)  # O(1) per finished unit, however many are pending
                if not done:
                    cancel.wait(POLL_SECONDS)
                _drain(received, dispatch)
                for future in done:
                    unit = pending.pop(future)
                    try:
                        yield future.result()
                    except Exception as exc:  # e.g. KilledWorker: the unit's workers kept dying
                        yield FailedTask(unit, type(exc).__name__, scrub(str(exc)))
            _drain(received, dispatch)
        finally:
            if pending:
                self._stop(client, topic, list(pending))
            client.unsubscribe_topic(topic)

    @staticmethod
    def _stop(client: Any, topic: str, futures: list[Any]) -> None:
        """Cancel the run's tasks. Dask cannot stop a running task: the cancel event tells the running units
        to stop, and the pipeline waits for them to let go of the run folder (its writers lock)."""
        from distributed import Event as DaskEvent

        DaskEvent(f"{topic}-cancel", client=client).set()
        client.cancel(futures)


def _drain(source: queue.Queue[dict[str, Any]], dispatch: Emit) -> None:
    while True:
        try:
            item = source.get_nowait()
        except queue.Empty:
            return
        dispatch(event_from_dict(item))


_SCHEDULER = re.compile(r"^(tcp|tls|ucx|ws|wss|inproc)://[^\s/:]+(:\d{1,5})?/?$|^[^\s/:]+:\d{1,5}$")


def check_scheduler_address(address: str) -> str:
    """A Dask scheduler address: ``tcp://host:8786`` (or tls://, ws://...), or ``host:port``."""
    if not _SCHEDULER.match(address.strip()):
        raise ConfigError("scheduler", address, "give the scheduler's address, e.g. tcp://127.0.0.1:8786 or "
                          "tcp://scheduler-host:8786")  # fmt: skip
    return address.strip()


def connection_plan(executor: Executor, cache_dir: Any) -> SlotPlan:
    """How ``executor``'s workers share per-account connection limits (the driver hands this to them): a Dask
    semaphore per account for Dask, else lock files in the cache folder (also shared by concurrent runs using
    that cache); ``$SENPREP_CONNECTION_SLOTS`` (files, dask or local) chooses instead."""
    return plan_for(getattr(executor, "name", "serial"), cache_dir)


def make_executor(njobs: int = 1, scheduler: str | None = None, dask_workers: int | None = None) -> Executor:
    """The executor the CLI flags ask for: Dask when a scheduler or Dask workers are given, else processes or serial."""
    if scheduler is not None or dask_workers is not None:
        return DaskExecutor(scheduler, dask_workers)
    if njobs > 1:
        return ProcessExecutor(njobs)
    return SerialExecutor()
