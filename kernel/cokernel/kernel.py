"""The Kernel: receives messages from an interface, schedules them, and answers every one.

The kernel never imports an interface. An interface hands it a :class:`~cokernel.protocol.Session`
(for building messages) and a ``send(channel, msg, identities)`` callable, then feeds received
messages to :meth:`Kernel.receive` from its own thread. Handlers are the methods named after
their ``msg_type`` in :mod:`cokernel.handlers`; :mod:`cokernel.dispatch` says where each runs.
"""

from __future__ import annotations

import atexit
import builtins
import functools
import getpass
import inspect
import logging
import os
import signal
import sys
import threading
import time
import traceback
import types
import warnings
from collections.abc import Callable
from typing import Any

import anyio
from IPython.core.completer import ProvisionalCompleterWarning
from IPython.core.profiledir import ProfileDir
from traitlets.config import Config

from cokernel import backends, handlers, pdbsupport, profile, warmup
from cokernel.backlog import ShellBacklog
from cokernel.caller import Caller, Pending, threads_available
from cokernel.comms import KernelCommManager
from cokernel.comms import install as install_comms
from cokernel.compat import KernelCompat
from cokernel.debugger import Debugger
from cokernel.dispatch import DirectiveError, RunMode, cell_directives, route
from cokernel.droplog import drop_log
from cokernel.fdcapture import FdCapture
from cokernel.magics import KernelMagics
from cokernel.options import KernelOptions
from cokernel.protocol import Channel, Message, Session, reply_type
from cokernel.recorder import MessageRecorder, record_path
from cokernel.request import Request, current_request, propagate_context_to_threads
from cokernel.shell import CokernelShell, on_sigint, rescue_swallowed_interrupt
from cokernel.stdin import StdinBridge
from cokernel.streams import OutStream, StreamRouter
from cokernel.subshells import SubshellNotFound, SubshellRegistry

log = logging.getLogger("cokernel")

Send = Callable[[Channel, Message, "list[bytes] | None"], None]

# The iopub messages that are a request's output, which a silent execute does not broadcast.
_OUTPUT_TYPES = frozenset(
    {"stream", "display_data", "update_display_data", "execute_result", "clear_output", "error"}
)


