"""One function per request type: ``handler(kernel, request)``.

Each sends exactly one reply; the kernel brackets it with busy/idle (see
:meth:`cokernel.kernel.Kernel._serve_sync`). Where a handler runs is decided in
:mod:`cokernel.dispatch`, so these functions must not assume a thread: ``execute_request`` is a
coroutine on an event loop, the introspection handlers run in worker threads.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from typing import TYPE_CHECKING, Any

from IPython.core.completer import rectify_completions
from IPython.utils.tokenutil import token_at_cursor

from cokernel.dispatch import DirectiveError, cell_directives
from cokernel.prelude import kernel_info_content
from cokernel.shell import CellRun, current_cell
from cokernel.subshells import SubshellNotFound, current_namespace
from cokernel.warmup import JEDI_LOCK

if TYPE_CHECKING:
    from cokernel.kernel import Kernel
    from cokernel.request import Request


def _error_content(exc: BaseException) -> dict[str, Any]:
    return {"status": "error", "ename": type(exc).__name__, "evalue": str(exc), "traceback": []}


# -- introspection ------------------------------------------------------------------------------
def kernel_info_request(kernel: Kernel, request: Request) -> None:
    # The same content the prelude answers with while the kernel starts (cokernel.prelude).
    content = kernel_info_content(
        threads=kernel.threads, debugger=kernel.debugger.available, backend=kernel.backend_detail
    )
    kernel.reply(request, content)


def connect_request(kernel: Kernel, request: Request) -> None:
    info = kernel.connection_info
    names = ("shell_port", "iopub_port", "stdin_port", "hb_port", "control_port")
    ports: dict[str, Any] = {k: info[k] for k in names if k in info}
    kernel.reply(request, {"status": "ok", **ports})


def comm_info_request(kernel: Kernel, request: Request) -> None:
    target = request.content.get("target_name")
    comms = kernel.comm_manager.info(target if isinstance(target, str) else None)
    kernel.reply(request, {"status": "ok", "comms": comms})


def usage_request(kernel: Kernel, request: Request) -> None:
    import psutil

    process = psutil.Process(os.getpid())
    with process.oneshot():
        cpu = process.cpu_percent(interval=0.05)
        memory = process.memory_info().rss
    kernel.reply(
        request,
        {
            "status": "ok",
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "kernel_cpu": cpu,
            "kernel_memory": memory,
            "host_cpu_percent": psutil.cpu_percent(),
            "cpu_count": psutil.cpu_count(),
            "host_virtual_memory": dict(psutil.virtual_memory()._asdict()),
        },
    )


def complete_request(kernel: Kernel, request: Request) -> None:
    shell = kernel.shell
    assert shell is not None
    code = str(request.content.get("code", ""))
    cursor_pos = request.content.get("cursor_pos")
    cursor = len(code) if not isinstance(cursor_pos, int) else max(0, min(cursor_pos, len(code)))
    # No provisionalcompleter() here: its catch_warnings() races with other threads' (the
    # kernel ignores ProvisionalCompleterWarning once, at start). jedi is not thread-safe:
    # completions (on any subshell) and the warm-up take turns (see cokernel.warmup).
    with JEDI_LOCK:
        completions = list(rectify_completions(code, shell.Completer.completions(code, cursor)))
    if completions:
        start, end = completions[0].start, completions[0].end
    else:
        start = end = cursor
    kernel.reply(
        request,
        {
            "status": "ok",
            "matches": [c.text for c in completions],
            "cursor_start": start,
            "cursor_end": end,
            "metadata": {
                "_jupyter_types_experimental": [
                    {
                        "start": c.start,
                        "end": c.end,
                        "text": c.text,
                        "type": c.type,
                        "signature": c.signature,
                    }
                    for c in completions
                ]
            },
        },
    )


# IPython's inspector is not thread-safe: its code formatter keeps per-call state on one shared
# PyColorize parser ("'str' object has no attribute 'write'"), and pygments loads its lexers
# lazily (two first inspections at once fail with ImportError). inspect_request runs in worker
# threads, so inspections take turns.
_inspecting = threading.Lock()


def inspect_request(kernel: Kernel, request: Request) -> None:
    shell = kernel.shell
    assert shell is not None
    code = str(request.content.get("code", ""))
    cursor_pos = request.content.get("cursor_pos")
    cursor = len(code) if not isinstance(cursor_pos, int) else cursor_pos
    detail = request.content.get("detail_level", 0)
    name = token_at_cursor(code, cursor)
    data: dict[str, Any] = {}
    found = False
    try:
        with _inspecting:
            data = shell.object_inspect_mime(name, detail_level=1 if detail == 1 else 0)
        found = True
    except KeyError:
        pass
    if not shell.enable_html_pager:
        data.pop("text/html", None)
    kernel.reply(request, {"status": "ok", "found": found, "data": data, "metadata": {}})


def is_complete_request(kernel: Kernel, request: Request) -> None:
    shell = kernel.shell
    assert shell is not None
    status, indent = shell.input_transformer_manager.check_complete(
        str(request.content.get("code", ""))
    )
    content: dict[str, Any] = {"status": status}
    if status == "incomplete":
        content["indent"] = " " * (indent or 0)
    kernel.reply(request, content)


def history_request(kernel: Kernel, request: Request) -> None:
    shell = kernel.shell
    assert shell is not None
    content = request.content
    history = shell.history_manager
    output, raw = bool(content.get("output", False)), bool(content.get("raw", True))
    kind = content.get("hist_access_type", "tail")
    if kind == "tail":
        items = history.get_tail(
            int(content.get("n", 10)), raw=raw, output=output, include_latest=True
        )
    elif kind == "range":
        # IPython numbers the current session 0 in range results but by its real number in tail
        # and search results; frontends pair them up, so every reply gives the real number.
        items = [
            (session or history.session_number, line, entry)
            for session, line, entry in history.get_range(
                int(content.get("session", 0)),
                int(content.get("start", 1)),
                content.get("stop"),
                raw=raw,
                output=output,
            )
        ]
    elif kind == "search":
        n = content.get("n")
        items = history.search(
            str(content.get("pattern", "*")),
            raw=raw,
            output=output,
            n=int(n) if n is not None else None,
            unique=bool(content.get("unique", False)),
        )
    else:
        kernel.reply(
            request,
            _error_content(ValueError(f"unknown hist_access_type {kind!r}")) | {"history": []},
        )
        return
    kernel.reply(request, {"status": "ok", "history": [list(item) for item in items]})


# -- control ------------------------------------------------------------------------------------
def interrupt_request(kernel: Kernel, request: Request) -> None:
    kernel.interrupt()
    kernel.reply(request, {"status": "ok"})


def shutdown_request(kernel: Kernel, request: Request) -> None:
    restart = bool(request.content.get("restart", False))
    kernel.reply(request, {"status": "ok", "restart": restart})
    kernel.publish("shutdown_reply", {"status": "ok", "restart": restart}, request)
    kernel.request_shutdown(restart)


async def debug_request(kernel: Kernel, request: Request) -> None:
    await kernel.debugger.handle(request)


# -- subshells ----------------------------------------------------------------------------------
def create_subshell_request(kernel: Kernel, request: Request) -> None:
    wanted = request.content.get("namespace")
    if wanted not in (None, "shared", "own"):
        kernel.reply(
            request,
            _error_content(ValueError(f"namespace must be 'shared' or 'own', not {wanted!r}")),
        )
        return
    subshell = kernel.subshells.create(own_namespace=None if wanted is None else wanted == "own")
    kernel.reply(request, {"status": "ok", "subshell_id": subshell.subshell_id})


def delete_subshell_request(kernel: Kernel, request: Request) -> None:
    subshell_id = request.content.get("subshell_id")
    try:
        subshell = kernel.subshells.get(str(subshell_id))
    except SubshellNotFound as e:
        kernel.reply(request, _error_content(e))
        return
    if kernel.shell is not None and subshell.thread is not None:
        # Let interrupted cells finish (and answer) before their loop is torn down: a loop
        # cancelled under a running cell would end it with CancelledError instead.
        cells = [c for c in list(kernel.shell.running_cells) if c.thread is subshell.thread]
        kernel.shell.interrupt_cells(on_thread=subshell.thread)
        for cell in cells:
            cell.done.wait(1.0)
    try:
        kernel.subshells.delete(subshell.subshell_id)
    except SubshellNotFound as e:  # deleted concurrently by another request
        kernel.reply(request, _error_content(e))
        return
    kernel.reply(request, {"status": "ok"})


def list_subshell_request(kernel: Kernel, request: Request) -> None:
    kernel.reply(request, {"status": "ok", "subshell_id": kernel.subshells.ids()})


# -- comms --------------------------------------------------------------------------------------
def _in_shell_context(kernel: Kernel, fn: Any, *args: Any) -> None:
    """Run a comm handler in the context of the shell whose loop thread runs it (widget
    callbacks see what cells set, like ``decimal`` precision); on any other thread (a
    stand-in for a blocked loop), in its own."""
    context = kernel.shell.context_here() if kernel.shell is not None else None
    if context is None:
        fn(*args)
    else:
        context.run(fn, *args)


def comm_open(kernel: Kernel, request: Request) -> None:
    _in_shell_context(kernel, kernel.comm_manager.handle_open, request.msg)


def comm_msg(kernel: Kernel, request: Request) -> None:
    _in_shell_context(kernel, kernel.comm_manager.handle_msg, request.msg)


def comm_close(kernel: Kernel, request: Request) -> None:
    _in_shell_context(kernel, kernel.comm_manager.handle_close, request.msg)


# -- execution ----------------------------------------------------------------------------------
async def execute_request(kernel: Kernel, request: Request) -> None:
    shell = kernel.shell
    assert shell is not None
    content = request.content
    code = content.get("code")
    if not isinstance(code, str):
        kernel.reply(
            request, _error_content(TypeError("execute_request content.code must be a string"))
        )
        return
    if kernel.is_aborted(request):
        kernel.reply(request, {"status": "aborted", "execution_count": shell.execution_count - 1})
        return
    silent = bool(content.get("silent", False))
    store_history = bool(content.get("store_history", not silent)) and not silent
    stop_on_error = bool(content.get("stop_on_error", True))
    # A silent execute is no home for stray output: it would not be broadcast.
    if request.channel == "shell" and request.subshell_id is None and not silent:
        kernel.last_execute = request
    directive_error: DirectiveError | None = None
    try:
        directives = cell_directives(code, request.msg["metadata"])
    except DirectiveError as e:
        directives, directive_error = {}, e
    timeout = directives.get("timeout", kernel.options.timeout)

    if directive_error is not None:
        # Like a cell IPython cannot compile: a stored one uses up its number, so the next
        # cell does not show (and reply with) the same In[n].
        with shell.numbering:
            count = shell.execution_count if store_history else shell.execution_count - 1
            if store_history:
                shell.execution_count += 1
        if not silent:
            kernel.publish("execute_input", {"code": code, "execution_count": count}, request)
        error = {
            "ename": "DirectiveError",
            "evalue": str(directive_error),
            "traceback": [f"DirectiveError: {directive_error}"],
        }
        kernel.publish("error", error, request)
        if stop_on_error:  # before the reply: see below
            kernel.abort_queued(request)
        kernel.reply(request, {"status": "error", "execution_count": count, **error})
        return

    # The cell is registered before execute_input goes out: a frontend may interrupt as soon
    # as it sees execute_input, and that interrupt must find the cell.
    namespace = None
    owner = None  # the thread of the shell the cell belongs to (None: the main shell)
    if request.subshell_id is not None and request.channel == "shell":
        try:
            subshell = kernel.subshells.get(request.subshell_id)
            namespace, owner = subshell.namespace, subshell.thread
        except SubshellNotFound as e:
            # Deleted while this request waited in its lane: the subshell's loop is ending
            # and its queue is being answered; this one was already on its way out.
            never_ran = {**_error_content(e), "execution_count": shell.execution_count - 1}
            kernel.reply(request, never_ran)
            return
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
    if kernel.streams is not None:
        kernel.streams.flush(request)
    if store_history:
        shell.history_batcher.touch()

    count = result.execution_count if takes_number and result.execution_count else shown_count
    failure = result.error_before_exec or result.error_in_exec
    reply: dict[str, Any]
    if failure is None:
        reply = {
            "status": "ok",
            "execution_count": count,
            "user_expressions": shell.user_expressions(content.get("user_expressions") or {}),
            "payload": shell.payload_manager.read_payload(),
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
            "payload": shell.payload_manager.read_payload(),
        }
    shell.payload_manager.clear_payload()
    # Abort before replying: a frontend may answer the error reply with a new request at once,
    # and were the abort time taken after the reply went out, that new request could count as
    # queued before the error and be aborted too (seen under load).
    if failure is not None and stop_on_error:
        kernel.abort_queued(request)
    kernel.reply(
        request,
        reply,
        metadata={"started": request.msg["header"].get("date"), "status": reply["status"]},
    )
    if getattr(shell, "exit_now", False):
        shell.exit_now = False
        kernel.request_shutdown(restart=False)


def _transform(shell: Any, code: str) -> tuple[str, Any]:
    try:
        return shell.transform_cell(code), None
    except Exception:
        return code, sys.exc_info()
