"""A :class:`Pending`: the result of work handed to a Caller, awaitable from any backend.

It is its own event: a waiter (a blocked thread, an asyncio task, a trio task) registers a wake-up
that the completing thread calls, on the waiter's loop when it has one. A library that does this
for every backend (aiologic) cost every kernel 4 MB and 60 ms of imports at start (it imports
wrapt, importlib.metadata, email and ssl), for the three kinds of waiter the kernel has.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
from collections.abc import Callable, Generator
from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")
log = logging.getLogger("cokernel.caller")


class PendingCancelled(Exception):
    """The work behind a :class:`Pending` was cancelled before it produced a result."""


class Pending(Generic[T]):
    """A thread-safe handle on work that finishes later.

    Await it from any backend (asyncio or trio, on any thread), or block a plain thread on
    :meth:`result`. Completion callbacks run on the thread that completes the work.
    """

    __slots__ = ("_callbacks", "_canceller", "_exception", "_lock", "_result", "_state", "_waiters")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = "pending"  # pending -> done | failed | cancelled
        self._result: T | None = None
        self._exception: BaseException | None = None
        self._callbacks: list[Callable[[Pending[T]], None]] = []
        self._waiters: list[Callable[[], None]] = []  # woken before the callbacks run
        self._canceller: Callable[[], object] | None = None

    def __repr__(self) -> str:
        return f"<Pending {self._state}>"

    def _finish(self, state: str, result: T | None, exc: BaseException | None) -> bool:
        with self._lock:
            if self._state != "pending":
                return False
            self._result, self._exception = result, exc
            self._state = state  # last: a reader that sees it done (no lock) sees the outcome
            callbacks, self._callbacks = self._callbacks, []
            waiters, self._waiters = self._waiters, []
            self._canceller = None
        for wake in waiters:
            wake()
        for callback in callbacks:
            try:
                callback(self)
            except Exception:
                log.exception("Pending callback %r failed", callback)
        return True

    def set_result(self, value: T) -> bool:
        return self._finish("done", value, None)

    def set_exception(self, exc: BaseException) -> bool:
        return self._finish("failed", None, exc)

    def set_canceller(self, canceller: Callable[[], object] | None) -> None:
        """Register how to stop the running work; :meth:`cancel` calls it once."""
        with self._lock:
            if self._state == "pending":
                self._canceller = canceller

    def cancel(self) -> bool:
        """Ask the work to stop. Returns False if it had already finished.

        Work not yet started never starts; running work is cancelled at its next checkpoint
        and this handle then reports :class:`PendingCancelled`.
        """
        with self._lock:
            if self._state != "pending":
                return False
            canceller = self._canceller
        if canceller is not None:
            canceller()
            return True
        return self._finish("cancelled", None, PendingCancelled("cancelled before it started"))

    def mark_cancelled(self) -> bool:
        return self._finish("cancelled", None, PendingCancelled("cancelled"))

    def done(self) -> bool:
        return self._state != "pending"

    def cancelled(self) -> bool:
        return self._state == "cancelled"

    def add_done_callback(self, callback: Callable[[Pending[T]], None]) -> None:
        with self._lock:
            if self._state == "pending":
                self._callbacks.append(callback)
                return
        callback(self)

    def _add_waiter(self, wake: Callable[[], None]) -> bool:
        """Register ``wake`` for completion; False (and not registered) if already done."""
        with self._lock:
            if self._state != "pending":
                return False
            self._waiters.append(wake)
            return True

    def _remove_waiter(self, wake: Callable[[], None]) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._waiters.remove(wake)

    def _outcome(self) -> T:
        if self._exception is not None:
            raise self._exception
        return cast(T, self._result)

    def result(self, timeout: float | None = None) -> T:
        """Block this thread until done; raise the work's exception, or TimeoutError."""
        if self._state != "pending":
            return self._outcome()
        event = threading.Event()
        if self._add_waiter(event.set):
            try:
                if not event.wait(timeout):
                    raise TimeoutError("pending work did not finish in time")
            finally:
                self._remove_waiter(event.set)
        return self._outcome()

    async def wait(self) -> T:
        """Wait on the running loop (asyncio or trio) without blocking it."""
        if self._state == "pending":
            trio = sys.modules.get("trio")
            if trio is not None and trio.lowlevel.in_trio_run():
                await self._wait_trio(trio)
            else:
                await self._wait_asyncio()
        return self._outcome()

    async def _wait_asyncio(self) -> None:
        loop = asyncio.get_running_loop()  # RuntimeError outside asyncio and trio: as it should
        future: asyncio.Future[None] = loop.create_future()

        def settle() -> None:
            if not future.done():
                future.set_result(None)

        def wake() -> None:
            if asyncio._get_running_loop() is loop:
                settle()  # completed inside the loop itself: no wake-up write needed
                return
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
                loop.call_soon_threadsafe(settle)

        if not self._add_waiter(wake):
            return
        try:
            await future
        finally:
            self._remove_waiter(wake)

    async def _wait_trio(self, trio: Any) -> None:
        event = trio.Event()
        token = trio.lowlevel.current_trio_token()

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # outside any trio run
                if trio.lowlevel.current_trio_token() is token:
                    event.set()  # completed inside the run itself
                    return
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(event.set)

        if not self._add_waiter(wake):
            return
        try:
            await event.wait()
        finally:
            self._remove_waiter(wake)

    def __await__(self) -> Generator[Any, None, T]:
        return self.wait().__await__()


def _run_then_settle(pending: Pending[Any], fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    if pending.done():
        return
    try:
        pending.set_result(fn(*args))
    except BaseException as e:
        pending.set_exception(e)


class DoneFlag:
    """``threading.Event``'s ``set``, ``is_set`` and ``wait``, for a flag set once on a hot path
    and rarely waited on: every cell has one (``CellRun.done``), and only an interrupt or a
    shutdown waits on it.

    A ``threading.Event`` builds a ``Condition`` and its lock in ``__init__``: creating and
    setting one took 4.4 us in a loop. Here the event exists only once a thread waits; until
    then ``set`` is a flag under a plain lock (0.1 us to make).
    """

    __slots__ = ("_event", "_lock", "_set")

    def __init__(self) -> None:
        self._set = False
        self._event: threading.Event | None = None
        self._lock = threading.Lock()  # guards the hand-over between set() and a first wait()

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        with self._lock:
            self._set = True
            event = self._event
        if event is not None:
            event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until set, or ``timeout`` seconds; returns whether it is set."""
        if self._set:
            return True
        with self._lock:
            if self._set:
                return True
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        return event.wait(timeout)
