"""Fixtures of the end-to-end suite: one JupyterLab server and one headless Chromium per run.

Every test here is marked ``e2e`` and runs once per backend (kernelspecs ``co-asyncio`` and
``co-trio``; ``COKERNEL_E2E_BACKENDS=trio`` narrows it). One JupyterLab page serves the run
(:class:`jlab.LabApp`); each test opens a new notebook in it, and afterwards the notebook is
closed and every kernel and session of the server shut down.

Screenshots: :meth:`Notebook.step` saves one per step, and a failing test saves the page as
``failure.png``, under ``e2e-output/<test>/`` (``COKERNEL_E2E_OUTPUT`` moves it), together with
the page's console log.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

try:
    import jlab
    from playwright import sync_api as playwright_api
except ImportError:  # the e2e extra is missing: the test modules skip, saying so
    jlab = None  # type: ignore[assignment]

REPO = Path(__file__).resolve().parents[2]
OUTPUT = Path(os.environ.get("COKERNEL_E2E_OUTPUT", REPO / "e2e-output"))
_notebooks = itertools.count()
_FAILED = pytest.StashKey[bool]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
    return report


def _backends() -> list[str]:
    known = ("asyncio", "trio")
    chosen = os.environ.get("COKERNEL_E2E_BACKENDS", " ".join(known)).split()
    return [b for b in known if b in chosen]


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[jlab.LabServer]:
    if not Path(jlab.CHROMIUM).exists():
        pytest.skip(f"no Chromium at {jlab.CHROMIUM}: bash ci/install-e2e.sh")
    with jlab.lab_server(tmp_path_factory.mktemp("lab")) as server:
        yield server


@pytest.fixture(scope="session")
def browser(
    lab: jlab.LabServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[playwright_api.BrowserContext]:
    with playwright_api.sync_playwright() as playwright:
        context = jlab.launch_browser(playwright, tmp_path_factory.mktemp("chromium-profile"))
        try:
            yield context
        finally:
            context.close()


@pytest.fixture(scope="session")
def lab_app(lab: jlab.LabServer, browser: playwright_api.BrowserContext) -> Iterator[jlab.LabApp]:
    app = jlab.LabApp(browser, lab)
    yield app
    app.discard()


@pytest.fixture(params=_backends())
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def open_notebook(
    request: pytest.FixtureRequest, lab: jlab.LabServer, lab_app: jlab.LabApp, backend: str
) -> Iterator[jlab.OpenNotebook]:
    """``open_notebook(comms="perComm", fresh=False, cells=None)``: a new notebook on
    ``backend`` holding ``cells`` (one empty cell by default), in the session's JupyterLab page
    (loaded anew for another comms setting, or when ``fresh``)."""
    folder = OUTPUT / re.sub(r"[^\w.-]+", "_", request.node.name).strip("_")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    opened: list[jlab.Notebook] = []
    lab_app.console.clear()

    def open_one(
        comms: str = jlab.COMMS_SETTINGS[0], fresh: bool = False, cells: list[str] | None = None
    ) -> jlab.Notebook:
        name = f"t{next(_notebooks)}-{backend}.ipynb"
        notebook = lab_app.open(name, backend, comms, fresh=fresh, shots=folder, cells=cells)
        opened.append(notebook)
        return notebook

    try:
        yield open_one
    finally:
        failed = request.node.stash.get(_FAILED, False)
        if failed and opened:
            with contextlib.suppress(Exception):
                opened[-1].page.screenshot(path=str(folder / "failure.png"))
        (folder / "console.log").write_text("\n".join(lab_app.console), encoding="utf-8")
        if failed:
            (folder / "jupyter-server.log").write_text(lab.log_tail(200), encoding="utf-8")
            lab_app.discard()
        else:
            try:
                lab_app.close_all()
            except Exception:
                lab_app.discard()
                raise
        lab.shut_down_kernels()


@pytest.fixture
def notebook(open_notebook: jlab.OpenNotebook) -> jlab.Notebook:
    """A notebook on the default comms setting."""
    return open_notebook()
