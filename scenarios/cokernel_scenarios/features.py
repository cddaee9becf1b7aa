"""What a kernel offers, as the feature names scenarios require.

Learned from the protocol only: ``kernel_info`` (language, ``supported_features``, the
``debugger`` flag), the transport (can it interrupt, is there a process and a connection file),
and for Python kernels one silent execute whose ``user_expressions`` ask which packages import.

============== ====================================================================
feature        offered when
============== ====================================================================
python         ``language_info.name`` is ``python`` (scenario cells are Python)
stdin          a Python kernel (``input()`` goes through the stdin channel)
asyncio        cells run with an asyncio loop running (top-level ``await`` on asyncio)
trio           cells run on trio (sniffio says so)
anyio          ``anyio`` imports and cells run on a loop it supports (asyncio or trio)
comms          the ``comm`` package imports in the kernel
ipywidgets     ``ipywidgets`` imports in the kernel
ipython        ``IPython`` imports (``display``, ``clear_output``)
subshells      ``kernel subshells`` is in ``supported_features`` (JEP 91)
debugger       ``debugger`` is in ``supported_features`` or ``kernel_info.debugger`` is true
interrupt      the kernelspec interrupts by message, the harness launched the process, or
               a server interrupts it (REST, the websocket transport)
process        the harness launched the kernel process (it can watch it exit, restart it)
connection_file other clients can attach through a connection file
============== ====================================================================
"""

from __future__ import annotations

from typing import Any

from cokernel_harness.frontend import Frontend

# Package probes evaluated as user_expressions; each must be a plain expression.
_IMPORTABLE = "__import__('importlib.util').util.find_spec({!r}) is not None"
_LIBRARY = "__import__('sniffio').current_async_library()"
PROBES: dict[str, str] = {
    "asyncio": "__import__('asyncio').get_running_loop() is not None",
    "trio": f"{_LIBRARY} == 'trio'",
    "anyio": f"{_IMPORTABLE.format('anyio')} and {_LIBRARY} in ('asyncio', 'trio')",
    "comms": _IMPORTABLE.format("comm"),
    "ipywidgets": _IMPORTABLE.format("ipywidgets"),
    "ipython": _IMPORTABLE.format("IPython"),
}

# supported_features spelling (kernel protocol 5.5) -> our feature name
_SUPPORTED = {"kernel subshells": "subshells", "debugger": "debugger"}


def features_from_kernel_info(info: dict[str, Any]) -> set[str]:
    """The features a kernel_info reply declares."""
    found: set[str] = set()
    language = (info.get("language_info") or {}).get("name", "")
    if str(language).lower() == "python":
        found |= {"python", "stdin"}
    for declared in info.get("supported_features") or []:
        found.add(_SUPPORTED.get(str(declared), str(declared)))
    if info.get("debugger") is True:
        found.add("debugger")
    return found


def features_from_transport(fe: Frontend) -> set[str]:
    """The features that depend on how the harness reaches the kernel."""
    transport = fe.transport
    found: set[str] = set()
    launched = transport.kernel_pid() is not None
    if launched:
        found.add("process")
    if transport.interrupt_mode in ("message", "server") or launched:
        found.add("interrupt")
    if transport.connection_file_path() is not None:
        found.add("connection_file")
    return found


async def probe_features(fe: Frontend, *, timeout: float = 30.0) -> frozenset[str]:
    """Every feature ``fe``'s kernel offers (one kernel_info, one silent execute)."""
    info = await fe.kernel_info(timeout=timeout)
    found = features_from_kernel_info(info) | features_from_transport(fe)
    if "python" in found:
        run = await fe.run(
            "", silent=True, store_history=False, user_expressions=PROBES, timeout=timeout
        )
        answers = run.reply.get("user_expressions") or {}
        for feature in PROBES:
            answer = answers.get(feature) or {}
            if answer.get("status") == "ok" and answer.get("data", {}).get("text/plain") == "True":
                found.add(feature)
    return frozenset(found)
