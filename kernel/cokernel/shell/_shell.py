"""The IPython shell of the kernel.

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
import __future__

import ast
import bdb
import codeop
import contextlib
import sys
import threading
import types
import weakref
from collections.abc import Callable, Iterator
from typing import Any
from warnings import warn

import anyio
from IPython.core import page
from IPython.core.async_helpers import _asyncio_runner, _trio_runner
from IPython.core.compilerop import CachingCompiler
from IPython.core.interactiveshell import InteractiveShell
from traitlets import Any as AnyTrait
from traitlets import Unicode

from cokernel.engine._nested_run import explain_backend_mismatch
from cokernel.engine._subshells import current_namespace
from cokernel.gui._toolkits import check_gui
from cokernel.protocol._request import current_request
from cokernel.shell import _tbhighlight as tbhighlight
from cokernel.shell import _warmup as warmup
from cokernel.shell._ast_guard import AST_CONVERSION, serialise_ast_parse
from cokernel.shell._cellfiles import blank_lines_before_cell_magic, cell_path
from cokernel.shell._cells import (
    CellRun,
    ShellContext,
    current_cell,
    current_cell_number,
    release_numbering,
)
from cokernel.shell._compat import ShellCompat
from cokernel.shell._display import KernelDisplayHook, KernelDisplayPublisher
from cokernel.shell._history import HistoryBatcher
from cokernel.shell._interrupts import _drop_kernel_tail, _loop_is_cancelling, _skip_kernel_head
from cokernel.shell._transform import QuickTransformerManager


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

    # The kernel's own AST conversions go one at a time (see cokernel.shell._ast_guard).
    #
    # IPython turns top-level await on around each statement's compile with `extra_flags`,
    # which sets a bit of the shared `self.flags` and clears it afterwards, unless the bit was
    # already set on entry. With shells on two threads, one turns the bit on, the other enters
    # (bit already set: it will not clear it), the first leaves and clears it, and the second
    # compiles `await` without it: "SyntaxError: 'await' outside function" (found by the
    # property tests). Here the extra flags belong to the thread that asked for them.
    @contextlib.contextmanager
    def extra_flags(self, flags: int) -> Iterator[None]:
        outer = getattr(_thread_flags, "extra", 0)
        _thread_flags.extra = outer | flags
        try:
            yield
        finally:
            _thread_flags.extra = outer

    def ast_parse(self, source: str, filename: str = "<unknown>", symbol: str = "exec") -> Any:
        flags: int = self.flags | getattr(_thread_flags, "extra", 0) | ast.PyCF_ONLY_AST
        with AST_CONVERSION:
            return compile(source, filename, symbol, flags, True)

    def __call__(self, source: Any, filename: str, symbol: str, **kwargs: Any) -> Any:
        flags: int = self.flags | getattr(_thread_flags, "extra", 0)
        if kwargs.get("incomplete_input", True) is False:
            flags &= ~(_DONT_IMPLY_DEDENT | _ALLOW_INCOMPLETE_INPUT)
        with AST_CONVERSION:
            code = compile(source, filename, symbol, flags, True)
        for future in _FUTURE_FLAGS:  # a `from __future__` stays on for later cells, as in codeop
            if code.co_flags & future:
                self.flags |= future
        return code


_thread_flags = threading.local()
_DONT_IMPLY_DEDENT: int = getattr(codeop, "PyCF_DONT_IMPLY_DEDENT", 0x200)
_ALLOW_INCOMPLETE_INPUT: int = getattr(codeop, "PyCF_ALLOW_INCOMPLETE_INPUT", 0)
_FUTURE_FLAGS = tuple(
    getattr(__future__, name).compiler_flag for name in __future__.all_feature_names
)


class CokernelShell(ShellCompat, InteractiveShell):  # type: ignore[misc]
    """An InteractiveShell whose output, display and errors travel as Jupyter messages."""

    compiler_class = CellCompiler
    displayhook_class = KernelDisplayHook
    display_pub_class = KernelDisplayPublisher
    publish_msg = AnyTrait(help="callable(msg_type, content, parent) sending on iopub")
    flush_streams = AnyTrait(help="callable() flushing the current request's streams")
    wait_for_room = AnyTrait(None, help="callable() a display calls first (outbox backpressure)")
    backend = Unicode("asyncio", help="the async library the kernel's loops run")
    gui_host = Unicode(None, allow_none=True, help="the GUI toolkit hosting the loop (tk, qt)")

    def __init__(self, **kwargs: Any) -> None:
        serialise_ast_parse()  # completions and tracebacks parse on threads of their own
        warmup.settle_lazy_packages()  # before requests import them on threads of their own
        kwargs.setdefault("input_transformer_manager", QuickTransformerManager())
        super().__init__(**kwargs)
        for part in (self.display_pub, self.displayhook):
            part.publish_msg = self.publish_msg
            part.flush_streams = self.flush_streams
        self.display_pub.wait_for_room = self.wait_for_room
        self.displayhook.cell_number = current_cell_number
        self.running_cells: set[CellRun] = set()
        self.numbering = threading.Lock()  # see CellRun.take_number
        # Asked first by on_sigint, with the interrupted frame; a guard returning True takes
        # the interrupt over. The debugger adds one while it is connected: a KeyboardInterrupt
        # raised inside debugpy's own code (a thread held at a breakpoint, or its trace
        # function) would break the debugger.
        self.sigint_guards: list[Callable[[types.FrameType | None], bool]] = []
        self.events.register("pre_execute", release_numbering)
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
            from cokernel.gui._figures import prepare_nbagg

            prepare_nbagg()
        return super().enable_matplotlib(gui)

    # -- line numbers while the debugger is attached ---------------------------------------
    def keep_cell_line_numbers(self, keep: bool) -> None:
        """Compile cells with their leading blank lines (``keep``), or as IPython does.

        The debugger turns this on while it is attached: a breakpoint's line is a line of the
        cell's file, which holds the cell's whole text (see
        :func:`cokernel.shell._cellfiles.blank_lines_before_cell_magic`).
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
    def showtraceback(self, *args: Any, **kwargs: Any) -> None:
        tbhighlight.install()  # should a cell fail before the warm-up has installed it
        super().showtraceback(*args, **kwargs)

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
            if isinstance(e, anyio.get_cancelled_exc_class()) and not _loop_is_cancelling():
                raise  # raised by the cell's own code: IPython reports it as usual
            self._show_cell_error(e, result)
        else:
            return False
        return True

    def _show_cell_error(self, e: BaseException, result: Any) -> None:
        """Record and show what a statement of the cell raised (outside IPython's own cases)."""
        if isinstance(e, anyio.get_cancelled_exc_class()):
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

    def interrupt_cells(
        self, *, on_thread: threading.Thread | None = None, reason: str = "interrupt"
    ) -> int:
        """Stop the running cells (those on ``on_thread`` only, if given); returns how many."""
        cells = [c for c in list(self.running_cells) if on_thread is None or c.thread is on_thread]
        for cell in cells:
            cell.stop(reason)
        return len(cells)
