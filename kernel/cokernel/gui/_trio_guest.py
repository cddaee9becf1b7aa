"""trio as a guest: trio's own guest mode (``trio.lowlevel.start_guest_run``) on a host loop.

trio runs its scheduler in ticks posted to the host's thread and waits for I/O on a thread of
its own, which is the same split :mod:`cokernel.gui._asyncio_guest` builds for asyncio.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cokernel.gui._host import AsyncMain, GuestHost, Outcome


def start_trio_guest(
    async_main: AsyncMain, host: GuestHost, done: Callable[[Outcome[Any]], None]
) -> None:
    """Start ``async_main()`` as a trio guest run of ``host``; ``done(outcome)`` follows its end.

    Raises ImportError when trio is not installed.
    """
    import outcome
    import trio

    def finished(result: outcome.Outcome[Any]) -> None:
        if isinstance(result, outcome.Error):
            done(Outcome(error=result.error))
        else:
            done(Outcome(result.unwrap()))

    async def main() -> Any:
        try:
            return await async_main()
        finally:
            host.main_returned()

    trio.lowlevel.start_guest_run(
        main,
        run_sync_soon_threadsafe=host.call_soon_threadsafe,
        done_callback=finished,
        # The host owns signal.set_wakeup_fd when it has one; trio must not take it over.
        host_uses_signal_set_wakeup_fd=host.uses_signal_wakeup_fd,
    )
