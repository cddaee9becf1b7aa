"""The debug requests the kernel answers itself, without debugpy.

``debugInfo`` (JupyterLab asks it at every kernel start, before any ``initialize``),
``dumpCell``, ``source`` of a file the kernel can read, ``modules``, ``inspectVariables``,
``richInspectVariables`` and ``copyToGlobals``. Each takes the debugger session (:class:`Session`)
and the DAP request and returns the DAP response; a :class:`DebuggerError`
becomes a failed response. The last two run an expression in a held frame through debugpy's
``evaluate``.
"""

from __future__ import annotations

import linecache
import sys
import uuid
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from cokernel.debugger._host import DebugHost
from cokernel.shell import _cellfiles as cellfiles


class DebuggerError(Exception):
    """A debug request could not be served; the message goes back in the DAP response."""


class Session(Protocol):
    """What these answers need of :class:`~cokernel.debugger._debugger.Debugger`."""

    session_id: str
    kernel: DebugHost
    attached: bool
    breakpoints: dict[str, list[dict[str, Any]]]
    stopped_threads: set[int]
    # Rich representations computed on a held thread for richInspectVariables, by token.
    rich_results: dict[str, tuple[dict[str, Any], dict[str, Any]]]

    @property
    def started(self) -> bool: ...

    def response(
        self,
        dap: dict[str, Any],
        *,
        success: bool = True,
        body: dict[str, Any] | None = None,
        message: str | None = None,
    ) -> dict[str, Any]: ...

    async def off_loop(self, fn: Callable[..., Any], *args: Any) -> Any: ...

    async def forward(self, dap: dict[str, Any]) -> dict[str, Any]: ...

    async def ask(self, command: str, arguments: dict[str, Any]) -> dict[str, Any]: ...


# The debugger sessions of this process's kernels, by session_id: the only way for code
# evaluated in a held frame (stash_rich) to reach its own kernel's debugger. Each session keeps
# its own results and formats with its own kernel's shell.
sessions: weakref.WeakValueDictionary[str, Session] = weakref.WeakValueDictionary()


def stash_rich(session_id: str, token: str, value: Any) -> None:
    """Format ``value`` for display and keep it under ``token`` in session ``session_id``
    (called inside debugpy's ``evaluate``, on the held thread, in the frame being inspected)."""
    session = sessions.get(session_id)
    shell = session.kernel.shell if session is not None else None
    if session is None or shell is None:
        raise RuntimeError("no shell to format with")
    data, metadata = shell.display_formatter.format(value)
    session.rich_results[token] = (data, metadata)


async def debug_info(dbg: Session, dap: dict[str, Any]) -> dict[str, Any]:
    body = {
        # Started means "initialize succeeded", as for ipykernel, not "attached": JupyterLab
        # sets its session's started state from every debugInfo reply, and it asks debugInfo
        # while its initialize is pending. Answered "not yet" between initialize and attach,
        # the page believes its debugger off and drops breakpoints (docs/debugger.md).
        "isStarted": dbg.started,
        "hashMethod": cellfiles.HASH_METHOD,
        "hashSeed": cellfiles.HASH_SEED,
        "tmpFilePrefix": cellfiles.CELL_PREFIX,
        "tmpFileSuffix": cellfiles.CELL_SUFFIX,
        "breakpoints": [
            {"source": path, "breakpoints": bps} for path, bps in dbg.breakpoints.items()
        ],
        "stoppedThreads": sorted(dbg.stopped_threads),
        "richRendering": True,
        "exceptionPaths": ["Python Exceptions"],
        "copyToGlobals": True,
    }
    return dbg.response(dap, body=body)


async def dump_cell(dbg: Session, dap: dict[str, Any]) -> dict[str, Any]:
    code = (dap.get("arguments") or {}).get("code")
    if not isinstance(code, str):
        raise DebuggerError("dumpCell needs arguments.code (the cell's text)")
    path = await dbg.off_loop(cellfiles.write_cell, code)
    return dbg.response(dap, body={"sourcePath": path})


async def source(dbg: Session, dap: dict[str, Any]) -> dict[str, Any]:
    path = str(((dap.get("arguments") or {}).get("source") or {}).get("path", ""))
    if path:
        content = await dbg.off_loop(_read_source, path)
        if content is not None:
            return dbg.response(dap, body={"content": content})
    if dbg.attached:
        return await dbg.forward(dap)
    raise DebuggerError(f"no source for {path or 'that reference'}")


