"""One function per message type, ``handler(kernel, request)``, and :data:`HANDLERS`, the table
that says where each runs.

A request's handler returns its reply's content; the kernel sends it between busy and idle
(and an error reply if the handler raised), so every request gets exactly one reply. The run
mode decides the thread, so these functions must not assume one: ``execute_request``
(:mod:`cokernel.kernel._execute`) is a coroutine on an event loop, the introspection handlers run
in worker threads.

One refinement of the starting table in DESIGN.md: ``comm_open``, ``comm_msg`` and
``comm_close`` share one lane ("comm") in queue mode. Running open/close directly on the
receiving thread while earlier ``comm_msg`` still waited in their queue would let a close
overtake the messages sent before it, and would run widget constructors (user code) off the
shell's thread.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import TYPE_CHECKING, Any

from IPython.core.completer import rectify_completions
from IPython.utils.tokenutil import token_at_cursor

from cokernel.engine._dispatch import RunMode
from cokernel.engine._subshells import SubshellNotFound
from cokernel.kernel._execute import error_content, execute_request
from cokernel.kernel._host import Handler, HandlerTable, KernelHost, Reply
from cokernel.kernel._prelude import kernel_info_content
from cokernel.protocol._messages import MsgType
from cokernel.shell._warmup import JEDI_LOCK

if TYPE_CHECKING:
    from cokernel.protocol._request import Request

Content = dict[str, Any]


# -- introspection ------------------------------------------------------------------------------
def kernel_info_request(kernel: KernelHost, request: Request) -> Content:
    # The same content the prelude answers with while the kernel starts (cokernel.kernel._prelude).
    return kernel_info_content(
        threads=kernel.threads, debugger=kernel.debugger.available, backend=kernel.backend_detail
    )


def connect_request(kernel: KernelHost, request: Request) -> Content:
    info = kernel.connection_info
    names = ("shell_port", "iopub_port", "stdin_port", "hb_port", "control_port")
    ports: dict[str, Any] = {k: info[k] for k in names if k in info}
    return {"status": "ok", **ports}


def comm_info_request(kernel: KernelHost, request: Request) -> Content:
    target = request.content.get("target_name")
    comms = kernel.comm_manager.info(target if isinstance(target, str) else None)
    return {"status": "ok", "comms": comms}


def usage_request(kernel: KernelHost, request: Request) -> Content:
    import psutil

    process = psutil.Process(os.getpid())
    with process.oneshot():
        cpu = process.cpu_percent(interval=0.05)
        memory = process.memory_info().rss
    return {
        "status": "ok",
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "kernel_cpu": cpu,
        "kernel_memory": memory,
        "host_cpu_percent": psutil.cpu_percent(),
        "cpu_count": psutil.cpu_count(),
        "host_virtual_memory": dict(psutil.virtual_memory()._asdict()),
    }


def complete_request(kernel: KernelHost, request: Request) -> Content:
    shell = kernel.shell
    assert shell is not None
    code = str(request.content.get("code", ""))
    cursor_pos = request.content.get("cursor_pos")
    cursor = len(code) if not isinstance(cursor_pos, int) else max(0, min(cursor_pos, len(code)))
    # No provisionalcompleter() here: its catch_warnings() races with other threads' (the
    # kernel ignores ProvisionalCompleterWarning once, at start). jedi is not thread-safe:
    # completions (on any subshell) and the warm-up take turns (see cokernel.shell._warmup).
    with JEDI_LOCK:
        completions = list(rectify_completions(code, shell.Completer.completions(code, cursor)))
    if completions:
        start, end = completions[0].start, completions[0].end
    else:
        start = end = cursor
    return {
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
    }


# IPython's inspector is not thread-safe: its code formatter keeps per-call state on one shared
# PyColorize parser ("'str' object has no attribute 'write'"), and pygments loads its lexers
# lazily (two first inspections at once fail with ImportError). inspect_request runs in worker
# threads, so inspections take turns.
_inspecting = threading.Lock()


def inspect_request(kernel: KernelHost, request: Request) -> Content:
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
    return {"status": "ok", "found": found, "data": data, "metadata": {}}


def is_complete_request(kernel: KernelHost, request: Request) -> Content:
    shell = kernel.shell
    assert shell is not None
    status, indent = shell.input_transformer_manager.check_complete(
        str(request.content.get("code", ""))
    )
    content: dict[str, Any] = {"status": status}
    if status == "incomplete":
        content["indent"] = " " * (indent or 0)
    return content


def history_request(kernel: KernelHost, request: Request) -> Content:
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
        return error_content(ValueError(f"unknown hist_access_type {kind!r}")) | {"history": []}
    return {"status": "ok", "history": [list(item) for item in items]}


# -- control ------------------------------------------------------------------------------------
def interrupt_request(kernel: KernelHost, request: Request) -> Content:
    kernel.interrupt()
    return {"status": "ok"}


def shutdown_request(kernel: KernelHost, request: Request) -> Reply:
    restart = bool(request.content.get("restart", False))

    def after_the_reply() -> None:
        kernel.publish("shutdown_reply", {"status": "ok", "restart": restart}, request)
        kernel.request_shutdown(restart)

    return Reply({"status": "ok", "restart": restart}, then=after_the_reply)


async def debug_request(kernel: KernelHost, request: Request) -> Content:
    return await kernel.debugger.handle(request)


# -- subshells ----------------------------------------------------------------------------------
def create_subshell_request(kernel: KernelHost, request: Request) -> Content:
    wanted = request.content.get("namespace")
    if wanted not in (None, "shared", "own"):
        return error_content(ValueError(f"namespace must be 'shared' or 'own', not {wanted!r}"))
    subshell = kernel.subshells.create(own_namespace=None if wanted is None else wanted == "own")
    return {"status": "ok", "subshell_id": subshell.subshell_id}


def delete_subshell_request(kernel: KernelHost, request: Request) -> Content:
    subshell_id = request.content.get("subshell_id")
    try:
        subshell = kernel.subshells.get(str(subshell_id))
    except SubshellNotFound as e:
        return error_content(e)
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
        return error_content(e)
    return {"status": "ok"}


def list_subshell_request(kernel: KernelHost, request: Request) -> Content:
    return {"status": "ok", "subshell_id": kernel.subshells.ids()}


# -- comms --------------------------------------------------------------------------------------
def _in_shell_context(kernel: KernelHost, fn: Any, *args: Any) -> None:
    """Run a comm handler in the context of the shell whose loop thread runs it (widget
    callbacks see what cells set, like ``decimal`` precision); on any other thread (a
    stand-in for a blocked loop), in its own."""
    context = kernel.shell.context_here() if kernel.shell is not None else None
    if context is None:
        fn(*args)
    else:
        context.run(fn, *args)


def comm_open(kernel: KernelHost, request: Request) -> None:
    _in_shell_context(kernel, kernel.comm_manager.handle_open, request.msg)


def comm_msg(kernel: KernelHost, request: Request) -> None:
    _in_shell_context(kernel, kernel.comm_manager.handle_msg, request.msg)


def comm_close(kernel: KernelHost, request: Request) -> None:
    _in_shell_context(kernel, kernel.comm_manager.handle_close, request.msg)


_direct, _queue, _thread = RunMode.direct, RunMode.queue, RunMode.thread

#: Every message type the kernel serves: its handler, run mode and lane
#: (:mod:`cokernel.engine._dispatch` says what the run modes mean).
HANDLERS = HandlerTable(
    {
        MsgType.kernel_info_request: Handler(kernel_info_request, _direct, "kernel_info_request"),
        MsgType.connect_request: Handler(connect_request, _direct, "connect_request"),
        MsgType.comm_info_request: Handler(comm_info_request, _direct, "comm_info_request"),
        MsgType.interrupt_request: Handler(interrupt_request, _direct, "interrupt_request"),
        MsgType.shutdown_request: Handler(shutdown_request, _direct, "shutdown_request"),
        MsgType.comm_open: Handler(comm_open, _queue, "comm"),
        MsgType.comm_msg: Handler(comm_msg, _queue, "comm"),
        MsgType.comm_close: Handler(comm_close, _queue, "comm"),
        # queue by default; a cell may choose task or thread (cokernel.engine._dispatch)
        MsgType.execute_request: Handler(execute_request, _queue, "execute_request"),
        MsgType.complete_request: Handler(complete_request, _thread, "complete_request"),
        MsgType.inspect_request: Handler(inspect_request, _thread, "inspect_request"),
        MsgType.is_complete_request: Handler(is_complete_request, _thread, "is_complete_request"),
        MsgType.history_request: Handler(history_request, _thread, "history_request"),
        MsgType.usage_request: Handler(usage_request, _thread, "usage_request", control_only=True),
        MsgType.debug_request: Handler(debug_request, _queue, "debug_request", control_only=True),
        MsgType.create_subshell_request: Handler(
            create_subshell_request, _thread, "create_subshell_request", control_only=True
        ),
        MsgType.delete_subshell_request: Handler(
            delete_subshell_request, _thread, "delete_subshell_request", control_only=True
        ),
        MsgType.list_subshell_request: Handler(
            list_subshell_request, _direct, "list_subshell_request", control_only=True
        ),
    }
)
