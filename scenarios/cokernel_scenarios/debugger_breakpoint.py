"""JupyterLab's debugger, start to finish: a breakpoint in a cell is hit, inspected, stepped over.

The harness plays the debugger panel's sequence (:class:`~cokernel_harness.debugger.DebugClient`):
debugInfo, initialize, attach, dumpCell and setBreakpoints on the cell's line 2, configurationDone;
then it runs the cell, waits for the ``stopped`` event, reads the call stack (only cell frames,
the kernel's own are hidden), the frame's scopes and variables, renders a variable richly, asks
kernel_info on control while the cell is held, steps with ``next``, continues, and sees the
cell finish with its output. The cell's file name is computed from debugInfo as JupyterLab does.
"""

from __future__ import annotations

from cokernel_harness.debugger import DebugClient
from cokernel_harness.frontend import Frontend
from cokernel_scenarios.scenario import PATIENCE, PYTHON, Scenario, expect, expect_ok

CELL = """\
def scale(n):
    doubled = n * 2
    return doubled
scaled = scale(21)
print("scaled", scaled)
"""


class DebuggerBreakpoint(Scenario):
    name = "debugger_breakpoint"
    description = "the JupyterLab debugger sequence: breakpoint, stack, variables, step, continue"
    requires = PYTHON | {"debugger"}

    async def run(self, fe: Frontend) -> None:
        debugger = DebugClient(fe)
        info = await debugger.start()
        expect(info.get("isStarted") is True, "debugInfo isStarted after attach", f"{info}", fe)
        path = await debugger.set_breakpoints(CELL, [2])
        await debugger.configuration_done()

        start = debugger.mark()
        cell = fe.execute(CELL)
        stop = await debugger.wait_stopped(start=start, timeout=PATIENCE)
        expect(
            stop.get("reason") == "breakpoint",
            "a stopped event with reason 'breakpoint'",
            f"{stop}",
            fe,
        )
        thread = int(stop["threadId"])
        await self._inspect_held_frame(fe, debugger, thread, path)
        await self._step_over(fe, debugger, thread)
        await debugger.continue_(thread)
        execution = await fe.collect(cell, timeout=PATIENCE + 20)
        expect_ok(execution, "the debugged cell after continue", fe)
        expect(
            "scaled 42" in execution.stdout,
            "the cell to print 'scaled 42'",
            f"stdout {execution.stdout!r}",
            fe,
        )
        await debugger.stop()

    async def _inspect_held_frame(
        self, fe: Frontend, debugger: DebugClient, thread: int, path: str
    ) -> None:
        """At the breakpoint: the stack, the frame's locals, a rich view, control answering."""
        frames = await debugger.stack(thread)
        top = frames[0] if frames else {}
        expect(
            top.get("name") == "scale" and top.get("line") == 2,
            "the top frame to be scale() at line 2",
            f"{top}",
            fe,
        )
        foreign = [f for f in frames if (f.get("source") or {}).get("path") != path]
        expect(
            not foreign,
            "only the cell's frames in the call stack (the kernel's hidden)",
            f"also {[(f.get('name'), (f.get('source') or {}).get('path')) for f in foreign]}",
            fe,
        )
        variables = await debugger.locals(int(top["id"]))
        expect(
            variables.get("n", {}).get("value") == "21",
            "the Locals scope to show n = 21",
            f"{ {k: v.get('value') for k, v in variables.items()} }",
            fe,
        )
        rich = await debugger.rich_inspect("n", int(top["id"]))
        expect(
            (rich.get("data") or {}).get("text/plain") == "21",
            "richInspectVariables of n in the held frame to give text/plain '21'",
            f"{rich}",
            fe,
        )
        info_reply = await fe.request("control", "kernel_info_request", timeout=PATIENCE)
        expect(
            info_reply.get("status") == "ok",
            "kernel_info answered on control while the cell is held",
            f"{info_reply.get('status')}",
            fe,
        )

    async def _step_over(self, fe: Frontend, debugger: DebugClient, thread: int) -> None:
        """``next`` from line 2 stops at line 3, with ``doubled`` set."""
        start = debugger.mark()
        await debugger.step("next", thread)
        stop = await debugger.wait_stopped(start=start, timeout=PATIENCE)
        frames = await debugger.stack(thread)
        variables = await debugger.locals(int(frames[0]["id"]))
        expect(
            stop.get("reason") == "step"
            and frames[0].get("line") == 3
            and variables.get("doubled", {}).get("value") == "42",
            "after 'next': stopped (step) at line 3 with doubled = 42",
            f"{stop}, line {frames[0].get('line')}, "
            f"{ {k: v.get('value') for k, v in variables.items()} }",
            fe,
        )
