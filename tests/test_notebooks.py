"""Both notebooks execute top to bottom at a tiny budget (A3C_NOTEBOOK_BUDGET env steps).

They run in a temporary directory, so their run directories land there.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
BUDGET = "3000"


@pytest.mark.parametrize("name", ["01_quickstart", "02_prototype_a_variant"])
def test_notebook_executes(name, tmp_path, monkeypatch):
    monkeypatch.setenv("A3C_NOTEBOOK_BUDGET", BUDGET)
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    assert nb.cells[0].cell_type == "code" and "A3C_NOTEBOOK_BUDGET" in nb.cells[0].source
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), \
        "notebooks are stored without outputs"
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    out = tmp_path / "runs" / "notebooks" / name
    assert (out / "comparison.png").stat().st_size > 0
    for run_dir in [d for d in out.iterdir() if d.is_dir()]:
        assert (run_dir / "metrics.csv").exists() and (run_dir / "config.json").exists()
