"""Both notebooks are stored with the outputs of their own budget (figures visible when they
are opened on a code host) and still execute top to bottom at a tiny budget
(A3C_NOTEBOOK_BUDGET env steps).

They run in a temporary directory, so their run directories land there; the stored notebook
is left as it is.
"""

from __future__ import annotations

import base64
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow   # minutes of fresh processes: make test-long runs it

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
BUDGET = "3000"
PNG = b"\x89PNG\r\n\x1a\n"


def images(nb) -> list[bytes]:
    return [base64.b64decode(out["data"]["image/png"]) for cell in nb.cells
            if cell.cell_type == "code" for out in cell.get("outputs", [])
            if "image/png" in out.get("data", {})]


@pytest.mark.parametrize("name, figures", [("01_quickstart", 2),
                                           ("02_prototype_a_variant", 1)])
def test_notebook_is_stored_with_its_outputs(name, figures):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "not executed top to bottom"
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    found = images(nb)
    assert len(found) == figures and all(png.startswith(PNG) and len(png) > 2000
                                         for png in found)
    # stored at the notebook's own budget (two seeds), not at the tests' tiny one (one seed)
    tables = [line for c in code for o in c.outputs if o.output_type == "stream"
              for line in o.text.splitlines() if line.startswith("| ") and "---" not in line]
    rows = [line.split("|")[2].strip() for line in tables if not line.startswith("| method")]
    assert rows and set(rows) == {"2"}, tables


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", ["01_quickstart", "02_prototype_a_variant"])
def test_notebook_executes(name, tmp_path, monkeypatch):
    monkeypatch.setenv("A3C_NOTEBOOK_BUDGET", BUDGET)
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    assert nb.cells[0].cell_type == "code" and "A3C_NOTEBOOK_BUDGET" in nb.cells[0].source
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert images(nb), "the executed notebook shows no figure"
    out = tmp_path / "runs" / "notebooks" / name
    assert (out / "comparison.png").stat().st_size > 0
    run_dirs = [p.parent for p in out.rglob("metrics.csv")]
    assert len(run_dirs) == (2 if name == "01_quickstart" else 8)
    for run_dir in run_dirs:
        assert (run_dir / "config.json").exists()
