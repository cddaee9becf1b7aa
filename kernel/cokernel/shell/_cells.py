"""One running cell (:class:`CellRun`) and the context cells of one shell share
(:class:`ShellContext`).

A :class:`CellRun` knows at every instant whether the cell's own code is executing (*stepping*)
or suspended at an ``await``, and how to stop it either way; :mod:`cokernel.shell._interrupts`
decides which, when SIGINT arrives.
"""

from __future__ import annotations

import contextvars
import ctypes
import itertools
import signal
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import anyio

from cokernel.engine import _backends as backends
from cokernel.engine._caller import Caller, loop_callback_scheduler, threads_available
from cokernel.engine._pending import DoneFlag
from cokernel.engine._subshells import current_namespace
from cokernel.protocol._request import current_request
from cokernel.shell import _uninterruptible as marks


class ExecutionTimeout(KeyboardInterrupt):
    """A cell ran past its execution timeout.

    A KeyboardInterrupt so that ``except Exception`` in user code does not swallow it.
    """


class _Stepper:
    """Awaitable wrapper around a cell's coroutine that marks when the cell's code runs."""

    __slots__ = ("_cell", "_coro")

    def __init__(self, coro: Coroutine[Any, Any, Any], cell: CellRun) -> None:
        self._coro, self._cell = coro, cell

    def __await__(self) -> _Stepper:
        return self

    def __iter__(self) -> _Stepper:
        return self

    def __next__(self) -> Any:
        return self.send(None)

    @marks.shielded_cell_wrapper
    def send(self, value: Any) -> Any:
        __tracebackhide__ = True  # IPython hides frames that define it
        cell = self._cell
        cell.enter_user_code()
        try:
            cell.stepping = True
            if cell.context is None:
                return self._coro.send(value)
            return cell.context.run(self._coro.send, value)
        finally:
            cell.stepping = False  # a plain store: no pending exception can fire before it
            try:
                cell.settle_interrupt()
            finally:
                cell.leave_user_code()

    @marks.shielded_cell_wrapper
    def throw(self, *exc: Any) -> Any:
        __tracebackhide__ = True  # hidden from tracebacks
        cell = self._cell
        cell.enter_user_code()
        try:
            cell.stepping = True
            if cell.context is None:
                return self._coro.throw(*exc)
            return cell.context.run(self._coro.throw, *exc)
        finally:
            cell.stepping = False  # as in send()
            try:
                cell.settle_interrupt()
            finally:
                cell.leave_user_code()

    def close(self) -> None:
        self._coro.close()


_cell_order = itertools.count()


class _Withdrawn(BaseException):
    """Posted to a cell's own thread in place of a pending interrupt, and caught at once."""


def _withdraw_posted_exception() -> None:
    """Withdraw an exception posted to this thread, and leave CPython's eval breaker clear.

    ``PyThreadState_SetAsyncExc(id, NULL)`` drops a pending exception but signals the
    interpreter's eval breaker all the same, and only a thread that finds a posted exception
    clears that signal: it would stay set for good, every thread then handles it at each call
    and loop, and a thread running under a trace function (debugpy's, coverage's) spins for
    ever at a function's entry on CPython 3.11 (after a cell on a subshell was interrupted,
    the debugger's first ``initialize`` hung importing pydevd). Posting a private exception
    instead replaces a pending one; it fires at the loop's first backward jump and is caught
    here, which clears the signal.
    """
    try:
        if ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(threading.get_ident()), ctypes.py_object(_Withdrawn)
        ):
            while True:  # one turn: the jump back checks the eval breaker, which raises
                pass
    except _Withdrawn:
        pass


