"""The bench rows of the performance goals (issue #14): completion latency, pipelined
assignments, interrupts per cell kind (first and later), and the scale rows.

These workloads join :data:`cokernel_harness.bench_workloads.WORKLOADS` in
:data:`ALL_WORKLOADS`, the order the runner uses:

- ``completion`` runs after the round-trip and pipelined workloads (a few seconds after
  start-up, as a user's first completion comes) and before anything else completes: its first
  sample is the session's first completion; then each sample completes a module imported just
  before (``json.`` right after ``import json``), then a name completed before (repeat).
- ``pipelined_x1``: 1,000 ``x=1`` requests sent at once.
- ``interrupt_first`` is the session's first interrupt, through jupyter_client's
  ``KernelManager.interrupt_kernel`` as Jupyter Server calls it: for a kernel interrupted by
  message it includes the manager connecting its control socket. ``interrupt_asyncio`` and
  the existing ``interrupt_busy``/``interrupt_await`` rows are later interrupts.
- the scale rows, last: 1,000 comms with a message to each, 100 subshells executing at once,
  one 100 MB display payload, 1 million short prints. Each reports its time and the kernel
  process's peak resident memory during the row (Linux: the peak is reset through
  ``/proc/PID/clear_refs`` before the row and read from ``VmHWM`` after it).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from cokernel_harness.bench_model import (
    CELL_TIMEOUT,
    INTERRUPT_TIMEOUT,
    PIPELINE_TIMEOUT,
    STARTUP,
    Failed,
    Metric,
    Result,
    Results,
    Run,
    Settings,
    Workload,
    ms,
    run_cell,
    start_cell,
)
from cokernel_harness.bench_wire import (
    InProcessWire,
    Predicate,
    Unsupported,
    Wire,
    iopub_of,
    reply_to,
)
from cokernel_harness.bench_workloads import WORKLOADS
from cokernel_harness.messages import Received

__all__ = [
    "ALL_METRICS",
    "ALL_WORKLOADS",
    "FLOOR_WORKLOADS",
    "STARTUP_EXEC",
    "launch_to_first_execute",
    "peak_rss",
    "peak_rss_reset",
]

#: Sizes of the scale rows at ``Settings.scale == 1``: the issue's figures.
SCALE_COMMS = 1000
SCALE_SUBSHELLS = 100
SCALE_SUBSHELL_CELL_SECONDS = 0.5
SCALE_PAYLOAD_BYTES = 100 * 2**20
SCALE_PRINTS = 1_000_000


def scaled(size: int, settings: Settings) -> int:
    return max(round(size * settings.scale), 1)


#: A scale row that takes longer than this is reported as ``timeout``.
SCALE_TIMEOUT = 120.0
COMPLETE_TIMEOUT = 30.0
#: Fresh standard-library modules for the "new module" completion samples (no heavy deps).
NEW_MODULES = ("json", "decimal", "fractions", "statistics", "textwrap", "difflib", "csv")


# -- start-up to the first cell ---------------------------------------------------------------
#: Measured by the runner right after each start-up: a kernel that answers kernel_info early
#: and builds the rest afterwards shows here what the first cell waits for.
STARTUP_EXEC = Metric("startup_exec", "start-up: launch -> idle after a first `pass`", "ms")


def launch_to_first_execute(wire: Wire, results: Results) -> None:
    """Execute ``pass`` on a kernel just started; record launch -> idle."""
    _, idle = run_cell(wire, "pass")
    results[STARTUP_EXEC.key].samples.append(ms(idle.time - wire.launched))
    wire.quiet()


# -- completion -------------------------------------------------------------------------------
COMPLETE_FIRST = Metric("complete_first", "completion: the session's first (`os.pa`)", "ms")
COMPLETE_NEW = Metric("complete_new", "completion: a module imported just before (`json.`)", "ms")
COMPLETE_REPEAT = Metric("complete_repeat", "completion: repeat (`os.pa` again)", "ms")


def _complete(wire: Wire, code: str) -> tuple[float, Received]:
    sent = wire.send("shell", "complete_request", {"code": code, "cursor_pos": len(code)})
    reply = wire.wait_for(reply_to(sent), COMPLETE_TIMEOUT, "the complete_reply")
    if reply.content.get("status") != "ok" or not reply.content.get("matches"):
        raise Failed(f"complete_request {code!r}: {reply.content}")
    return ms(reply.time - sent.time), reply


def completion(wire: Wire, settings: Settings, out: Results) -> None:
    run_cell(wire, "import os")
    wire.forget()
    first, _ = _complete(wire, "os.pa")
    out[COMPLETE_FIRST.key].samples.append(first)
    for module in NEW_MODULES:
        run_cell(wire, f"import {module}")
        wire.forget()
        sample, _ = _complete(wire, f"{module}.")
        out[COMPLETE_NEW.key].samples.append(sample)
    for _ in range(max(settings.repeat, 15)):  # a median of 5 moved 1.5x between runs
        wire.forget()
        sample, _ = _complete(wire, "os.pa")
        out[COMPLETE_REPEAT.key].samples.append(sample)


# -- pipelined assignments --------------------------------------------------------------------
PIPELINED_X1 = Metric(
    "pipelined_x1", "pipelined `x=1` requests: sent at once -> last reply", "msg/s", True
)


def _all_of(ids: set[str], kind: str, errors: list[str] | None = None) -> Predicate:
    """Match the message that completes one ``kind`` message (``execute_reply`` or the idle
    ``status``) for every id in ``ids``; error replies are added to ``errors``."""
    waiting = set(ids)

    def match(a: Received) -> bool:
        if a.parent_id in waiting and a.msg_type == kind:
            if kind == "status" and a.content.get("execution_state") != "idle":
                return False
            waiting.discard(a.parent_id or "")
            if errors is not None and a.content.get("status") != "ok":
                errors.append(str(a.content.get("ename")))
        return not waiting

    return match


def pipelined_assignments(wire: Wire, settings: Settings, out: Results) -> None:
    count = settings.assignments
    out[PIPELINED_X1.key].notes.append(f"{count:,} requests")
    for _ in range(settings.repeat):
        wire.forget()
        started = time.perf_counter()
        ids = {wire.execute("x=1").msg_id for _ in range(count)}
        errors: list[str] = []
        last = wire.wait_for(
            _all_of(ids, "execute_reply", errors),
            PIPELINE_TIMEOUT,
            "the last execute_reply of the batch",
        )
        if errors:
            raise Failed(f"{len(errors)} of the assignments failed: {errors[0]}")
        out[PIPELINED_X1.key].samples.append(count / (last.time - started))
        wire.wait_for(_all_of(ids, "status"), PIPELINE_TIMEOUT, "the last idle status of the batch")


# -- interrupts -------------------------------------------------------------------------------
INTERRUPT_FIRST = Metric(
    "interrupt_first", "interrupt: the session's first (`while True: pass`) -> reply", "ms"
)
INTERRUPT_ASYNCIO = Metric(
    "interrupt_asyncio", "interrupt `await asyncio.sleep(100)` -> reply", "ms"
)


def _interrupt_once(wire: Wire, code: str, result: Result) -> str:
    """Start ``code``, interrupt it through the kernel manager, record the time to its reply;
    return the reply's ename (or status)."""
    cell = start_cell(wire, code)
    ended = [a for a in wire.log if reply_to(cell)(a)]
    if ended:  # the cell could not run on this kernel (e.g. asyncio on trio)
        content = ended[0].content
        raise Unsupported(f"the cell ended by itself: {content.get('ename')}")
    started = wire.interrupt()
    reply = wire.wait_for(
        reply_to(cell), INTERRUPT_TIMEOUT, "the execute_reply after the interrupt"
    )
    result.samples.append(ms(reply.time - started))
    wire.wait_for(iopub_of(cell, "status", "idle"), CELL_TIMEOUT, "the idle status")
    return str(reply.content.get("ename", reply.content.get("status")))


