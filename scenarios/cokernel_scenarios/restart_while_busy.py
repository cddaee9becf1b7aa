"""Restart while a cell blocks: shutdown_request(restart=True) on control, then a new process.

The kernel answers and exits; the frontend's launcher starts a new process on the same
connection (as jupyter_server does), and that kernel runs cells from a fresh state.
"""

from __future__ import annotations

from cokernel_harness.frontend import Frontend
from cokernel_scenarios.ending import shut_down_while_blocked
from cokernel_scenarios.scenario import PYTHON, Scenario, expect, expect_ok


class RestartWhileBusy(Scenario):
    name = "restart_while_busy"
    description = "restart during a blocking cell: reply, exit, then a fresh working kernel"
    requires = PYTHON | {"process"}
    ends_kernel = True

    async def run(self, fe: Frontend) -> None:
        await fe.run("harness_before_restart = True")
        before = fe.transport.kernel_pid()
        await shut_down_while_blocked(fe, restart=True)
        await fe.transport.restart()
        await fe.wait_ready()
        expect(
            fe.transport.kernel_pid() != before,
            "a new kernel process after the restart",
            f"pid {before} still",
            fe,
        )
        fresh = await fe.run("print('fresh:', 'harness_before_restart' not in globals())")
        expect_ok(fresh, "a cell on the restarted kernel", fe)
        expect(
            "fresh: True" in fresh.stdout and fresh.reply.get("execution_count") == 1,
            "a fresh namespace and execution_count 1",
            f"stdout {fresh.stdout!r}, execution_count {fresh.reply.get('execution_count')!r}",
            fe,
        )
