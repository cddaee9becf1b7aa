"""1,000 comm messages arrive while a cell blocks: none is lost, and they are handled in order.

The kernel-side handler appends each message's index to a list and answers the last one; a
later cell reports what the list holds. The messages are all sent while the cell is blocked
(a :class:`~cokernel_scenarios.gate.Gate` holds it until the last one has left the harness).
"""

from __future__ import annotations

from cokernel_harness.frontend import Frontend
from cokernel_harness.messages import WaitTimeout
from cokernel_scenarios.gate import Gate, start_blocking_cell
from cokernel_scenarios.scenario import (
    PATIENCE,
    PYTHON,
    Scenario,
    ScenarioFailure,
    expect_ok,
    last,
)

COUNT = 1000
TARGET = "harness.flood"

SETUP = f"""\
import comm as _comm
_flood = []

def _flood_open(channel, open_msg):
    def on_msg(msg):
        index = msg["content"]["data"]["i"]
        _flood.append(index)
        if index == {COUNT - 1}:
            channel.send({{"received": len(_flood)}})
    channel.on_msg(on_msg)

_comm.get_comm_manager().register_target({TARGET!r}, _flood_open)
"""

REPORT = f"""\
_expected = list(range({COUNT}))
_missing = sorted(set(_expected) - set(_flood))
_first_wrong = next((i for i, (a, b) in enumerate(zip(_flood, _expected)) if a != b), None)
print(f"count={{len(_flood)}} missing={{_missing[:10]}} first_out_of_order={{_first_wrong}}")
print("intact" if _flood == _expected else "damaged")
"""


class CommFlood(Scenario):
    name = "comm_flood"
    description = f"{COUNT} comm_msgs during a blocking time.sleep cell: none lost, order kept"
    requires = PYTHON | {"comms"}

    async def run(self, fe: Frontend) -> None:
        expect_ok(await fe.run(SETUP), "registering the comm target", fe)
        comm_id = fe.comm_open(TARGET)
        # Under a profile with comms over subshells, the page has the comm's subshell by now.
        await fe.comm_ready(comm_id)
        with Gate() as gate:
            cell = await start_blocking_cell(fe, gate)
            for index in range(COUNT):
                fe.comm_msg(comm_id, {"i": index})
            await gate.open_after_sending(fe)
            expect_ok(await fe.collect(cell), "the blocking cell", fe)
        lost_last: str | None = None
        try:
            await fe.wait_for(
                lambda m: (
                    m.msg_type == "comm_msg"
                    and m.content.get("comm_id") == comm_id
                    and "received" in m.content.get("data", {})
                ),
                timeout=PATIENCE + 20,
                what=f"the handler's answer to comm message {COUNT - 1}",
            )
        except WaitTimeout as e:
            lost_last = str(e)
        report = await fe.run(REPORT)
        expect_ok(report, "the report cell", fe)
        if lost_last is not None or "intact" not in report.stdout:
            raise ScenarioFailure(
                f"all {COUNT} comm messages handled in the order sent",
                report.stdout.strip() + (f"\n{lost_last}" if lost_last else ""),
                last(fe),
            )
