"""Fixtures of the GUI tests: an X server (Xvfb) for Tk, and kernels with a GUI host.

Tk needs a real X server: a session fixture starts Xvfb, which picks a free display number
itself (``-displayfd``) and writes it once it accepts clients, so the fixture waits on that
(bounded), not on the clock. Qt runs on its ``offscreen`` platform and needs no server. The
display reaches the kernel process through its kernelspec's ``env``; the test process itself
never opens a window.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from gui_scenarios import KernelPair, LaunchGuiKernel
from jupyter_client.kernelspec import KernelSpecManager

from helpers import start_kernel, stop_kernel

XVFB_READY_TIMEOUT = 30.0  # seconds Xvfb may take to accept clients


def _read_display(fd: int, timeout: float) -> str:
    """The display number Xvfb writes to ``fd`` once it is ready ("" if none within timeout)."""
    data = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while not data.endswith(b"\n"):
            if not selector.select(timeout):
                return ""
            chunk = os.read(fd, 64)
            if not chunk:  # Xvfb exited before it was ready
                return ""
            data += chunk
    return data.decode().strip()


@pytest.fixture(scope="session")
def xvfb_display(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The DISPLAY (":N") of an Xvfb server running for the whole session.

    Skips the test when Xvfb is not installed (``ci/install-gui.sh`` installs it) or cannot
    start here; the reason says which.
    """
    binary = shutil.which("Xvfb")
    if binary is None:
        pytest.skip("Xvfb is not installed: run ci/install-gui.sh (apt-get install xvfb xauth)")
    log_path = tmp_path_factory.mktemp("xvfb") / "xvfb.log"
    read_fd, write_fd = os.pipe()
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [
                binary,
                "-displayfd",
                str(write_fd),
                "-screen",
                "0",
                "1280x1024x24",
                "-nolisten",
                "tcp",
            ],
            pass_fds=(write_fd,),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    os.close(write_fd)
    try:
        number = _read_display(read_fd, XVFB_READY_TIMEOUT)
    finally:
        os.close(read_fd)
    if not number:
        server.kill()
        server.wait()
        pytest.skip(f"Xvfb did not start: {log_path.read_text(errors='replace')[-500:]}")
    try:
        yield f":{number}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="session")
def mpl_config_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """matplotlib's config and font cache for the session's kernels (built once, kept off $HOME)."""
    return str(tmp_path_factory.mktemp("matplotlib"))


def write_gui_kernelspec(directory: Path, name: str, argv: list[str], env: dict[str, str]) -> None:
    """Write kernelspec ``name`` that starts cokernel with ``argv`` options and ``env``."""
    spec = {
        "argv": [sys.executable, "-m", "cokernel", "start", "-f", "{connection_file}", *argv],
        "display_name": f"cokernel gui test ({' '.join(argv)})",
        "language": "python",
        "interrupt_mode": "message",
        "env": env,
    }
    spec_dir = directory / name
    spec_dir.mkdir(parents=True, exist_ok=True)
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))


@contextlib.contextmanager
def gui_kernels(directory: Path, env: dict[str, str]) -> Iterator[LaunchGuiKernel]:
    """Yield ``launch(*argv)``, which starts a kernel from a temporary kernelspec with ``env``;
    every kernel it started is shut down at the end."""
    started: list[KernelPair] = []
    manager = KernelSpecManager(kernel_dirs=[str(directory)])

    def launch(*argv: str) -> KernelPair:
        name = f"cokernel-gui-{len(started)}"
        write_gui_kernelspec(directory, name, list(argv), env)
        pair = start_kernel(name, kernel_spec_manager=manager)
        started.append(pair)
        return pair

    try:
        with pytest.MonkeyPatch.context() as mp:
            # Kernels inherit this process's environment: a developer's MPLBACKEND must not
            # decide what the matplotlib tests see (the kernel sets its inline default).
            mp.delenv("MPLBACKEND", raising=False)
            yield launch
    finally:
        for km, kc in started:
            stop_kernel(km, kc)


def _base_env(mpl_config_dir: str) -> dict[str, str]:
    return {"MPLCONFIGDIR": mpl_config_dir}


@pytest.fixture(scope="module")
def tk_kernels(
    tmp_path_factory: pytest.TempPathFactory,
    xvfb_display: str,
    mpl_config_dir: str,
    isolated_env: Path,
) -> Iterator[LaunchGuiKernel]:
    """Start kernels on the session's X display (``launch("--host=tk", "--backend=trio")``)."""
    env = {**_base_env(mpl_config_dir), "DISPLAY": xvfb_display}
    with gui_kernels(tmp_path_factory.mktemp("tk-kernels"), env) as launch:
        yield launch


@pytest.fixture(scope="module")
def qt_kernels(
    tmp_path_factory: pytest.TempPathFactory, mpl_config_dir: str, isolated_env: Path
) -> Iterator[LaunchGuiKernel]:
    """Start kernels whose Qt draws offscreen (``launch("--host=qt")``); skips without PySide6."""
    pytest.importorskip("PySide6", reason="PySide6 is not installed: pip install -e '.[qt]'")
    env = {**_base_env(mpl_config_dir), "QT_QPA_PLATFORM": "offscreen"}
    with gui_kernels(tmp_path_factory.mktemp("qt-kernels"), env) as launch:
        yield launch


@pytest.fixture(scope="module")
def plain_kernels(
    tmp_path_factory: pytest.TempPathFactory, mpl_config_dir: str, isolated_env: Path
) -> Iterator[LaunchGuiKernel]:
    """Start kernels without a GUI host (and with matplotlib's cache in the session's dir)."""
    with gui_kernels(tmp_path_factory.mktemp("plain-kernels"), _base_env(mpl_config_dir)) as launch:
        yield launch
