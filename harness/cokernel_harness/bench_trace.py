"""Where a cokernel round trip spends its time: a timeline of one ``execute_request``.

``python -m cokernel_harness.bench_trace [--round-trips N] [--backend asyncio|trio]``

The bench gives a round trip's total as the client sees it. This splits it: it launches a
cokernel process through the kernel's tracing entry point (``python -m cokernel.tracing start
-f FILE``, which wraps a few of the kernel's functions so that each notes the time it was
reached, on which thread and for which request; the harness itself imports no kernel code),
runs ``pass`` round trips one after another, shuts the kernel down (the notes are written as
it exits) and prints the median time of each step, counted from the moment the io thread had
the request off its socket. The steps follow the request through the kernel's two threads:
the io thread receives and verifies it and hands it to the loop; the main thread publishes
``busy`` and ``execute_input``, has IPython transform and run the cell, builds the reply and
publishes it and ``idle``; the io thread sends the four messages.

A wrapped function costs about a microsecond more per call: the steps are right relative to
each other, the total is a little longer than the bench's. The kernel must be importable by
the Python running this (a development install). Steps are named by ``cokernel.tracing``; a
step this table lists and the kernel no longer notes shows as ``-``, and the test that runs
this fails.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import KernelManager

from cokernel_harness.bench_wire import Wire, iopub_of, reply_to

__all__ = ["STEPS", "main", "timeline"]

#: The steps of the timeline, in the order a request reaches them.
STEPS = (
    ("poll", "io thread wakes (poll returns)"),
    ("received", "io: request off the socket"),
    ("verified", "io: signature checked, JSON decoded"),
    ("handed", "io: handed to the loop"),
    ("begun", "main: handler begins"),
    ("busy", "main: busy queued"),
    ("transforming", "main: execute_input queued"),
    ("transformed", "main: cell transformed (IPython)"),
    ("ran", "main: cell run (IPython run_cell_async)"),
    ("replied", "main: reply content built"),
    ("idle", "main: reply and idle queued"),
    ("sent:status:busy", "io: busy sent"),
    ("sent:execute_input", "io: execute_input sent"),
    ("sent:execute_reply", "io: execute_reply sent"),
    ("sent:status:idle", "io: idle sent"),
)

#: The environment variable naming the file the traced kernel writes its notes to (read by
#: ``cokernel.tracing``).
TRACE_FILE = "COKERNEL_TRACE_FILE"


def timeline(notes: Sequence[Sequence[Any]], request_ids: Sequence[str]) -> dict[str, list[float]]:
    """For each step, its offsets (microseconds) from ``received``, one per request that
    reached it. A note without a request id belongs to the request its thread last saw (the
    round trips do not overlap); a ``poll`` note, to the request received next on its thread."""
    wanted = set(request_ids)
    last_on: dict[int, str | None] = {}
    polled: dict[int, int] = {}
    reached: dict[str, dict[str, int]] = {}
    for step, thread, at, request in notes:
        if step == "poll":
            polled[thread] = at
            continue
        if step == "received":
            last_on[thread] = request
        elif request is None:
            request = last_on.get(thread)
        else:
            last_on[thread] = request
        if request not in wanted:
            continue
        steps = reached.setdefault(request, {})
        if step == "received" and thread in polled:
            steps.setdefault("poll", polled[thread])
        steps.setdefault(step, at)
    offsets: dict[str, list[float]] = {name: [] for name, _ in STEPS}
    for steps in reached.values():
        start = steps.get("received")
        for name, _ in STEPS:
            if start is not None and name in steps:
                offsets[name].append((steps[name] - start) / 1000)
    return offsets


class _TracedWire(Wire):
    def __init__(self, backend: str, trace_file: Path) -> None:
        super().__init__(f"cokernel-traced-{backend}")
        self.backend, self.trace_file = backend, trace_file

    def _new_manager(self) -> KernelManager:
        argv = [sys.executable, "-m", "cokernel.tracing", "start", "-f", "{connection_file}"]
        argv.append(f"--backend={self.backend}")
        spec = KernelSpec(
            argv=argv,
            display_name=self.kernel_name,
            language="python",
            interrupt_mode="message",
            env={TRACE_FILE: str(self.trace_file)},
        )
        km = KernelManager(kernel_name=self.kernel_name)
        km._kernel_spec = spec
        return km


def trace(round_trips: int, backend: str) -> tuple[dict[str, list[float]], list[float]]:
    """Run ``round_trips`` ``pass`` round trips on a traced kernel; returns the timeline and
    the client's round trips (microseconds)."""
    with tempfile.TemporaryDirectory() as directory:
        trace_file = Path(directory) / "trace.json"
        wire = _TracedWire(backend, trace_file)
        wire.start(timeout=60)
        ids, totals = [], []
        try:
            for _ in range(round_trips):
                wire.forget()
                sent = wire.execute("pass")
                reply = wire.wait_for(reply_to(sent), 30, "the execute_reply")
                totals.append((reply.time - sent.time) * 1e6)
                wire.wait_for(iopub_of(sent, "status", "idle"), 30, "the idle status")
                ids.append(sent.msg_id)
            bye = wire.send("shell", "shutdown_request", {"restart": False})
            wire.wait_for(reply_to(bye), 30, "the shutdown_reply")
            process = wire.manager.provisioner.process if wire.manager.provisioner else None
            if process is not None:
                process.wait(timeout=30)
        finally:
            wire.close(now=True)
        notes = json.loads(trace_file.read_text())
    skip = min(len(ids) // 10, 20)  # the first ones warm caches and imports up
    return timeline(notes, ids[skip:]), totals[skip:]


def format_timeline(offsets: dict[str, list[float]], totals: list[float]) -> str:
    """The timeline as a table: each step's median offset, its step from the one before, p90."""
    lines = [f"{'step':44} {'at (us)':>9} {'+ (us)':>8} {'p90':>8} {'n':>5}"]
    before = None
    for name, title in STEPS:
        values = offsets.get(name) or []
        if not values:
            lines.append(f"{title:44} {'-':>9}")
            continue
        median = statistics.median(values)
        p90 = sorted(values)[int(0.9 * (len(values) - 1))]
        step = "" if before is None else f"{median - before:+.0f}"
        lines.append(f"{title:44} {median:9.0f} {step:>8} {p90:8.0f} {len(values):5d}")
        before = median
    if totals:
        median = statistics.median(totals)
        lines.append(f"client round trip (request sent -> reply in), median: {median:.0f} us")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cokernel_harness.bench_trace")
    parser.add_argument("--round-trips", type=int, default=300)
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    options = parser.parse_args(argv)
    offsets, totals = trace(options.round_trips, options.backend)
    print(format_timeline(offsets, totals))
    return 0


if __name__ == "__main__":
    sys.exit(main())
