"""Interrupt a cell that spins in pure Python (no sleep, no I/O, never yields)."""

from __future__ import annotations

from cokernel_scenarios.interrupting import BODY_LIMIT, InterruptScenario


class InterruptBusy(InterruptScenario):
    name = "interrupt_busy"
    description = "interrupting a busy pure-Python loop replies KeyboardInterrupt; next cell runs"
    body = (
        "import time as _time\n"
        f"_until = _time.monotonic() + {BODY_LIMIT}\n"
        "_spins = 0\n"
        "while _time.monotonic() < _until:\n"
        "    _spins += 1\n"
    )
