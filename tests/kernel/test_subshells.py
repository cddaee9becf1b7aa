"""Kernel subshells (JEP 91) over real ZMQ: parallel shells in one kernel process."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from cokernel.testing import InProcessTransport
from cokernel_harness.frontend import Frontend

Body = Callable[[Frontend], Awaitable[None]]


def with_kernel(body: Body, *, inprocess: bool = False) -> None:
    async def main() -> None:
        if inprocess:
            async with Frontend.connect(InProcessTransport()) as fe:
                await body(fe)
        else:
            async with Frontend.launch("cokernel") as fe:
                await body(fe)

    anyio.run(main)


async def create(fe: Frontend, **content: Any) -> str:
    reply = await fe.request("control", "create_subshell_request", content)
    assert reply["status"] == "ok", reply
    return str(reply["subshell_id"])


async def block_main_shell(fe: Frontend) -> str:
    """Start a main-shell cell that blocks its thread until :func:`open_gate`; return its id
    once it is blocked (it says so on stdout first)."""
    await fe.run("import threading\ngate = threading.Event()")
    blocker = fe.execute("print('blocked', flush=True)\ngate.wait(60)")
    await fe.wait_for(
        lambda m: m.parent_id == blocker and m.msg_type == "stream", what="the cell to block"
    )
    return blocker


async def open_gate(fe: Frontend, subshell_id: str) -> None:
    """Let the cell of :func:`block_main_shell` go on, from a subshell."""
    run = await fe.run("gate.set()", subshell_id=subshell_id, timeout=20)
    assert run.reply["status"] == "ok", run.reply


def reply_order(fe: Frontend, *msg_ids: str) -> list[str]:
    replies = [
        m.parent_id for m in fe.log if m.channel == "shell" and m.msg_type.endswith("_reply")
    ]
    return [r for r in replies if r in msg_ids]


@pytest.mark.timeout(60)
def test_kernel_info_advertises_subshells_and_list_reflects_create_and_delete() -> None:
    async def body(fe: Frontend) -> None:
        assert "kernel subshells" in (await fe.kernel_info())["supported_features"]
        first, second = await create(fe), await create(fe)
        listed = await fe.request("control", "list_subshell_request")
        assert listed == {"status": "ok", "subshell_id": [first, second]}
        assert (await fe.request("control", "delete_subshell_request", {"subshell_id": first}))[
            "status"
        ] == "ok"
        listed = await fe.request("control", "list_subshell_request")
        assert listed["subshell_id"] == [second]

    with_kernel(body)


@pytest.mark.timeout(60)
def test_a_subshell_answers_while_the_main_shell_blocks() -> None:
    async def body(fe: Frontend) -> None:
        sub = await create(fe)
        await fe.run("shared_value = 41")
        blocker = await block_main_shell(fe)
        # The main shell stays blocked until the gate opens, which only a subshell can do.
        quick = fe.execute("shared_value + 1", subshell_id=sub)
        run = await fe.collect(quick, timeout=20)
        assert run.result == {"text/plain": "42"}
        await open_gate(fe, sub)
        await fe.collect(blocker)
        assert reply_order(fe, blocker, quick) == [quick, blocker]

    with_kernel(body)


@pytest.mark.timeout(60)
def test_requests_on_one_subshell_keep_their_order() -> None:
    async def body(fe: Frontend) -> None:
        sub = await create(fe)
        cells = [
            fe.execute(f"import time; time.sleep(0.01 * ({i} % 3)); {i}", subshell_id=sub)
            for i in range(12)
        ]
        for cell in cells:
            await fe.collect(cell)
        assert reply_order(fe, *cells) == cells

    with_kernel(body)


@pytest.mark.timeout(120)
def test_twenty_subshells_run_their_cells_concurrently() -> None:
    async def body(fe: Frontend) -> None:
        subs = [await create(fe) for _ in range(20)]
        await fe.run("import threading\nbarrier = threading.Barrier(20, timeout=30)")
        # Every cell waits at a barrier that opens only when all 20 are running at once.
        cells = [fe.execute("barrier.wait()", subshell_id=sub) for sub in subs]
        replies = [await fe.reply(cell, timeout=60) for cell in cells]
        assert [r["status"] for r in replies] == ["ok"] * 20

    with_kernel(body)


@pytest.mark.timeout(60)
def test_a_subshell_may_have_a_namespace_of_its_own() -> None:
    async def body(fe: Frontend) -> None:
        shared, own = await create(fe), await create(fe, namespace="own")
        await fe.run("secret = 'main'")
        assert (await fe.run("secret", subshell_id=shared)).result == {"text/plain": "'main'"}
        hidden = await fe.run("secret", subshell_id=own)
        assert hidden.reply["ename"] == "NameError"
        await fe.run("secret = 'own'", subshell_id=own)
        assert (await fe.run("secret")).result == {"text/plain": "'main'"}
        bad = await fe.request("control", "create_subshell_request", {"namespace": "elsewhere"})
        assert bad["status"] == "error"

    with_kernel(body)


@pytest.mark.timeout(60)
def test_unknown_subshell_ids_get_error_replies() -> None:
    async def body(fe: Frontend) -> None:
        run = await fe.run("1", subshell_id="no-such-subshell")
        assert run.reply["status"] == "error"
        assert run.reply["ename"] == "SubshellNotFound"
        assert isinstance(run.reply["traceback"], list)
        deleted = await fe.request(
            "control", "delete_subshell_request", {"subshell_id": "no-such-subshell"}
        )
        assert deleted["status"] == "error"
        assert deleted["ename"] == "SubshellNotFound"

    with_kernel(body)


@pytest.mark.timeout(60)
def test_deleting_a_busy_subshell_stops_its_cell_and_answers_what_was_queued() -> None:
    async def body(fe: Frontend) -> None:
        sub = await create(fe)
        busy = fe.execute("import anyio\nawait anyio.sleep(100)", subshell_id=sub)
        queued = fe.execute("'never runs'", subshell_id=sub)
        await fe.wait_for(
            lambda m: m.parent_id == busy and m.msg_type == "execute_input", what="execute_input"
        )
        assert (await fe.request("control", "delete_subshell_request", {"subshell_id": sub}))[
            "status"
        ] == "ok"
        assert (await fe.reply(busy))["ename"] == "KeyboardInterrupt"
        assert (await fe.reply(queued))["status"] in ("aborted", "error")
        assert (await fe.run("1 + 1")).result == {"text/plain": "2"}

    with_kernel(body)


@pytest.mark.timeout(60)
def test_a_request_sent_after_its_subshell_was_deleted_is_answered_after_what_was_queued() -> None:
    """The deletion travels on control and may overtake requests sent on shell; whatever
    reaches a subshell being deleted joins the end of its lane. Here the subshell's thread is
    held in a blocking call (no interrupt reaches it), so the deletion returns with two cells
    still queued; a request sent to the subshell afterwards must be answered after them."""

    async def body(fe: Frontend) -> None:
        sub = await create(fe)
        await fe.run("import threading\ngate = threading.Event()")
        blocker = fe.execute(
            "print('blocked', flush=True)\ngate.wait()", subshell_id=sub, stop_on_error=False
        )
        await fe.wait_for(
            lambda m: m.parent_id == blocker and m.msg_type == "stream", what="the cell to block"
        )
        queued = [fe.execute(f"{i}", subshell_id=sub) for i in range(2)]
        deleted = await fe.request("control", "delete_subshell_request", {"subshell_id": sub})
        assert deleted["status"] == "ok", deleted
        late = fe.execute("'too late'", subshell_id=sub)
        # Sent on shell after `late`, so the kernel routes it after `late`: the gate opens only
        # once `late` has reached the subshell being deleted.
        opener = fe.execute("gate.set()")
        assert (await fe.reply(opener))["status"] == "ok"
        replies = [await fe.reply(m) for m in (blocker, *queued, late)]
        assert replies[0]["ename"] == "KeyboardInterrupt", replies[0]
        # Not run: cancelled with the loop, or refused by the handler if the lane reached it
        # before the loop ended.
        assert all(r.get("ename") in ("RequestCancelled", "SubshellNotFound") for r in replies[1:])
        assert reply_order(fe, blocker, *queued, late) == [blocker, *queued, late]
        listed = await fe.request("control", "list_subshell_request")
        assert listed["subshell_id"] == []

    with_kernel(body)


@pytest.mark.timeout(120)
def test_requests_racing_their_subshells_deletion_are_all_answered() -> None:
    """Requests sent on shell just before the deletion on control: the deletion often arrives
    first, and the requests then reach a subshell whose loop is ending. Each must still get
    its one reply. (On asyncio a lane task started during the loop's teardown was cancelled
    before its first step, so its coroutine never ran, not even its cleanup: about one round
    in ten lost both replies.)"""

    async def body(fe: Frontend) -> None:
        for _ in range(40):
            sub = await create(fe)
            cells = [
                fe.execute("import time\ntime.sleep(0.01)", subshell_id=sub),
                fe.execute("1/0", subshell_id=sub),
            ]
            deleted = await fe.request("control", "delete_subshell_request", {"subshell_id": sub})
            assert deleted["status"] == "ok", deleted
            for cell in cells:
                reply = await fe.reply(cell, timeout=20)
                assert reply["status"] in ("ok", "error", "aborted"), reply

    with_kernel(body)


@pytest.mark.timeout(60)
def test_comms_addressed_to_a_subshell_are_served_while_the_main_shell_blocks() -> None:
    async def body(fe: Frontend) -> None:
        sub = await create(fe)
        await fe.run(
            "import comm\n"
            "received = []\n"
            "def opened(c, msg):\n"
            "    c.on_msg(lambda m: (received.append(m['content']['data']['n']), c.send({'echo': m['content']['data']['n']})))\n"
            "comm.get_comm_manager().register_target('sub-echo', opened)"
        )
        comm_id = fe.comm_open("sub-echo")
        blocker = await block_main_shell(fe)
        fe.comm_msg(comm_id, {"n": 7}, subshell_id=sub)
        echo = await fe.wait_for(
            lambda m: m.msg_type == "comm_msg" and m.content["data"].get("echo") == 7,
            timeout=20,
            what="the comm echo",
        )
        assert not [
            m
            for m in fe.log[: fe.log.index(echo)]
            if m.parent_id == blocker and m.msg_type == "execute_reply"
        ]
        await open_gate(fe, sub)
        await fe.collect(blocker)

    with_kernel(body)


@pytest.mark.timeout(120)
def test_create_delete_churn_leaves_no_threads_behind() -> None:
    # Every thread a subshell starts (its loop, its worker pool) is named after it; once the
    # subshells are deleted they all end. Joined with one overall deadline: a leaked thread
    # is still alive after it and is named in the failure.
    survivors = """
