"""A kernel process that notes when each request reaches each step: the bench's timeline.

``COKERNEL_TRACE_FILE=notes.json python -m cokernel.tracing start -f FILE [options]``

Runs ``cokernel start`` after wrapping a few of the kernel's functions, each of which then
appends ``(step, thread id, perf_counter_ns, request)`` to a list; as the process exits the
list is written to ``COKERNEL_TRACE_FILE`` as JSON. ``cokernel_harness.bench_trace`` launches
it, runs round trips and prints the steps' median times. Nothing here is used by a kernel
started the usual way, and a traced kernel serves exactly as one: only the notes are added
(about a microsecond per wrapped call).

The steps, in the order a request meets them: ``poll`` (the io thread woke), ``received``,
``verified`` (signature and JSON), ``handed`` (to the loop), ``begun`` and ``busy`` (the
handler's start and its busy status queued), ``transforming`` and ``transformed`` (IPython's
input transformation; ``execute_input`` was queued before it), ``ran`` (IPython's
``run_cell_async``), ``replied`` (the reply's content built), ``idle`` (reply and idle queued),
and ``sent:TYPE`` or ``sent:status:STATE`` for each message the io thread sends. A note whose
request is None belongs to the last request its thread noted.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["TRACE_FILE", "install", "main"]

#: The environment variable naming the file the notes are written to.
TRACE_FILE = "COKERNEL_TRACE_FILE"

Note = tuple[str, int, int, Any]  # step, thread id, perf_counter_ns, request id (or frames)
_Key = Callable[[tuple[Any, ...], Any], Any]


def _nothing(args: tuple[Any, ...], result: Any) -> None:
    return None


def _request_id(args: tuple[Any, ...], result: Any) -> str:
    return str(args[1].msg_id)  # (self, request, ...)


def _wrap(
    notes: list[Note], owner: Any, name: str, steps: tuple[str | None, str | None], key: _Key
) -> None:
    """Wrap ``owner.name`` (a function) to note ``steps[0]`` before and ``steps[1]`` after."""
    original = getattr(owner, name)  # AttributeError names what was renamed
    before, after = steps
    clock, thread = time.perf_counter_ns, threading.get_ident

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if before is not None:
            notes.append((before, thread(), clock(), key(args, None)))
        result = original(*args, **kwargs)
        if after is not None:
            notes.append((after, thread(), clock(), key(args, result)))
        return result

    setattr(owner, name, wrapper)


def _wrap_async(notes: list[Note], owner: Any, name: str, after: str, key: _Key) -> None:
    """Wrap the coroutine function ``owner.name`` to note ``after`` when it has finished."""
    original = getattr(owner, name)
    clock, thread = time.perf_counter_ns, threading.get_ident

    @functools.wraps(original)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await original(*args, **kwargs)
        finally:
            notes.append((after, thread(), clock(), key(args, None)))

    setattr(owner, name, wrapper)


def install(notes: list[Note]) -> None:
    """Wrap the kernel's functions so that each appends to ``notes``; before the kernel starts
    (the handler table holds the handlers themselves once it is imported)."""
    import zmq

    import cokernel.engine._caller as caller
    import cokernel.interfaces.zmq as zmq_interface
    import cokernel.kernel._execute as execute
    import cokernel.kernel._serving as serving
    import cokernel.protocol._messages as messages
    from cokernel.shell._shell import CokernelShell

    if "cokernel.kernel._handlers" in sys.modules:
        raise RuntimeError("cokernel.kernel._handlers was imported before the tracing wraps")
    _wrap(notes, zmq.Poller, "poll", (None, "poll"), _nothing)
    _wrap(notes, zmq_interface, "recv_frames", (None, "received"), lambda a, result: result)
    _wrap(notes, zmq_interface, "send_frames", ("sent", None), lambda args, _: args[1])
    _wrap(notes, messages.Session, "deserialize", (None, "verified"), _nothing)
    _wrap(notes, caller.Caller, "call_threadsafe", (None, "handed"), _nothing)
    _wrap(notes, serving.Serving, "_begin", ("begun", "busy"), _request_id)
    _wrap(notes, serving.Serving, "_end", (None, "idle"), _request_id)
    _wrap(notes, execute, "_transform", ("transforming", "transformed"), _nothing)
    _wrap_async(notes, CokernelShell, "run_cell_async", "ran", _nothing)
    _wrap_async(notes, execute, "execute_request", "replied", _request_id)


def describe(notes: list[Note]) -> list[tuple[str, int, int, str | None]]:
    """The notes, with frames replaced by a request id (``received``) or by the message's kind
    (``sent:TYPE`` or ``sent:status:STATE``) and its parent's id (``sent``)."""
    from cokernel.protocol._messages import DELIMITER, loads

    out: list[tuple[str, int, int, str | None]] = []
    for step, thread, at, data in notes:
        if step not in ("received", "sent"):
            out.append((step, thread, at, data))
            continue
        parts = data[data.index(DELIMITER) + 2 :]
        header, parent = loads(parts[0]), loads(parts[1])
        if step == "received":
            out.append((step, thread, at, str(header["msg_id"])))
            continue
        kind = f"sent:{header['msg_type']}"
        if header["msg_type"] == "status":
            kind += f":{loads(parts[3])['execution_state']}"
        out.append((kind, thread, at, str(parent.get("msg_id"))))
    return out


def main(argv: list[str] | None = None) -> int:
    """``cokernel`` with its arguments (``start -f FILE ...``), traced."""
    target = os.environ.get(TRACE_FILE)
    if not target:
        print(f"{TRACE_FILE} must name the file the notes are written to", file=sys.stderr)
        return 2
    notes: list[Note] = []
    install(notes)
    from cokernel.cli import main as cokernel_main

    try:
        return cokernel_main(sys.argv[1:] if argv is None else argv)
    finally:
        Path(target).write_text(json.dumps(describe(notes)))


if __name__ == "__main__":
    sys.exit(main())
