"""The IPython shell of the kernel, and how a running cell is interrupted or timed out.

Cells run through IPython's ``run_cell_async`` on the shell's event loop, so top-level ``await``
uses whichever backend (asyncio or trio) the kernel runs. :meth:`CokernelShell.run_code` wraps
each code object in a :class:`CellRun`, which knows at every instant whether the cell's own code
is executing (*stepping*) or suspended at an ``await``. That is what makes interrupts exact:

- stepping (a busy loop, ``time.sleep``, a blocking ``input()``): KeyboardInterrupt is raised in
  the cell's thread, at the line it is running;
- suspended (``await asyncio.sleep(100)``, awaiting a widget value): the cell's cancel scope is
  cancelled and the cell ends with KeyboardInterrupt, while the loop and every other task live on.
"""

from __future__ import annotations

import bdb
import contextvars
import ctypes
import itertools
import math
import signal
import sys
import threading
import types
import weakref
from collections.abc import Callable, Coroutine
from typing import Any
from warnings import warn

import anyio
import sniffio
from IPython.core import page
from IPython.core.async_helpers import _asyncio_runner, _trio_runner
from IPython.core.compilerop import CachingCompiler
from IPython.core.interactiveshell import InteractiveShell
from traitlets import Any as AnyTrait
from traitlets import Unicode

from cokernel.backends import explain_backend_mismatch
from cokernel.caller import Caller, loop_callback_scheduler, threads_available
from cokernel.cellfiles import blank_lines_before_cell_magic, cell_path
from cokernel.compat import ShellCompat
from cokernel.display import KernelDisplayHook, KernelDisplayPublisher
from cokernel.gui.toolkits import check_gui
from cokernel.request import current_request
from cokernel.subshells import current_namespace


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
        self.done = threading.Event()  # set when the cell has finished running
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
        else:  # on the cell's loop (asyncio: Pyodide's): it can only stop an awaiting cell
            import asyncio

            handle = asyncio.get_running_loop().call_later(self.timeout, self.stop, "timeout")
            self._cancel_timer = handle.cancel

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
                if self.stepping:
                    self._posted = True
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(
                        ctypes.c_ulong(self.thread.ident or 0),
                        ctypes.py_object(self._posted_type()),
                    )
                    posted = True
                else:
                    posted = False
            if posted:
                wake = self.wake
                if wake is not None:
                    wake()
                return
        self.signal_due = False  # not stepping: the stop is the scope's cancellation
        scope, call = self._scope, self._call_in_loop
        if scope is not None and call is not None:
            call(scope.cancel)


class HistoryBatcher:
    """Writes stored history to sqlite at most once per ``delay`` seconds, off the cell path.

    IPython's default writes (and commits, with an fsync) after every cell, and the next cell's
    history store waits on that write's lock: about 0.8 ms of each execute round trip here.
    Batching loses at most ``delay`` seconds of history if the machine itself dies (a clean
    shutdown writes everything; ``history_request`` writes out before reading).
    """

    def __init__(self, history_manager: Any, delay: float = 1.0) -> None:
        self._history = history_manager
        self.delay = delay
        self._due = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # one write-out at a time; none after stop()
        self._thread: threading.Thread | None = None
        enabled = history_manager is not None and getattr(history_manager, "enabled", False)
        if enabled and threads_available():  # else IPython's own per-cell write-out stays
            history_manager.db_cache_size = 1 << 30  # never write from inside the cell path
            self._thread = threading.Thread(target=self._run, name="cokernel-history", daemon=True)
            self._thread.start()

    def touch(self) -> None:
        """A cell was stored: make sure a write-out happens within ``delay`` seconds."""
        self._due.set()

    def stop(self) -> None:
        """Write out what is pending and end the writer thread (before the database closes)."""
        self._stopping.set()
        self._due.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        self._write()

    def _write(self) -> None:
        with self._lock:
            try:
                self._history.writeout_cache()
            except Exception:  # a locked or read-only database must not end the kernel
                import logging

                logging.getLogger("cokernel.history").exception("history write-out failed")

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._due.wait()
            self._stopping.wait(self.delay)
            self._due.clear()
            if self._stopping.is_set():
                return  # stop() writes the rest itself
            self._write()


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


