"""The backend the suite runs its kernels on (``COKERNEL_TEST_BACKEND``) is the one they get."""

from __future__ import annotations

import os

import pytest

from helpers import Wire


@pytest.mark.timeout(60)
def test_kernels_run_the_backend_this_test_run_asked_for(wire: Wire) -> None:
    wanted = os.environ.get("COKERNEL_TEST_BACKEND", "asyncio")
    run = wire.run(
        "import anyio, sniffio\nawait anyio.sleep(0)\nprint(sniffio.current_async_library())"
    )
    assert run.status == "ok"
    assert run.stdout.strip() == wanted
