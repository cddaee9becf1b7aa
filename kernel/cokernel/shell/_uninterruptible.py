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
#: The kernel's cell wrappers: the frames between the loop and a cell's code. A traceback shown
#: to the user starts after them, and a walk down from an interrupted frame stops at them (what
#: is below is the kernel's loop, not code the cell called).
CELL_WRAPPERS: set[types.CodeType] = set()
#: The wrappers a KeyboardInterrupt must not be raised in: their cell's code has not begun or
#: has ended, and raised there the exception would surface in the loop's machinery instead of
#: in the cell (see ``on_sigint``). A subset of :data:`CELL_WRAPPERS`.
SHIELDED_WRAPPERS: set[types.CodeType] = set()


def uninterruptible(fn: _F) -> _F:
    """Mark ``fn`` (and everything it calls) as code an interrupt waits out."""
    _UNINTERRUPTIBLE.add(fn.__code__)
    return fn


def cell_wrapper(fn: _F) -> _F:
    """Mark ``fn`` as one of the kernel's functions that run a cell's code."""
    CELL_WRAPPERS.add(fn.__code__)
    return fn


def shielded_cell_wrapper(fn: _F) -> _F:
    """A :func:`cell_wrapper` that an interrupt must not raise in (:data:`SHIELDED_WRAPPERS`)."""
    SHIELDED_WRAPPERS.add(fn.__code__)
    return cell_wrapper(fn)


def inside_uninterruptible(frame: types.FrameType | None) -> bool:
    """Whether ``frame``, or a frame under it down to the cell's wrapper, is marked."""
    while frame is not None:
        code = frame.f_code
        if code in _UNINTERRUPTIBLE:
            return True
        if code in CELL_WRAPPERS:
            return False
        frame = frame.f_back
    return False