class Kernel(KernelCompat):
    """One kernel: a shell on the main thread's loop, a control loop on its own thread.

    Also offers the ipykernel attributes libraries use (``get_parent``, ``iopub_socket``...):
    see :mod:`cokernel.compat`.
    """

    def __init__(
        self,
        options: KernelOptions,
        session: Session,
        send: Send,
        *,
        connection_info: dict[str, Any] | None = None,
    ) -> None:
        self.options = options
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

    def _fallback_parent(self) -> Request | None:
        return self.last_execute

    def _fd_output(self, name: str, text: str) -> None:
        """Text written to fd 1 or 2 (cokernel.fdcapture): its writer is unknown, so it goes to
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

    # -- incoming ---------------------------------------------------------------------------
    def receive(
        self, channel: Channel, identities: list[bytes], msg: Message, size: int = 0
    ) -> None:
        """Accept one verified message from an interface thread; never raises.

        A shell request (``size``: its wire bytes) counts in :attr:`backlog` until a handler
        starts on it or it is settled unstarted (see :mod:`cokernel.backlog`).
        """
        if self.recorder is not None:
            self.recorder.record(channel, msg)
        request = Request(channel, identities, msg)
        queued = False
        if channel is Channel.shell:
            self.backlog.hold_for(request, size)
        try:
            queued = self._route(request)
        except Exception:
            log.exception("failed to schedule %s on %s", msg["header"].get("msg_type"), channel)
        finally:
            if not queued:
                self.backlog.release_for(request)

    def _route(self, request: Request) -> bool:
        """Schedule ``request``; False if it was answered or dropped here (not queued)."""
        msg_type, channel = request.msg_type, request.channel
        if channel is not Channel.stdin and not request.subshell_id_valid:
            self._reject_subshell_id(request)
            return False
        if channel is Channel.stdin:
            if msg_type == "input_reply":
                if not self.stdin.receive_reply(request.msg, request.identities):
                    drop_log.warning(
                        "input_reply nobody waited for (parent %s)",
                        request.msg["parent_header"].get("msg_id"),
                    )
            else:
                drop_log.warning("unexpected %s on stdin dropped", msg_type)
            return False
        found = route(channel, msg_type)
        handler = getattr(handlers, msg_type, None) if found else None
        if found is None or handler is None:
            self._unknown(request)
            return False
        mode, lane = found
        if msg_type == "execute_request":
            mode = self._execute_mode(request, mode)
        if mode is RunMode.thread and not self.threads:
            mode = RunMode.task
        caller = self.control_caller if channel is Channel.control else self.shell_caller
        # A comm message goes to its comm's owner, whatever it was addressed to: JupyterLab
        # sends a comm's close on the comm's subshell and deletes that subshell at once, and
        # the deletion may arrive first; the close must still reach the comm.
        if channel is Channel.shell and request.subshell_id is not None and lane != "comm":
            try:
                caller = self.subshells.get(request.subshell_id).caller
            except SubshellNotFound as e:
                if msg_type.endswith("_request"):
                    self._error_reply(request, "SubshellNotFound", str(e))
                else:  # comm_msg & co. are never answered: a reply would be a stray message
                    drop_log.warning("%s for unknown subshell dropped: %s", msg_type, e)
                    self._status("busy", request)
                    self._status("idle", request)
                return False
        lane_key = (channel, lane, request.subshell_id)
        if mode is RunMode.direct:
            pending = caller.call_direct(self._serve_sync, handler, request)
        elif mode is RunMode.thread:
            pending = caller.to_thread(self._serve_sync, handler, request)
        elif mode is RunMode.task:
            pending = caller.call_soon(self._serve_async, handler, request)
        elif lane == "comm":
            # A comm's messages run where the comm lives (its owner shell's loop), whichever
            # subshell the frontend sent them on (JupyterLab sends them on subshells); lent to
            # a stand-in while that loop's thread is stuck in user code (cokernel.lending).
            caller, owner = self._comm_route(request, caller)
            pending = caller.queue_lendable(
                (channel, lane, owner), self._serve_sync, handler, request
            )
        else:
            pending = caller.queue_call(lane_key, self._serve_async, handler, request)
        pending.add_done_callback(lambda p: self._answer_unserved(request, p))
        return True

    def _reject_subshell_id(self, request: Request) -> None:
        """A header whose ``subshell_id`` is neither a string nor null names no shell at all:
        a request is answered with an error, anything else is dropped (never run elsewhere)."""
        value = request.header.get("subshell_id")
        problem = f"subshell_id must be a string or null, not {type(value).__name__}"
        if request.msg_type.endswith("_request"):
            self._error_reply(request, "InvalidSubshellId", problem)
        else:
            drop_log.warning("%s dropped: %s", request.msg_type, problem)

    def _comm_route(self, request: Request, addressed: Caller) -> tuple[Caller, str | None]:
        """The Caller and subshell id (None: main) of the shell that owns ``request``'s comm."""
        if request.channel is not Channel.shell:
            return addressed, request.subshell_id
        owner = self.comm_manager.owner_of(request.msg)
        if owner is None:
            return self.shell_caller, None
        try:
            return self.subshells.get(owner).caller, owner
        except SubshellNotFound:  # its shell was deleted: the comm now lives on the main shell
            return self.shell_caller, None

    def _comm_home(self) -> str | None:
        """The shell (None: main) that owns a comm or comm target made by the running code:
        the shell a cell runs on, or for code run by a comm message, that comm's owner."""
        request = current_request.get()
        if request is None or request.channel is not Channel.shell:
            return None
        if request.msg_type.startswith("comm_"):
            return self.comm_manager.owner_of(request.msg, route=False)
        return request.subshell_id

    def _answer_unserved(self, request: Request, pending: Pending[Any]) -> None:
        """A request whose job was cancelled before it started (its subshell was deleted, the
        kernel is stopping) still gets its one reply: nothing queued is silently lost."""
        self.backlog.release_for(request)
        if request.served or not pending.cancelled() or not request.msg_type.endswith("_request"):
            return
        self._error_reply(
            request,
            "RequestCancelled",
            f"{request.msg_type} was cancelled before it ran (its subshell was deleted or the kernel is stopping)",
        )

    def _error_reply(self, request: Request, ename: str, evalue: str) -> None:
        content: dict[str, Any] = {
            "status": "error",
            "ename": ename,
            "evalue": evalue,
            "traceback": [],
        }
        if request.msg_type == "execute_request" and self.shell is not None:
            # An execute_reply always carries the counter; a request that never ran takes no
            # number of its own, so it reports the last one used.
            content["execution_count"] = self.shell.execution_count - 1
        self._status("busy", request)
        self.reply(request, content)
        self._status("idle", request)

    def _execute_mode(self, request: Request, default: RunMode) -> RunMode:
        code = request.content.get("code")
        try:
            directives = cell_directives(
                code if isinstance(code, str) else "", request.msg["metadata"]
            )
        except DirectiveError:
            return default  # the handler reports the bad directive as the cell's error
        mode = directives.get("run_mode", default)
        return RunMode(mode)

    def _unknown(self, request: Request) -> None:
        msg_type = request.msg_type
        drop_log.warning("no handler for %s on %s", msg_type, request.channel)
        if msg_type.endswith("_request"):
            self._error_reply(
                request,
                "UnknownMessageType",
                f"cokernel does not handle {msg_type!r} on the {request.channel} channel",
            )

    # busy -> outputs -> reply -> idle, for every request, whatever the run mode.
    def _serve_sync(self, handler: Callable[[Kernel, Request], Any], request: Request) -> None:
        request.served = True
        self.backlog.release_for(request)
        token = current_request.set(request)
        self._status("busy", request)
        try:
            result = handler(self, request)
            if inspect.iscoroutine(result):  # an async handler run in thread mode: its own loop
                anyio.run(_await, result, backend=self.options.backend)
        except Exception as e:
            self._handler_failed(request, e)
        finally:
            if self.streams is not None:
                self.streams.flush(request)
            if self._warm_pending and request.msg_type == "execute_request":
                self._warm_pending = False
                warmup.start()
            self._status("idle", request)
            current_request.reset(token)

    async def _serve_async(
        self, handler: Callable[[Kernel, Request], Any], request: Request
    ) -> None:
        request.served = True
        self.backlog.release_for(request)
        token = current_request.set(request)
        self._status("busy", request)
        try:
            result = handler(self, request)
            if inspect.isawaitable(result):
                await result
        except Exception as e:
            self._handler_failed(request, e)
        finally:
            if self.streams is not None:
                self.streams.flush(request)
            if self._warm_pending and request.msg_type == "execute_request":
                self._warm_pending = False
                warmup.start()
            self._status("idle", request)
            current_request.reset(token)

    def _handler_failed(self, request: Request, exc: Exception) -> None:
        log.error("%s handler failed", request.msg_type, exc_info=exc)
        if request.msg_type.endswith("_request"):
            self.reply(
                request,
                {
                    "status": "error",
                    "ename": type(exc).__name__,
                    "evalue": str(exc),
                    "traceback": traceback.format_exception(exc),
                },
            )

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
        if self.options.profile is not None:  # IPython's config files (cokernel.profile)
            self._profile_dir = profile.profile_dir(self.options.profile)
            self._ipython_config = profile.load_config(self._profile_dir)
            settings = {"config": self._ipython_config, "profile_dir": self._profile_dir}
        shell: CokernelShell = CokernelShell.instance(
            publish_msg=self.publish,
            flush_streams=lambda: self.streams.flush() if self.streams else None,
            backend=self.options.backend,
            gui_host=self.options.host,
            **settings,
        )
        shell.kernel = self
        KernelMagics(shell).register()
        shell.register_magic_function(
            self._subshell_magic, magic_kind="line", magic_name="subshell"
        )
        return shell

    def _subshell_magic(self, line: str = "") -> None:
        """%subshell: where this cell runs, and every shell of the kernel with its running cells."""
        request = current_request.get()
        here = request.subshell_id if request is not None else None
        running: dict[str, int] = {}
        for cell in list(self.shell.running_cells) if self.shell is not None else []:
            running[cell.thread.name] = running.get(cell.thread.name, 0) + 1
        main = (
            threading.main_thread().name
            if self.shell_caller.thread is None
            else self.shell_caller.thread.name
        )
        rows = [("main", main, running.get(main, 0), "shared")]
        for subshell_id in self.subshells.ids():
            try:
                sub = self.subshells.get(subshell_id)
            except SubshellNotFound:
                continue
            thread = sub.thread.name if sub.thread is not None else "?"
            rows.append(
                (
                    subshell_id,
                    thread,
                    running.get(thread, 0),
                    "own" if sub.namespace is not None else "shared",
                )
            )
        print(
            f"this cell runs on: {'subshell ' + here if here else 'the main shell'} (thread {threading.current_thread().name})"
        )
        print(f"{'shell':34} {'thread':28} {'running':>7}  namespace")
        for name, thread, count, namespace in rows:
            print(f"{name:34} {thread:28} {count:>7}  {namespace}")

    async def run(self, *, handle_sigint: bool = True) -> None:
        """Serve until shutdown, on the current thread's running anyio loop.

        With ``handle_sigint`` (and on the main thread) the kernel installs its SIGINT handler,
        for signal-mode interrupts; an embedding host that owns its signals passes False.
        Everything global the kernel changed (sys.stdout/err, input, the SIGINT handler, the
        IPython singleton) is restored when it returns, so a process can start another kernel.
        """
        propagate_context_to_threads()
        saved_input, saved_getpass = builtins.input, getpass.getpass
        saved_sigint = signal.getsignal(signal.SIGINT)
        saved_unraisablehook = sys.unraisablehook

        def unraisablehook(unraisable: Any) -> None:
            # A stop's interrupt that landed in a finalizer is posted again to its cell.
            if not rescue_swallowed_interrupt(unraisable):
                saved_unraisablehook(unraisable)

        sys.unraisablehook = unraisablehook
        self.streams = StreamRouter(self.publish, self._fallback_parent, threaded=self.threads)
        self._saved_streams = (sys.stdout, sys.stderr)
        if self.options.capture_fds and self.threads:
            self.fd_capture = FdCapture(self._fd_output)  # started last: see below
        fds = self.fd_capture
        for name, fd in (("stdout", 1), ("stderr", 2)):
            stream = OutStream(
                name,
                self.streams,
                fileno=functools.partial(fds.fileno, fd) if fds is not None else None,
                before_write=fds.drain_if_due if fds is not None else None,
                before_flush=fds.drain if fds is not None else None,
            )
            setattr(sys, name, stream)
        self.shell = self._make_shell()
        self.stdin.install()
        pdbsupport.install()
        backends.install()
        # IPython makes ProvisionalCompleterWarning an error outside provisionalcompleter(),
        # whose catch_warnings() is not thread-safe: a complete_request in one worker thread and
        # an is_complete_request (check_complete also uses catch_warnings) in another restore
        # each other's filter lists, and the completion fails. A filter installed up front is in
        # every list they save and restore.
        warnings.filterwarnings("ignore", category=ProvisionalCompleterWarning)
        install_comms(self.comm_manager, self._publish_comm)
        # Extensions, startup files, exec_lines: on the fully set-up kernel, before any request.
        profile.apply(self.shell, self._profile_dir, self._ipython_config)
        self.backend_detail = _describe_backend(self.options.backend, self.options.host)
        sigint_installed = handle_sigint and threading.current_thread() is threading.main_thread()
        if sigint_installed:
            shell = self.shell

            def sigint(signum: int, frame: types.FrameType | None) -> None:
                __tracebackhide__ = True  # hidden from tracebacks
                on_sigint(shell, frame)

            signal.signal(signal.SIGINT, sigint)
        if self.threads:
            self.control_caller.start_thread()
        else:
            self.shell_caller.call_soon(self.streams.flush_periodically)
        # perf: jedi is warmed on a thread once a first cell has run (see cokernel.warmup).
        self._warm_pending = self.threads and bool(self.shell.Completer.use_jedi)
        if self.fd_capture is not None:
            # Started after the rest of the set-up, right before the try: whatever fails
            # before it prints its traceback to the real fd 2, not into a pipe nobody reads.
            self.fd_capture.start()
        self.started.set()
        try:
            await self.shell_caller.serve()
        finally:
            self.subshells.delete_all()
            self.control_caller.stop()
            if self.fd_capture is not None:
                self.fd_capture.stop()
            if self.streams is not None:
                self.streams.close()
            sys.stdout, sys.stderr = self._saved_streams
            builtins.input, getpass.getpass = saved_input, saved_getpass
            if sys.unraisablehook is unraisablehook:
                sys.unraisablehook = saved_unraisablehook
            pdbsupport.uninstall()
            if sigint_installed:
                signal.signal(signal.SIGINT, saved_sigint)
            if self.shell is not None:
                # End the history session and drop temp files now, not at interpreter exit:
                # an embedding process may outlive this kernel (and its IPYTHONDIR).
                self.shell.history_batcher.stop()
                atexit.unregister(self.shell.atexit_operations)
                self.shell.atexit_operations()
            # The singleton goes, so a later kernel in this process gets a fresh shell.
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


async def _await(coro: Any) -> Any:
    return await coro


def _describe_backend(backend: str, host: str | None = None) -> str:
    if host is not None:
        from cokernel.gui import describe_hosted

        return describe_hosted(backend, host)
    if backend == "asyncio":
        import asyncio

        loop = asyncio.get_running_loop()
        if type(loop).__module__.startswith("uvloop"):
            return "asyncio (uvloop)"
        return "asyncio"
    return backend


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
    backend_options: dict[str, Any] = {}
    if kernel.options.backend == "asyncio" and kernel.options.use_uvloop:
        try:
            import uvloop  # noqa: F401
        except ImportError:
            pass
        else:
            backend_options["use_uvloop"] = True
    anyio.run(kernel.run, backend=kernel.options.backend, backend_options=backend_options)
    log.debug("kernel loop ended (pid %s)", os.getpid())
