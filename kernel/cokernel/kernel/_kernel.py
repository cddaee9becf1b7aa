"""The Kernel: receives messages from an interface, schedules them, and answers every one.

The kernel never imports an interface. An interface hands it a :class:`~cokernel.protocol._messages.Session`
(for building messages) and a ``send(channel, msg, identities)`` callable, then feeds received
messages to :meth:`Kernel.receive` from its own thread. The kernel does not import its handlers
either: it is given a :class:`~cokernel.kernel._host.HandlerTable` (msg_type -> function, run mode,
lane; :data:`cokernel.kernel._handlers.HANDLERS`) and serves each handler's answer as the one
reply to its request.
"""

from __future__ import annotations

import atexit
import builtins
import functools
import getpass
import logging
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from IPython.core.completer import ProvisionalCompleterWarning
from IPython.core.profiledir import ProfileDir
from traitlets.config import Config

from cokernel.debugger._debugger import Debugger
from cokernel.debugger._host import DebugHost
from cokernel.engine import _backends as backends
from cokernel.engine import _nested_run as nested_run
from cokernel.engine._caller import Caller, Pending, threads_available
from cokernel.engine._subshells import SubshellRegistry
from cokernel.kernel._compat import KernelCompat
from cokernel.kernel._host import HandlerTable, KernelHost
from cokernel.kernel._routing import Routing
from cokernel.kernel._subshell_magic import subshell_magic
from cokernel.options import KernelOptions
from cokernel.protocol._backlog import ShellBacklog
from cokernel.protocol._messages import Channel, Message, Session, reply_type
from cokernel.protocol._outbox import Outbox
from cokernel.protocol._recorder import MessageRecorder, record_path
from cokernel.protocol._request import Request, propagate_context_to_threads
from cokernel.shell import _pdbsupport as pdbsupport
from cokernel.shell import _profile as profile
from cokernel.shell._comms import KernelCommManager, KernelComms, current_comms
from cokernel.shell._comms import install as install_comms
from cokernel.shell._comms import uninstall as uninstall_comms
from cokernel.shell._fdcapture import FdCapture
from cokernel.shell._interrupts import install_sigint, rescue_swallowed_interrupt
from cokernel.shell._magics import KernelMagics
from cokernel.shell._shell import CokernelShell
from cokernel.shell._stdin import StdinBridge
from cokernel.shell._streams import OutStream, StreamRouter, wait_for_room

log = logging.getLogger("cokernel")
T = TypeVar("T")

Send = Callable[[Channel, Message, "list[bytes] | None"], None]

# The iopub messages that are a request's output, which a silent execute does not broadcast.
_OUTPUT_TYPES = frozenset(
    {"stream", "display_data", "update_display_data", "execute_result", "clear_output", "error"}
)