def _current_cell_number() -> int | None:
    cell = current_cell.get()
    return cell.number if cell is not None else None


def _release_numbering() -> None:
    # IPython fires pre_execute right after it has numbered the cell.
    cell = current_cell.get()
    if cell is not None:
        cell.number_taken()


class CellCompiler(CachingCompiler):  # type: ignore[misc]
    """Names each cell's code after a file path derived from its text.

    A stable, file-like name per cell text lets a debugger's breakpoints survive re-runs, and
    keeps IPython's traceback formatter on its fast path (its ``<ipython-input-…>`` names send
    it through a per-call lexer set-up that made every error, and so every interrupt, ~20 ms
    slower). Tracebacks still read "Cell In[n]".
    """

    def get_code_name(self, raw_code: str | None, transformed_code: str, number: int) -> str:
        # Named after the raw text, the way JupyterLab's debugger names the cell (cellfiles).
        return cell_path(transformed_code if raw_code is None else raw_code)

    # CPython (3.11 at least) keeps the depth counter of its C <-> Python AST conversion in
    # per-interpreter state: two threads converting at once (cells compiling on the main shell
    # and on a subshell) corrupt it, and compile() fails with "SystemError: AST constructor
    # recursion depth mismatch" (CPython gh-106905). The interleaving property tests hit it.
    # Conversions are microseconds long, so the kernel's own go one at a time.
    def ast_parse(self, source: str, filename: str = "<unknown>", symbol: str = "exec") -> Any:
        with _AST_CONVERSION:
            return super().ast_parse(source, filename, symbol)

    def __call__(self, source: Any, filename: str, symbol: str, **kwargs: Any) -> Any:
        with _AST_CONVERSION:
            return super().__call__(source, filename, symbol, **kwargs)


_AST_CONVERSION = threading.Lock()


