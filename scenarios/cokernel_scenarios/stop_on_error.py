"""After a cell fails, the cells queued behind it are aborted; with stop_on_error=False not.

The failing cell blocks on a gate until the cells behind it have been sent, so they are
queued in the kernel when the error happens. A cell sent after the error's reply runs again.
"""

from __future__ import annotations

from cokernel_harness.frontend import Frontend
from cokernel_scenarios.gate import Gate, start_blocking_cell
from cokernel_scenarios.scenario import PYTHON, Scenario, expect, expect_ok

FAIL = "raise ValueError('harness: planned failure')\n"


class StopOnError(Scenario):
    name = "stop_on_error"
    description = "queued cells after an error are aborted; stop_on_error=False doesn't abort"
    requires = PYTHON

    async def run(self, fe: Frontend) -> None:
        await self._aborts_queued(fe)
        await self._keeps_queued(fe)

    async def _aborts_queued(self, fe: Frontend) -> None:
        with Gate() as gate:
            failing = await start_blocking_cell(fe, gate, then=FAIL)
            queued = [fe.execute(f"print('queued {i} ran')") for i in (1, 2)]
            await gate.open_after_sending(fe)
            failed = await fe.collect(failing)
        expect(
            failed.reply.get("status") == "error" and failed.reply.get("ename") == "ValueError",
            "the failing cell to reply error ValueError",
            f"status {failed.reply.get('status')!r} ename {failed.reply.get('ename')!r}",
            fe,
        )
        results = [await fe.collect(msg_id) for msg_id in queued]
        statuses = [r.reply.get("status") for r in results]
        expect(
            statuses == ["aborted", "aborted"],
            "both cells queued behind the error to reply 'aborted'",
            f"statuses {statuses}",
            fe,
        )
        ran = [r.stdout for r in results if r.stdout]
        expect(not ran, "aborted cells to print nothing", f"stdout {ran}", fe)
        after = await fe.run("print('after the abort')")
        expect_ok(after, "a cell sent after the error's reply", fe)

    async def _keeps_queued(self, fe: Frontend) -> None:
        with Gate() as gate:
            failing = await start_blocking_cell(fe, gate, then=FAIL, stop_on_error=False)
            queued = fe.execute("print('queued cell ran')")
            await gate.open_after_sending(fe)
            failed = await fe.collect(failing)
        expect(
            failed.reply.get("status") == "error",
            "the failing cell (stop_on_error=False) to reply error",
            f"status {failed.reply.get('status')!r}",
            fe,
        )
        result = await fe.collect(queued)
        expect_ok(result, "the cell queued behind an error with stop_on_error=False", fe)
        expect(
            "queued cell ran" in result.stdout,
            "the queued cell to print 'queued cell ran'",
            f"stdout {result.stdout!r}",
            fe,
        )
