"""What the ``senprep`` command shows while a run goes on: progress bars of products and patches, each
unit's outcome, warnings, or the events as JSON lines (``--log-json``)."""

from __future__ import annotations

import json
import sys
from typing import Any

from senprep_core.events import Event, Message, PatchProgress, RunFinished, RunStarted, StageProgress, UnitFinished


class EventPrinter:
    """Render progress events: a rich progress bar, JSON lines (--log-json) or nothing (--quiet)."""

    def __init__(self, quiet: bool = False, json_lines: bool = False) -> None:
        self.quiet = quiet
        self.json_lines = json_lines
        self._progress: Any = None
        self._task: Any = None
        self._patch_task: Any = None
        self._decided: dict[str, int] = {}  # patches decided per unit
        self._per_unit = 0

    def __call__(self, event: Event) -> None:
        if self.json_lines:
            print(json.dumps(event.to_dict(), default=str), flush=True)
            return
        if isinstance(event, Message) and event.level in ("warning", "error"):
            self._console_print(f"[{event.level}] {event.text}")
        if self.quiet:
            return
        if isinstance(event, RunStarted):
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                transient=False, disable=not sys.stderr.isatty(),
            )  # fmt: skip
            self._progress.start()
            self._task = self._progress.add_task("products", total=event.n_units)
            self._decided, self._per_unit = {}, event.patches_per_unit
            if event.patches_total:
                self._patch_task = self._progress.add_task("patches", total=event.patches_total)
        elif isinstance(event, PatchProgress) and self._patch_task is not None:
            self._decided[event.unit_id] = event.done
            self._progress.update(self._patch_task, completed=sum(self._decided.values()))
        elif isinstance(event, UnitFinished):
            text = (
                f"{event.unit_id}: {event.status}, {event.patches_written} patches written, "
                f"{event.patches_skipped} skipped"
            )
            if event.error:
                text += f" ({event.error})"
            self._console_print(text)
            if self._patch_task is not None:  # a unit skipped, rejected or failed has decided all its patches too
                self._decided[event.unit_id] = self._per_unit
                self._progress.update(self._patch_task, completed=sum(self._decided.values()))
        elif isinstance(event, StageProgress) and event.stage in ("process", "download") and self._progress:
            self._progress.update(self._task, completed=event.done)
        elif isinstance(event, RunFinished) and self._progress is not None:
            self._progress.stop()

    def _console_print(self, text: str) -> None:
        if self._progress is not None and self._progress.live.is_started:
            self._progress.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=sys.stderr)