class Kernel(Routing, KernelCompat):
    """One kernel: a shell on the main thread's loop, a control loop on its own thread.

    Also offers the ipykernel attributes libraries use (``get_parent``, ``iopub_socket``...):
    see :mod:`cokernel.shell._compat`.
    """

    def __init__(
        self,
        options: KernelOptions,
        session: Session,
        send: Send,
        *,
        handlers: HandlerTable,
        connection_info: dict[str, Any] | None = None,
        outbox: Outbox | None = None,
    ) -> None:
        self.options = options
        self.outbox = outbox
        self.wait_for_room = functools.partial(wait_for_room, outbox)
        self.handlers = handlers  # msg_type -> handler, run mode, lane (cokernel.kernel._handlers)
        self.session = session
        self._send = send
        self.connection_info = connection_info or {}
        self.connection_file: str | None = None
        self._profile_dir: ProfileDir | None = None
        self._ipython_config: Config | None = None
        # Without threads (Pyodide) control shares the shell's loop, and thread-mode handlers
        # run as tasks there: see docs/jupyterlite.md.
        self.threads = threads_available()
        self.shell_caller = Caller("cokernel-shell", backend=options.backend)
        self.control_caller = self.shell_caller
        if self.threads:
            self.control_caller = Caller("cokernel-control", backend=options.backend)
        self.shell: CokernelShell | None = None
        self.streams: StreamRouter | None = None
        self.fd_capture: FdCapture | None = None
        self.stdin = StdinBridge(self._send_input_request)
        self.comm_manager = KernelCommManager(self._report_handler_error, self._comm_home)
        self.subshells = SubshellRegistry(
            options.backend, own_namespace_by_default=options.subshell_namespace == "own"
        )
        self.last_execute: Request | None = None
        #: Shell requests read but not started; the ZMQ interface pauses shell at its bound.
        self.backlog = ShellBacklog()
        self.shutdown_requested = threading.Event()
        self.restart_requested = False
        self._abort_before: dict[tuple[Channel, str | None], float] = {}
        self.started = threading.Event()
        self.backend_detail: str = options.backend
        self.debugger = Debugger(self)  # debugpy itself is imported on the first initialize
        self._warm_pending = False
        self._last_served = time.monotonic()
        self._comms: KernelComms | None = None
        self.recorder: MessageRecorder | None = None
        path = record_path(options.record)
        if path is not None:
            try:
                self.recorder = MessageRecorder(path)
            except OSError as e:
                log.error("cannot record messages to %s: %s", path, e)

    # -- outgoing ---------------------------------------------------------------------------
    def publish(
        self,
        msg_type: str,
        content: dict[str, Any],
        parent: Request | None,
        metadata: dict[str, Any] | None = None,
        buffers: list[bytes] | None = None,
    ) -> None:
        """Send a message on iopub whose parent is ``parent``'s request.

        Output of a silent execute (its prints, displays, results and errors, also those of
        tasks and threads it started) is dropped here; its comm messages still go out.
        """
        if parent is not None and msg_type in _OUTPUT_TYPES and parent.silent:
            return
        msg = self.session.msg(
            msg_type, content, parent.msg if parent else None, metadata=metadata, buffers=buffers
        )
        self._send(Channel.iopub, msg, [f"kernel.{self.session.session_id}.{msg_type}".encode()])

    def _publish_comm(
        self,
        msg_type: str,
        content: dict[str, Any],
        parent: Request | None,
        metadata: dict[str, Any] | None,
        buffers: list[bytes] | None,
    ) -> None:
        if self.streams is not None:
            self.streams.flush(parent)
        self.publish(msg_type, content, parent, metadata, buffers)

    def reply(
        self, request: Request, content: dict[str, Any], metadata: dict[str, Any] | None = None
    ) -> None:
        msg = self.session.msg(
            reply_type(request.msg_type), content, request.msg, metadata=metadata
        )
        self._send(request.channel, msg, request.identities)

    def _status(self, state: str, request: Request) -> None:
        self.publish("status", {"execution_state": state}, request)

    def _send_input_request(
        self, request: Request, prompt: str, password: bool, register: Callable[[str], None]
    ) -> None:
        if self.streams is not None:
            self.streams.flush(request)
        msg = self.session.msg(
            "input_request", {"prompt": prompt, "password": password}, request.msg
        )
        register(str(msg["header"]["msg_id"]))
        self._send(Channel.stdin, msg, request.identities)

    def run_in_worker(self, fn: Callable[..., T], *args: Any) -> Pending[T]:
        """Run blocking ``fn`` in one of the control loop's worker threads."""
        return self.control_caller.to_thread(fn, *args)

    def _fallback_parent(self) -> Request | None:
        return self.last_execute

    def _fd_output(self, name: str, text: str) -> None:
        """Text written to fd 1 or 2 (cokernel.shell._fdcapture): its writer is unknown, so it goes to
        the latest cell still running (on any shell), else where stray output goes."""
        if self.streams is None:
            return
        parent: Request | None = None
        if self.shell is not None:
            running = [
                c for c in list(self.shell.running_cells) if c.request and not c.request.silent
            ]
            if running:
                parent = max(running, key=lambda c: c.order).request
        self.streams.write_to(parent or self._fallback_parent(), name, text)

    def drain_fd_output(self) -> None:
        """Forward everything written to fds 1 and 2 so far (before a cell's reply)."""
        if self.fd_capture is not None:
            self.fd_capture.drain()

    def _report_handler_error(self) -> None:
        """Show the exception being handled in the current request's output (comm callbacks)."""
        if self.shell is not None:
            self.shell.showtraceback()
        else:
            log.exception("handler failed")

    # -- stop-on-error aborts ---------------------------------------------------------------
    def abort_queued(self, request: Request) -> None:
        """Abort the execute requests of ``request``'s lane that arrived before now."""
        self._abort_before[(request.channel, request.subshell_id)] = time.monotonic()

    def is_aborted(self, request: Request) -> bool:
        before = self._abort_before.get((request.channel, request.subshell_id))
        return before is not None and request.received < before

    # -- lifecycle --------------------------------------------------------------------------
    def _make_shell(self) -> CokernelShell:
        settings: dict[str, Any] = {}
        if self.options.profile is not None:  # IPython's config files (cokernel.shell._profile)
            self._profile_dir = profile.profile_dir(self.options.profile)
            self._ipython_config = profile.load_config(self._profile_dir)
            settings = {"config": self._ipython_config, "profile_dir": self._profile_dir}
        settings.update(
            publish_msg=self.publish,
            flush_streams=lambda: self.streams.flush() if self.streams else None,
            wait_for_room=self.wait_for_room,
            backend=self.options.backend,
            gui_host=self.options.host,
        )
        # The first kernel of the process makes IPython's singleton (get_ipython() outside any
        # cell finds it); a second kernel running at the same time gets a shell of its own.
        shell: CokernelShell = (
            CokernelShell(**settings)
            if CokernelShell.initialized()
            else CokernelShell.instance(**settings)
        )
        shell.kernel = self
        KernelMagics(shell).register()
        shell.register_magic_function(
            self._subshell_magic, magic_kind="line", magic_name="subshell"
        )
        return shell

    def _subshell_magic(self, line: str = "") -> None:
        """%subshell: where this cell runs, and every shell of the kernel with its running cells."""
        subshell_magic(self.shell, self.shell_caller, self.subshells)

    async def run(self, *, handle_sigint: bool = True) -> None:
        """Serve until shutdown, on the current thread's running anyio loop.

        With ``handle_sigint`` (and on the main thread) the kernel installs its SIGINT handler,
        for signal-mode interrupts; an embedding host that owns its signals passes False.
        Everything global the kernel changed (sys.stdout/err, input, the SIGINT handler, the
        IPython singleton) is restored when it returns, so a process can start another kernel.
        """
        propagate_context_to_threads()
        saved_input, saved_getpass = builtins.input, getpass.getpass
        streams = self._install_streams()
        self.shell = self._make_shell()
        self.stdin.install()
        pdbsupport.install()
        nested_run.install()
        # IPython makes ProvisionalCompleterWarning an error outside provisionalcompleter(),
        # whose catch_warnings() is not thread-safe: a complete_request in one worker thread and
        # an is_complete_request (check_complete also uses catch_warnings) in another restore
        # each other's filter lists, and the completion fails. A filter installed up front is in
        # every list they save and restore.
        warnings.filterwarnings("ignore", category=ProvisionalCompleterWarning)
        self._comms = install_comms(self.comm_manager, self._publish_comm, self.wait_for_room)
        # Code this loop runs outside any request (start-up files, tasks they start) knows its
        # kernel's comms too; each request sets them again (cokernel.kernel._serving).
        comms_token = current_comms.set(self._comms)
        # Extensions, startup files, exec_lines: on the fully set-up kernel, before any request.
        profile.apply(self.shell, self._profile_dir, self._ipython_config)
        self.backend_detail = _describe_backend(self.options.backend, self.options.host)
        restore_sigint = self._install_sigint(handle_sigint)
        restore_unraisablehook = _install_unraisablehook()
        if self.threads:
            self.control_caller.start_thread()
        else:
            self.shell_caller.call_soon(streams.flush_periodically)
        # perf: jedi and the first traceback are warmed on a thread once a first cell has run
        # (see cokernel.shell._warmup).
        self._warm_pending = self.threads
        if self.fd_capture is not None:
            # Started after the rest of the set-up, right before the try: whatever fails
            # before it prints its traceback to the real fd 2, not into a pipe nobody reads.
            self.fd_capture.start()
        self.started.set()
        try:
            await self.shell_caller.serve()
        finally:
            self._tear_down(restore_sigint)
            restore_unraisablehook()
            builtins.input, getpass.getpass = saved_input, saved_getpass
            current_comms.reset(comms_token)

    def _install_streams(self) -> StreamRouter:
        """sys.stdout and sys.stderr become the kernel's (and fds 1 and 2, if it owns them)."""
        streams = self.streams = StreamRouter(
            self.publish, self._fallback_parent, threaded=self.threads
        )
        self._saved_streams = (sys.stdout, sys.stderr)
        if self.options.capture_fds and self.threads:
            self.fd_capture = FdCapture(self._fd_output, self.wait_for_room)  # started in run()
        fds = self.fd_capture
        for name, fd in (("stdout", 1), ("stderr", 2)):
            stream = OutStream(
                name,
                streams,
                room=self.outbox,
                fileno=functools.partial(fds.fileno, fd) if fds is not None else None,
                before_write=fds.drain_if_due if fds is not None else None,
                before_flush=fds.drain if fds is not None else None,
            )
            setattr(sys, name, stream)
        return streams

    def _install_sigint(self, wanted: bool) -> Callable[[], None] | None:
        """Install the kernel's SIGINT handling if ``wanted`` and on the main thread; returns
        the undo (None when it installed nothing)."""
        shell, main = self.shell, threading.main_thread()
        if not wanted or shell is None or threading.current_thread() is not main:
            return None
        return install_sigint(shell)

    def _tear_down(self, restore_sigint: Callable[[], None] | None) -> None:
        self.subshells.delete_all()
        self.control_caller.stop()
        if self.fd_capture is not None:
            self.fd_capture.stop()
        if self.streams is not None:
            self.streams.close()
        sys.stdout, sys.stderr = self._saved_streams
        pdbsupport.uninstall()
        if self._comms is not None:
            uninstall_comms(self._comms)
        if restore_sigint is not None:
            restore_sigint()
        if self.shell is not None:
            # End the history session and drop temp files now, not at interpreter exit:
            # an embedding process may outlive this kernel (and its IPYTHONDIR).
            self.shell.history_batcher.stop()
            atexit.unregister(self.shell.atexit_operations)
            self.shell.atexit_operations()
            # The singleton goes (if it is this kernel's), so a later kernel in this process
            # gets a fresh shell.
            if CokernelShell.initialized() and CokernelShell.instance() is self.shell:
                CokernelShell.clear_instance()
        if self.recorder is not None:
            self.recorder.close()

    def request_shutdown(self, restart: bool) -> None:
        """Stop serving: interrupt running cells, end both loops (thread-safe)."""
        self.restart_requested = restart
        self.shutdown_requested.set()
        # Detaching debugpy first releases threads held at breakpoints, which can then stop.
        self.debugger.close()
        if self.shell is not None:
            # Interrupted cells answer before their loops are torn down (see CellRun.done).
            here = threading.current_thread()
            cells = [c for c in list(self.shell.running_cells) if c.thread is not here]
            self.shell.interrupt_cells(reason="interrupt")
            for cell in cells:
                cell.done.wait(1.0)
        self.shell_caller.stop()
        self.control_caller.stop()

    def interrupt(self) -> int:
        """Interrupt every running cell; returns how many were running."""
        if self.shell is None:
            return 0
        if self.debugger.interrupt(self.shell):  # some are held at breakpoints: resumed first
            return len(self.shell.running_cells)
        return self.shell.interrupt_cells()


