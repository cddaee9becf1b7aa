"""matplotlib in cokernel: inline figures by default, live windows on a matching GUI host,
ipympl widgets, and a clear refusal for a toolkit the kernel does not run."""

from __future__ import annotations

import base64

import gui_scenarios as scenario
import pytest
from gui_scenarios import KernelPair, LaunchGuiKernel

from cokernel_harness.client import BlockingClient

pytestmark = pytest.mark.timeout(120)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Counts the figure's draws while the cell awaits: a live window redraws through the host loop.
DRAWS_WHILE_AWAITING = (
    "import anyio\n"
    "import matplotlib.pyplot as plt\n"
    "fig, ax = plt.subplots()\n"
    "draws = 0\n"
    "def on_draw(event):\n"
    "    global draws\n"
    "    draws += 1\n"
    "fig.canvas.mpl_connect('draw_event', on_draw)\n"
    "ax.plot([1, 3, 2])\n"
    "fig.canvas.draw_idle()\n"
    "await anyio.sleep(0.5)\n"
    "print(type(fig.canvas).__name__, draws)"
)


@pytest.fixture(scope="module")
def plain_kernel(plain_kernels: LaunchGuiKernel) -> KernelPair:
    return plain_kernels()


def test_a_figure_is_shown_inline_as_png_and_closed_by_default(plain_kernel: KernelPair) -> None:
    wire = BlockingClient(plain_kernel[1])
    drawn = wire.run("import matplotlib.pyplot as plt\nplt.plot([1, 2, 3]);")
    assert drawn.status == "ok", drawn.reply
    displays = drawn.of_type("display_data")
    assert len(displays) == 1, drawn.outputs
    png = base64.b64decode(displays[0].content["data"]["image/png"])
    assert png.startswith(PNG_SIGNATURE)

    after = wire.run("import matplotlib\nprint(matplotlib.get_backend(), plt.get_fignums())")
    assert after.stdout == "module://matplotlib_inline.backend_inline []\n"


def test_matplotlib_widget_opens_an_ipympl_canvas_comm(plain_kernel: KernelPair) -> None:
    wire = BlockingClient(plain_kernel[1])
    made = wire.run("%matplotlib widget\nimport matplotlib.pyplot as plt\nfig = plt.figure()")
    assert made.status == "ok", made.reply
    opens = [m.content for m in made.of_type("comm_open")]
    assert opens, made.outputs
    assert {c["target_name"] for c in opens} == {"jupyter.widget"}
    models = {c["data"]["state"]["_model_name"] for c in opens}
    assert "MPLCanvasModel" in models, models


def test_matplotlib_tk_without_a_host_says_how_to_get_a_tk_kernel(plain_kernel: KernelPair) -> None:
    refused = BlockingClient(plain_kernel[1]).run("%matplotlib tk")
    assert refused.status == "error"
    assert refused.reply["ename"] == "GuiUnavailable"
    assert "cokernel install --name cokernel-tk --host tk" in refused.reply["evalue"]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_matplotlib_tk_on_a_tk_host_draws_live_while_a_cell_awaits(
    tk_kernels: LaunchGuiKernel, backend: str
) -> None:
    wire = BlockingClient(tk_kernels("--host=tk", f"--backend={backend}")[1])
    assert wire.run("%matplotlib tk").status == "ok"
    live = wire.run(DRAWS_WHILE_AWAITING)
    assert live.status == "ok", live.reply
    canvas, draws = live.stdout.split()
    assert canvas == "FigureCanvasTkAgg"
    assert int(draws) > 0, "the figure was not drawn while the cell awaited"
    assert not live.of_type("display_data"), "a live figure must not also be sent inline"


def test_matplotlib_qt_on_a_tk_host_is_refused_before_the_backend_switches(
    tk_kernels: LaunchGuiKernel,
) -> None:
    wire = BlockingClient(tk_kernels("--host=tk")[1])
    refused = wire.run("%matplotlib qt")
    assert refused.status == "error"
    assert "cokernel install --name cokernel-qt --host qt" in refused.reply["evalue"]
    still = wire.run("import matplotlib\nprint(matplotlib.get_backend())")
    assert still.stdout == "module://matplotlib_inline.backend_inline\n"


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_matplotlib_qt_on_a_qt_host_draws_live_while_a_cell_awaits(
    qt_kernels: LaunchGuiKernel, backend: str
) -> None:
    wire = BlockingClient(qt_kernels("--host=qt", f"--backend={backend}")[1])
    assert wire.run("%matplotlib qt").status == "ok"
    live = wire.run(DRAWS_WHILE_AWAITING)
    assert live.status == "ok", live.reply
    canvas, draws = live.stdout.split()
    assert canvas == "FigureCanvasQTAgg"
    assert int(draws) > 0, "the figure was not drawn while the cell awaited"


def test_a_tk_window_and_inline_figures_work_side_by_side(tk_kernels: LaunchGuiKernel) -> None:
    wire = BlockingClient(tk_kernels("--host=tk")[1])
    scenario.open_window(wire, "tk")
    drawn = wire.run("import matplotlib.pyplot as plt\nplt.plot([1, 2, 3]);")
    assert len(drawn.of_type("display_data")) == 1, drawn.outputs
    assert scenario.ticks_while_awaiting(wire) > 0
