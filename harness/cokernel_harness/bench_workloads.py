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
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from cokernel_harness.bench_wire import Predicate, Sent, Unsupported, Wire, iopub_of, reply_to
from cokernel_harness.messages import Received, WaitTimeout

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
    wire.wait(iopub_of(sent, "execute_input"), CELL_TIMEOUT, "the execute_input of the cell")
    time.sleep(SETTLE)
    return sent


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
        last = wire.wait(
            _last(sent, _is_reply), PIPELINE_TIMEOUT, "the last execute_reply of the batch"
        )
        out[PIPELINED.key].samples.append(settings.pipelined / (last.time - started))
        # Untimed: every request's idle status, so that the next batch starts clean.
        wire.wait(_last(sent, _is_idle), PIPELINE_TIMEOUT, "the last idle status of the batch")


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
                reply = wire.wait(reply_to(sent), bound, f"the kernel_info_reply on {channel}")
                out[metric.key].samples.append(ms(reply.time - sent.time))
                if metric is shell and reply.time - sent.time > settings.block_seconds / 2:
                    queued += 1
            wire.finish(running, bound)
        if queued:
            out[shell.key].notes.append(f"queued behind the cell {queued}/{settings.repeat}x")

    return run


# -- comm round trip while a cell awaits ------------------------------------------------------
COMM_LATENCY = Metric("comm_latency", "comm_msg -> echo, while the cell awaits", "ms")

# The cell opens a comm (to a target the frontend need not know) and echoes every comm_msg,
# until the frontend says stop or its patience runs out: on a kernel that queues comm_msg
# behind the cell, the cell must end by itself. async-kernel publishes comm messages without
# a parent header, so the runner matches them by target name and comm_id, not by parent.
_COMM_CELL = """\
import anyio, comm
_bench_stop = anyio.Event()
_bench_comm = comm.create_comm(target_name={target!r})
def _bench_echo(msg):
    data = msg["content"]["data"]
    if data.get("stop"):
        _bench_stop.set()
    else:
        _bench_comm.send({{"echo": data["seq"]}})
_bench_comm.on_msg(_bench_echo)
with anyio.move_on_after({patience}):
    await _bench_stop.wait()
_bench_comm.close()
"""


def comm_while_awaiting(wire: Wire, settings: Settings, out: Results) -> None:
    result = out[COMM_LATENCY.key]
    for _ in range(settings.repeat):
        wire.forget()
        target = f"cokernel.bench.{uuid.uuid4().hex[:12]}"
        cell = wire.execute(_COMM_CELL.format(target=target, patience=COMM_CELL_PATIENCE))
        opened = wire.wait(_comm_open_or_end(target, cell), CELL_TIMEOUT, "the comm_open")
        if opened.msg_type != "comm_open":  # the cell ended first: it could not open a comm
            content = opened.content
            raise Failed(f"the comm cell ended: {content.get('ename')}: {content.get('evalue')}")
        comm_id = opened.content["comm_id"]
        time.sleep(SETTLE)
        blocked = False
        for seq in range(settings.comm_messages):
            sent = wire.send("shell", "comm_msg", {"comm_id": comm_id, "data": {"seq": seq}})
            try:
                echo = wire.wait(_echo_of(comm_id, seq), COMM_ECHO_TIMEOUT, "the echo")
            except WaitTimeout:
                blocked = True
                break
            result.samples.append(ms(echo.time - sent.time))
        wire.send("shell", "comm_msg", {"comm_id": comm_id, "data": {"stop": True}})
        wire.finish(cell, COMM_CELL_PATIENCE + CELL_TIMEOUT)
        if blocked:
            result.status = "blocked"
            result.notes.append(
                f"no echo within {COMM_ECHO_TIMEOUT:g} s while the cell awaited"
                f" (after {len(result.samples)} echoes)"
            )
            return


def _comm_open_or_end(target: str, cell: Sent) -> Predicate:
    """Match the cell's comm_open to ``target``, or its execute_reply if it ends first."""
    ended = reply_to(cell)

    def match(a: Received) -> bool:
        opened = a.msg_type == "comm_open" and a.content.get("target_name") == target
        return opened or ended(a)

    return match


def _echo_of(comm_id: str, seq: int) -> Predicate:
    def match(a: Received) -> bool:
        if a.msg_type != "comm_msg" or a.content.get("comm_id") != comm_id:
            return False
        data = a.content.get("data") or {}
        return bool(data.get("echo") == seq)

    return match


# -- a widget's update wakes the cell awaiting it ---------------------------------------------
WIDGET_WAKE = Metric(
    "widget_wake",
    "widget comm_msg (on a subshell, as JupyterLab) -> awaiting cell wakes",
    "ms",
)
WIDGET_WAKE_PATIENCE = 3.0

