"""Typed progress events sent to an injected callback (a no-op by default).

The CLI renders them as progress bars or JSON lines; the app turns them into widget updates.
The library never prints.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Level = Literal["debug", "info", "warning", "error"]
#: Shortest time between two :class:`PatchProgress` events of one unit.
PATCH_PROGRESS_SECONDS = 0.2


@dataclass(frozen=True)
class Event:
    """Base of every event: when it happened (epoch seconds)."""

    time: float = field(default_factory=time.time, kw_only=True)

    @property
    def kind(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.kind, **asdict(self)}


@dataclass(frozen=True)
class RunStarted(Event):
    """A run begins: its units, the patches each unit decides (the ROI's patch layout) and its folder."""

    run_id: str
    n_units: int
    outdir: str
    patches_per_unit: int = 0

    @property
    def patches_total(self) -> int:
        """Patches the run decides in all: written or left out, per unit."""
        return self.n_units * self.patches_per_unit


@dataclass(frozen=True)
class StageProgress(Event):
    """Progress of a stage (search, plan, process, catalog) as done / total units."""

    stage: str
    done: int
    total: int


@dataclass(frozen=True)
class UnitStarted(Event):
    unit_id: str
    description: str
    worker: str = ""  # where it runs: Dask worker address or host:pid


@dataclass(frozen=True)
class UnitFinished(Event):
    unit_id: str
    status: Literal["done", "skipped", "failed", "cancelled"]
    patches_written: int = 0
    patches_skipped: int = 0
    seconds: float = 0.0
    error: str | None = None


@dataclass(frozen=True)
class PatchWritten(Event):
    unit_id: str
    patch_id: str
    path: str


@dataclass(frozen=True)
class PatchProgress(Event):
    """Patches of one unit decided so far (written, or left out as empty or cloudy) out of the patches the
    plan gives each unit. A unit sends it while it cuts patches, at most every :data:`PATCH_PROGRESS_SECONDS`
    (so a run of thousands of patches stays cheap to follow from worker processes), and once when the last
    patch is decided."""

    unit_id: str
    done: int
    total: int
    written: int = 0


@dataclass(frozen=True)
class BytesProgress(Event):
    """Bytes of one transfer (download or remote read): done / total (None when unknown) and rate in B/s."""

    label: str
    done: int
    total: int | None
    rate: float = 0.0


@dataclass(frozen=True)
class Message(Event):
    text: str
    level: Level = "info"


@dataclass(frozen=True)
class RunFinished(Event):
    run_id: str
    status: Literal["complete", "partial", "failed", "cancelled", "empty"]
    units_done: int
    units_skipped: int
    units_failed: int
    patches_written: int
    patches_skipped: int
    seconds: float


EventCallback = Callable[[Event], None]

EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        RunStarted,
        StageProgress,
        UnitStarted,
        UnitFinished,
        PatchWritten,
        PatchProgress,
        BytesProgress,
        Message,
        RunFinished,
    )
}


def event_from_dict(data: dict[str, Any]) -> Event:
    """Rebuild an event from :meth:`Event.to_dict` (how events travel from worker processes and Dask workers)."""
    kind = data.get("event")
    if kind not in EVENT_TYPES:
        raise ValueError(f"unknown event type {kind!r}")
    cls = EVENT_TYPES[kind]
    names = {f.name for f in dataclasses.fields(cls)}  # transports may add keys (Dask adds "worker")
    return cls(**{k: v for k, v in data.items() if k in names})


def clean_event(event: Event, clean: Callable[[str], str]) -> Event:
    """``event`` with each of its text fields passed through ``clean`` (e.g. to mask secrets before the event
    leaves the process or reaches a screen); the event itself when nothing changes."""
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        if isinstance(value, str) and (cleaned := clean(value)) != value:
            changes[f.name] = cleaned
    return dataclasses.replace(event, **changes) if changes else event


def no_op(_event: Event) -> None:
    """The default callback: ignore every event."""


class EventRelay:
    """An event callback for a shared object (a provider's HTTP client) that forwards each event to the
    callback of the fetch running in the current thread (:meth:`set` it there; threads a fetch starts set it
    too). Events of a thread without a target are dropped."""

    def __init__(self) -> None:
        self._local = threading.local()

    def __call__(self, event: Event) -> None:
        target = getattr(self._local, "target", None)
        if target is not None:
            target(event)

    def set(self, target: EventCallback | None) -> None:
        self._local.target = target

    def get(self) -> EventCallback | None:
        return getattr(self._local, "target", None)
