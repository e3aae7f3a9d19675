"""The preview overlay of the map: the area in view rendered by ``senprep_core.preview``, coarse first then finer,
in a background thread; a newer view supersedes an older one, whose pictures are never published.

No Panel here: the map view (:mod:`app.views.overlay`) watches :attr:`OverlayState.image`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import param

from senprep_core.catalog.records import ProductRecord
from senprep_core.config import Config
from senprep_core.errors import SenprepError
from senprep_core.geo.grid import Bounds
from senprep_core.previews import preview, render, resolution_for
from senprep_core.previews.render import warp_picture

log = logging.getLogger(__name__)
#: The draft's pixels are this many times larger than the screen's (then the screen's own resolution).
DRAFT_FACTOR = 4
WEB_MERCATOR = 3857


@dataclass(frozen=True, eq=False)
class OverlayImage:
    """A picture ready for a web map: RGBA in Web Mercator, its bounds there, the view it belongs to."""

    generation: int
    step: int  # 0 draft, 1 refined
    resolution: float
    rgba: np.ndarray
    bounds: tuple[float, float, float, float]  # left, bottom, right, top in EPSG:3857
    product_id: str


@dataclass(frozen=True)
class OverlayRequest:
    """What to show: a product or pair of a configuration over ``bounds`` (lon/lat) on ``screen_px`` pixels."""

    config: Config
    records: tuple[ProductRecord, ...]
    bounds: Bounds
    screen_px: int = 1000
    rendering: str = "auto"


#: Makes one picture of a request at a resolution (the real one previews and renders; tests pass their own).
Painter = Callable[[OverlayRequest, float, int], OverlayImage]


def paint(request: OverlayRequest, resolution: float, generation: int, step: int = 0) -> OverlayImage:
    """The first product of ``request`` previewed at ``resolution`` and rendered for a Web Mercator map."""
    view = preview(request.config, request.records, request.bounds, resolution)
    picture = render(view, request.rendering)
    rgba, bounds = warp_picture(picture, WEB_MERCATOR)
    return OverlayImage(generation, step, view.grid.resolution, rgba, bounds, picture.product_id)


class OverlayState(param.Parameterized):
    """The overlay of one session: :meth:`show` a view; :attr:`image` is the latest picture of the latest view."""

    image = param.Parameter(default=None, doc="OverlayImage of the view last asked for, or None")
    status = param.String(default="", doc="what the overlay is doing, or why it failed")
    generation = param.Integer(default=0, doc="bumped by every show() and clear()")

    def __init__(self, painter: Callable[..., OverlayImage] = paint, **params: Any) -> None:
        super().__init__(**params)
        self._painter = painter
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def show(self, request: OverlayRequest, refine: bool = True) -> int:
        """Render ``request`` (a draft, then with ``refine`` the screen's resolution) in the background; returns
        the view's generation. Pictures of earlier views still rendering are dropped, never shown."""
        epsg, run_res = request.config.target_epsg(), request.config.resolution
        fine = resolution_for(request.bounds, epsg, run_res, request.screen_px)
        steps: Sequence[float] = (fine * DRAFT_FACTOR, fine) if refine else (fine,)
        with self._lock:
            self.generation += 1
            generation = self.generation
        self.status = "rendering the preview"
        thread = threading.Thread(target=self._work, args=(request, steps, generation), daemon=True,
                                  name=f"senprep-overlay-{generation}")  # fmt: skip
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return generation

    def clear(self) -> None:
        """No overlay (and none of the views rendering now)."""
        with self._lock:
            self.generation += 1
            self.image = None
        self.status = ""

    def wait(self, timeout: float = 60.0) -> None:
        """Wait for the background renderings (tests)."""
        for thread in list(self._threads):
            thread.join(timeout)

    def _work(self, request: OverlayRequest, steps: Sequence[float], generation: int) -> None:
        for step, resolution in enumerate(steps):
            if self.generation != generation:
                return  # a newer view: this one is not rendered further
            try:
                image = self._painter(request, resolution, generation, step)
            except SenprepError as exc:
                self._publish(generation, None, f"no preview: {exc}")
                return
            except Exception as exc:  # a bug must not pass silently in a background thread
                log.exception("the preview of %s failed", [r.product_id for r in request.records])
                self._publish(generation, None, f"the preview failed: {exc}")
                return
            self._publish(generation, image, "" if step == len(steps) - 1 else "refining the preview")

    def _publish(self, generation: int, image: OverlayImage | None, status: str) -> None:
        with self._lock:  # checked and set together: a superseded view never replaces the current one's picture
            if self.generation != generation:
                return
            if image is not None:
                self.image = image
            self.status = status
