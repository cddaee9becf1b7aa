"""Bounded memory without losing messages (issue #13): real kernel processes over real ZMQ.

- A comm burst far larger than the shell backlog's bound is echoed completely and in order,
  while the kernel's memory stays near idle: the burst waits in ZMQ and in the sender.
- A subscriber that never reads costs the kernel at most its iopub high-water mark, while a
  reading client still gets every display, in order.
- While the main shell's lane is at its bound behind a blocked cell, control answers, an
  interrupt gets through, and a comm message the blocked cell waits for still reaches it.
- A cell whose output outruns the io thread waits for room in the outbox instead of growing it
  (the io thread held back by a gate, so the outcome never depends on the machine's load), and
  a cell waiting there is still interrupted.

RSS assertions bound memory, never time. Their thresholds come from measurement (see
docs/reliability.md, "Bounded memory"): each sits several times above what the bounded kernel
grows by, and well below what the unbounded kernel grew by on the same load.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import zmq

from cokernel.protocol import Channel
from cokernel.protocol._backlog import HARD_FACTOR, ShellBacklog
from cokernel.protocol._request import Request
from cokernel_harness.messages import execute_content
from cokernel_harness.rawkernel import RawKernel

KERNEL = "cokernel"
MIB = 2**20


def _execute(code: str, *, stop_on_error: bool = True) -> dict[str, Any]:
    return execute_content(code, store_history=False, stop_on_error=stop_on_error)


def _warm(kernel: RawKernel) -> None:
    """A cell and a completion: the kernel in use, at rest (the completer loaded)."""
    kernel.reply_to("shell", kernel.send("shell", "execute_request", _execute("1")), 60)
    completion = {"code": "int.bit_l", "cursor_pos": 9}
    kernel.reply_to("shell", kernel.send("shell", "complete_request", completion), 60)
    # The warm-up thread (jedi, and what a first traceback imports) starts after the first
    # cell and may still be loading: its memory is not the burst's.
    join = (
        "import threading\n[t.join() for t in threading.enumerate() if t.name == 'cokernel-warmup']"
    )
    kernel.reply_to("shell", kernel.send("shell", "execute_request", _execute(join)), 60)


@pytest.fixture
def small_backlog(monkeypatch: pytest.MonkeyPatch, isolated_env: Path) -> None:
    """Kernels started in this test hold at most 20 unstarted shell requests (4x20 when
    stalled): a burst of a few hundred messages is far beyond the bound."""
    monkeypatch.setenv("COKERNEL_SHELL_BACKLOG", "20")


BLOCKING_ECHO = """
import comm

def _echo_target(c, msg):
    @c.on_msg
    def _echo(m):
        n = m["content"]["data"]["n"]
        if n == 0:  # the first message holds the comm's lane until the test writes the fifo
            with open({fifo!r}, "rb") as gate:
                gate.read(1)
        c.send({{"n": n}})

