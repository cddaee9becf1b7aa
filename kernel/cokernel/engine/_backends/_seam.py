"""The seam itself: what an adapter offers (see :mod:`cokernel.engine._backends`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

#: Starts ``fn(*args)`` as a task of the running loop.
StartTask = Callable[..., None]
Coro = Callable[..., Coroutine[Any, Any, Any]]


class Borrowed(Protocol):
    """How a thread other than the loop's borrows the owner loop's identity for a lent job
    (cokernel.engine._lending)."""

    def capture_loop(self) -> None:
        """On the loop's thread, once the loop runs."""

    def capture_task(self) -> None:
        """On the loop's thread, as it enters user code: the task a stand-in stands in for."""

    def entered(self) -> contextlib.AbstractContextManager[None]:
        """On the borrowing thread, around the lent job."""


class Backend(Protocol):
    """The asyncio- or trio-specific part of the engine."""

    name: str

    def scheduler(self) -> Callable[..., Any]:
        """The running loop's thread- and signal-safe "run this callback soon" function."""

    def make_loop_thread_aware(self) -> Callable[[], None] | None:
        """Make the running loop accept wake-ups from any thread; returns the undo (or None)."""

    def task_starters(
        self, abandon: Callable[[tuple[Any, ...]], None]
    ) -> contextlib.AbstractAsyncContextManager[tuple[StartTask, StartTask]]:
        """On the running loop: (start a task, start a lane's task). Lane tasks begin in the
        order they were started. On exit every task is cancelled; a task that never began
        (a lane's, or a single job's) is handed (its ``args``) to ``abandon``, so nothing
        queued is lost silently."""

    def borrowed(self) -> Borrowed:
        """A fresh :class:`Borrowed` for one loop."""

    def task_is_cancelling(self) -> bool:
        """Whether the running task is being cancelled from outside (its loop is stopping)."""

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Callable[[], None]:
        """On the running loop: call ``fn(*args)`` after ``delay`` s; returns the cancel."""

    def describe(self) -> str:
        """How the banner names the running loop ("asyncio (uvloop)", "trio")."""

    def run_options(self, use_uvloop: bool) -> dict[str, Any]:
        """``backend_options`` for ``anyio.run`` of a kernel's main loop."""
