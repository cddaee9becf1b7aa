"""A whole notebook executed by nbclient (what `jupyter nbconvert --execute` and papermill use)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbformat import v4

from helpers import KERNEL_NAME


def outputs(cell: Any) -> list[dict[str, Any]]:
    return [dict(output) for output in cell["outputs"]]


def test_nbclient_runs_a_notebook_with_output_display_and_async_cells(
    isolated_env: Path, tmp_path: Path
) -> None:
    nb = v4.new_notebook()
    nb.cells = [
        v4.new_markdown_cell("# A notebook for cokernel"),
        v4.new_code_cell("x = 21\nprint('x is', x)"),
        v4.new_code_cell(
            "from IPython.display import HTML, display\ndisplay(HTML('<p>shown</p>'))\nx * 2"
        ),
        v4.new_code_cell(
            "import anyio\n"
            "doubled = [0] * 4\n"
            "async def double(n):\n"
            "    await anyio.sleep(0)\n"
            "    doubled[n] = n * 2\n"
            "async with anyio.create_task_group() as tasks:\n"
            "    for i in range(4):\n"
            "        tasks.start_soon(double, i)\n"
            "doubled"
        ),
        v4.new_code_cell("import sys\nprint('to stderr', file=sys.stderr)"),
        v4.new_code_cell("handle = display('draft', display_id=True)\nhandle.update('final')"),
        v4.new_code_cell(
            "from IPython.display import clear_output\n"
            "print('old')\n"
            "clear_output(wait=True)\n"
            "print('new')"
        ),
    ]
    path = tmp_path / "small.ipynb"

    NotebookClient(nb, kernel_name=KERNEL_NAME, timeout=60, startup_timeout=60).execute()
    nbformat.write(nb, path)
    done = nbformat.read(path, as_version=4)
    nbformat.validate(done)

    code_cells = [cell for cell in done.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code_cells] == [1, 2, 3, 4, 5, 6]
    printed, displayed, gathered, warned, updated, cleared = code_cells

    assert outputs(printed) == [{"output_type": "stream", "name": "stdout", "text": "x is 21\n"}]

    html, result = outputs(displayed)
    assert html["output_type"] == "display_data"
    assert html["data"]["text/html"] == "<p>shown</p>"
    assert result["output_type"] == "execute_result"
    assert result["data"] == {"text/plain": "42"}
    assert result["execution_count"] == 2

    [awaited] = outputs(gathered)
    assert awaited["output_type"] == "execute_result"
    assert awaited["data"] == {"text/plain": "[0, 2, 4, 6]"}

    assert outputs(warned) == [{"output_type": "stream", "name": "stderr", "text": "to stderr\n"}]

    # nbclient applies update_display_data to the output it names.
    [shown] = outputs(updated)
    assert shown["output_type"] == "display_data"
    assert shown["data"] == {"text/plain": "'final'"}

    assert outputs(cleared) == [{"output_type": "stream", "name": "stdout", "text": "new\n"}]
    assert done.cells[0].cell_type == "markdown"
