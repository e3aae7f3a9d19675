"""One user's session: ROI, options, search preview, background job and gallery, wired together.

Sessions live in a registry keyed by a session id the page keeps in its URL, so reloading the
page reattaches to the same state (and its running job) instead of starting a second one.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import param
from pyproj import Transformer

from app.state.folder import (
    FOLDER_CHOICES,
    FolderState,
    check_folder,
    free_name,
    new_session_id,
    session_run_name,
)
from app.state.gallery import GalleryState
from app.state.job import JobState, RunRequest
from app.state.options import RunOptions, check_local_folder
from app.state.roi import RoiState
from app.state.search import SearchState
from senprep_core.config import Config, is_legacy_form, legacy_dict, parse_config
from senprep_core.config.io import read_config_data
from senprep_core.errors import RunFolderBusyError, SenprepError

#: Most patch outlines drawn as the layout overlay (one glyph; the count shown is always the grid's own).
MAX_LAYOUT_OUTLINES = 20000


def demo_folder() -> Path:
    from senprep_core.demo.catalog import default_demo_folder

    return default_demo_folder()


#: One demo build at a time in this process: sessions searching or running on the demo at once would
#: otherwise write the same products under the same temporary names (they are named by process id).
_DEMO_LOCK = threading.Lock()


def _build_demo() -> None:
    from senprep_core.demo.catalog import build_demo_catalog

    with _DEMO_LOCK:
        build_demo_catalog(demo_folder())


class AppState(param.Parameterized):
    """Everything a session edits and runs; views only read and call these methods.

    ``session_id`` names the session (the :class:`SessionRegistry` gives it; a state made without one gets a
    random one): the default run name ends with its short form, so each session has its own run folder.
    """

    session_id = param.String(default="", constant=True, doc="the session's id (random when not given)")
    roi = param.ClassSelector(class_=RoiState)
    options = param.ClassSelector(class_=RunOptions)
    search = param.ClassSelector(class_=SearchState)
    job = param.ClassSelector(class_=JobState)
    gallery = param.ClassSelector(class_=GalleryState)
    folder = param.ClassSelector(class_=FolderState, doc="the run folder's holder, or the question about reusing it")
    message = param.String(default="", doc="the last error or notice for the user")

    def __init__(self, **params: Any) -> None:
        params["session_id"] = params.get("session_id") or new_session_id()
        params.setdefault("roi", RoiState())
        params.setdefault("options", RunOptions(run_name=session_run_name("app-run", params["session_id"])))
        params.setdefault("search", SearchState())
        params.setdefault("job", JobState())
        params.setdefault("gallery", GalleryState())
        params.setdefault("folder", FolderState())
        super().__init__(**params)
        self._outlines: tuple[Any, list[list[tuple[float, float]]]] | None = None
        self._n_patches = 0
        self.job.on_patch = self.gallery.add_live
        self.job.on_unit = self.gallery.load_unit
        self.job.on_busy = self._folder_busy
        self.options.param.watch(lambda _e: self.folder.reset(), ["run_name", "outdir"])
        # results are for one ROI, dates and mode: they go when those change
        self.job.param.watch(self._job_ended, ["status"])
        self.roi.param.watch(self._stale_results, ["revision"])
        self.options.param.watch(self._stale_results, ["date_windows", "mode", "source", "local_folder"])

    @classmethod
    def with_demo_defaults(cls, **params: Any) -> AppState:
        """A session preset on the embedded demo: its ROI, dates and Sentinel-2 bands; its run name is
        ``app-demo-<short session id>``."""
        from senprep_core.demo.catalog import DEMO_ROI_GEOJSON, demo_config_dict

        state = cls(**params)
        state.roi.set_geometry(parse_config(demo_config_dict()).roi.geometry)
        demo = parse_config({**demo_config_dict(), "geojson": DEMO_ROI_GEOJSON})
        state.options.apply_config(demo)
        state.options.param.update(run_name=session_run_name("app-demo", state.session_id), source="demo")
        return state

    def _job_ended(self, *_events: Any) -> None:
        if self.job.status in ("cancelled", "failed", "partial"):  # units stopped mid-way removed their patches
            self.gallery.prune()

    def _stale_results(self, *_events: Any) -> None:
        if not self.search.busy and self.search.status != "idle":
            self.search.clear()

    # ----- building the config ---------------------------------------------------------------------

    def config(self) -> Config | None:
        """The validated config of the current ROI and options; None (with ``message`` set) if invalid."""
        if self.roi.geojson is None:
            self.message = "Draw, paste or upload an ROI first."
            return None
        if self.options.source == "local" and (why := check_local_folder(self.options.local_folder)):
            self.message = f"Local product folder: {why}."
            return None
        try:
            config = self.options.build_config(self.roi.geojson, demo_folder())
        except SenprepError as exc:
            self.message = str(exc)
            return None
        self.message = ""
        return config

    def patch_outlines(self) -> list[list[tuple[float, float]]]:
        """The patch layout over the ROI as lon/lat rectangles (empty when the config is invalid); computed
        once per ROI and layout."""
        o = self.options
        key = (self.roi.revision, o.patch_size, o.overlap, o.resolution, o.mode, tuple(o.date_windows))
        if self._outlines is not None and self._outlines[0] == key:
            return self._outlines[1]
        outlines = self._compute_outlines()
        self._outlines = (key, outlines)
        return outlines

    def n_patches(self) -> int:
        """Patches of the layout over the ROI (all of them, drawn or not)."""
        self.patch_outlines()
        return self._n_patches

    def _compute_outlines(self) -> list[list[tuple[float, float]]]:
        self._n_patches = 0
        try:
            config = self.options.build_config(self.roi.geojson, demo_folder()) if self.roi.geojson else None
        except SenprepError:
            return []
        if config is None:
            return []
        every = config.patches()
        self._n_patches = len(every)
        patches = every[:MAX_LAYOUT_OUTLINES]
        if not patches:
            return []
        to_lonlat = Transformer.from_crs(config.target_epsg(), 4326, always_xy=True)
        outlines = []
        for patch in patches:
            b = patch.grid.bounds
            xs = [b.left, b.right, b.right, b.left, b.left]
            ys = [b.bottom, b.bottom, b.top, b.top, b.bottom]
            lons, lats = to_lonlat.transform(xs, ys)
            outlines.append(list(zip(lons, lats, strict=True)))
        return outlines

    # ----- actions ------------------------------------------------------------------------------

    def start_search(self) -> bool:
        """Search the chosen source in the background."""
        config = self.config()
        if config is None:
            return False
        prepare = _build_demo if self.options.source == "demo" else None
        return self.search.start(config, [self.options.source_spec()], self.options.write_credentials(), prepare)

    def start_run(self, choice: str | None = None) -> bool:
        """Run the pipeline in this session's background job (refused while one runs).

        The run folder is looked at first: in use by another run, nothing starts and ``folder.notice`` names
        the holder; holding a run already, nothing starts until the user answers (:meth:`choose_folder`, or
        ``choice`` "resume" / "overwrite" here)."""
        if self.job.running:
            self.message = "A run is already going on in this session: wait for it or cancel it."
            return False
        config = self.config()
        if config is None:
            return False
        outdir = Path(self.options.outdir).expanduser() / config.name
        check = check_folder(outdir)
        if check.state in ("busy", "unusable"):
            self.folder.refuse(check.message)
            self.message = check.message
            return False
        if check.state == "run" and choice not in ("resume", "overwrite"):
            self.folder.ask(outdir, check.message)
            self.message = f"{check.message} (the choices are under the run name)."
            return False
        self.folder.reset()
        prepare = _build_demo if self.options.source == "demo" else None
        self.gallery.clear()
        request = RunRequest(config, outdir, (self.options.source_spec(),), workers=self.options.workers,
                             credentials=self.options.write_credentials(),
                             overwrite=check.state == "run" and choice == "overwrite")  # fmt: skip
        return self.job.start([request], prepare=prepare)

    def choose_folder(self, choice: str) -> bool:
        """Answer the question about a run folder that already holds a run, and start the run.

        ``resume`` runs into it again (complete units are verified and kept, missing or damaged ones redone);
        ``overwrite`` deletes that run first (only a senprep run folder no run holds); ``new_name`` switches
        to the first free ``<run name>-N`` and runs there."""
        if choice not in FOLDER_CHOICES:
            raise ValueError(f"choose one of {', '.join(FOLDER_CHOICES)}, not {choice!r}")
        pending = self.folder.pending
        if not pending:
            self.message = "There is no run folder to decide about: press Run."
            return False
        if choice == "new_name":
            self.options.run_name = free_name(Path(pending).parent, self.options.run_name)
            return self.start_run()
        return self.start_run(choice)

    def _folder_busy(self, exc: RunFolderBusyError) -> None:
        """The job found its folder in use (taken between the check and the run): say by whom."""
        name = Path(str(exc.folder)).name
        message = f"'{name}' is in use by {exc.holder or 'another run'}: wait for it or choose another run name"
        self.folder.refuse(message)
        self.message = message

    def cancel_run(self) -> None:
        self.job.cancel()

    def load_config_text(self, text: str) -> bool:
        """Load a legacy or modern config (JSON or YAML text): its ROI and all its options."""
        import yaml

        try:
            data = yaml.safe_load(text)
            config = parse_config(data)
        except (SenprepError, ValueError, yaml.YAMLError) as exc:
            self.message = f"cannot load that config: {exc}"
            return False
        self._apply(config)
        form = "legacy" if isinstance(data, dict) and is_legacy_form(data) else "modern"
        self.message = f"Loaded the {form} config '{config.name}'."
        return True

    def load_config_file(self, path: str | Path) -> bool:
        try:
            data = read_config_data(Path(path))
            config = parse_config(data, base_dir=Path(path).resolve().parent)
        except (SenprepError, OSError, ValueError) as exc:
            self.message = f"cannot load {path}: {exc}"
            return False
        self._apply(config)
        return True

    def _apply(self, config: Config) -> None:
        self.roi.set_geometry(config.roi.geometry)
        self.options.apply_config(config)

    def save_config(self, path: str | Path, form: str = "modern") -> bool:
        """Save the session as a config file the CLI runs (``senprep run --config``)."""
        if self.roi.geojson is None:
            self.message = "Set an ROI before saving the config."
            return False
        try:
            from senprep_core.config import save_config

            save_config(
                self._for_form(self.options.build_config(self.roi.geojson, demo_folder()), form), Path(path), form=form
            )
        except SenprepError as exc:
            self.message = str(exc)
            return False
        self.message = f"Saved the {form} config to {path}."
        return True

    @staticmethod
    def _for_form(config: Config, form: str) -> Config:
        """The legacy form has no sources (the 2022 tool took them from its command line)."""
        return replace(config, sources=()) if form == "legacy" else config

    def config_text(self, form: str = "modern") -> str:
        """The config as JSON text (for a download button); '' with ``message`` set when invalid."""
        import json

        config = self.config()
        if config is None:
            return ""
        try:
            data = legacy_dict(self._for_form(config, form)) if form == "legacy" else config.to_dict()
        except SenprepError as exc:
            self.message = str(exc)
            return ""
        return json.dumps(data, indent=2)


class SessionRegistry:
    """The app's sessions by id. A session whose page is gone for ``grace`` seconds is dropped and
    its job cancelled; a page reloaded within that time gets its session back."""

    def __init__(self, grace: float = 120.0) -> None:
        self.grace = grace
        self._sessions: dict[str, AppState] = {}
        self._pages: dict[str, int] = {}
        self._left: dict[str, float] = {}
        self._lock = threading.Lock()

    def attach(self, session_id: str | None) -> tuple[str, AppState]:
        """The session for ``session_id`` (a new demo-preset one when unknown or None)."""
        with self._lock:
            self._expire()
            if not session_id or session_id not in self._sessions:
                session_id = session_id if session_id and len(session_id) <= 64 else new_session_id()
                self._sessions[session_id] = AppState.with_demo_defaults(session_id=session_id)
            self._pages[session_id] = self._pages.get(session_id, 0) + 1
            self._left.pop(session_id, None)
            return session_id, self._sessions[session_id]

    def detach(self, session_id: str) -> None:
        """A page of the session closed (reload, tab closed)."""
        with self._lock:
            self._pages[session_id] = max(0, self._pages.get(session_id, 1) - 1)
            if self._pages[session_id] == 0:
                self._left[session_id] = time.monotonic()
            self._expire()

    def _expire(self) -> None:
        now = time.monotonic()
        for session_id, left in list(self._left.items()):
            if now - left >= self.grace:
                state = self._sessions.pop(session_id, None)
                self._left.pop(session_id, None)
                self._pages.pop(session_id, None)
                if state is not None:
                    state.job.cancel()

    def __len__(self) -> int:
        return len(self._sessions)
