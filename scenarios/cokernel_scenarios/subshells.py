"""Kernel subshells (JEP 91): parallel shells in one kernel, played as JupyterLab uses them.

JupyterLab 4.4+ opens a subshell for a console attached to a notebook and, by default, for comm
targets; the point is a shell that answers while the main shell blocks. Five patterns:

- ``subshell_parallel``: a cell on a subshell runs, and replies, while the main shell blocks;
- ``subshell_comm``: comm messages addressed to a subshell are echoed while the main shell
  blocks (JupyterLab's "comms over subshells");
- ``subshell_delete_busy``: deleting a subshell while its cell blocks and another waits answers
  every request sent to it, forgets its id, and leaves the kernel working;
- ``subshell_many``: twenty subshells run a cell each *at the same time*, proven by a barrier
  all twenty must reach together (no timing involved);
- ``subshell_churn``: hundreds of create/delete cycles leave no subshell and no thread per
  cycle behind.
"""

from __future__ import annotations

from typing import Any

from cokernel_harness.frontend import Frontend
from cokernel_harness.messages import WaitTimeout
from cokernel_scenarios.echo import echo_of, echo_setup
from cokernel_scenarios.gate import Gate, answered_while_blocked, start_blocking_cell
from cokernel_scenarios.scenario import (
    PATIENCE,
    PYTHON,
    Scenario,
    ScenarioFailure,
    expect,
    expect_ok,
    last,
)

SUBSHELLS = PYTHON | {"subshells"}


async def create_subshell(fe: Frontend) -> str:
    reply = await fe.request("control", "create_subshell_request")
    subshell_id = reply.get("subshell_id")
    expect(
        reply.get("status") == "ok" and isinstance(subshell_id, str),
        "create_subshell_reply with status ok and a subshell_id",
        repr(reply),
        fe,
    )
    return str(subshell_id)


async def delete_subshell(fe: Frontend, subshell_id: str) -> dict[str, Any]:
    return await fe.request("control", "delete_subshell_request", {"subshell_id": subshell_id})


async def listed(fe: Frontend) -> list[str]:
    reply = await fe.request("control", "list_subshell_request")
    ids = reply.get("subshell_id")
    expect(
        reply.get("status") == "ok" and isinstance(ids, list),
        "list_subshell_reply with status ok and the ids under subshell_id",
        repr(reply),
        fe,
    )
    return [str(i) for i in ids or []]


class SubshellParallel(Scenario):
    name = "subshell_parallel"
    description = "a cell on a subshell replies (with its result) while the main shell blocks"
    requires = SUBSHELLS

    async def run(self, fe: Frontend) -> None:
        subshell = await create_subshell(fe)
        reply = await answered_while_blocked(
            fe, lambda: fe.execute("6 * 7", subshell_id=subshell), "a cell on a subshell"
        )
        expect(
            reply.content.get("status") == "ok",
            "the subshell's cell to succeed",
            repr(reply.content),
            fe,
        )
        results = [
            m for m in fe.messages_for(reply.parent_id or "") if m.msg_type == "execute_result"
        ]
        expect(
            any(m.content.get("data", {}).get("text/plain") == "42" for m in results),
            "its execute_result 42, parented to the subshell's request",
            f"{len(results)} execute_result(s)",
            fe,
        )
        expect_ok(await fe.run("'main shell free'"), "a main-shell cell afterwards", fe)
        await delete_subshell(fe, subshell)


ECHO_TARGET = "harness.subshell.echo"


class SubshellComm(Scenario):
    name = "subshell_comm"
    description = "comm messages addressed to a subshell are echoed while the main shell blocks"
    requires = SUBSHELLS | {"comms"}
    count = 5

    async def run(self, fe: Frontend) -> None:
        expect_ok(await fe.run(echo_setup(ECHO_TARGET)), "registering the echo comm target", fe)
        if fe.comms.active:
            # The page's profile puts comms on subshells: use its route, as JupyterLab does.
            comm_id = fe.comm_open(ECHO_TARGET)
            subshell: str | None = await fe.comm_ready(comm_id)
            expect(
                subshell is not None,
                f"a subshell for the comm (frontend profile {fe.profile.name})",
                "the create_subshell_request failed",
                fe,
            )
            explicit = None
        else:
            subshell = explicit = await create_subshell(fe)
            comm_id = fe.comm_open(ECHO_TARGET, subshell_id=subshell)
        with Gate() as gate:
            cell = await start_blocking_cell(fe, gate)
            start = len(fe.log)
            for index in range(self.count):
                fe.comm_msg(comm_id, {"i": index}, subshell_id=explicit)
            try:
                for index in range(self.count):
                    await fe.wait_for(
                        echo_of(comm_id, index),
                        timeout=PATIENCE,
                        what=f"echo {index}",
                        start=start,
                    )
            except WaitTimeout:
                got = [m for m in fe.log[start:] if m.msg_type == "comm_msg"]
                raise ScenarioFailure(
                    f"{self.count} echoes, in order, while the main shell blocks",
                    f"{len(got)} echo(es) before the main shell's cell ended",
                    last(fe),
                ) from None
            gate.open()
            expect_ok(await fe.collect(cell), "the blocking main-shell cell", fe)
        if explicit is not None:
            await delete_subshell(fe, explicit)
        # A profile's subshell stays while its comm is open (closing it would send comm_close
        # on the subshell and delete_subshell_request on control at once, as JupyterLab does;
        # which the kernel receives first is a race this scenario is not about).


