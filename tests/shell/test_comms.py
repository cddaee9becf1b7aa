"""Comms over ZMQ, the test playing the browser: open, message, close, info, and errors.

The first tests are the deadlock a sequential kernel cannot escape: a cell awaits a value that
only a later comm_msg delivers.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from cokernel_harness.client import BlockingClient
from cokernel_harness.messages import Received

Msg = dict[str, Any]


def iopub_of(msg_id: str, msg_type: str) -> Callable[[Received], bool]:
    """A predicate: an iopub message of ``msg_type`` whose parent is ``msg_id``."""

    def match(item: Received) -> bool:
        return item.channel == "iopub" and item.parent_id == msg_id and item.msg_type == msg_type

    return match


def result_text(wire: BlockingClient, code: str) -> str:
    """Run ``code`` and return its execute_result's text/plain."""
    execution = wire.run(code)
    assert execution.status == "ok", execution.reply
    results = execution.of_type("execute_result")
    assert len(results) == 1, execution.outputs
    return str(results[0].content["data"]["text/plain"])


def comm_msg(wire: BlockingClient, comm_id: str, data: Msg) -> str:
    return wire.send("shell", "comm_msg", {"comm_id": comm_id, "data": data})


def new_comm_id() -> str:
    return uuid.uuid4().hex


# -- a cell awaiting what a comm delivers ------------------------------------------------------
def test_a_cell_awaits_a_value_that_a_comm_msg_delivers(wire: BlockingClient) -> None:
    cell = wire.execute(
        "import anyio, comm\n"
        "arrived, got = anyio.Event(), []\n"
        "awaited = comm.create_comm(target_name='await-target', data={'ready': True})\n"
        "awaited.on_msg(lambda msg: (got.append(msg['content']['data']['value']), arrived.set()))\n"
        "with anyio.fail_after(60):\n"
        "    await arrived.wait()\n"
        "value = got[0]\n"
        "print('got', value)\n"
        "value"
    )
    opened = wire.wait_for(iopub_of(cell, "comm_open"), what="the cell's comm_open")
    assert opened.msg["content"]["target_name"] == "await-target"
    assert opened.msg["content"]["data"] == {"ready": True}

    # The cell is still running: the kernel must serve this message concurrently with it.
    sent = comm_msg(wire, opened.msg["content"]["comm_id"], {"value": 42})

    execution = wire.collect(cell)
    assert execution.status == "ok", execution.reply
    assert execution.stdout == "got 42\n"
    assert execution.of_type("execute_result")[0].content["data"]["text/plain"] == "42"
    wire.status(sent, "idle")


def test_a_cell_awaits_an_ipywidgets_slider_value_set_by_the_frontend(wire: BlockingClient) -> None:
    cell = wire.execute(
        "import anyio, ipywidgets\n"
        "slider = ipywidgets.IntSlider(value=1)\n"
        "moved = anyio.Event()\n"
        "slider.observe(lambda change: moved.set(), names='value')\n"
        "with anyio.fail_after(60):\n"
        "    await moved.wait()\n"
        "slider.value"
    )
    slider_open = wire.wait_for(
        lambda r: (
            iopub_of(cell, "comm_open")(r)
            and r.msg["content"]["data"]["state"].get("_model_name") == "IntSliderModel"
        ),
        what="the slider's comm_open",
    )
    state = slider_open.msg["content"]["data"]["state"]
    assert slider_open.msg["content"]["target_name"] == "jupyter.widget"
    assert state["value"] == 1

    # What a browser sends when the user drags the slider.
    sent = comm_msg(
        wire,
        slider_open.msg["content"]["comm_id"],
        {"method": "update", "state": {"value": 42}, "buffer_paths": []},
    )

    execution = wire.collect(cell)
    assert execution.status == "ok", execution.reply
    assert execution.of_type("execute_result")[0].content["data"]["text/plain"] == "42"
    wire.status(sent, "idle")
    assert result_text(wire, "slider.value") == "42"


# -- comms the frontend opens ------------------------------------------------------------------
ECHO_TARGET = (
    "import comm\n"
    "echo_opened, echo_closed = [], []\n"
    "def open_echo(c, msg):\n"
    "    echo_opened.append(msg['content']['data'])\n"
    "    c.on_msg(lambda m: c.send({'echo': m['content']['data']}))\n"
    "    c.on_close(lambda m: echo_closed.append(m['content']['data']))\n"
    "    c.send({'ready': True})\n"
    "comm.get_comm_manager().register_target('echo-target', open_echo)"
)


