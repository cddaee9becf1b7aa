"""shutdown_request on control while a cell blocks: the reply arrives and the process exits."""

from __future__ import annotations

from cokernel_harness.frontend import Frontend
from cokernel_scenarios.ending import shut_down_while_blocked
from cokernel_scenarios.scenario import PYTHON, Scenario


class ShutdownWhileBusy(Scenario):
    name = "shutdown_while_busy"
    description = "shutdown_request on control during a blocking cell: reply, then process exit"
    requires = PYTHON | {"process"}
    ends_kernel = True

    async def run(self, fe: Frontend) -> None:
        await shut_down_while_blocked(fe, restart=False)
