"""The bench's vocabulary: metrics, results, settings, workloads, and the bounds on every wait.

:mod:`cokernel_harness.bench_workloads` and :mod:`cokernel_harness.bench_comms` define the
workloads in these terms; :mod:`cokernel_harness.bench` runs them and reports.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cokernel_harness.bench_wire import Sent, Wire, iopub_of
from cokernel_harness.messages import Received

#: Bounds on waits, in seconds. A kernel that needs longer gets "timeout", not a longer run.
STARTUP_TIMEOUT = 60.0
CELL_TIMEOUT = 30.0
PIPELINE_TIMEOUT = 60.0
STDOUT_TIMEOUT = 60.0
COMM_ECHO_TIMEOUT = 3.0
INTERRUPT_TIMEOUT = 10.0
#: How long the comm cell awaits the frontend before giving up on its own (if comms block).
COMM_CELL_PATIENCE = 10.0
#: Pause between a cell's execute_input and the request under test, so the cell is surely
#: inside its sleep, loop or await when the request arrives (not part of any sample).
SETTLE = 0.2
#: Untimed executions before the round-trip samples (imports, caches, first-call costs).
WARMUP = 5


class Failed(Exception):
    """The kernel answered, but not as the workload needs (the message says how)."""


@dataclass(frozen=True)
class Metric:
    """One figure in the report, for every kernel."""

    key: str
    title: str
    unit: str
    higher_is_better: bool = False


@dataclass
class Result:
    """The samples of one metric on one kernel, and what went wrong if anything did.

    ``status`` is ``ok``, ``blocked`` (the kernel did not handle the request while the cell
    ran), ``timeout`` (it stopped answering), ``failed`` (it died or broke the protocol),
    ``unsupported`` (the kernel has no such feature, e.g. subshells) or ``skipped`` (not run).
    """

    samples: list[float] = field(default_factory=list)
    status: str = "ok"
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Settings:
    """Sample counts and sizes; the defaults keep a three-kernel run to a few minutes."""

    repeat: int = 3
    round_trips: int = 100
    pipelined: int = 200
    stdout_lines: int = 100_000
    block_seconds: float = 2.0
    comm_messages: int = 20
    interrupts: int = 5
    #: Requests in the pipelined ``x=1`` batch (bench_perf).
    assignments: int = 1000
    #: Size factor of the scale rows (bench_perf): 1 = the issue's figures.
    scale: float = 1.0


Results = dict[str, Result]
Run = Callable[[Wire, Settings, Results], None]


@dataclass(frozen=True)
class Workload:
    """A named procedure that fills the results of its ``metrics`` on one kernel."""

    name: str
    metrics: tuple[Metric, ...]
    run: Run


def ms(seconds: float) -> float:
    return seconds * 1000.0


def run_cell(wire: Wire, code: str, timeout: float = CELL_TIMEOUT) -> tuple[Sent, Received]:
    """Execute ``code`` and block until its reply and idle have arrived; return the request
    and the idle status."""
    sent = wire.execute(code)
    _, idle = wire.finish(sent, timeout)
    return sent, idle


def start_cell(wire: Wire, code: str) -> Sent:
    """Execute ``code`` and block until the kernel has started running it (execute_input),
    plus :data:`SETTLE`."""
    sent = wire.execute(code)
    wire.wait_for(iopub_of(sent, "execute_input"), CELL_TIMEOUT, "the execute_input of the cell")
    time.sleep(SETTLE)
    return sent


STARTUP = Metric("startup", "start-up: launch -> first kernel_info_reply", "ms")
