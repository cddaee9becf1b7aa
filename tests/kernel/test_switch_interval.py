"""The GIL switch interval of a kernel process (``--switch-interval``), over real kernels."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

from cokernel.options import DEFAULT_SWITCH_INTERVAL_MS
from cokernel_harness.client import BlockingClient
from helpers import KernelPair

pytestmark = pytest.mark.timeout(120)

PYTHON_DEFAULT = 0.005  # CPython's own, in seconds


def interval_of(pair: KernelPair) -> float:
    return float(BlockingClient(pair[1]).run("import sys\nprint(sys.getswitchinterval())").stdout)


def test_a_kernel_process_runs_with_the_short_interval(
    launch_kernel: Callable[..., KernelPair],
) -> None:
    assert sys.getswitchinterval() == pytest.approx(PYTHON_DEFAULT)  # this test process: untouched
    assert interval_of(launch_kernel()) == pytest.approx(DEFAULT_SWITCH_INTERVAL_MS / 1000)


@pytest.mark.parametrize(("option", "expected"), [("2.5", 0.0025), ("0", PYTHON_DEFAULT)])
def test_the_option_sets_it_and_zero_keeps_pythons_own(
    launch_kernel: Callable[..., KernelPair], option: str, expected: float
) -> None:
    assert interval_of(launch_kernel(f"--switch-interval={option}")) == pytest.approx(expected)
