"""Routing: which Caller, lane and run mode each incoming message goes to (mixed into
:class:`~cokernel.kernel._kernel.Kernel`).

A message is looked up in the kernel's :class:`~cokernel.kernel._host.HandlerTable`; a stdin
message goes to the stdin bridge; a message for an unknown type, an invalid or unknown subshell
is answered (a request) or dropped (anything else), never run elsewhere.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from cokernel.engine._caller import Caller, Pending
from cokernel.engine._dispatch import DirectiveError, RunMode, cell_directives
from cokernel.engine._subshells import SubshellNotFound, SubshellRegistry
from cokernel.kernel._host import Handler, HandlerTable
from cokernel.kernel._serving import Serving
from cokernel.protocol._backlog import ShellBacklog
from cokernel.protocol._droplog import drop_log
from cokernel.protocol._messages import Channel, Message, MsgType
from cokernel.protocol._recorder import MessageRecorder
from cokernel.protocol._request import Request, current_request

if TYPE_CHECKING:
    from cokernel.shell._comms import KernelCommManager
    from cokernel.shell._shell import CokernelShell
    from cokernel.shell._stdin import StdinBridge

log = logging.getLogger("cokernel")


class Routing(Serving):
    """Receives verified messages from an interface thread and schedules their handlers."""

    # Supplied by Kernel.
    handlers: HandlerTable
    threads: bool
    shell_caller: Caller
    control_caller: Caller
    subshells: SubshellRegistry
    stdin: StdinBridge
    comm_manager: KernelCommManager
    recorder: MessageRecorder | None
    backlog: ShellBacklog
    shell: CokernelShell | None

    def receive(
        self, channel: Channel, identities: list[bytes], msg: Message, size: int = 0
    ) -> None:
        """Accept one verified message from an interface thread; never raises.

        A shell request (``size``: its wire bytes) counts in :attr:`backlog` until a handler
        starts on it or it is settled unstarted (see :mod:`cokernel.protocol._backlog`).
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
            self._stdin_message(request)
            return False
        handler = self.handlers.route(channel, msg_type)
        if handler is None:
            self._unknown(request)
            return False
        mode = handler.mode
        if msg_type == "execute_request":
            mode = self._execute_mode(request, mode)
        if mode is RunMode.thread and not self.threads:
            mode = RunMode.task
        caller = self._addressed_caller(request, handler.lane)
        if caller is None:
            return False
        pending = self._schedule(request, handler, mode, caller)
        pending.add_done_callback(lambda p: self._answer_unserved(request, p))
        return True

    def _stdin_message(self, request: Request) -> None:
        if request.msg_type != MsgType.input_reply:
            drop_log.warning("unexpected %s on stdin dropped", request.msg_type)
        elif not self.stdin.receive_reply(request.msg, request.identities):
            drop_log.warning(
                "input_reply nobody waited for (parent %s)",
                request.msg["parent_header"].get("msg_id"),
            )

    def _addressed_caller(self, request: Request, lane: str) -> Caller | None:
        """The Caller of the shell ``request`` is addressed to; None (answered) if that
        subshell does not exist."""
        if request.channel is Channel.control:
            return self.control_caller
        # A comm message goes to its comm's owner, whatever it was addressed to: JupyterLab
        # sends a comm's close on the comm's subshell and deletes that subshell at once, and
        # the deletion may arrive first; the close must still reach the comm.
        if request.subshell_id is None or lane == "comm":
            return self.shell_caller
        try:
            return self.subshells.route(request.subshell_id)
        except SubshellNotFound as e:
            if request.msg_type.endswith("_request"):
                self._error_reply(request, "SubshellNotFound", str(e))
            else:  # comm_msg & co. are never answered: a reply would be a stray message
                drop_log.warning("%s for unknown subshell dropped: %s", request.msg_type, e)
                self._status("busy", request)
                self._status("idle", request)
            return None

    def _schedule(
        self, request: Request, handler: Handler, mode: RunMode, caller: Caller
    ) -> Pending[Any]:
        fn, lane = handler.fn, handler.lane
        if mode is RunMode.direct:
            return caller.call_direct(self._serve_sync, fn, request)
        if mode is RunMode.thread:
            return caller.to_thread(self._serve_sync, fn, request)
        if mode is RunMode.task:
            return caller.call_soon(self._serve_async, fn, request)
        if lane == "comm":
            # A comm's messages run where the comm lives (its owner shell's loop), whichever
            # subshell the frontend sent them on (JupyterLab sends them on subshells); lent to
            # a stand-in while that loop's thread is stuck in user code (cokernel.engine._lending).
            caller, owner = self._comm_route(request, caller)
            return caller.queue_lendable(
                (request.channel, lane, owner), self._serve_sync, fn, request
            )
        lane_key = (request.channel, lane, request.subshell_id)
        return caller.queue_call(lane_key, self._serve_async, fn, request)

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
        """Answer ``request`` with an error, through the same busy/reply/idle as a handler."""
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
        self._serve_sync(lambda _host, _request: content, request)

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
