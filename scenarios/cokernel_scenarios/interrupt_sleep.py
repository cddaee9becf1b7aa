"""Interrupt a cell blocked in ``time.sleep`` (the interpreter waits in C)."""

from __future__ import annotations

from cokernel_scenarios.interrupting import BODY_LIMIT, InterruptScenario


class InterruptSleep(InterruptScenario):
    name = "interrupt_sleep"
    description = "interrupting time.sleep replies KeyboardInterrupt; the next cell runs"
    body = f"import time\ntime.sleep({BODY_LIMIT})\n"