def interrupt_first(wire: Wire, settings: Settings, out: Results) -> None:
    wire.forget()
    ename = _interrupt_once(wire, "while True:\n    pass", out[INTERRUPT_FIRST.key])
    out[INTERRUPT_FIRST.key].notes.append(f"{wire.interrupt_mode} mode, {ename}")


def interrupt_asyncio(wire: Wire, settings: Settings, out: Results) -> None:
    result = out[INTERRUPT_ASYNCIO.key]
    probe, _ = run_cell(wire, "import asyncio\nawait asyncio.sleep(0)")
    answer = next(a for a in wire.log if reply_to(probe)(a))
    if answer.content.get("status") != "ok":  # e.g. a trio kernel
        raise Unsupported(f"`await asyncio.sleep(0)` failed: {answer.content.get('ename')}")
    enames: set[str] = set()
    for _ in range(settings.interrupts):
        wire.forget()
        enames.add(_interrupt_once(wire, "import asyncio\nawait asyncio.sleep(100)", result))
    result.notes.insert(0, ", ".join([f"{wire.interrupt_mode} mode", *sorted(enames)]))


# -- peak memory ------------------------------------------------------------------------------
def _pid(wire: Wire) -> int:
    if isinstance(wire, InProcessWire):
        raise Unsupported("an in-process kernel shares the bench's process")
    pid = getattr(wire.manager.provisioner, "pid", None)
    if pid is None:
        raise Unsupported("no kernel process to measure")
    return int(pid)


