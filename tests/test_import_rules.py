"""The import rules of senprep_core, read from the source (AST): every import counts, inside functions too.

- ``geo/``, ``fetch/``, ``catalog/``, ``s1/``, ``s2/`` and ``outputs/`` never import the work unit, the
  planning, the pipeline or the configuration;
- ``unit/`` never imports the pipeline, the planning or the configuration (units take a UnitSpec);
- nothing in senprep_core imports the app or a UI package, and ``app/state`` imports no Panel / Bokeh;
- no import cycle between modules, nor between the packages (folders) of senprep_core.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "senprep_core"
LOW_PACKAGES = ("geo", "fetch", "catalog", "s1", "s2", "outputs")
ABOVE_UNITS = ("planning", "pairing", "pipeline", "config", "executors", "cli", "dataset")
UI_PACKAGES = ("app", "panel", "bokeh", "holoviews", "geoviews", "ipyleaflet", "ipywidgets", "param")


def _module_name(path: Path, base: Path) -> str:
    parts = list(path.relative_to(base.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(base: Path) -> dict[str, Path]:
    return {_module_name(p, base): p for p in sorted(base.rglob("*.py"))}


def _imports(path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import in the file; ``from X import name`` names X.name when that is
    a module (and X only for names X defines)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known]
            if len(submodules) < len(node.names):  # names defined in the module itself
                yield node.module, node.lineno
            for submodule in submodules:
                yield submodule, node.lineno


def _graph() -> dict[str, set[str]]:
    modules = _modules(CORE)
    known = set(modules)
    return {m: {t for t, _ in _imports(p, known) if t in known and t != m} for m, p in modules.items()}


def _package(module: str) -> str:
    """``senprep_core.unit.runner`` -> ``unit``; top-level modules are their own package."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_another_that_imports_it_back() -> None:
    assert _cycles(_graph()) == []


def test_the_packages_form_floors_without_cycles() -> None:
    packages: dict[str, set[str]] = {}
    for module, targets in _graph().items():
        packages.setdefault(_package(module), set()).update(
            _package(t) for t in targets if _package(t) != _package(module)
        )
    assert _cycles(packages) == []


@pytest.mark.parametrize("low", LOW_PACKAGES)
def test_low_packages_never_import_units_planning_pipeline_or_config(low: str) -> None:
    forbidden = ("unit", *ABOVE_UNITS)
    bad = sorted(f"{m} -> {t}" for m, ts in _graph().items() if _package(m) == low for t in ts
                 if _package(t) in forbidden)  # fmt: skip
    assert bad == []


def test_units_never_import_pipeline_planning_or_config() -> None:
    bad = sorted(f"{m} -> {t}" for m, ts in _graph().items() if _package(m) == "unit" for t in ts
                 if _package(t) in ABOVE_UNITS)  # fmt: skip
    assert bad == []


def test_the_library_never_imports_the_app_or_a_ui_package() -> None:
    modules = _modules(CORE)
    bad = [f"{m}:{line} imports {name}" for m, p in modules.items() for name, line in _imports(p, set(modules))
           if name.split(".")[0] in UI_PACKAGES]  # fmt: skip
    assert bad == []


def test_app_state_imports_no_panel_or_bokeh() -> None:
    state = ROOT / "app" / "state"
    bad = [f"{p.name}:{line} imports {name}" for p in sorted(state.glob("*.py")) for name, line in _imports(p, set())
           if name.split(".")[0] in ("panel", "bokeh", "holoviews", "geoviews")]  # fmt: skip
    assert bad == []


def test_the_checker_sees_a_cycle_and_a_forbidden_import() -> None:
    """The rules can fail: a made-up cycle and package edge are found."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _package("senprep_core.unit.runner") == "unit" and _package("senprep_core.pipeline") == "pipeline"
