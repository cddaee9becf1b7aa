"""cokernel in a real JupyterLab (the version pinned in the ``e2e`` extra), in headless Chromium.

Cells are typed and run from the keyboard (Shift+Enter); what the page shows is checked with
playwright's waits on page state, never with sleeps. Each test runs on the asyncio and the trio
kernelspec (``backend`` fixture). Run alone: ``.venv/bin/python -m pytest tests/e2e``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

pytest.importorskip("jupyterlab", reason="the e2e extra is missing: bash ci/install-e2e.sh")
pytest.importorskip("playwright", reason="the e2e extra is missing: bash ci/install-e2e.sh")

from jlab import COMMS_SETTINGS, LabServer, Notebook, OpenNotebook
from playwright.sync_api import expect

pytestmark = pytest.mark.timeout(180)

SECOND = 1000  # playwright timeouts are in milliseconds


def press_right(notebook: Notebook, cell: int, expected_readout: str) -> None:
    """Focus the slider's handle in ``cell``'s output and press ArrowRight once."""
    handle = notebook.output(cell).locator(".noUi-handle").first
    readout = notebook.output(cell).locator(".widget-readout").first
    handle.focus()
    notebook.page.keyboard.press("ArrowRight")
    expect(readout).to_have_text(expected_readout, timeout=10 * SECOND)


def wait_for_file(path: Path, content: str, timeout: float = 30.0) -> None:
    """Wait until the kernel wrote ``content`` to ``path`` (a file is the kernel's signal)."""
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text(encoding="utf-8") == content):
        if time.monotonic() > deadline:
            found = path.read_text(encoding="utf-8") if path.exists() else "(no file)"
            raise AssertionError(f"{path} never held {content!r}; it holds {found!r}")
        time.sleep(0.05)  # polling the file the kernel writes, not a timing guess


def test_print_html_and_a_slider_render(notebook: Notebook) -> None:
    notebook.run_cell(0, "print('hello from', 'cokernel')")
    expect(notebook.output(0)).to_have_text("hello from cokernel\n", timeout=30 * SECOND)
    notebook.run_cell(1, "from IPython.display import HTML\nHTML('<b class=\"e2e-bold\">bold</b>')")
    expect(notebook.output(1).locator("b.e2e-bold")).to_have_text("bold", timeout=30 * SECOND)
    notebook.run_cell(2, "import ipywidgets as w; w.IntSlider(value=7, description='seven')")
    expect(notebook.output(2).locator(".widget-slider .noUi-handle")).to_be_visible(
        timeout=30 * SECOND
    )
    expect(notebook.output(2).locator(".widget-readout")).to_have_text("7")
    expect(notebook.output(2).locator(".widget-label")).to_have_text("seven")
    notebook.wait_cell_done(2)
    notebook.step("rendered")


def await_slider_cell(backend: str) -> str:
    """A cell that awaits the slider's next value: an asyncio future, or an anyio stream."""
    if backend == "asyncio":
        return (
            "import asyncio\n"
            "fut = asyncio.get_running_loop().create_future()\n"
            "s.observe(lambda ch: fut.done() or fut.set_result(ch['new']), 'value')\n"
            "print('waiting for the slider')\n"
            "print('got', await asyncio.wait_for(fut, 20))"
        )
    return (
        "import anyio\n"
        "send, receive = anyio.create_memory_object_stream(1)\n"
        "s.observe(lambda ch: send.send_nowait(ch['new']), 'value')\n"
        "print('waiting for the slider')\n"
        "with anyio.fail_after(20):\n"
        "    print('got', await receive.receive())"
    )


@pytest.mark.parametrize("comms", COMMS_SETTINGS)
def test_a_cell_awaits_the_slider_moved_by_keyboard(
    open_notebook: OpenNotebook, backend: str, comms: str
) -> None:
    notebook = open_notebook(comms=comms)
    notebook.run_cell(0, "import ipywidgets as w; s = w.IntSlider(value=3); s")
    expect(notebook.output(0).locator(".noUi-handle")).to_be_visible(timeout=30 * SECOND)
    notebook.wait_cell_done(0)
    notebook.run_cell(1, await_slider_cell(backend))
    expect(notebook.output(1).first).to_have_text("waiting for the slider\n", timeout=30 * SECOND)
    notebook.wait_cell_running(1)
    notebook.step("waiting")
    press_right(notebook, 0, "4")
    expect(notebook.output(1)).to_have_text(
        re.compile(r"waiting for the slider\s+got 4\s*$"), timeout=15 * SECOND
    )
    notebook.wait_cell_done(1)
    notebook.step("got")


