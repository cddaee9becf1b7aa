"""A real JupyterLab server and a headless Chromium page on it, for the e2e suite and recordings.

Everything lives in one temporary folder: the server's root dir, Jupyter's config, data and
runtime dirs, IPython's dir, JupyterLab's user settings and workspaces, and the browser's
profile. The server listens on a free localhost port with a random token. Two cokernel
kernelspecs are written into the data dir: ``co-asyncio`` and ``co-trio``.

Used by ``tests/e2e/conftest.py`` and ``tests/e2e/record_jupyterlab.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import BrowserContext, Locator, Page, Playwright, expect

from cokernel.kernelspec import make_spec
from cokernel.options import KernelOptions

CHROMIUM = os.environ.get("COKERNEL_E2E_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The values of JupyterLab's "Kernel Comms over subshells" setting
# (@jupyterlab/apputils-extension:kernels-settings, commsOverSubshells); the default first.
COMMS_SETTINGS = ("perCommTarget", "perComm", "disabled")
BACKENDS = ("asyncio", "trio")
SERVER_START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kernel_name(backend: str) -> str:
    return f"co-{backend}"


def display_name(backend: str) -> str:
    return f"cokernel {backend}"


def write_kernelspecs(kernels_dir: Path) -> None:
    """``co-asyncio`` and ``co-trio``: cokernel on each backend, started by this Python."""
    for backend in BACKENDS:
        name = kernel_name(backend)
        options = KernelOptions(backend=backend)  # type: ignore[arg-type]
        spec = make_spec(name, display_name(backend), options)
        spec["argv"][0] = sys.executable
        folder = kernels_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "kernel.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")


def write_user_settings(settings_dir: Path, comms: str) -> None:
    """JupyterLab user settings: the comms-over-subshells value, and no network chatter."""
    settings: dict[str, dict[str, Any]] = {
        "@jupyterlab/apputils-extension/kernels-settings": {"commsOverSubshells": comms},
        "@jupyterlab/apputils-extension/notification": {
            "fetchNews": "false",
            "checkForUpdates": False,
        },
    }
    for plugin, values in settings.items():
        path = settings_dir / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values), encoding="utf-8")


@dataclass
class LabServer:
    root: Path
    base_url: str
    token: str
    process: subprocess.Popen[bytes]
    log_path: Path
    settings_dir: Path

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base_url}{path}{sep}token={self.token}"

    def api(self, path: str, method: str = "GET", body: Any = None) -> Any:
        headers = {"Authorization": f"token {self.token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(
            f"{self.base_url}{path}", data=data, method=method, headers=headers
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shut_down_kernels(self) -> None:
        """Delete every session and kernel of the server (what closing the notebooks does)."""
        for session in self.api("/api/sessions"):
            self.api(f"/api/sessions/{session['id']}", method="DELETE")
        for kernel in self.api("/api/kernels"):
            self.api(f"/api/kernels/{kernel['id']}", method="DELETE")

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def write_notebook(path: Path, kernel: str, cells: list[str] | None = None) -> None:
    """An nbformat 4 notebook bound to kernelspec ``kernel`` (so no kernel picker shows)."""
    notebook = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": kernel, "display_name": kernel, "language": "python"},
            "language_info": {"name": "python"},
        },
        "cells": [
            {
                "cell_type": "code",
                "id": f"cell-{i}",
                "metadata": {},
                "source": source,
                "outputs": [],
                "execution_count": None,
            }
            for i, source in enumerate(cells or [""])
        ],
    }
    path.write_text(json.dumps(notebook, indent=1), encoding="utf-8")


@contextlib.contextmanager
def lab_server(
    base: Path, *, comms: str = COMMS_SETTINGS[0], env: dict[str, str] | None = None
) -> Iterator[LabServer]:
    """Start ``jupyter lab`` (pinned in the e2e extra) in ``base``; stop it on exit."""
    root = base / "root"
    dirs = {
        "JUPYTER_CONFIG_DIR": base / "config",
        "JUPYTER_DATA_DIR": base / "data",
        "JUPYTER_RUNTIME_DIR": base / "runtime",
        "IPYTHONDIR": base / "ipython",
        "JUPYTERLAB_SETTINGS_DIR": base / "lab-settings",
        "JUPYTERLAB_WORKSPACES_DIR": base / "lab-workspaces",
        "MPLCONFIGDIR": base / "mpl",
    }
    for folder in (root, *dirs.values()):
        folder.mkdir(parents=True, exist_ok=True)
    write_kernelspecs(dirs["JUPYTER_DATA_DIR"] / "kernels")
    write_user_settings(dirs["JUPYTERLAB_SETTINGS_DIR"], comms)
    server_env = {
        k: v for k, v in os.environ.items() if k not in ("JUPYTER_PATH", "JPY_SESSION_NAME")
    }
    server_env.update({k: str(v) for k, v in dirs.items()})
    server_env["JUPYTER_PLATFORM_DIRS"] = "1"
    server_env.update(env or {})
    port, token = free_port(), secrets.token_hex(16)
    log_path = base / "jupyter-server.log"
    argv = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.extension_manager=readonly",
        "--LabApp.news_url=",
        "--ServerApp.open_browser=False",
        "--allow-root",
        # Kernels on ipc sockets: with tcp, jupyter_client picks each port by binding and
        # releasing it, and on a busy machine another process's outgoing connection can take
        # it before the kernel binds (the kernel then dies with "Address already in use").
        "--KernelManager.transport=ipc",
        # window.jupyterapp: the suite opens and closes notebooks through it (see LabApp).
        "--LabApp.expose_app_in_browser=True",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            argv, env=server_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = LabServer(
        root, f"http://127.0.0.1:{port}", token, process, log_path, dirs["JUPYTERLAB_SETTINGS_DIR"]
    )
    try:
        _wait_until_serving(server)
        yield server
    finally:
        _stop(server)


def _wait_until_serving(server: LabServer) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited early:\n{server.log_tail()}")
        try:
            server.api("/api/status")
            return
        except (urllib.error.URLError, ConnectionError, OSError):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"jupyter lab did not answer within {SERVER_START_TIMEOUT:g} s:\n"
                    f"{server.log_tail()}"
                ) from None
            # The server is not listening yet: ask again shortly (a poll, not a timing guess).
            time.sleep(0.1)


def _stop(server: LabServer) -> None:
    """Shut kernels down through the server, then the server itself (SIGINT twice = no prompt)."""
    if server.process.poll() is None:
        with contextlib.suppress(Exception):
            for kernel in server.api("/api/kernels"):
                server.api(f"/api/kernels/{kernel['id']}", method="DELETE")
        with contextlib.suppress(Exception):
            server.api("/api/shutdown", method="POST")
        try:
            server.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(STOP_TIMEOUT)


def launch_browser(playwright: Playwright, profile: Path) -> BrowserContext:
    """Debian's headless Chromium with a fresh profile (never a downloaded browser)."""
    context = playwright.chromium.launch_persistent_context(
        str(profile),
        executable_path=CHROMIUM,
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1400, "height": 1000},
    )
    context.set_default_timeout(30_000)
    return context


