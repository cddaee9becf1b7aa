"""A comm is served while the cell that runs on the main shell is held at a breakpoint.

The page keeps talking to the kernel while the user looks at a paused cell: widgets sync, the
variables view asks. The main shell's comm lane shares its thread with that cell, which the
debugger holds; cokernel serves the lane from a stand-in thread for as long as it is held (the
held thread runs nothing meanwhile, so the two never run at once). The scenario opens an echo
comm, holds a cell at a breakpoint, sends a comm_msg and waits for the echo, reads a variable
of the held frame, then continues and checks that the cell finishes and saw the echoed count.
"""

from __future__ import annotations

from cokernel_harness.debugger import DebugClient
from cokernel_harness.frontend import Frontend
from cokernel_harness.messages import WaitTimeout
from cokernel_scenarios.scenario import (
    PATIENCE,
    PYTHON,
    Scenario,
    ScenarioFailure,
    expect,
    expect_ok,
    last,
)

TARGET = "harness.debug_echo"

SETUP = f"""\
import comm as _comm
echoed = []

def _debug_echo_open(channel, open_msg):
    def on_msg(msg):
        echoed.append(msg["content"]["data"]["ping"])
        channel.send({{"pong": msg["content"]["data"]["ping"]}})
    channel.on_msg(on_msg)

_comm.get_comm_manager().register_target({TARGET!r}, _debug_echo_open)
"""

CELL = """\
marker = "held"
print("echoes seen by the cell:", len(echoed))
"""


class DebuggerCommWhilePaused(Scenario):
    name = "debugger_comm_while_paused"
    description = "a comm_msg is answered while the main shell's cell is held at a breakpoint"
    requires = PYTHON | {"debugger", "comms"}

    async def run(self, fe: Frontend) -> None:
        expect_ok(await fe.run(SETUP), "registering the echo comm target", fe)
        comm_id = fe.comm_open(TARGET)
        # Under a profile with comms over subshells, the page has the comm's subshell by now.
        await fe.comm_ready(comm_id)
        debugger = DebugClient(fe)
        await debugger.start()
        await debugger.set_breakpoints(CELL, [2])
        await debugger.configuration_done()

        start = debugger.mark()
        cell = fe.execute(CELL)
        stop = await debugger.wait_stopped(start=start, timeout=PATIENCE)
        thread = int(stop["threadId"])
        fe.comm_msg(comm_id, {"ping": 7})
        try:
            await fe.wait_for(
                lambda m: (
                    m.msg_type == "comm_msg"
                    and m.content.get("comm_id") == comm_id
                    and m.content.get("data", {}).get("pong") == 7
                ),
                start=start,
                timeout=PATIENCE,
                what="the echo of the comm_msg sent while the cell is held",
            )
        except WaitTimeout:
            raise ScenarioFailure(
                "the comm_msg to be answered while the cell is held at its breakpoint",
                f"no echo within {PATIENCE:g} s: the comm waited behind the held cell",
                last(fe),
            ) from None
        frames = await debugger.stack(thread)
        variables = await debugger.locals(int(frames[0]["id"]))
        expect(
            variables.get("marker", {}).get("value") == "'held'",
            "the held frame's variables to answer (marker = 'held')",
            f"{ {k: v.get('value') for k, v in variables.items()} }",
            fe,
        )
        await debugger.continue_(thread)
        execution = await fe.collect(cell, timeout=PATIENCE + 20)
        expect_ok(execution, "the held cell after continue", fe)
        expect(
            "echoes seen by the cell: 1" in execution.stdout,
            "the cell, resumed, to see the echo handled while it was held",
            f"stdout {execution.stdout!r}",
            fe,
        )
        await debugger.stop()