def peak_rss_reset(wire: Wire) -> bool:
    """Reset the kernel process's peak RSS; False where that cannot be done."""
    try:
        Path(f"/proc/{_pid(wire)}/clear_refs").write_text("5")
    except (OSError, Unsupported):
        return False
    return True


def peak_rss(wire: Wire) -> float | None:
    """The kernel process's peak RSS (MB) since the last reset, or None."""
    try:
        status = Path(f"/proc/{_pid(wire)}/status").read_text()
    except (OSError, Unsupported):
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def _scale(time_metric: Metric, memory_metric: Metric, body: Run) -> Run:
    """Run ``body`` (which records the time) between a peak-memory reset and reading."""

    def run(wire: Wire, settings: Settings, out: Results) -> None:
        wire.forget()
        reset = peak_rss_reset(wire)
        body(wire, settings, out)
        peak = peak_rss(wire) if reset else None
        if peak is None:
            out[memory_metric.key].status = "unsupported"
            out[memory_metric.key].notes.append("no per-row peak memory for this kernel")
        else:
            out[memory_metric.key].samples.append(peak)

    return run


# -- scale: comms -----------------------------------------------------------------------------
SCALE_COMMS_TIME = Metric(
    "scale_comms", "scale: N comms opened, one message to each -> last echo", "s"
)
SCALE_COMMS_PEAK = Metric("scale_comms_peak", "... peak memory of the kernel", "MB")

_COMMS_CELL = """\
import comm
_bench_comms = []
def _bench_handler(c):
    def echo(msg):
        c.send({{"echo": msg["content"]["data"]["seq"]}})
    return echo
for _ in range({count}):
    _c = comm.create_comm(target_name={target!r})
    _c.on_msg(_bench_handler(_c))
    _bench_comms.append(_c)
"""


