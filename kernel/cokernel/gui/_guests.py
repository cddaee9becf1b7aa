"""Start a guest run of the kernel's async backend on a host loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cokernel.gui._host import AsyncMain, GuestHost, Outcome


def start_guest(
    backend: str, async_main: AsyncMain, host: GuestHost, done: Callable[[Outcome[Any]], None]
) -> None:
    """Start ``async_main()`` on ``backend`` ("asyncio" or "trio") as a guest of ``host``.

    Returns once the run is set up; the first step runs on a coming pass of the host's loop.
    ``done(outcome)`` is called on the host's thread when the run has ended. Raises ValueError
    for an unknown backend.
    """
    if backend == "asyncio":
        from cokernel.gui._asyncio_guest import AsyncioGuest

        AsyncioGuest(host).start(async_main, done)
    elif backend == "trio":
        from cokernel.gui._trio_guest import start_trio_guest

        start_trio_guest(async_main, host, done)
    else:
        raise ValueError(f"no guest mode for backend {backend!r}: use asyncio or trio")
