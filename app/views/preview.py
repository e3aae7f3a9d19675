"""Search preview: a Search button that does not block, the products table (used by a unit, or why not) and
the pairs table."""

from __future__ import annotations

from typing import Any

import pandas as pd
import panel as pn
import param

from app.render import quicklook_png
from app.state.session import AppState

QUICKLOOK = 220
PAIRING_MODES = ("s2_with_closest_s1", "s1_with_closest_s2", "s1_multitemporal")
COLUMNS = ["product_id", "mission", "level", "date", "cloud", "coverage", "used", "why", "online"]
#: Column titles with their units.
TITLES = {"product_id": "product id", "cloud": "cloud (%)", "coverage": "ROI coverage (%)", "date": "date (UTC)"}


class PreviewView(pn.viewable.Viewer):
    state = param.ClassSelector(class_=AppState)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.button = pn.widgets.Button(name="Search", button_type="primary", width=120)
        self.button.on_click(self._search)
        self.status = pn.pane.Markdown("Press **Search** to list the products over the ROI.", margin=(0, 10))
        self.table = pn.widgets.Tabulator(
            pd.DataFrame(columns=COLUMNS),
            selectable=1,
            widths={"product_id": 520, "why": 220},
            titles=TITLES,
            configuration={"columnDefaults": {"tooltip": True}},  # a cell cut short shows in full on hover
            formatters={"product_id": {"type": "textarea"}},
            show_index=False,
            disabled=True,
            sizing_mode="stretch_width",
            height=260,
            pagination="local",
            page_size=50,
            name="products",
        )
        self.pairs = pn.widgets.Tabulator(
            pd.DataFrame(columns=["primary", "secondary", "dt_hours", "reason"]),
            show_index=False,
            disabled=True,
            sizing_mode="stretch_width",
            height=200,
            name="pairs",
        )
        self._seen: Any = None
        self.quicklook = pn.pane.PNG(None, width=QUICKLOOK, height=QUICKLOOK, visible=False)
        self.quicklook_title = pn.pane.Markdown("Select a product to see its quicklook.", margin=(0, 10))
        self.table.param.watch(self._selected, "selection")

    def _selected(self, event: Any) -> None:
        rows = self.state.search.rows
        if not event.new or event.new[0] >= len(self.table.value):
            return
        product_id = self.table.value.iloc[event.new[0]]["product_id"]
        self.state.search.selected = product_id
        row = next((r for r in rows if r["product_id"] == product_id), None)
        image = quicklook_png(row["href"]) if row else None
        self.quicklook.object = image
        self.quicklook.visible = image is not None
        self.quicklook_title.object = (
            f"Quicklook of `{product_id}`" if image is not None else f"`{product_id}` has no quicklook."
        )

    def _search(self, _event: object) -> None:
        self.state.start_search()

    def refresh(self) -> None:
        search = self.state.search
        self.button.disabled = search.busy
        self.pairs.visible = bool(search.pairs) or self.state.options.mode in PAIRING_MODES
        key = (search.status, id(search.rows))
        if key == self._seen:
            return
        self._seen = key
        if search.status == "searching":
            self.status.object = "Searching…"
            return
        if search.status == "failed":
            self.status.object = f"<span style='color:#b00020'>Search failed: {search.error}</span>"
            return
        if search.status == "idle":  # cleared: the ROI, dates or mode changed
            self.table.value = pd.DataFrame(columns=COLUMNS)
            self.pairs.value = pd.DataFrame(columns=["primary", "secondary", "dt_hours", "reason"])
            self.status.object = "Press **Search** to list the products over the ROI."
            self.quicklook.visible = False
            return
        if search.status != "done":
            return
        self.table.value = pd.DataFrame([_cells(r) for r in search.rows], columns=COLUMNS)
        self.pairs.value = pd.DataFrame(search.pairs, columns=["primary", "secondary", "dt_hours", "reason"])
        problems = f" · {len(search.problems)} unreadable" if search.problems else ""
        pairs = sum(len(u["products"]) > 1 for u in search.units)
        alone = sum(p["secondary"] is None for p in search.pairs)
        paired = f", {pairs} of them pairs ({alone} primaries without a partner: see why below)" if search.pairs else ""
        units = f" · a run makes {len(search.units)} units{paired}"
        self.status.object = f"**{len(search.rows)} products found**{units}{problems}"

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            pn.Row(self.button, self.status),
            pn.Row(self.table, pn.Column(self.quicklook_title, self.quicklook, width=QUICKLOOK + 20)),
            self.pairs,
            sizing_mode="stretch_width",
        )


def _cells(row: dict[str, Any]) -> dict[str, Any]:
    """A table row: no cloud cover for radar products ("–", not NaN)."""
    cells = {k: row.get(k) for k in COLUMNS}
    cells["cloud"] = "–" if row.get("cloud") is None else f"{row['cloud']:.1f}"
    cells["coverage"] = "–" if row.get("coverage") is None else f"{row['coverage']:.1f}"
    return cells