async def modules(dbg: Session, dap: dict[str, Any]) -> dict[str, Any]:
    arguments = dap.get("arguments") or {}
    found = [
        {"id": name, "name": name, "path": path}
        for name, module in list(sys.modules.items())
        if isinstance(path := getattr(module, "__file__", None), str)
    ]
    start = int(arguments.get("startModule", 0) or 0)
    count = int(arguments.get("moduleCount", 0) or 0)
    chosen = found[start : start + count] if count > 0 else found[start:]
    return dbg.response(dap, body={"modules": chosen, "totalModules": len(found)})


def _namespace(dbg: Session) -> dict[str, Any]:
    shell = dbg.kernel.shell
    if shell is None:
        raise DebuggerError("the kernel's shell is not running")
    return dict(shell.user_ns)


async def inspect_variables(dbg: Session, dap: dict[str, Any]) -> dict[str, Any]:
    shell = dbg.kernel.shell
    hidden = set(getattr(shell, "user_ns_hidden", {}) or {})
    namespace = _namespace(dbg)

    def describe() -> list[dict[str, Any]]:
        found = []
        for name, value in namespace.items():
            if name.startswith("_") or name in hidden or type(value).__name__ == "module":
                continue
            try:
                shown = repr(value)
            except Exception as e:
                shown = f"<repr failed: {type(e).__name__}>"
            found.append(
                {
                    "name": name,
                    "value": shown if len(shown) <= 200 else shown[:197] + "...",
                    "type": type(value).__qualname__,
                    "evaluateName": name,
                    "variablesReference": 0,
                }
            )
        return found

    # repr() is user code: off the control loop, which must stay responsive.
    variables = await dbg.off_loop(describe)
    return dbg.response(dap, body={"variables": variables})


async def rich_inspect(dbg: Session, dap: dict[str, Any]) -> dict[str, Any]:
    arguments = dap.get("arguments") or {}
    name = str(arguments.get("variableName", ""))
    frame_id = arguments.get("frameId")
    if not name:
        raise DebuggerError("richInspectVariables needs arguments.variableName")
    if frame_id is not None and dbg.attached and dbg.stopped_threads:
        # Formatted in the held frame by debugpy's evaluate, on the held thread; the
        # bundle comes back through rich_results, not through a repr of it.
        token = uuid.uuid4().hex
        expression = (
            f"__import__('cokernel.debugger._answers', fromlist=['stash_rich'])"
            f".stash_rich({dbg.session_id!r}, {token!r}, ({name}))"
        )
        answer = await dbg.ask(
            "evaluate", {"expression": expression, "frameId": frame_id, "context": "repl"}
        )
        found = dbg.rich_results.pop(token, None)
        if not answer.get("success") or found is None:
            detail = answer.get("message") or (answer.get("body") or {}).get("result")
            raise DebuggerError(f"cannot inspect {name!r} in that frame: {detail}")
        data, metadata = found
    else:
        if not name.isidentifier():
            raise DebuggerError(f"{name!r} is not a variable name")
        namespace = _namespace(dbg)
        if name not in namespace:
            raise DebuggerError(f"no variable {name!r} in the kernel's namespace")
        shell = dbg.kernel.shell
        assert shell is not None
        data, metadata = await dbg.off_loop(shell.display_formatter.format, namespace[name])
    return dbg.response(dap, body={"data": data, "metadata": metadata})


async def copy_to_globals(dbg: Session, dap: dict[str, Any]) -> dict[str, Any]:
    arguments = dap.get("arguments") or {}
    source = str(arguments.get("srcVariableName", ""))
    target = str(arguments.get("dstVariableName", ""))
    frame_id = arguments.get("srcFrameId")
    if not source or not target.isidentifier() or frame_id is None:
        raise DebuggerError(
            "copyToGlobals needs srcVariableName, srcFrameId and an identifier as dstVariableName"
        )
    expression = f"globals().__setitem__({target!r}, ({source}))"
    answer = await dbg.ask(
        "evaluate", {"expression": expression, "frameId": frame_id, "context": "repl"}
    )
    if not answer.get("success"):
        raise DebuggerError(f"cannot copy {source!r}: {answer.get('message')}")
    return dbg.response(dap)


def _read_source(path: str) -> str | None:
    """The text of ``path``, from the file or (a cell never dumped) from linecache."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        lines = linecache.getlines(path)
        return "".join(lines) if lines else None
