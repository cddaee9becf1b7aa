"""What every GUI host must do, written once and run against the Tk and the Qt host.

Each function takes a live kernel (its manager and a :class:`~cokernel_harness.client.BlockingClient`) whose user
namespace already holds ``window`` (an open window of the host's toolkit) and ``ticks`` (a
counter that a timer of that toolkit increments every 10 ms): see :data:`WINDOW_CELLS`.
Everything waits on messages; the only clock involved is the kernel's own ``anyio.sleep``
inside cells, during which the toolkit's timer must keep firing.
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections.abc import Callable
from pathlib import Path

from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from cokernel_harness.client import BlockingClient
from helpers import kernel_pid, wait_for_exit

KernelPair = tuple[KernelManager, BlockingKernelClient]
# launch(*kernel_options) -> a started kernel (fixtures tk_kernels, qt_kernels, plain_kernels)
LaunchGuiKernel = Callable[..., KernelPair]

WINDOW_CELLS = {
    "tk": (
        "import tkinter as tk\n"
        "window = tk.Tk()\n"
        "window.title('cokernel gui test')\n"
        "tk.Label(window, text='live').pack()\n"
        "ticks = 0\n"
        "def tick():\n"
        "    global ticks\n"
        "    ticks += 1\n"
        "    window.after(10, tick)\n"
        "window.after(10, tick)\n"
    ),
    "qt": (
        "from PySide6.QtCore import QTimer\n"
        "from PySide6.QtWidgets import QLabel\n"
        "window = QLabel('live')\n"
        "window.show()\n"
        "ticks = 0\n"
        "def tick():\n"
        "    global ticks\n"
        "    ticks += 1\n"
        "timer = QTimer()\n"
        "timer.timeout.connect(tick)\n"
        "timer.start(10)\n"
    ),
}

# Prints how often the GUI timer fired while the cell awaited half a second.
COUNT_TICKS_WHILE_AWAITING = (
    "import anyio\nbefore = ticks\nawait anyio.sleep(0.5)\nprint(ticks - before)"
)


def open_window(wire: BlockingClient, host: str) -> None:
    execution = wire.run(WINDOW_CELLS[host])
    assert execution.status == "ok", execution.reply


def ticks_while_awaiting(wire: BlockingClient) -> int:
    """Run :data:`COUNT_TICKS_WHILE_AWAITING`; how many times the GUI timer fired meanwhile."""
    execution = wire.run(COUNT_TICKS_WHILE_AWAITING)
    assert execution.status == "ok", execution.reply
    return int(execution.stdout)


def banner(wire: BlockingClient) -> str:
    reply = wire.request("control", "kernel_info_request")
    return str(reply["banner"])


def control_and_comms_answer_while_a_cell_awaits(wire: BlockingClient) -> None:
    """A cell waits on a gate that only a comm message opens: kernel_info on control and the
    comm message are answered while it waits, and the GUI timer fires meanwhile."""
    target = f"gui-gate-{uuid.uuid4().hex[:8]}"
    cell = wire.execute(
        "import anyio, comm\n"
        "gate = anyio.Event()\n"
        "before = ticks\n"
        f"gate_comm = comm.create_comm(target_name={target!r}, data={{}})\n"
        "def on_msg(msg):\n"
        "    gate_comm.send({'echo': msg['content']['data']})\n"
        "    gate.set()\n"
        "gate_comm.on_msg(on_msg)\n"
        "await gate.wait()\n"
        "await anyio.sleep(0.5)\n"
        "print(ticks - before)"
    )
    opened = wire.wait_for(
        lambda r: r.parent_id == cell and r.msg_type == "comm_open",
        what="the cell's comm_open",
    )
    info = wire.send("control", "kernel_info_request")
    info_reply = wire.reply_message(info)
    assert info_reply.msg["content"]["status"] == "ok"

    sent = wire.send(
        "shell",
        "comm_msg",
        {"comm_id": opened.msg["content"]["comm_id"], "data": {"open": "sesame"}},
    )
    echo = wire.wait_for(
        lambda r: r.parent_id == sent and r.msg_type == "comm_msg", what="the comm's echo"
    )
    assert echo.msg["content"]["data"] == {"echo": {"open": "sesame"}}

    cell_reply = wire.reply_message(cell)
    assert cell_reply.msg["content"]["status"] == "ok", cell_reply.msg["content"]
    assert wire.index(info_reply) < wire.index(cell_reply), (
        "kernel_info waited for the awaiting cell"
    )
    assert wire.index(echo) < wire.index(cell_reply)
    assert int(wire.collect(cell).stdout) > 0, "the GUI timer did not fire while the cell awaited"


def interrupt_ends_an_awaiting_cell(km: KernelManager, wire: BlockingClient, how: str) -> None:
    """``await anyio.sleep(100)`` ends with KeyboardInterrupt on an interrupt (an
    interrupt_request, or SIGINT while the toolkit idles in C), and the window lives on."""
    marker = f"awaiting-{uuid.uuid4().hex}"
    cell = wire.execute(f"import anyio\nprint({marker!r}, flush=True)\nawait anyio.sleep(100)")
    wire.wait_for(
        lambda r: (
            r.parent_id == cell and r.msg_type == "stream" and marker in r.msg["content"]["text"]
        ),
        what="the cell's start marker",
    )
    if how == "message":
        km.interrupt_kernel()
    else:
        os.kill(kernel_pid(km), signal.SIGINT)
    execution = wire.collect(cell)
    assert execution.status == "error", execution.reply
    assert execution.reply["ename"] == "KeyboardInterrupt"
    assert ticks_while_awaiting(wire) > 0, "the GUI timer stopped after the interrupt"


def gui_magic_accepts_its_host_and_names_the_way_to_another(
    wire: BlockingClient, host: str
) -> None:
    assert wire.run(f"%gui {host}").status == "ok"
    other = "qt" if host == "tk" else "tk"
    refused = wire.run(f"%gui {other}")
    assert refused.status == "error"
    assert refused.reply["ename"] == "GuiUnavailable"
    hint = f"cokernel install --name cokernel-{other} --host {other}"
    assert hint in refused.reply["evalue"]


def shutdown_with_an_open_window_exits_cleanly(
    km: KernelManager, wire: BlockingClient, tmp_path: Path
) -> None:
    """shutdown_request with a window open: the process ends by itself with status 0 through a
    normal interpreter exit (atexit handlers run only then, after every non-daemon thread was
    joined), and no GUI guest thread is left behind."""
    record = tmp_path / f"threads-{uuid.uuid4().hex}.json"
    armed = wire.run(
        "import atexit\n"
        "def record_threads():\n"
        "    import json, threading\n"
        f"    with open({str(record)!r}, 'w') as f:\n"
        "        json.dump([[t.name, t.daemon] for t in threading.enumerate()], f)\n"
        "atexit.register(record_threads)"
    )
    assert armed.status == "ok", armed.reply
    msg_id = wire.send("control", "shutdown_request", {"restart": False})
    assert wire.reply(msg_id)["status"] == "ok"
    assert wait_for_exit(km) == 0
    assert record.exists(), "the kernel did not exit through the interpreter (atexit never ran)"
    threads = json.loads(record.read_text())
    assert [name for name, daemon in threads if not daemon] == ["MainThread"], threads
    assert "cokernel-asyncio-poller" not in {name for name, _ in threads}, threads
