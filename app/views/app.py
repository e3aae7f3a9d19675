"""The whole app: sidebar inputs, map, search preview, run panel and gallery over one AppState."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar

import panel as pn
import param
from panel.custom import JSComponent
from panel.theme.fast import Fast

from app.state.session import AppState, SessionRegistry
from app.views.gallery import GalleryView
from app.views.map import MapView
from app.views.params import ConfigIOView, DateWindowsView, OptionsView, RoiInputView
from app.views.preview import PreviewView
from app.views.run import RunView

if TYPE_CHECKING:
    from panel.io.resources import ResourcesType

#: Sessions of the served app by id (module state survives across the per-session script runs).
SESSIONS = SessionRegistry()
REFRESH_MS = 250


INTRO = (
    "**This is a demo.** The ROI (a 2.5 km box near Glasgow), the dates and the Sentinel-2 bands are preset on "
    "small Sentinel-2 products that senprep generates itself: no account, no download. "
    "**Start here:** ① look at the ROI on the map (or draw, paste or upload your own) → "
    "② press **Search** under *Products* to list the products over it → ③ press **Run**; "
    "the patches fill the *Gallery*. Pick another *Source* in *Parameters* for real data."
)


class LocalFast(Fast):
    """Panel's Fast design without its web font: the page loads from the app alone (system fonts), offline too."""

    _resources: ClassVar[ResourcesType] = {**Fast._resources, "font": {}}


# Panel finds a design's own files (js/fast_design.js) under the lower-cased class name: keep Fast's
LocalFast.__name__ = "Fast"


class SenprepApp(pn.viewable.Viewer):
    """The senprep app over one session state; embeddable in a notebook or served in a template."""

    state = param.ClassSelector(class_=AppState)

    def __init__(self, **params: Any) -> None:
        if params.get("state") is None:
            params["state"] = AppState.with_demo_defaults()
        super().__init__(**params)
        self.map = MapView(state=self.state)
        self.preview = PreviewView(state=self.state)
        self.runner = RunView(state=self.state)
        self.gallery = GalleryView(state=self.state)
        self.roi_input = RoiInputView(state=self.state)
        self.dates = DateWindowsView(state=self.state)
        self.options = OptionsView(state=self.state)
        self.config_io = ConfigIOView(state=self.state)
        self.message = pn.pane.Alert("", alert_type="warning", visible=False, sizing_mode="stretch_width")
        self.intro = pn.pane.Alert(INTRO, alert_type="info", sizing_mode="stretch_width")
        self._callback: Any = None

    def refresh(self) -> None:
        """Bring every view up to date with the state (runs on the session's event loop)."""
        self.map.refresh()
        self.preview.refresh()
        self.runner.refresh()
        self.gallery.refresh()
        self.options.refresh()
        self.message.object = self.state.message
        self.message.visible = bool(self.state.message)
        self.intro.visible = self.state.options.source == "demo"

    def start_refreshing(self) -> None:
        if self._callback is None:
            self._callback = pn.state.add_periodic_callback(self.refresh, period=REFRESH_MS)

    def stop_refreshing(self) -> None:
        if self._callback is not None:
            self._callback.stop()
            self._callback = None

    def sidebar(self) -> list[Any]:
        return [
            pn.Card(self.roi_input, title="ROI", collapsed=False),
            pn.Card(self.dates, title="Dates", collapsed=False),
            pn.Card(self.options, title="Parameters", collapsed=False),
            pn.Card(self.config_io, title="Config", collapsed=True),
        ]

    def main(self) -> pn.viewable.Viewable:
        top = pn.Row(
            pn.Column(self.map, sizing_mode="stretch_width"),
            pn.Column(self.runner, width=430),
            sizing_mode="stretch_width",
        )
        return pn.Column(
            self.intro,
            self.message,
            top,
            pn.Card(self.preview, title="Products", sizing_mode="stretch_width"),
            pn.Card(self.gallery, title="Gallery", sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )

    def __panel__(self) -> pn.viewable.Viewable:
        self.start_refreshing()
        return pn.Row(pn.Column(*self.sidebar(), width=340), self.main(), sizing_mode="stretch_width")

    def template(self) -> pn.template.FastListTemplate:
        """The served page: a Panel template with the inputs in its sidebar."""
        self.start_refreshing()
        template = pn.template.FastListTemplate(
            title="senprep — Sentinel-1/2 analysis-ready data",
            sidebar=self.sidebar(),
            sidebar_width=360,
            accent="#3060d0",
            design=LocalFast,
        )
        template.main.append(self.main())
        return template


class _ClosedPageFilter(logging.Filter):
    """A page reloaded or closed while the app sends it updates is normal: asyncio's "Task exception was never
    retrieved" for a closed websocket is dropped (any other error still reaches the log)."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += type(record.exc_info[1]).__name__
        return not ("WebSocketClosedError" in text or "StreamClosedError" in text)


def quiet_closed_pages() -> None:
    """Install :class:`_ClosedPageFilter` on asyncio's logger (once per process)."""
    logger = logging.getLogger("asyncio")
    if not any(isinstance(f, _ClosedPageFilter) for f in logger.filters):
        logger.addFilter(_ClosedPageFilter())


def serve_session() -> pn.template.FastListTemplate:
    """The page of one browser session: reattaches to its state when the page is reloaded."""
    requested = pn.state.session_args.get("session", [b""])[0].decode() if pn.state.session_args else ""
    session_id, state = SESSIONS.attach(requested or None)
    app = SenprepApp(state=state)
    marker = SessionInUrl(session_id=session_id, width=1, height=1, margin=0)  # a reload then finds the session

    def closed(_context: Any) -> None:
        app.stop_refreshing()
        SESSIONS.detach(session_id)

    pn.state.on_session_destroyed(closed)
    template = app.template()
    template.main.append(marker)
    return template


class SessionInUrl(JSComponent):
    """Writes ``?session=<id>`` into the browser's address bar (history.replaceState, no reload)."""

    session_id = param.String(default="")

    _esm = """
export function render({ model }) {
  const url = new URL(window.location.href)
  if (model.session_id && url.searchParams.get("session") !== model.session_id) {
    url.searchParams.set("session", model.session_id)
    window.history.replaceState(window.history.state, "", url.toString())
  }
  return document.createElement("span")
}
"""
