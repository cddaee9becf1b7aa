"""kernel_info on the control channel is answered while a cell blocks the interpreter."""

from __future__ import annotations

from cokernel_harness.frontend import Frontend
from cokernel_scenarios.gate import answered_while_blocked
from cokernel_scenarios.scenario import PYTHON, Scenario, expect


class ControlWhileBlocked(Scenario):
    name = "control_while_blocked"
    description = "kernel_info on control is answered before a blocking cell's reply"
    requires = PYTHON

    async def run(self, fe: Frontend) -> None:
        reply = await answered_while_blocked(
            fe, lambda: fe.send("control", "kernel_info_request"), "kernel_info on control"
        )
        expect(
            reply.msg_type == "kernel_info_reply" and "protocol_version" in reply.content,
            "a kernel_info_reply with a protocol_version",
            f"{reply.msg_type} {sorted(reply.content)}",
            fe,
        )
