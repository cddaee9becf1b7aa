"""What the kernel's threads queue for the interface's io thread to send, and its bound.

Any thread sends by appending a message's wire frames to the :class:`Outbox`; one thread (the
ZMQ interface's io thread, the *consumer*) takes them out in order and sends them. The io
thread never waits on the network, so on an idle machine it keeps up; on a loaded one it may get
little CPU while a cell produces output as fast as it can (a loop of 100,000 ``display`` calls),
and unbounded the outbox then grew by tens of MiB.

The bound is backpressure on the *producers of user output*, applied only where waiting is
safe: ``print``/``sys.stdout.write``/``flush``, ``display``/``clear_output``, comm messages sent
by user code, and the reader of captured file descriptors each call :meth:`Outbox.wait_for_room`
*before* they build a message or take any lock of the kernel. While the outbox holds
:data:`MAX_WEIGHT` or more (a message weighs 1, plus 1 per :data:`UNIT` bytes beyond the first
``UNIT``), such a producer waits until the io thread has drained it to half; the io thread
wakes the waiters as it drains (:meth:`Outbox.drained`). Everything else (replies, status,
``execute_input``, errors, the debugger's events, stdin requests) is never held back: those
messages are the kernel's own, few, and bounded by the shell backlog.

A producer does not wait (it sends as it would unbounded) when waiting could stall or reorder:

- on the consumer thread itself (it is the one that would make room);
- inside a signal handler (it may have interrupted kernel code holding a lock), and when the
  thread is already waiting here (a signal handler, finalizer or gc callback run during the
  wait: the message would otherwise wait behind the one that waits);
- when there is no live consumer, or the outbox is closed (a waiting producer is released);
- when the consumer has been inside the kernel's receive path (``consumer_busy``) for a whole
  :data:`WAIT_SLICE` without leaving it: it may be blocked on a lock the waiting thread holds (a
  finalizer that prints, run by the garbage collector in kernel code), so the producer goes on
  rather than deadlock. The io thread never takes a kernel lock anywhere else.

The wait is a lock acquisition with a timeout: a SIGINT interrupts it on the main thread (the
kernel's handler raises KeyboardInterrupt in the cell), and :meth:`Outbox.wake_waiters` (an
interrupt's wake-up of the cell) ends it on any other thread at once; the posted exception
then fires. Message order is unchanged: a producer waits before its message exists, as if it
had been slower.

Thread-safety without a lock: the messages and the weight tokens are deques (appends and pops
are atomic); the consumer alone takes from them. The waiting producers' locks are in a deque
too, released by the consumer, so the consumer never blocks on a producer.
"""

from __future__ import annotations

import _thread
import functools
import signal
import sys
import threading
import types
from collections import deque
from collections.abc import Callable
from itertools import repeat
from typing import TYPE_CHECKING, Any

from cokernel.options import env_int

if TYPE_CHECKING:
    from cokernel.protocol._messages import Channel


#: The weight at which producers of user output start to wait (``COKERNEL_OUTBOX`` overrides).
MAX_WEIGHT = env_int("COKERNEL_OUTBOX", 2000)
#: Bytes per unit of weight: a message of ``n`` bytes weighs ``1 + n // UNIT``, so the outbox
#: holds at most about ``MAX_WEIGHT * UNIT`` bytes of large messages (32 MiB).
UNIT = 16 * 1024
#: Waiting producers go on once the weight is down to this fraction of :data:`MAX_WEIGHT`.
RESUME_FRACTION = 0.5
#: A waiting producer looks again this often (the consumer stuck in kernel code, a close).
WAIT_SLICE = 0.05