comm.get_comm_manager().register_target("test.backpressure.echo", _echo_target)
"""


class _PeakRss(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = self.process.memory_info().rss / MIB
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.01):  # sampling, not waiting for anything
            self.peak = max(self.peak, self.process.memory_info().rss / MIB)


REFUSED_MS = 2000


@pytest.mark.timeout(600)
def test_a_comm_burst_far_beyond_the_bound_is_all_echoed_in_order_in_bounded_memory(
    small_backlog: None, tmp_path: Path
) -> None:
    fifo = tmp_path / "gate"
    os.mkfifo(fifo)
    kernel = RawKernel(KERNEL)
    sampler: _PeakRss | None = None
    try:
        iopub = kernel.subscriber()
        _subscribed(kernel, [iopub])
        _warm(kernel)
        code = BLOCKING_ECHO.format(fifo=str(fifo))
        kernel.reply_to("shell", kernel.send("shell", "execute_request", _execute(code)), 60)
        open_msg = {"comm_id": "echo", "target_name": "test.backpressure.echo", "data": {}}
        kernel.send("shell", "comm_open", open_msg)
        kernel.reply_to("shell", kernel.send("shell", "kernel_info_request"), 60)
        idle = psutil.Process(kernel.pid).memory_info().rss / MIB
        sampler = _PeakRss(kernel.pid)
        sampler.start()
        # 3,000 messages of 20 KiB (60 MiB), sent while the first one holds the comm's lane:
        # the kernel takes its bound's worth, then pushes back; the sender stops at the first
        # refusal, releases the lane, and sends the rest as the kernel takes them.
        burst, pad = 3000, "x" * 20480
        frames = [
            kernel.session.serialize(
                kernel.session.msg("comm_msg", {"comm_id": "echo", "data": {"n": n, "pad": pad}})
            )
            for n in range(burst)
        ]
        shell = kernel.sockets["shell"]
        sent = 0
        # Refused: for REFUSED_MS the shell socket had no room (a kernel that reads takes 20
        # KiB in well under a millisecond; one that has stopped reading never takes it).
        while sent < burst and shell.poll(REFUSED_MS, zmq.POLLOUT):
            shell.send_multipart(frames[sent], zmq.NOBLOCK)
            sent += 1
        refused = sent < burst
        with open(fifo, "wb") as gate:  # opens once the first echo waits on it
            gate.write(b"x")
        echoed: list[int] = []
        deadline = time.monotonic() + 300

        def read(until: float) -> None:
            msg = kernel.receive(iopub, until)
            if msg is not None and msg["msg_type"] == "comm_msg":
                echoed.append(int(msg["content"]["data"]["n"]))

        while sent < burst:
            assert time.monotonic() < deadline, f"the kernel took only {sent} messages"
            try:
                shell.send_multipart(frames[sent], zmq.NOBLOCK)
                sent += 1
            except zmq.Again:
                read(time.monotonic() + 0.1)
        while len(echoed) < burst:
            assert time.monotonic() < deadline, f"{len(echoed)} of {burst} echoes came"
            read(deadline)
        sampler.stop.set()
        sampler.join()
        assert echoed == list(range(burst))  # every one, in order
        # Measured: unbounded, the kernel read the whole burst and grew by 50 MiB; bounded (20
        # requests, 80 when stalled, SHELL_RCVHWM = 100 in ZMQ), by 7 MiB. 20 MiB: about three
        # times the bounded figure, under half the unbounded one.
        assert sampler.peak - idle < 20, f"idle {idle:.1f} MiB, peak {sampler.peak:.1f} MiB"
        # Backpressure was visible to the sender: the kernel stopped taking messages.
        assert refused
        iopub.close(linger=0)
    finally:
        if sampler is not None:
            sampler.stop.set()
        kernel.close()


@pytest.mark.timeout(600)
def test_a_never_reading_subscriber_costs_at_most_its_high_water_mark(
    isolated_env: Path,
) -> None:
    displays = 100_000
    kernel = RawKernel(KERNEL)
    try:
        reader = kernel.subscriber()
        # Its own libzmq takes one message and then leaves the rest on the network: the kernel
        # is the one that would hold them for it.
        deaf = kernel.subscriber(rcvhwm=1)
        _subscribed(kernel, [reader, deaf])
        _warm(kernel)
        process = psutil.Process(kernel.pid)
        idle = process.memory_info().rss / MIB
        code = f"from IPython.display import display\nfor i in range({displays}): display(i)"
        cell = kernel.send("shell", "execute_request", _execute(code))
        seen: list[int] = []
        peak = idle
        deadline = time.monotonic() + 500
        while True:
            msg = kernel.receive(reader, deadline)
            assert msg is not None, f"the reader got {len(seen)} displays, then nothing"
            if msg["parent_header"].get("msg_id") != cell:
                continue
            if msg["msg_type"] == "display_data":
                seen.append(int(msg["content"]["data"]["text/plain"]))
                if len(seen) % 1000 == 0:
                    peak = max(peak, process.memory_info().rss / MIB)
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        peak = max(peak, process.memory_info().rss / MIB)
        assert seen == list(range(displays))  # every display, in order
        # Measured over 100,000 displays: unbounded (SNDHWM 0) the kernel grew by 119 MiB and
        # kept it; with IOPUB_HWM = 10,000 it grew by 11 to 38 MiB, depending on how far the
        # reading subscriber lagged (its queue is bounded by the same mark, so at most two
        # queues are full). 60 MiB: above two full queues, half of the unbounded growth.
        assert peak - idle < 60, f"idle {idle:.1f} MiB, peak {peak:.1f} MiB"
        deaf.close(linger=0)
        reader.close(linger=0)
    finally:
        kernel.close()


# The io thread is held back inside the outbox's take (a gate only the cell opens), so it
# sends nothing; nothing else holds it. Not the receive path: that one the producers must not
# wait for (cokernel.protocol._outbox).
HOLD_THE_IO_THREAD = """
import threading
from IPython.display import display

_outbox = get_ipython().kernel.outbox
_gate = threading.Event()
_take = _outbox.take

def _held_take():
    _gate.wait()
    return _take()

_outbox.take = _held_take
"""

OUTRUN = (
    HOLD_THE_IO_THREAD
    + """
_done = threading.Event()

