"""Patch gallery: thumbnails as patches are written, filters, pages, a large view with the sidecar, and a
zip of the run."""

from __future__ import annotations

import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import panel as pn
import param

from app.render import png_bytes, thumbnail_png
from app.state.gallery import ALL
from app.state.session import AppState
from senprep_core.outputs.run_folder import RunFolder

THUMB = 128
#: Time spent drawing thumbnails per refresh tick (at least one is drawn; the rest show a grey placeholder
#: until the next ticks), so clicks such as Cancel are answered in between.
THUMB_SECONDS_PER_TICK = 0.04
#: While patches keep arriving, the page is looked at again at most this often (the event loop stays free
#: for clicks such as Cancel).
ARRIVAL_SECONDS = 1.0
PLACEHOLDER = png_bytes(np.full((THUMB, THUMB, 3), 215, dtype=np.uint8))
PLACEHOLDER_GONE = png_bytes(np.full((THUMB, THUMB, 3), 245, dtype=np.uint8))
LARGE = 384


class GalleryView(pn.viewable.Viewer):
    state = param.ClassSelector(class_=AppState)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        g = self.state.gallery
        self.date = pn.widgets.Select(name="Date", options=[ALL], value=ALL, width=130)
        self.unit = pn.widgets.Select(name="Product / pair", options=[ALL], value=ALL, width=260)
        self.modality = pn.widgets.Select.from_param(g.param.modality, name="Mission", width=90)
        self.cloud = pn.widgets.FloatSlider.from_param(g.param.max_cloud, name="Max patch cloud %", step=5, width=180)
        self.masks = pn.widgets.Checkbox(name="mask overlay", value=True, width=110)
        self.date.param.watch(lambda e: setattr(g, "date", e.new), "value")
        self.unit.param.watch(lambda e: setattr(g, "unit", e.new), "value")
        self.masks.param.watch(lambda _e: self._render(force=True), "value")
        self.previous = pn.widgets.Button(name="◀", width=40)
        self.next = pn.widgets.Button(name="▶", width=40)
        self.previous.on_click(lambda _e: self._turn(-1))
        self.next.on_click(lambda _e: self._turn(1))
        self.page_label = pn.pane.Markdown("", margin=(5, 10))
        self.grid = pn.GridBox(ncols=6, sizing_mode="stretch_width")
        self.large = pn.pane.PNG(None, width=LARGE, height=LARGE, visible=False)
        self.meta = pn.pane.JSON({}, depth=2, height=LARGE, sizing_mode="stretch_width", visible=False)
        self.large_title = pn.pane.Markdown("", margin=(0, 10))
        self.download = pn.widgets.FileDownload(
            callback=self._zip,
            filename="senprep-run.zip",
            label="Download the run (zip)",
            button_type="light",
            width=220,
        )
        self._thumbs: dict[tuple[str, bool], bytes] = {}
        self._seen: Any = None
        self._cards: dict[str, pn.Column] = {}
        self._pictures: dict[str, pn.pane.PNG] = {}
        self._shown: list[str] = []
        self._rendered_at = 0.0
        for name in ("date", "unit", "modality", "max_cloud", "page", "page_size"):
            g.param.watch(lambda _e: self._render(), name)

    def _turn(self, step: int) -> None:
        g = self.state.gallery
        g.page = min(max(0, g.page + step), g.n_pages - 1)

    def _thumb(self, path: str, size: int) -> bytes:
        key = (f"{path}@{size}", self.masks.value)
        if key not in self._thumbs:
            try:
                self._thumbs[key] = thumbnail_png(path, size, self.masks.value)
            except OSError:  # removed meanwhile (a cancelled unit's patches): grey, and gone at the next prune
                return PLACEHOLDER_GONE
        return self._thumbs[key]

    def _open_clicked(self, path: str, _event: object) -> None:
        self._open(path)

    def _open(self, path: str) -> None:
        meta = self.state.gallery.select(path)
        info = self.state.gallery.selected_item() or {}
        self.large.object = self._thumb(path, LARGE)
        self.meta.object = meta
        self.large_title.object = f"**{info.get('modality', '')} {info.get('date', '')}** · `{info.get('unit_id', '')}`"
        self.large_title.object += f" · {info.get('patch_id', '')} (outlined on the map)"
        self.large.visible = self.meta.visible = True

    def _card(self, item: dict[str, Any]) -> pn.Column:
        """A thumbnail card, reused while its patch stays on the page; its picture may come a tick later."""
        path = item["path"]
        if path in self._cards:
            return self._cards[path]
        cloud = "" if item["cloud"] is None else f" · cloud {100 * float(item['cloud']):.0f}%"
        button = pn.widgets.Button(
            name="Open", width=70, height=28, margin=(0, 5), button_type="primary", button_style="outline"
        )
        button.on_click(partial(self._open_clicked, path))
        caption = pn.pane.Markdown(
            f"{item['modality']} {item['date']} {item['patch_id']}{cloud}", styles={"font-size": "11px"}, margin=(0, 5)
        )
        picture = pn.pane.PNG(PLACEHOLDER, width=THUMB, height=THUMB)
        self._pictures[path] = picture
        self._cards[path] = card = pn.Column(picture, caption, button, width=THUMB + 20)
        return card

    def _fill_pictures(self, seconds: float = THUMB_SECONDS_PER_TICK) -> None:
        """Draw missing thumbnails for a short while per refresh, so a page of new patches never blocks the UI."""
        until = time.monotonic() + seconds
        for path, picture in self._pictures.items():
            if picture.object is PLACEHOLDER:
                picture.object = self._thumb(path, THUMB)
                if time.monotonic() >= until:
                    return

    def _render(self, force: bool = False) -> None:
        g = self.state.gallery
        view = (g.date, g.unit, g.modality, g.max_cloud, g.page, g.page_size)
        key = (len(g.items), *view)
        if key == self._seen and not force:
            return
        self._seen = key
        dates, units = [ALL, *g.dates()], [ALL, *g.units()]
        if self.date.options != dates:
            self.date.options = dates
        if self.unit.options != units:
            self.unit.options = units
        page_items = g.page_items()
        paths = [item["path"] for item in page_items]
        if force:
            self._cards, self._pictures, self._shown = {}, {}, []
        if paths != self._shown:  # new patches land on later pages: a full page is not rebuilt during a run
            self.grid.objects = [self._card(item) for item in page_items]
            self._shown = paths
            self._cards = {p: c for p, c in self._cards.items() if p in set(paths)}
            self._pictures = {p: pic for p, pic in self._pictures.items() if p in set(paths)}
            self._fill_pictures()
        total = len(g.filtered())
        self.page_label.object = f"page {min(g.page + 1, g.n_pages)} / {g.n_pages} · {total} patches"

    def refresh(self) -> None:
        """Called every refresh tick: new patches are taken in at most every :data:`ARRIVAL_SECONDS`."""
        now = time.monotonic()
        if now - self._rendered_at >= ARRIVAL_SECONDS:
            self._rendered_at = now
            self._render()
        self._fill_pictures()

    def _zip(self) -> Any:
        from senprep_core.outputs.export import export_zip

        outdirs = [Path(d) for d in self.state.job.outdirs if RunFolder(d).is_run()]
        if not outdirs:
            self.state.message = "No finished run to download yet."
            return None
        dest = Path(tempfile.mkdtemp(prefix="senprep-zip-")) / f"{outdirs[0].name}.zip"
        self.download.filename = dest.name
        return str(export_zip(outdirs[0], dest))

    def __panel__(self) -> pn.viewable.Viewable:
        filters = pn.Row(self.date, self.unit, self.modality, self.cloud, self.masks)
        pager = pn.Row(self.previous, self.page_label, self.next, self.download)
        large = pn.Row(self.large, self.meta, sizing_mode="stretch_width")
        # the large view sits right under the pager, above the thumbnails: it opens in view
        return pn.Column(filters, pager, self.large_title, large, self.grid, sizing_mode="stretch_width")