def test_frontend_comm_open_msg_info_and_close(wire: BlockingClient) -> None:
    assert wire.run(ECHO_TARGET).status == "ok"
    comm_id = new_comm_id()

    opening = wire.send(
        "shell",
        "comm_open",
        {"comm_id": comm_id, "target_name": "echo-target", "data": {"hello": 1}},
    )
    ready = wire.wait_for(iopub_of(opening, "comm_msg"), what="the target's first comm_msg")
    assert ready.msg["content"] == {"comm_id": comm_id, "data": {"ready": True}}
    assert result_text(wire, "echo_opened") == "[{'hello': 1}]"

    # A round trip: the kernel's on_msg callback answers through comm.send.
    ping = comm_msg(wire, comm_id, {"ping": 7})
    echo = wire.wait_for(iopub_of(ping, "comm_msg"), what="the echo of the ping")
    assert echo.msg["content"] == {"comm_id": comm_id, "data": {"echo": {"ping": 7}}}

    listed = wire.request("shell", "comm_info_request", {})
    assert listed["status"] == "ok"
    assert listed["comms"][comm_id] == {"target_name": "echo-target"}
    only_echo = wire.request("shell", "comm_info_request", {"target_name": "echo-target"})
    assert set(only_echo["comms"]) == {comm_id}
    other = wire.request("shell", "comm_info_request", {"target_name": "no-such-target"})
    assert other["comms"] == {}

    closing = wire.send("shell", "comm_close", {"comm_id": comm_id, "data": {"bye": True}})
    wire.status(closing, "idle")
    assert result_text(wire, "echo_closed") == "[{'bye': True}]"
    after = wire.request("shell", "comm_info_request", {"target_name": "echo-target"})
    assert after["comms"] == {}


def test_comm_info_lists_comms_the_kernel_opened(wire: BlockingClient) -> None:
    execution = wire.run(
        "import comm\nkernel_side = comm.create_comm(target_name='kernel-side-target')\nkernel_side.comm_id"
    )
    comm_id = execution.of_type("execute_result")[0].content["data"]["text/plain"].strip("'")
    opened = execution.of_type("comm_open")
    assert [m.content["comm_id"] for m in opened] == [comm_id]

    listed = wire.request("shell", "comm_info_request", {"target_name": "kernel-side-target"})
    assert listed["comms"] == {comm_id: {"target_name": "kernel-side-target"}}

    closed = wire.run("kernel_side.close()")
    assert [m.content["comm_id"] for m in closed.of_type("comm_close")] == [comm_id]
    after = wire.request("shell", "comm_info_request", {"target_name": "kernel-side-target"})
    assert after["comms"] == {}


def test_an_exception_in_a_comm_callback_is_an_error_output_and_the_kernel_lives(
    wire: BlockingClient,
) -> None:
    setup = wire.run(
        "import comm\n"
        "def open_failing(c, msg):\n"
        "    def fail(m):\n"
        "        raise RuntimeError('callback failed: ' + str(m['content']['data']['n']))\n"
        "    c.on_msg(fail)\n"
        "comm.get_comm_manager().register_target('failing-target', open_failing)"
    )
    assert setup.status == "ok"
    comm_id = new_comm_id()
    wire.status(
        wire.send(
            "shell", "comm_open", {"comm_id": comm_id, "target_name": "failing-target", "data": {}}
        ),
        "idle",
    )

    failing = comm_msg(wire, comm_id, {"n": 1})
    outputs = [m for m in wire.iopub(failing) if m.msg_type == "error"]

    assert len(outputs) == 1
    assert outputs[0].content["ename"] == "RuntimeError"
    assert outputs[0].content["evalue"] == "callback failed: 1"
    assert result_text(wire, "'still alive'") == "'still alive'"
    # The comm itself still works: the next message fails the same way, on its own.
    again = [m for m in wire.iopub(comm_msg(wire, comm_id, {"n": 2})) if m.msg_type == "error"]
    assert [m.content["evalue"] for m in again] == ["callback failed: 2"]


def test_comm_msgs_sent_while_a_cell_blocks_are_all_handled_in_order_during_it(
    wire: BlockingClient,
) -> None:
    setup = wire.run(
        "import comm, time, threading\n"
        "flood = []\n"
        "def open_flood(c, msg):\n"
        "    c.on_msg(lambda m: flood.append(m['content']['data']['i']))\n"
        "comm.get_comm_manager().register_target('flood-target', open_flood)"
    )
    assert setup.status == "ok"
    comm_id = new_comm_id()
    wire.status(
        wire.send(
            "shell", "comm_open", {"comm_id": comm_id, "target_name": "flood-target", "data": {}}
        ),
        "idle",
    )

    # The cell holds the shell's thread in synchronous code until the whole flood has been
    # handled: the comm lane is lent to a stand-in meanwhile (cokernel.engine._lending). Were comms
    # served only once the cell ends, it would never end.
    blocking = wire.execute(
        "while len(flood) < 1000:\n    time.sleep(0.005)\n"
        "threading.current_thread() is threading.main_thread()"
    )
    wire.wait_for(iopub_of(blocking, "execute_input"), what="the blocking cell starting")
    sent = [comm_msg(wire, comm_id, {"i": i}) for i in range(1000)]

    blocked = wire.collect(blocking, timeout=60)
    assert blocked.status == "ok"
    assert blocked.of_type("execute_result")[0].content["data"]["text/plain"] == "True"
    for msg_id in sent:
        wire.status(msg_id, "idle", timeout=60)
    assert result_text(wire, "flood == list(range(1000))") == "True"


def test_a_silent_cell_broadcasts_its_comms_but_not_its_output(wire: BlockingClient) -> None:
    silent = wire.run(
        "import comm\nprint('hidden')\nquiet = comm.create_comm(target_name='silent-target')",
        silent=True,
    )

    assert silent.status == "ok"
    # Comm messages are not output: a widget made by a silent execute must still reach the page.
    assert [m.msg_type for m in silent.outputs] == ["comm_open"]
    assert silent.of_type("comm_open")[0].content["target_name"] == "silent-target"
