"""The Qt host: a QApplication's event loop runs the kernel's loop (asyncio or trio) as its guest.

Real kernel processes with real Qt (PySide6) drawing offscreen: a widget and a QTimer stay live
while cells await, and the kernel stays as concurrent as without a host.
"""

from __future__ import annotations

from pathlib import Path

import gui_scenarios as scenario
import pytest
from gui_scenarios import KernelPair, LaunchGuiKernel

from cokernel_harness.client import BlockingClient

pytestmark = pytest.mark.timeout(120)

BACKENDS = ["asyncio", "trio"]


@pytest.fixture(scope="module", params=BACKENDS)
def qt_kernel(request: pytest.FixtureRequest, qt_kernels: LaunchGuiKernel) -> KernelPair:
    """A Qt-hosted kernel per backend, shared by the module's tests, with a widget shown."""
    km, kc = qt_kernels("--host=qt", f"--backend={request.param}")
    scenario.open_window(BlockingClient(kc), "qt")
    return km, kc


@pytest.fixture
def wire(qt_kernel: KernelPair) -> BlockingClient:
    return BlockingClient(qt_kernel[1])


def test_banner_says_the_backend_runs_as_a_guest_of_qt(wire: BlockingClient) -> None:
    assert "guest of the qt event loop" in scenario.banner(wire)


def test_a_qtimer_fires_while_a_cell_awaits(wire: BlockingClient) -> None:
    assert scenario.ticks_while_awaiting(wire) > 0


def test_control_and_comms_are_answered_while_a_cell_awaits(wire: BlockingClient) -> None:
    scenario.control_and_comms_answer_while_a_cell_awaits(wire)


@pytest.mark.parametrize("how", ["message", "signal"])
def test_interrupt_ends_an_awaiting_cell_and_the_widget_lives_on(
    qt_kernel: KernelPair, wire: BlockingClient, how: str
) -> None:
    scenario.interrupt_ends_an_awaiting_cell(qt_kernel[0], wire, how)


def test_gui_qt_is_a_no_op_and_gui_tk_says_how_to_get_a_tk_kernel(wire: BlockingClient) -> None:
    scenario.gui_magic_accepts_its_host_and_names_the_way_to_another(wire, "qt")


def test_closing_the_last_window_or_quitting_the_app_does_not_stop_the_kernel(
    wire: BlockingClient,
) -> None:
    closed = wire.run(
        "from PySide6.QtWidgets import QApplication\nwindow.close()\nQApplication.quit()"
    )
    assert closed.status == "ok", closed.reply
    assert scenario.ticks_while_awaiting(wire) > 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_shutdown_with_an_open_window_ends_the_process_cleanly(
    qt_kernels: LaunchGuiKernel, tmp_path: Path, backend: str
) -> None:
    km, kc = qt_kernels("--host=qt", f"--backend={backend}")
    wire = BlockingClient(kc)
    scenario.open_window(wire, "qt")
    scenario.shutdown_with_an_open_window_exits_cleanly(km, wire, tmp_path)
