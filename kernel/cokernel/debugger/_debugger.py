"""The JupyterLab debugger: DAP in ``debug_request``/``debug_reply`` and ``debug_event``.

debugpy does the debugging, in this process. On the first ``initialize`` the kernel starts it
(``debugpy.listen``: debugpy's adapter runs as a subprocess, its tracer in here) and connects
to the adapter as its DAP client, over a socket read by a thread of its own
("cokernel-debugger"). That thread, not any event loop, carries debugpy's answers and events:
a cell held at a breakpoint freezes its shell's loop, and the debugger must not freeze with it.

Requests reach :meth:`Debugger.handle` in the ``debug_request`` lane of the control loop. The
kernel answers some itself (``debugInfo``, ``dumpCell``, ``inspectVariables``,
``richInspectVariables``, ``copyToGlobals``, ``modules``, ``source`` of a file it can read:
:mod:`cokernel.debugger._answers`; and ``configurationDone``); the rest go to debugpy. Every DAP message the kernel sends out carries a
``seq`` of the kernel's own and replies name the frontend's ``request_seq``.

What stays alive while a cell is held at a breakpoint (docs/debugger.md):

- control requests, other shells' cells: debugpy is attached with ``stopAllThreadsOnSuspend``
  off, so a breakpoint holds only the thread that hit it;
- comms of the held shell: a held thread is in user code that does not come back to its loop,
  so the loop's comm lane is lent to a stand-in (:mod:`cokernel.engine._lending`), as for any cell
  blocked in synchronous code;
- interrupts: the held threads are resumed first, then interrupted (:meth:`Debugger.interrupt`);
- shutdown: :meth:`Debugger.close` detaches debugpy, which releases every held thread.
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio

from cokernel.debugger import _answers as answers
from cokernel.debugger._answers import DebuggerError as DebuggerError
from cokernel.debugger._dap import (
    PYDEVD_SUSPENDED,
    AdapterConnection,
    held_by_debugger,
    hide_from_debugpy,
    hide_kernel_threads,
)
from cokernel.debugger._held import HeldThreads
from cokernel.debugger._host import DebugHost
from cokernel.engine._caller import Pending, threads_available

if TYPE_CHECKING:
    from cokernel.protocol._request import Request

log = logging.getLogger("cokernel.debugger")

#: How long a request forwarded to debugpy may take before the kernel answers it with failure.
ADAPTER_TIMEOUT = 30.0

# The whole package: its frames are hidden from the user (rules, stack traces).
_KERNEL_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Events of debugpy's adapter that mean nothing to a Jupyter frontend.
_PRIVATE_EVENTS = ("debugpySockets", "debugpyWaitingForServer", "debugpyAttach")

# debugpy.listen() may run once per process; a second kernel in the process reuses it.
_endpoint: tuple[str, int] | None = None
_endpoint_lock = threading.Lock()


class Debugger(HeldThreads):
    """The kernel side of JupyterLab's debugger; debugpy is imported on first ``initialize``."""

    def __init__(self, kernel: DebugHost) -> None:
        self.kernel = kernel
        self.session_id = uuid.uuid4().hex
        self.rich_results: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        answers.sessions[self.session_id] = self
        self._available: bool | None = None
        self._out_seq = itertools.count(1)  # seq of every DAP message sent to frontends
        self._adapter_seq = itertools.count(1)
        self._lock = threading.Lock()
        self._connection: AdapterConnection | None = None
        self._waiting: dict[int, Pending[dict[str, Any]]] = {}
        self._initialized: Pending[None] = Pending()
        self._capabilities: dict[str, Any] = {}
        self.attached = False
        self.breakpoints: dict[str, list[dict[str, Any]]] = {}
        self.exception_breakpoints: dict[str, Any] = {}  # the last setExceptionBreakpoints
        self.stopped_threads: set[int] = set()
        self._parent: Request | None = None
        self._redeliveries = 0

    # -- what the kernel advertises -------------------------------------------------------
    @property
    def available(self) -> bool:
        """debugpy is installed and the kernel has threads (not Pyodide); debugpy is not
        imported to find out."""
        if self._available is None:
            self._available = (
                threads_available() and importlib.util.find_spec("debugpy") is not None
            )
        return self._available

    @property
    def started(self) -> bool:
        return self._connection is not None

    # -- serving debug_request --------------------------------------------------------------
    async def handle(self, request: Request) -> dict[str, Any]:
        """The content of the one ``debug_reply`` to ``request``: a DAP response."""
        dap = request.content
        self._parent = request
        command = str(dap.get("command", ""))
        own = _OWN_COMMANDS.get(command)
        response: dict[str, Any]
        try:
            if own is not None:
                response = await own(self, dap)
            else:
                response = await self.forward(dap)
        except DebuggerError as e:
            response = self.response(dap, success=False, message=str(e))
        except TimeoutError:
            response = self.response(
                dap, success=False, message=f"debugpy did not answer {command!r} in time"
            )
        except Exception as e:  # still one well-formed DAP response
            log.exception("debug request %r failed", command)
            response = self.response(dap, success=False, message=f"{type(e).__name__}: {e}")
        return response

    def response(
        self,
        dap: dict[str, Any],
        *,
        success: bool = True,
        body: dict[str, Any] | None = None,
        message: str | None = None,
    ) -> dict[str, Any]:
        response: dict[str, Any] = {
            "type": "response",
            "seq": next(self._out_seq),
            "request_seq": dap.get("seq", 0),
            "success": success,
            "command": str(dap.get("command", "")),
            "body": body if body is not None else {},
        }
        if message is not None:
            response["message"] = message
        return response

    def _relay(self, dap: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
        """debugpy's response to a forwarded request, renumbered for the frontend."""
        response = dict(answer)
        response["seq"] = next(self._out_seq)
        response["request_seq"] = dap.get("seq", 0)
        response["command"] = str(dap.get("command", answer.get("command", "")))
        response.setdefault("body", {})
        return response

    async def ask(self, command: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """Send a request to debugpy and wait for its response."""
        with anyio.fail_after(ADAPTER_TIMEOUT):
            return await self._send(command, arguments)

    def _send(self, command: str, arguments: dict[str, Any]) -> Pending[dict[str, Any]]:
        connection = self._connection
        if connection is None:
            raise DebuggerError(
                f"{command!r} needs a running debugger: send 'initialize' and 'attach' first"
            )
        pending: Pending[dict[str, Any]] = Pending()
        seq = next(self._adapter_seq)
        with self._lock:
            self._waiting[seq] = pending
        try:
            connection.send(
                {"seq": seq, "type": "request", "command": command, "arguments": arguments}
            )
        except OSError as e:
            with self._lock:
                self._waiting.pop(seq, None)
            raise DebuggerError(f"lost the connection to debugpy: {e}") from e
        return pending

    async def forward(self, dap: dict[str, Any]) -> dict[str, Any]:
        command = str(dap.get("command", ""))
        arguments = dict(dap.get("arguments") or {})
        if not self.attached:
            raise DebuggerError(
                f"{command!r} needs a running debugger: send 'initialize' and 'attach' first"
            )
        if command == "threads":
            hide_kernel_threads()  # the control loop's workers start on demand
        answer = await self.ask(command, arguments)
        if answer.get("success"):
            body = answer.get("body") or {}
            if command == "setExceptionBreakpoints":
                self.exception_breakpoints = arguments
            elif command == "setBreakpoints":
                path = str((arguments.get("source") or {}).get("path", ""))
                if arguments.get("breakpoints"):
                    self.breakpoints[path] = list(arguments["breakpoints"])
                else:
                    self.breakpoints.pop(path, None)
            elif command in ("continue", "next", "stepIn", "stepOut"):
                self._resumed(arguments.get("threadId"), bool(body.get("allThreadsContinued")))
            elif command == "stackTrace":
                # justMyCode and the rules hide the kernel's frames; this catches any left.
                frames = [
                    f
                    for f in body.get("stackFrames", [])
                    if not str((f.get("source") or {}).get("path", "")).startswith(_KERNEL_DIR)
                ]
                answer = {**answer, "body": {**body, "stackFrames": frames}}
        return self._relay(dap, answer)

    async def off_loop(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run blocking ``fn`` in one of the control loop's worker threads (hidden from
        debugpy, unlike anyio's)."""
        return await self.kernel.run_in_worker(fn, *args)

    # -- starting and stopping debugpy ----------------------------------------------------
    async def _initialize(self, dap: dict[str, Any]) -> dict[str, Any]:
        if not self.available:
            raise DebuggerError("this kernel has no debugger: install debugpy (cokernel[debugger])")
        if self._connection is None:
            starting: Pending[None] = Pending()
            thread = threading.Thread(
                target=self._connect, args=(starting,), name="cokernel-debugger-start"
            )
            hide_from_debugpy(thread)
            thread.daemon = True
            thread.start()
            with anyio.fail_after(ADAPTER_TIMEOUT):
                await starting
            answer = await self.ask("initialize", dict(dap.get("arguments") or {}))
            self._capabilities = dict(answer.get("body") or {})
            return self._relay(dap, answer)
        return self.response(dap, body=self._capabilities)

    def _connect(self, done: Pending[None]) -> None:
        """Start debugpy (once per process) and connect to its adapter; on its own thread."""
        global _endpoint
        try:
            hide_kernel_threads()
            with _endpoint_lock:
                if _endpoint is None:
                    # debugpy warns on stderr (which is a cell's output here) about frozen
                    # stdlib modules; they are not what users put breakpoints in.
                    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
                    import debugpy

                    # Child processes of cells stay undebugged: they are not cells.
                    debugpy.configure(subProcess=False)
                    host, port = debugpy.listen(("127.0.0.1", 0))
                    _endpoint = (str(host), int(port))
                host, port = _endpoint
            self._initialized = Pending()
            self._connection = AdapterConnection(host, port, self._on_message)
            shell = self.kernel.shell
            if shell is not None:
                shell.keep_cell_line_numbers(True)  # breakpoint lines are the cell file's lines
                if self._sigint_guard not in shell.sigint_guards:  # for the shell's life
                    shell.sigint_guards.append(self._sigint_guard)
            done.set_result(None)
        except BaseException as e:
            log.exception("starting debugpy failed")
            done.set_exception(DebuggerError(f"debugpy could not start: {e}"))

    async def _attach(self, dap: dict[str, Any]) -> dict[str, Any]:
        if self._connection is None:
            raise DebuggerError("send 'initialize' before 'attach'")
        if self.attached:
            return self.response(dap)
        given = dict(dap.get("arguments") or {})
        arguments = {
            "justMyCode": True,
            **given,
            # A breakpoint holds only the thread that hit it: the kernel's other shells and
            # the comm stand-ins keep running (see the module docstring).
            "stopAllThreadsOnSuspend": False,
            "steppingResumesAllThreads": False,
            "redirectOutput": False,
            "subProcess": False,
            "rules": [*given.get("rules", []), {"path": _KERNEL_DIR, "include": False}],
        }
        attach = self._send("attach", arguments)
        # debugpy answers attach only after configurationDone, which may follow only its
        # "initialized" event. The kernel sends it; the frontend's own later
        # configurationDone is answered by the kernel.
        with anyio.fail_after(ADAPTER_TIMEOUT):
            await self._initialized
            done = await self._send("configurationDone", {})
            answer = await attach
        if not done.get("success"):
            raise DebuggerError(f"debugpy refused configurationDone: {done.get('message')}")
        self.attached = bool(answer.get("success"))
        return self._relay(dap, answer)

    async def _configuration_done(self, dap: dict[str, Any]) -> dict[str, Any]:
        if not self.attached:
            raise DebuggerError("send 'initialize' and 'attach' before 'configurationDone'")
        return self.response(dap)

    async def _disconnect(self, dap: dict[str, Any]) -> dict[str, Any]:
        if self._connection is None:
            return self.response(dap)
        pending = self._send("disconnect", {"restart": False, "terminateDebuggee": False})
        # debugpy closes the connection right after answering: it is the kernel's doing.
        connection, self._connection = self._connection, None
        try:
            with anyio.fail_after(ADAPTER_TIMEOUT):
                answer = await pending
        finally:
            self._connection = connection
            self._drop_connection()
        return self._relay(dap, answer)

    def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        self.attached = False
        if self.kernel.shell is not None:
            self.kernel.shell.keep_cell_line_numbers(False)
        self.breakpoints.clear()
        self.exception_breakpoints = {}
        self.stopped_threads.clear()
        if connection is not None:
            connection.close()

    def close(self) -> None:
        """Detach debugpy (releasing every held thread); for shutdown, from any thread."""
        connection = self._connection
        if connection is not None:
            try:
                pending = self._send("disconnect", {"restart": False, "terminateDebuggee": False})
                self._connection = None  # its end is the kernel's doing, not news
                pending.result(5)
            except Exception:
                log.warning("debugpy did not confirm the disconnect", exc_info=True)
            self._connection = connection
            self._drop_connection()

    # -- from debugpy (on the reader thread) --------------------------------------------------
    def _on_message(self, connection: AdapterConnection, message: dict[str, Any] | None) -> None:
        if message is None:
            self._lost(connection)
            return
        kind = message.get("type")
        if kind == "response":
            with self._lock:
                pending = self._waiting.pop(int(message.get("request_seq", -1)), None)
            if pending is not None:
                pending.set_result(message)
        elif kind == "event":
            self._on_event(message)

    def _lost(self, connection: AdapterConnection) -> None:
        if connection is not self._connection:
            if self._connection is None:  # dropped by the kernel (disconnect) mid-request
                self._fail_waiting()
            return
        log.warning("debugpy closed the connection")
        self._connection = None
        self.attached = False
        self.stopped_threads.clear()
        self._fail_waiting()

    def _fail_waiting(self) -> None:
        with self._lock:
            waiting, self._waiting = self._waiting, {}
        for pending in waiting.values():
            pending.set_exception(DebuggerError("debugpy closed the connection"))

    def _on_event(self, event: dict[str, Any]) -> None:
        name = str(event.get("event", ""))
        body = event.get("body") or {}
        if name == "initialized":
            self._initialized.set_result(None)
        elif name == "stopped":
            self._on_stopped(body)
        elif name == "continued":
            self._resumed(body.get("threadId"), bool(body.get("allThreadsContinued")))
        elif name == "thread" and body.get("reason") == "exited":
            self.stopped_threads.discard(body.get("threadId"))
        if name in _PRIVATE_EVENTS or (name == "output" and body.get("category") == "telemetry"):
            return
        self.kernel.publish("debug_event", {**event, "seq": next(self._out_seq)}, self._parent)

    def _on_stopped(self, body: dict[str, Any]) -> None:
        thread_id = body.get("threadId")
        if isinstance(thread_id, int):
            self.stopped_threads.add(thread_id)
        # pydevd reports the stop just before its thread enters the wait loop; forward the
        # event only once it is there, so whoever reacts finds the thread held.
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            suspending = [
                t
                for t in threading.enumerate()
                if getattr(getattr(t, "additional_info", None), "pydev_state", None)
                == PYDEVD_SUSPENDED
            ]
            if all(held_by_debugger(t) for t in suspending):
                return
            time.sleep(0.001)


_OWN_COMMANDS: dict[str, Callable[[Debugger, dict[str, Any]], Any]] = {
    "initialize": Debugger._initialize,
    "attach": Debugger._attach,
    "configurationDone": Debugger._configuration_done,
    "disconnect": Debugger._disconnect,
    "debugInfo": answers.debug_info,
    "dumpCell": answers.dump_cell,
    "source": answers.source,
    "modules": answers.modules,
    "inspectVariables": answers.inspect_variables,
    "richInspectVariables": answers.rich_inspect,
    "copyToGlobals": answers.copy_to_globals,
}
