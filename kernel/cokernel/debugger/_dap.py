"""The kernel's link to debugpy: a DAP connection to its adapter, and debugpy's thread state.

:class:`AdapterConnection` carries DAP messages to and from debugpy's adapter over a socket
read by a thread of its own, so nothing here depends on an event loop that a breakpoint might
be holding. The helpers below read and set the attributes pydevd (debugpy's tracer) keeps on
``threading.Thread`` objects: which threads it must leave alone, and which it holds.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

log = logging.getLogger("cokernel.debugger")

# Threads of the kernel's own machinery: debugpy neither traces them nor lists them.
_KERNEL_THREADS = (
    "cokernel-control",
    "cokernel-io",
    "cokernel-heartbeat",
    "cokernel-stream-flusher",
    "cokernel-fd-reader",
    "cokernel-history",
    "cokernel-parent-watch",
    "cokernel-exit",
    "cokernel-warmup",  # cokernel.shell._warmup: jedi and the first traceback's imports
    "cokernel-debugger",
    "cokernel-sigint",  # cokernel.shell._interrupts: the SIGINT watch
    "IPythonHistorySavingThread",
)
PYDEVD_SUSPENDED = 2  # pydevd's STATE_SUSPEND


def hide_from_debugpy(thread: threading.Thread) -> None:
    """Mark ``thread`` as debugger machinery: debugpy does not trace, list or suspend it."""
    thread.pydev_do_not_trace = True  # type: ignore[attr-defined]
    thread.is_pydev_daemon_thread = True  # type: ignore[attr-defined]


def hide_kernel_threads() -> None:
    for thread in threading.enumerate():
        if thread.name.startswith(_KERNEL_THREADS):
            hide_from_debugpy(thread)


def held_by_debugger(thread: threading.Thread) -> bool:
    """Whether debugpy holds ``thread`` at a breakpoint, a step or a pause (it runs nothing).

    Read from pydevd's per-thread state. The kernel forwards a stopped event only once the
    thread is in its wait loop (``Debugger._on_stopped``), so a frontend reacting to that
    event always finds the thread held.
    """
    info = getattr(thread, "additional_info", None)
    return (
        info is not None
        and getattr(info, "pydev_state", None) == PYDEVD_SUSPENDED
        and bool(getattr(info, "is_in_wait_loop", False))
    )


def in_debugpy_code(frame: FrameType | None) -> bool:
    while frame is not None:
        filename = frame.f_code.co_filename
        if "debugpy" in filename and ("pydevd" in filename or "_vendored" in filename):
            return True
        frame = frame.f_back
    return False


class AdapterConnection:
    """One DAP connection to debugpy's adapter; a thread of its own reads it."""

    def __init__(
        self,
        host: str,
        port: int,
        on_message: Callable[[AdapterConnection, dict[str, Any] | None], None],
    ) -> None:
        self._sock = socket.create_connection((host, port), timeout=10)
        self._sock.settimeout(None)
        self._write = threading.Lock()
        self._on_message = on_message
        self._thread = threading.Thread(target=self._read, name="cokernel-debugger", daemon=True)
        hide_from_debugpy(self._thread)
        self._thread.start()

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode("utf-8")
        with self._write:
            self._sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()

    def _read(self) -> None:
        buffer = b""
        try:
            while True:
                head_end = buffer.find(b"\r\n\r\n")
                if head_end >= 0:
                    length = 0
                    for line in buffer[:head_end].split(b"\r\n"):
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                    start = head_end + 4
                    if len(buffer) - start >= length:
                        body, buffer = buffer[start : start + length], buffer[start + length :]
                        self._on_message(self, json.loads(body))
                        continue
                chunk = self._sock.recv(65536)
                if not chunk:
                    break
                buffer += chunk
        except OSError:
            pass
        except Exception:
            log.exception("reading from debugpy failed")
        self._on_message(self, None)
