"""A simulated JupyterLab debugger: DAP inside ``debug_request``/``debug_reply`` and ``debug_event``.

:class:`DebugClient` sits on a :class:`~cokernel_harness.frontend.Frontend` and speaks what
JupyterLab's debugger extension speaks, in the order it does::

    debugger = DebugClient(fe)
    await debugger.start()    # debugInfo, initialize (+ a debugInfo behind it), attach, debugInfo
    path = await debugger.set_breakpoints(CODE, [2])   # dumpCell, debugInfo, setBreakpoints
    await debugger.configuration_done()
    cell = fe.execute(CODE)
    stop = await debugger.wait_stopped()      # the "stopped" debug_event
    frames = await debugger.stack(stop["threadId"])
    ...
    await debugger.continue_(stop["threadId"])

Like JupyterLab, it computes each cell's file name itself from the ``debugInfo`` reply (prefix,
MurmurHash2 of the cell text with the announced seed, suffix) and checks that ``dumpCell``
agrees, so a kernel whose naming differs fails here as its breakpoints would fail in JupyterLab.

Like JupyterLab's debugger session, it keeps a "started" state (:attr:`DebugClient.started`):
a successful ``initialize`` sets it, and every ``debugInfo`` reply overwrites it with its
``isStarted``. The page asks ``debugInfo`` while its ``initialize`` is pending (recorded from
JupyterLab 4.6: ``tests/fixtures/jupyterlab-4.6/debugger.jsonl``), so :meth:`DebugClient.start`
does too; and where the page would silently drop a breakpoint because it believes the debugger
off, :meth:`DebugClient.set_breakpoints` fails, saying so.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from cokernel_harness.frontend import Frontend

#: The arguments JupyterLab's debugger sends with ``initialize``.
INITIALIZE_ARGUMENTS: dict[str, Any] = {
    "clientID": "jupyterlab",
    "clientName": "JupyterLab",
    "adapterID": "python",
    "pathFormat": "path",
    "linesStartAt1": True,
    "columnsStartAt1": True,
    "supportsVariableType": True,
    "supportsVariablePaging": True,
    "supportsRunInTerminalRequest": True,
    "locale": "en",
}


class DebugRequestFailed(AssertionError):
    """A debug request was answered with ``success: false``; the message is the kernel's."""


