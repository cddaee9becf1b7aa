"""Fixtures shared by every test: an isolated environment and real kernel processes.

Kernels are started through jupyter_client exactly as a frontend would (kernelspec, connection
file, five ZMQ sockets). ``tests/helpers.py`` starts and ends them; tests talk to them with the
harness's clients (``cokernel_harness.BlockingClient``, ``Frontend``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cokernel_harness.client import BlockingClient
from helpers import KERNEL_NAME, KernelPair, start_kernel, stop_kernel, write_kernelspec


@pytest.fixture(scope="session", autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Keep IPython's history database, Jupyter's connection files and config out of $HOME.

    Set for the whole session (kernel processes inherit the environment when they start).

    ``COKERNEL_TEST_BACKEND=trio`` runs every kernel test on the trio backend: a kernelspec named
    ``cokernel`` with ``--backend=trio`` goes first on JUPYTER_PATH, so every test that starts
    "cokernel" (directly, through helpers, or through the harness) gets a trio kernel.
    """
    root = tmp_path_factory.mktemp("env")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IPYTHONDIR", str(root / "ipython"))
        mp.setenv("JUPYTER_RUNTIME_DIR", str(root / "runtime"))
        mp.setenv("JUPYTER_CONFIG_DIR", str(root / "config"))
        backend = os.environ.get("COKERNEL_TEST_BACKEND", "asyncio")
        if backend != "asyncio":
            write_kernelspec(root / "data" / "kernels", KERNEL_NAME, [f"--backend={backend}"])
            mp.setenv(
                "JUPYTER_PATH",
                os.pathsep.join(filter(None, [str(root / "data"), os.environ.get("JUPYTER_PATH")])),
            )
        yield root


@pytest.fixture(scope="module")
def kernel(isolated_env: Path) -> Iterator[KernelPair]:
    """One cokernel process shared by a module's tests; they must leave it running."""
    km, kc = start_kernel()
    try:
        yield km, kc
    finally:
        stop_kernel(km, kc)


@pytest.fixture
def fresh_kernel(isolated_env: Path) -> Iterator[KernelPair]:
    """A cokernel process of this test's own, which the test may shut down or kill."""
    km, kc = start_kernel()
    try:
        yield km, kc
    finally:
        stop_kernel(km, kc)


@pytest.fixture
def wire(kernel: KernelPair) -> BlockingClient:
    """The harness's :class:`~cokernel_harness.client.BlockingClient` on the module's shared
    kernel: one ordered log of its four channels."""
    return BlockingClient(kernel[1])


@pytest.fixture
def launch_kernel(tmp_path: Path, isolated_env: Path) -> Iterator[Callable[..., KernelPair]]:
    """Start kernels whose command line has extra options: ``launch_kernel("--timeout=1")``.

    Each gets a kernelspec in a temporary directory; all are shut down after the test.
    """
    started: list[KernelPair] = []

    def launch(*extra_argv: str) -> KernelPair:
        name = f"{KERNEL_NAME}-test-{len(started)}"
        manager = write_kernelspec(tmp_path / "kernels", name, list(extra_argv))
        pair = start_kernel(name, kernel_spec_manager=manager)
        started.append(pair)
        return pair

    yield launch
    for km, kc in started:
        stop_kernel(km, kc)
