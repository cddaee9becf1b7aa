"""Interrupt a cell awaiting ``anyio.sleep`` (top-level await on the kernel's own loop, asyncio
or trio; the loop stays free while the cell waits)."""

from __future__ import annotations

from cokernel_scenarios.interrupting import BODY_LIMIT, InterruptScenario
from cokernel_scenarios.scenario import PYTHON


class InterruptAwait(InterruptScenario):
    name = "interrupt_await"
    description = "interrupting `await anyio.sleep` replies KeyboardInterrupt; next cell runs"
    requires = PYTHON | {"interrupt", "anyio"}
    body = f"import anyio\nawait anyio.sleep({BODY_LIMIT})\n"
