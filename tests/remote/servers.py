"""Real servers for the remote-kernel tests: Jupyter Kernel Gateway and Jupyter Server.

A plain module (not the conftest), so that test modules can import its names: every
``conftest.py`` of the suite is a module named ``conftest``, and importing one by that name
finds whichever pytest loaded first.

Each server runs as its own process on a free localhost port, with a token of its own, its
root, runtime and config directories in temporary folders, and its log in a file that a failing
start quotes. Readiness is an HTTP answer: the fixture polls the REST API until it answers or
a deadline passes (or the process dies). The fixtures (tests/remote/conftest.py) stop what they started.

The gateway launches kernels from the kernelspecs it finds, as any Jupyter application does:
the installed ``cokernel`` spec, or on the trio axis the trio spec tests/conftest.py puts
first on JUPYTER_PATH (the servers inherit the test run's environment).
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("jupyter_server", reason="the remote tests need pip install -e '.[gateway]'")
pytest.importorskip("kernel_gateway", reason="the remote tests need pip install -e '.[gateway]'")
pytest.importorskip("websockets", reason="the remote tests need pip install -e '.[gateway]'")

STARTUP_DEADLINE = 90.0


@dataclass
class Server:
    """One running server: where it listens, its token, its process and its log."""

    name: str
    url: str
    token: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def get(self, path: str) -> tuple[int, bytes]:
        """GET ``path`` with the token: (HTTP status, body); status 0 when nothing answers."""
        request = urllib.request.Request(
            self.url + path, headers={"Authorization": f"token {self.token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status), response.read()
        except urllib.error.HTTPError as e:
            return int(e.code), e.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return 0, b""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(server: Server, path: str) -> None:
    """Poll ``path`` until the server answers 200, its process ends, or the deadline passes."""
    deadline = time.monotonic() + STARTUP_DEADLINE
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with {server.process.returncode} before answering:\n"
                f"{server.log_tail()}"
            )
        status, _ = server.get(path)
        if status == 200:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{server.name} did not answer {path} within {STARTUP_DEADLINE:g} s "
                f"(last status {status}):\n{server.log_tail()}"
            )
        time.sleep(0.1)  # the poll interval of a readiness check, not a wait for the server


def _stop(server: Server) -> None:
    # SIGTERM: both servers shut their kernels (or their gateway sessions) down and exit.
    server.process.terminate()
    try:
        server.process.wait(30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(10)


@contextlib.contextmanager
def _serve(name: str, argv: list[str], url: str, token: str, log: Path) -> Iterator[Server]:
    with open(log, "wb") as out:
        process = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    server = Server(name, url, token, process, log)
    try:
        _wait_ready(server, "/api/kernelspecs")
        yield server
    finally:
        _stop(server)


@contextlib.contextmanager
def kernel_gateway(directory: Path) -> Iterator[Server]:
    """Jupyter Kernel Gateway: kernels over the Jupyter Server REST and websocket API."""
    port, token = free_port(), secrets.token_hex(16)
    argv = [
        sys.executable,
        "-m",
        "kernel_gateway",
        "--KernelGatewayApp.ip=127.0.0.1",
        f"--KernelGatewayApp.port={port}",
        f"--KernelGatewayApp.auth_token={token}",
        # Lets the test see which kernels the gateway runs (off by default).
        "--JupyterWebsocketPersonality.list_kernels=True",
    ]
    with _serve(
        "the kernel gateway", argv, f"http://127.0.0.1:{port}", token, directory / "gateway.log"
    ) as server:
        yield server


@contextlib.contextmanager
def jupyter_server(directory: Path, gateway: Server | None = None) -> Iterator[Server]:
    """Jupyter Server (JupyterLab's server); with ``gateway``, kernels live behind that gateway."""
    port, token = free_port(), secrets.token_hex(16)
    root = directory / "root"
    root.mkdir(exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "jupyter_server",
        "--no-browser",
        "--allow-root",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
    ]
    if gateway is not None:
        argv += [f"--gateway-url={gateway.url}", f"--GatewayClient.auth_token={gateway.token}"]
    with _serve(
        "the Jupyter server", argv, f"http://127.0.0.1:{port}", token, directory / "server.log"
    ) as server:
        yield server


@dataclass
class Chain:
    server: Server
    gateway: Server
