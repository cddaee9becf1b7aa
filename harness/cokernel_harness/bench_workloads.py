"""What the bench runner measures: the metrics, and the workloads that take their samples.

A :class:`Workload` drives one started kernel (a :class:`~cokernel_harness.bench_wire.Wire`)
and appends samples to the :class:`Result` of each of its metrics. Every wait it makes is
bounded. A workload reports what a kernel *does* rather than failing on it: a shell request
that queues behind a sleeping cell is a sample of about the cell's length, a comm message
that is not handled while a cell awaits is ``blocked``. Only a kernel that stops answering
makes a workload raise (:class:`~cokernel_harness.bench_wire.WaitTimeout`,
:class:`~cokernel_harness.bench_wire.KernelDied`); the runner then records ``timeout`` or
``failed`` and restarts the kernel before the next workload.

The awaiting cells use anyio (``await anyio.sleep``, ``anyio.Event``), which runs on whichever
loop a kernel's top-level ``await`` uses: asyncio kernels (ipykernel, async-kernel, cokernel)
and trio ones (cokernel ``--backend trio``) are measured by the same cells.
"""

from __future__ import annotations

import time

from cokernel_harness.bench_comms import (
    COMM_LATENCY,
    WIDGET_WAKE,
    comm_while_awaiting,
    widget_wake,
)
from cokernel_harness.bench_model import (
    CELL_TIMEOUT,
    INTERRUPT_TIMEOUT,
    PIPELINE_TIMEOUT,
    STARTUP,
    STDOUT_TIMEOUT,
    WARMUP,
    Failed,
    Metric,
    Results,
    Run,
    Settings,
    Workload,
    ms,
    run_cell,
    start_cell,
)
from cokernel_harness.bench_wire import Predicate, Sent, Unsupported, Wire, iopub_of, reply_to
from cokernel_harness.messages import Received, WaitTimeout

# -- memory ---------------------------------------------------------------------------------
RSS_START = Metric("rss_start", "memory (RSS) after start-up", "MB")
RSS_END = Metric("rss_end", "memory (RSS) after the workloads, before interrupts", "MB")


def _rss(metric: Metric) -> Run:
    def run(wire: Wire, settings: Settings, out: Results) -> None:
        out[metric.key].samples.append(wire.rss_bytes() / 1e6)
        if wire.restarts:
            out[metric.key].notes.append(f"kernel was restarted {wire.restarts}x")

    return run


# -- execute round trip -----------------------------------------------------------------------
ROUNDTRIP_PASS = Metric("roundtrip_pass", "execute `pass`: request -> idle", "ms")
ROUNDTRIP_EXPR = Metric("roundtrip_expr", "execute `1` (has a result): request -> idle", "ms")


def round_trips(wire: Wire, settings: Settings, out: Results) -> None:
    for _ in range(WARMUP):
        run_cell(wire, "pass")
    # Interleaved, so that a noisy moment on the machine hits both alike.
    for _ in range(settings.round_trips):
        wire.forget()
        for metric, code in ((ROUNDTRIP_PASS, "pass"), (ROUNDTRIP_EXPR, "1")):
            sent, idle = run_cell(wire, code)
            out[metric.key].samples.append(ms(idle.time - sent.time))


# -- pipelined throughput ---------------------------------------------------------------------
PIPELINED = Metric(
    "pipelined", "pipelined `pass` requests: sent at once -> last reply", "msg/s", True
)


def pipelined(wire: Wire, settings: Settings, out: Results) -> None:
    for _ in range(settings.repeat):
        wire.forget()
        started = time.perf_counter()
        sent = [wire.execute("pass") for _ in range(settings.pipelined)]
        last = wire.wait_for(
            _last(sent, _is_reply), PIPELINE_TIMEOUT, "the last execute_reply of the batch"
        )
        out[PIPELINED.key].samples.append(settings.pipelined / (last.time - started))
        # Untimed: every request's idle status, so that the next batch starts clean.
        wire.wait_for(_last(sent, _is_idle), PIPELINE_TIMEOUT, "the last idle status of the batch")


def _is_reply(a: Received) -> bool:
    return a.msg_type == "execute_reply"


def _is_idle(a: Received) -> bool:
    return a.msg_type == "status" and a.content.get("execution_state") == "idle"


def _last(sent: list[Sent], kind: Predicate) -> Predicate:
    """Match the message of ``kind`` that completes one such message for each of ``sent``."""
    waiting = {s.msg_id for s in sent}

    def match(a: Received) -> bool:
        if kind(a):
            waiting.discard(a.parent_id or "")
        return not waiting

    return match


