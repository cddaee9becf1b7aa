"""The soak's side of the wire: its iopub readers, its RSS sampler and its message pump.

:class:`SoakRun` reads shell, control and iopub of a :class:`~cokernel_harness.rawkernel.RawKernel`
and keeps a :class:`Record` of every message (not the message: 100,000s arrive);
:class:`SlowReader` is the second iopub subscriber, which falls behind on purpose;
:class:`Sampler` follows the kernel's peak RSS. :func:`cokernel_harness.soak.soak` drives them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import psutil
import zmq
from jupyter_client.session import Session

from cokernel_harness import messages
from cokernel_harness.rawkernel import KernelGone, RawKernel


@dataclass(frozen=True)
class Record:
    """What the soak keeps of one received message (not the message: 100,000s arrive)."""

    channel: str
    msg_type: str
    parent: str | None
    msg_id: str
    detail: Any  # comm_msg: (comm_id, n); status: execution_state; a reply: its status


class SlowReader(threading.Thread):
    """Reads iopub slowly while ``fast`` is set, then as fast as it can; keeps msg_ids."""

    def __init__(self, kernel: RawKernel, batch: int, delay: float) -> None:
        super().__init__(name="soak-slow-iopub", daemon=True)
        self.sock = kernel.subscriber()
        # A session of its own: a session refuses a signature it has seen (replay guard), and
        # the fast reader sees the same messages.
        self.session = Session(
            key=kernel.session.key, signature_scheme=kernel.session.signature_scheme
        )
        self.batch, self.delay = batch, delay
        self.ids: list[str] = []
        self.catch_up = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            if not self.catch_up.is_set():
                time.sleep(self.delay)  # the point: a reader that falls behind
            for _ in range(self.batch if not self.catch_up.is_set() else 1000):
                if not self.sock.poll(10):
                    break
                _, parts = self.session.feed_identities(self.sock.recv_multipart())
                msg = self.session.deserialize(parts, content=False)
                self.ids.append(str(msg["header"]["msg_id"]))


class Sampler(threading.Thread):
    def __init__(self, pid: int, interval: float = 0.02) -> None:
        super().__init__(name="soak-rss", daemon=True)
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return


class SoakRun:
    def __init__(self, kernel: RawKernel, timeout: float) -> None:
        self.kernel = kernel
        self.timeout = timeout
        self.iopub = kernel.subscriber()
        self.iopub_ids: list[str] = []
        self.log: list[Record] = []

    def deadline(self) -> float:
        return time.monotonic() + self.timeout

    def pump(self, deadline: float, want: Any) -> None:
        """Read shell, control and iopub until ``want()`` is true or the deadline passes."""
        while not want():
            left = deadline - time.monotonic()
            if left <= 0:
                if not self.kernel.alive():
                    raise KernelGone("the kernel process exited")
                raise TimeoutError("the kernel did not answer everything in time")
            self.read(min(left, 1.0))

    def read(self, wait: float) -> int:
        """Read what arrives on shell, control and iopub within ``wait`` s; returns how much."""
        socks = {self.kernel.sockets["shell"]: "shell", self.kernel.sockets["control"]: "control"}
        poller = zmq.Poller()
        for sock in (*socks, self.iopub):
            poller.register(sock, zmq.POLLIN)
        count = 0
        for sock, _ in poller.poll(int(wait * 1000) + 1):
            for _ in range(1000):
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                _, parts = self.kernel.session.feed_identities(frames)
                msg = self.kernel.session.deserialize(parts)
                self.on_message(socks.get(sock, "iopub"), msg)
                count += 1
        return count

    def send_paced(self, msg_type: str, content: dict[str, Any]) -> str:
        """Send on shell; while the kernel takes no more (its queues are full: backpressure),
        read what it sends. Only a kernel that neither takes nor sends for the whole
        ``timeout`` counts as gone."""
        session = self.kernel.session
        msg = session.msg(msg_type, content)
        frames = session.serialize(msg)
        sock = self.kernel.sockets["shell"]
        deadline = self.deadline()
        while True:
            try:
                sock.send_multipart(frames, zmq.NOBLOCK)
                return str(msg["header"]["msg_id"])
            except zmq.Again:
                if self.read(0.1):
                    deadline = self.deadline()  # working through its backlog
                elif time.monotonic() > deadline:
                    raise KernelGone(
                        f"the kernel neither took nor sent a message for {self.timeout:g} s"
                    ) from None

    def on_message(self, channel: str, msg: dict[str, Any]) -> None:
        msg_id = str(msg["header"]["msg_id"])
        if channel == "iopub":
            self.iopub_ids.append(msg_id)
        content = msg["content"]
        msg_type = msg["msg_type"]
        detail: Any = None
        if msg_type == "comm_msg":
            data = content.get("data")
            detail = (content.get("comm_id"), data.get("n") if isinstance(data, dict) else None)
        elif msg_type == "status":
            detail = content.get("execution_state")
        elif msg_type.endswith("_reply"):
            detail = content.get("status")
        parent = msg["parent_header"].get("msg_id")
        self.log.append(Record(channel, msg_type, parent, msg_id, detail))

    def until_subscribed(self, slow: SlowReader) -> None:
        """Poke with kernel_info until both subscribers see iopub traffic (slow joiners)."""
        deadline = self.deadline()
        while True:
            poke = self.kernel.send("shell", "kernel_info_request")
            start = len(self.log)

            def got(start: int = start, poke: str = poke) -> bool:
                return any(r.channel == "iopub" and r.parent == poke for r in self.log[start:])

            try:
                self.pump(min(deadline, time.monotonic() + 0.5), got)
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise
                continue
            if slow.ids:
                return

    def replies(self, channel: str, msg_type: str) -> list[Record]:
        return [r for r in self.log if r.channel == channel and r.msg_type == msg_type]


JOIN_WARMUP = """\
import threading as _threading
for _thread in _threading.enumerate():
    if _thread.name.endswith("-warmup"):
        _thread.join(60)
"""


def execute_content(code: str) -> dict[str, Any]:
    """A soak's cells: no history, and an error aborts nothing queued behind it."""
    return messages.execute_content(code, store_history=False, stop_on_error=False)


def has_reply(run: SoakRun, channel: str, msg_id: str) -> bool:
    return any(r.channel == channel and r.parent == msg_id for r in run.log[-5000:])


def has_idle(run: SoakRun, msg_id: str) -> bool:
    return any(
        r.msg_type == "status" and r.detail == "idle" and r.parent == msg_id
        for r in run.log[-5000:]
    )
