"""cokernel behind a real gateway: JupyterLab's server -> Kernel Gateway -> cokernel.

The harness plays JupyterLab at the Jupyter Server's websocket: REST starts, interrupts,
restarts and shuts down kernels, every channel travels over ``/api/kernels/<id>/channels``.
The server relays all of it to the gateway (``--gateway-url``), which launches the cokernel
kernelspec. Every scenario of the library that needs no local process must pass there,
including widget await, interrupts and ``input()``; the ones that do (watching the kernel
process exit, a connection file) cannot run through a server and are reported unsupported.
"""

from __future__ import annotations

import json
import os

import pytest

from cokernel_harness.frontend import Frontend
from cokernel_harness.runner import Connect, Outcome, run_conformance
from cokernel_harness.websocket import V1_PROTOCOL, ServerError, WebSocketTransport
from cokernel_scenarios import all_scenarios, select
from conftest import Chain, Server

pytestmark = pytest.mark.anyio

KERNEL_BACKEND = os.environ.get("COKERNEL_TEST_BACKEND", "asyncio")
# Only a harness that launched the kernel process itself offers these.
LOCAL_ONLY = frozenset({"process", "connection_file"})
THROUGH_A_SERVER = frozenset(
    {
        "python",
        "stdin",
        "anyio",
        KERNEL_BACKEND,
        "comms",
        "ipywidgets",
        "ipython",
        "interrupt",
        "subshells",
        "debugger",
    }
)


def _connect(server: Server) -> Connect:
    return lambda: Frontend.connect(WebSocketTransport(server.url, "cokernel", token=server.token))


@pytest.mark.timeout(900)
async def test_scenario_library_through_server_and_gateway(chain: Chain) -> None:
    scenarios = all_scenarios()
    report = await run_conformance(
        "cokernel", scenarios, share_kernel=True, connect=_connect(chain.server)
    )
    summary = f"{report.table(width=0)}\n{report.details()}"
    assert set(report.features) == THROUGH_A_SERVER, summary
    outcomes = {r.scenario: r for r in report.results}
    for scenario in scenarios:
        result = outcomes[scenario.name]
        if scenario.requires <= THROUGH_A_SERVER:
            assert result.outcome is Outcome.passed, summary
            assert result.violations == [], summary
        else:
            assert result.outcome is Outcome.unsupported, summary
            assert scenario.requires - THROUGH_A_SERVER <= LOCAL_ONLY | {"asyncio", "trio"}
    passed = {name for name, r in outcomes.items() if r.outcome is Outcome.passed}
    # What the chain must carry, named: widget await, every interrupt, input(), subshells
    # (comms on them too) and the debugger.
    assert {
        "widget_await",
        "input_while_comms",
        "interrupt_busy",
        "interrupt_sleep",
        "interrupt_await",
        "subshell_comm",
        "debugger_breakpoint",
        "debugger_comm_while_paused",
    } <= passed


async def test_the_gateway_runs_the_kernel(chain: Chain) -> None:
    """The kernel the server hands out is one the gateway launched, and a cell runs on it."""
    transport = WebSocketTransport(chain.server.url, "cokernel", token=chain.server.token)
    async with Frontend.connect(transport) as fe:
        # Jupyter Server relays to a gateway in the legacy JSON format only.
        assert transport.subprotocol is None
        status, body = chain.gateway.get("/api/kernels")
        assert status == 200, body
        assert transport.kernel_id in {k["id"] for k in json.loads(body)}
        run = await fe.run("import os; print(os.getpid())")
        assert run.reply["status"] == "ok"
        assert int(run.stdout) != os.getpid()


async def test_restart_and_shutdown_over_rest(chain: Chain) -> None:
    transport = WebSocketTransport(chain.server.url, "cokernel", token=chain.server.token)
    async with Frontend.connect(transport) as fe:
        assert (await fe.run("before_restart = 1")).reply["status"] == "ok"
        await transport.restart()
        await fe.wait_ready()
        after = await fe.run("print('before_restart' in globals())")
        assert after.reply["status"] == "ok"
        assert after.stdout.strip() == "False"
        kernel_id = transport.kernel_id
    # close() shut the kernel down (DELETE): neither the server nor the gateway has it now.
    assert chain.server.get(f"/api/kernels/{kernel_id}")[0] == 404
    _, body = chain.gateway.get("/api/kernels")
    assert kernel_id not in {k["id"] for k in json.loads(body)}


async def test_a_wrong_token_is_refused(chain: Chain) -> None:
    transport = WebSocketTransport(chain.server.url, "cokernel", token="not-the-token")
    with pytest.raises(ServerError, match="403"):
        await transport.start()
    await transport.close()


@pytest.mark.timeout(300)
async def test_v1_protocol_against_a_plain_server(plain_server: Server) -> None:
    """Without a gateway the server speaks v1 binary frames: the same scenarios pass over it."""
    probe = WebSocketTransport(plain_server.url, "cokernel", token=plain_server.token)
    async with Frontend.connect(probe):
        assert probe.subprotocol == V1_PROTOCOL
    chosen = select(["widget_await,input_while_comms,interrupt_sleep,subshell_comm,debugger_bre"])
    report = await run_conformance(
        "cokernel", chosen, share_kernel=True, connect=_connect(plain_server)
    )
    assert report.ok, report.details()
    assert all(r.outcome is Outcome.passed for r in report.results), report.details()
