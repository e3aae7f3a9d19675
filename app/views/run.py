"""Run panel: Run / Cancel, progress in patches (overall and per running unit), ETA, counts, failures, live log."""

from __future__ import annotations

import html
from typing import Any

import panel as pn
import param

from app.state.job import JobState
from app.state.session import AppState


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


class RunView(pn.viewable.Viewer):
    state = param.ClassSelector(class_=AppState)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.run = pn.widgets.Button(name="Run", button_type="success", width=110)
        self.cancel = pn.widgets.Button(name="Cancel", button_type="danger", width=110, disabled=True)
        self.run.on_click(self._start)
        self.cancel.on_click(self._cancel)
        self.progress = pn.indicators.Progress(
            name="overall", value=0, max=100, sizing_mode="stretch_width", bar_color="success"
        )
        self.stages = pn.Column(sizing_mode="stretch_width")
        self.units = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10))
        self.summary = pn.pane.Markdown("**Status:** idle", margin=(0, 10))
        # the browser says "cancelling…" at once, before the server has answered (a busy machine may take a
        # while); the server's answer then says the same, and "cancelled — N patches kept" when stopped
        self.cancel.js_on_click(args={"status": self.summary, "button": self.cancel}, code=CANCELLING_JS)
        self.failures = pn.pane.Alert("", alert_type="danger", visible=False)
        self.log = pn.pane.Str("", styles={"font-size": "11px"}, sizing_mode="stretch_width")
        self.log_box = pn.Column(
            self.log, height=180, scroll=True, sizing_mode="stretch_width", styles={"background": "#f6f6f6"}
        )
        self._bars: dict[str, pn.indicators.Progress] = {}
        self._log_len = -1

    def _start(self, _event: object) -> None:
        self.state.start_run()

    def _cancel(self, _event: object) -> None:
        """Stop the job; the status says "cancelling…" in the same answer to the click."""
        self.cancel.name = "Cancelling…"  # as the browser shows it: the refresh then sends what holds
        self.state.cancel_run()
        self.refresh()

    def refresh(self) -> None:
        job = self.state.job
        if not isinstance(job, JobState):  # no state bound yet
            return
        running = job.running
        self.run.disabled = running
        self.cancel.disabled = not running or job.status == "cancelling"
        self.cancel.name = "Cancelling…" if job.status == "cancelling" else "Cancel"
        self.progress.value = round(100 * job.fraction) if job.units_total else (-1 if running else 0)
        for stage, (done, total) in job.stages.items():
            if stage == "process":  # the overall bar shows it, in patches
                continue
            bar = self._bars.get(stage)
            if bar is None:
                bar = self._bars[stage] = pn.indicators.Progress(
                    name=stage, max=100, sizing_mode="stretch_width", height=12
                )
                self.stages.append(pn.Row(pn.pane.Markdown(stage, width=70, margin=(0, 10)), bar))
            bar.value = round(100 * done / total) if total else 100
        self.units.object = _unit_rows(job.running_units) if running else ""
        self.summary.object = _summary(job) + (f"\n\n{self.state.message}" if self.state.message else "")
        self.failures.visible = bool(job.failures)
        if job.failures:
            self.failures.object = "**Failed products** (the others went on):\n\n" + "\n".join(
                f"- {line}" for line in job.failures[-10:]
            )
        if len(job.log) != self._log_len:
            self._log_len = len(job.log)
            self.log.object = "\n".join(job.log[-200:])

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            pn.Row(self.run, self.cancel),
            self.progress,
            self.units,
            self.stages,
            self.summary,
            self.failures,
            self.log_box,
            sizing_mode="stretch_width",
        )


CANCELLING_JS = """
button.label = "Cancelling…"
button.disabled = true
status.text = status.text.replace(/\\b(running|preparing)\\b/, "cancelling…")
"""


def _status_text(status: str, kept: int) -> str:
    if status == "cancelling":
        return "cancelling…"
    if status == "cancelled":
        return f"cancelled — {kept} patches kept"
    return status


def _summary(job: JobState) -> str:
    patches = f"{job.patches_done}/{job.patches_total} patches" if job.patches_total else "0 patches"
    current = f" · current unit `{job.current_unit}`" if job.current_unit and job.running else ""
    error = f"\n\n<span style='color:#b00020'>{job.error}</span>" if job.error else ""
    return (
        f"**Status:** {_status_text(job.status, job.patches_kept)} — {patches} · "
        f"{job.units_done}/{job.units_total} units · "
        f"{job.patches_written} patches written, {job.patches_skipped} skipped, {job.units_failed} failed"
        f"{current} · ETA {_duration(job.eta_seconds())}{error}"
    )


MAX_UNIT_ROWS = 8


def _unit_rows(rows: dict[str, tuple[int, int]]) -> str:
    """One small bar per running unit: its id (shortened) and its patches decided."""
    lines = []
    for unit_id, (done, total) in list(rows.items())[:MAX_UNIT_ROWS]:
        unit_id = html.escape(unit_id)
        pct = round(100 * done / total) if total else 0
        lines.append(
            f"<div title='{unit_id}' style='font-size:11px;display:flex;gap:6px;align-items:center'>"
            f"<span style='flex:0 0 170px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap'>{unit_id}</span>"
            f"<progress max='{total or 1}' value='{done}' style='flex:1'></progress>"
            f"<span style='flex:0 0 80px;text-align:right'>{done}/{total} ({pct} %)</span></div>"
        )
    return "".join(lines)
