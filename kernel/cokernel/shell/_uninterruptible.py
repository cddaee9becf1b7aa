"""Kernel code a cell calls into, where an interrupt must not land.

A cell's interrupt is raised wherever its thread is, and that may be inside the kernel's own code
the cell called: sending its output or a comm message. An exception there can cut the kernel's
work in half: a message queued whose wake-up never went out stays unsent until something else
wakes the io thread (and the cell's reply waits with it), and a host's callback (the in-process
interface) is left half done. Such code is marked :func:`uninterruptible`; an interrupt that
finds the cell's thread inside it is deferred, and delivered a moment later, once the thread is
back in the cell's code (see ``CellRun.stop`` and ``on_sigint``).

Nothing is paid on the way through marked code: its frames are looked at only when an interrupt
comes.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any, TypeVar

_F = TypeVar("_F", bound=Callable[..., Any])

_UNINTERRUPTIBLE: set[types.CodeType] = set()
# The kernel's cell wrappers: a walk down from an interrupted frame stops there, since what is
# below them is the kernel's loop, not the code the cell called.
_BOUNDARY: set[types.CodeType] = set()


def uninterruptible(fn: _F) -> _F:
    """Mark ``fn`` (and everything it calls) as code an interrupt waits out."""
    _UNINTERRUPTIBLE.add(fn.__code__)
    return fn


def cell_boundary(*fns: Callable[..., Any]) -> None:
    """Register the functions that run a cell's code (its stepping wrappers)."""
    _BOUNDARY.update(fn.__code__ for fn in fns)


def inside_uninterruptible(frame: types.FrameType | None) -> bool:
    """Whether ``frame``, or a frame under it down to the cell's wrapper, is marked."""
    while frame is not None:
        code = frame.f_code
        if code in _UNINTERRUPTIBLE:
            return True
        if code in _BOUNDARY:
            return False
        frame = frame.f_back
    return False
