"""``input()`` waits for the page's answer while comm messages keep flowing, then gets it.

A comm handler echoes each message back. The harness sends messages while ``input()`` waits
and expects their echoes before it answers; then the cell prints what it was given.
"""

from __future__ import annotations

from cokernel_harness.frontend import Frontend
from cokernel_harness.messages import WaitTimeout
from cokernel_scenarios.echo import echo_of, echo_setup
from cokernel_scenarios.scenario import (
    PATIENCE,
    PYTHON,
    Scenario,
    ScenarioFailure,
    expect,
    expect_ok,
    last,
)

COUNT = 5
TARGET = "harness.echo"
ANSWER = "harness answer"

SETUP = echo_setup(TARGET)

CELL = """\
_answer = input("your answer? ")
print("the cell was given", repr(_answer))
"""


class InputWhileComms(Scenario):
    name = "input_while_comms"
    description = "input() waits while comm messages are handled; then it is answered"
    requires = PYTHON | {"stdin", "comms"}

    async def run(self, fe: Frontend) -> None:
        expect_ok(await fe.run(SETUP), "registering the comm target", fe)
        comm_id = fe.comm_open(TARGET)
        # Under a profile with comms over subshells, the page has the comm's subshell by now.
        await fe.comm_ready(comm_id)
        cell = fe.execute(CELL, allow_stdin=True)
        request = await fe.wait_for(
            lambda m: (
                m.channel == "stdin" and m.msg_type == "input_request" and m.parent_id == cell
            ),
            what="the cell's input_request",
        )
        start = len(fe.log)
        for index in range(COUNT):
            fe.comm_msg(comm_id, {"i": index})
        echoed_while_waiting = True
        try:
            await self._echoes(fe, comm_id, start, timeout=PATIENCE)
        except WaitTimeout:
            echoed_while_waiting = False
        fe.input_reply(ANSWER, parent=request.msg)
        execution = await fe.collect(cell)
        expect_ok(execution, "the cell reading input()", fe)
        expect(
            repr(ANSWER) in execution.stdout,
            f"the cell to print the answer {ANSWER!r}",
            f"stdout {execution.stdout!r}",
            fe,
        )
        if not echoed_while_waiting:
            try:
                await self._echoes(fe, comm_id, start, timeout=PATIENCE)
            except WaitTimeout:
                got = "no echoes at all (comm messages lost)"
            else:
                got = "the echoes only after input() was answered"
            raise ScenarioFailure(f"{COUNT} comm echoes while input() waits", got, last(fe))

    @staticmethod
    async def _echoes(fe: Frontend, comm_id: str, start: int, *, timeout: float) -> None:
        await fe.wait_for(
            echo_of(comm_id, COUNT - 1),
            timeout=timeout,
            what=f"the echo of comm message {COUNT - 1}",
            start=start,
        )