# -- the notebook page -----------------------------------------------------------------------
@dataclasses.dataclass
class Notebook:
    """An open notebook in JupyterLab, driven from the keyboard."""

    page: Page
    backend: str = "asyncio"
    shots: Path | None = None
    _step: int = 0

    def step(self, name: str) -> None:
        """Save a screenshot of the page as ``NN-name.png`` (when a folder was given)."""
        if self.shots is None:
            return
        self._step += 1
        self.page.screenshot(path=str(self.shots / f"{self._step:02d}-{name}.png"))

    @property
    def panel(self) -> Locator:
        return self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)").first

    @property
    def cells(self) -> Locator:
        return self.panel.locator(".jp-Notebook .jp-Cell")

    def cell(self, index: int) -> Locator:
        return self.cells.nth(index)

    def output(self, index: int) -> Locator:
        return self.cell(index).locator(".jp-OutputArea-output")

    def toolbar_button(self, command: str) -> Locator:
        return self.panel.locator(f'.jp-NotebookPanel-toolbar [data-command="{command}"]').first

    def wait_kernel_idle(self, timeout: float = 60_000) -> None:
        """The status bar says "<kernel> | Idle": the kernel runs and its connection is up.

        (The toolbar's indicator also says idle before any kernel exists, so it is not enough.)
        """
        expect(self.page.locator("#jp-main-statusbar")).to_contain_text(
            f"{display_name(self.backend)} | Idle", timeout=timeout
        )

    def type_cell(self, index: int, code: str) -> None:
        """Select cell ``index``, enter edit mode and insert ``code`` as the cell's whole text."""
        self.cell(index).locator(".jp-InputPrompt").click()
        self.page.keyboard.press("Escape")
        self.page.keyboard.press("Enter")
        editor = self.cell(index).locator(".cm-content")
        expect(editor).to_be_focused(timeout=10_000)
        self.page.keyboard.press("Control+a")
        self.page.keyboard.insert_text(code)
        expect(editor).to_have_text(code.replace("\n", ""), timeout=10_000)

    def run_cell(self, index: int, code: str) -> None:
        """Type ``code`` into cell ``index`` (creating it at the end) and press Shift+Enter."""
        while self.cells.count() <= index:
            self.cell(self.cells.count() - 1).locator(".jp-InputPrompt").click()
            self.page.keyboard.press("Escape")
            self.page.keyboard.press("b")  # insert a cell below (command mode)
        self.type_cell(index, code)
        self.page.keyboard.press("Shift+Enter")

    def wait_cell_done(self, index: int, timeout: float = 60_000) -> None:
        """The cell's prompt shows an execution count (``[n]:``), not ``[*]:`` or ``[ ]:``."""
        expect(self.cell(index).locator(".jp-InputPrompt")).to_have_text(_EXECUTED, timeout=timeout)

    def wait_cell_running(self, index: int, timeout: float = 30_000) -> None:
        expect(self.cell(index).locator(".jp-InputPrompt")).to_have_text("[*]:", timeout=timeout)

    def click_breakpoint_gutter(self, cell: int, line: int) -> None:
        """Click the debugger's breakpoint gutter of ``cell`` beside its line ``line`` (from 1).

        The spot is found from where the line's text is, not from the index of a gutter
        element: the gutter's first element is a hidden spacer (CodeMirror's
        ``initialSpacer``, holding a breakpoint marker of its own, so a count of markers is
        never 0), and CodeMirror maps a click to the line at its height. The debugger adds the
        gutter some time after it is switched on.
        """
        editor = self.cell(cell)
        text = editor.locator(".cm-content .cm-line").nth(line - 1)
        # The gutter itself: its spacer's marker carries the class cm-breakpoint-gutter too.
        gutter = editor.locator(".cm-gutter.cm-breakpoint-gutter")
        expect(text).to_be_visible(timeout=10_000)
        expect(gutter).to_be_visible(timeout=30_000)
        text_box, gutter_box = text.bounding_box(), gutter.bounding_box()
        assert text_box is not None
        assert gutter_box is not None
        middle = text_box["y"] + text_box["height"] / 2 - gutter_box["y"]
        gutter.click(position={"x": gutter_box["width"] / 2, "y": middle})


