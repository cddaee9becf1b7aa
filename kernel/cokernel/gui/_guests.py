"""Start a guest run of the kernel's async backend on a host loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cokernel.gui._host import AsyncMain, GuestHost, Outcome, StartGuest


def guest_for(backend: str) -> StartGuest:
    """How to start a guest run on ``backend`` ("asyncio" or "trio"), for :meth:`GuestHost.run`.

    The returned callable returns once the run is set up; the first step runs on a coming pass
    of the host's loop, and ``done(outcome)`` is called on the host's thread when the run has
    ended. Raises ValueError for an unknown backend.
    """
    if backend == "asyncio":
        return _start_asyncio_guest
    if backend == "trio":
        from cokernel.gui._trio_guest import start_trio_guest

        return start_trio_guest
    raise ValueError(f"no guest mode for backend {backend!r}: use asyncio or trio")


def _start_asyncio_guest(
    async_main: AsyncMain, host: GuestHost, done: Callable[[Outcome[Any]], None]
) -> None:
    from cokernel.gui._asyncio_guest import AsyncioGuest

    AsyncioGuest(host).start(async_main, done)