def scale_comms(wire: Wire, settings: Settings, out: Results) -> None:
    count = scaled(SCALE_COMMS, settings)
    out[SCALE_COMMS_TIME.key].notes.append(f"{count:,} comms")
    target = f"cokernel.bench.{uuid.uuid4().hex[:12]}"
    started = time.perf_counter()
    cell = wire.execute(_COMMS_CELL.format(count=count, target=target))
    reply, _ = wire.finish(cell, SCALE_TIMEOUT)
    if reply.content.get("status") != "ok":
        raise Failed(f"the comm cell failed: {reply.content.get('ename')}")
    ids = [
        str(a.content["comm_id"])
        for a in wire.log
        if a.msg_type == "comm_open" and a.content.get("target_name") == target
    ]
    if len(ids) != count:
        raise Failed(f"{len(ids)} of {count} comm_open messages arrived")
    waiting = set(ids)
    for seq, comm_id in enumerate(ids):
        wire.send("shell", "comm_msg", {"comm_id": comm_id, "data": {"seq": seq}})

    def all_echoed(a: Received) -> bool:
        if a.msg_type == "comm_msg" and "echo" in (a.content.get("data") or {}):
            waiting.discard(str(a.content.get("comm_id")))
        return not waiting

    last = wire.wait_for(all_echoed, SCALE_TIMEOUT, "an echo from every comm")
    out[SCALE_COMMS_TIME.key].samples.append(last.time - started)
    run_cell(wire, "for _c in _bench_comms:\n    _c.close()\ndel _bench_comms", SCALE_TIMEOUT)


# -- scale: subshells -------------------------------------------------------------------------
SCALE_SUBSHELLS_TIME = Metric(
    "scale_subshells",
    f"scale: N subshells each running `time.sleep({SCALE_SUBSHELL_CELL_SECONDS})` at once"
    " -> last reply",
    "s",
)
SCALE_SUBSHELLS_PEAK = Metric("scale_subshells_peak", "... peak memory of the kernel", "MB")


def scale_subshells(wire: Wire, settings: Settings, out: Results) -> None:
    features = wire.kernel_info.get("supported_features") or []
    if "kernel subshells" not in features:
        raise Unsupported("the kernel does not list 'kernel subshells' in supported_features")
    ids: list[str] = []
    count = scaled(SCALE_SUBSHELLS, settings)
    out[SCALE_SUBSHELLS_TIME.key].notes.append(f"{count} subshells")
    try:
        for _ in range(count):
            sent = wire.send("control", "create_subshell_request")
            reply = wire.wait_for(reply_to(sent), CELL_TIMEOUT, "the create_subshell_reply")
            if reply.content.get("status") != "ok":
                raise Failed(f"create_subshell_request: {reply.content}")
            ids.append(str(reply.content["subshell_id"]))
        code = f"import time\ntime.sleep({SCALE_SUBSHELL_CELL_SECONDS})"
        started = time.perf_counter()
        sent_all = [wire.execute(code, subshell_id=i) for i in ids]
        waiting = {s.msg_id for s in sent_all}

        def all_replied(a: Received) -> bool:
            if a.msg_type == "execute_reply":
                waiting.discard(a.parent_id or "")
            return not waiting

        last = wire.wait_for(all_replied, SCALE_TIMEOUT, "every subshell's execute_reply")
        out[SCALE_SUBSHELLS_TIME.key].samples.append(last.time - started)
    finally:
        for subshell_id in ids:
            sent = wire.send("control", "delete_subshell_request", {"subshell_id": subshell_id})
            wire.wait_for(reply_to(sent), CELL_TIMEOUT, "the delete_subshell_reply")


# -- scale: a large display payload -----------------------------------------------------------
SCALE_PAYLOAD_TIME = Metric(
    "scale_payload", "scale: one display of N MB (text/plain): request -> idle", "s"
)
SCALE_PAYLOAD_PEAK = Metric("scale_payload_peak", "... peak memory of the kernel", "MB")


def scale_payload(wire: Wire, settings: Settings, out: Results) -> None:
    size = scaled(SCALE_PAYLOAD_BYTES, settings)
    out[SCALE_PAYLOAD_TIME.key].notes.append(f"{size / 2**20:g} MB")
    code = f"from IPython.display import display\ndisplay({{'text/plain': 'x' * {size}}}, raw=True)"
    sent = wire.execute(code)
    reply, idle = wire.finish(sent, SCALE_TIMEOUT)
    if reply.content.get("status") != "ok":
        raise Failed(f"the display cell failed: {reply.content.get('ename')}")
    shown = [a for a in wire.log if a.parent_id == sent.msg_id and a.msg_type == "display_data"]
    got = sum(len(str(a.content.get("data", {}).get("text/plain", ""))) for a in shown)
    if got != size:
        raise Failed(f"{got:,} of {size:,} bytes arrived")
    out[SCALE_PAYLOAD_TIME.key].samples.append(idle.time - sent.time)
    wire.forget()


