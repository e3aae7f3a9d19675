"""Sidebar widgets: ROI input (paste / upload), date windows, mode, patches, S1/S2 options, source, output,
and loading / saving configs."""

from __future__ import annotations

import io
from datetime import date, datetime
from functools import partial
from typing import Any

import panel as pn
import param

from app.state.folder import FOLDER_CHOICES
from app.state.options import ACCOUNT_SOURCES, check_local_folder, check_overlap, check_patch_size, check_window
from app.state.session import AppState


def _error_pane() -> pn.pane.HTML:
    """A field's error line, hidden while the field is fine."""
    return pn.pane.HTML("", visible=False, margin=(0, 10), styles={"color": "#b00020", "font-size": "12px"})


def _show(pane: pn.pane.HTML, why: str) -> None:
    pane.object, pane.visible = why, bool(why)


def _day(value: str) -> datetime:
    return datetime.combine(date.fromisoformat(value), datetime.min.time())


class RoiInputView(pn.viewable.Viewer):
    """Paste GeoJSON or a senprep config, or upload a .geojson / .json file, to set the ROI."""

    state = param.ClassSelector(class_=AppState)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.text = pn.widgets.TextAreaInput(
            name="Paste GeoJSON or a senprep config",
            height=110,
            placeholder='{"type": "Polygon", "coordinates": [...]}',
        )
        self.apply = pn.widgets.Button(name="Use pasted ROI", button_type="primary")
        self.upload = pn.widgets.FileInput(accept=".geojson,.json", name="Upload GeoJSON")
        self.apply.on_click(self._apply)
        self.upload.param.watch(self._uploaded, "value")

    def _apply(self, _event: object) -> None:
        self.state.roi.set_text(self.text.value_input or self.text.value or "")

    def _uploaded(self, event: param.parameterized.Event) -> None:
        if event.new:
            self.state.roi.set_text(bytes(event.new).decode("utf-8", errors="replace"))

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self.text, self.apply, pn.pane.Markdown("or upload a file:", margin=(0, 10)), self.upload)


class DateWindowsView(pn.viewable.Viewer):
    """Several [start, end] windows, each with its own remove button, and an add button."""

    state = param.ClassSelector(class_=AppState)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.rows = pn.Column(sizing_mode="stretch_width")
        self.add = pn.widgets.Button(name="+ date window", button_type="light")
        self.add.on_click(lambda _e: self.state.options.add_window())
        self.state.options.param.watch(lambda _e: self._rebuild(), "date_windows")
        self._rebuild()

    def _remove(self, index: int, _event: object) -> None:
        self.state.options.remove_window(index)

    def _rebuild(self) -> None:
        rows = []
        windows = self.state.options.date_windows
        for index, (start, end) in enumerate(windows):
            first, last = (
                pn.widgets.DatetimePicker(name=name, value=_day(value), enable_time=False, allow_input=True, width=130)
                for name, value in ((f"Window {index + 1} start", start), ("end", end))
            )
            remove = pn.widgets.Button(name="✕", width=40, disabled=len(windows) == 1, margin=(22, 5, 5, 5))
            error = _error_pane()

            def changed(_e: Any, i: int = index, a: Any = first, b: Any = last, why: Any = error) -> None:
                _show(why, check_window(a.value, b.value))
                if not why.visible:
                    self.state.options.set_window(i, a.value, b.value)

            first.param.watch(changed, "value")
            last.param.watch(changed, "value")
            remove.on_click(partial(self._remove, index))
            rows.append(pn.Column(pn.Row(first, last, remove), error))
        self.rows.objects = rows

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self.rows, self.add)


