"""The scenario library against cokernel: every pattern passes, and its traffic is valid.

Each scenario runs on a kernel of its own, launched from the ``cokernel`` kernelspec over ZMQ,
and again on an in-process kernel (the callback interface) where the scenario's needs allow;
the harness itself runs on asyncio and on trio. Scenarios that talk over comms run under every
frontend profile (JupyterLab's comms over subshells, per target and per comm, and none): the
``jupyterlab`` profile on both harness loops, ``no-subshells`` on asyncio and
``jupyterlab-per-comm`` on asyncio over ZMQ only (the harness's loop, the transport and the
profile are independent, so this covers each once without tripling the run). The kernel runs the backend of the test run
(``COKERNEL_TEST_BACKEND``, see tests/conftest.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import pytest

from cokernel.testing import InProcessTransport
from cokernel_harness.frontend import Frontend
from cokernel_harness.profiles import (
    JUPYTERLAB,
    JUPYTERLAB_PER_COMM,
    NO_SUBSHELLS,
    FrontendProfile,
)
from cokernel_harness.runner import Outcome, run_conformance
from cokernel_scenarios import Scenario, all_scenarios

KERNEL_BACKEND = os.environ.get("COKERNEL_TEST_BACKEND", "asyncio")

# What every cokernel offers on this run's backend; the in-process transport has no kernel
# process and no connection file. The debugger is exercised over ZMQ only: debugpy traces the
# whole process it starts in, and in-process that is the test runner's.
KERNEL_FEATURES = frozenset(
    {
        "python",
        "stdin",
        "anyio",
        KERNEL_BACKEND,
        "comms",
        "ipywidgets",
        "ipython",
        "interrupt",
        "subshells",
    }
)
PROCESS_FEATURES = frozenset({"process", "connection_file", "debugger"})

Connect = Callable[[], AbstractAsyncContextManager[Frontend]]


def _params(*, inprocess: bool) -> list[object]:
    offered = KERNEL_FEATURES | (frozenset() if inprocess else PROCESS_FEATURES)
    params = []
    for scenario in all_scenarios():
        marks: list[pytest.MarkDecorator] = [pytest.mark.timeout(scenario.time_limit + 60)]
        missing = scenario.requires - offered
        if missing:
            why = (
                f"needs {', '.join(sorted(missing))}: the kernel runs {KERNEL_BACKEND}"
                if missing & {"asyncio", "trio"}
                else f"needs {', '.join(sorted(missing))}, which only a kernel process offers"
            )
            marks.append(pytest.mark.skip(reason=why))
        elif inprocess and scenario.name == "interrupt_sleep":
            marks.append(
                pytest.mark.skip(
                    reason="an in-process kernel runs cells on a non-main thread, where CPython "
                    "cannot interrupt a blocking C call such as time.sleep"
                )
            )
        for profile, loop in _plays(scenario, inprocess=inprocess):
            these = list(marks)
            if scenario.name == "widget_while_blocked" and not profile.uses_subshells:
                these.append(
                    pytest.mark.skip(
                        reason="a page without comms over subshells queues the slider's message "
                        "behind the blocked cell: the scenario is unsupported there by design"
                    )
                )
            name = f"{scenario.name}-{profile.name}" if scenario.uses_comms else scenario.name
            params.append(
                pytest.param(scenario, profile.name, loop, marks=these, id=f"{name}-{loop}")
            )
    return params


def _plays(scenario: Scenario, *, inprocess: bool) -> list[tuple[FrontendProfile, str]]:
    """(profile, harness loop) pairs a scenario is played under (per comm: over ZMQ only)."""
    if not scenario.uses_comms:
        return [(NO_SUBSHELLS, "asyncio"), (NO_SUBSHELLS, "trio")]
    plays = [(JUPYTERLAB, "asyncio"), (JUPYTERLAB, "trio"), (NO_SUBSHELLS, "asyncio")]
    return plays if inprocess else [*plays, (JUPYTERLAB_PER_COMM, "asyncio")]


async def _passes(scenario: Scenario, profile: str, connect: Connect) -> None:
    report = await run_conformance("cokernel", [scenario], connect=connect, frontends=[profile])
    (result,) = report.results
    assert result.outcome is Outcome.passed, f"{result.outcome.value}: {result.diagnosis}"
    assert result.violations == [], "\n".join(result.violations or [])


@pytest.mark.anyio
@pytest.mark.parametrize(("scenario", "profile", "anyio_backend"), _params(inprocess=False))
async def test_scenario_passes_over_zmq(scenario: Scenario, profile: str) -> None:
    await _passes(scenario, profile, lambda: Frontend.launch("cokernel"))


@pytest.mark.anyio
@pytest.mark.parametrize(("scenario", "profile", "anyio_backend"), _params(inprocess=True))
async def test_scenario_passes_in_process(scenario: Scenario, profile: str) -> None:
    await _passes(
        scenario,
        profile,
        lambda: Frontend.connect(InProcessTransport(backend=KERNEL_BACKEND)),
    )
