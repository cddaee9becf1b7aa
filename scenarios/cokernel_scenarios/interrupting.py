"""What the three interrupt scenarios share: run a cell, interrupt it once it runs, go on.

A frontend interrupts the way the kernelspec asks (``interrupt_request`` on control, or SIGINT);
the interrupted cell must reply ``error`` with ``ename`` ``KeyboardInterrupt``, and the next
cell must run normally.
"""

from __future__ import annotations

from typing import ClassVar

from cokernel_harness.frontend import Frontend
from cokernel_harness.messages import WaitTimeout
from cokernel_scenarios.gate import STARTED
from cokernel_scenarios.scenario import (
    PATIENCE,
    PYTHON,
    Scenario,
    ScenarioFailure,
    expect,
    expect_ok,
    last,
    wait_for_output,
)

# Every interrupted body ends on its own after this long, so a kernel that ignores the
# interrupt fails the scenario without staying busy for good.
BODY_LIMIT = 120


class InterruptScenario(Scenario):
    """Interrupt a cell running :attr:`body` (after it printed that it started)."""

    requires = PYTHON | {"interrupt"}
    body: ClassVar[str]

    async def run(self, fe: Frontend) -> None:
        cell = fe.execute(f"print({STARTED!r}, flush=True)\n{self.body}")
        await wait_for_output(fe, cell, STARTED, what="the cell to start")
        await fe.interrupt()
        try:
            reply = await fe.reply(cell, timeout=PATIENCE)
        except WaitTimeout:
            raise ScenarioFailure(
                "the interrupted cell to reply", f"no execute_reply within {PATIENCE:g} s", last(fe)
            ) from None
        expect(
            reply.get("status") == "error" and reply.get("ename") == "KeyboardInterrupt",
            "status 'error' with ename 'KeyboardInterrupt'",
            f"status {reply.get('status')!r} ename {reply.get('ename')!r}",
            fe,
        )
        await fe.collect(cell, timeout=PATIENCE)
        after = await fe.run("print('still alive')", timeout=PATIENCE + 20)
        expect_ok(after, "the cell after the interrupt", fe)
        expect(
            "still alive" in after.stdout,
            "the next cell to print 'still alive'",
            f"stdout {after.stdout!r}",
            fe,
        )