# -- stdout throughput ------------------------------------------------------------------------
STDOUT_TIME = Metric("stdout_time", "cell printing many lines: request -> idle", "s")
STDOUT_MESSAGES = Metric("stdout_messages", "... stream messages it took", "msgs")


def stdout_flood(wire: Wire, settings: Settings, out: Results) -> None:
    lines = settings.stdout_lines
    code = f"for i in range({lines}):\n    print(i)"
    out[STDOUT_TIME.key].notes.append(f"{lines:,} lines")
    for _ in range(settings.repeat):
        wire.forget()
        sent = wire.execute(code)
        try:
            _, idle = wire.finish(sent, STDOUT_TIMEOUT)
        except WaitTimeout:
            got, messages = _stream_lines(wire, sent)
            out[STDOUT_TIME.key].notes.append(
                f"{got:,} of {lines:,} lines in {messages:,} messages before the timeout"
            )
            raise
        got, messages = _stream_lines(wire, sent)
        if got != lines:
            out[STDOUT_TIME.key].notes.append(f"{got:,} of {lines:,} lines arrived")
        out[STDOUT_TIME.key].samples.append(idle.time - sent.time)
        out[STDOUT_MESSAGES.key].samples.append(float(messages))


def _stream_lines(wire: Wire, sent: Sent) -> tuple[int, int]:
    """Lines printed by the cell ``sent`` that have arrived so far, and in how many messages."""
    streams = [a for a in wire.log if a.parent_id == sent.msg_id and a.msg_type == "stream"]
    return sum(str(a.content.get("text", "")).count("\n") for a in streams), len(streams)


# -- kernel_info while a cell blocks or awaits ------------------------------------------------
BLOCKING_CONTROL = Metric("blocking_control", "kernel_info on control, cell in time.sleep", "ms")
BLOCKING_SHELL = Metric("blocking_shell", "kernel_info on shell, cell in time.sleep", "ms")
AWAITING_CONTROL = Metric("awaiting_control", "kernel_info on control, cell awaits sleep", "ms")
AWAITING_SHELL = Metric("awaiting_shell", "kernel_info on shell, cell awaits sleep", "ms")


def _info_while(cell: str, control: Metric, shell: Metric) -> Run:
    def run(wire: Wire, settings: Settings, out: Results) -> None:
        code = cell.format(seconds=settings.block_seconds)
        bound = settings.block_seconds + CELL_TIMEOUT
        queued = 0
        for _ in range(settings.repeat):
            wire.forget()
            running = start_cell(wire, code)
            on_control = wire.send("control", "kernel_info_request")
            on_shell = wire.send("shell", "kernel_info_request")
            for metric, sent in ((control, on_control), (shell, on_shell)):
                channel = metric.key.split("_")[1]
                reply = wire.wait_for(reply_to(sent), bound, f"the kernel_info_reply on {channel}")
                out[metric.key].samples.append(ms(reply.time - sent.time))
                if metric is shell and reply.time - sent.time > settings.block_seconds / 2:
                    queued += 1
            wire.finish(running, bound)
        if queued:
            out[shell.key].notes.append(f"queued behind the cell {queued}/{settings.repeat}x")

    return run


# -- subshells --------------------------------------------------------------------------------
SUBSHELL_CREATE = Metric("subshell_create", "create_subshell_request -> reply", "ms")
SUBSHELL_EXEC = Metric(
    "subshell_exec", "execute `1` on a subshell while the main shell sleeps: request -> reply", "ms"
)


