"""Record what a real JupyterLab sends to cokernel while a widget is used, per comms setting.

For each value of JupyterLab's "Kernel Comms over subshells" setting this starts a JupyterLab
server (the version pinned in the ``e2e`` extra) with ``COKERNEL_RECORD`` set, opens a notebook
on cokernel in headless Chromium and, from the keyboard: creates and displays an IntSlider,
moves it with ArrowRight three times, runs a cell that observes it, moves it twice more, prints
what the observer saw, then closes the notebook and shuts its kernel down (File menu). The
kernel's record of every message it received is the fixture: ``widgets-<setting>.jsonl``.

    .venv/bin/python tests/e2e/record_jupyterlab.py                  # all three settings
    .venv/bin/python tests/e2e/record_jupyterlab.py --setting perComm --out /tmp/rec

The line format is described in docs/harness.md ("Recording what a real frontend sends").
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
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


def record(setting: str, target: Path, backend: str) -> None:
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
                expect(notebook.output(2)).to_have_text(
                    f"seen [{value - 1}, {value}]\n", timeout=30_000
                )
                close_and_shut_down(notebook, server)
            except Exception:
                shot = target.with_suffix(".failure.png")
                context.pages[0].screenshot(path=str(shot))
                print(f"failed; screenshot in {shot}", file=sys.stderr)
                raise
            finally:
                context.close()
    print(f"{setting}: {target} ({len(target.read_text().splitlines())} messages)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=FIXTURES, help="folder (default: %(default)s)")
    parser.add_argument("--setting", choices=jlab.COMMS_SETTINGS, action="append")
    parser.add_argument("--backend", choices=jlab.BACKENDS, default="asyncio")
    args = parser.parse_args()
    names = ("jupyterlab", "ipywidgets", "jupyterlab_widgets", "jupyter_server", "playwright")
    print(", ".join(f"{name} {version(name)}" for name in names))
    for setting in args.setting or jlab.COMMS_SETTINGS:
        record(setting, args.out / FILE_NAMES[setting], args.backend)


if __name__ == "__main__":
    main()
