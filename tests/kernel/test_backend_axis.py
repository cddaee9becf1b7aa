"""The backend the suite runs its kernels on (``COKERNEL_TEST_BACKEND``) is the one they get."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from cokernel_harness.client import BlockingClient

KernelPair = tuple[KernelManager, BlockingKernelClient]


@pytest.mark.timeout(60)
def test_kernels_run_the_backend_this_test_run_asked_for(wire: BlockingClient) -> None:
    wanted = os.environ.get("COKERNEL_TEST_BACKEND", "asyncio")
    run = wire.run(
        "import anyio, sniffio\nawait anyio.sleep(0)\nprint(sniffio.current_async_library())"
    )
    assert run.status == "ok"
    assert run.stdout.strip() == wanted


LOOP_MODULE = "import asyncio\ntype(asyncio.get_running_loop()).__module__.split('.')[0]"


def _loop_module(wire: BlockingClient) -> str:
    run = wire.run(LOOP_MODULE)
    assert run.status == "ok", run.reply
    return str(run.of_type("execute_result")[0].content["data"]["text/plain"])


@pytest.mark.timeout(90)
def test_asyncio_kernel_runs_uvloop_when_installed_unless_told_not_to(
    launch_kernel: Callable[..., KernelPair],
) -> None:
    pytest.importorskip("uvloop", reason="uvloop is not installed (the uvloop extra)")
    default = BlockingClient(launch_kernel("--backend=asyncio")[1])
    assert _loop_module(default) == "'uvloop'"
    assert "asyncio (uvloop)" in default.request("shell", "kernel_info_request")["banner"]

    plain = BlockingClient(launch_kernel("--backend=asyncio", "--use-uvloop=false")[1])
    assert _loop_module(plain) == "'asyncio'"
    assert "uvloop" not in plain.request("shell", "kernel_info_request")["banner"]
