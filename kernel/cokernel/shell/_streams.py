"""stdout and stderr for the kernel: coalesced, ordered and routed to the right cell.

Every write is appended to the buffer of the request it belongs to (the context's
:data:`~cokernel.protocol._request.current_request`, else the latest main-shell execute). A flusher thread
sends what has gathered every ``interval`` seconds (where threads cannot start, a task on the
kernel's loop does: :meth:`StreamRouter.flush_periodically`), and a buffer that grows past ``max_buffer``
characters is sent at once, so a loop of 100,000 prints becomes a handful of ``stream`` messages.
stdout and stderr share one buffer per request so their relative order survives.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from typing import Any

import anyio

from cokernel.protocol._outbox import Outbox
from cokernel.protocol._request import Request, current_request
from cokernel.shell._cells import current_cell
from cokernel.shell._fdcapture import in_forked_child, write_fd
from cokernel.shell._uninterruptible import uninterruptible

Publish = Callable[[str, dict[str, Any], "Request | None"], None]


class _Pending:
    __slots__ = ("chunks", "parent", "size")

    def __init__(self, parent: Request | None) -> None:
        self.parent = parent
        self.chunks: list[tuple[str, str]] = []
        self.size = 0


class StreamRouter:
    """Buffers stream text per request and publishes it as ``stream`` messages."""

    def __init__(
        self,
        publish: Publish,
        fallback_parent: Callable[[], Request | None],
        *,
        interval: float = 0.05,
        max_buffer: int = 256 * 1024,
        threaded: bool = True,
    ) -> None:
        self._publish = publish
        self._fallback_parent = fallback_parent
        self.interval = interval
        self.max_buffer = max_buffer
        self._lock = threading.RLock()
        self._buffers: dict[int, _Pending] = {}
        self._wake = threading.Event()
        self._closed = False
        if threaded:
            thread = threading.Thread(target=self._run, name="cokernel-stream-flusher", daemon=True)
            thread.start()

    def write(self, name: str, text: str) -> None:
        self.write_to(current_request.get() or self._fallback_parent(), name, text)

    @uninterruptible
    def write_to(self, parent: Request | None, name: str, text: str) -> None:
        """Append ``text`` to ``parent``'s buffer (output whose origin is known otherwise)."""
        key = id(parent)
        with self._lock:
            pending = self._buffers.get(key)
            if pending is None:
                pending = self._buffers[key] = _Pending(parent)
                self._wake.set()
            pending.chunks.append((name, text))
            pending.size += len(text)
            if pending.size >= self.max_buffer:
                self._send(key)

    def flush(self, parent: Request | None = None, *, everything: bool = False) -> None:
        """Send what is buffered for ``parent`` (default: the current request), or all."""
        with self._lock:
            if everything:
                for key in list(self._buffers):
                    self._send(key)
            else:
                parent = parent or current_request.get() or self._fallback_parent()
                self._send(id(parent))

    def _send(self, key: int) -> None:
        pending = self._buffers.pop(key, None)
        if pending is None or not pending.chunks:
            return
        # Adjacent chunks of one stream become one message; a switch of stream starts another.
        name, parts = pending.chunks[0][0], [pending.chunks[0][1]]
        for chunk_name, text in pending.chunks[1:]:
            if chunk_name != name:
                self._publish("stream", {"name": name, "text": "".join(parts)}, pending.parent)
                name, parts = chunk_name, []
            parts.append(text)
        self._publish("stream", {"name": name, "text": "".join(parts)}, pending.parent)

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait()
            self._wake.clear()
            if self._closed:
                break
            # Let output gather for one interval, then send everything buffered so far.
            threading.Event().wait(self.interval)
            self.flush(everything=True)

    async def flush_periodically(self) -> None:
        """The flusher as a task on the kernel's loop, for a router made with ``threaded=False``."""
        while not self._closed:
            await anyio.sleep(self.interval)
            if self._wake.is_set():
                self._wake.clear()
                self.flush(everything=True)

    def close(self) -> None:
        self.flush(everything=True)
        self._closed = True
        self._wake.set()


def wait_for_room(outbox: Outbox | None) -> None:
    """Called by a producer of user output before it builds a message or takes a lock: waits
    while ``outbox`` is over its bound (see :mod:`cokernel.protocol._outbox`). An interrupt of
    the cell running on this thread ends the wait at once (the cell's ``wake``)."""
    if outbox is None or not outbox.full:
        return
    cell = current_cell.get()
    if cell is None or cell.thread is not threading.current_thread() or cell.wake is not None:
        outbox.wait_for_room()
        return
    cell.wake = outbox.wake_waiters
    try:
        outbox.wait_for_room()
    finally:
        cell.wake = None


class OutStream(io.TextIOBase):
    """A text stream (``sys.stdout`` or ``sys.stderr``) that writes into a :class:`StreamRouter`.

    With ``fileno`` (giving 1 or 2 while the kernel captures its file descriptors: see
    :mod:`cokernel.shell._fdcapture`) :meth:`fileno` returns what it gives, so ``faulthandler.enable()`` and
    ``subprocess.run(..., stdout=sys.stdout)`` work and their output reaches the cell;
    ``before_write`` is called before each write and ``before_flush`` before each flush (they
    forward what was written to the descriptors so far, keeping the order). In a process forked
    from the kernel the stream writes straight to fd 1 or 2, as the kernel's threads and locks
    do not exist there.
    With ``room`` (the interface's outbox) a write or flush first waits while the outbox is
    full (:func:`wait_for_room`).
    """

    def __init__(
        self,
        name: str,
        router: StreamRouter,
        *,
        echo: Any = None,
        room: Outbox | None = None,
        fileno: Callable[[], int] | None = None,
        before_write: Callable[[], None] | None = None,
        before_flush: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self._router = router
        self._echo = echo
        self._room = room
        self._fileno = fileno
        self._before_write = before_write
        self._before_flush = before_flush
        self._child_fd = 1 if name == "stdout" else 2

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]
        return "strict"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        if self._fileno is None:
            raise io.UnsupportedOperation(
                "fileno: this kernel does not capture file descriptors 1 and 2 "
                "(see KernelOptions.capture_fds)"
            )
        return self._fileno()

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if text:
            if in_forked_child():
                write_fd(self._child_fd, text)
                return len(text)
            room = self._room
            if room is not None and room.full:
                wait_for_room(room)
            if self._before_write is not None:
                self._before_write()
            self._router.write(self.name, text)
            if self._echo is not None:
                self._echo.write(text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if in_forked_child():
            return
        room = self._room
        if room is not None and room.full:
            wait_for_room(room)
        if self._before_flush is not None:
            self._before_flush()
        self._router.flush()
