"""The callback interface: a kernel in this process, messages in and out through callables.

No sockets and no zmq import: for embedding in a Python program, JupyterLite-style hosts and
fast tests. The host gives a ``send(channel, msg)`` callable for everything the kernel emits
(iopub outputs, replies, stdin ``input_request``) and calls :meth:`KernelHandle.receive` with
each message for the kernel (message dicts, or wire frames when signing is on)::

    handle = start(lambda channel, msg: outbox.append((channel, msg)))
    handle.receive("shell", session_msg("execute_request", {"code": "1 + 1"}))
    ...
    handle.stop()

:func:`start` runs the kernel on a thread of its own. A host that already runs an event loop
can instead ``await serve(send, ready=...)`` on it (asyncio or trio, matching ``options.backend``):
cells then run on the host's loop and thread.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel

from cokernel.kernel._handlers import HANDLERS
from cokernel.kernel._kernel import Kernel
from cokernel.options import KernelOptions
from cokernel.protocol._messages import Channel, Message, ProtocolError, Session
from cokernel.shell._uninterruptible import uninterruptible

SendCallback = Callable[[str, dict[str, Any]], None]


def _as_message(msg: dict[str, Any]) -> Message:
    for part in ("header", "parent_header", "metadata", "content"):
        if not isinstance(msg.get(part, {}), dict):
            raise ProtocolError(f"message {part} must be a dict")
    header = msg.get("header")
    if not isinstance(header, dict) or not isinstance(header.get("msg_type"), str):
        raise ProtocolError("message header lacks a msg_type")
    if not isinstance(header.get("msg_id"), str):
        raise ProtocolError("message header lacks a msg_id")
    return {
        "header": header,
        "parent_header": msg.get("parent_header") or {},
        "metadata": msg.get("metadata") or {},
        "content": msg.get("content") or {},
        "buffers": list(msg.get("buffers") or []),
    }


class KernelHandle:
    """A running in-process kernel: feed it messages, stop it."""

    def __init__(self, kernel: Kernel, *, wire: bool) -> None:
        self.kernel = kernel
        self.session = kernel.session
        self._wire = wire
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def receive(self, channel: str, msg: dict[str, Any] | list[bytes]) -> None:
        """Hand the kernel one message (thread-safe). Bad messages are logged and dropped."""
        try:
            kind = Channel(channel)
            if kind in (Channel.iopub, Channel.hb):
                raise ProtocolError(f"the kernel does not receive on {channel}")
            if isinstance(msg, list):
                identities, message = self.session.deserialize(msg)
            else:
                identities, message = [], _as_message(msg)
        except (ProtocolError, ValueError) as e:
            import logging

            logging.getLogger("cokernel.callback").warning(
                "dropped a message on %s: %s", channel, e
            )
            return
        # In an empty context: the kernel's callers copy the submitter's context into the work
        # they schedule (asyncio's call_soon_threadsafe does), and a host running its own loop
        # carries that loop's markers (anyio sets sniffio's "trio" variable) which would make
        # anyio inside the kernel believe it runs on the host's backend, not its own.
        contextvars.Context().run(self.kernel.receive, kind, identities, message)

    @property
    def running(self) -> bool:
        return self.kernel.started.is_set() and not self.kernel.shutdown_requested.is_set()

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the kernel down and wait for its thread. Idempotent."""
        self.kernel.request_shutdown(restart=False)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"the kernel did not stop within {timeout} s")


def _make_kernel(
    send: SendCallback, options: KernelOptions | None, key: bytes, wire: bool
) -> Kernel:
    session = Session(key)

    @uninterruptible  # the host's callback is not the cell's code: an interrupt waits it out
    def emit(channel: Channel, msg: Message, identities: list[bytes] | None) -> None:
        if wire:
            send(channel.value, session.serialize(msg, identities))  # type: ignore[arg-type]
        else:
            send(channel.value, dict(msg))

    return Kernel(options or KernelOptions(), session, emit, handlers=HANDLERS)


def start(
    send: SendCallback,
    *,
    options: KernelOptions | None = None,
    key: bytes = b"",
    wire: bool = False,
    timeout: float = 30.0,
) -> KernelHandle:
    """Start a kernel on a new thread; returns once it accepts messages.

    ``send(channel, msg)`` is called from kernel threads with message dicts, or with signed
    wire frames when ``wire`` is true (then ``key`` signs them, and :meth:`KernelHandle.receive`
    expects frames). Signal-mode interrupts do not exist in-process: send ``interrupt_request``.
    """
    kernel = _make_kernel(send, options, key, wire)
    handle = KernelHandle(kernel, wire=wire)
    backend = kernel.options.backend

    def main() -> None:
        try:
            anyio.run(_serve_kernel, kernel, backend=backend)
        except BaseException as e:
            handle._error = e
            kernel.started.set()

    thread = threading.Thread(target=main, name="cokernel-inprocess", daemon=True)
    handle._thread = thread
    thread.start()
    if not kernel.started.wait(timeout):
        raise TimeoutError(f"the kernel did not start within {timeout} s")
    if handle._error is not None:
        raise RuntimeError("the in-process kernel failed to start") from handle._error
    return handle


async def _serve_kernel(kernel: Kernel) -> None:
    await kernel.run(handle_sigint=False)


async def serve(
    send: SendCallback,
    *,
    options: KernelOptions | None = None,
    key: bytes = b"",
    wire: bool = False,
    ready: Callable[[KernelHandle], None] | None = None,
) -> None:
    """Run a kernel on the host's running event loop until it is shut down.

    ``ready(handle)`` is called once the kernel accepts messages.
    """
    import sniffio

    options = options or KernelOptions()
    options.backend = sniffio.current_async_library()  # type: ignore[assignment]
    kernel = _make_kernel(send, options, key, wire)
    handle = KernelHandle(kernel, wire=wire)
    async with anyio.create_task_group() as tg:
        tg.start_soon(_serve_kernel, kernel)
        # Polled, not waited for in a worker thread: Pyodide has no threads, and the kernel
        # sets it before its first await.
        while not kernel.started.is_set():
            await anyio.lowlevel.checkpoint()
        if ready is not None:
            ready(handle)
