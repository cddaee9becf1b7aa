"""complete_request on shell is answered while a cell blocks the interpreter.

What a notebook does when the user presses Tab while a long cell runs. The name to complete
is defined by an earlier cell, so the answer shows the kernel's live namespace.
"""

from __future__ import annotations

from cokernel_harness.frontend import Frontend
from cokernel_scenarios.gate import answered_while_blocked
from cokernel_scenarios.scenario import PYTHON, Scenario, expect, expect_ok

NAME = "harness_completion_target"


class CompletionWhileBlocked(Scenario):
    name = "completion_while_blocked"
    description = "complete_request on shell is answered before a blocking cell's reply"
    requires = PYTHON

    async def run(self, fe: Frontend) -> None:
        expect_ok(await fe.run(f"{NAME} = 1"), "defining the name to complete", fe)
        code = NAME[:-3]
        reply = await answered_while_blocked(
            fe,
            lambda: fe.send("shell", "complete_request", {"code": code, "cursor_pos": len(code)}),
            "complete_request on shell",
        )
        matches = reply.content.get("matches") or []
        expect(
            reply.content.get("status") == "ok" and NAME in matches,
            f"status ok and {NAME!r} among the matches",
            f"status {reply.content.get('status')!r} matches {matches[:10]}",
            fe,
        )
