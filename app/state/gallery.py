"""The patch gallery: patches as they are written, filters, pages, the selected patch and its sidecar."""

from __future__ import annotations

import json
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import param
from pyproj import Transformer

ALL = "all"
#: Patches the gallery takes one by one as they are written (two pages); the rest arrive unit by unit.
LIVE_PATCHES = 48


@lru_cache(maxsize=16)
def _to_lonlat(epsg: int) -> Transformer:
    return Transformer.from_crs(epsg, 4326, always_xy=True)


def patch_info(tif: str | Path) -> dict[str, Any] | None:
    """What the gallery shows of a patch, from its sidecar JSON (None while the sidecar is missing)."""
    tif = Path(tif)
    sidecar = tif.with_suffix(".json")
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return None
    grid = meta.get("grid", {})
    outline: list[tuple[float, float]] = []
    if grid.get("bounds") and grid.get("epsg"):
        left, bottom, right, top = grid["bounds"]
        to_lonlat = _to_lonlat(int(grid["epsg"]))
        corners = [(left, bottom), (right, bottom), (right, top), (left, top), (left, bottom)]
        outline = [tuple(round(v, 7) for v in to_lonlat.transform(x, y)) for x, y in corners]  # type: ignore[misc]
    sensing = str(meta.get("sensing_time", ""))
    return {
        "path": str(tif),
        "unit_id": meta.get("unit_id", tif.parent.name),
        "patch_id": meta.get("patch_id", tif.stem),
        "modality": meta.get("modality", ""),
        "date": sensing[:10],
        "sensing_time": sensing,
        "cloud": meta.get("cloud_fraction"),
        "valid": meta.get("valid_fraction"),
        "bands": list(meta.get("bands", [])),
        "outline": outline,
    }


class GalleryState(param.Parameterized):
    """Patches of the current run(s), filterable by date, unit (product or pair), modality and cloud."""

    items = param.List(default=[], constant=True, doc="patch_info dicts, in the order the patches arrived")
    date = param.String(default=ALL, doc="show one acquisition date (YYYY-MM-DD) or 'all'")
    unit = param.String(default=ALL, doc="show one unit (a product or a pair) or 'all'")
    modality = param.Selector(default=ALL, objects=[ALL, "S2", "S1"])
    max_cloud = param.Number(default=100.0, bounds=(0.0, 100.0), doc="hide patches cloudier than this (%)")
    page = param.Integer(default=0, bounds=(0, None))
    page_size = param.Integer(default=24, bounds=(1, 500))
    selected = param.String(default="", doc="path of the patch opened in the large view")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._lock = threading.Lock()
        self._known: set[str] = set()

    def clear(self) -> None:
        with self._lock, param.edit_constant(self):
            self._known = set()
            self.items, self.selected, self.page = [], "", 0

    def add(self, path: str) -> bool:
        """Add a patch just written (thread-safe; repeated paths are ignored)."""
        with self._lock:
            if path in self._known:
                return False
            info = patch_info(path)
            if info is None:
                return False
            self._known.add(path)
            with param.edit_constant(self):
                self.items = [*self.items, info]
            return True

    def add_live(self, path: str) -> bool:
        """A patch just written, shown at once while the gallery holds fewer than :data:`LIVE_PATCHES`; later
        patches come with their unit when it finishes (:meth:`load_unit`), so thousands of patches per unit
        never slow the app, and patches of a unit that is cancelled (and removed) never show."""
        if len(self.items) >= LIVE_PATCHES:
            return False
        return self.add(path)

    def prune(self) -> int:
        """Drop the patches whose files are gone (a cancelled unit removes what it wrote); returns how many."""
        with self._lock:
            kept = [i for i in self.items if Path(i["path"]).exists()]
            gone = len(self.items) - len(kept)
            if gone:
                self._known = {i["path"] for i in kept}
                with param.edit_constant(self):
                    self.items = kept
            return gone

    def load_outdir(self, outdir: str | Path) -> int:
        """Add every finished patch found in a run folder (e.g. a run from an earlier session)."""
        return sum(self.load_unit(folder) for folder in sorted(Path(outdir).glob("patches/*")))

    def load_unit(self, folder: str | Path) -> int:
        """Add the patches of one unit folder (a unit found complete is not rewritten, so it sends no
        patch events)."""
        return sum(self.add(str(tif)) for tif in sorted(Path(folder).glob("*.tif")))

    # ----- filtering and paging ----------------------------------------------------------------

    def dates(self) -> list[str]:
        return sorted({i["date"] for i in self.items if i["date"]})

    def units(self) -> list[str]:
        return sorted({i["unit_id"] for i in self.items})

    def filtered(self) -> list[dict[str, Any]]:
        """The patches passing the filters, in the order they were written (so pages stay put during a run)."""
        keep = [
            i
            for i in self.items
            if (self.date == ALL or i["date"] == self.date)
            and (self.unit == ALL or i["unit_id"] == self.unit)
            and (self.modality == ALL or i["modality"] == self.modality)
            and (i["cloud"] is None or 100.0 * float(i["cloud"]) <= self.max_cloud)
        ]
        return keep

    @property
    def n_pages(self) -> int:
        return max(1, -(-len(self.filtered()) // self.page_size))

    def page_items(self) -> list[dict[str, Any]]:
        """The patches on the current page (the page is clamped to the last one)."""
        items = self.filtered()
        page = min(self.page, max(0, -(-len(items) // self.page_size) - 1))
        return items[page * self.page_size : (page + 1) * self.page_size]

    @param.depends("date", "unit", "modality", "max_cloud", watch=True)
    def _back_to_first_page(self) -> None:
        self.page = 0

    def select(self, path: str) -> dict[str, Any]:
        """Open a patch: remember it and return its full sidecar metadata."""
        self.selected = path
        return self.metadata(path)

    def metadata(self, path: str) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(Path(path).with_suffix(".json").read_text())
        except (OSError, ValueError):
            return {}
        return data

    def selected_item(self) -> dict[str, Any] | None:
        return next((i for i in self.items if i["path"] == self.selected), None)
