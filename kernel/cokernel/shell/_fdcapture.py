"""Output written to file descriptors 1 and 2, forwarded to the cell that is running.

``sys.stdout``/``sys.stderr`` only see what Python code prints. ``os.system``, a subprocess that
inherits the kernel's stdout, a C library calling ``printf`` and a forked ``multiprocessing``
child all write to the process's file descriptors 1 and 2, which a kernel started by Jupyter
points at the server's terminal. :class:`FdCapture` points both at pipes of its own
(``dup2``), keeps a duplicate of each original, and reads the pipes on a thread of its own: what
arrives goes to the kernel's stream router (to the running cell) and is echoed to the original
descriptor (the terminal), as ipykernel does.

Order with Python-level output: :meth:`FdCapture.drain` routes everything written to the pipes
so far, synchronously and without sleeping (the read ends are non-blocking; one lock orders the
reader thread and the drainer). The kernel drains before a cell's reply, so a cell's
``os.system`` output never lands in the next cell; on ``sys.stdout.flush()``; and before a
Python-level write unless it drained less than :data:`DRAIN_INTERVAL` ago, so
``print(1); os.system("echo 2"); print(3)`` shows 1, 2, 3.

Capture is on only where the kernel owns the process (``cokernel start``, i.e. the ZMQ path):
an embedding host's descriptors are its own (``KernelOptions.capture_fds``).
"""

from __future__ import annotations

import codecs
import contextlib
import io
import logging
import os
import select
import sys
import threading
import time
from collections.abc import Callable

from cokernel.engine._heldcalls import ReadyPoll

log = logging.getLogger("cokernel.fdcapture")

#: ``sink(stream_name, text)``: where captured text goes (the kernel's stream router).
Sink = Callable[[str, str], None]

_READ_SIZE = 65536
# A drain reads at most this much per descriptor: a pipe holds 64 KiB on Linux, so this is
# everything written before the drain unless writers keep writing while it runs.
_DRAIN_LIMIT = 1 << 20
# A Python-level write drains first only if the last drain is older than this: a drain costs
# about 2 us (a lock and a poll system call), a print about 5 us, so draining before every
# write would slow a loop of prints by half. Anything that writes to a descriptor through a new
# process (os.system, subprocess, a multiprocessing child) takes far longer than this.
DRAIN_INTERVAL = 0.0002


class _Captured:
    __slots__ = ("decoder", "fd", "name", "original", "read_end")

    def __init__(self, fd: int, name: str, original: int, read_end: int) -> None:
        self.fd = fd
        self.name = name
        self.original = original  # a duplicate of what ``fd`` was before the capture
        self.read_end = read_end
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")


