"""The Tk host: Tk's mainloop runs the kernel's loop (asyncio or trio) as its guest.

Real kernel processes on a real X server (Xvfb): a window and a Tk timer (``after``) stay live
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
def tk_kernel(request: pytest.FixtureRequest, tk_kernels: LaunchGuiKernel) -> KernelPair:
    """A Tk-hosted kernel per backend, shared by the module's tests, with a window open."""
    km, kc = tk_kernels("--host=tk", f"--backend={request.param}")
    scenario.open_window(BlockingClient(kc), "tk")
    return km, kc


@pytest.fixture
def wire(tk_kernel: KernelPair) -> BlockingClient:
    return BlockingClient(tk_kernel[1])


def test_banner_says_the_backend_runs_as_a_guest_of_tk(wire: BlockingClient) -> None:
    assert "guest of the tk event loop" in scenario.banner(wire)


def test_a_tk_timer_fires_while_a_cell_awaits(wire: BlockingClient) -> None:
    assert scenario.ticks_while_awaiting(wire) > 0


def test_control_and_comms_are_answered_while_a_cell_awaits(wire: BlockingClient) -> None:
    scenario.control_and_comms_answer_while_a_cell_awaits(wire)


@pytest.mark.parametrize("how", ["message", "signal"])
def test_interrupt_ends_an_awaiting_cell_and_the_window_lives_on(
    tk_kernel: KernelPair, wire: BlockingClient, how: str
) -> None:
    scenario.interrupt_ends_an_awaiting_cell(tk_kernel[0], wire, how)


def test_gui_tk_is_a_no_op_and_gui_qt_says_how_to_get_a_qt_kernel(wire: BlockingClient) -> None:
    scenario.gui_magic_accepts_its_host_and_names_the_way_to_another(wire, "tk")


def test_user_code_ending_tk_mainloop_does_not_stop_the_kernel(wire: BlockingClient) -> None:
    # quit() on any Tk interpreter ends whichever mainloop runs: the host's must go on.
    assert wire.run("window.quit()").status == "ok"
    assert scenario.ticks_while_awaiting(wire) > 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_shutdown_with_an_open_window_ends_the_process_cleanly(
    tk_kernels: LaunchGuiKernel, tmp_path: Path, backend: str
) -> None:
    km, kc = tk_kernels("--host=tk", f"--backend={backend}")
    wire = BlockingClient(kc)
    scenario.open_window(wire, "tk")
    scenario.shutdown_with_an_open_window_exits_cleanly(km, wire, tmp_path)
