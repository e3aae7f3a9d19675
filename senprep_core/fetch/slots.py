"""Connection limits per account, shared by every process of a run and by concurrent runs.

Each :class:`~senprep_core.fetch.http.HttpClient` limits the requests of its own threads
(``max_connections``). Some services also limit the connections of an *account*, whoever opens them:
CDSE allows 4 at once. With ``--njobs N`` worker processes or N Dask workers, each with its own client,
a run would open up to 4 x N. So the driver of a run chooses a :class:`SlotPlan` and hands it to the
workers (in :class:`~senprep_core.unit.fetching.FetchOptions`); every request made with an account's
credentials then holds one of that account's slots:

* ``files``: lock files ``<folder>/<account>.<i>.slot`` (``i`` below the limit) in the shared cache folder;
  a request holds an exclusive ``flock`` on one of them while it runs. Works for the processes of one
  machine, for concurrent runs that share the cache folder, and across hosts on a file system with
  working locks (NFSv4, Lustre with ``flock``, GPFS, CephFS). The default of serial and ``--njobs`` runs.
* ``dask``: a ``distributed.Semaphore`` named ``senprep-connections-<account>`` on the run's scheduler,
  shared by all its workers and by every run on that scheduler. The default of Dask runs.
* ``local``: no limit across processes (only each client's own).

Accounts are named by :func:`account_key`: the service and a hash of the user name (never the name itself,
which may be an e-mail address, in file names or scheduler state).
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from senprep_core.errors import ConfigError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: slots then hold within one process only
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

KINDS = ("local", "files", "dask")
#: Environment variable that overrides the executor's choice (``files``, ``dask`` or ``local``).
ENV_SLOTS = "SENPREP_CONNECTION_SLOTS"
SLOT_FOLDER = "connections"  # inside the cache folder
DASK_PREFIX = "senprep-connections-"
_POLL_FIRST = 0.01  # seconds between looks at busy file slots, growing to _POLL_MAX
_POLL_MAX = 0.2
_DASK_WAIT = 5.0  # a Dask lease is asked for this long, again and again


class Slots(Protocol):
    """A per-account connection limit: :meth:`hold` blocks until a slot is free and keeps it."""

    def hold(self) -> AbstractContextManager[None]: ...


@dataclass(frozen=True)
class SlotPlan:
    """How the processes of a run share per-account connection limits (picklable; see the module docstring)."""

    kind: str = "local"
    folder: str | None = None  # kind "files": the folder of the slot files

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(ENV_SLOTS, self.kind, f"use one of {', '.join(KINDS)}")
        if self.kind == "files" and not self.folder:
            raise ConfigError("connection slots", self.kind, "file slots need a folder (the shared cache)")

    @classmethod
    def in_cache(cls, cache_dir: str | Path) -> SlotPlan:
        """File slots in ``<cache_dir>/connections``."""
        return cls("files", str(Path(cache_dir).expanduser() / SLOT_FOLDER))

    def describe(self) -> str:
        if self.kind == "files":
            return f"lock files in {self.folder}"
        return "Dask semaphores on the scheduler" if self.kind == "dask" else "per process only"


def plan_for(executor_name: str, cache_dir: str | Path, override: str | None = None) -> SlotPlan:
    """The plan a run's driver hands to its workers: Dask semaphores for a Dask executor, else file slots in
    the cache; ``override`` (``$SENPREP_CONNECTION_SLOTS``) chooses instead."""
    kind = (override if override is not None else os.environ.get(ENV_SLOTS, "")).strip().lower()
    if not kind:
        kind = "dask" if executor_name == "dask" else "files"
    if kind == "files":
        return SlotPlan.in_cache(cache_dir)
    return SlotPlan(kind)


def account_key(service: str, username: str, *extra: str) -> str:
    """``<service>-<16 hex digits>``: the account of ``username`` (and e.g. a mirror URL) at ``service``."""
    digest = hashlib.sha256("\x00".join((username, *extra)).encode("utf-8")).hexdigest()[:16]
    return f"{service}-{digest}"


class _NoSlots:
    def hold(self) -> AbstractContextManager[None]:
        return nullcontext()


class FileSlots:
    """``limit`` lock files for one account; a holder keeps an exclusive ``flock`` on one of them.

    Each :meth:`hold` opens its own descriptor, so threads of one process exclude each other too. A process
    that dies releases its slot with its descriptors. Without ``fcntl`` (Windows) a process-local semaphore.
    """

    def __init__(self, folder: Path, account: str, limit: int) -> None:
        if limit < 1:
            raise ConfigError("connection limit", limit, "use 1 or more connections")
        self.paths = [Path(folder) / f"{account}.{i}.slot" for i in range(limit)]
        self.limit = limit
        self._local = threading.BoundedSemaphore(limit)

    def __repr__(self) -> str:
        return f"FileSlots({self.paths[0].parent}, limit={self.limit})"

    @contextmanager
    def hold(self) -> Iterator[None]:
        if fcntl is None:  # pragma: no cover - Windows
            with self._local:
                yield
            return
        fd = self._acquire()
        try:
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _try(self, path: Path) -> int | None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _acquire(self) -> int:
        self.paths[0].parent.mkdir(parents=True, exist_ok=True)
        delay, waited, began = _POLL_FIRST, False, time.monotonic()
        while True:
            start = random.randrange(self.limit)  # spread the holders over the files
            for i in range(self.limit):
                fd = self._try(self.paths[(start + i) % self.limit])
                if fd is not None:
                    if waited:
                        log.debug("got a connection slot after %.2f s", time.monotonic() - began)
                    return fd
            waited = True
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 1.5, _POLL_MAX)


class DaskSlots:
    """A ``distributed.Semaphore`` with ``limit`` leases, made on first use (in a worker or with a client).

    Outside a Dask worker or client (e.g. a search in the driver) no scheduler is reachable: the limit then
    holds per process only (logged once)."""

    def __init__(self, name: str, limit: int) -> None:
        self.name = name
        self.limit = limit
        self._semaphore: Any = None
        self._unreachable = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"DaskSlots({self.name!r}, limit={self.limit})"

    def _get(self) -> Any:
        with self._lock:
            if self._semaphore is None and not self._unreachable:
                from distributed import Semaphore

                try:
                    self._semaphore = Semaphore(max_leases=self.limit, name=self.name)
                except ValueError as exc:  # distributed: no worker and no client in this process
                    log.warning("no Dask scheduler for %s (%s); limiting connections per process only", self.name,
                                exc)  # fmt: skip
                    self._unreachable = True
            return self._semaphore

    @contextmanager
    def hold(self) -> Iterator[None]:
        semaphore = self._get()
        if semaphore is None:
            yield
            return
        while not semaphore.acquire(timeout=_DASK_WAIT):
            log.debug("waiting for a lease of %s", self.name)
        try:
            yield
        finally:
            semaphore.release()


_CACHE: dict[tuple[SlotPlan, str, int], Slots] = {}
_CACHE_LOCK = threading.Lock()


def account_slots(plan: SlotPlan | None, account: str, limit: int) -> Slots:
    """The slots of ``account`` under ``plan`` (one object per process and account, so its threads share it)."""
    if plan is None or plan.kind == "local":
        return _NoSlots()
    key = (plan, account, limit)
    with _CACHE_LOCK:
        if key not in _CACHE:
            if plan.kind == "files":
                _CACHE[key] = FileSlots(Path(str(plan.folder)), account, limit)
            else:
                _CACHE[key] = DaskSlots(DASK_PREFIX + account, limit)
        return _CACHE[key]


class AccountSlots:
    """The slots of an account whose name is only known once its credentials are loaded (lazily): ``account()``
    gives its key (see :func:`account_key`) on the first request that needs a slot."""

    def __init__(self, plan: SlotPlan | None, account: Callable[[], str], limit: int) -> None:
        self.plan = plan
        self.limit = limit
        self._account = account
        self._slots: Slots | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AccountSlots({self.plan}, limit={self.limit})"

    def hold(self) -> AbstractContextManager[None]:
        with self._lock:
            if self._slots is None:
                self._slots = account_slots(self.plan, self._account(), self.limit)
        return self._slots.hold()


__all__ = [
    "ENV_SLOTS",
    "AccountSlots",
    "DaskSlots",
    "FileSlots",
    "SlotPlan",
    "Slots",
    "account_key",
    "account_slots",
    "plan_for",
]