def test_a_slider_moved_while_a_cell_sleeps_is_handled_before_it_ends(
    notebook: Notebook, lab: LabServer
) -> None:
    seen, gate = lab.root / f"seen-{notebook.backend}", lab.root / f"gate-{notebook.backend}"
    for path in (seen, gate):
        path.unlink(missing_ok=True)
    notebook.run_cell(
        0,
        "import ipywidgets as w, pathlib\n"
        "s = w.IntSlider(value=3)\n"
        f"seen = pathlib.Path({str(seen)!r})\n"
        "s.observe(lambda ch: seen.write_text(str(ch['new'])), 'value')\n"
        "s",
    )
    expect(notebook.output(0).locator(".noUi-handle")).to_be_visible(timeout=30 * SECOND)
    notebook.wait_cell_done(0)
    notebook.run_cell(
        1,
        "import os, time\n"
        "print('blocking')\n"
        f"while not os.path.exists({str(gate)!r}):\n"
        "    time.sleep(0.05)\n"
        "print('gate open, seen', seen.read_text())",
    )
    expect(notebook.output(1)).to_have_text("blocking\n", timeout=30 * SECOND)
    notebook.wait_cell_running(1)
    press_right(notebook, 0, "4")
    wait_for_file(seen, "4")  # the observer ran while the cell still blocks in time.sleep
    expect(notebook.cell(1).locator(".jp-InputPrompt")).to_have_text("[*]:")
    notebook.step("handled-while-blocked")
    gate.write_text("open")
    expect(notebook.output(1)).to_have_text(
        re.compile(r"blocking\s+gate open, seen 4\s*$"), timeout=30 * SECOND
    )
    notebook.wait_cell_done(1)


def interrupt(notebook: Notebook, cell: int) -> None:
    notebook.toolbar_button("notebook:interrupt-kernel").click()
    expect(notebook.output(cell).last).to_contain_text("KeyboardInterrupt", timeout=30 * SECOND)
    notebook.wait_cell_done(cell)


def test_interrupt_from_the_toolbar_stops_a_sleeping_and_an_awaiting_cell(
    notebook: Notebook, backend: str
) -> None:
    notebook.run_cell(0, "import time\nprint('sleeping')\ntime.sleep(60)")
    expect(notebook.output(0)).to_have_text("sleeping\n", timeout=30 * SECOND)
    notebook.wait_cell_running(0)
    interrupt(notebook, 0)
    notebook.step("sleep-interrupted")
    sleeper = "asyncio" if backend == "asyncio" else "anyio"
    notebook.run_cell(1, f"import {sleeper}\nprint('awaiting')\nawait {sleeper}.sleep(60)")
    expect(notebook.output(1).first).to_have_text("awaiting\n", timeout=30 * SECOND)
    notebook.wait_cell_running(1)
    interrupt(notebook, 1)
    notebook.step("await-interrupted")
    notebook.run_cell(2, "print('still alive')")
    expect(notebook.output(2)).to_have_text("still alive\n", timeout=30 * SECOND)


def test_input_is_answered_in_its_box(notebook: Notebook) -> None:
    notebook.run_cell(0, "name = input('your name? ')\nprint('hello', name)")
    box = notebook.output(0).locator(".jp-Stdin-input")
    expect(box).to_be_visible(timeout=30 * SECOND)
    notebook.step("asked")
    box.focus()
    notebook.page.keyboard.type("cokernel")
    notebook.page.keyboard.press("Enter")
    expect(notebook.output(0).last).to_have_text("hello cokernel\n", timeout=30 * SECOND)
    notebook.wait_cell_done(0)