def subshells(wire: Wire, settings: Settings, out: Results) -> None:
    """Kernel subshells (JEP 91): the cost of creating one, and how fast a cell on it answers
    while the main shell is blocked in ``time.sleep``."""
    features = wire.kernel_info.get("supported_features") or []
    if "kernel subshells" not in features:
        raise Unsupported("the kernel does not list 'kernel subshells' in supported_features")
    created = out[SUBSHELL_CREATE.key]
    executed = out[SUBSHELL_EXEC.key]
    subshell_ids: list[str] = []
    for _ in range(settings.repeat):
        sent = wire.send("control", "create_subshell_request")
        reply = wire.wait_for(reply_to(sent), CELL_TIMEOUT, "the create_subshell_reply")
        if reply.content.get("status") != "ok":
            raise Failed(f"create_subshell_request: {reply.content}")
        created.samples.append(ms(reply.time - sent.time))
        subshell_ids.append(str(reply.content["subshell_id"]))
    code = f"import time\ntime.sleep({settings.block_seconds})"
    bound = settings.block_seconds + CELL_TIMEOUT
    samples_per_block = max(settings.round_trips // 10, 1)
    for subshell_id in subshell_ids:
        wire.forget()
        running = start_cell(wire, code)
        for _ in range(samples_per_block):
            sent = wire.execute("1", subshell_id=subshell_id)
            reply = wire.wait_for(reply_to(sent), bound, "the execute_reply on the subshell")
            if reply.content.get("status") != "ok":
                raise Failed(f"execute on a subshell: {reply.content}")
            executed.samples.append(ms(reply.time - sent.time))
            if reply.time - running.time > settings.block_seconds:
                late = "the main shell's cell ended before all samples were taken"
                if late not in executed.notes:
                    executed.notes.append(late)
                break
        wire.finish(running, bound)
    for subshell_id in subshell_ids:
        sent = wire.send("control", "delete_subshell_request", {"subshell_id": subshell_id})
        wire.wait_for(reply_to(sent), CELL_TIMEOUT, "the delete_subshell_reply")


# -- interrupts -------------------------------------------------------------------------------
INTERRUPT_BUSY = Metric("interrupt_busy", "interrupt `while True: pass` -> reply", "ms")
INTERRUPT_SLEEP = Metric("interrupt_sleep", "interrupt `time.sleep(100)` -> reply", "ms")
INTERRUPT_AWAIT = Metric("interrupt_await", "interrupt `await anyio.sleep(100)` -> reply", "ms")


def _interrupt(code: str, metric: Metric, *, blocking_call: bool = False) -> Run:
    def run(wire: Wire, settings: Settings, out: Results) -> None:
        if blocking_call and not wire.interrupts_blocking_calls:
            raise Unsupported(
                "cells run on a thread other than the main one, where CPython cannot interrupt "
                "a blocking call such as time.sleep"
            )
        result = out[metric.key]
        enames: set[str] = set()
        try:
            for _ in range(settings.interrupts):
                wire.forget()
                cell = start_cell(wire, code)
                started = wire.interrupt()
                reply = wire.wait_for(
                    reply_to(cell), INTERRUPT_TIMEOUT, "the execute_reply after the interrupt"
                )
                result.samples.append(ms(reply.time - started))
                enames.add(str(reply.content.get("ename", reply.content.get("status"))))
                wire.wait_for(iopub_of(cell, "status", "idle"), CELL_TIMEOUT, "the idle status")
        finally:
            result.notes.insert(0, ", ".join([f"{wire.interrupt_mode} mode", *sorted(enames)]))

    return run


WORKLOADS: tuple[Workload, ...] = (
    Workload("rss_start", (RSS_START,), _rss(RSS_START)),
    Workload("round_trip", (ROUNDTRIP_PASS, ROUNDTRIP_EXPR), round_trips),
    Workload("pipelined", (PIPELINED,), pipelined),
    Workload("stdout", (STDOUT_TIME, STDOUT_MESSAGES), stdout_flood),
    Workload(
        "blocking",
        (BLOCKING_CONTROL, BLOCKING_SHELL),
        _info_while("import time\ntime.sleep({seconds})", BLOCKING_CONTROL, BLOCKING_SHELL),
    ),
    Workload(
        "awaiting",
        (AWAITING_CONTROL, AWAITING_SHELL),
        _info_while("import anyio\nawait anyio.sleep({seconds})", AWAITING_CONTROL, AWAITING_SHELL),
    ),
    Workload("comm", (COMM_LATENCY,), comm_while_awaiting),
    Workload("widget_wake", (WIDGET_WAKE,), widget_wake),
    Workload("subshells", (SUBSHELL_CREATE, SUBSHELL_EXEC), subshells),
    # Before the interrupts: a kernel that cannot be interrupted is restarted, and the RSS of
    # a fresh process says nothing about what the workloads cost.
    Workload("rss_end", (RSS_END,), _rss(RSS_END)),
    Workload(
        "interrupt_busy", (INTERRUPT_BUSY,), _interrupt("while True:\n    pass", INTERRUPT_BUSY)
    ),
    Workload(
        "interrupt_sleep",
        (INTERRUPT_SLEEP,),
        _interrupt("import time\ntime.sleep(100)", INTERRUPT_SLEEP, blocking_call=True),
    ),
    Workload(
        "interrupt_await",
        (INTERRUPT_AWAIT,),
        _interrupt("import anyio\nawait anyio.sleep(100)", INTERRUPT_AWAIT),
    ),
)


#: Every metric in report order; start-up is measured by the runner, which starts the kernels.
METRICS: tuple[Metric, ...] = (STARTUP, *(m for w in WORKLOADS for m in w.metrics))
