"""``%matplotlib`` web backends, ``%gui asyncio``, ``%autoawait`` with the other async library
and ``asyncio.ensure_future`` on trio: each works or says at once what to do (never silent)."""

from __future__ import annotations

import os

import pytest

from cokernel_harness.client import BlockingClient
from helpers import KernelPair

pytestmark = pytest.mark.timeout(120)

BACKEND = os.environ.get("COKERNEL_TEST_BACKEND", "asyncio")
OTHER = "trio" if BACKEND == "asyncio" else "asyncio"


@pytest.mark.parametrize("name", ["notebook", "nbagg"])
def test_matplotlib_notebook_opens_its_figure_comm(fresh_kernel: KernelPair, name: str) -> None:
    wire = BlockingClient(fresh_kernel[1])
    done = wire.run(
        f"%matplotlib {name}\n"
        "import matplotlib, matplotlib.pyplot as plt\n"
        "plt.plot([1, 2, 3])\n"
        "print(type(plt.gcf().canvas).__name__)\n"
        "plt.show()"
    )
    assert done.status == "ok", done.reply
    assert done.stdout == "FigureCanvasNbAgg\n"
    opens = [m.content for m in done.of_type("comm_open")]
    assert [c["target_name"] for c in opens] == ["matplotlib"], done.outputs
    # The browser side of nbagg: matplotlib's javascript, then the figure's display.
    assert any("application/javascript" in m.content["data"] for m in done.of_type("display_data"))


def test_matplotlib_webagg_needs_no_event_loop(fresh_kernel: KernelPair) -> None:
    wire = BlockingClient(fresh_kernel[1])
    done = wire.run("%matplotlib webagg\nimport matplotlib\nprint(matplotlib.get_backend())")
    assert done.status == "ok", done.reply
    assert done.stdout.strip().lower() == "webagg"


def test_gui_asyncio_is_a_no_op_on_asyncio_and_says_what_to_do_on_trio(
    wire: BlockingClient,
) -> None:
    done = wire.run("%gui asyncio")
    if BACKEND == "asyncio":
        assert done.status == "ok", done.reply
        assert done.outputs == [m for m in done.outputs if m.msg_type != "error"]
    else:
        assert done.status == "error"
        assert "cokernel install --name cokernel-asyncio --backend asyncio" in done.reply["evalue"]
    assert wire.run(f"%gui {BACKEND}").status == "ok"


def test_autoawait_with_the_other_library_runs_cells_on_it(wire: BlockingClient) -> None:
    switched = wire.run(f"%autoawait {OTHER}")
    assert switched.status == "ok", switched.reply
    assert f"--backend {OTHER}" in switched.stdout  # says what changed and the native way
    sleeper = "trio.sleep(0)" if OTHER == "trio" else "asyncio.sleep(0)"
    done = wire.run(
        f"import {OTHER}, sniffio\n"
        "async def which():\n"
        f"    await {sleeper}\n"
        "    return sniffio.current_async_library()\n"
        "print(await which())"
    )
    assert done.status == "ok", done.reply
    assert done.stdout == f"{OTHER}\n"
    back = wire.run(f"%autoawait {BACKEND}")
    assert back.status == "ok", back.reply
    native = wire.run(
        "import sniffio, anyio\nawait anyio.sleep(0)\nprint(sniffio.current_async_library())"
    )
    assert native.stdout == f"{BACKEND}\n"


def test_autoawait_with_the_other_library_can_be_interrupted(wire: BlockingClient) -> None:
    assert wire.run(f"%autoawait {OTHER}").status == "ok"
    try:
        sleeper = "trio.sleep(60)" if OTHER == "trio" else "asyncio.sleep(60)"
        msg_id = wire.execute(f"import {OTHER}\nprint('sleeping', flush=True)\nawait {sleeper}")
        wire.wait_for(
            lambda r: r.parent_id == msg_id and r.msg_type == "stream",
            what="the cell's print before it sleeps",
        )
        wire.request("control", "interrupt_request")
        reply = wire.reply_message(msg_id)
        assert reply.msg["content"]["ename"] == "KeyboardInterrupt"
    finally:
        assert wire.run(f"%autoawait {BACKEND}").status == "ok"


def test_asyncio_ensure_future_runs_on_asyncio_and_refuses_at_once_on_trio(
    wire: BlockingClient,
) -> None:
    done = wire.run(
        "import asyncio\n"
        "ran = []\n"
        "async def job():\n"
        "    ran.append(1)\n"
        "task = asyncio.ensure_future(job())"
    )
    if BACKEND == "asyncio":
        assert done.status == "ok", done.reply
        assert wire.run("await task\nprint(ran)").stdout == "[1]\n"
    else:
        assert done.status == "error"
        assert done.reply["ename"] == "RuntimeError"
        assert (
            "cokernel install --name cokernel-asyncio --backend asyncio" in (done.reply["evalue"])
        )