class CokernelShell(ShellCompat, InteractiveShell):  # type: ignore[misc]
    """An InteractiveShell whose output, display and errors travel as Jupyter messages."""

    compiler_class = CellCompiler
    displayhook_class = KernelDisplayHook
    display_pub_class = KernelDisplayPublisher
    publish_msg = AnyTrait(help="callable(msg_type, content, parent) sending on iopub")
    flush_streams = AnyTrait(help="callable() flushing the current request's streams")
    backend = Unicode("asyncio", help="the async library the kernel's loops run")
    gui_host = Unicode(None, allow_none=True, help="the GUI toolkit hosting the loop (tk, qt)")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for part in (self.display_pub, self.displayhook):
            part.publish_msg = self.publish_msg
            part.flush_streams = self.flush_streams
        self.displayhook.cell_number = _current_cell_number
        self.running_cells: set[CellRun] = set()
        self.numbering = threading.Lock()  # see CellRun.take_number
        self.events.register("pre_execute", _release_numbering)
        self.history_batcher = HistoryBatcher(self.history_manager)
        self._init_contexts()
        self._init_loop_runner()
        # A kernel has no terminal: `!cmd` output is captured and printed to the cell.
        self.system = self.system_piped
        self.readline_use = False
        self.autoindent = False

    def init_virtualenv(self) -> None:
        # The kernel runs in the environment it was started in; no warning about venvs.
        pass

    def init_magics(self) -> None:
        super().init_magics()
        # IPython's %gui only logs why it failed: in a kernel nobody would see it.
        self.register_magic_function(self._gui_magic, magic_kind="line", magic_name="gui")

    def _gui_magic(self, line: str = "") -> None:
        """%gui [tk|qt|asyncio]: check that this kernel runs the loop (docs/gui.md)."""
        self.enable_gui(line.strip() or None)

    def enable_gui(self, gui: str | None = None) -> None:
        """``%gui NAME``: a no-op for the host's own toolkit (its loop already runs) and for
        the kernel's own async backend; any other raises :class:`~cokernel.gui.GuiUnavailable`
        saying which kernel to use."""
        check_gui(gui, self.gui_host, self.backend)

    def enable_matplotlib(self, gui: str | None = None) -> Any:
        """``%matplotlib``: as IPython's, but a backend whose toolkit this kernel cannot run is
        refused *before* matplotlib switches to it (IPython checks the loop only afterwards)."""
        from IPython.core import pylabtools

        wanted, backend = pylabtools.find_gui_and_backend(gui, self.pylab_gui_select)
        check_gui(wanted, self.gui_host, self.backend)
        if str(backend).lower() in ("nbagg", "notebook"):
            from cokernel.gui.figures import prepare_nbagg

            prepare_nbagg()
        return super().enable_matplotlib(gui)

    # -- line numbers while the debugger is attached ---------------------------------------
    def keep_cell_line_numbers(self, keep: bool) -> None:
        """Compile cells with their leading blank lines (``keep``), or as IPython does.

        The debugger turns this on while it is attached: a breakpoint's line is a line of the
        cell's file, which holds the cell's whole text (see
        :func:`cokernel.cellfiles.blank_lines_before_cell_magic`).
        """
        from IPython.core.inputtransformer2 import leading_empty_lines

        manager = self.input_transformer_manager
        swap = {leading_empty_lines: blank_lines_before_cell_magic}
        if not keep:
            swap = {new: old for old, new in swap.items()}
        # A new list, swapped in one assignment: a cell compiling on another thread sees
        # either the old or the new one.
        manager.cleanup_transforms = [swap.get(t, t) for t in manager.cleanup_transforms]

    # -- %autoawait with the other async library (docs/compatibility.md) --------------------
    def _init_loop_runner(self) -> None:
        # IPython defaults to its asyncio runner; on a trio kernel trio is the native one, so
        # that %autoawait reports it and `%autoawait asyncio` is a real change.
        if self.backend == "trio":
            self.loop_runner = _trio_runner
        self.observe(self._on_loop_runner_set, names=["loop_runner"])

    def _native_runner(self) -> Any:
        return _trio_runner if self.backend == "trio" else _asyncio_runner

    def _foreign_loop_runner(self) -> Callable[[Any], Any] | None:
        """How a top-level-await cell runs when ``%autoawait`` chose another library than the
        kernel's backend (None: on the kernel's own loop, the normal case).

        asyncio and trio run on a fresh loop on a worker thread while the cell waits (the
        same nested run as ``asyncio.run``/``trio.run`` in a cell); any other runner (curio, a
        user's callable) is called as IPython would."""
        runner = self.loop_runner
        if runner is self._native_runner():
            return None
        if runner is _asyncio_runner:
            import asyncio

            return asyncio.run  # cokernel's: on a worker thread when a loop runs here
        return runner  # type: ignore[no-any-return]

    def _on_loop_runner_set(self, change: Any) -> None:
        runner = change["new"]
        if runner is self._native_runner():
            return
        library = {_asyncio_runner: "asyncio", _trio_runner: "trio"}.get(runner)
        if library is None:
            return
        print(
            f"cokernel: this kernel's loop runs {self.backend}; cells with top-level await now "
            f"run on {library} in a loop of their own on a worker thread, and the kernel's loop "
            f"waits for them as for a blocking cell. For {library} "
            f"as the kernel's loop: `cokernel install --name cokernel-{library} --backend "
            f"{library}`; `%autoawait {self.backend}` switches back."
        )

    # -- the context cells share (docs/subshells.md, "Context") --------------------------------
    def _init_contexts(self) -> None:
        # One shared context per shell, keyed by the shell's loop thread (the main shell's is
        # the thread the shell is made on).
        self.loop_thread = threading.current_thread()
        self._contexts: weakref.WeakKeyDictionary[threading.Thread, ShellContext] = (
            weakref.WeakKeyDictionary()
        )
        self._contexts_lock = threading.Lock()

    def cell_context(self, owner: threading.Thread | None = None) -> ShellContext:
        """The context a cell of the shell whose loop runs on ``owner`` (default: the main
        shell's) runs in: the shell's own when the cell runs on that thread, else (a
        thread-mode cell) a snapshot of it taken now."""
        owner = owner or self.loop_thread
        with self._contexts_lock:
            shared = self._contexts.get(owner)
            if shared is None:
                shared = self._contexts[owner] = ShellContext(owner=owner)
        return shared if threading.current_thread() is owner else shared.snapshot()

    def context_here(self) -> ShellContext | None:
        """The shared context of the shell whose loop runs on this thread, if it has one."""
        return self._contexts.get(threading.current_thread())

    # -- errors and payloads ---------------------------------------------------------------
    def _showtraceback(
        self, etype: type[BaseException], evalue: BaseException, stb: list[str]
    ) -> None:
        self.flush_streams()
        content = {
            "ename": getattr(etype, "__name__", str(etype)),
            "evalue": str(evalue),
            "traceback": stb,
        }
        request = current_request.get()
        if request is not None:
            request.error = content
        self._last_shown = (evalue, content)
        self.publish_msg("error", content, request)

    def _format_exception_for_storage(
        self,
        exception: BaseException,
        filename: str | None = None,
        running_compiled_code: bool = False,
    ) -> dict[str, Any]:
        # IPython formats a cell's error a second time for its history; reuse the first.
        shown = getattr(self, "_last_shown", None)
        if shown is not None and shown[0] is exception:
            return dict(shown[1])
        result: dict[str, Any] = super()._format_exception_for_storage(
            exception, filename, running_compiled_code
        )
        return result

    def init_hooks(self) -> None:
        super().init_hooks()
        # A kernel has no terminal pager: `?obj`, %pdoc and friends send their text to the
        # frontend's pager as a "page" payload of the execute_reply (as ipykernel does).
        self.set_hook("show_in_pager", page.as_hook(self._page_payload), 99)

    def _page_payload(
        self, text: Any, start: int = 0, screen_lines: int = 0, pager_cmd: Any = None
    ) -> None:
        data = text if isinstance(text, dict) else {"text/plain": text}
        self.payload_manager.write_payload({"source": "page", "data": data, "start": max(0, start)})

    def set_next_input(self, text: str, replace: bool = False) -> None:
        self.payload_manager.write_payload(
            {"source": "set_next_input", "text": text, "replace": replace}, single=False
        )

    def ask_exit(self) -> None:
        self.exit_now = True
        self.payload_manager.write_payload({"source": "ask_exit", "keepkernel": False})

    # -- running code ----------------------------------------------------------------------
    async def run_code(
        self, code_obj: types.CodeType, result: Any = None, *, async_: bool = False
    ) -> bool:
        """Run one compiled statement group of a cell; True when it raised.

        The same contract as IPython's, plus interrupt and timeout handling through the
        current :class:`CellRun`.
        """
        __tracebackhide__ = "__ipython_bottom__"  # read by IPython traceback code
        cell = current_cell.get()
        own = current_namespace.get()  # a subshell with a namespace of its own
        global_ns, local_ns = (own, own) if own is not None else (self.user_global_ns, self.user_ns)
        old_excepthook, sys.excepthook = sys.excepthook, self.excepthook
        self.sys_excepthook = old_excepthook
        try:
            try:
                if async_:
                    coro = eval(code_obj, global_ns, local_ns)
                    foreign = self._foreign_loop_runner()
                    if foreign is not None:  # %autoawait with the other async library
                        if cell is None:
                            foreign(coro)
                        else:
                            cell.run_sync(foreign, coro)
                    elif cell is None:
                        await coro
                    else:
                        await cell.run_async(coro)
                elif cell is None:
                    exec(code_obj, global_ns, local_ns)
                else:
                    cell.run_sync(exec, code_obj, global_ns, local_ns)
            finally:
                sys.excepthook = old_excepthook
        except SystemExit as e:
            if result is not None:
                result.error_in_exec = e
            self.showtraceback(exception_only=True)
            warn("To exit: use 'exit', 'quit', or Ctrl-D.", stacklevel=1)
        except bdb.BdbQuit as e:
            if result is not None:
                result.error_in_exec = e
        except self.custom_exceptions as e:
            if result is not None:
                result.error_in_exec = e
            self.CustomTB(*sys.exc_info())
        except BaseException as e:
            if isinstance(e, anyio.get_cancelled_exc_class()):
                if not _loop_is_cancelling():
                    raise  # raised by the cell's own code: IPython reports it as usual
                # The cell's loop is being torn down under it (its subshell was deleted, the
                # kernel is stopping). Re-raised, IPython's run_ast_nodes would catch the
                # backend's cancellation and report it as the cell's own error; the cell was
                # stopped, so it ends as an interrupted cell does.
                e = KeyboardInterrupt(
                    "the cell was stopped: its subshell was deleted or the kernel is stopping"
                )
            if result is not None:
                result.error_in_exec = e
            if isinstance(e, KeyboardInterrupt):
                _drop_kernel_tail(e)
            explain_backend_mismatch(e, self.backend)
            user_tb = _skip_kernel_head(e)
            self.showtraceback((type(e), e, user_tb), tb_offset=0, running_compiled_code=True)
        else:
            return False
        return True

    def interrupt_cells(
        self, *, on_thread: threading.Thread | None = None, reason: str = "interrupt"
    ) -> int:
        """Stop the running cells (those on ``on_thread`` only, if given); returns how many."""
        cells = [c for c in list(self.running_cells) if on_thread is None or c.thread is on_thread]
        for cell in cells:
            cell.stop(reason)
        return len(cells)