def _produce():
    for i in range({displays}):
        display(i)
    _done.set()

_producer = threading.Thread(target=_produce)
_producer.start()
# Until the producer waits for room, or (unbounded) has queued every display.
while _outbox.waits == 0 and not _done.wait(0.005):
    pass
_held, _finished = _outbox.weight, _done.is_set()
del _outbox.take
_gate.set()
_producer.join()
print(_held, _finished, _outbox.max_weight)
"""
)


@pytest.mark.timeout(300)
def test_a_cell_whose_output_outruns_the_io_thread_waits_for_room(isolated_env: Path) -> None:
    displays = 5000  # above the outbox's bound (2,000), below iopub's high-water mark
    kernel = RawKernel(KERNEL)
    try:
        reader = kernel.subscriber()
        _subscribed(kernel, [reader])
        cell = kernel.send("shell", "execute_request", _execute(OUTRUN.format(displays=displays)))
        seen: list[int] = []
        printed: list[str] = []
        deadline = time.monotonic() + 240
        while True:
            msg = kernel.receive(reader, deadline)
            assert msg is not None, f"the reader got {len(seen)} displays, then nothing"
            if msg["parent_header"].get("msg_id") != cell:
                continue
            kind, content = msg["msg_type"], msg["content"]
            assert kind != "error", content
            if kind == "display_data":
                seen.append(int(content["data"]["text/plain"]))
            elif kind == "stream":
                printed.append(content["text"])
            elif kind == "status" and content["execution_state"] == "idle":
                break
        assert kernel.reply_to("shell", cell, 60)["content"]["status"] == "ok"
        held, finished, bound = "".join(printed).split()
        # Unbounded, the producer queued all 5,000 displays while the io thread sent nothing.
        assert finished == "False", f"no wait: {held} messages queued for the io thread"
        assert int(held) <= int(bound) + 10
        assert seen == list(range(displays))  # every display, in order, once the gate opened
        reader.close(linger=0)
    finally:
        kernel.close()


INTERRUPTED_WHILE_WAITING = (
    HOLD_THE_IO_THREAD
    + """
import os, signal

def _interrupt_once_waiting():  # as a launcher in signal mode does: SIGINT to the process
    while _outbox.waits == 0:
        _gate.wait(0.005)
    os.kill(os.getpid(), signal.SIGINT)

threading.Thread(target=_interrupt_once_waiting, daemon=True).start()
try:
    for _ in range(20_000):  # ten times the bound: unbounded, it ends without waiting
        display(0)
finally:
    del _outbox.take
    _gate.set()
"""
)


@pytest.mark.timeout(300)
def test_a_cell_waiting_for_room_in_the_outbox_is_interrupted(isolated_env: Path) -> None:
    kernel = RawKernel(KERNEL)
    try:
        code = _execute(INTERRUPTED_WHILE_WAITING, stop_on_error=False)
        reply = kernel.reply_to("shell", kernel.send("shell", "execute_request", code), 120)
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        after = kernel.reply_to("shell", kernel.send("shell", "execute_request", _execute("1")), 60)
        assert after["content"]["status"] == "ok"
    finally:
        kernel.close()


def _subscribed(kernel: RawKernel, subscribers: list[zmq.Socket[bytes]]) -> None:
    """Poke with kernel_info until every subscriber has seen iopub traffic (slow joiners)."""
    deadline = time.monotonic() + 60
    waiting = list(subscribers)
    while waiting:
        assert time.monotonic() < deadline, "a subscriber never got iopub traffic"
        kernel.reply_to("shell", kernel.send("shell", "kernel_info_request"), 30)
        waiting = [s for s in waiting if not s.poll(100)]
        for sock in subscribers:
            while sock not in waiting and sock.poll(0):
                sock.recv_multipart()


GATE = """
import threading, comm
_gate = threading.Event()

def _gate_target(c, msg):
    @c.on_msg
    def _opened(m):
        _gate.set()

