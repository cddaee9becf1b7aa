"""The ipykernel-compatible surface, checked against the real libraries that rely on it.

ipywidgets' Output widget (``with out:``, ``@out.capture()``, ``interact``) and nbclient's
Output-widget mimic, nbclient's update-display-id notebook pattern (``kernel.iopub_socket`` and
``kernel.session.send``), ``ExecutionInfo.cell_meta``, and the parent API of kernel and shell.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionComplete
from nbformat import NotebookNode, v4

from cokernel_harness.client import BlockingClient
from cokernel_harness.messages import Execution
from helpers import KERNEL_NAME

pytestmark = pytest.mark.timeout(120)


def outputs(cell: Any) -> list[dict[str, Any]]:
    return [dict(output) for output in cell["outputs"]]


def texts(outs: list[Any]) -> str:
    return "".join(str(o.get("text", "")) for o in outs if o.get("output_type") == "stream")


def widget_states(client: NotebookClient, model: str) -> list[dict[str, Any]]:
    return [s for s in client.widget_state.values() if s.get("_model_name") == model]


def run_notebook(cells: list[str]) -> tuple[NotebookNode, NotebookClient]:
    nb = v4.new_notebook()
    nb.cells = [v4.new_code_cell(source) for source in cells]
    client = NotebookClient(nb, kernel_name=KERNEL_NAME, timeout=60, startup_timeout=60)
    client.execute()
    nbformat.validate(nb)
    return nb, client


OUTPUT_SETUP = (
    "from ipywidgets import Output\n"
    "from IPython.display import display, clear_output\n"
    "out = Output()\n"
    "display(out)\n"
    "print('in the cell')"
)


def test_output_widget_captures_prints_displays_errors_and_clears(isolated_env: Path) -> None:
    nb, client = run_notebook(
        [
            OUTPUT_SETUP,
            "with out:\n    print('captured')\n    display('shown')\nprint('after')",
            "with out:\n    raise ValueError('inside the widget')\nprint('went on')",
            "@out.capture()\ndef decorated():\n    print('from capture')\ndecorated()",
        ]
    )
    setup, captured, raised, decorated = nb.cells
    assert texts(outputs(setup)) == "in the cell\n"
    # Only what ran outside the block stays in the cell.
    assert outputs(captured) == [{"output_type": "stream", "name": "stdout", "text": "after\n"}]
    assert outputs(raised) == [{"output_type": "stream", "name": "stdout", "text": "went on\n"}]
    assert outputs(decorated) == []

    [state] = widget_states(client, "OutputModel")
    widget = state["outputs"]
    assert texts(widget[:1]) == "captured\n"
    assert widget[1]["output_type"] == "display_data"
    assert widget[1]["data"]["text/plain"] == "'shown'"
    [error] = [o for o in widget if o["output_type"] == "error"]
    assert error["ename"] == "ValueError"
    assert error["evalue"] == "inside the widget"
    assert "from capture\n" in texts(widget)
    assert state["msg_id"] == ""  # reset when the last block ends


def test_clear_output_inside_the_block_clears_the_widget_not_the_cell(isolated_env: Path) -> None:
    nb, client = run_notebook(
        [
            OUTPUT_SETUP,
            "with out:\n    print('old')",
            "print('cell text')\nwith out:\n    clear_output(wait=True)\n    print('fresh')",
        ]
    )
    assert outputs(nb.cells[2]) == [
        {"output_type": "stream", "name": "stdout", "text": "cell text\n"}
    ]
    [state] = widget_states(client, "OutputModel")
    assert state["outputs"] == [{"output_type": "stream", "name": "stdout", "text": "fresh\n"}]


async def _send_comm_msg_through_nbclient(
    client: NotebookClient, cell_index: int, comm_id: str, state: dict[str, Any]
) -> None:
    """Send a widget update with nbclient's kernel client, and let nbclient itself process the
    iopub messages it causes (its Output-widget mimic registers and uses the capture hooks)."""
    kc = client.kc
    assert kc is not None
    content = {"comm_id": comm_id, "data": {"method": "update", "state": state, "buffer_paths": []}}
    msg = kc.session.msg("comm_msg", content)
    kc.shell_channel.send(msg)
    msg_id = msg["header"]["msg_id"]
    cell = client.nb.cells[cell_index]
    with anyio.fail_after(60):
        while True:
            received = await kc.get_iopub_msg(timeout=60)
            if received["parent_header"].get("msg_id") != msg_id:
                continue
            try:
                client.process_message(received, cell, cell_index)
            except CellExecutionComplete:
                return


def _run_then_change_slider(
    cells: list[str], slider_description: str, value: int
) -> tuple[NotebookNode, NotebookClient]:
    nb = v4.new_notebook()
    nb.cells = [v4.new_code_cell(source) for source in cells]
    client = NotebookClient(nb, kernel_name=KERNEL_NAME, timeout=60, startup_timeout=60)

    async def main() -> None:
        async with client.async_setup_kernel():
            for index, cell in enumerate(nb.cells):
                await client.async_execute_cell(cell, index)
            [slider_id] = [
                comm_id
                for comm_id, state in client.widget_state.items()
                if state.get("_model_name") == "IntSliderModel"
                and state.get("description") == slider_description
            ]
            await _send_comm_msg_through_nbclient(
                client, len(nb.cells) - 1, slider_id, {"value": value}
            )

    anyio.run(main)
    return nb, client


def test_interact_output_after_a_slider_comm_msg_goes_to_its_output_widget(
    isolated_env: Path,
) -> None:
    nb, client = _run_then_change_slider(
        [
            "from ipywidgets import interact\n"
            "@interact(x=(0, 10))\n"
            "def show(x=5):\n"
            "    print('x is', x)",
        ],
        "x",
        7,
    )
    # The first call (during the cell) and the one after the slider moved both went to the
    # interact's Output widget; clear_output(wait=True) replaced the first by the second.
    assert outputs(nb.cells[0])[0]["output_type"] == "display_data"
    assert "x is" not in texts(outputs(nb.cells[0]))
    [state] = widget_states(client, "OutputModel")
    assert texts(state["outputs"]) == "x is 7\n"


def test_interactive_output_after_a_slider_comm_msg_goes_to_its_output_widget(
    isolated_env: Path,
) -> None:
    nb, client = _run_then_change_slider(
        [
            "import ipywidgets as w\n"
            "from IPython.display import display\n"
            "a = w.IntSlider(value=1, description='a')\n"
            "def f(a):\n"
            "    print('a squared', a * a)\n"
            "shown = w.interactive_output(f, {'a': a})\n"
            "display(a, shown)",
        ],
        "a",
        4,
    )
    assert "squared" not in texts(outputs(nb.cells[0]))
    [state] = widget_states(client, "OutputModel")
    assert texts(state["outputs"]) == "a squared 16\n"


def test_update_display_id_through_iopub_socket_and_session_send(isolated_env: Path) -> None:
    # The pattern of nbclient's own update-display-id test notebook: a helper sends its own
    # display messages with the kernel's session on the kernel's iopub socket.
    helper = (
        "ip = get_ipython()\n"
        "def show(obj, display_id, update=False, execute_result=False):\n"
        "    data, md = ip.display_formatter.format(obj)\n"
        "    content = {'data': data, 'metadata': md, 'transient': {'display_id': display_id}}\n"
        "    if execute_result:\n"
        "        kind = 'execute_result'\n"
        "        content['execution_count'] = ip.execution_count\n"
        "    else:\n"
        "        kind = 'update_display_data' if update else 'display_data'\n"
        "    ip.kernel.session.send(ip.kernel.iopub_socket, kind, content, parent=ip.parent_header)"
    )
    nb, _ = run_notebook(
        [
            helper,
            "print('above')\nshow(1, 'here')\nprint('below')",
            "show(2, 'here')\nshow(3, 'there')",
            "show(4, 'there', update=True)\nshow(5, 'result', execute_result=True)",
        ]
    )
    first, second, third = (outputs(cell) for cell in nb.cells[1:])
    # Sent in order with the cell's own prints; later updates rewrite every display of an id.
    assert [o.get("text") or o["data"]["text/plain"] for o in first] == ["above\n", "2", "below\n"]
    assert [o["data"]["text/plain"] for o in second] == ["2", "4"]
    [result] = third
    assert result["output_type"] == "execute_result"
    assert result["data"] == {"text/plain": "5"}


def test_execution_info_carries_the_request_metadata(wire: BlockingClient) -> None:
    registered = wire.run(
        "seen = []\n"
        "get_ipython().events.register('pre_run_cell', lambda info: seen.append(\n"
        "    (info.cell_id, info.cell_meta)))"
    )
    assert registered.status == "ok", registered.reply
    metadata = {"cellId": "cell-42", "tags": ["parameters"], "deletedCells": []}
    assert wire.run("1", metadata=metadata).status == "ok"
    shown = wire.run("print(seen[-2])").stdout
    assert shown == f"('cell-42', {metadata!r})\n"


def test_kernel_and_shell_parent_api(wire: BlockingClient) -> None:
    done = wire.run(
        "ip = get_ipython()\n"
        "k = ip.kernel\n"
        "p = k.get_parent()\n"
        "assert p is not None and p['header']['msg_type'] == 'execute_request'\n"
        "assert ip.get_parent()['header']['msg_id'] == p['header']['msg_id']\n"
        "assert k.get_parent('shell')['header']['msg_id'] == p['header']['msg_id']\n"
        "assert k.get_parent('control') == {}\n"
        "assert k._parent_header['header']['msg_id'] == p['header']['msg_id']\n"
        "assert isinstance(k._parent_ident['shell'], bytes)\n"
        "assert k.execution_count == ip.execution_count\n"
        "assert k.shell is ip\n"
        "assert isinstance(k.session.session, str) and k.session.session\n"
        "assert k.iopub_socket is k.iopub_socket\n"
        "k.log.debug('a line in the kernel log')\n"
        "print(p['header']['msg_id'])"
    )
    assert done.status == "ok", done.reply
    assert done.stdout == f"{done.msg_id}\n"


def test_set_parent_sends_later_output_to_the_other_request(wire: BlockingClient) -> None:
    first = wire.run("ip = get_ipython()\nfirst = ip.get_parent()")
    second = wire.run(
        "print('mine')\n"
        "ip.set_parent(first)\n"
        "print('to the first cell')\n"
        "ip.set_parent(ip.kernel.last_execute.msg)\n"
        "print('mine again')"
    )
    assert second.status == "ok", second.reply
    assert second.stdout == "mine\nmine again\n"
    wire.wait_for(
        lambda r: (
            r.parent_id == first.msg_id
            and r.msg_type == "stream"
            and r.msg["content"]["text"] == "to the first cell\n"
        ),
        what="the output sent to the first cell",
    )


def _comm_opens(execution: Execution, model: str) -> list[str]:
    return [
        m.content["comm_id"]
        for m in execution.of_type("comm_open")
        if m.content["data"].get("state", {}).get("_model_name") == model
    ]


def test_jupyter_ui_poll_async_mode_serves_widget_messages_while_the_cell_polls(
    wire: BlockingClient,
) -> None:
    made = wire.run(
        "import ipywidgets as w\nfrom IPython.display import display\n"
        "box = w.IntText(value=0)\ndisplay(box)"
    )
    assert made.status == "ok", made.reply
    [box] = _comm_opens(made, "IntTextModel")
    polling = wire.execute(
        "from jupyter_ui_poll import ui_events\n"
        "print('polling', flush=True)\n"
        "async with ui_events() as poll:\n"
        "    while box.value != 3:\n"
        "        await poll(10)\n"
        "print('got', box.value)"
    )
    wire.wait_for(
        lambda r: r.parent_id == polling and r.msg_type == "stream",
        what="the polling cell's first print",
    )
    wire.send(
        "shell",
        "comm_msg",
        {"comm_id": box, "data": {"method": "update", "state": {"value": 3}, "buffer_paths": []}},
    )
    done = wire.collect(polling)
    assert done.status == "ok", done.reply
    assert done.stdout == "polling\ngot 3\n"


def test_jupyter_ui_poll_sync_mode_says_why_it_cannot_serve(wire: BlockingClient) -> None:
    done = wire.run(
        "from jupyter_ui_poll import ui_events\nwith ui_events() as poll:\n    poll(2)\n    poll(2)"
    )
    assert done.status == "ok", done.reply
    [said] = [m.content["text"] for m in done.of_type("stream") if m.content["name"] == "stderr"]
    assert "async with ui_events() as poll" in said


def test_ipympl_canvas_answers_a_draw_request_with_an_image(wire: BlockingClient) -> None:
    made = wire.run(
        "%matplotlib widget\nimport matplotlib.pyplot as plt\nfig = plt.figure()\nplt.plot([1, 3, 2])"
    )
    assert made.status == "ok", made.reply
    [canvas] = _comm_opens(made, "MPLCanvasModel")
    asked = wire.send(
        "shell",
        "comm_msg",
        {"comm_id": canvas, "data": {"method": "custom", "content": {"type": "draw"}}},
    )
    wire.status(asked, "idle")
    images = [
        r.msg
        for r in wire.find(lambda r: r.parent_id == asked and r.msg_type == "comm_msg")
        if r.msg["buffers"]
    ]
    assert images, wire.describe()
    assert len(bytes(images[0]["buffers"][0])) > 1000  # the figure's pixels
