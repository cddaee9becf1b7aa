"""How much of the shell channel the kernel holds before it stops reading it (backpressure).

Every shell message the io thread reads becomes a request that waits in its lane until a
handler starts on it. Unbounded, a burst of 100,000 comm messages lands in the kernel's memory
at once (the issue measured 46 -> 715 MiB). :class:`ShellBacklog` counts the shell requests
read but not started yet, and their wire bytes; at either bound the io thread stops reading the
shell socket. The messages then wait in ZMQ's queues (the shell socket's receive high-water mark
is finite) and, once those are full, in the sender: backpressure, nothing dropped, order kept.

Only *unstarted* requests count: a cell that runs (or awaits something) holds no place, so any
number of concurrent cells can wait on each other. Control and stdin are never paused, so an
interrupt, a shutdown, subshell management and an ``input_reply`` always get through.

One ROUTER socket carries every shell lane, so a pause holds back all of them, including a
comm message that the running cell waits for, queued in the socket behind the backlog. To keep
that from becoming a deadlock, a pause that sees no request start for :data:`STALL_SECONDS`
admits :data:`STALL_BATCH` more messages, and keeps doing so up to :data:`HARD_FACTOR` times the
bound; only beyond that does the kernel wait for its lanes to move.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from cokernel.options import env_int

if TYPE_CHECKING:
    from cokernel.protocol._request import Request


#: Shell requests read but not started, at most (``COKERNEL_SHELL_BACKLOG`` overrides).
MAX_MESSAGES = env_int("COKERNEL_SHELL_BACKLOG", 1000)
#: Wire bytes of those requests, at most (``COKERNEL_SHELL_BACKLOG_BYTES`` overrides). A single
#: message larger than this is still read when nothing else is held.
MAX_BYTES = env_int("COKERNEL_SHELL_BACKLOG_BYTES", 32 * 2**20)
#: Reading resumes once the backlog is down to this fraction of both bounds (hysteresis: the
#: io thread does not flip between paused and reading for every message).
RESUME_FRACTION = 0.5
#: A pause in which no request started for this long admits a few more messages (see above).
STALL_SECONDS = 1.0
STALL_BATCH = 64
HARD_FACTOR = 4


class ShellBacklog:
    """Counts the shell requests held unstarted; thread-safe.

    The io thread calls :meth:`admits` before reading and :meth:`hold` for each message read;
    whoever starts or settles a request calls :meth:`release`. ``wake`` is called (from the
    releasing thread) when a paused backlog has drained enough to read again.
    """

    def __init__(
        self,
        wake: Callable[[], None] | None = None,
        *,
        max_messages: int = MAX_MESSAGES,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self.wake = wake
        self.max_messages, self.max_bytes = max_messages, max_bytes
        self._lock = threading.Lock()
        self.messages = 0
        self.bytes = 0
        self.paused = False
        self.pauses = 0  # how many times reading stopped (for tests and the log)
        self.started = 0  # releases so far: the progress a stalled pause looks for
        self._extra = 0  # messages a stalled pause still admits beyond the bound
        self._seen_started = 0

    def admits(self) -> bool:
        """Whether the io thread may read another shell message now (io thread only)."""
        with self._lock:
            if self._extra > 0:
                return True
            if self.paused:
                return False
            if self.messages >= self.max_messages or self.bytes >= self.max_bytes:
                self.paused = True
                self.pauses += 1
                self._seen_started = self.started
                return False
            return True

    def hold(self, size: int) -> None:
        with self._lock:
            self.messages += 1
            self.bytes += size
            if self._extra > 0:
                self._extra -= 1

    def hold_for(self, request: Request, size: int) -> None:
        """Count ``request`` (``size`` wire bytes) as held, until :meth:`release_for`."""
        request.held = size
        self.hold(size)

    def release_for(self, request: Request) -> None:
        """``request`` started or was settled: it is no longer held (idempotent)."""
        with self._lock:
            size, request.held = request.held, None
        if size is not None:
            self.release(size)

    def release(self, size: int) -> None:
        wake = None
        with self._lock:
            self.messages -= 1
            self.bytes -= size
            self.started += 1
            if (
                self.paused
                and self.messages <= self.max_messages * RESUME_FRACTION
                and self.bytes <= self.max_bytes * RESUME_FRACTION
            ):
                self.paused = False
                self._extra = 0
                wake = self.wake
        if wake is not None:
            wake()

    def check_stall(self) -> bool:
        """Called by a paused io thread every :data:`STALL_SECONDS`: if no request started
        since the last call, admit a batch more (up to the hard bound). True if it did."""
        with self._lock:
            if not self.paused or self.started != self._seen_started:
                self._seen_started = self.started
                return False
            room = self.max_messages * HARD_FACTOR - self.messages
            if room <= 0 or self.bytes >= self.max_bytes * HARD_FACTOR:
                return False
            self._extra = min(STALL_BATCH, room)
            return True
