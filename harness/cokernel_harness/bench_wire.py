"""A bare, timestamping client for the bench runner: one kernel process and three sockets.

The bench measures latencies of a millisecond or less, so it talks to a kernel as directly as
jupyter_client allows. A :class:`~jupyter_client.manager.KernelManager` launches the kernelspec
(and interrupts it in the spec's ``interrupt_mode``, by message or by signal); the shell, control
and iopub sockets are polled here, on the caller's thread, with no background thread or queue in
between. Each message is stamped with :func:`time.perf_counter` as it leaves its socket, before
it is verified and decoded, so client-side costs stay out of the figures as far as they can.
(:class:`~cokernel_harness.frontend.Frontend` is the tool for scenarios, not for timing them.)

Every wait is bounded: :meth:`Wire.wait` raises :class:`WaitTimeout` when its time runs out and
:class:`KernelDied` when the kernel process has exited. Nothing here knows what a workload is.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import psutil
import zmq
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import KernelManager
from jupyter_client.session import Session

from cokernel_harness.messages import KernelDied, Received, WaitTimeout
from cokernel_harness.transport import BlockingTransport, named_transport

RequestChannel = Literal["shell", "control"]

#: Messages taken from one socket before the next socket gets its turn, so that a flood on
#: iopub does not delay the stamps of replies waiting on shell or control.
_BATCH = 256

#: How long a wait polls before it checks that the kernel process is still alive.
_LIVENESS_INTERVAL = 0.5


@dataclass(frozen=True)
class Sent:
    """One request as sent: its ``msg_id`` and the ``perf_counter`` time just before sending."""

    msg_id: str
    time: float


Predicate = Callable[[Received], bool]


def reply_to(sent: Sent) -> Predicate:
    """Match the ``*_reply`` to ``sent``, on whichever channel it comes."""
    return lambda a: a.parent_id == sent.msg_id and a.msg_type.endswith("_reply")


def iopub_of(sent: Sent, msg_type: str, execution_state: str | None = None) -> Predicate:
    """Match an iopub message of ``msg_type`` (and ``execution_state``) whose parent is ``sent``."""

    def match(a: Received) -> bool:
        if a.channel != "iopub" or a.parent_id != sent.msg_id or a.msg_type != msg_type:
            return False
        return execution_state is None or a.content.get("execution_state") == execution_state

    return match


class Wire:
    """One kernel process of the kernelspec ``kernel_name`` and the runner's sockets to it.

    Received messages accumulate in :attr:`log` until :meth:`forget`; waits search the log
    first, so a message that arrived while the runner waited for another one is not lost.
    """

    def __init__(self, kernel_name: str, *, encryption: str = "disabled") -> None:
        self.kernel_name = kernel_name
        #: jupyter_client's ``transport_encryption`` for the launch: "disabled", "auto" or
        #: "required" (CurveZMQ, JEP 145; the sockets below then connect as Curve clients).
        self.encryption = encryption
        self.log: list[Received] = []
        self.restarts = 0
        self.kernel_info: dict[str, Any] = {}
        #: ``perf_counter`` time just before the kernel was launched.
        self.launched = 0.0
        self._km: KernelManager | None = None
        self._sockets: dict[str, zmq.Socket[bytes]] = {}
        self._poller = zmq.Poller()

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
        reply = self.wait(reply_to(first), timeout, "the first kernel_info_reply")
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
        self.wait(reply_to(first), timeout, "the first kernel_info_reply after the restart")
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

    # -- messages ---------------------------------------------------------------------------
    def send(
        self,
        channel: RequestChannel,
        msg_type: str,
        content: dict[str, Any] | None = None,
        *,
        subshell_id: str | None = None,
    ) -> Sent:
        """Send a request; ``subshell_id`` addresses a kernel subshell (JEP 91)."""
        msg = self._session_of().msg(msg_type, content or {})
        if subshell_id is not None:
            msg["header"]["subshell_id"] = subshell_id
        stamp = time.perf_counter()
        self._deliver(channel, msg)
        return Sent(str(msg["header"]["msg_id"]), stamp)

    def _session_of(self) -> Session:
        session: Session = self.manager.session
        return session

    def _deliver(self, channel: RequestChannel, msg: dict[str, Any]) -> None:
        self._session_of().send(self._sockets[channel], msg)

    def execute(self, code: str, *, subshell_id: str | None = None) -> Sent:
        """Send an execute_request as a notebook frontend does (history on, no stdin)."""
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        return self.send("shell", "execute_request", content, subshell_id=subshell_id)

    def wait(self, match: Predicate, timeout: float, what: str) -> Received:
        """Block until a message in :attr:`log` (or a new one) satisfies ``match``; return it.

        The whole log is searched, so the message may already have arrived. Raises
        :class:`WaitTimeout` naming ``what`` after ``timeout`` seconds, or :class:`KernelDied`.
        """
        deadline = time.perf_counter() + timeout
        index = 0
        while True:
            while index < len(self.log):
                arrival = self.log[index]
                index += 1
                if match(arrival):
                    return arrival
            left = deadline - time.perf_counter()
            if left <= 0:
                raise WaitTimeout(f"timed out after {timeout:g} s waiting for {what}")
            if not self._pump(min(left, _LIVENESS_INTERVAL)) and not self._alive():
                raise KernelDied(f"kernel {self.kernel_name!r} exited while awaiting {what}")

    def finish(self, sent: Sent, timeout: float) -> tuple[Received, Received]:
        """Block until the execute_reply to ``sent`` and its idle status have both arrived;
        return them (reply, idle). Raises :class:`WaitTimeout` after ``timeout`` seconds."""
        deadline = time.perf_counter() + timeout
        reply = self.wait(reply_to(sent), timeout, "the execute_reply")
        left = max(deadline - time.perf_counter(), 0.0)
        idle = self.wait(iopub_of(sent, "status", "idle"), left, "the idle status after the reply")
        return reply, idle

    def quiet(self, silence: float = 0.05, limit: float = 5.0) -> None:
        """Receive until nothing has arrived for ``silence`` seconds (at most ``limit``), then
        :meth:`forget` everything received."""
        deadline = time.perf_counter() + limit
        while time.perf_counter() < deadline and self._pump(silence):
            pass
        self.forget()

    def forget(self) -> None:
        """Drop the received messages; later waits only see what arrives from now on."""
        self.log.clear()

    # -- sockets ----------------------------------------------------------------------------
    def _alive(self) -> bool:
        return bool(self.manager.is_alive())

    def _connect(self) -> None:
        km = self.manager
        # No receive high-water mark: a SUB socket that fills up makes the kernel's PUB socket
        # drop messages, and the bench must not lose a kernel's output to its own decoding.
        km.context.setsockopt(zmq.RCVHWM, 0)
        identity = km.session.bsession
        self._sockets = {
            "shell": km.connect_shell(identity=identity),
            "control": km.connect_control(identity=identity),
            "iopub": km.connect_iopub(),
        }
        for socket in self._sockets.values():
            self._poller.register(socket, zmq.POLLIN)

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
                self.wait(idle_of_a_poke, min(0.5, max(left, 0.0)), "status on iopub")
                break
            except WaitTimeout:
                if time.perf_counter() >= deadline:
                    raise WaitTimeout(
                        f"timed out after {timeout:g} s waiting for a status message on iopub"
                    ) from None
        self.quiet()

    def _pump(self, timeout: float) -> bool:
        """Receive whatever arrives within ``timeout`` seconds into :attr:`log`; return
        whether anything did."""
        ready = dict(self._poller.poll(round(max(timeout, 0.0) * 1000)))
        if not ready:
            return False
        raw: list[tuple[str, list[bytes], float]] = []
        for channel, socket in self._sockets.items():
            if socket not in ready:
                continue
            for _ in range(_BATCH):
                try:
                    frames = socket.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                raw.append((channel, frames, time.perf_counter()))
        # Decode only after every waiting message has its stamp.
        session: Session = self.manager.session
        for channel, frames, stamp in raw:
            _, body = session.feed_identities(frames, copy=True)
            self.log.append(Received(channel, session.deserialize(body), stamp))
        return True


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
        reply = self.wait(reply_to(first), timeout, "the first kernel_info_reply")
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

    def _deliver(self, channel: RequestChannel, msg: dict[str, Any]) -> None:
        self.transport.send(channel, msg)

    def _alive(self) -> bool:
        return self._running and self.transport.is_alive()

    def _pump(self, timeout: float) -> bool:
        arrival = self.transport.receive_blocking(timeout)
        if arrival is None:
            return False
        self.log.append(Received(*arrival))
        for _ in range(_BATCH):
            arrival = self.transport.receive_blocking(0)
            if arrival is None:
                break
            self.log.append(Received(*arrival))
        return True


class FloorWire(Wire):
    """The bench's own do-nothing kernel (:mod:`cokernel_harness.bench_floor`), named
    ``floor``: launched by jupyter_client like any kernelspec, but from a spec made here."""

    def _new_manager(self) -> KernelManager:
        spec = KernelSpec(
            argv=[sys.executable, "-m", "cokernel_harness.bench_floor", "-f", "{connection_file}"],
            display_name="bench floor",
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

#: A ``--kernel`` name ending in this launches the kernelspec with CurveZMQ required.
CURVE_SUFFIX = "+curve"


def open_wire(kernel_name: str) -> Wire:
    """The wire for a bench ``--kernel`` name: a kernelspec, ``KERNELSPEC+curve`` (the same,
    with transport encryption required), ``floor``, or a registered in-process transport such
    as ``inprocess[:backend]``."""
    if kernel_name == FLOOR:
        return FloorWire(kernel_name)
    transport = named_transport(kernel_name)
    if transport is not None:
        return InProcessWire(kernel_name, transport)
    if kernel_name.endswith(CURVE_SUFFIX):
        return Wire(kernel_name.removesuffix(CURVE_SUFFIX), encryption="required")
    return Wire(kernel_name)
