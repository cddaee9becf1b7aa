"""What the two shutdown scenarios share: ask for a shutdown on control while a cell blocks.

The control channel exists for this: a frontend must be able to stop (or restart) a kernel
whose shell is busy. The reply must arrive, and the process must then end on its own.
"""

from __future__ import annotations

from cokernel_harness.frontend import Frontend
from cokernel_harness.messages import WaitTimeout
from cokernel_scenarios.gate import Gate, start_blocking_cell
from cokernel_scenarios.scenario import PATIENCE, ScenarioFailure, expect, last


async def shut_down_while_blocked(fe: Frontend, *, restart: bool) -> None:
    """Send shutdown_request(restart) on control during a blocking cell; the process exits."""
    with Gate() as gate:
        await start_blocking_cell(fe, gate)
        request = fe.send("control", "shutdown_request", {"restart": restart})
        try:
            reply = await fe.reply_message(request, timeout=PATIENCE)
        except WaitTimeout:
            raise ScenarioFailure(
                "a shutdown_reply on control while a cell blocks",
                f"no reply within {PATIENCE:g} s",
                last(fe),
            ) from None
        expect(
            reply.content.get("status") == "ok" and reply.content.get("restart") is restart,
            f"shutdown_reply status 'ok', restart {restart}",
            f"status {reply.content.get('status')!r}, restart {reply.content.get('restart')!r}",
            fe,
        )
        if not await fe.transport.wait_exit(PATIENCE):
            raise ScenarioFailure(
                "the kernel process to exit after its shutdown_reply",
                f"still running {PATIENCE:g} s later",
                last(fe),
            )