def _install_unraisablehook() -> Callable[[], None]:
    """Post again to its cell a stop's interrupt that landed in a finalizer (and was swallowed
    there: see rescue_swallowed_interrupt); returns the undo."""
    saved = sys.unraisablehook

    def unraisablehook(unraisable: Any) -> None:
        if not rescue_swallowed_interrupt(unraisable):
            saved(unraisable)

    sys.unraisablehook = unraisablehook

    def restore() -> None:
        if sys.unraisablehook is unraisablehook:
            sys.unraisablehook = saved

    return restore


def _describe_backend(backend: str, host: str | None = None) -> str:
    if host is not None:
        from cokernel.gui import describe_hosted

        return describe_hosted(backend, host)
    return backends.current().describe()


def run_until_shutdown(kernel: Kernel) -> None:
    """Run ``kernel`` on the current (main) thread with its configured backend.

    With a GUI host (``--host``) the toolkit's loop runs on this thread and the backend is its
    guest (see :mod:`cokernel.gui`); uvloop cannot be a guest, so it is not used then.
    """
    if kernel.options.host is not None:
        from cokernel.gui import run_hosted

        run_hosted(
            kernel.run,
            backend=kernel.options.backend,
            host=kernel.options.host,
            qt_binding=kernel.options.qt_binding,
        )
        log.debug("kernel loop ended (pid %s)", os.getpid())
        return
    backend_options = backends.get(kernel.options.backend).run_options(kernel.options.use_uvloop)
    anyio.run(kernel.run, backend=kernel.options.backend, backend_options=backend_options)
    log.debug("kernel loop ended (pid %s)", os.getpid())


def _conforms(kernel: Kernel) -> tuple[KernelHost, DebugHost]:
    """Checked by mypy: a Kernel is what its handlers and its debugger are given."""
    return kernel, kernel
