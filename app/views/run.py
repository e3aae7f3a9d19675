"""Run panel: Run / Cancel, overall and per-stage progress, current unit, ETA, counts, failures, live log."""

from __future__ import annotations

from typing import Any

import panel as pn
import param

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
        self.cancel.on_click(lambda _e: self.state.cancel_run())
        self.progress = pn.indicators.Progress(
            name="overall", value=0, max=100, sizing_mode="stretch_width", bar_color="success"
        )
        self.stages = pn.Column(sizing_mode="stretch_width")
        self.summary = pn.pane.Markdown("**Status:** idle", margin=(0, 10))
        self.failures = pn.pane.Alert("", alert_type="danger", visible=False)
        self.log = pn.pane.Str("", styles={"font-size": "11px"}, sizing_mode="stretch_width")
        self.log_box = pn.Column(
            self.log, height=180, scroll=True, sizing_mode="stretch_width", styles={"background": "#f6f6f6"}
        )
        self._bars: dict[str, pn.indicators.Progress] = {}
        self._log_len = -1

    def _start(self, _event: object) -> None:
        self.state.start_run()

    def refresh(self) -> None:
        job = self.state.job
        running = job.running
        self.run.disabled = running
        self.cancel.disabled = not running
        self.progress.value = round(100 * job.fraction) if job.units_total else (-1 if running else 0)
        for stage, (done, total) in job.stages.items():
            bar = self._bars.get(stage)
            if bar is None:
                bar = self._bars[stage] = pn.indicators.Progress(
                    name=stage, max=100, sizing_mode="stretch_width", height=12
                )
                self.stages.append(pn.Row(pn.pane.Markdown(stage, width=70, margin=(0, 10)), bar))
            bar.value = round(100 * done / total) if total else 100
        current = f" · current unit `{job.current_unit}`" if job.current_unit and running else ""
        self.summary.object = (
            f"**Status:** {job.status} — {job.units_done}/{job.units_total} units · "
            f"{job.patches_written} patches written, {job.patches_skipped} skipped, {job.units_failed} failed"
            f"{current} · ETA {_duration(job.eta_seconds())}"
            + (f"\n\n<span style='color:#b00020'>{job.error}</span>" if job.error else "")
            + (f"\n\n{self.state.message}" if self.state.message else "")
        )
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
            self.stages,
            self.summary,
            self.failures,
            self.log_box,
            sizing_mode="stretch_width",
        )
