"""Run an async main function under the GUI host a kernel's options name."""

from __future__ import annotations

from typing import Any

from cokernel.gui._guests import guest_for
from cokernel.gui._host import AsyncMain, GuestHost


def make_host(host: str, *, qt_binding: str = "PySide6") -> GuestHost:
    """The host named ``host`` ("tk" or "qt"), not yet running; ValueError for another name."""
    if host == "tk":
        from cokernel.gui._tk import TkHost

        return TkHost()
    if host == "qt":
        from cokernel.gui._qt import QtHost

        return QtHost(qt_binding)
    raise ValueError(f"unknown GUI host {host!r}: use tk or qt")


def run_hosted(
    async_main: AsyncMain, *, backend: str, host: str, qt_binding: str = "PySide6"
) -> Any:
    """Run ``async_main()`` on ``backend`` as the guest of GUI host ``host``; return its result.

    Blocks the calling (main) thread while the toolkit's loop runs, and returns when
    ``async_main`` has finished and the loop has been closed; raises what ``async_main``
    raised, or :class:`~cokernel.gui.HostUnavailable` when the toolkit cannot start here.
    """
    start_guest = guest_for(backend)  # the runner picks the guest; the host only runs it
    return make_host(host, qt_binding=qt_binding).run(async_main, start_guest)


def describe_hosted(backend: str, host: str) -> str:
    """How the banner names a hosted backend: which loop runs, and as whose guest."""
    if backend == "asyncio":
        return (
            f"asyncio (selector loop as a guest of the {host} event loop; uvloop cannot be a guest)"
        )
    return f"{backend} (a guest of the {host} event loop)"