class CellRun:
    """One execution of one cell: where it runs, whether it is stepping, how to stop it."""

    def __init__(self, timeout: float | None = None) -> None:
        self.thread = threading.current_thread()
        self.request = current_request.get()  # the execute_request it runs for
        self.order = next(_cell_order)  # later cells have higher numbers
        self.timeout = timeout
        self.stepping = False
        self.stop_reason: str | None = None  # "interrupt" | "timeout"
        # Posting an exception to the cell's (non-main) thread and the end of a step exclude
        # each other: see stop() and settle_interrupt().
        self._gate = threading.Lock()
        self._posted = False
        # A SIGINT was sent to the cell's (main) thread for a stop, and the kernel's handler has
        # not raised it yet: the signal can be lost (see stop()), and is then sent again. Also
        # set when a stop's exception was swallowed (rescue_swallowed_interrupt).
        self.signal_due = False
        self._knocks = 0
        self._scope: anyio.CancelScope | None = None
        self._call_in_loop: Callable[..., Any] | None = None
        self._cancel_timer: Callable[[], None] | None = None
        self.done = DoneFlag()  # set when the cell has finished running
        self._numbering: threading.Lock | None = None
        self.number: int | None = None  # the execution count it shows (In[n] / Out[n])
        # Called after an interrupt is posted to the cell's (non-main) thread: a thread blocked
        # in a lock wait only sees the exception once something wakes it (input() sets this).
        self.wake: Callable[[], None] | None = None
        # The Lender of the loop this cell runs on (None in a thread-mode cell's worker): told
        # when the cell's code runs, so that the loop's comm lane is lent while it blocks.
        caller = Caller.current()
        self._lender = caller.lender if caller is not None else None
        # The context the cell's code runs in: its shell's, shared by the shell's cells.
        self.context: ShellContext | None = None
        # The request its output goes to when the cell chose one (set_parent), else None.
        self.parent: Any = None

    def enter_user_code(self) -> None:
        if self._lender is not None:
            self._lender.enter()

    def leave_user_code(self) -> None:
        if self._lender is not None:
            self._lender.leave()

    def take_number(self, numbering: threading.Lock) -> None:
        """Hold the shell's numbering lock until IPython has given this cell its number.

        Cells on subshell threads share one counter: between reading the number a cell's
        execute_input shows and IPython taking it, no other thread may take one. The section
        is synchronous (no await), so the lock is held for microseconds.
        """
        numbering.acquire()
        self._numbering = numbering

    def number_taken(self) -> None:
        numbering, self._numbering = self._numbering, None
        if numbering is not None:
            numbering.release()

    def exception(self) -> KeyboardInterrupt:
        if self.stop_reason == "timeout":
            return ExecutionTimeout(
                f"the cell ran longer than its execution timeout of {self.timeout:g} s"
            )
        return KeyboardInterrupt()

    @marks.cell_wrapper  # an interrupt raised here is the cell's: it raises self.exception() itself
    def run_sync(self, fn: Callable[..., Any], *args: Any) -> Any:
        __tracebackhide__ = True  # hidden from tracebacks
        self.enter_user_code()
        try:
            self.stepping = True
            # An interrupt that came while the cell was not stepping (compiling, or between two
            # statement groups) only set stop_reason: no signal was sent, so honour it here.
            if self.stop_reason is not None:
                self.signal_due = False
                raise self.exception()
            if self.context is None:
                return fn(*args)
            return self.context.run(fn, *args)
        finally:
            self.stepping = False  # as in _Stepper.send()
            try:
                self.settle_interrupt()
            finally:
                self.leave_user_code()

    @marks.cell_wrapper
    async def run_async(self, coro: Coroutine[Any, Any, Any]) -> Any:
        __tracebackhide__ = True  # hidden from tracebacks
        self._call_in_loop = loop_callback_scheduler()
        with anyio.CancelScope() as scope:
            self._scope = scope
            if self.stop_reason is not None:
                scope.cancel()
            result = await _Stepper(coro, self)
        self._scope = None
        if scope.cancelled_caught:
            raise self.exception()
        return result

    def start_timer(self) -> None:
        if not self.timeout:
            return
        if threads_available():
            timer = threading.Timer(self.timeout, self.stop, ("timeout",))
            timer.daemon = True
            timer.start()
            self._cancel_timer = timer.cancel
        else:  # on the cell's loop (Pyodide's): it can only stop an awaiting cell
            self._cancel_timer = backends.current().call_later(self.timeout, self.stop, "timeout")

    def _posted_type(self) -> type[KeyboardInterrupt]:
        """The class posted to the cell's thread: the stop's exception, marking when it fires.

        CPython makes the instance on the cell's thread as the exception reaches its first
        handler, so ``__init__`` tells settle_interrupt() that nothing is pending any more: a
        cell that caught its interrupt and awaits on is not stopped a second time. It shows
        as the plain exception (same name and module) in tracebacks and replies.
        """
        base = type(self.exception())
        cell = self

        class Posted(base):  # type: ignore[valid-type,misc]
            def __init__(self, *args: object) -> None:
                super().__init__(*args)
                cell._posted = False

        Posted.__name__ = Posted.__qualname__ = base.__name__
        Posted.__module__ = base.__module__
        return Posted

    def settle_interrupt(self) -> None:
        """End a step on the cell's thread: withdraw an exception posted but not yet raised.

        Called right after ``stepping`` is cleared. CPython raises a posted exception at the
        thread's next check between bytecodes, so one posted as the cell's code returned may
        still be pending: raised later, it would land in the loop's or IPython's code instead
        of the cell. Under the gate no new exception can be posted (stop() sees ``stepping``
        cleared), and a pending one is withdrawn; the stop is then honoured as for a cell
        suspended at an await (its scope is cancelled), because stop_reason stays set. One
        that fired in the few bytecodes between the return and this call surfaces at the
        cell's await in run_async, or in run_sync: still the cell's own interrupt.
        """
        with self._gate:  # always taken: a stop() may be between its look and its post
            if self._posted:
                self._posted = False
                if threading.current_thread() is self.thread:
                    _withdraw_posted_exception()
                else:
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(
                        ctypes.c_ulong(self.thread.ident or 0), None
                    )
                scope, call = self._scope, self._call_in_loop
                if scope is not None and call is not None:
                    call(scope.cancel)

    def finish(self) -> None:
        if self._cancel_timer is not None:
            self._cancel_timer()
        self.done.set()

    def _in_kernel_code(self) -> bool:
        """Whether the cell's thread is in :func:`uninterruptible` code right now."""
        return marks.inside_uninterruptible(sys._current_frames().get(self.thread.ident or 0))

    def stop(self, reason: str = "interrupt") -> None:
        """Stop the cell from any thread (or a signal handler on the cell's own thread)."""
        if self.stop_reason is None:
            self.stop_reason = reason
        if self.stepping:
            if (
                self.thread is threading.main_thread()
                and threading.current_thread() is not self.thread
            ):
                # Wakes a blocking call (time.sleep, input) in the main thread; the kernel's
                # SIGINT handler (on_sigint) then raises there. The signal can be lost: its C
                # handler may run after the thread's last check for signals and before the
                # thread blocks (in a lock wait, in time.sleep), and nothing then wakes it. A
                # loaded machine hits that window: the thread gives up the GIL right before it
                # blocks, which is when the thread sending the signal gets it. So the wait is
                # woken as well (input() and pdb's prompt look at stop_reason), and the signal
                # is sent again until the handler has raised it (signal_due cleared).
                self.signal_due = True
                signal.pthread_kill(self.thread.ident or 0, signal.SIGINT)
                wake = self.wake
                if wake is not None:
                    wake()
                _knock_again(self, min(0.05 * 2**self._knocks, 1.0))
                self._knocks += 1
                return
            if threading.current_thread() is self.thread:
                self.signal_due = False
                raise self.exception()
            with self._gate:
                # Looked at again under the gate: a step that ended since the look above has
                # cleared stepping, and an exception posted now would fire in kernel code.
                posted = deferred = False
                if self.stepping and self._in_kernel_code():
                    self.signal_due = deferred = True  # the knock below tries again
                elif self.stepping:
                    self.signal_due = False
                    self._posted = posted = True
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(
                        ctypes.c_ulong(self.thread.ident or 0),
                        ctypes.py_object(self._posted_type()),
                    )
            if deferred:  # knocks back off: a host's callback may hold the thread a while
                _knock_again(self, min(0.01 * 2**self._knocks, 0.5))
                self._knocks += 1
                return
            if posted:
                wake = self.wake
                if wake is not None:
                    wake()
                return
        self.signal_due = False  # not stepping: the stop is the scope's cancellation
        scope, call = self._scope, self._call_in_loop
        if scope is not None and call is not None:
            call(scope.cancel)


