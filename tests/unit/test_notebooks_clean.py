"""The notebooks are committed without outputs (nbstripout): no results, execution counts or stale widget
state in the diff, and nothing of a local run (paths, keys, bucket names) in the repository."""

from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_the_notebooks_folder_holds_the_explore_and_analysis_notebooks():
    assert {"explore.ipynb", "analysis.ipynb", "replay.ipynb"} <= {path.name for path in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_a_committed_notebook_has_no_outputs_or_execution_counts(path: Path):
    notebook = nbformat.read(path, as_version=4)

    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    with_outputs = [i for i, cell in enumerate(code) if cell.outputs]
    counted = [i for i, cell in enumerate(code) if cell.execution_count is not None]

    assert code, f"{path.name} has no code cells"
    assert not with_outputs, f"{path.name}: code cells {with_outputs} have outputs; run nbstripout {path.name}"
    assert not counted, f"{path.name}: code cells {counted} have execution counts; run nbstripout {path.name}"
    assert "widgets" not in notebook.metadata, f"{path.name} carries widget state; run nbstripout {path.name}"
