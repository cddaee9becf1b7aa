"""cokernel_harness: simulated Jupyter frontends, benchmarks and conformance checks for any kernel.

The harness speaks only the Jupyter messaging protocol (through jupyter_client and pyzmq), so
every tool in it runs against any installed kernelspec, cokernel or not; it imports nothing
from any kernel. The names below are its public face::

    from cokernel_harness import Frontend

    async with Frontend.launch("python3") as fe:
        run = await fe.run("1 + 1")

- :class:`Frontend`: the message client, async (asyncio or trio), over a :class:`Transport`
  (:class:`ZMQTransport` for a kernelspec or a connection file; :class:`WebSocketTransport` for
  a kernel behind a Jupyter Server or a kernel gateway; a kernel may register an in-process
  one, found by name with :func:`open_transport`). It logs every
  :class:`Received` message, and a wait that runs out raises :class:`WaitTimeout`.
- :class:`BlockingClient`: the same client without an event loop, for plain synchronous code
  (pytest tests, the bench's timing loops): attach it to a started jupyter_client client
  (``BlockingClient(kc)``); it logs the same :class:`Received` records, returns the same
  :class:`Execution` and raises the same :class:`WaitTimeout`.
- :class:`Widgets`: the page's side of the ipywidgets comm protocol, over a Frontend.
- :func:`validate`: the protocol validator over a Frontend's log.
- :class:`Scenario` and :func:`run_conformance`: the scenario library
  (``cokernel_scenarios``) and its runner, with the :class:`Report` it returns.

The command line is ``cokernel-harness conformance|scenarios|bench|fuzz|soak``; the pytest
plugin (:mod:`cokernel_harness.pytest_plugin`) gives the ``frontend`` fixture. The bench's
kernels (:mod:`cokernel_harness.bench_wire`) are BlockingClients that launch and own their
kernel process.

Names are imported on first use, so that loading the pytest plugin (which pytest does in every
project where cokernel is installed) imports neither ZMQ nor the scenario library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cokernel_harness.client import BlockingClient
    from cokernel_harness.frontend import Frontend
    from cokernel_harness.messages import Execution, KernelDied, Received, WaitTimeout
    from cokernel_harness.runner import Report, run_conformance
    from cokernel_harness.transport import (
        BlockingTransport,
        Transport,
        ZMQTransport,
        open_transport,
    )
    from cokernel_harness.validator import validate
    from cokernel_harness.websocket import ServerError, WebSocketTransport
    from cokernel_harness.widgets import Widgets
    from cokernel_scenarios.scenario import Scenario

#: Where each public name lives.
_HOMES = {
    "Frontend": "cokernel_harness.frontend",
    "BlockingClient": "cokernel_harness.client",
    "Execution": "cokernel_harness.messages",
    "Transport": "cokernel_harness.transport",
    "BlockingTransport": "cokernel_harness.transport",
    "ZMQTransport": "cokernel_harness.transport",
    "open_transport": "cokernel_harness.transport",
    "Received": "cokernel_harness.messages",
    "WaitTimeout": "cokernel_harness.messages",
    "KernelDied": "cokernel_harness.messages",
    "WebSocketTransport": "cokernel_harness.websocket",
    "ServerError": "cokernel_harness.websocket",
    "Widgets": "cokernel_harness.widgets",
    "validate": "cokernel_harness.validator",
    "Scenario": "cokernel_scenarios.scenario",
    "run_conformance": "cokernel_harness.runner",
    "Report": "cokernel_harness.runner",
}

__all__ = [
    "BlockingClient",
    "BlockingTransport",
    "Execution",
    "Frontend",
    "KernelDied",
    "Received",
    "Report",
    "Scenario",
    "ServerError",
    "Transport",
    "WaitTimeout",
    "WebSocketTransport",
    "Widgets",
    "ZMQTransport",
    "open_transport",
    "run_conformance",
    "validate",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'cokernel_harness' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
