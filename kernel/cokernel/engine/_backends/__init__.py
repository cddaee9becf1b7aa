"""One adapter per async library, behind one seam: :class:`Backend`.

Everything the engine does differently on asyncio and on trio lives in ``_asyncio.py`` and
``_trio.py``: how a thread wakes the loop, how lane tasks are started (in arrival order), how a
stand-in thread borrows the loop's identity, how a task learns it is being cancelled, how a
kernel's loop is started and named. The rest of the kernel asks :func:`get` or :func:`current`
and never imports asyncio or trio for these.
"""

from __future__ import annotations

import sniffio

from cokernel.engine._backends._seam import Backend as Backend
from cokernel.engine._backends._seam import Borrowed as Borrowed
from cokernel.engine._backends._seam import StartTask as StartTask

__all__ = ["Backend", "Borrowed", "StartTask", "current", "get"]


def get(name: str) -> Backend:
    """The adapter for ``name`` ("asyncio" or "trio"); ValueError for another name."""
    if name == "asyncio":
        from cokernel.engine._backends._asyncio import AsyncioBackend

        return AsyncioBackend()
    if name == "trio":
        from cokernel.engine._backends._trio import TrioBackend

        return TrioBackend()
    raise ValueError(f"no backend adapter for {name!r}: use asyncio or trio")


def current() -> Backend:
    """The adapter for the async library running in this thread."""
    return get(sniffio.current_async_library())