comm.get_comm_manager().register_target("test.backpressure.gate", _gate_target)
"""


def _replies(kernel: RawKernel, ids: list[str], timeout: float) -> list[dict[str, Any]]:
    """The shell replies to ``ids``, in arrival order (others are skipped)."""
    wanted, got = set(ids), []
    deadline = time.monotonic() + timeout
    while len(got) < len(ids):
        msg = kernel.receive(kernel.sockets["shell"], deadline)
        assert msg is not None, f"{len(got)} of {len(ids)} replies came"
        if msg["parent_header"].get("msg_id") in wanted:
            got.append(msg)
    return got


@pytest.mark.timeout(300)
def test_control_an_interrupt_and_a_comm_get_through_while_a_lane_is_at_its_bound(
    small_backlog: None,
) -> None:
    kernel = RawKernel(KERNEL)
    try:
        iopub = kernel.subscriber()
        _subscribed(kernel, [iopub])
        _warm(kernel)
        kernel.reply_to("shell", kernel.send("shell", "execute_request", _execute(GATE)), 60)
        kernel.send(
            "shell", "comm_open", {"comm_id": "gate", "target_name": "test.backpressure.gate"}
        )
        # A cell blocks the main shell until the comm message below arrives (printing as it
        # waits: output wakes the io thread often, which must not hide the stall); 50 cells
        # queue behind it: more than the bound (20), so the kernel stops reading shell.
        waiting = 'while not _gate.wait(0.05):\n    print(".", end="", flush=True)'
        blocked = kernel.send("shell", "execute_request", _execute(waiting))
        queued = [kernel.send("shell", "execute_request", _execute(f"_n = {i}")) for i in range(50)]
        # Control is never paused.
        info = kernel.request("control", "kernel_info_request", timeout=30)
        assert info["status"] == "ok"
        created = kernel.request("control", "create_subshell_request", timeout=30)
        assert created["status"] == "ok"
        # The comm message sits in the socket behind the backlog; the stalled pause admits it.
        kernel.send("shell", "comm_msg", {"comm_id": "gate", "data": {}})
        replies = _replies(kernel, [blocked, *queued], 120)
        assert [r["parent_header"]["msg_id"] for r in replies] == [blocked, *queued]
        assert {r["content"]["status"] for r in replies} == {"ok"}

        # An interrupt reaches a cell that never yields, with 50 cells queued behind it.
        sleeper = kernel.send(
            "shell",
            "execute_request",
            _execute("import time; time.sleep(3600)", stop_on_error=False),
        )
        queued = [kernel.send("shell", "execute_request", _execute(f"_m = {i}")) for i in range(50)]
        _wait_started(kernel, iopub, sleeper)
        assert kernel.request("control", "interrupt_request", timeout=30)["status"] == "ok"
        replies = _replies(kernel, [sleeper, *queued], 120)
        assert [r["parent_header"]["msg_id"] for r in replies] == [sleeper, *queued]
        assert replies[0]["content"]["ename"] == "KeyboardInterrupt"
        assert {r["content"]["status"] for r in replies[1:]} == {"ok"}
        deleted = kernel.request(
            "control", "delete_subshell_request", {"subshell_id": created["subshell_id"]}
        )
        assert deleted["status"] == "ok"
        iopub.close(linger=0)
    finally:
        kernel.close()


def _wait_started(kernel: RawKernel, iopub: zmq.Socket[bytes], msg_id: str) -> None:
    """Until iopub shows the cell ``msg_id`` running (so the interrupt finds it)."""
    deadline = time.monotonic() + 60
    while True:
        msg = kernel.receive(iopub, deadline)
        assert msg is not None, "the cell never started"
        if msg["msg_type"] == "execute_input" and msg["parent_header"].get("msg_id") == msg_id:
            return


def test_the_backlog_pauses_at_its_bound_resumes_at_half_and_admits_more_when_stalled() -> None:
    wakes: list[int] = []
    backlog = ShellBacklog(lambda: wakes.append(backlog.messages), max_messages=4, max_bytes=100)
    requests = [Request(Channel.shell, [], {"header": {}}) for _ in range(20)]
    for request in requests[:4]:
        assert backlog.admits()
        backlog.hold_for(request, 10)
    assert not backlog.admits()  # four held: paused
    assert backlog.pauses == 1
    backlog.release_for(requests[0])
    backlog.release_for(requests[0])  # idempotent
    assert (backlog.messages, backlog.bytes) == (3, 30)
    assert not backlog.admits()  # still above half the bound
    assert backlog.check_stall() is False  # a request started since the pause
    assert backlog.check_stall() is True  # none since the last look: admit a batch
    held = 3
    while backlog.admits():
        backlog.hold_for(requests[held + 1], 1)
        held += 1
    assert held == 4 * HARD_FACTOR  # the batch stops at the hard bound
    assert backlog.check_stall() is False  # at the hard bound nothing more comes in
    for request in requests[1 : held + 1]:
        backlog.release_for(request)
    assert wakes  # woken once down to half the bound
    assert wakes[0] <= 2
    assert backlog.admits()
    assert (backlog.messages, backlog.bytes) == (0, 0)
    big = requests[0]
    backlog.hold_for(big, 1000)  # one message over the byte bound is taken, then a pause
    assert not backlog.admits()
