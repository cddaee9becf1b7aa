"""The asyncio adapter (:class:`~cokernel.engine._backends.Backend`)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

from cokernel.engine._backends._seam import StartTask


class AsyncioBorrowed:
    """A stand-in sees the owner loop as its running loop."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None

    def capture_loop(self) -> None:
        self._loop = asyncio.get_running_loop()

    def capture_task(self) -> None:
        pass  # asyncio needs only the loop

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        if self._loop is None:
            yield
            return
        asyncio._set_running_loop(self._loop)
        try:
            yield
        finally:
            asyncio._set_running_loop(None)


class AsyncioBackend:
    name = "asyncio"

    def scheduler(self) -> Callable[..., Any]:
        return asyncio.get_running_loop().call_soon_threadsafe

    def make_loop_thread_aware(self) -> Callable[[], None] | None:
        return make_call_soon_thread_aware(asyncio.get_running_loop())

    @contextlib.asynccontextmanager
    async def task_starters(
        self, abandon: Callable[[tuple[Any, ...]], None]
    ) -> AsyncIterator[tuple[StartTask, StartTask]]:
        # asyncio starts tasks in the order they were created (FIFO): lanes need nothing more.
        # But a task cancelled before its first step never runs its coroutine at all (not even
        # its `finally`): one started while the loop is being torn down (a request that reached
        # a subshell being deleted) would take its job to the grave. So each task notes that it
        # began, and one that ends without having begun is handed to `abandon`.
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[Any]] = set()

        def start_task(fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
            began = False

            async def run() -> None:
                nonlocal began
                began = True
                await fn(*args)

            def ended(task: asyncio.Task[Any]) -> None:
                tasks.discard(task)
                if not began:
                    abandon(args)

            task = loop.create_task(run())
            tasks.add(task)
            task.add_done_callback(ended)

        try:
            yield start_task, start_task
        finally:
            for task in list(tasks):
                task.cancel()
            if tasks:
                await asyncio.wait(list(tasks), timeout=5)

    def borrowed(self) -> AsyncioBorrowed:
        return AsyncioBorrowed()

    def task_is_cancelling(self) -> bool:
        task = asyncio.current_task()
        return task is not None and task.cancelling() > 0

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Callable[[], None]:
        return asyncio.get_running_loop().call_later(delay, fn, *args).cancel

    def describe(self) -> str:
        loop = asyncio.get_running_loop()
        if type(loop).__module__.startswith("uvloop"):
            return "asyncio (uvloop)"
        return "asyncio"

    def run_options(self, use_uvloop: bool) -> dict[str, Any]:
        if not use_uvloop:
            return {}
        try:
            import uvloop  # noqa: F401
        except ImportError:
            return {}
        return {"use_uvloop": True}


def make_call_soon_thread_aware(loop: Any) -> Callable[[], None]:
    """Make ``loop.call_soon`` safe from other threads; returns the undo.

    asyncio's ``call_soon`` is for the loop's own thread: from another one it neither wakes the
    loop nor is safe on uvloop. Futures, Events, Queues and new Tasks all schedule their
    callbacks through it, so a callback completed elsewhere (a comm handler on a stand-in or a
    subshell, a user thread) would never wake an idle loop. From other threads the call is
    passed to ``call_soon_threadsafe``; on the loop's thread nothing changes.
    """
    owner = threading.get_ident()
    call_soon = loop.call_soon
    threadsafe = loop.call_soon_threadsafe

    def thread_aware_call_soon(callback: Any, *args: Any, context: Any = None) -> Any:
        if threading.get_ident() == owner:
            return call_soon(callback, *args, context=context)
        return threadsafe(callback, *args, context=context)

    loop.call_soon = thread_aware_call_soon

    def undo() -> None:
        with contextlib.suppress(AttributeError):
            del loop.call_soon

    return undo