_EXECUTED = re.compile(r"^\[\d+\]:$")
# open_notebook(comms=...) in the e2e suite: a new notebook (tests/e2e/conftest.py).
OpenNotebook = Callable[..., Notebook]


class LabApp:
    """One JupyterLab page that opens each test's notebook without loading the app again.

    Loading JupyterLab costs more than anything a test does, so the page stays and notebooks
    are opened in it (``docmanager:open``, through the app the server exposes to the page) and
    closed after each test. The page is loaded anew for another comms setting (JupyterLab reads
    it when it starts), when a test asks for it, and after a failure.
    """

    def __init__(self, context: BrowserContext, server: LabServer) -> None:
        self.context = context
        self.server = server
        self.page: Page | None = None
        self.comms: str | None = None
        self.console: list[str] = []
        self._loads = 0

    def _load(self, comms: str) -> Page:
        if self.page is not None:
            self.page.close()
        write_user_settings(self.server.settings_dir, comms)
        page = self.context.new_page()
        page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))
        self._loads += 1
        page.goto(self.server.url(f"/lab/workspaces/e2e{self._loads}?reset"))
        page.wait_for_function("() => window.jupyterapp !== undefined", timeout=60_000)
        page.evaluate("async () => { await window.jupyterapp.restored; }")
        self.page, self.comms = page, comms
        return page

    def open(
        self,
        name: str,
        backend: str,
        comms: str,
        *,
        fresh: bool,
        shots: Path | None,
        cells: list[str] | None = None,
    ) -> Notebook:
        """Open a new notebook ``name`` on ``backend`` (holding ``cells``, one empty cell by
        default); its kernel starts while it opens."""
        page = self.page
        if page is None or fresh or comms != self.comms:
            page = self._load(comms)
        write_notebook(self.server.root / name, kernel_name(backend), cells)
        session = {"path": name, "name": name, "type": "notebook"}
        self.server.api(
            "/api/sessions", "POST", {**session, "kernel": {"name": kernel_name(backend)}}
        )
        page.evaluate(
            "async (path) => {"
            " await window.jupyterapp.commands.execute('docmanager:open', {path}); }",
            name,
        )
        notebook = Notebook(page, backend, shots)
        expect(page.locator(".jp-NotebookPanel")).to_have_count(1, timeout=30_000)
        expect(notebook.panel).to_be_visible(timeout=60_000)
        notebook.wait_kernel_idle()
        notebook.step("opened")
        return notebook

    def close_all(self) -> None:
        """Close every document without saving (the tests' notebooks are throwaway)."""
        if self.page is None:
            return
        self.page.evaluate(
            "() => { for (const w of Array.from(window.jupyterapp.shell.widgets('main'))) {"
            " if (w.context) { w.context.model.dirty = false; } w.close(); } }"
        )
        expect(self.page.locator(".jp-NotebookPanel")).to_have_count(0, timeout=30_000)

    def discard(self) -> None:
        """Drop the page (after a failure: whatever state it was left in goes with it)."""
        if self.page is not None:
            with contextlib.suppress(Exception):
                self.page.close()
        self.page, self.comms = None, None


def open_notebook_in(
    page: Page,
    server: LabServer,
    name: str,
    backend: str,
    workspace: str | None = None,
    shots: Path | None = None,
) -> Notebook:
    """Write ``name`` bound to cokernel on ``backend``, open it in ``page`` (in a workspace of
    its own when named, so nothing of another test is restored) and wait for an idle kernel."""
    write_notebook(server.root / name, kernel_name(backend))
    where = f"/lab/workspaces/{workspace}/tree/{name}" if workspace else f"/lab/tree/{name}"
    page.goto(server.url(where))
    notebook = Notebook(page, backend, shots)
    expect(notebook.panel).to_be_visible(timeout=60_000)
    notebook.wait_kernel_idle()
    notebook.step("opened")
    return notebook


def open_notebook(context: BrowserContext, server: LabServer, name: str, backend: str) -> Notebook:
    """:func:`open_notebook_in` the context's first page."""
    page = context.pages[0] if context.pages else context.new_page()
    return open_notebook_in(page, server, name, backend)