class FdCapture:
    """Points file descriptors 1 and 2 at pipes and forwards what is written to them."""

    def __init__(
        self, sink: Sink, before_read: Callable[[], None] | None = None, *, echo: bool = True
    ) -> None:
        self._sink = sink
        # Called by the reader thread before each read, holding no lock: it may wait (the
        # outbox's backpressure), and a writing child process then waits on the full pipe.
        self._before_read = before_read
        self.echo = echo
        self._lock = threading.RLock()
        self._captured: list[_Captured] = []
        self._by_read_end: dict[int, _Captured] = {}
        self._poll = select.poll()  # the reader thread's
        # drain()'s, which keeps the GIL: see cokernel.engine._heldcalls (one thread at a time)
        self._drain_poll = ReadyPoll()
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._last_drain = 0.0
        self.active = False

    def start(self) -> bool:
        """Redirect fds 1 and 2 and start the reader thread; False (logged) if that fails, as
        when the kernel was started with fd 1 or 2 closed: it then runs without capturing."""
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            with contextlib.suppress(Exception):
                if stream is not None:
                    stream.flush()
        try:
            originals = [(fd, name, os.dup(fd)) for fd, name in ((1, "stdout"), (2, "stderr"))]
        except OSError as e:
            log.warning("not capturing fds 1 and 2: %s (was the kernel started without them?)", e)
            return False
        for fd, name, original in originals:
            read_end, write_end = os.pipe()
            os.set_blocking(read_end, False)
            os.dup2(write_end, fd)  # inheritable: subprocesses and children write here
            os.close(write_end)
            captured = _Captured(fd, name, original, read_end)
            self._captured.append(captured)
            self._by_read_end[read_end] = captured
            self._poll.register(read_end, select.POLLIN)
            self._drain_poll.register(read_end)
        self._wake_r, self._wake_w = os.pipe()
        self._poll.register(self._wake_r, select.POLLIN)
        self.active = True
        self._thread = threading.Thread(target=self._run, name="cokernel-fd-reader", daemon=True)
        self._thread.start()
        return True

    def fileno(self, fd: int) -> int:
        """``fd`` while it is captured (``sys.stdout.fileno()``); else io.UnsupportedOperation."""
        if not self.active:
            raise io.UnsupportedOperation(
                "fileno: this kernel does not capture file descriptors 1 and 2 "
                "(see KernelOptions.capture_fds)"
            )
        return fd

    def original_fd(self, fd: int) -> int | None:
        """The duplicate of what ``fd`` (1 or 2) was before the capture."""
        for captured in self._captured:
            if captured.fd == fd:
                return captured.original
        return None

    def drain_if_due(self) -> None:
        """:meth:`drain`, unless the last drain is younger than :data:`DRAIN_INTERVAL`."""
        if time.monotonic() - self._last_drain >= DRAIN_INTERVAL:
            self.drain()

    def drain(self) -> None:
        """Route everything written to the captured descriptors so far (any thread)."""
        if not self.active:
            return
        with self._lock:
            self._last_drain = time.monotonic()
            for read_end in self._drain_poll.ready():
                captured = self._by_read_end.get(read_end)
                if captured is not None:
                    self._read(captured, _DRAIN_LIMIT)

    def _read(self, captured: _Captured, limit: int) -> None:
        """Read what ``captured``'s pipe holds (up to ``limit`` bytes); call with the lock."""
        total = 0
        while total < limit:
            try:
                data = os.read(captured.read_end, _READ_SIZE)
            except BlockingIOError:
                return
            except OSError:  # closed under us by stop()
                return
            if not data:  # every write end is closed: only after stop()
                for poll in (self._poll, self._drain_poll):
                    with contextlib.suppress(KeyError, ValueError):
                        poll.unregister(captured.read_end)
                return
            total += len(data)
            if self.echo:
                _write_all(captured.original, data)
            text = captured.decoder.decode(data)
            if text:
                try:
                    self._sink(captured.name, text)
                except Exception:
                    log.exception("forwarding %s output failed", captured.name)

    def _run(self) -> None:
        while not self._stopping:
            try:
                ready = self._poll.poll()
            except InterruptedError:
                continue
            if self._before_read is not None:
                self._before_read()
            with self._lock:
                for read_end, _events in ready:
                    captured = self._by_read_end.get(read_end)
                    if captured is not None:
                        self._read(captured, _READ_SIZE)

    def stop(self) -> None:
        """Forward what is left, give fds 1 and 2 back, end the reader thread."""
        if not self.active:
            return
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        self.drain()
        with self._lock:
            self.active = False
            self._stopping = True
            for captured in self._captured:
                os.dup2(captured.original, captured.fd)
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        with self._lock:
            for captured in self._captured:
                self._read(captured, _DRAIN_LIMIT)
                # What a child process still writes into the pipe is lost from here on.
                for fd in (captured.read_end, captured.original):
                    with contextlib.suppress(OSError):
                        os.close(fd)
                tail = captured.decoder.decode(b"", final=True)
                if tail:
                    with contextlib.suppress(Exception):
                        self._sink(captured.name, tail)
            for fd in (self._wake_r, self._wake_w):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._captured.clear()
            self._by_read_end.clear()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except OSError:  # the terminal went away: the cell still gets the text
            return
        view = view[written:]


# -- forked children ---------------------------------------------------------------------------
_forked = False


def _after_fork_in_child() -> None:
    global _forked
    _forked = True


if hasattr(os, "register_at_fork"):  # not in Pyodide/WASI builds, which cannot fork
    os.register_at_fork(after_in_child=_after_fork_in_child)


def in_forked_child() -> bool:
    """True in a process forked from the kernel (``multiprocessing`` with ``fork``, ``os.fork``).

    There the kernel's threads do not exist and its locks may be held forever: the child's
    ``sys.stdout``/``sys.stderr`` write straight to fds 1 and 2 instead (see ``OutStream``).
    """
    return _forked


def write_fd(fd: int, text: str) -> None:
    """Write ``text`` to ``fd`` as UTF-8 (a forked child's stdout/stderr)."""
    _write_all(fd, text.encode("utf-8", "replace"))
