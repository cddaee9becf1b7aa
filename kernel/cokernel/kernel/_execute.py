"""``execute_request``: the protocol part (:func:`execute_request`) and running the cell
(:func:`run_cell`).

The protocol part reads the request, answers what never runs (bad code, an aborted request, a
bad directive, a deleted subshell) and turns the cell's result into the reply. Running the cell
is the shell's business: numbering, the :class:`~cokernel.shell._cells.CellRun` that makes it
interruptible, the namespace of its subshell, IPython's events.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cokernel.engine._dispatch import DirectiveError, cell_directives
from cokernel.engine._subshells import SubshellNotFound, current_namespace
from cokernel.kernel._host import KernelHost, Reply
from cokernel.shell._cells import CellRun, current_cell

if TYPE_CHECKING:
    from IPython.core.interactiveshell import ExecutionResult

    from cokernel.protocol._request import Request
    from cokernel.shell._shell import CokernelShell


def error_content(exc: BaseException) -> dict[str, Any]:
    return {"status": "error", "ename": type(exc).__name__, "evalue": str(exc), "traceback": []}


@dataclass
class Execution:
    """What an execute_request asks for."""

    code: str
    silent: bool
    store_history: bool
    stop_on_error: bool

    @classmethod
    def of(cls, request: Request, code: str) -> Execution:
        content = request.content
        silent = bool(content.get("silent", False))
        return cls(
            code=code,
            silent=silent,
            store_history=bool(content.get("store_history", not silent)) and not silent,
            stop_on_error=bool(content.get("stop_on_error", True)),
        )


async def execute_request(kernel: KernelHost, request: Request) -> dict[str, Any] | Reply:
    shell = kernel.shell
    assert shell is not None
    code = request.content.get("code")
    if not isinstance(code, str):
        return error_content(TypeError("execute_request content.code must be a string"))
    if kernel.is_aborted(request):
        return {"status": "aborted", "execution_count": shell.execution_count - 1}
    execution = Execution.of(request, code)
    # A silent execute is no home for stray output: it would not be broadcast.
    if request.channel == "shell" and request.subshell_id is None and not execution.silent:
        kernel.last_execute = request
    try:
        directives = cell_directives(code, request.msg["metadata"])
    except DirectiveError as e:
        return _directive_failed(kernel, shell, request, execution, e)
    namespace: dict[str, Any] | None = None
    owner = None  # the thread of the shell the cell belongs to (None: the main shell)
    if request.subshell_id is not None and request.channel == "shell":
        try:
            subshell = kernel.subshells.get(request.subshell_id)
            namespace, owner = subshell.namespace, subshell.thread
        except SubshellNotFound as e:
            # Deleted while this request waited in its lane: the subshell's loop is ending
            # and its queue is being answered; this one was already on its way out.
            return {**error_content(e), "execution_count": shell.execution_count - 1}
    timeout = directives.get("timeout", kernel.options.timeout)
    result, shown_count = await run_cell(kernel, request, execution, timeout, namespace, owner)
    if kernel.streams is not None:
        kernel.streams.flush(request)
    if execution.store_history:
        shell.history_batcher.touch()
    return _execute_reply(kernel, shell, request, execution, result, shown_count)


def _directive_failed(
    kernel: KernelHost,
    shell: CokernelShell,
    request: Request,
    execution: Execution,
    error: DirectiveError,
) -> dict[str, Any]:
    # Like a cell IPython cannot compile: a stored one uses up its number, so the next cell
    # does not show (and reply with) the same In[n].
    with shell.numbering:
        count = shell.execution_count if execution.store_history else shell.execution_count - 1
        if execution.store_history:
            shell.execution_count += 1
    if not execution.silent:
        kernel.publish("execute_input", {"code": execution.code, "execution_count": count}, request)
    shown = {
        "ename": "DirectiveError",
        "evalue": str(error),
        "traceback": [f"DirectiveError: {error}"],
    }
    kernel.publish("error", shown, request)
    if execution.stop_on_error:  # before the reply: see _execute_reply
        kernel.abort_queued(request)
    return {"status": "error", "execution_count": count, **shown}


async def run_cell(
    kernel: KernelHost,
    request: Request,
    execution: Execution,
    timeout: float | None,
    namespace: dict[str, Any] | None,
    owner: threading.Thread | None,
) -> tuple[ExecutionResult, int]:
    """Run the cell on ``kernel``'s shell; returns IPython's result and the number shown."""
    shell = kernel.shell
    assert shell is not None
    code, silent, store_history = execution.code, execution.silent, execution.store_history
    # The cell is registered before execute_input goes out: a frontend may interrupt as soon
    # as it sees execute_input, and that interrupt must find the cell.
    namespace_token = current_namespace.set(namespace)
    cell = CellRun(timeout=timeout)
    cell.context = shell.cell_context(owner)
    token = current_cell.set(cell)
    shell.running_cells.add(cell)
    cell.take_number(shell.numbering)
    # An unstored cell (and an empty one) takes no number: it shows the last one, as its reply
    # and result do.
    takes_number = store_history and code.strip() != ""
    shown_count = shell.execution_count if takes_number else shell.execution_count - 1
    cell.number = shown_count
    if not silent:
        kernel.publish("execute_input", {"code": code, "execution_count": shown_count}, request)
    cell.start_timer()
    try:
        transformed, preprocessing_exc = _transform(shell, code)
        result = await shell.run_cell_async(
            code,
            store_history=store_history,
            silent=silent,
            transformed_cell=transformed,
            preprocessing_exc_tuple=preprocessing_exc,
            cell_id=request.msg["metadata"].get("cellId"),
            cell_meta=request.msg["metadata"],  # ExecutionInfo.cell_meta, as ipykernel passes it
        )
        # IPython fires these from run_cell() only, not run_cell_async(): matplotlib's inline
        # backend shows and closes a cell's figures on post_execute, %matplotlib tk/qt redraw.
        shell.events.trigger("post_execute")
        if not silent:
            shell.events.trigger("post_run_cell", result)
    finally:
        # What the cell wrote to fds 1 and 2 is its output (not the next cell's): forwarded
        # while the cell still counts as running, so it goes to this cell.
        kernel.drain_fd_output()
        cell.number_taken()  # were it not (the cell was empty)
        cell.finish()
        shell.running_cells.discard(cell)
        current_cell.reset(token)
        current_namespace.reset(namespace_token)
    if takes_number and result.execution_count:
        shown_count = result.execution_count
    return result, shown_count


def _execute_reply(
    kernel: KernelHost,
    shell: CokernelShell,
    request: Request,
    execution: Execution,
    result: ExecutionResult,
    count: int,
) -> Reply:
    failure = result.error_before_exec or result.error_in_exec
    reply: dict[str, Any]
    # A copy, so that a payload written later cannot reach this reply; IPython's list is only
    # replaced when something was written (a traitlets List set: 4 us a cell otherwise).
    payload = list(shell.payload_manager.read_payload())
    if failure is None:
        user_expressions = request.content.get("user_expressions") or {}
        reply = {
            "status": "ok",
            "execution_count": count,
            "user_expressions": shell.user_expressions(user_expressions),
            "payload": payload,
        }
    else:
        error = request.error or {
            "ename": type(failure).__name__,
            "evalue": str(failure),
            "traceback": [],
        }
        reply = {
            "status": "error",
            "execution_count": count,
            **error,
            "payload": payload,
        }
    if payload:
        shell.payload_manager.clear_payload()
    # Abort before replying: a frontend may answer the error reply with a new request at once,
    # and were the abort time taken after the reply went out, that new request could count as
    # queued before the error and be aborted too (seen under load).
    if failure is not None and execution.stop_on_error:
        kernel.abort_queued(request)

    def exit_if_asked() -> None:
        if getattr(shell, "exit_now", False):
            shell.exit_now = False
            kernel.request_shutdown(restart=False)

    metadata = {"started": request.msg["header"].get("date"), "status": reply["status"]}
    return Reply(reply, metadata, then=exit_if_asked)


def _transform(shell: Any, code: str) -> tuple[str, Any]:
    try:
        return shell.transform_cell(code), None
    except Exception:
        return code, sys.exc_info()
