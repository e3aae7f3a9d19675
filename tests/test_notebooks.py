"""The notebooks run top to bottom in a real Jupyter kernel, and the notebook ROI map works without a browser.

Each notebook is executed by nbclient in a fresh folder, with its own demo cache. Before it runs, a first
cell is added that prints the kernel's Python (it must be this venv's) and a last one that prints, as one
JSON line, the facts the test checks (run status, patch counts, array shape...).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import ipyleaflet
import pytest

from app.notebook import apply_drawn_shape, drawn_geometry, leaflet_roi_map, roi_feature, view_for
from app.state import AppState, RoiState
from tests.conftest import ROOT

NOTEBOOKS = ROOT / "notebooks"
KERNEL = "python3"
CELL_TIMEOUT = 300  # seconds, per cell
PROBE = "senprep-test-probe:"

#: Code run after each notebook; it prints PROBE + a JSON object built from the notebook's variables.
PROBES: dict[str, str] = {
    "quickstart.ipynb": """{"status": result.status, "written": result.patches_written, "items": len(items)}""",
    "app_embedded.ipynb": """{
        "roi_error": state.roi.error, "area_km2": state.roi.area_km2,
        "map_follows_roi": roi_map.layers[-1].data["geometry"]["coordinates"][0]
        == [list(p) for p in state.roi.geojson["coordinates"][0]],
        "search": state.search.status, "rows": len(state.search.rows),
        "job": state.job.status, "patches": len(state.job.patches), "gallery": len(state.gallery.filtered()),
        "outdirs": state.job.outdirs,
    }""",
    "working_with_outputs.ipynb": """{
        "run": run_status(RUN), "items": len(items), "dims": list(cube.dims), "shape": list(cube.shape),
        "bands": cube.band.values.tolist(), "x0": float(cube.x[0]), "y0": float(cube.y[0]), "ndvi": ndvi_first,
    }""",
}


def notebook_names() -> list[str]:
    return sorted(path.name for path in NOTEBOOKS.glob("*.ipynb"))


# ----- executing the notebooks ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def kernel_name() -> str:
    """The 'python3' kernel, which must start this test run's Python (the venv's)."""
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    assert KERNEL in specs, f"no '{KERNEL}' kernelspec (found {sorted(specs)}): install ipykernel in this venv"
    argv0 = KernelSpecManager().get_kernel_spec(KERNEL).argv[0]
    # jupyter_client starts a bare 'python' / 'python3' as sys.executable, i.e. this venv's interpreter
    assert argv0 in {"python", "python3"} or Path(argv0).resolve() == Path(sys.executable).resolve(), (
        f"the '{KERNEL}' kernelspec at {specs[KERNEL]} runs {argv0}, not {sys.executable}"
    )
    return KERNEL


def execute_notebook(name: str, folder: Path, kernel: str) -> tuple[Any, dict[str, Any]]:
    """Run notebooks/``name`` in ``folder``; returns the executed notebook (without the added cells)
    and the probe's facts."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    notebook.cells.insert(0, nbformat.v4.new_code_cell("import sys\nprint(sys.executable)"))
    probe = PROBES.get(name, "{}")
    notebook.cells.append(nbformat.v4.new_code_cell(f"import json as _json\nprint({PROBE!r} + _json.dumps({probe}))"))
    client = NotebookClient(
        notebook, kernel_name=kernel, timeout=CELL_TIMEOUT, resources={"metadata": {"path": str(folder)}}
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if a cell fails

    first, *cells, last = notebook.cells
    errors = [o for cell in cells if cell.cell_type == "code" for o in cell.outputs if o.output_type == "error"]
    assert not errors, errors
    kernel_python = _stdout(first).strip()
    assert Path(kernel_python).resolve() == Path(sys.executable).resolve(), f"the kernel ran {kernel_python}"
    lines = [line for line in _stdout(last).splitlines() if line.startswith(PROBE)]
    assert lines, f"the probe printed nothing: {last.outputs}"
    notebook.cells = cells
    return notebook, json.loads(lines[-1][len(PROBE) :])


def _stdout(cell: Any) -> str:
    return "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


def _cell_using(notebook: Any, text: str) -> Any:
    return next(cell for cell in notebook.cells if cell.cell_type == "code" and text in cell.source)


@pytest.fixture
def run_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working folder, with the demo cache inside it and this checkout first on the kernel's path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SENPREP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return tmp_path


def test_every_notebook_is_checked_and_stored_without_outputs() -> None:
    import nbformat

    assert set(notebook_names()) == set(PROBES), "add a probe to PROBES for each notebook"
    for name in notebook_names():
        notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(notebook)
        assert notebook.metadata["kernelspec"]["name"] == KERNEL
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{name}: clear the outputs"


@pytest.mark.slow
@pytest.mark.parametrize("name", notebook_names())
def test_notebook_runs_in_a_kernel(name: str, run_folder: Path, kernel_name: str) -> None:
    notebook, facts = execute_notebook(name, run_folder, kernel_name)

    if name == "quickstart.ipynb":
        assert facts["status"] == "complete"
        assert facts["items"] == facts["written"] > 0
        assert (run_folder / "notebook-run" / "run.json").exists()

    elif name == "app_embedded.ipynb":
        assert facts["roi_error"] == "" and 1.0 < facts["area_km2"] < 2.5  # about a quarter of the demo's 6.25 km²
        assert facts["map_follows_roi"]  # the leaflet map redrew the ROI set in code
        assert facts["search"] == "done" and facts["rows"] > 0
        assert facts["job"] == "complete"
        assert facts["gallery"] == facts["patches"] > 0
        assert [Path(d).parent for d in facts["outdirs"]] == [run_folder.resolve() / "app-runs"]
        map_output = _cell_using(notebook, "leaflet_roi_map(state)").outputs
        assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in map_output)
        app_output = _cell_using(notebook, "SenprepApp(state=state)").outputs
        assert any("text/html" in o.get("data", {}) for o in app_output if o.output_type == "execute_result")

    elif name == "working_with_outputs.ipynb":
        grid = json.loads((run_folder / "outputs-demo" / "run.json").read_text())["plan"]["grid"]
        assert facts["run"] == "complete" and facts["items"] > 0
        assert facts["dims"] == ["band", "y", "x"]
        # the patches of one acquisition cover the run's grid exactly, with coordinates at pixel centres
        assert facts["shape"] == [len(facts["bands"]), grid["height"], grid["width"]]
        left, top, step = grid["transform"][2], grid["transform"][5], grid["resolution"]
        assert (facts["x0"], facts["y0"]) == (left + step / 2, top - step / 2)
        assert {"B04", "B08"} <= set(facts["bands"])
        assert 0.0 < facts["ndvi"] < 1.0


