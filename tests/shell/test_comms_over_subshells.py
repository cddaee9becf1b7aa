"""Comm messages on subshells, as JupyterLab >= 4.4 sends them, run where their comm lives.

JupyterLab sends every comm message of a kernel that supports subshells on a subshell of its
own (one per comm target by default). A widget made by a main-shell cell still belongs to the
main shell: its handlers run on the main shell's loop when that loop can take them (idle, or a
cell awaiting), and on a stand-in while a main-shell cell is stuck in synchronous code, with the
main loop borrowed so that what they do to its futures and events takes effect there.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from cokernel_harness.client import BlockingClient
from cokernel_harness.messages import Received
from helpers import TRIO

pytestmark = pytest.mark.timeout(120)


def make_subshell(wire: BlockingClient) -> str:
    reply = wire.reply_message(wire.send("control", "create_subshell_request", {}))
    assert reply.msg["content"]["status"] == "ok", reply.msg["content"]
    return str(reply.msg["content"]["subshell_id"])


def slider_of(wire: BlockingClient, cell: str) -> str:
    opened = wire.wait_for(
        lambda r: (
            r.channel == "iopub"
            and r.parent_id == cell
            and r.msg_type == "comm_open"
            and r.msg["content"]["data"]["state"].get("_model_name") == "IntSliderModel"
        ),
        what="the slider's comm_open",
    )
    return str(opened.msg["content"]["comm_id"])


def move(wire: BlockingClient, comm_id: str, value: int, subshell_id: str | None) -> str:
    """What JupyterLab sends when the user moves a slider: an update, on the comm's subshell."""
    return wire.send(
        "shell",
        "comm_msg",
        {
            "comm_id": comm_id,
            "data": {"method": "update", "state": {"value": value}, "buffer_paths": []},
        },
        subshell_id=subshell_id,
    )


def text(wire: BlockingClient, code: str) -> str:
    execution = wire.run(code)
    assert execution.status == "ok", execution.reply
    return str(execution.of_type("execute_result")[0].content["data"]["text/plain"])


def started(wire: BlockingClient, cell: str) -> Received:
    return wire.wait_for(
        lambda r: r.channel == "iopub" and r.parent_id == cell and r.msg_type == "execute_input",
        what="the cell starting",
    )


@dataclass
class Slider:
    """A slider ``s`` (value 3) a main-shell cell made, and a subshell for its comm messages."""

    comm_id: str
    subshell: str


@pytest.fixture
def slider(wire: BlockingClient) -> Slider:
    subshell = make_subshell(wire)
    made = wire.execute("import ipywidgets as w\ns = w.IntSlider(value=3)\ns")
    comm_id = slider_of(wire, made)
    assert wire.collect(made).status == "ok"
    return Slider(comm_id, subshell)


def setup(wire: BlockingClient, code: str) -> None:
    execution = wire.run(code)
    assert execution.status == "ok", execution.reply


def test_a_cell_awaiting_a_slider_wakes_when_its_change_comes_on_a_subshell(
    wire: BlockingClient, slider: Slider
) -> None:
    cell = wire.execute(
        "import anyio, threading\n"
        "moved = anyio.Event()\n"
        "where = []\n"
        "def on_change(change):\n"
        "    where.append(threading.current_thread() is threading.main_thread())\n"
        "    moved.set()\n"
        "s.observe(on_change, 'value')\n"
        "with anyio.fail_after(60):\n"
        "    await moved.wait()\n"
        "s.value, where"
    )
    started(wire, cell)
    sent = move(wire, slider.comm_id, 4, slider.subshell)
    execution = wire.collect(cell)
    assert execution.status == "ok", execution.reply
    # The observer ran on the main shell's loop, where the widget lives, not on the subshell.
    assert execution.of_type("execute_result")[0].content["data"]["text/plain"] == "(4, [True])"
    wire.status(sent, "idle")


