"""Transports carry protocol messages between a :class:`~cokernel_harness.frontend.Frontend`
and one kernel. A transport is tiny on purpose (httpx's model): start, send, receive, and the
few things only the launcher can do (interrupt by signal, restart, is the process alive).

:class:`Transport` is a :class:`typing.Protocol`: a transport need not import the harness, it
only has to have these members. That is how a kernel can ship a transport next to what it adapts
(cokernel's in-process one is ``cokernel.testing.InProcessTransport``) while the harness imports
nothing from any kernel. :func:`open_transport` reaches such a transport by name through the
``cokernel_harness.transports`` entry-point group, the one way the harness gets a kernel
in-process.

:class:`ZMQTransport` launches any installed kernelspec through jupyter_client (or attaches to
a connection file). Its sockets live on one background thread, so the transport works the same
from asyncio and trio: received messages come through an aiologic queue, which both backends
can await.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib.metadata
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import aiologic
import anyio
import anyio.lowlevel
import anyio.to_thread
import zmq
from jupyter_client.connect import ConnectionFileMixin
from jupyter_client.manager import KernelManager
from jupyter_client.session import Session

from cokernel_harness.messages import Arrival

T = TypeVar("T")

CHANNELS = ("shell", "control", "stdin", "iopub")

# jupyter_client's blocking KernelManager runs an asyncio loop per calling thread and never closes
# it; calling it from anyio's changing worker threads would leak one loop per thread. All launcher
# calls therefore go through this one long-lived thread.
_launcher = concurrent.futures.ThreadPoolExecutor(
    max_workers=1, thread_name_prefix="harness-launcher"
)


async def _on_launcher(fn: Callable[[], T]) -> T:
    future = _launcher.submit(fn)
    return await anyio.to_thread.run_sync(future.result)


class MessageFactory(Protocol):
    """What builds request dicts for a transport (jupyter_client's ``Session`` is one)."""

    def msg_header(self, msg_type: str) -> dict[str, Any]: ...

    def msg(
        self,
        msg_type: str,
        content: dict[str, Any] | None = None,
        parent: dict[str, Any] | None = None,
        header: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]: ...


class Transport(Protocol):
    """What a Frontend needs from the thing that connects it to a kernel.

    Structural: any class with these members is a transport, whether or not it names this one.
    The members with a body here are defaults for classes that do subclass it.
    """

    #: Builds the messages sent through this transport (their ``session`` header is its id).
    session: MessageFactory
    #: "message" (interrupt_request on control) or "signal" (SIGINT to the kernel process).
    interrupt_mode: str

    async def start(self) -> None:
        """Launch or attach; returns once messages can be sent."""
        ...

    def send(self, channel: str, msg: dict[str, Any]) -> None:
        """Queue ``msg`` (a ``Session.msg`` dict) for sending on ``channel``; never blocks."""
        ...

    async def receive(self) -> Arrival:
        """The next message from any channel, in arrival order."""
        ...

    async def signal_interrupt(self) -> None:
        """Interrupt the kernel with SIGINT (for kernels whose interrupt_mode is "signal")."""
        ...

    async def interrupt(self) -> None:
        """Interrupt out of band, as this transport can (SIGINT here; a server over REST)."""
        await self.signal_interrupt()

    async def restart(self) -> None:
        """Restart the kernel process (or what stands for it) and reconnect."""
        ...

    def is_alive(self) -> bool:
        """Whether the kernel still runs."""
        ...

    async def close(self) -> None:
        """Stop the kernel if this transport started it, and release every resource."""
        ...

    def kernel_pid(self) -> int | None:
        """The kernel's process id, if it runs in a process this transport launched."""
        return None

    def connection_file_path(self) -> str | None:
        """The connection file other clients can attach with, if there is one."""
        return None

    async def drain(self) -> None:
        """Return once every message given to :meth:`send` so far has left this process."""
        await anyio.lowlevel.checkpoint()

    async def wait_exit(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the kernel to end; True if it did."""
        raise RuntimeError(f"{type(self).__name__} cannot watch a kernel process end")


class BlockingTransport(Transport, Protocol):
    """A transport a synchronous client (the bench) can drive without an event loop."""

    def start_blocking(self) -> None:
        """:meth:`start`, from a thread with no event loop."""
        ...

    def receive_blocking(self, timeout: float) -> Arrival | None:
        """The next message, or None if none arrives within ``timeout`` seconds."""
        ...

    def close_blocking(self) -> None:
        """:meth:`close`, from a thread with no event loop."""
        ...


#: The entry-point group in which a kernel distribution names its in-process transports.
TRANSPORT_GROUP = "cokernel_harness.transports"


def named_transport(name: str) -> BlockingTransport | None:
    """The in-process transport ``NAME[:ARGUMENT]`` if an installed distribution registers
    ``NAME`` in the ``cokernel_harness.transports`` entry-point group, else None.

    The entry point is a callable taking ``ARGUMENT`` (the text after the colon, or "") and
    returning a transport. cokernel registers ``inprocess`` (``inprocess:trio`` for its trio
    backend). This is the only way the harness reaches a kernel in its own process: it imports
    no kernel itself, and it loads the entry point only when such a name is asked for.
    """
    base, _, argument = name.partition(":")
    found = importlib.metadata.entry_points(group=TRANSPORT_GROUP, name=base)
    if not found:
        return None
    factory = next(iter(found)).load()
    transport: BlockingTransport = factory(argument)
    return transport


def open_transport(name: str, **zmq_options: Any) -> Transport:
    """The transport a harness command line means by ``name``: a registered in-process
    transport (see :func:`named_transport`), or else a kernelspec launched over ZMQ."""
    transport = named_transport(name)
    if transport is not None:
        return transport
    return ZMQTransport(name, **zmq_options)


class ZMQTransport(Transport):
    """A real kernel process over real ZMQ sockets.

    ``kernel_name`` launches that kernelspec; ``connection_file`` attaches to a running kernel
    instead (then restart and signal interrupts are unavailable).
    """

    def __init__(
        self,
        kernel_name: str | None = None,
        *,
        connection_file: str | None = None,
        extra_arguments: list[str] | None = None,
        env: dict[str, str] | None = None,
        startup_timeout: float = 60.0,
        encryption: str = "disabled",
    ) -> None:
        if (kernel_name is None) == (connection_file is None):
            raise ValueError("give exactly one of kernel_name or connection_file")
        self.kernel_name = kernel_name
        self.connection_file = connection_file
        self.extra_arguments = extra_arguments or []
        self.env = env
        self.startup_timeout = startup_timeout
        #: jupyter_client's ``transport_encryption`` for a launch ("disabled", "auto",
        #: "required"). Whenever the connection info carries CurveZMQ keys (JEP 145), launched
        #: or attached, the sockets connect as Curve clients of the kernel's public key.
        self.encryption = encryption
        self.manager: KernelManager | None = None
        self.session: Session = Session()
        self.interrupt_mode = "message"
        self._inbox: aiologic.SimpleQueue[Arrival] = aiologic.SimpleQueue()
        # (channel, frames), or (None, event) to mark how far the outbox was sent (drain)
        self._outbox: deque[tuple[str | None, Any]] = deque()
        self._context: zmq.Context[Any] | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        await _on_launcher(self._start_blocking)

    def _start_blocking(self) -> None:
        info: ConnectionFileMixin
        if self.kernel_name is not None:
            self.manager = KernelManager(
                kernel_name=self.kernel_name, transport_encryption=self.encryption
            )
            env = {**os.environ, **(self.env or {})}
            self.manager.start_kernel(extra_arguments=self.extra_arguments, env=env)
            spec = self.manager.kernel_spec
            self.interrupt_mode = spec.interrupt_mode if spec is not None else "signal"
            info = self.manager
        else:
            info = ConnectionFileMixin(connection_file=self.connection_file)
            info.load_connection_file()
        self.session = Session(key=info.session.key, signature_scheme=info.session.signature_scheme)
        self._connect(info)

    def _connect(self, info: ConnectionFileMixin) -> None:
        self._stop.clear()
        self._context = zmq.Context()
        sockets: dict[str, zmq.Socket[bytes]] = {}
        kinds = {"shell": zmq.DEALER, "control": zmq.DEALER, "stdin": zmq.DEALER, "iopub": zmq.SUB}
        ports = {
            "shell": info.shell_port,
            "control": info.control_port,
            "stdin": info.stdin_port,
            "iopub": info.iopub_port,
        }
        identity = self.session.bsession
        server_key = getattr(info, "curve_publickey", None)
        for name, kind in kinds.items():
            sock = self._context.socket(kind)
            if server_key:
                # A fresh client keypair per socket; the kernel is known by its public key.
                sock.curve_publickey, sock.curve_secretkey = zmq.curve_keypair()
                sock.curve_serverkey = server_key
            sock.setsockopt(zmq.LINGER, 0)
            if kind == zmq.DEALER:
                sock.setsockopt(zmq.IDENTITY, identity)
            else:
                sock.setsockopt(zmq.SUBSCRIBE, b"")
            sock.connect(f"{info.transport}://{info.ip}:{ports[name]}")
            sockets[name] = sock
        self._sockets = sockets
        self._thread = threading.Thread(target=self._io, name="harness-io", daemon=True)
        self._thread.start()

    def _io(self) -> None:
        poller = zmq.Poller()
        for sock in self._sockets.values():
            poller.register(sock, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        by_socket = {sock: name for name, sock in self._sockets.items()}
        try:
            while not self._stop.is_set():
                for sock, _ in poller.poll(200):
                    if sock == self._wake_r:
                        with contextlib.suppress(BlockingIOError):
                            os.read(self._wake_r, 4096)
                        continue
                    assert isinstance(sock, zmq.Socket)
                    name = by_socket[sock]
                    while True:
                        try:
                            frames = sock.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        arrived = time.perf_counter()
                        try:
                            _, parts = self.session.feed_identities(frames)
                            msg = self.session.deserialize(parts)
                        except Exception as e:  # a kernel sent garbage: record it, go on
                            msg = {
                                "header": {"msg_type": "harness_undecodable", "msg_id": ""},
                                "parent_header": {},
                                "metadata": {},
                                "content": {"error": str(e)},
                                "buffers": [],
                            }
                        self._inbox.put((name, msg, arrived))
                while self._outbox:
                    target, payload = self._outbox.popleft()
                    if target is None:
                        payload.set()
                    else:
                        self._sockets[target].send_multipart(payload)
        finally:
            for sock in self._sockets.values():
                sock.close(linger=0)

    def send(self, channel: str, msg: dict[str, Any]) -> None:
        # serialize() leaves binary buffers out (Session.send appends them): so do we.
        frames = [*self.session.serialize(msg), *(bytes(b) for b in msg.get("buffers") or ())]
        self._outbox.append((channel, frames))
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"x")

    async def drain(self) -> None:
        if self._thread is None:
            return
        sent = aiologic.Event()
        self._outbox.append((None, sent))
        self._wake()
        await sent

    async def receive(self) -> Arrival:
        return await self._inbox.async_get()

    def _disconnect(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self._context is not None:
            self._context.term()
            self._context = None

    async def signal_interrupt(self) -> None:
        pid = self.kernel_pid()
        if pid is None:
            raise RuntimeError("signal interrupts need a kernel this transport launched")
        os.kill(pid, signal.SIGINT)

    async def restart(self) -> None:
        if self.manager is None:
            raise RuntimeError("restart needs a kernel this transport launched")
        manager = self.manager
        await anyio.to_thread.run_sync(self._disconnect)
        await _on_launcher(lambda: manager.restart_kernel(now=True))
        self._connect(manager)

    def is_alive(self) -> bool:
        return bool(self.manager.is_alive()) if self.manager is not None else True

    def kernel_pid(self) -> int | None:
        provisioner = getattr(self.manager, "provisioner", None)
        pid = getattr(provisioner, "pid", None)
        return int(pid) if pid else None

    def connection_file_path(self) -> str | None:
        return self.manager.connection_file if self.manager is not None else self.connection_file

    async def wait_exit(self, timeout: float) -> bool:
        process = getattr(getattr(self.manager, "provisioner", None), "process", None)
        if process is None:
            raise RuntimeError(
                "waiting for the kernel to exit needs a kernel this transport launched"
            )

        def wait() -> bool:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            return True

        return await anyio.to_thread.run_sync(wait)

    async def close(self) -> None:
        await _on_launcher(self._close_blocking)

    def _close_blocking(self) -> None:
        self._disconnect()
        if self.manager is not None and self.manager.has_kernel:
            with contextlib.suppress(Exception):
                self.manager.shutdown_kernel(now=False)
            if self.manager.is_alive():
                self.manager.shutdown_kernel(now=True)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
