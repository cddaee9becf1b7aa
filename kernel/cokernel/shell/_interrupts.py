"""Interrupts: SIGINT on the main thread, and the frames a cell's traceback leaves out.

Suspended main-thread cells are cancelled; the one stepping gets KeyboardInterrupt at its
current line. A shell's :attr:`~cokernel.shell._shell.CokernelShell.sigint_guards` are asked
first (the debugger keeps SIGINT out of debugpy's own code with one).
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import threading
import types
from collections.abc import Callable
from typing import Any, Protocol

import anyio
import sniffio

from cokernel.engine import _backends as backends
from cokernel.shell._cells import CellRun, _knock_again, current_cell
from cokernel.shell._uninterruptible import (
    CELL_WRAPPERS,
    SHIELDED_WRAPPERS,
    inside_uninterruptible,
)


class Interruptible(Protocol):
    """What :func:`on_sigint` needs of a shell (:class:`~cokernel.shell._shell.CokernelShell`)."""

    running_cells: set[CellRun]
    sigint_guards: list[Callable[[types.FrameType | None], bool]]


# The whole package: frames from any of its files are the kernel's, not the cell's.
_KERNEL_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _skip_kernel_head(exc: BaseException) -> types.TracebackType | None:
    """The traceback of ``exc`` from the cell's first frame on, without run_code and the
    kernel's cell wrappers (they would show as "[... skipping hidden N frame]").

    None when the wrappers raised it themselves: a stop honoured before the cell's code
    began (an interrupt between two statements) has no line of the cell to show.
    """
    head = exc.__traceback__
    after = head.tb_next if head is not None else None
    if after is None:
        return head
    while after is not None and after.tb_frame.f_code in CELL_WRAPPERS:
        after = after.tb_next
    return after


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


def _trio_protects(frame: types.FrameType | None) -> bool:
    """Whether ``frame`` is inside trio's own KeyboardInterrupt-protected machinery (a cancel
    scope's entry or exit, the scheduler), which trio's SIGINT handler never raises in.

    A KeyboardInterrupt raised there corrupts the run ("Cancel scope stack corrupted", a
    RuntimeError for the cell). Only the innermost frames that belong to trio are looked at,
    by trio's own marks (a private table: trio has no public per-frame check).
    """
    trio = sys.modules.get("trio")
    if trio is None:
        return False
    try:
        from trio._core._ki import _CODE_KI_PROTECTION_STATUS_WMAP as marks
    except ImportError:  # a trio without it: no protection, as before
        return False
    root = os.path.dirname(trio.__file__ or "") or "\0"
    while frame is not None and frame.f_code.co_filename.startswith(root):
        try:
            return bool(marks[frame.f_code])
        except KeyError:
            frame = frame.f_back
    return False


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
            or (
                frame.f_code not in SHIELDED_WRAPPERS
                and not inside_uninterruptible(frame)
                and not _trio_protects(frame)
            )
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


# The watch of this process's kernel, while one runs (see _forget_watch_in_child).
_watching: list[_SigintWatch] = []


def _forget_watch_in_child() -> None:
    """In a forked child: stop writing signals into the parent's watch (the pipe is shared).

    Its SIGINTs (a terminal's Ctrl-C reaches the whole process group) would count as the
    parent kernel's own, and stop a parent's cell that caught its interrupt and carried on.
    """
    if _watching:
        _watching.clear()
        with contextlib.suppress(ValueError, OSError):
            signal.set_wakeup_fd(-1)


os.register_at_fork(after_in_child=_forget_watch_in_child)


class _SigintWatch:
    """Notices a SIGINT whose Python handler did not run, and stops the main thread's cells
    the way a message interrupt does (which signals again until the cell is stopped).

    CPython runs a signal's Python handler between two bytecodes of the main thread. A SIGINT
    whose C handler runs after the thread's last check and before it blocks in C (the GIL
    hand-over before ``time.sleep`` or a lock wait, a window a loaded machine widens) wakes
    nothing: the handler waits until the blocking call returns (``time.sleep(100)``: 100 s). The
    C handler also writes the signal's number to the wakeup fd (:func:`signal.set_wakeup_fd`).
    This watch takes that fd over, passes every byte on to its previous owner (trio's loop), and
    treats a SIGINT the kernel's handler has not seen within :attr:`GRACE` seconds as lost: the
    main thread's cells that were running when it arrived, and still are, are stopped. Only
    while the kernel's handler is the one installed: code that installs its own (to catch
    Ctrl-C and carry on) gets the SIGINT to itself.
    """

    GRACE = 0.05

    def __init__(self, shell: Interruptible, installed: Callable[[], bool]) -> None:
        self._shell = shell
        self._installed = installed  # whether the kernel's handler is SIGINT's now
        self._lock = threading.Lock()
        # SIGINTs the wakeup fd reported, and runs of the kernel's handler: a handler run for
        # two signals at once (CPython coalesces them) counts one, so a second interrupt follows.
        self._seen = self._runs = 0
        self._closing = threading.Event()
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self._previous = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self._thread = threading.Thread(target=self._watch, name="cokernel-sigint", daemon=True)
        self._thread.start()
        _watching.append(self)

    def handled(self) -> None:
        """Called by the kernel's handler each time it runs."""
        with self._lock:
            self._runs += 1

    def close(self) -> None:
        """Give the wakeup fd back (main thread) and end the watch."""
        with contextlib.suppress(ValueError):
            _watching.remove(self)
        signal.set_wakeup_fd(self._previous)
        self._closing.set()
        with contextlib.suppress(OSError):
            os.write(self._write, b"\0")
        self._thread.join(5)
        os.close(self._read)
        os.close(self._write)

    def _watch(self) -> None:
        while not self._closing.is_set():
            try:
                data = os.read(self._read, 256)
            except OSError:
                return
            if self._previous != -1:
                with contextlib.suppress(OSError):
                    os.write(self._previous, data)
            arrived = data.count(signal.SIGINT)
            if not arrived or not self._installed():
                continue
            main = threading.main_thread()
            cells = [c for c in list(self._shell.running_cells) if c.thread is main]
            with self._lock:
                self._seen += arrived
            if self._closing.wait(self.GRACE):
                return
            with self._lock:
                lost = self._runs < self._seen
                self._runs = max(self._runs, self._seen)
            if lost and self._installed():
                for cell in cells:  # a later cell never gets an earlier signal
                    if not cell.done.is_set():
                        cell.stop("interrupt")


def install_sigint(shell: Interruptible) -> Callable[[], None]:
    """On the main thread: install the kernel's SIGINT handler and a :class:`_SigintWatch`;
    returns the undo."""

    def sigint(signum: int, frame: types.FrameType | None) -> None:
        __tracebackhide__ = True  # hidden from tracebacks
        watch.handled()
        on_sigint(shell, frame)

    watch = _SigintWatch(shell, lambda: signal.getsignal(signal.SIGINT) is sigint)
    saved = signal.signal(signal.SIGINT, sigint)

    def restore() -> None:
        signal.signal(signal.SIGINT, saved)
        watch.close()

    return restore
