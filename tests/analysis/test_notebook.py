"""The example notebook runs top to bottom under papermill on a small results directory.

The kernel is a kernelspec made for this test in a temporary JUPYTER_PATH that starts this very
interpreter (the venv's), so the test needs no `ipykernel install` and no user-level Jupyter
set-up: it works from a fresh clone with `make test`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import papermill
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "analysis" / "notebooks"
NOTEBOOK = NOTEBOOKS / "explore_sweep.ipynb"


@pytest.fixture
def kernel_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    spec_dir = tmp_path / "jupyter" / "kernels" / "caviar-test"
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "caviar test kernel",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    # Connection files and IPython's profile go to the test's directory, not the user's home.
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    return "caviar-test"


def test_committed_without_outputs_with_a_tagged_parameters_cell() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    assert "results_dir =" in code[0].source and "sweep =" in code[0].source
    assert all(not cell.outputs and cell.execution_count is None for cell in code)
    assert (NOTEBOOKS / "explore_sweep.py").read_text().count("# %%") >= len(notebook.cells)


def test_runs_under_papermill_against_a_results_directory(
    tmp_path: Path, kernel_name: str, synth
) -> None:
    results = tmp_path / "results"
    synth.write_sweep(results, "bn", n=40, rounds=2)
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(out),
        parameters={"results_dir": str(results), "sweep": "bn"},
        kernel_name=kernel_name,
        cwd=str(tmp_path),
        progress_bar=False,
    )  # raises PapermillExecutionError naming the cell if any cell fails
    executed = nbformat.read(out, as_version=4)
    outputs = [o for cell in executed.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 8  # curves, importance, 4 per-parameter plots, parallel, convergence...