def _knock_again(cell: CellRun, delay: float = 0.01) -> None:
    def knock() -> None:
        # Stepping again: signal again. Suspended at an await by now (the step the signal
        # hit has ended): cancel, or the interrupt would be lost while the cell waits. Once
        # the handler has raised it (signal_due cleared), nothing more is owed.
        if cell.signal_due and not cell.done.is_set():
            cell.stop(cell.stop_reason or "interrupt")

    timer = threading.Timer(delay, knock)
    timer.daemon = True
    timer.start()


current_cell: contextvars.ContextVar[CellRun | None] = contextvars.ContextVar(
    "cokernel_current_cell", default=None
)

# The kernel's per-request context variables (current_request, current_cell and
# current_namespace) are never carried from one cell to the next: ShellContext.run sets them.


# -- the context cells share (docs/subshells.md, "Context") -------------------------------------
_UNSET = object()


class ShellContext:
    """The :class:`contextvars.Context` that the cells of one shell run in, one after another.

    A cell's code (each step of an async cell, the whole of a sync one) runs inside it, so what
    one cell sets (``decimal.getcontext().prec``, a ``ContextVar``) is there for the next, as in
    a plain Python session. The kernel's own per-request variables (the request, the cell, the
    subshell namespace) are copied in from the caller's context at every entry, so tasks
    interleaving on one loop each see their own.

    A context can be entered by one thread at a time: only its owner (the shell's loop thread,
    the first to run in it) enters it. Another thread running through it gets a snapshot copy
    (its changes stay its own); a cell run from inside a cell just runs in it.
    """

    __slots__ = ("__weakref__", "_context", "_entered", "_owner")

    def __init__(
        self, context: contextvars.Context | None = None, owner: threading.Thread | None = None
    ) -> None:
        self._context = context
        self._owner: int | None = owner.ident if owner is not None else None
        self._entered = False

    def snapshot(self) -> ShellContext:
        """A context of its own that starts as a copy of this one (for a thread-mode cell)."""
        base = self._context
        if base is None:
            return ShellContext()
        copy = base.copy()
        decimal = sys.modules.get("decimal")
        if decimal is not None:
            # decimal keeps a mutable object in its context variable: the copy gets its own, so
            # a thread cell's `getcontext().prec = 3` does not change the shell's under it.
            copy.run(lambda: decimal.setcontext(decimal.getcontext().copy()))
        return ShellContext(copy)

    @marks.shielded_cell_wrapper
    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        __tracebackhide__ = True  # hidden from tracebacks
        here = threading.get_ident()
        if self._owner is None:
            self._owner = here
        context = self._context
        if context is None:
            context = self._context = contextvars.copy_context()
        mine = here == self._owner
        if mine and self._entered:
            return fn(*args)  # a cell run by a cell (run_cell): already inside
        if not mine:
            context = context.copy()
        cell = current_cell.get(None)
        request = current_request.get(None)
        if cell is not None and cell.parent is not None:
            request = cell.parent  # the cell chose another parent (set_parent)
        namespace = current_namespace.get(None)
        if context.get(current_request, _UNSET) is not request:
            context.run(current_request.set, request)
        if context.get(current_cell, _UNSET) is not cell:
            context.run(current_cell.set, cell)
        if context.get(current_namespace, _UNSET) is not namespace:
            context.run(current_namespace.set, namespace)
        if not mine:
            return context.run(fn, *args)
        self._entered = True
        try:
            return context.run(fn, *args)
        finally:
            self._entered = False


def current_cell_number() -> int | None:
    cell = current_cell.get()
    return cell.number if cell is not None else None


def release_numbering() -> None:
    # IPython fires pre_execute right after it has numbered the cell.
    cell = current_cell.get()
    if cell is not None:
        cell.number_taken()
