"""Record what a real JupyterLab sends to cokernel, as test fixtures.

``widgets`` (the default): for each value of JupyterLab's "Kernel Comms over subshells"
setting this starts a JupyterLab server (the version pinned in the ``e2e`` extra) with
``COKERNEL_RECORD`` set, opens a notebook on cokernel in headless Chromium and, from the
keyboard: creates and displays an IntSlider, moves it with ArrowRight three times, runs a cell
that observes it, moves it twice more, prints what the observer saw, then closes the notebook
and shuts its kernel down (File menu). The kernel's record of every message it received is the
fixture: ``widgets-<setting>.jsonl``.

``debugger``: writes a cell, switches the debugger on from the notebook's toolbar, clicks the
breakpoint gutter beside line 2, runs the cell, waits for it to stop there, presses Continue,
waits for its output, then closes and shuts down as above: ``debugger.jsonl``.

    .venv/bin/python tests/e2e/record_jupyterlab.py                  # all three settings
    .venv/bin/python tests/e2e/record_jupyterlab.py --setting perComm --out /tmp/rec
    .venv/bin/python tests/e2e/record_jupyterlab.py --flow debugger --out /tmp/rec

The line format is described in docs/harness.md ("Recording what a real frontend sends").
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import jlab
from playwright.sync_api import expect, sync_playwright

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "jupyterlab-4.6"
FILE_NAMES = {
    "perCommTarget": "widgets-per-target.jsonl",
    "perComm": "widgets-per-comm.jsonl",
    "disabled": "widgets-off.jsonl",
}
DEBUGGER_FILE = "debugger.jsonl"
DEBUGGER_CELL = "marker_value = 41\nmarker_value += 1\nprint('done', marker_value)"
SHUTDOWN_TIMEOUT = 30.0


def move_slider(notebook: jlab.Notebook, cell: int, presses: int, start: int) -> int:
    """Press ArrowRight on the slider's handle ``presses`` times, each seen in its readout."""
    output = notebook.output(cell)
    handle = output.locator(".noUi-handle").first
    readout = output.locator(".widget-readout").first
    handle.focus()
    value = start
    for _ in range(presses):
        notebook.page.keyboard.press("ArrowRight")
        value += 1
        expect(readout).to_have_text(str(value), timeout=10_000)
    return value


def close_and_shut_down(notebook: jlab.Notebook, server: jlab.LabServer) -> None:
    """Close and Shut Down Notebook (Ctrl+Shift+Q), confirmed, unsaved changes discarded;
    returns once the server has no kernel left."""
    page = notebook.page
    notebook.cell(0).locator(".jp-InputPrompt").click()
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Shift+Q")
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_be_visible(timeout=30_000)  # "Shut down the notebook's kernel?"
    while dialog.count():  # and possibly "Save your work?": each dialog is accepted
        shown = dialog.first.element_handle()
        dialog.locator("button.jp-mod-accept").last.click()
        shown.wait_for_element_state("hidden", timeout=10_000)  # gone (or detached)
        page.wait_for_function(
            "() => !document.querySelector('.jp-NotebookPanel')"
            " || !!document.querySelector('.jp-Dialog')",
            timeout=30_000,
        )
    expect(page.locator(".jp-NotebookPanel")).to_have_count(0, timeout=30_000)
    deadline = time.monotonic() + SHUTDOWN_TIMEOUT
    while server.api("/api/kernels"):
        if time.monotonic() > deadline:
            raise RuntimeError("the kernel was not shut down")
        time.sleep(0.1)  # polling the server's kernel list, not a timing guess


def play_widgets(notebook: jlab.Notebook) -> None:
    notebook.run_cell(0, "import ipywidgets as w; s = w.IntSlider(value=3); s")
    notebook.wait_cell_done(0)
    value = move_slider(notebook, 0, 3, 3)
    notebook.run_cell(
        1,
        "seen = []\n"
        "s.observe(lambda change: seen.append(change['new']), 'value')\n"
        "print('observing')",
    )
    expect(notebook.output(1)).to_have_text("observing\n", timeout=30_000)
    value = move_slider(notebook, 0, 2, value)
    notebook.run_cell(2, "print('seen', seen)")
    expect(notebook.output(2)).to_have_text(f"seen [{value - 1}, {value}]\n", timeout=30_000)


def play_debugger(notebook: jlab.Notebook) -> None:
    page = notebook.page
    # Switched on as soon as the kernel is idle: the page still asks debugInfo then, and one of
    # those can go out while its initialize is pending (what the fixture is kept for).
    switch = notebook.panel.locator(".jp-DebuggerBugButton").first
    expect(switch).to_be_visible(timeout=30_000)
    switch.click()
    notebook.type_cell(0, DEBUGGER_CELL)
    notebook.click_breakpoint_gutter(0, line=2)
    breakpoints = page.locator(".jp-DebuggerBreakpoints .jp-DebuggerBreakpoint")
    expect(breakpoints).to_have_count(1, timeout=30_000)
    notebook.cell(0).locator(".jp-InputPrompt").click()
    page.keyboard.press("Shift+Enter")
    expect(page.locator(".jp-DebuggerCallstackFrame").first).to_be_visible(timeout=60_000)
    page.locator('[data-command="debugger:continue"]').filter(visible=True).first.click()
    expect(notebook.output(0)).to_have_text("done 42\n", timeout=30_000)
    notebook.wait_cell_done(0)


def record(target: Path, backend: str, play: Callable[[jlab.Notebook], None], setting: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="cokernel-record-") as tmp:
        base = Path(tmp)
        env = {"COKERNEL_RECORD": str(target)}
        with (
            jlab.lab_server(base, comms=setting, env=env) as server,
            sync_playwright() as playwright,
        ):
            context = jlab.launch_browser(playwright, base / "profile")
            try:
                notebook = jlab.open_notebook(context, server, "record.ipynb", backend)
                play(notebook)
                close_and_shut_down(notebook, server)
            except Exception:
                shot = target.with_suffix(".failure.png")
                context.pages[0].screenshot(path=str(shot))
                print(f"failed; screenshot in {shot}", file=sys.stderr)
                raise
            finally:
                context.close()
    print(f"{target} ({len(target.read_text().splitlines())} messages)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=FIXTURES, help="folder (default: %(default)s)")
    parser.add_argument("--setting", choices=jlab.COMMS_SETTINGS, action="append")
    parser.add_argument("--backend", choices=jlab.BACKENDS, default="asyncio")
    parser.add_argument("--flow", choices=("widgets", "debugger"), default="widgets")
    args = parser.parse_args()
    names = ("jupyterlab", "ipywidgets", "jupyterlab_widgets", "jupyter_server", "playwright")
    print(", ".join(f"{name} {version(name)}" for name in names))
    if args.flow == "debugger":
        default = jlab.COMMS_SETTINGS[0]
        record(args.out / DEBUGGER_FILE, args.backend, play_debugger, default)
        return
    for setting in args.setting or jlab.COMMS_SETTINGS:
        record(args.out / FILE_NAMES[setting], args.backend, play_widgets, setting)


if __name__ == "__main__":
    main()