def murmur2(text: str, seed: int) -> int:
    """MurmurHash2 (32 bit) of the UTF-8 bytes of ``text``: JupyterLab's cell hash."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    data = text.encode("utf-8")
    h = (seed ^ len(data)) & mask
    blocks, rest = divmod(len(data), 4)
    for n in range(blocks):
        k = int.from_bytes(data[4 * n : 4 * n + 4], "little") * m & mask
        k = (k ^ (k >> 24)) * m & mask
        h = (h * m & mask) ^ k
    if rest:
        h = (h ^ int.from_bytes(data[4 * blocks :], "little")) * m & mask
    h = (h ^ (h >> 13)) * m & mask
    return h ^ (h >> 15)


class DebugClient:
    """JupyterLab's debugger, played over one :class:`Frontend`'s control and iopub channels."""

    def __init__(self, fe: Frontend) -> None:
        self.fe = fe
        self._seq = itertools.count(1)
        self.info: dict[str, Any] = {}  # the last debugInfo body
        self.capabilities: dict[str, Any] = {}
        #: What JupyterLab's session believes: set by initialize, overwritten by each debugInfo.
        self.started = False

    # -- raw DAP ----------------------------------------------------------------------------
    def send(self, command: str, arguments: dict[str, Any] | None = None) -> str:
        """Send one DAP request in a ``debug_request`` without waiting; returns its msg_id."""
        dap = {
            "type": "request",
            "seq": next(self._seq),
            "command": command,
            "arguments": arguments or {},
        }
        return self.fe.send("control", "debug_request", dap)

    async def response(self, msg_id: str, *, timeout: float = 30.0) -> dict[str, Any]:
        """The DAP response to the request sent as ``msg_id`` (any outcome)."""
        response = await self.fe.reply(msg_id, timeout=timeout)
        command = response.get("command")
        if command == "debugInfo" and response.get("success") is True:
            self.started = (response.get("body") or {}).get("isStarted") is True
        elif command == "initialize" and response.get("success") is True:
            self.started = True
        elif command == "disconnect":
            self.started = False
        return response

    async def request(
        self, command: str, arguments: dict[str, Any] | None = None, *, timeout: float = 30.0
    ) -> dict[str, Any]:
        """Send one DAP request in a ``debug_request``; return the DAP response (any outcome)."""
        return await self.response(self.send(command, arguments), timeout=timeout)

    async def call(
        self, command: str, arguments: dict[str, Any] | None = None, *, timeout: float = 30.0
    ) -> dict[str, Any]:
        """Like :meth:`request`, but return the body and raise :class:`DebugRequestFailed`
        unless the kernel answered ``success: true``."""
        return self._body(await self.request(command, arguments, timeout=timeout))

    @staticmethod
    def _body(response: dict[str, Any]) -> dict[str, Any]:
        """The body of a successful response; :class:`DebugRequestFailed` for any other."""
        if response.get("success") is not True:
            raise DebugRequestFailed(
                f"debug request {response.get('command')!r} failed: "
                f"{response.get('message', response)}"
            )
        body: dict[str, Any] = response.get("body") or {}
        return body

    def mark(self) -> int:
        """A position in the frontend's log: events after it are "new"."""
        return len(self.fe.log)

    def events(self, name: str | None = None, *, start: int = 0) -> list[dict[str, Any]]:
        """The debug events received from ``start`` on (of one name, if given)."""
        return [
            m.content
            for m in self.fe.log[start:]
            if m.msg_type == "debug_event" and (name is None or m.content.get("event") == name)
        ]

    async def wait_event(
        self,
        name: str,
        *,
        start: int = 0,
        where: Callable[[dict[str, Any]], bool] | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """The first ``debug_event`` called ``name`` (logged at ``start`` or later)."""
        message = await self.fe.wait_for(
            lambda m: (
                m.msg_type == "debug_event"
                and m.content.get("event") == name
                and (where is None or where(m.content))
            ),
            start=start,
            timeout=timeout,
            what=f"debug_event {name!r}",
        )
        return message.content

    # -- JupyterLab's sequence --------------------------------------------------------------
    async def start(self) -> dict[str, Any]:
        """Turn the debugger on as JupyterLab does; returns the debugInfo body after attach.

        The page's own ``debugInfo`` (when the notebook's kernel or widget changes) can go out
        while ``initialize`` is pending; one is sent right behind it here. Its answer decides,
        as in the page, whether the debugger counts as started.
        """
        await self.debug_info()  # JupyterLab asks first whether a session is already running
        initialize = self.send("initialize", INITIALIZE_ARGUMENTS)
        behind = self.send("debugInfo")
        self.capabilities = self._body(await self.response(initialize))
        self.info = self._body(await self.response(behind))
        if not self.started:
            raise DebugRequestFailed(
                "debugInfo asked right after initialize says isStarted false: JupyterLab "
                "then believes its debugger off (no modules, no exception filters, every "
                "breakpoint dropped)"
            )
        await self.call("attach", {})
        return await self.debug_info()

    async def debug_info(self) -> dict[str, Any]:
        self.info = await self.call("debugInfo")
        return self.info

    def cell_path(self, code: str) -> str:
        """The file name JupyterLab gives a cell: computed from debugInfo, not asked for."""
        if not self.info:
            raise DebugRequestFailed("no debugInfo yet: call start() or debug_info() first")
        if self.info.get("hashMethod") != "Murmur2":
            raise DebugRequestFailed(f"unknown hashMethod {self.info.get('hashMethod')!r}")
        digest = murmur2(code, int(self.info["hashSeed"]))
        return f"{self.info['tmpFilePrefix']}{digest}{self.info['tmpFileSuffix']}"

    async def set_breakpoints(self, code: str, lines: list[int]) -> str:
        """dumpCell, debugInfo, then setBreakpoints on its lines, as JupyterLab's
        ``updateBreakpoints`` does; returns the cell's file name."""
        if not self.started:
            raise DebugRequestFailed(
                "JupyterLab drops breakpoints while its debugger session is not started "
                f"(the last debugInfo said isStarted {self.info.get('isStarted')!r})"
            )
        path = str((await self.call("dumpCell", {"code": code}))["sourcePath"])
        expected = self.cell_path(code)
        if path != expected:
            raise DebugRequestFailed(
                f"dumpCell wrote {path!r}, but JupyterLab computes {expected!r} from debugInfo: "
                "breakpoints set in the page would never be hit"
            )
        await self.debug_info()  # the page restores its state from the kernel's first
        body = await self.call(
            "setBreakpoints",
            {
                "source": {"path": path},
                "breakpoints": [{"line": line} for line in lines],
                "lines": lines,
                "sourceModified": False,
            },
        )
        unverified = [b for b in body.get("breakpoints", []) if not b.get("verified")]
        if unverified:
            raise DebugRequestFailed(f"breakpoints not verified: {unverified}")
        return path

    async def configuration_done(self) -> None:
        await self.call("configurationDone")

    async def wait_stopped(self, *, start: int = 0, timeout: float = 30.0) -> dict[str, Any]:
        """The body of the next ``stopped`` event (from log position ``start``)."""
        event = await self.wait_event("stopped", start=start, timeout=timeout)
        body: dict[str, Any] = event.get("body") or {}
        return body

    async def stack(self, thread_id: int) -> list[dict[str, Any]]:
        body = await self.call("stackTrace", {"threadId": thread_id, "startFrame": 0, "levels": 20})
        return list(body.get("stackFrames", []))

    async def scopes(self, frame_id: int) -> list[dict[str, Any]]:
        return list((await self.call("scopes", {"frameId": frame_id})).get("scopes", []))

    async def variables(self, reference: int) -> list[dict[str, Any]]:
        body = await self.call("variables", {"variablesReference": reference})
        return list(body.get("variables", []))

    async def locals(self, frame_id: int) -> dict[str, dict[str, Any]]:
        """The variables of the frame's first scope (Locals), by name, as the panel shows them."""
        scopes = await self.scopes(frame_id)
        if not scopes:
            raise DebugRequestFailed(f"frame {frame_id} has no scopes")
        return {v["name"]: v for v in await self.variables(int(scopes[0]["variablesReference"]))}

    async def rich_inspect(self, name: str, frame_id: int | None = None) -> dict[str, Any]:
        arguments: dict[str, Any] = {"variableName": name}
        if frame_id is not None:
            arguments["frameId"] = frame_id
        return await self.call("richInspectVariables", arguments)

    async def step(self, command: str, thread_id: int) -> None:
        """``next``, ``stepIn`` or ``stepOut`` on the thread."""
        await self.call(command, {"threadId": thread_id})

    async def continue_(self, thread_id: int) -> None:
        await self.call("continue", {"threadId": thread_id})

    async def stop(self) -> None:
        """Turn the debugger off (``disconnect``), as JupyterLab's toggle does."""
        await self.call("disconnect", {"restart": False, "terminateDebuggee": False})