@pytest.mark.skipif(TRIO, reason="asyncio futures need the asyncio backend")
def test_the_jupyterlab_widget_await_cells_print_got_4(
    wire: BlockingClient, slider: Slider
) -> None:
    cell = wire.execute(
        "import asyncio\n"
        "fut = asyncio.get_running_loop().create_future()\n"
        "def on_change(change):\n"
        "    if not fut.done(): fut.set_result(change['new'])\n"
        "s.observe(on_change, 'value')\n"
        "print('waiting for the slider')\n"
        "print('got', await asyncio.wait_for(fut, 20))"
    )
    started(wire, cell)
    move(wire, slider.comm_id, 4, slider.subshell)
    execution = wire.collect(cell)
    assert execution.status == "ok", execution.reply
    assert execution.stdout == "waiting for the slider\ngot 4\n"


def test_a_slider_moved_while_the_main_cell_sleeps_is_handled_before_the_cell_ends(
    wire: BlockingClient, slider: Slider
) -> None:
    setup(
        wire,
        "import time\nseen = []\ns.observe(lambda change: seen.append(change['new']), 'value')",
    )
    # Held in time.sleep until the slider's change has been handled: with comms served only
    # after the cell, it would never end.
    cell = wire.execute("while not seen:\n    time.sleep(0.01)\nseen")
    started(wire, cell)
    sent = move(wire, slider.comm_id, 7, slider.subshell)
    execution = wire.collect(cell)
    assert execution.status == "ok", execution.reply
    assert execution.of_type("execute_result")[0].content["data"]["text/plain"] == "[7]"
    wire.status(sent, "idle")
    assert text(wire, "s.value") == "7"


def test_an_event_set_by_a_widget_while_the_cell_sleeps_wakes_its_waiter_afterwards(
    wire: BlockingClient, slider: Slider
) -> None:
    setup(
        wire,
        "import time, anyio\n"
        "moved, seen = anyio.Event(), []\n"
        "def on_change(change):\n"
        "    seen.append(change['new'])\n"
        "    moved.set()  # an event of the main loop, set while that loop is stuck\n"
        "s.observe(on_change, 'value')",
    )
    cell = wire.execute(
        "while not seen:\n    time.sleep(0.01)\n"
        "with anyio.fail_after(20):\n    await moved.wait()\n"
        "seen"
    )
    started(wire, cell)
    move(wire, slider.comm_id, 5, slider.subshell)
    execution = wire.collect(cell)
    assert execution.status == "ok", execution.reply
    assert not execution.of_type("error")
    assert execution.of_type("execute_result")[0].content["data"]["text/plain"] == "[5]"


def test_a_widget_a_subshell_cell_made_lives_on_that_subshell(wire: BlockingClient) -> None:
    subshell = make_subshell(wire)
    made = wire.run(
        "import threading, ipywidgets as w\n"
        "t = w.IntSlider(value=1)\nthreads = []\n"
        "t.observe(lambda change: threads.append(threading.current_thread().name), 'value')\n"
        "threading.current_thread().name",
        subshell_id=subshell,
    )
    assert made.status == "ok", made.reply
    home = made.of_type("execute_result")[0].content["data"]["text/plain"]
    (comm_id,) = (
        str(m.content["comm_id"])
        for m in made.of_type("comm_open")
        if m.content["data"]["state"].get("_model_name") == "IntSliderModel"
    )
    wire.status(move(wire, comm_id, 2, None), "idle")  # sent on the main shell
    assert text(wire, "threads") == f"[{home}]"


def test_a_close_sent_on_a_subshell_deleted_before_it_arrives_still_closes_the_comm(
    wire: BlockingClient, slider: Slider
) -> None:
    # JupyterLab closes a comm on the comm's subshell and deletes that subshell at once; the
    # deletion (control) may be served before the close (shell) arrives.
    subshell, comm_id = slider.subshell, slider.comm_id
    deleted = wire.reply_message(
        wire.send("control", "delete_subshell_request", {"subshell_id": subshell})
    )
    assert deleted.msg["content"]["status"] == "ok"
    closed = wire.send(
        "shell", "comm_close", {"comm_id": comm_id, "data": {}}, subshell_id=subshell
    )
    wire.status(closed, "idle")
    assert text(wire, f"{comm_id!r} in get_ipython().kernel.comm_manager.comms") == "False"