class OptionsView(pn.viewable.Viewer):
    """Mode, patches, Sentinel-1 / Sentinel-2 options, source with masked credentials, output folder."""

    state = param.ClassSelector(class_=AppState)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        o = self.state.options.param
        w = pn.widgets
        self.mode = w.Select.from_param(o.mode, name="Mode")
        # plain inputs, checked here: a value out of range is shown with the reason, not clamped silently
        options = self.state.options
        self.patch_size = w.IntInput(name="Patch size (px)", value=options.patch_size, step=16)
        self.overlap = w.IntInput(name="Overlap (px)", value=options.overlap, step=8)
        self.patch_error, self.folder_error = _error_pane(), _error_pane()
        self.patch_size.param.watch(lambda _e: self._patches_typed(), "value")
        self.overlap.param.watch(lambda _e: self._patches_typed(), "value")
        options.param.watch(self._patches_changed, ["patch_size", "overlap"])
        self.s2 = pn.Column(
            w.Select.from_param(o.s2_level, name="S2 level"),
            w.MultiChoice.from_param(o.s2_bands, name="S2 bands"),
            w.FloatSlider.from_param(o.cloud_max, name="Max tile cloud %", step=5),
        )
        self.s1 = pn.Column(
            w.CheckButtonGroup.from_param(o.polarisations, name="Polarisations"),
            w.Select.from_param(o.calibration, name="Calibration"),
            w.Select.from_param(o.speckle_filter, name="Speckle filter"),
            w.Checkbox.from_param(o.terrain_flattening, name="Terrain flattening (γ0T)"),
            w.Checkbox.from_param(o.db, name="dB"),
            w.MultiChoice.from_param(o.s1_layers, name="Extra layers"),
            w.TextInput.from_param(o.dem, name="DEM (file or GLO-30 folder)"),
        )
        self.source = w.Select.from_param(o.source, name="Source")
        self.folder = w.TextInput.from_param(o.local_folder, name="Local product folder")
        self.username = w.TextInput.from_param(o.username, name="Username")
        self.password = w.PasswordInput.from_param(o.password, name="Password")
        self.outdir = w.TextInput.from_param(o.outdir, name="Output folder")
        self.workers = w.IntInput.from_param(o.workers, name="Worker processes")
        self.run_name = w.TextInput.from_param(o.run_name, name="Run name")
        self.run_folder = RunFolderView(state=self.state)
        self.state.options.param.watch(lambda _e: self._visibility(), ["mode", "source", "local_folder"])
        self._visibility()

    def _patches_typed(self) -> None:
        """Apply a typed patch size / overlap when a run takes it; else say why next to the fields."""
        size, overlap = self.patch_size.value, self.overlap.value
        why = check_patch_size(size) or check_overlap(overlap, size or 0)
        _show(self.patch_error, why)
        if not why:
            self.state.options.param.update(patch_size=size, overlap=overlap)

    def _patches_changed(self, *_events: Any) -> None:
        """The options changed elsewhere (a config loaded): the fields follow."""
        options = self.state.options
        self.patch_size.value, self.overlap.value = options.patch_size, options.overlap

    def _visibility(self) -> None:
        options = self.state.options
        self.s1.visible = options.needs_s1
        self.s2.visible = options.needs_s2
        self.folder.visible = options.source == "local"
        _show(self.folder_error, check_local_folder(options.local_folder) if self.folder.visible else "")
        self.username.visible = self.password.visible = options.source in ACCOUNT_SOURCES

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            self.mode,
            pn.Row(self.patch_size, self.overlap),
            self.patch_error,
            self.s2,
            self.s1,
            self.source,
            self.folder,
            self.folder_error,
            self.username,
            self.password,
            self.run_name,
            self.run_folder,
            self.outdir,
            self.workers,
        )

    def refresh(self) -> None:
        self.run_folder.refresh()


#: The buttons of the choices for a run folder that already holds a run.
CHOICE_LABELS = {"resume": "Resume", "overwrite": "Overwrite", "new_name": "New name"}
CHOICE_HELP = (
    "**Resume** keeps its complete units and redoes the rest · **Overwrite** deletes that run first · "
    "**New name** runs into a new folder"
)


class RunFolderView(pn.viewable.Viewer):
    """Under the run-name field: who holds the run folder, or the choice for a folder that holds a run."""

    state = param.ClassSelector(class_=AppState)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.notice = pn.pane.Alert("", alert_type="warning", visible=False, margin=(0, 10))
        self.buttons = []
        for choice in FOLDER_CHOICES:
            button = pn.widgets.Button(name=CHOICE_LABELS[choice], button_type="primary", width=95)
            button.on_click(partial(self._choose, choice))
            self.buttons.append(button)
        self.choices = pn.Column(pn.Row(*self.buttons), pn.pane.Markdown(CHOICE_HELP, margin=(0, 10)), visible=False)
        self._seen: tuple[str, bool] | None = None

    def _choose(self, choice: str, _event: object) -> None:
        self.state.choose_folder(choice)

    def refresh(self) -> None:
        folder = self.state.folder
        key = (folder.notice, folder.asking)
        if key == self._seen:
            return
        self._seen = key
        self.notice.object = folder.notice
        self.notice.alert_type = "info" if folder.asking else "warning"
        self.notice.visible = bool(folder.notice)
        self.choices.visible = folder.asking

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self.notice, self.choices, margin=0)


class ConfigIOView(pn.viewable.Viewer):
    """Load a legacy or modern config; download the session's config in either form for the CLI."""

    state = param.ClassSelector(class_=AppState)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.upload = pn.widgets.FileInput(accept=".json,.yaml,.yml", name="Load config")
        self.upload.param.watch(self._uploaded, "value")
        self.modern = pn.widgets.FileDownload(
            callback=lambda: self._download("modern"),
            filename="senprep.json",
            label="Save config (modern)",
            button_type="light",
        )
        self.legacy = pn.widgets.FileDownload(
            callback=lambda: self._download("legacy"),
            filename="senprep-legacy.json",
            label="Save config (legacy)",
            button_type="light",
        )

    def _uploaded(self, event: param.parameterized.Event) -> None:
        if event.new:
            self.state.load_config_text(bytes(event.new).decode("utf-8", errors="replace"))

    def _download(self, form: str) -> io.StringIO:
        return io.StringIO(self.state.config_text(form))

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            pn.pane.Markdown("Load a config (legacy or modern):", margin=(0, 10)),
            self.upload,
            pn.Row(self.modern, self.legacy),
        )
