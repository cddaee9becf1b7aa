"""The trio adapter (:class:`~cokernel.engine._backends.Backend`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

import sniffio
import trio
from trio._core._run import GLOBAL_RUN_CONTEXT

from cokernel.engine._backends._seam import StartTask


class TrioBorrowed:
    """A stand-in runs in the owner run's context (trio's run context and sniffio marker)."""

    def __init__(self) -> None:
        self._runner: Any = None
        self._task: Any = None

    def capture_loop(self) -> None:
        self._runner = getattr(GLOBAL_RUN_CONTEXT, "runner", None)

    def capture_task(self) -> None:
        if self._runner is not None:
            self._task = getattr(GLOBAL_RUN_CONTEXT, "task", None)

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        if self._runner is None:
            yield
            return
        GLOBAL_RUN_CONTEXT.runner = self._runner
        GLOBAL_RUN_CONTEXT.task = self._task
        sniffio.thread_local.name = "trio"
        try:
            yield
        finally:
            sniffio.thread_local.name = None
            for name in ("runner", "task"):
                with contextlib.suppress(AttributeError):
                    delattr(GLOBAL_RUN_CONTEXT, name)


class TrioBackend:
    name = "trio"

    def scheduler(self) -> Callable[..., Any]:
        return trio.lowlevel.current_trio_token().run_sync_soon

    def make_loop_thread_aware(self) -> Callable[[], None] | None:
        return None  # run_sync_soon is thread-safe already

    @contextlib.asynccontextmanager
    async def task_starters(
        self, abandon: Callable[[tuple[Any, ...]], None]
    ) -> AsyncIterator[tuple[StartTask, StartTask]]:
        async with trio.open_nursery() as nursery:
            lanes = _InTurn(nursery, abandon)
            try:
                yield nursery.start_soon, lanes.start
            finally:
                nursery.cancel_scope.cancel()

    def borrowed(self) -> TrioBorrowed:
        return TrioBorrowed()

    def task_is_cancelling(self) -> bool:
        return False  # trio says so through the cancel scope's deadline (anyio sees it)

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Callable[[], None]:
        scope = trio.CancelScope()

        async def later() -> None:
            with scope:
                await trio.sleep(delay)
                fn(*args)

        trio.lowlevel.spawn_system_task(later)
        return scope.cancel

    def describe(self) -> str:
        return "trio"

    def run_options(self, use_uvloop: bool) -> dict[str, Any]:
        return {}


class _InTurn:
    """Starts lane tasks at once and lets each begin only after the one started before it.

    trio runs the tasks that became runnable together in either order (it reverses the batch
    at random), so two lanes started by messages that arrived one after the other could begin
    in the opposite order: a comm_open queued before a cell might run after it. Each lane task
    takes a ticket as it is started; one that runs before its predecessor has begun parks until
    that one has, and a task runs synchronously from its beginning up to its first real
    suspension, so a lane's first job gets that far before the next lane's task begins, as on
    asyncio (FIFO). A task whose predecessor has begun (the usual case: one lane started at a
    time) begins at once, in the scheduling batch after the one that started it.
    """

    def __init__(self, nursery: trio.Nursery, abandon: Callable[[tuple[Any, ...]], None]) -> None:
        self._nursery = nursery
        self._abandon = abandon
        self._issued = 0  # the last ticket handed out
        self._begun = 0  # the last ticket whose task has begun (they begin in ticket order)
        self._parked: dict[int, trio.Event] = {}  # ticket -> set when its predecessor begins

    def start(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        self._nursery.start_soon(self._run, self._issued + 1, fn, args)
        self._issued += 1  # only once started: a closed nursery raises and takes no ticket

    async def _run(
        self, ticket: int, fn: Callable[..., Coroutine[Any, Any, Any]], args: tuple[Any, ...]
    ) -> None:
        if self._begun != ticket - 1:
            turn = self._parked[ticket] = trio.Event()
            try:
                await turn.wait()
            except BaseException:
                # Cancelled before its turn came: only the nursery's cancellation (the loop is
                # ending) reaches a parked task, and it reaches the tasks parked after it too.
                self._parked.pop(ticket, None)
                self._abandon(args)
                raise
        self._begun = ticket
        successor = self._parked.pop(ticket + 1, None)
        if successor is not None:
            successor.set()
        await fn(*args)
