"""Start real kernel processes through jupyter_client, and end them.

- :func:`start_kernel` / :func:`stop_kernel` launch and end one kernel process, optionally from a
  kernelspec with extra command-line options written to a temporary directory.
- Tests talk to the kernels with the harness's clients: ``BlockingClient(kc)``
  (:mod:`cokernel_harness.client`, synchronous; the ``wire`` fixture) or the async ``Frontend``.
  Both wait on messages, never on the clock: each wait has a bound and fails with a diagnosis
  (what never came, the last messages that did).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

KERNEL_NAME = "cokernel"
DEFAULT_TIMEOUT = 30.0
#: Whether this run's kernels use the trio backend (COKERNEL_TEST_BACKEND, see conftest.py).
TRIO = os.environ.get("COKERNEL_TEST_BACKEND", "asyncio") == "trio"
STARTUP_TIMEOUT = 60.0


# -- kernel processes ----------------------------------------------------------------------------
#: A started kernel and its client (fixtures in tests/conftest.py yield these).
KernelPair = tuple[KernelManager, BlockingKernelClient]


def write_kernelspec(directory: Path, name: str, extra_argv: list[str]) -> KernelSpecManager:
    """Write a copy of the installed cokernel kernelspec with ``extra_argv`` appended.

    Returns a KernelSpecManager that looks only in ``directory``, so nothing is installed where
    other tests or the user would see it.
    """
    base = KernelSpecManager().get_kernel_spec(KERNEL_NAME).to_dict()
    base["argv"] = [sys.executable, *base["argv"][1:], *extra_argv]
    base["display_name"] = f"cokernel test ({' '.join(extra_argv)})"
    spec_dir = directory / name
    spec_dir.mkdir(parents=True, exist_ok=True)
    (spec_dir / "kernel.json").write_text(json.dumps(base, indent=1))
    return KernelSpecManager(kernel_dirs=[str(directory)])


def start_kernel(
    kernel_name: str = KERNEL_NAME, *, kernel_spec_manager: KernelSpecManager | None = None
) -> tuple[KernelManager, BlockingKernelClient]:
    """Start a kernel process and return its manager and a client whose channels are ready."""
    extra: dict[str, Any] = {}
    if kernel_spec_manager is not None:
        extra["kernel_spec_manager"] = kernel_spec_manager
    km = KernelManager(kernel_name=kernel_name, **extra)
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=STARTUP_TIMEOUT)
    except RuntimeError:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        raise
    return km, kc


def stop_kernel(km: KernelManager, kc: BlockingKernelClient) -> None:
    """Close the client and shut the kernel down (by request; killed if it does not comply)."""
    kc.stop_channels()
    if km.has_kernel:
        km.shutdown_kernel(now=False)
    else:
        km.cleanup_resources()


def kernel_pid(km: KernelManager) -> int:
    """The process id of the kernel ``km`` launched."""
    process = getattr(km.provisioner, "process", None)
    assert process is not None, "the kernel manager has no local kernel process"
    return int(process.pid)


def wait_for_exit(km: KernelManager, timeout: float = DEFAULT_TIMEOUT) -> int:
    """Block until the kernel process of ``km`` exits; returns its exit status."""
    process = getattr(km.provisioner, "process", None)
    assert process is not None, "the kernel manager has no local kernel process"
    return int(process.wait(timeout=timeout))