class Outbox:
    """A FIFO of ``(channel, frames)`` with a bound that makes producers of user output wait."""

    def __init__(self, max_weight: int = MAX_WEIGHT, unit: int = UNIT) -> None:
        self.max_weight = max_weight
        self.resume_weight = int(max_weight * RESUME_FRACTION)
        self.unit = unit
        self._items: deque[tuple[Channel, list[bytes], int]] = deque()
        self._heavy: deque[None] = deque()  # one token per unit of extra weight
        #: Whether producers should call :meth:`wait_for_room` (a hint: set by :meth:`put`
        #: at the bound, cleared once drained; a stale value costs one look or one message).
        self.full = False
        self._waiters: deque[_thread.LockType] = deque()
        self._local = threading.local()
        self._closed = False
        #: The thread that takes messages out (the io thread); producers never wait without one.
        self.consumer: threading.Thread | None = None
        #: Set by the consumer while it is in the kernel's receive path, where it may take
        #: kernel locks; ``consumer_entries`` counts its entries there.
        self.consumer_busy = False
        self.consumer_entries = 0
        #: How many times a producer began to wait (for tests and measurements; producers on
        #: several threads may count one wait less, the count is not locked).
        self.waits = 0

    # -- producers (any thread) ------------------------------------------------------------
    def put(self, channel: Channel, frames: list[bytes]) -> None:
        """Queue a message; never waits."""
        units = sum(map(len, frames)) // self.unit
        if units:  # before the message, so the consumer that takes it finds its tokens
            self._heavy.extend(repeat(None, units))
        self._items.append((channel, frames, units))
        if len(self._items) + len(self._heavy) >= self.max_weight:
            self.full = True

    @property
    def weight(self) -> int:
        return len(self._items) + len(self._heavy)

    def wait_for_room(self) -> None:
        """Wait while the outbox is over its bound, where that is safe (see the module)."""
        if self.weight <= self.resume_weight:
            self.full = False
            return
        if not self._may_wait():
            return
        local = self._local
        local.waiting = True
        self.waits += 1
        try:
            while self.weight > self.resume_weight and not self._closed:
                lock = _thread.allocate_lock()
                lock.acquire()
                self._waiters.append(lock)
                # Registered, then looked again: a drain that came in between is not missed.
                if self.weight <= self.resume_weight or self._closed:
                    break
                entries = self.consumer_entries
                if not lock.acquire(timeout=WAIT_SLICE) and not self._consumer_free(entries):
                    break
            if self.weight <= self.resume_weight:
                self.full = False
        finally:
            local.waiting = False

    def _may_wait(self) -> bool:
        consumer = self.consumer
        here = threading.current_thread()
        if self._closed or consumer is None or consumer is here or not consumer.is_alive():
            return False
        if getattr(self._local, "waiting", False):
            return False  # re-entered while waiting: a signal handler, finalizer, gc callback
        return here is not threading.main_thread() or not _in_signal_handler(sys._getframe(1))

    def _consumer_free(self, entries: int) -> bool:
        """After a slice without a wake-up: whether the consumer may still make room."""
        consumer = self.consumer
        if consumer is None or not consumer.is_alive():
            return False
        # In the receive path since before the slice began: it may wait for this thread.
        return not (self.consumer_busy and self.consumer_entries == entries)

    def wake_waiters(self) -> None:
        """End every producer's wait (any thread; they look again at the outbox)."""
        waiters = self._waiters
        while waiters:
            try:
                lock = waiters.popleft()
            except IndexError:
                return
            try:
                lock.release()
            except RuntimeError:  # already released
                pass

    # -- the consumer ----------------------------------------------------------------------
    def consumer_runs(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the consumer, marked as code that may take kernel locks (the
        kernel's receive path): a producer waiting meanwhile may hold one of them."""
        self.consumer_entries += 1
        self.consumer_busy = True
        try:
            fn(*args)
        finally:
            self.consumer_busy = False

    def __bool__(self) -> bool:
        return bool(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def take(self) -> tuple[Channel, list[bytes]]:
        """The oldest message (consumer only); IndexError when empty."""
        channel, frames, units = self._items.popleft()
        heavy = self._heavy
        for _ in range(units):
            heavy.pop()
        return channel, frames

    def drained(self) -> None:
        """Called by the consumer after sending: wakes the waiting producers once there is
        room again."""
        if self._waiters and self.weight <= self.resume_weight:
            self.full = False
            self.wake_waiters()

    def close(self) -> None:
        """Nobody will wait any more; waiting producers are released (any thread)."""
        self._closed = True
        self.full = False
        self.wake_waiters()


def _handler_code(handler: Any) -> types.CodeType | None:
    while isinstance(handler, functools.partial):
        handler = handler.func
    handler = getattr(handler, "__func__", handler)
    code = getattr(handler, "__code__", None)
    return code if isinstance(code, types.CodeType) else None


def _in_signal_handler(frame: types.FrameType | None) -> bool:
    """Whether a Python signal handler is among ``frame`` and its callers (main thread only;
    looked up only when a producer would wait)."""
    codes: set[types.CodeType] = set()
    for signum in signal.valid_signals():
        try:
            code = _handler_code(signal.getsignal(signum))
        except (ValueError, OSError):
            continue
        if code is not None:
            codes.add(code)
    while frame is not None and codes:
        if frame.f_code in codes:
            return True
        frame = frame.f_back
    return False