_KERNEL_DIR = __file__.rsplit("/", 1)[0]


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
    if sniffio.current_async_library() == "asyncio":
        import asyncio

        task = asyncio.current_task()
        return task is not None and task.cancelling() > 0
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
    _knock_again(cell)
    return True


#: Asked first by :func:`on_sigint`, with the interrupted frame; a guard returning True takes
#: the interrupt over. The debugger has one: a KeyboardInterrupt raised inside debugpy's own
#: code (a thread held at a breakpoint, or its trace function) would break the debugger.
sigint_guards: list[Callable[[types.FrameType | None], bool]] = []


def on_sigint(shell: CokernelShell, frame: types.FrameType | None) -> None:
    """The kernel's SIGINT handler body, run on the main thread between bytecodes.

    Suspended main-thread cells are cancelled; the one that is stepping gets KeyboardInterrupt
    raised at its current line, but never inside the stepping wrapper itself (that would
    surface in the event loop's machinery instead of the cell).
    """
    __tracebackhide__ = True  # hidden from tracebacks
    if any(guard(frame) for guard in sigint_guards):
        return
    main = threading.main_thread()
    stepping: CellRun | None = None
    for cell in list(shell.running_cells):
        if cell.thread is not main:
            continue
        if cell.stop_reason is None:
            cell.stop_reason = "interrupt"
        if cell.stepping and (frame is None or frame.f_code not in _STEPPER_CODES):
            stepping = cell
            continue
        if cell.stepping:
            # The signal landed inside the stepping wrapper, after its last look at
            # stop_reason and before the cell's own code began: raised here, it would surface
            # in the loop's machinery; dropped, a time.sleep(60) would run on. Knock again.
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
