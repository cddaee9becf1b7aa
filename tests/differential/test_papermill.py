"""papermill on cokernel: parameters injected after the tagged cell, outputs recorded, errors kept.

papermill drives nbclient with its own engine (a NotebookClient subclass that records progress
in the notebook's metadata as cells run), so this is a second real client of the kernel.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import papermill
import pytest
from nbformat import v4

from helpers import KERNEL_NAME


def _notebook(path: Path) -> Path:
    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": KERNEL_NAME,
        "display_name": "cokernel",
        "language": "python",
    }
    nb.cells = [
        v4.new_code_cell("rows = 2\nlabel = 'default'", metadata={"tags": ["parameters"]}),
        v4.new_code_cell("print(label * rows)\nrows * 10"),
        v4.new_code_cell(
            "from IPython.display import Markdown\nMarkdown(f'**{label}**')",
        ),
    ]
    nbformat.write(nb, path)
    return path


@pytest.mark.timeout(180)
def test_papermill_injects_parameters_and_records_outputs(
    isolated_env: Path, tmp_path: Path
) -> None:
    source = _notebook(tmp_path / "params.ipynb")
    target = tmp_path / "out.ipynb"

    papermill.execute_notebook(
        str(source),
        str(target),
        parameters={"rows": 3, "label": "ab"},
        kernel_name=KERNEL_NAME,
        cwd=str(tmp_path),
        progress_bar=False,
        start_timeout=60,
        execution_timeout=60,
    )

    done = nbformat.read(target, as_version=4)
    nbformat.validate(done)
    tags = [cell.metadata.get("tags", []) for cell in done.cells]
    assert tags[:2] == [["parameters"], ["injected-parameters"]]
    assert "rows = 3" in done.cells[1].source
    printed, shown = done.cells[2].outputs, done.cells[3].outputs
    assert [(o["output_type"], o.get("text")) for o in printed] == [
        ("stream", "ababab\n"),
        ("execute_result", None),
    ]
    assert printed[1]["data"] == {"text/plain": "30"}
    assert shown[0]["data"]["text/markdown"] == "**ab**"
    assert done.metadata["papermill"]["parameters"] == {"rows": 3, "label": "ab"}
    assert all(cell.metadata["papermill"]["status"] == "completed" for cell in done.cells)


@pytest.mark.timeout(180)
def test_papermill_reports_a_failing_cell(isolated_env: Path, tmp_path: Path) -> None:
    source = _notebook(tmp_path / "params.ipynb")
    target = tmp_path / "out.ipynb"

    with pytest.raises(papermill.PapermillExecutionError) as failed:
        papermill.execute_notebook(
            str(source),
            str(target),
            parameters={"rows": None, "label": "ab"},
            kernel_name=KERNEL_NAME,
            cwd=str(tmp_path),
            progress_bar=False,
            start_timeout=60,
            execution_timeout=60,
        )

    assert failed.value.ename == "TypeError"
    done = nbformat.read(target, as_version=4)
    code = [cell for cell in done.cells if cell.cell_type == "code"]
    statuses = [cell.metadata["papermill"]["status"] for cell in code]
    # papermill adds error banner cells (markdown); among the code cells, the failing one is
    # marked failed and the ones after it stay pending.
    assert statuses == ["completed", "completed", "failed", "pending"]
    [error] = [o for o in code[2].outputs if o["output_type"] == "error"]
    assert error["ename"] == "TypeError"
