"""OS-level locks on a file: one exclusive holder with its identity recorded, and shared writer sessions.

A :class:`FolderLock` is held by one run for its whole life (``flock(LOCK_EX)``): the kernel releases
it when the holder's process ends, however it ends, so a lock is never left behind by a crash. The
holder writes who it is (pid, host, start time, run name) into the lock file, so a second run can
name it; the file itself is never deleted (deleting a lock file lets two processes lock two
different files of one name).

Shared locks (:func:`shared_lock`) mark processes that write into a folder; an exclusive
:func:`wait_exclusive` on the same file waits until every such writer is gone (workers of a run
whose driver was killed, still finishing their unit).

On network file systems ``flock`` is only as good as the server's lock support: Linux NFS clients
map it onto NFS byte-range locks (NFSv4, or NLM for v3), which work across hosts; SMB / CIFS and some
FUSE file systems do not lock across hosts.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from senprep_core.errors import OutputError, RunFolderBusyError
from senprep_core.timeutil import format_utc

log = logging.getLogger(__name__)
BUSY_GRACE_SECONDS = 1.0  # a lock only probed for a moment (``senprep status``) is retried this long
POLL_SECONDS = 0.05


def _now() -> str:
    return format_utc(datetime.now(timezone.utc).replace(microsecond=0))


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or last held) a lock."""

    pid: int
    host: str
    started: str
    run: str = ""
    released: str | None = None

    @classmethod
    def this_process(cls, run: str) -> LockHolder:
        return cls(os.getpid(), socket.gethostname(), _now(), run)

    def describe(self) -> str:
        """``run 'x' (pid 123 on host, started 2026-12-07T10:00:00Z)``."""
        name = f"run '{self.run}' " if self.run else "a run "
        return f"{name}(pid {self.pid} on {self.host}, started {self.started})"

    @property
    def alive_here(self) -> bool | None:
        """Whether the holder's process exists (None when it runs on another host)."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def read_holder(path: Path) -> LockHolder | None:
    """The identity recorded in a lock file (None when there is none or it cannot be read)."""
    for _ in range(3):  # a holder may be rewriting it this very moment
        try:
            data = orjson.loads(path.read_bytes())
            return LockHolder(**{k: data[k] for k in ("pid", "host", "started")}, run=data.get("run", ""),
                              released=data.get("released"))  # fmt: skip
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            time.sleep(POLL_SECONDS)
    return None


def current_holder(path: Path) -> LockHolder | None:
    """The holder of the lock now, None when nobody holds it (probes it for an instant)."""
    if not path.exists():
        return None
    with open(path, "rb") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return read_holder(path) or LockHolder(0, "?", "?")
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    return None


@dataclass
class FolderLock:
    """An exclusive lock held for a run's life: :meth:`acquire`, then :meth:`release` (or ``with``)."""

    path: Path
    run: str = ""
    _fd: int | None = field(default=None, init=False, repr=False)
    holder: LockHolder | None = field(default=None, init=False)

    def acquire(
        self,
        wait: bool = False,
        cancel: threading.Event | None = None,
        on_wait: Callable[[LockHolder | None], None] | None = None,
    ) -> None:
        """Take the lock. Busy: raise :class:`RunFolderBusyError` naming the holder, or with ``wait``
        wait for it (``on_wait`` is told once who holds it; a set ``cancel`` raises KeyboardInterrupt)."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(f"cannot lock the output folder {self.path.parent} ({exc.strerror}); choose a folder "
                              "you can write") from exc  # fmt: skip
        try:
            self._lock(fd, wait, cancel, on_wait)
        except BaseException:
            os.close(fd)
            raise
        previous = read_holder(self.path)
        if previous is not None and previous.released is None and previous.pid != os.getpid():
            log.warning("taking over the lock of %s: that process is gone", previous.describe())
        self._fd = fd
        self.holder = LockHolder.this_process(self.run)
        self._record(self.holder)

    def _lock(
        self,
        fd: int,
        wait: bool,
        cancel: threading.Event | None,
        on_wait: Callable[[LockHolder | None], None] | None,
    ) -> None:
        deadline = time.monotonic() + BUSY_GRACE_SECONDS
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            if cancel is not None and cancel.is_set():
                raise KeyboardInterrupt
            if time.monotonic() >= deadline:
                holder = read_holder(self.path)
                if not wait:
                    raise RunFolderBusyError(self.path.parent, None if holder is None else holder.describe())
                if not told and on_wait is not None:
                    on_wait(holder)
                told = True
            time.sleep(POLL_SECONDS if not told else 0.2)

    def _record(self, holder: LockHolder) -> None:
        if self._fd is None:
            return
        data = orjson.dumps({k: v for k, v in asdict(holder).items() if v is not None})
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def release(self) -> None:
        """Mark the lock released (the file keeps the last holder) and let it go."""
        if self._fd is None:
            return
        if self.holder is not None:
            self._record(replace(self.holder, released=_now()))
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


@contextlib.contextmanager
def shared_lock(path: Path) -> Iterator[None]:
    """Hold a shared lock on ``path`` (created if needed) for the block: a writer session."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def wait_exclusive(path: Path, timeout: float, on_wait: Callable[[], None] | None = None) -> bool:
    """Wait until no process holds a shared lock on ``path`` (then let it go at once); False on timeout."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                if not told and on_wait is not None:
                    on_wait()
                told = True
                time.sleep(POLL_SECONDS)
    finally:
        os.close(fd)