# ----- the notebook ROI map -------------------------------------------------------------------------

RECTANGLE = {  # what leaflet-draw reports for a rectangle: a Feature with a closed five-vertex ring
    "type": "Feature",
    "properties": {"style": {"color": "#2171b5"}},
    "geometry": {
        "type": "Polygon",
        "coordinates": [[[-4.25, 55.845], [-4.25, 55.855], [-4.23, 55.855], [-4.23, 55.845], [-4.25, 55.845]]],
    },
}
TRIANGLE = {
    "type": "Feature",
    "properties": {},
    "geometry": {
        "type": "Polygon",
        "coordinates": [[[-4.26, 55.842], [-4.22, 55.843], [-4.24, 55.862], [-4.26, 55.842]]],
    },
}
BOW_TIE = {  # edges cross at (-4.24, 55.85)
    "type": "Feature",
    "properties": {},
    "geometry": {
        "type": "Polygon",
        "coordinates": [[[-4.25, 55.84], [-4.23, 55.86], [-4.25, 55.86], [-4.23, 55.84], [-4.25, 55.84]]],
    },
}


def _closed_ring(feature: dict[str, Any]) -> list[tuple[float, float]]:
    return [tuple(p) for p in feature["geometry"]["coordinates"][0]]  # type: ignore[misc]


def test_a_drawn_rectangle_becomes_the_roi() -> None:
    roi = RoiState()
    assert apply_drawn_shape(roi, RECTANGLE)
    assert roi.error == "" and roi.revision == 1
    assert roi.geojson is not None and roi.geojson["type"] == "Polygon"
    assert roi.bounds() == pytest.approx((-4.25, 55.845, -4.23, 55.855))
    assert set(map(tuple, roi.geojson["coordinates"][0])) == set(_closed_ring(RECTANGLE))
    assert 0.5 < roi.area_km2 < 2.0  # about 1.25 km × 1.1 km


def test_a_drawn_polygon_and_a_bare_geometry_become_the_roi() -> None:
    roi = RoiState()
    assert apply_drawn_shape(roi, TRIANGLE)
    assert roi.geojson is not None and len(roi.geojson["coordinates"][0]) == 4
    assert set(map(tuple, roi.geojson["coordinates"][0])) == set(_closed_ring(TRIANGLE))
    assert apply_drawn_shape(roi, RECTANGLE["geometry"])  # type: ignore[arg-type]
    assert roi.bounds() == pytest.approx((-4.25, 55.845, -4.23, 55.855)) and roi.revision == 2


