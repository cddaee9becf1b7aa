"""A cokernel kernel in this process, as a transport for protocol clients and tests.

:class:`InProcessTransport` runs a kernel on a thread of this process through the callback
interface (``cokernel.interfaces.callback.start``) and carries message dicts to and from it,
with no sockets. It lives here, next to what it adapts (as httpx keeps its ASGI transport),
so that a protocol client needs no knowledge of the kernel's insides:
``cokernel_harness.Frontend`` drives it like any of its transports::

    async with Frontend.connect(InProcessTransport(backend="trio")) as fe:
        run = await fe.run("1 + 1")

It fits the harness's ``Transport`` protocol structurally (and its ``BlockingTransport``, for
synchronous clients such as the bench) without importing the harness: what crosses is plain
data, ``(channel, message dict, perf_counter time)`` tuples. The package registers
:func:`transport` in the ``cokernel_harness.transports`` entry-point group under the name
``inprocess``, which is how the harness's command lines (``--kernel inprocess:trio``) and its
pytest plugin (``--harness-kernel inprocess``) reach it.
"""

from __future__ import annotations

import time
from typing import Any

import aiologic
import anyio.lowlevel
import anyio.to_thread
from jupyter_client.session import Session

from cokernel.interfaces.callback import KernelHandle, start
from cokernel.options import KernelOptions

#: One message the kernel sent: (channel, message dict, ``perf_counter`` when it was handed over).
Arrival = tuple[str, dict[str, Any], float]

BACKENDS = ("asyncio", "trio")


class InProcessTransport:
    """A cokernel kernel on a thread of this process. ``backend`` is "asyncio" or "trio";
    ``timeout`` is the kernel's default cell timeout (``KernelOptions.timeout``)."""

    #: The kernel is interrupted by interrupt_request on control (its cells run on a thread
    #: other than the main one, where no SIGINT reaches them).
    interrupt_mode = "message"

    def __init__(self, *, backend: str = "asyncio", timeout: float | None = None) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        self.backend = backend
        self.timeout = timeout
        #: Builds the requests a client sends (no key: nothing is signed in process).
        self.session = Session(key=b"")
        self._inbox: aiologic.SimpleQueue[Arrival] = aiologic.SimpleQueue()
        self._handle: KernelHandle | None = None

    def _on_send(self, channel: str, msg: dict[str, Any]) -> None:
        self._inbox.put((channel, msg, time.perf_counter()))

    # -- lifecycle --------------------------------------------------------------------------
    def start_blocking(self) -> None:
        """Start the kernel thread; returns once the kernel takes messages."""
        options = KernelOptions(backend=self.backend, timeout=self.timeout)  # type: ignore[arg-type]
        self._handle = start(self._on_send, options=options)

    async def start(self) -> None:
        self.start_blocking()

    def close_blocking(self) -> None:
        """Stop the kernel thread (no-op if it is not running)."""
        if self._handle is not None:
            handle, self._handle = self._handle, None
            handle.stop()

    async def close(self) -> None:
        await anyio.to_thread.run_sync(self.close_blocking)

    async def restart(self) -> None:
        await self.close()
        await self.start()

    def is_alive(self) -> bool:
        return self._handle is not None and self._handle.running

    # -- messages ---------------------------------------------------------------------------
    def send(self, channel: str, msg: dict[str, Any]) -> None:
        if self._handle is None:
            raise RuntimeError("the in-process kernel is not running: call start() first")
        # The header's date becomes the string it would be on the wire, in a copy of the header
        # so that the sender's record keeps its own. (The kernel never writes into what it
        # receives, so the rest is handed over as is: a deep copy would cost the bench a tenth
        # of an in-process round trip.)
        header = dict(msg["header"])
        date = header.get("date", "")
        header["date"] = date if isinstance(date, str) else date.isoformat()
        self._handle.receive(channel, {**msg, "header": header})

    async def receive(self) -> Arrival:
        return await self._inbox.async_get()

    def receive_blocking(self, timeout: float) -> Arrival | None:
        """The next message the kernel sent, or None if none comes within ``timeout`` s."""
        try:
            return self._inbox.green_get(timeout=max(timeout, 0.0))
        except aiologic.QueueEmpty:
            return None

    # -- what only a launcher could do --------------------------------------------------------
    async def signal_interrupt(self) -> None:
        raise RuntimeError("an in-process kernel is interrupted by message, not by signal")

    async def interrupt(self) -> None:
        raise RuntimeError("an in-process kernel is interrupted by message (interrupt_request)")

    def kernel_pid(self) -> int | None:
        return None  # no process of its own

    def connection_file_path(self) -> str | None:
        return None  # no sockets to attach to

    async def drain(self) -> None:
        await anyio.lowlevel.checkpoint()  # send() hands messages over at once

    async def wait_exit(self, timeout: float) -> bool:
        raise RuntimeError("an in-process kernel has no process whose end could be awaited")


def transport(argument: str = "") -> InProcessTransport:
    """The ``inprocess`` entry point: ``argument`` names the backend ("" means asyncio)."""
    return InProcessTransport(backend=argument or "asyncio")