# -- scale: many prints -----------------------------------------------------------------------
SCALE_PRINTS_TIME = Metric("scale_prints", "scale: N short prints: request -> idle", "s")
SCALE_PRINTS_PEAK = Metric("scale_prints_peak", "... peak memory of the kernel", "MB")


def scale_prints(wire: Wire, settings: Settings, out: Results) -> None:
    count = scaled(SCALE_PRINTS, settings)
    out[SCALE_PRINTS_TIME.key].notes.append(f"{count:,} prints")
    sent = wire.execute(f"for i in range({count}):\n    print(i)")
    _, idle = wire.finish(sent, SCALE_TIMEOUT)
    lines = sum(
        str(a.content.get("text", "")).count("\n")
        for a in wire.log
        if a.parent_id == sent.msg_id and a.msg_type == "stream"
    )
    if lines != count:
        out[SCALE_PRINTS_TIME.key].notes.append(f"{lines:,} of {count:,} lines arrived")
    out[SCALE_PRINTS_TIME.key].samples.append(idle.time - sent.time)
    wire.forget()


def _ordered() -> tuple[Workload, ...]:
    rest: list[Workload] = []
    for workload in WORKLOADS:
        if workload.name == "stdout":  # the session's first completion, seconds after start
            rest.append(
                Workload("completion", (COMPLETE_FIRST, COMPLETE_NEW, COMPLETE_REPEAT), completion)
            )
        if workload.name == "interrupt_busy":
            rest.append(Workload("interrupt_first", (INTERRUPT_FIRST,), interrupt_first))
        rest.append(workload)
        if workload.name == "pipelined":
            rest.append(Workload("pipelined_x1", (PIPELINED_X1,), pipelined_assignments))
        if workload.name == "interrupt_await":
            rest.append(Workload("interrupt_asyncio", (INTERRUPT_ASYNCIO,), interrupt_asyncio))
    scale = [
        Workload(
            "scale_comms",
            (SCALE_COMMS_TIME, SCALE_COMMS_PEAK),
            _scale(SCALE_COMMS_TIME, SCALE_COMMS_PEAK, scale_comms),
        ),
        Workload(
            "scale_subshells",
            (SCALE_SUBSHELLS_TIME, SCALE_SUBSHELLS_PEAK),
            _scale(SCALE_SUBSHELLS_TIME, SCALE_SUBSHELLS_PEAK, scale_subshells),
        ),
        Workload(
            "scale_payload",
            (SCALE_PAYLOAD_TIME, SCALE_PAYLOAD_PEAK),
            _scale(SCALE_PAYLOAD_TIME, SCALE_PAYLOAD_PEAK, scale_payload),
        ),
        Workload(
            "scale_prints",
            (SCALE_PRINTS_TIME, SCALE_PRINTS_PEAK),
            _scale(SCALE_PRINTS_TIME, SCALE_PRINTS_PEAK, scale_prints),
        ),
    ]
    return (*rest, *scale)


#: Every workload, in the order the runner takes them.
ALL_WORKLOADS: tuple[Workload, ...] = _ordered()

#: What the floor kernel (which runs no code) is measured on.
FLOOR_WORKLOADS = frozenset({"rss_start", "round_trip", "pipelined", "pipelined_x1"})

#: Every metric in report order; start-up is measured by the runner, which starts the kernels.
ALL_METRICS: tuple[Metric, ...] = (
    STARTUP,
    STARTUP_EXEC,
    *(m for w in ALL_WORKLOADS for m in w.metrics),
)