def test_a_self_intersecting_polygon_is_rejected_and_the_roi_kept() -> None:
    roi = RoiState()
    apply_drawn_shape(roi, RECTANGLE)
    before = roi.geojson
    assert not apply_drawn_shape(roi, BOW_TIE)
    assert "cross" in roi.error
    assert roi.geojson == before and roi.revision == 1
    assert apply_drawn_shape(roi, TRIANGLE) and roi.error == ""  # the next good shape clears the error


@pytest.mark.parametrize(
    ("geo_json", "message"),
    [
        ({"type": "Feature", "properties": {}, "geometry": None}, "no geometry"),
        ({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": "nonsense"}}, "cannot be read"),
        ({"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}}, "Polygon"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]}, "not valid"),
    ],
)
def test_unusable_shapes_leave_an_error(geo_json: dict[str, Any], message: str) -> None:
    roi = RoiState()
    assert not apply_drawn_shape(roi, geo_json)
    assert message in roi.error and roi.geojson is None


def test_a_shape_drawn_on_a_copy_of_the_world_is_brought_back() -> None:
    shifted = {"type": "Polygon", "coordinates": [[[x + 360.0, y] for x, y in _closed_ring(RECTANGLE)]]}
    assert drawn_geometry(shifted).bounds == pytest.approx((-4.25, 55.845, -4.23, 55.855))


def test_view_for_bounds() -> None:
    assert view_for(None) == ((30.0, 0.0), 2)
    (lat, lon), zoom = view_for((-4.26, 55.84, -4.22, 55.86))
    assert (lat, lon) == pytest.approx((55.85, -4.24)) and 12 <= zoom <= 15
    assert view_for((-180.0, -80.0, 180.0, 80.0))[1] == 1


def _parts(leaflet_map: Any) -> tuple[Any, Any, Any]:
    draw = next(c for c in leaflet_map.controls if isinstance(c, ipyleaflet.DrawControl))
    layer = next(layer for layer in leaflet_map.layers if isinstance(layer, ipyleaflet.GeoJSON))
    status = next(c for c in leaflet_map.controls if isinstance(c, ipyleaflet.WidgetControl)).widget
    return draw, layer, status


def _draw(control: Any, geo_json: dict[str, Any]) -> None:
    """What the front end sends when the user finishes a shape (no browser needed)."""
    control._handle_leaflet_event(control, {"event": "draw:created", "geo_json": geo_json}, [])


def test_leaflet_roi_map_draws_and_follows_the_session_roi() -> None:
    roi = RoiState()
    state = AppState(roi=roi)
    roi.set_box(-4.2619555, 55.8411536, -4.2213159, 55.864014)
    leaflet_map = leaflet_roi_map(state, zoom=10)
    assert isinstance(leaflet_map, ipyleaflet.Map)
    assert tuple(leaflet_map.center) == pytest.approx((55.8525838, -4.2416357)) and leaflet_map.zoom == 10
    draw, layer, status = _parts(leaflet_map)
    assert draw.rectangle and draw.polygon and not draw.polyline and not draw.circlemarker and not draw.marker
    assert layer.data["geometry"] == roi_feature(roi.geojson)["geometry"]
    assert "km²" in status.value

    _draw(draw, RECTANGLE)  # a shape drawn on the map sets the session's ROI
    assert roi.bounds() == pytest.approx((-4.25, 55.845, -4.23, 55.855))
    assert roi.geojson is not None
    assert layer.data["geometry"]["coordinates"] == [[list(p) for p in roi.geojson["coordinates"][0]]]

    _draw(draw, BOW_TIE)  # a rejected shape: the ROI stays, the status says why
    assert roi.bounds() == pytest.approx((-4.25, 55.845, -4.23, 55.855))
    assert "ROI not changed" in status.value and "cross" in status.value

    roi.set_box(10.0, 50.0, 10.1, 50.1)  # set elsewhere (the Panel app, code): the map follows
    assert layer.data["geometry"] == roi_feature(roi.geojson)["geometry"]
    assert tuple(leaflet_map.center) == pytest.approx((50.05, 10.05))
    assert "ROI not changed" not in status.value

    roi.clear()
    assert layer.data == {"type": "FeatureCollection", "features": []}
    assert "Draw a rectangle" in status.value


def test_leaflet_roi_map_without_roi_opens_on_the_default_view() -> None:
    state = AppState()
    leaflet_map = leaflet_roi_map(state)
    assert (tuple(leaflet_map.center), leaflet_map.zoom) == ((30.0, 0.0), 2)
    assert any(isinstance(c, ipyleaflet.DrawControl) for c in leaflet_map.controls)


def test_the_served_app_does_not_import_the_notebook_helpers() -> None:
    served = [ROOT / "app" / "main.py", *sorted((ROOT / "app" / "views").glob("*.py"))]
    assert not [path.name for path in served if "app.notebook" in path.read_text()]
