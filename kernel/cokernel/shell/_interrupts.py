"""Interrupts: SIGINT on the main thread, and the frames a cell's traceback leaves out.

Suspended main-thread cells are cancelled; the one stepping gets KeyboardInterrupt at its
current line. A shell's :attr:`~cokernel.shell._shell.CokernelShell.sigint_guards` are asked
first (the debugger keeps SIGINT out of debugpy's own code with one).
"""

from __future__ import annotations

import math
import os
import sys
import threading
import types
from collections.abc import Callable
from typing import Any, Protocol

import anyio
import sniffio

from cokernel.engine import _backends as backends
from cokernel.shell._cells import (
    CellRun,
    ShellContext,
    _knock_again,
    _Stepper,
    current_cell,
)
from cokernel.shell._uninterruptible import inside_uninterruptible


class Interruptible(Protocol):
    """What :func:`on_sigint` needs of a shell (:class:`~cokernel.shell._shell.CokernelShell`)."""

    running_cells: set[CellRun]
    sigint_guards: list[Callable[[types.FrameType | None], bool]]


# The whole package: frames from any of its files are the kernel's, not the cell's.
_KERNEL_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# A signal landing in these frames (the stepping flag is already set, the cell's code has not
# begun) must not raise there: it would surface in the loop's machinery (see on_sigint).
_STEPPER_CODES = frozenset(
    {_Stepper.send.__code__, _Stepper.throw.__code__, ShellContext.run.__code__}
)

_WRAPPER_CODES = frozenset(
    {
        _Stepper.send.__code__,
        _Stepper.throw.__code__,
        CellRun.run_sync.__code__,
        CellRun.run_async.__code__,
        ShellContext.run.__code__,
    }
)


def _skip_kernel_head(exc: BaseException) -> types.TracebackType | None:
    """The traceback of ``exc`` from the cell's first frame on, without run_code and the
    kernel's cell wrappers (they would show as "[... skipping hidden N frame]")."""
    head = exc.__traceback__
    after = head.tb_next if head is not None else None
    while after is not None and after.tb_frame.f_code in _WRAPPER_CODES:
        after = after.tb_next
    return after if after is not None else head


def _loop_is_cancelling() -> bool:
    """Whether the running task is being cancelled from outside (its loop is stopping)."""
    try:
        if anyio.current_effective_deadline() == -math.inf:  # trio, and anyio cancel scopes
            return True
    except Exception:  # not in a task anyio knows
        pass
    try:
        return backends.current().task_is_cancelling()
    except sniffio.AsyncLibraryNotFoundError:
        return False


def _drop_kernel_tail(exc: BaseException) -> None:
    """Cut the kernel's own frames (signal handler, stdin wait) off the end of a traceback.

    An interrupt is raised by the kernel's SIGINT handler; the user should see the line their
    cell was running, not the handler that raised.
    """
    last_user: types.TracebackType | None = None
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not filename.startswith(_KERNEL_DIR) and not filename.startswith(threading.__file__):
            last_user = tb
        tb = tb.tb_next
    if last_user is not None:
        last_user.tb_next = None


def rescue_swallowed_interrupt(unraisable: Any) -> bool:
    """Post again a stop's KeyboardInterrupt that CPython swallowed; True if it was one.

    An interrupt is raised in the cell's thread at its next check between bytecodes, and that
    may be in a finalizer (``__del__``), a weakref or gc callback run on the thread while the
    cell steps. CPython ignores exceptions there ("Exception ignored in ..."), so the stop
    would be lost and the cell run on. Called from the kernel's ``sys.unraisablehook``, on the
    thread that swallowed it: the cell gets the interrupt again at its next check.
    """
    if not isinstance(unraisable.exc_value, KeyboardInterrupt):
        return False
    cell = current_cell.get()
    here = threading.current_thread()
    if cell is None or cell.thread is not here or cell.stop_reason is None or cell.done.is_set():
        return False
    # Stopped again from another thread, a moment later: posted from here, the exception
    # would fire at once, in this hook, and be ignored again.
    cell.signal_due = True
    _knock_after_the_hook(cell)
    return True


def _in_the_hook(thread: threading.Thread) -> bool:
    """Whether ``thread`` is still inside the kernel's unraisable hook (this module's rescue,
    or the hook function in cokernel.kernel that calls it)."""
    frame = sys._current_frames().get(thread.ident or 0)
    while frame is not None:
        code = frame.f_code
        if code is rescue_swallowed_interrupt.__code__ or (
            code.co_name == "unraisablehook" and code.co_filename.startswith(_KERNEL_DIR)
        ):
            return True
        frame = frame.f_back
    return False


def _knock_after_the_hook(cell: CellRun, delay: float = 0.01) -> None:
    """Stop ``cell`` again once its thread has left the unraisable hook.

    A loaded machine may keep the cell's thread inside the hook past the delay; an exception
    posted then would fire in the hook itself, where CPython swallows it too (and nothing would
    rescue it). So the stop waits until the thread is out, looking again every ``delay``.
    """

    def knock() -> None:
        if cell.done.is_set() or not cell.signal_due:
            return
        if _in_the_hook(cell.thread):
            _knock_after_the_hook(cell, delay)
            return
        cell.stop(cell.stop_reason or "interrupt")

    timer = threading.Timer(delay, knock)
    timer.daemon = True
    timer.start()


def on_sigint(shell: Interruptible, frame: types.FrameType | None) -> None:
    """The kernel's SIGINT handler body, run on the main thread between bytecodes.

    Suspended main-thread cells are cancelled; the one that is stepping gets KeyboardInterrupt
    raised at its current line, but never inside the stepping wrapper itself (that would
    surface in the event loop's machinery instead of the cell).
    """
    __tracebackhide__ = True  # hidden from tracebacks
    if any(guard(frame) for guard in list(shell.sigint_guards)):
        return
    main = threading.main_thread()
    stepping: CellRun | None = None
    for cell in list(shell.running_cells):
        if cell.thread is not main:
            continue
        if cell.stop_reason is None:
            cell.stop_reason = "interrupt"
        if cell.stepping and (
            frame is None
            or (frame.f_code not in _STEPPER_CODES and not inside_uninterruptible(frame))
        ):
            stepping = cell
            continue
        if cell.stepping:
            # The signal landed inside the stepping wrapper, after its last look at
            # stop_reason and before the cell's own code began, or in kernel code the cell
            # called (sending its output: see uninterruptible): raised here, it would surface
            # in the loop's machinery or leave a message half sent; dropped, a time.sleep(60)
            # would run on. Knock again.
            cell.signal_due = True
            _knock_again(cell)
            continue
        cell.signal_due = False
        scope, call = cell._scope, cell._call_in_loop
        if scope is not None and call is not None:
            call(scope.cancel)
    if stepping is not None:
        stepping.signal_due = False
        raise stepping.exception()
