"""Displays with a display_id are updated in place (update_display_data), and clear_output.

A cell displays with a display_id and updates it; a later cell updates the same display (the
update is that later cell's output, naming the display by its id); a cell clears its output.
"""

from __future__ import annotations

from typing import Any

from cokernel_harness.frontend import Frontend
from cokernel_harness.messages import Execution
from cokernel_scenarios.scenario import PYTHON, Scenario, expect, expect_ok

FIRST = """\
from IPython.display import display
_handle = display("first", display_id="harness-display")
_handle.update("second")
"""
LATER = '_handle.update("third")\n'
CLEAR = """\
from IPython.display import clear_output
print("to be cleared")
clear_output(wait=True)
print("after the clear")
"""


def _summary(execution: Execution) -> list[tuple[str, str | None, str | None]]:
    """(msg_type, display_id, text/plain) of each display message, in order."""
    found = []
    for m in execution.outputs:
        if m.msg_type in ("display_data", "update_display_data"):
            transient = m.content.get("transient") or {}
            text = (m.content.get("data") or {}).get("text/plain")
            found.append((m.msg_type, transient.get("display_id"), text))
    return found


class DisplayUpdates(Scenario):
    name = "display_updates"
    description = "display_id displays update in place (update_display_data); clear_output"
    requires = PYTHON | {"ipython"}

    async def run(self, fe: Frontend) -> None:
        first = await fe.run(FIRST)
        expect_ok(first, "the displaying cell", fe)
        want = [
            ("display_data", "harness-display", "'first'"),
            ("update_display_data", "harness-display", "'second'"),
        ]
        expect(_summary(first) == want, f"{want}", f"{_summary(first)}", fe)

        later = await fe.run(LATER)
        expect_ok(later, "the cell updating an earlier display", fe)
        want = [("update_display_data", "harness-display", "'third'")]
        expect(
            _summary(later) == want,
            f"the later cell's own output to be {want}",
            f"{_summary(later)}",
            fe,
        )

        cleared = await fe.run(CLEAR)
        expect_ok(cleared, "the clearing cell", fe)
        events: list[tuple[str, Any]] = [
            ("clear", m.content.get("wait"))
            if m.msg_type == "clear_output"
            else ("text", str(m.content.get("text", "")))
            for m in cleared.outputs
            if m.msg_type in ("stream", "clear_output")
        ]
        clears = [i for i, (kind, _) in enumerate(events) if kind == "clear"]
        expect(
            len(clears) == 1 and events[clears[0]][1] is True,
            "one clear_output with wait=True",
            f"{events}",
            fe,
        )
        before = "".join(v for kind, v in events[: clears[0]] if kind == "text")
        after = "".join(v for kind, v in events[clears[0] + 1 :] if kind == "text")
        expect(
            "to be cleared" in before and "after the clear" in after,
            "stdout 'to be cleared' before the clear_output, 'after the clear' after it",
            f"before {before!r}, after {after!r}",
            fe,
        )
