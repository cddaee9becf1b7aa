"""The in-process transport: a cokernel kernel in this process, through its callback interface.

It drives only the public entry point ``cokernel.interfaces.callback.start`` (imported when the
transport starts), so the harness still speaks nothing but the protocol: message dicts in and
out. Scenarios and property tests run here much faster than over ZMQ.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import aiologic
from jupyter_client.session import Session

from cokernel_harness.transport import Received, Transport


class InProcessTransport(Transport):
    """A cokernel kernel on a thread of this process. ``backend`` is "asyncio" or "trio"."""

    interrupt_mode = "message"

    def __init__(self, *, backend: str = "asyncio", timeout: float | None = None) -> None:
        self.backend = backend
        self.timeout = timeout
        self.session = Session(key=b"")
        self._inbox: aiologic.SimpleQueue[Received] = aiologic.SimpleQueue()
        self._handle: Any = None

    def _on_send(self, channel: str, msg: dict[str, Any]) -> None:
        self._inbox.put(Received(channel, msg, time.perf_counter()))

    async def start(self) -> None:
        from cokernel.interfaces.callback import start
        from cokernel.options import KernelOptions

        options = KernelOptions(backend=self.backend, timeout=self.timeout)  # type: ignore[arg-type]
        self._handle = start(self._on_send, options=options)

    def send(self, channel: str, msg: dict[str, Any]) -> None:
        # The kernel keeps what it receives; a copy keeps the frontend's record its own.
        message = copy.deepcopy(msg)
        message["header"]["date"] = str(message["header"].get("date", ""))
        self._handle.receive(channel, message)

    async def receive(self) -> Received:
        return await self._inbox.async_get()

    async def signal_interrupt(self) -> None:
        raise RuntimeError("an in-process kernel is interrupted by message, not by signal")

    async def restart(self) -> None:
        await self.close()
        await self.start()

    def is_alive(self) -> bool:
        return self._handle is not None and bool(self._handle.running)

    async def close(self) -> None:
        import anyio.to_thread

        if self._handle is not None:
            handle, self._handle = self._handle, None
            await anyio.to_thread.run_sync(handle.stop)
