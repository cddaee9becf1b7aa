"""A :class:`Pending`: the result of work handed to a Caller, awaitable from any backend."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Generator
from typing import Any, Generic, TypeVar, cast

import aiologic

T = TypeVar("T")
log = logging.getLogger("cokernel.caller")


class PendingCancelled(Exception):
    """The work behind a :class:`Pending` was cancelled before it produced a result."""


class Pending(Generic[T]):
    """A thread-safe handle on work that finishes later.

    Await it from any backend (asyncio or trio, on any thread), or block a plain thread on
    :meth:`result`. Completion callbacks run on the thread that completes the work.
    """

    __slots__ = ("_callbacks", "_canceller", "_event", "_exception", "_lock", "_result", "_state")

    def __init__(self) -> None:
        self._event = aiologic.Event()
        self._lock = threading.Lock()
        self._state = "pending"  # pending -> done | failed | cancelled
        self._result: T | None = None
        self._exception: BaseException | None = None
        self._callbacks: list[Callable[[Pending[T]], None]] = []
        self._canceller: Callable[[], None] | None = None

    def __repr__(self) -> str:
        return f"<Pending {self._state}>"

    def _finish(self, state: str, result: T | None, exc: BaseException | None) -> bool:
        with self._lock:
            if self._state != "pending":
                return False
            self._state, self._result, self._exception = state, result, exc
            callbacks, self._callbacks = self._callbacks, []
            self._canceller = None
        self._event.set()
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

    def set_canceller(self, canceller: Callable[[], None] | None) -> None:
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

    def result(self, timeout: float | None = None) -> T:
        """Block this thread until done; raise the work's exception, or TimeoutError."""
        if not self._event.wait(timeout):
            raise TimeoutError("pending work did not finish in time")
        if self._exception is not None:
            raise self._exception
        return cast(T, self._result)

    async def wait(self) -> T:
        await self._event
        if self._exception is not None:
            raise self._exception
        return cast(T, self._result)

    def __await__(self) -> Generator[Any, None, T]:
        return self.wait().__await__()


def _run_then_settle(pending: Pending[Any], fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    if pending.done():
        return
    try:
        pending.set_result(fn(*args))
    except BaseException as e:
        pending.set_exception(e)