class SubshellDeleteBusy(Scenario):
    name = "subshell_delete_busy"
    description = "deleting a busy subshell answers its requests, forgets its id, kernel goes on"
    requires = SUBSHELLS

    async def run(self, fe: Frontend) -> None:
        subshell = await create_subshell(fe)
        with Gate() as gate:
            running = await start_blocking_cell(fe, gate, subshell_id=subshell)
            queued = fe.execute("'queued on the subshell'", subshell_id=subshell)
            reply = await delete_subshell(fe, subshell)
            expect(reply.get("status") == "ok", "delete_subshell_reply ok", repr(reply), fe)
            for msg_id, what in ((running, "the running cell"), (queued, "the queued cell")):
                try:
                    await fe.reply(msg_id, timeout=PATIENCE)
                except WaitTimeout:
                    raise ScenarioFailure(
                        f"{what} on the deleted subshell to be answered",
                        "no execute_reply (a frontend would wait for ever)",
                        last(fe),
                    ) from None
        expect(subshell not in await listed(fe), "the deleted id gone from the list", "", fe)
        late = await fe.reply(fe.execute("1", subshell_id=subshell), timeout=PATIENCE)
        expect(
            late.get("status") == "error" and bool(late.get("ename")),
            "an error reply (with ename) for a cell sent to the deleted subshell",
            repr(late),
            fe,
        )
        expect_ok(await fe.run("'main shell works'"), "a main-shell cell afterwards", fe)


MANY = 20
BARRIER_SETUP = f"""\
import threading as _threading
# On the threading module, so that subshells with namespaces of their own see it too.
_threading.harness_barrier = _threading.Barrier({MANY}, timeout={PATIENCE!r})
"""
BARRIER_CELL = """\
import threading as _threading
_position = _threading.harness_barrier.wait()
print("through the barrier")
"""


class SubshellMany(Scenario):
    name = "subshell_many"
    description = f"{MANY} subshells run a cell each at the same time (a barrier all must reach)"
    requires = SUBSHELLS

    async def run(self, fe: Frontend) -> None:
        expect_ok(await fe.run(BARRIER_SETUP), "making the barrier", fe)
        subshells = [await create_subshell(fe) for _ in range(MANY)]
        cells = [fe.execute(BARRIER_CELL, subshell_id=s) for s in subshells]
        executions = [await fe.collect(cell, timeout=PATIENCE + 30) for cell in cells]
        failed = [e for e in executions if e.reply.get("status") != "ok"]
        expect(
            not failed,
            f"all {MANY} cells through the barrier together (they run in parallel)",
            f"{len(failed)} failed, e.g. {failed[0].reply.get('ename') if failed else ''}: "
            f"{failed[0].reply.get('evalue') if failed else ''} (BrokenBarrierError: the "
            "cells did not all run at once)",
            fe,
        )
        expect(
            all("through the barrier" in e.stdout for e in executions),
            "each cell's output on its own request",
            repr([e.stdout for e in executions][:3]),
            fe,
        )
        for subshell in subshells:
            await delete_subshell(fe, subshell)
        expect(not set(subshells) & set(await listed(fe)), "all twenty deleted", "", fe)


CHURN = 300
THREADS_BACK = f"""\
import threading as _threading, time as _time
_deadline = _time.monotonic() + {PATIENCE!r}
while (
    _threading.active_count() - _harness_threads >= {CHURN // 10}
    and _time.monotonic() < _deadline
):
    _time.sleep(0.01)  # waits for threads to end, bounded: not a guess at a duration
_threading.active_count() - _harness_threads
"""


class SubshellChurn(Scenario):
    name = "subshell_churn"
    description = f"{CHURN} create/delete cycles leave no subshell and no thread behind"
    # Thread counts: the whole process's, which for an in-process kernel is the host's too.
    requires = SUBSHELLS
    time_limit = 180.0

    async def run(self, fe: Frontend) -> None:
        # One cycle first: whatever a kernel starts once (pools, caches) is not a leak.
        await delete_subshell(fe, await create_subshell(fe))
        expect_ok(
            await fe.run("import threading\n_harness_threads = threading.active_count()"),
            "counting threads",
            fe,
        )
        made: list[str] = []
        for _ in range(CHURN):
            subshell = await create_subshell(fe)
            made.append(subshell)
            reply = await delete_subshell(fe, subshell)
            expect(reply.get("status") == "ok", "delete_subshell_reply ok", repr(reply), fe)
        left = set(made) & set(await listed(fe))
        expect(not left, "no churned subshell still listed", f"{len(left)} listed", fe)
        extra = str(((await fe.run(THREADS_BACK)).result or {}).get("text/plain"))
        # A subshell that leaks its thread leaves one per cycle; a kernel's worker pools may
        # grow by a few threads under load (and keep them), which is not a leak.
        expect(
            extra.lstrip("-").isdigit() and int(extra) < CHURN // 10,
            f"fewer than {CHURN // 10} more threads than before the churn",
            f"{extra} more thread(s) after {CHURN} cycles",
            fe,
        )