import threading, time
_deadline = time.monotonic() + 20
for _t in threading.enumerate():
    if _t.name.startswith("cokernel-subshell"):
        _t.join(max(0.0, _deadline - time.monotonic()))
sorted(_t.name for _t in threading.enumerate() if _t.name.startswith("cokernel-subshell"))
"""

    async def body(fe: Frontend) -> None:
        for _ in range(1000):
            sub = await create(fe)
            await fe.request("control", "delete_subshell_request", {"subshell_id": sub})
        left = (await fe.run(survivors)).result
        assert left == {"text/plain": "[]"}

    with_kernel(body, inprocess=True)


@pytest.mark.timeout(60)
def test_a_result_carries_its_own_cells_count_while_a_subshell_takes_the_next() -> None:
    # The main cell is numbered n and waits; a subshell cell takes n + 1 and lets it go on.
    # The main cell's Out[n] (execute_result) must still say n, as its reply and input do.
    async def body(fe: Frontend) -> None:
        await fe.run("import threading\nharness_go = threading.Event()")
        sub = await create(fe)
        main = fe.execute("harness_go.wait(30)\n'main result'")
        await fe.wait_for(lambda m: m.parent_id == main and m.msg_type == "execute_input")
        other = await fe.run("harness_go.set()", subshell_id=sub)
        execution = await fe.collect(main)
        count = execution.reply["execution_count"]
        assert other.reply["execution_count"] == count + 1
        (result,) = execution.of_type("execute_result")
        assert result.content["execution_count"] == count
        assert result.content["data"]["text/plain"] == "'main result'"
        inputs = execution.of_type("execute_input")
        assert [m.content["execution_count"] for m in inputs] == [count]

    with_kernel(body)


EXHAUST_FDS = """
import os, resource
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 16, _hard))
_held = []
try:
    while True:
        _held.append(os.open(os.devnull, os.O_RDONLY))