def test_matplotlib_inline_and_ipympl_figures(notebook: Notebook) -> None:
    notebook.run_cell(
        0, "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('inline')\nplt.show()"
    )
    image = notebook.output(0).locator("img")
    expect(image).to_be_visible(timeout=60 * SECOND)
    assert (image.get_attribute("src") or "").startswith("data:image/png")
    notebook.run_cell(
        1,
        "%matplotlib widget\n"
        "import matplotlib.pyplot as plt\n"
        "fig = plt.figure()\n"
        "plt.plot([1, 2, 3])\n"
        "plt.show()",
    )
    canvas = notebook.output(1).locator(".jupyter-matplotlib canvas").first
    expect(canvas).to_be_visible(timeout=60 * SECOND)
    notebook.wait_cell_done(1)
    notebook.step("figures")


def test_the_debugger_stops_at_a_breakpoint_shows_variables_and_continues(
    open_notebook: OpenNotebook,
) -> None:
    # The notebook already holds the cell, and the debugger is switched on as soon as the kernel
    # is idle, as by a user who opens a notebook to debug it. The page is still asking debugInfo
    # then, and one can reach the kernel between its initialize and attach (the page believes
    # its isStarted: docs/debugger.md). No edit is made with the debugger on: an edit arms the
    # page's editor monitor, which re-sends the editor's breakpoints 1 s after the last
    # keystroke and could overwrite the clicked one while its requests are still under way.
    notebook = open_notebook(
        cells=["marker_value = 41\nmarker_value += 1\nprint('done', marker_value)"]
    )
    page = notebook.page
    switch = notebook.panel.locator(".jp-DebuggerBugButton").first
    expect(switch).to_be_visible(timeout=30 * SECOND)
    switch.click()
    expect(switch).to_have_attribute("aria-pressed", "true", timeout=30 * SECOND)
    notebook.click_breakpoint_gutter(0, line=2)
    # JupyterLab lists a breakpoint in its Breakpoints panel once the kernel has answered its
    # setBreakpoints: only then may the cell run (the request travels on the control channel,
    # the execution on shell; run sooner, the cell can finish before the breakpoint exists).
    breakpoints = page.locator(".jp-DebuggerBreakpoints .jp-DebuggerBreakpoint")
    expect(breakpoints).to_have_count(1, timeout=30 * SECOND)
    expect(breakpoints.locator(".jp-DebuggerBreakpoint-line")).to_have_text("2")
    notebook.step("breakpoint")
    # The switch has the focus: select the cell, then run it.
    notebook.cell(0).locator(".jp-InputPrompt").click()
    page.keyboard.press("Shift+Enter")
    # Stopped: a frame in the call stack and line 2 highlighted in the cell. (The Variables
    # panel alone says nothing: with the debugger on it also lists the globals after a cell
    # ran to its end.)
    expect(page.locator(".jp-DebuggerCallstackFrame").first).to_be_visible(timeout=60 * SECOND)
    expect(notebook.cell(0).locator(".jp-DebuggerEditor-highlight")).to_have_text(
        "marker_value += 1", timeout=30 * SECOND
    )
    variables = page.locator(".jp-DebuggerVariables")
    expect(variables).to_contain_text("marker_value", timeout=30 * SECOND)
    expect(variables).to_contain_text("41")
    notebook.step("stopped")
    # The callstack panel's "Continue" button.
    page.locator('[data-command="debugger:continue"]').filter(visible=True).first.click()
    expect(notebook.output(0)).to_have_text("done 42\n", timeout=30 * SECOND)
    notebook.wait_cell_done(0)
    notebook.step("continued")


def test_restart_from_the_toolbar_while_a_cell_runs(notebook: Notebook) -> None:
    notebook.run_cell(0, "import time\nrestart_marker = 1\nprint('running')\ntime.sleep(60)")
    expect(notebook.output(0)).to_have_text("running\n", timeout=30 * SECOND)
    notebook.wait_cell_running(0)
    notebook.toolbar_button("notebook:restart-kernel").click()
    dialog = notebook.page.locator(".jp-Dialog")
    expect(dialog).to_be_visible(timeout=10 * SECOND)
    notebook.step("restart-dialog")
    dialog.locator("button.jp-mod-accept").click()
    expect(notebook.cell(0).locator(".jp-InputPrompt")).not_to_have_text(
        "[*]:", timeout=60 * SECOND
    )
    notebook.wait_kernel_idle()
    # A fresh kernel: the first cell's variable is gone.
    notebook.run_cell(1, "print('after restart', 'restart_marker' in dir())")
    expect(notebook.output(1)).to_have_text("after restart False\n", timeout=60 * SECOND)
    notebook.step("after-restart")
