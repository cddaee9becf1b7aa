"""The bench's kernels: a :class:`~cokernel_harness.client.BlockingClient` that owns one.

The bench measures latencies of a millisecond or less, so it talks to a kernel as directly as
jupyter_client allows. A :class:`~jupyter_client.manager.KernelManager` launches the kernelspec
(and interrupts it in the spec's ``interrupt_mode``, by message or by signal); the shell, control
and iopub sockets are polled by the client on the caller's thread, with no background thread or
queue in between, and each message is stamped with :func:`time.perf_counter` as it leaves its
socket, before it is verified and decoded, so client-side costs stay out of the figures as far
as they can. (:class:`~cokernel_harness.frontend.Frontend` is the tool for scenarios, not for
timing them.)

Every wait is bounded: :meth:`~cokernel_harness.client.BlockingClient.wait_for` raises
:class:`WaitTimeout` when its time runs out and :class:`KernelDied` when the kernel process has
exited. Nothing here knows what a workload is.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import psutil
import zmq
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import KernelManager
from jupyter_client.session import Session

from cokernel_harness.client import BATCH, BlockingClient, Msg, Predicate, Sent
from cokernel_harness.messages import KernelDied, Received, WaitTimeout
from cokernel_harness.transport import BlockingTransport, named_transport

__all__ = [
    "CURVE_SUFFIX",
    "FLOOR",
    "FLOORS",
    "FLOOR_THREADS",
    "FloorWire",
    "InProcessWire",
    "KernelDied",
    "Predicate",
    "Received",
    "Sent",
    "Unsupported",
    "WaitTimeout",
    "Wire",
    "iopub_of",
    "open_wire",
    "reply_to",
]


def reply_to(sent: str) -> Predicate:
    """Match the ``*_reply`` to ``sent``, on whichever channel it comes."""
    return lambda a: a.parent_id == sent and a.msg_type.endswith("_reply")


def iopub_of(sent: str, msg_type: str, execution_state: str | None = None) -> Predicate:
    """Match an iopub message of ``msg_type`` (and ``execution_state``) whose parent is ``sent``."""

    def match(a: Received) -> bool:
        if a.channel != "iopub" or a.parent_id != sent or a.msg_type != msg_type:
            return False
        return execution_state is None or a.content.get("execution_state") == execution_state

    return match


class Wire(BlockingClient):
    """A :class:`~cokernel_harness.client.BlockingClient` that launches and owns one kernel
    process of the kernelspec ``kernel_name``, over sockets of its own (shell, control, iopub).

    Received messages accumulate in :attr:`log` until :meth:`forget`; waits search the log
    first, so a message that arrived while the runner waited for another one is not lost.
    """

    def __init__(self, kernel_name: str, *, encryption: str = "disabled") -> None:
        super().__init__()
        self.kernel_name = kernel_name
        #: jupyter_client's ``transport_encryption`` for the launch: "disabled", "auto" or
        #: "required" (CurveZMQ, JEP 145; the sockets below then connect as Curve clients).
        self.encryption = encryption
        self.restarts = 0
        self.kernel_info: dict[str, Any] = {}
        #: ``perf_counter`` time just before the kernel was launched.
        self.launched = 0.0
        self._km: KernelManager | None = None

    # -- the process ------------------------------------------------------------------------
    @property
    def manager(self) -> KernelManager:
        if self._km is None:
            raise RuntimeError(f"kernel {self.kernel_name!r} is not started; call start() first")
        return self._km

    @property
    def interrupt_mode(self) -> str:
        return str(self.manager.kernel_spec.interrupt_mode)

    #: Whether an interrupt can stop a cell inside a blocking call (a kernel process runs its
    #: cells on its main thread, where SIGINT wakes such calls).
    interrupts_blocking_calls = True

    def start(self, timeout: float) -> float:
        """Launch the kernel; block until its first kernel_info_reply and return the seconds
        from launch to that reply. Then block until iopub delivers, so no output is missed.

        Raises :class:`WaitTimeout` or :class:`KernelDied` if the kernel does not answer.
        """
        started = self.launched = time.perf_counter()
        km = self._new_manager()
        km.start_kernel()
        self._km = km
        self._connect()
        first = self.send("shell", "kernel_info_request")
        reply = self.wait_for(reply_to(first), timeout=timeout, what="the first kernel_info_reply")
        self.kernel_info = reply.content
        self._await_iopub(timeout)
        return reply.time - started

    def _new_manager(self) -> KernelManager:
        return KernelManager(kernel_name=self.kernel_name, transport_encryption=self.encryption)

    def restart(self, timeout: float) -> None:
        """Kill the kernel process and start a fresh one; block until it answers."""
        self._disconnect()
        self.manager.restart_kernel(now=True)
        self.restarts += 1
        self._connect()
        first = self.send("shell", "kernel_info_request")
        self.wait_for(
            reply_to(first), timeout=timeout, what="the first kernel_info_reply after the restart"
        )
        self._await_iopub(timeout)

    def close(self, *, now: bool = False) -> None:
        """Shut the kernel down (politely unless ``now``; jupyter_client kills it if it lingers)."""
        self._disconnect()
        if self._km is not None:
            km, self._km = self._km, None
            if km.has_kernel:
                km.shutdown_kernel(now=now)

    def interrupt(self) -> float:
        """Interrupt the kernel the way its kernelspec asks; return the ``perf_counter`` time
        just before the interrupt was sent."""
        started = time.perf_counter()
        self.manager.interrupt_kernel()
        return started

    def rss_bytes(self) -> int:
        """Resident memory of the kernel process and any processes it started."""
        pid = getattr(self.manager.provisioner, "pid", None)
        if pid is None:
            raise KernelDied(f"kernel {self.kernel_name!r} has no process to measure")
        process = psutil.Process(int(pid))
        total = int(process.memory_info().rss)
        for child in process.children(recursive=True):
            try:
                total += int(child.memory_info().rss)
            except psutil.NoSuchProcess:
                pass
        return total

    # -- messages and sockets -------------------------------------------------------------
    def _session_of(self) -> Session:
        session: Session = self.manager.session
        return session

    def _alive(self) -> bool:
        return bool(self.manager.is_alive())

    def _connect(self) -> None:
        km = self.manager
        # No receive high-water mark: a SUB socket that fills up makes the kernel's PUB socket
        # drop messages, and the bench must not lose a kernel's output to its own decoding.
        km.context.setsockopt(zmq.RCVHWM, 0)
        identity = km.session.bsession
        self._plug(
            {
                "shell": km.connect_shell(identity=identity),
                "control": km.connect_control(identity=identity),
                "iopub": km.connect_iopub(),
            }
        )

    def _disconnect(self) -> None:
        for socket in self._sockets.values():
            self._poller.unregister(socket)
            socket.close(linger=0)
        self._sockets = {}

    def _await_iopub(self, timeout: float) -> None:
        # A SUB socket misses what is published before its subscription reaches the kernel
        # (the "slow joiner"): poke the kernel until the idle status of a request arrives.
        # The idle of an earlier poke counts too: a kernel may take its time at start-up.
        deadline = time.perf_counter() + timeout
        poked: set[str] = set()

        def idle_of_a_poke(a: Received) -> bool:
            return a.channel == "iopub" and a.parent_id in poked and a.msg_type == "status"

        while True:
            poked.add(self.send("shell", "kernel_info_request").msg_id)
            left = deadline - time.perf_counter()
            try:
                self.wait_for(idle_of_a_poke, min(0.5, max(left, 0.0)), "status on iopub")
                break
            except WaitTimeout:
                if time.perf_counter() >= deadline:
                    raise WaitTimeout(
                        f"timed out after {timeout:g} s waiting for a status message on iopub"
                    ) from None
        self.quiet()


class InProcessWire(Wire):
    """A kernel in this process, through a registered in-process transport (no sockets).

    Named ``inprocess`` (asyncio) or ``inprocess:trio`` on the bench's command line: cokernel's
    ``cokernel.testing.InProcessTransport``, which the harness reaches through its entry point
    (:func:`~cokernel_harness.transport.named_transport`) and drives through its blocking
    methods. Messages are stamped as the kernel hands them over, the in-process counterpart of
    a socket receive; the figures say what an embedding host (or a JupyterLite-style page) gets
    without ZMQ. Start-up is the kernel's own (no interpreter launch), and there is no process
    to measure: RSS metrics report ``unsupported``.
    """

    def __init__(self, kernel_name: str, transport: BlockingTransport) -> None:
        super().__init__(kernel_name)
        self.transport = transport
        self._running = False

    @property
    def interrupt_mode(self) -> str:
        return self.transport.interrupt_mode

    # The kernel's cells run on its own thread, not this process's main thread.
    interrupts_blocking_calls = False

    def start(self, timeout: float) -> float:
        started = self.launched = time.perf_counter()
        self.transport.start_blocking()
        self._running = True
        first = self.send("shell", "kernel_info_request")
        reply = self.wait_for(reply_to(first), timeout=timeout, what="the first kernel_info_reply")
        self.kernel_info = reply.content
        self.quiet()
        return reply.time - started

    def restart(self, timeout: float) -> None:
        self.close(now=True)
        self.restarts += 1
        self.start(timeout)

    def close(self, *, now: bool = False) -> None:
        if self._running:
            self._running = False
            self.transport.close_blocking()

    def interrupt(self) -> float:
        started = time.perf_counter()
        self.send("control", "interrupt_request")
        return started

    def rss_bytes(self) -> int:
        raise Unsupported("an in-process kernel shares this process: its memory is not its own")

    def _session_of(self) -> Session:
        session: Session = self.transport.session
        return session

    def _deliver(self, channel: str, msg: Msg) -> None:
        self.transport.send(channel, msg)

    def _alive(self) -> bool:
        return self._running and self.transport.is_alive()

    def _pump(self, timeout: float) -> bool:
        arrival = self.transport.receive_blocking(timeout)
        if arrival is None:
            return False
        self.log.append(Received(*arrival))
        for _ in range(BATCH):
            arrival = self.transport.receive_blocking(0)
            if arrival is None:
                break
            self.log.append(Received(*arrival))
        return True


class FloorWire(Wire):
    """The bench's own do-nothing kernel (:mod:`cokernel_harness.bench_floor`), named
    ``floor`` (one thread) or ``floor-threads`` (an io thread and an answering thread):
    launched by jupyter_client like any kernelspec, but from a spec made here."""

    def _new_manager(self) -> KernelManager:
        argv = [sys.executable, "-m", "cokernel_harness.bench_floor", "-f", "{connection_file}"]
        if self.kernel_name == FLOOR_THREADS:
            argv.append("--threads")
        spec = KernelSpec(
            argv=argv,
            display_name=f"bench {self.kernel_name}",
            language="python",
            interrupt_mode="message",
        )
        km = KernelManager(kernel_name=self.kernel_name)
        km._kernel_spec = spec
        return km


class Unsupported(Exception):
    """The kernel (or the way the bench reaches it) has no such thing to measure."""


#: The bench's name for its floor kernel (:class:`FloorWire`).
FLOOR = "floor"
#: The floor built as a responsive kernel is: an io thread and an answering thread.
FLOOR_THREADS = "floor-threads"
#: Both floors: they run no code, and are no peer.
FLOORS = frozenset({FLOOR, FLOOR_THREADS})

#: A ``--kernel`` name ending in this launches the kernelspec with CurveZMQ required.
CURVE_SUFFIX = "+curve"


def open_wire(kernel_name: str) -> Wire:
    """The wire for a bench ``--kernel`` name: a kernelspec, ``KERNELSPEC+curve`` (the same,
    with transport encryption required), ``floor``, ``floor-threads``, or a registered
    in-process transport such as ``inprocess[:backend]``."""
    if kernel_name in FLOORS:
        return FloorWire(kernel_name)
    transport = named_transport(kernel_name)
    if transport is not None:
        return InProcessWire(kernel_name, transport)
    if kernel_name.endswith(CURVE_SUFFIX):
        return Wire(kernel_name.removesuffix(CURVE_SUFFIX), encryption="required")
    return Wire(kernel_name)