except OSError as e:
    print(e.strerror)
"""

RELEASE_FDS = """
for fd in _held:
    os.close(fd)
resource.setrlimit(resource.RLIMIT_NOFILE, (_soft, _hard))
"""


@pytest.mark.timeout(60)
def test_a_subshell_that_cannot_start_is_answered_with_the_cause() -> None:
    # Real exhaustion: a cell uses up the kernel's file descriptors, so a new subshell's event
    # loop cannot open its selector. The reply names the OSError itself (the old behaviour
    # waited 10 s for a thread that had already died, then said "did not start").
    async def body(fe: Frontend) -> None:
        assert (await fe.run(EXHAUST_FDS)).stdout == "Too many open files\n"
        try:
            reply = await fe.request("control", "create_subshell_request")
        finally:
            await fe.run(RELEASE_FDS)
        assert reply["status"] == "error", reply
        assert reply["ename"] == "OSError", reply
        assert "Too many open files" in reply["evalue"], reply
        listed = await fe.request("control", "list_subshell_request")
        assert listed["subshell_id"] == []
        sub = await create(fe)  # with descriptors back, subshells start again
        assert (await fe.run("1 + 1", subshell_id=sub)).result == {"text/plain": "2"}

    with_kernel(body)


# A function call on a thread running under a trace function (as debugpy traces threads).
_TRACED_CALL = """\
import sys as _sys, threading as _threading
def _traced():
    def nothing():
        return 1
    _sys.settrace(lambda *args: None)
    nothing()
    _sys.settrace(None)
