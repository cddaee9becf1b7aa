"""Context variables carry over between cells, as in a plain Python session (docs/subshells.md).

``decimal``'s precision and any ``ContextVar`` set by one cell are seen by the next, on both
backends, for sync and async cells and task-mode cells; a thread-mode cell starts from a copy;
each subshell keeps a context of its own; comm handlers on the shell's thread see it too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import pytest

from cokernel_harness.frontend import Frontend

pytestmark = pytest.mark.timeout(90)

SETUP = (
    "import decimal, contextvars, anyio\n"
    "v = contextvars.ContextVar('v', default='default')\n"
    "def seen():\n"
    "    return f'{decimal.Decimal(1) / decimal.Decimal(7)} {v.get()}'"
)


def with_kernel(body: Callable[[Frontend], Awaitable[None]]) -> None:
    async def main() -> None:
        async with Frontend.launch("cokernel") as fe:
            setup = await fe.run(SETUP)
            assert setup.reply["status"] == "ok", setup.reply
            await body(fe)

    anyio.run(main)


async def stdout(fe: Frontend, code: str, **options: object) -> str:
    done = await fe.run(code, **options)
    assert done.reply["status"] == "ok", done.reply
    return done.stdout


def test_decimal_precision_and_context_vars_carry_over_to_the_next_cell() -> None:
    async def body(fe: Frontend) -> None:
        assert await stdout(fe, "print(seen())") == "0.1428571428571428571428571429 default\n"
        await stdout(fe, "decimal.getcontext().prec = 5\nv.set('set')")
        assert await stdout(fe, "print(seen())") == "0.14286 set\n"
        # an async cell (top-level await) too, before and after it awaits
        assert (
            await stdout(fe, "print(seen())\nawait anyio.sleep(0)\nprint(seen())")
            == "0.14286 set\n0.14286 set\n"
        )
        await stdout(fe, "await anyio.sleep(0)\nv.set('from an async cell')")
        assert await stdout(fe, "print(v.get())") == "from an async cell\n"

    with_kernel(body)


def test_task_mode_cells_share_the_context_and_each_keeps_its_own_output() -> None:
    async def body(fe: Frontend) -> None:
        await stdout(fe, "gate = anyio.Event()")
        waiting = fe.execute("# cokernel: task\nawait gate.wait()\nprint('task sees', v.get())")
        # The task is suspended; this cell runs meanwhile, sets v, and opens the gate.
        assert await stdout(fe, "v.set('queued')\ngate.set()\nprint('queued cell')") == (
            "queued cell\n"
        )
        task = await fe.collect(waiting)
        assert task.reply["status"] == "ok", task.reply
        assert task.stdout == "task sees queued\n"  # one context; its own output area
        await stdout(fe, "# cokernel: task\nv.set('set by a task cell')")
        assert await stdout(fe, "print(v.get())") == "set by a task cell\n"

    with_kernel(body)


def test_a_thread_mode_cell_starts_from_a_copy_of_the_shell_context() -> None:
    async def body(fe: Frontend) -> None:
        await stdout(fe, "decimal.getcontext().prec = 5\nv.set('main')")
        code = "# cokernel: thread\nprint(seen())\nv.set('thread')\ndecimal.getcontext().prec = 3"
        assert await stdout(fe, code) == "0.14286 main\n"
        assert await stdout(fe, "print(seen())") == "0.14286 main\n"

    with_kernel(body)


def test_each_subshell_keeps_a_context_of_its_own() -> None:
    async def body(fe: Frontend) -> None:
        created = await fe.request("control", "create_subshell_request", {})
        sub = str(created["subshell_id"])
        await stdout(fe, "decimal.getcontext().prec = 5\nv.set('main')")
        # Shared namespace (it sees `v` and `seen`), but a context of its own.
        assert await stdout(fe, "print(seen())", subshell_id=sub) == (
            "0.1428571428571428571428571429 default\n"
        )
        await stdout(fe, "decimal.getcontext().prec = 3\nv.set('sub')", subshell_id=sub)
        assert await stdout(fe, "print(seen())", subshell_id=sub) == "0.143 sub\n"
        assert await stdout(fe, "print(seen())") == "0.14286 main\n"

    with_kernel(body)


def test_comm_handlers_on_the_shell_thread_see_the_shell_context() -> None:
    async def body(fe: Frontend) -> None:
        await stdout(
            fe,
            "import comm\n"
            "decimal.getcontext().prec = 5\n"
            "v.set('main')\n"
            "c = comm.create_comm(target_name='ctx-probe')\n"
            "c.on_msg(lambda msg: print('handler', seen()))",
        )
        comm_id = await stdout(fe, "print(c.comm_id, end='')")
        msg_id = fe.comm_msg(comm_id, {"ping": 1})
        await fe.wait_for(
            lambda m: (
                m.parent_id == msg_id
                and m.msg_type == "status"
                and m.content.get("execution_state") == "idle"
            ),
            what="idle after the comm_msg",
        )
        printed = [
            m.content["text"]
            for m in fe.messages_for(msg_id)
            if m.channel == "iopub" and m.msg_type == "stream"
        ]
        assert printed == ["handler 0.14286 main\n"]

    with_kernel(body)
