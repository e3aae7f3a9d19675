"""The notebooks run top to bottom (their code cells, in order, in a fresh folder)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize("name", ["quickstart.ipynb"])
def test_notebook_code_cells_run(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    notebook = json.loads((ROOT / "notebooks" / name).read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SENPREP_CACHE", str(tmp_path / "cache"))
    namespace: dict[str, object] = {}
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), f"{name} cell {cell['id']}", "exec"), namespace)
    assert namespace["result"].status == "complete"  # type: ignore[attr-defined]
    assert len(namespace["items"]) == namespace["result"].patches_written > 0  # type: ignore[attr-defined,arg-type]
    assert os.path.exists(tmp_path / "notebook-run" / "run.json")