_tracer = _threading.Thread(target=_traced, daemon=True)
_tracer.start()
_tracer.join(30)  # a deadline for the failure; a healthy call returns at once
print("stuck" if _tracer.is_alive() else "returned")
"""


@pytest.mark.timeout(120)
def test_an_interrupted_subshell_cell_leaves_traced_calls_working() -> None:
    # Interrupting a cell on a subshell posts KeyboardInterrupt to its thread; withdrawing it
    # when the cell's step ended used to leave CPython's eval breaker signalled for good, and a
    # thread under a trace function then spun for ever entering a function (the debugger's
    # first initialize hung importing pydevd after subshell_delete_busy).
    async def body(fe: Frontend) -> None:
        sub = await create(fe)
        start = len(fe.log)
        cell = fe.execute("print('looping', flush=True)\nwhile True:\n    pass", subshell_id=sub)
        await fe.wait_for(
            lambda m: m.parent_id == cell and m.msg_type == "stream",
            start=start,
            what="the subshell cell's print",
        )
        await fe.interrupt()
        reply = await fe.reply(cell)
        assert reply["status"] == "error", reply
        assert reply["ename"] == "KeyboardInterrupt", reply
        assert (await fe.run(_TRACED_CALL)).stdout == "returned\n"

    with_kernel(body)


_CATCH_THEN_AWAIT = """\
import anyio
try:
    print('looping', flush=True)
    while True:
        pass
except KeyboardInterrupt:
    print('caught', flush=True)
    await anyio.sleep(0.05)
    print('after', flush=True)
"""


@pytest.mark.timeout(120)
def test_a_subshell_cell_that_catches_its_interrupt_and_awaits_on_is_not_stopped_again() -> None:
    # The interrupt is posted to the subshell's thread as an exception. Once it has fired (and
    # the cell caught it), the end of the step must not treat it as still pending: it used to
    # cancel the cell's scope as well, and the cell's next await raised KeyboardInterrupt.
    async def body(fe: Frontend) -> None:
        sub = await create(fe)
        start = len(fe.log)
        cell = fe.execute(_CATCH_THEN_AWAIT, subshell_id=sub)
        await fe.wait_for(
            lambda m: m.parent_id == cell and m.msg_type == "stream",
            start=start,
            what="the subshell cell's print",
        )
        await fe.interrupt()
        # Outputs are complete at the idle status, not at the reply: iopub and shell are two
        # sockets, and a reply may overtake output sent before it.
        run = await fe.collect(cell)
        assert run.reply["status"] == "ok", run.reply
        assert run.stdout == "looping\ncaught\nafter\n", (run.stdout, run.reply)

    with_kernel(body)