# The cell makes a slider and awaits each new value in turn. It tells the page when it is about
# to await (a custom widget message "waiting") and when it woke ("woke"), so the bench sends
# each value while the cell awaits and times send -> wake-up from the page's side. A kernel that
# never wakes the cell lets it wake at its own deadline ("late") and the workload stops there.
_WAKE_CELL = """\
import anyio, ipywidgets
_wake_slider = ipywidgets.IntSlider(value=0, description={description!r})
_wake_event = [anyio.Event()]
_wake_slider.observe(lambda change: _wake_event[0].set(), names="value")
for _wake_i in range(1, {count} + 1):
    _wake_late = False
    _wake_event[0] = anyio.Event()
    if _wake_slider.value < _wake_i:
        _wake_slider.send({{"waiting": _wake_i}})
        with anyio.move_on_after({patience}) as _wake_scope:
            while _wake_slider.value < _wake_i:
                await _wake_event[0].wait()
                _wake_event[0] = anyio.Event()
        _wake_late = anyio.current_time() >= _wake_scope.deadline
    _wake_slider.send({{"woke": _wake_i, "late": _wake_late}})
    if _wake_late:
        break
for _wake_widget in (_wake_slider.layout, _wake_slider.style, _wake_slider):
    _wake_widget.close()
"""


def widget_wake(wire: Wire, settings: Settings, out: Results) -> None:
    """How soon a cell awaiting a widget value wakes once the page sends it.

    JupyterLab (4.4+, default setting) sends a widget's comm messages on a subshell of the
    ``jupyter.widget`` target when the kernel supports subshells; the bench does the same
    (one subshell, made when the widget appears, deleted at the end). A kernel without
    subshells gets them on the main shell, as JupyterLab then sends them.
    """
    result = out[WIDGET_WAKE.key]
    features = wire.kernel_info.get("supported_features") or []
    on_subshell = "kernel subshells" in features
    if not on_subshell:
        result.notes.append("no subshells: sent on the main shell")
    for _ in range(settings.repeat):
        wire.forget()
        description = f"bench-wake-{uuid.uuid4().hex[:8]}"
        code = _WAKE_CELL.format(
            description=description, count=settings.comm_messages, patience=WIDGET_WAKE_PATIENCE
        )
        cell = wire.execute(code)
        opened = wire.wait(_widget_or_end(description, cell), CELL_TIMEOUT, "the slider")
        if opened.msg_type != "comm_open":
            content = opened.content
            raise Failed(f"the widget cell ended: {content.get('ename')}: {content.get('evalue')}")
        comm_id = opened.content["comm_id"]
        subshell_id: str | None = None
        if on_subshell:
            sent = wire.send("control", "create_subshell_request")
            reply = wire.wait(reply_to(sent), CELL_TIMEOUT, "the create_subshell_reply")
            if reply.content.get("status") != "ok":
                raise Failed(f"create_subshell_request: {reply.content}")
            subshell_id = str(reply.content["subshell_id"])
        late = False
        for value in range(1, settings.comm_messages + 1):
            wire.wait(_custom(comm_id, "waiting", value), CELL_TIMEOUT, "the cell to await")
            update = {"method": "update", "state": {"value": value}, "buffer_paths": []}
            sent = wire.send(
                "shell", "comm_msg", {"comm_id": comm_id, "data": update}, subshell_id=subshell_id
            )
            woke = wire.wait(
                _custom(comm_id, "woke", value), WIDGET_WAKE_PATIENCE + CELL_TIMEOUT, "wake-up"
            )
            if (woke.content.get("data") or {}).get("content", {}).get("late"):
                late = True
                break
            result.samples.append(ms(woke.time - sent.time))
        wire.finish(cell, CELL_TIMEOUT)
        if subshell_id is not None:
            sent = wire.send("control", "delete_subshell_request", {"subshell_id": subshell_id})
            wire.wait(reply_to(sent), CELL_TIMEOUT, "the delete_subshell_reply")
        if late:
            result.status = "blocked"
            result.notes.append(
                f"the cell woke only at its {WIDGET_WAKE_PATIENCE:g} s deadline"
                f" (after {len(result.samples)} prompt wake-ups)"
            )
            return


def _widget_or_end(description: str, cell: Sent) -> Predicate:
    """Match the comm_open of the slider called ``description``, or the cell's reply."""
    ended = reply_to(cell)

    def match(a: Received) -> bool:
        if a.msg_type == "comm_open":
            state = (a.content.get("data") or {}).get("state") or {}
            return bool(state.get("description") == description)
        return ended(a)

    return match


def _custom(comm_id: str, key: str, value: int) -> Predicate:
    """Match the widget's custom message ``{key: value}`` (sent by the cell)."""

    def match(a: Received) -> bool:
        if a.msg_type != "comm_msg" or a.content.get("comm_id") != comm_id:
            return False
        data = a.content.get("data") or {}
        content = data.get("content") or {}
        return bool(data.get("method") == "custom" and content.get(key) == value)

    return match


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
        reply = wire.wait(reply_to(sent), CELL_TIMEOUT, "the create_subshell_reply")
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
            reply = wire.wait(reply_to(sent), bound, "the execute_reply on the subshell")
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
        wire.wait(reply_to(sent), CELL_TIMEOUT, "the delete_subshell_reply")


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
                reply = wire.wait(
                    reply_to(cell), INTERRUPT_TIMEOUT, "the execute_reply after the interrupt"
                )
                result.samples.append(ms(reply.time - started))
                enames.add(str(reply.content.get("ename", reply.content.get("status"))))
                wire.wait(iopub_of(cell, "status", "idle"), CELL_TIMEOUT, "the idle status")
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

STARTUP = Metric("startup", "start-up: launch -> first kernel_info_reply", "ms")

#: Every metric in report order; start-up is measured by the runner, which starts the kernels.
METRICS: tuple[Metric, ...] = (STARTUP, *(m for w in WORKLOADS for m in w.metrics))
