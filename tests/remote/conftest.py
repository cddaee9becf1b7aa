"""Fixtures for the remote-kernel tests; the servers themselves are in servers.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import Chain, Server, jupyter_server, kernel_gateway


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory, isolated_env: Path) -> Iterator[Chain]:
    """Jupyter Server -> Kernel Gateway -> cokernel kernels the gateway launches."""
    directory = tmp_path_factory.mktemp("chain")
    with kernel_gateway(directory) as gateway, jupyter_server(directory, gateway) as server:
        yield Chain(server, gateway)


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory: pytest.TempPathFactory, isolated_env: Path) -> Iterator[Server]:
    """Jupyter Server launching kernels itself (speaks the v1 websocket protocol)."""
    with jupyter_server(tmp_path_factory.mktemp("server")) as server:
        yield server


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
