"""The trio adapter (:class:`~cokernel.engine._backends.Backend`)."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

import sniffio
import trio
from trio._core._run import GLOBAL_RUN_CONTEXT

from cokernel.engine._backends._seam import StartTask

log = logging.getLogger("cokernel.caller")


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
            # No await until the caller has both: loop callbacks may already start work.
            send, receive = trio.open_memory_channel[tuple[Callable[..., Any], tuple[Any, ...]]](
                math.inf
            )
            nursery.start_soon(_lane_launcher, nursery, send, receive, abandon)
            try:
                yield nursery.start_soon, lambda fn, *args: send.send_nowait((fn, args))
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


async def _lane_launcher(
    nursery: trio.Nursery,
    send: trio.MemorySendChannel[Any],
    receive: trio.MemoryReceiveChannel[Any],
    abandon: Callable[[tuple[Any, ...]], None],
) -> None:
    """Start lane tasks one by one, each once the previous one has begun.

    trio runs the tasks that became runnable together in either order (it reverses the batch
    at random), so two lanes started by messages that arrived one after the other could begin
    in the opposite order: a comm_open queued before a cell might run after it. Started through
    here, a lane's task runs its first job up to its first real suspension before the next
    lane's task is even spawned, as on asyncio (FIFO).
    """
    try:
        async for fn, args in receive:
            try:
                await nursery.start(_begun_then_run, fn, args)
            except Exception:  # the lane's task failed before it began: go on
                log.exception("a lane task of %r failed to start", fn)
    finally:
        # The loop is ending: later launches fail (their lane is settled by the Caller), and
        # lanes still waiting here for their task are settled, not lost.
        send.close()
        while True:
            try:
                _, args = receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            abandon(args)
        receive.close()


async def _begun_then_run(
    fn: Callable[..., Coroutine[Any, Any, Any]], args: tuple[Any, ...], *, task_status: Any
) -> None:
    # started() wakes the launcher in a later scheduling batch; until then this task runs on,
    # synchronously, into fn's first suspension.
    task_status.started()
    await fn(*args)
