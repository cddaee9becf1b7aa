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
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from servers import Chain, Server

from cokernel_harness import cli
from cokernel_harness.frontend import Frontend
from cokernel_harness.profiles import JUPYTERLAB, NO_SUBSHELLS, PROFILES
from cokernel_harness.runner import Connect, Outcome, run_conformance
from cokernel_harness.websocket import V1_PROTOCOL, ServerError, WebSocketTransport
from cokernel_scenarios import all_scenarios, select

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


# Unsupported through a server, each for a reason of its own: the first three need the kernel's
# process (a connection file to attach to, a process to watch exit); widget_while_blocked under
# no-subshells is unsupported by design (a page without comms over subshells queues the slider's
# messages behind the blocked cell), locally as well as remotely.
UNSUPPORTED = frozenset(
    {
        ("many_clients", ""),
        ("shutdown_while_busy", ""),
        ("restart_while_busy", ""),
        ("widget_while_blocked", NO_SUBSHELLS.name),
    }
)


@pytest.mark.timeout(1200)
async def test_scenario_library_through_server_and_gateway(chain: Chain) -> None:
    """Every scenario, comm ones under every frontend profile, through server and gateway."""
    scenarios = all_scenarios()
    report = await run_conformance(
        "cokernel", scenarios, share_kernel=True, connect=_connect(chain.server)
    )
    summary = f"{report.table(width=0)}\n{report.details()}"
    assert set(report.features) == THROUGH_A_SERVER, summary
    assert report.frontends == list(PROFILES), summary
    played: dict[tuple[str, str], Outcome] = {}
    for result in report.results:
        played[(result.scenario, result.frontend)] = result.outcome
        assert not result.violations, summary
    by_name = {scenario.name: scenario for scenario in scenarios}
    expected = {
        (scenario.name, profile if scenario.uses_comms else "")
        for scenario in scenarios
        for profile in (PROFILES if scenario.uses_comms else [""])
    }
    assert set(played) == expected, summary
    for (name, profile), outcome in played.items():
        scenario = by_name[name]
        if not scenario.requires <= THROUGH_A_SERVER:
            # Only a local process, or the other kernel backend, may be missing.
            assert scenario.requires - THROUGH_A_SERVER <= LOCAL_ONLY | {"asyncio", "trio"}
            assert outcome is Outcome.unsupported, summary
        elif (name, profile) in UNSUPPORTED:
            assert outcome is Outcome.unsupported, summary
        else:
            assert outcome is Outcome.passed, f"{name} [{profile}]: {outcome}\n{summary}"
    unsupported = {key for key, outcome in played.items() if outcome is Outcome.unsupported}
    # Apart from a scenario of the other kernel backend (background_output needs asyncio),
    # exactly the ones listed, each for its reason.
    other_backend = {
        (name, "") for name, scenario in by_name.items() if scenario.requires & {"asyncio", "trio"}
    }
    assert unsupported - other_backend == UNSUPPORTED, summary
    passed = {key for key, outcome in played.items() if outcome is Outcome.passed}
    # What the chain must carry, named: widget await (under every profile), every interrupt,
    # input(), subshells (comms on them too, and JupyterLab's comms over subshells while a cell
    # blocks) and the debugger.
    assert {
        *(("widget_await", profile) for profile in PROFILES),
        ("widget_while_blocked", JUPYTERLAB.name),
        ("input_while_comms", JUPYTERLAB.name),
        ("interrupt_busy", ""),
        ("interrupt_sleep", ""),
        ("interrupt_await", ""),
        ("subshell_comm", JUPYTERLAB.name),
        ("debugger_breakpoint", ""),
        ("debugger_comm_while_paused", JUPYTERLAB.name),
    } <= passed, summary


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


@pytest.mark.timeout(300)
async def test_the_conformance_cli_through_the_chain_with_a_frontend_profile(
    chain: Chain, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``cokernel-harness conformance --server --token --frontend``: both options at once."""
    out_file = tmp_path / "report.json"
    argv = ["conformance", "--server", chain.server.url, "--token", chain.server.token]
    argv += ["--kernel", "cokernel", "-k", "widget_while_blocked,interrupt_sleep,many_clients"]
    argv += ["--frontend", "jupyterlab", "--quiet", "--json", str(out_file)]
    # cli.main runs its own event loop: on a worker thread, beside this test's.
    status = await anyio.to_thread.run_sync(cli.main, argv)
    out = capsys.readouterr().out
    assert status == cli.EXIT_OK, out
    assert "frontends: jupyterlab" in out
    data = json.loads(out_file.read_text())
    assert data["frontends"] == ["jupyterlab"]
    assert [(r["scenario"], r["frontend"], r["outcome"]) for r in data["results"]] == [
        ("widget_while_blocked", "jupyterlab", "pass"),
        ("interrupt_sleep", "", "pass"),
        # Attaching a second client needs the kernel's connection file: not through a server.
        ("many_clients", "", "unsupported"),
    ]
