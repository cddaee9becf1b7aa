"""The bench's comm workloads: a comm round trip while a cell awaits, and a widget update
waking the cell that awaits it (both measure whether comms are served during a cell)."""

from __future__ import annotations

import time
import uuid

from cokernel_harness.bench_model import (
    CELL_TIMEOUT,
    COMM_CELL_PATIENCE,
    COMM_ECHO_TIMEOUT,
    SETTLE,
    Failed,
    Metric,
    Results,
    Settings,
    ms,
)
from cokernel_harness.bench_wire import Predicate, Sent, Wire, reply_to
from cokernel_harness.messages import Received, WaitTimeout

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
        opened = wire.wait_for(_comm_open_or_end(target, cell), CELL_TIMEOUT, "the comm_open")
        if opened.msg_type != "comm_open":  # the cell ended first: it could not open a comm
            content = opened.content
            raise Failed(f"the comm cell ended: {content.get('ename')}: {content.get('evalue')}")
        comm_id = opened.content["comm_id"]
        time.sleep(SETTLE)
        blocked = False
        for seq in range(settings.comm_messages):
            sent = wire.send("shell", "comm_msg", {"comm_id": comm_id, "data": {"seq": seq}})
            try:
                echo = wire.wait_for(_echo_of(comm_id, seq), COMM_ECHO_TIMEOUT, "the echo")
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
        opened = wire.wait_for(_widget_or_end(description, cell), CELL_TIMEOUT, "the slider")
        if opened.msg_type != "comm_open":
            content = opened.content
            raise Failed(f"the widget cell ended: {content.get('ename')}: {content.get('evalue')}")
        comm_id = opened.content["comm_id"]
        subshell_id: str | None = None
        if on_subshell:
            sent = wire.send("control", "create_subshell_request")
            reply = wire.wait_for(reply_to(sent), CELL_TIMEOUT, "the create_subshell_reply")
            if reply.content.get("status") != "ok":
                raise Failed(f"create_subshell_request: {reply.content}")
            subshell_id = str(reply.content["subshell_id"])
        late = False
        for value in range(1, settings.comm_messages + 1):
            wire.wait_for(_custom(comm_id, "waiting", value), CELL_TIMEOUT, "the cell to await")
            update = {"method": "update", "state": {"value": value}, "buffer_paths": []}
            sent = wire.send(
                "shell", "comm_msg", {"comm_id": comm_id, "data": update}, subshell_id=subshell_id
            )
            woke = wire.wait_for(
                _custom(comm_id, "woke", value), WIDGET_WAKE_PATIENCE + CELL_TIMEOUT, "wake-up"
            )
            if (woke.content.get("data") or {}).get("content", {}).get("late"):
                late = True
                break
            result.samples.append(ms(woke.time - sent.time))
        wire.finish(cell, CELL_TIMEOUT)
        if subshell_id is not None:
            sent = wire.send("control", "delete_subshell_request", {"subshell_id": subshell_id})
            wire.wait_for(reply_to(sent), CELL_TIMEOUT, "the delete_subshell_reply")
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
