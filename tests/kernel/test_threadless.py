"""The kernel without threads, as in Pyodide/JupyterLite: everything on the host's one loop.

``COKERNEL_NO_THREADS=1`` selects the mode (Pyodide selects it by itself), and every
``Thread.start`` raises "can't start new thread" as it does there, so a thread the kernel still
started fails the test. examples/pyodide/run.mjs runs the same path inside Pyodide itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import pytest
from jupyter_client.session import Session

import cokernel.protocol._request
from cokernel.interfaces import callback

Msg = dict[str, Any]
T = TypeVar("T")


@pytest.fixture
def no_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setenv("COKERNEL_NO_THREADS", "1")
    monkeypatch.setattr(threading.Thread, "start", refuse)
    monkeypatch.setattr(
        cokernel.protocol._request, "_original_start", refuse
    )  # behind the kernel's patch


class Outbox:
    """What the kernel sent, in order, and a way to wait for it: the kernel calls this on the
    host's loop (its only thread), so each message can wake the waiters there."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Msg]] = []
        self._changed = anyio.Event()

    def __call__(self, channel: str, msg: Msg) -> None:
        self.sent.append((channel, msg))
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    async def wait_for(self, found: Callable[[], T | None], what: str, timeout: float = 10) -> T:
        """Return ``found()`` once it is not None, checked each time a message comes."""
        with anyio.move_on_after(timeout):
            while (result := found()) is None:
                await self._changed.wait()
            return result
        raise AssertionError(f"waited {timeout:g} s for {what}; {len(self.sent)} messages came")

    def of(self, msg_id: str) -> list[tuple[str, Msg]]:
        return [(c, m) for c, m in self.sent if m["parent_header"].get("msg_id") == msg_id]


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("no_threads")
def test_a_kernel_without_threads_answers_everything_on_the_hosts_loop() -> None:
    session = Session(key=b"")
    outbox = Outbox()
    host_thread = threading.current_thread().name

    async def host() -> None:
        handles: list[callback.KernelHandle] = []
        ready = anyio.Event()

        def send(channel: str, msg_type: str, content: Msg) -> str:
            msg = session.msg(msg_type, content)
            msg["header"]["date"] = str(msg["header"]["date"])
            handles[0].receive(channel, msg)
            return str(msg["header"]["msg_id"])

        async def ask(channel: str, msg_type: str, content: Msg) -> tuple[Msg, list[Msg]]:
            """Send a request; return its reply content and its iopub messages up to idle."""
            return await answer(channel, send(channel, msg_type, content))

        async def answer(channel: str, msg_id: str) -> tuple[Msg, list[Msg]]:
            def done() -> tuple[Msg, list[Msg]] | None:
                mine = outbox.of(msg_id)
                replies = [m for c, m in mine if c == channel]
                iopub = [m for c, m in mine if c == "iopub"]
                idle = any(m["content"].get("execution_state") == "idle" for m in iopub)
                return (replies[0]["content"], iopub) if replies and idle else None

            return await outbox.wait_for(done, f"the reply and idle of {msg_id}")

        def execute(code: str) -> Any:
            return ask("shell", "execute_request", {"code": code, "allow_stdin": True})

        def outputs(iopub: list[Msg], msg_type: str) -> list[Msg]:
            return [m["content"] for m in iopub if m["header"]["msg_type"] == msg_type]

        def started(handle: callback.KernelHandle) -> None:
            handles.append(handle)
            ready.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: callback.serve(outbox, ready=started))
            with anyio.fail_after(10):
                await ready.wait()

            info, _ = await ask("shell", "kernel_info_request", {})
            assert "kernel subshells" not in info["supported_features"]

            reply, iopub = await execute(
                "import threading\nprint('hi')\nthreading.current_thread().name"
            )
            assert reply["status"] == "ok"
            assert outputs(iopub, "stream") == [{"name": "stdout", "text": "hi\n"}]
            assert outputs(iopub, "execute_result")[0]["data"]["text/plain"] == repr(host_thread)

            # A thread-mode handler runs as a task on the loop.
            reply, _ = await ask(
                "shell", "complete_request", {"code": "import asy", "cursor_pos": 10}
            )
            assert "asyncio" in reply["matches"]

            # Control shares the loop: it interrupts an awaiting cell, once the cell awaits.
            sleeper = send(
                "shell",
                "execute_request",
                {"code": "import asyncio\nprint('awaiting', flush=True)\nawait asyncio.sleep(100)"},
            )
            await outbox.wait_for(
                lambda: (
                    any(m["header"]["msg_type"] == "stream" for _, m in outbox.of(sleeper)) or None
                ),
                "the cell to await",
            )
            interrupted, _ = await ask("control", "interrupt_request", {})
            assert interrupted["status"] == "ok"
            assert (await answer("shell", sleeper))[0]["ename"] == "KeyboardInterrupt"

            reply, _ = await execute(
                "# cokernel: timeout=0.2\nimport asyncio\nawait asyncio.sleep(100)"
            )
            assert reply["ename"] == "ExecutionTimeout"

            reply, _ = await execute("input('name? ')")
            assert reply["ename"] == "StdinNotImplementedError"

            # Output after the cell's reply is sent by the loop's flush task, to that cell: the
            # task prints once the gate (set by the next cell) opens, after the reply.
            reply, iopub = await execute(
                "import asyncio\ngate = asyncio.Event()\n"
                "async def later():\n    await gate.wait()\n    print('later')\n"
                "_task = asyncio.ensure_future(later())"
            )
            cell_id = iopub[0]["parent_header"]["msg_id"]
            assert not outputs(iopub, "stream")
            await execute("gate.set()")
            await outbox.wait_for(
                lambda: (
                    any(m["header"]["msg_type"] == "stream" for _, m in outbox.of(cell_id)) or None
                ),
                "the task's output",
            )

            reply, _ = await ask("control", "shutdown_request", {"restart": False})
            assert reply["status"] == "ok"
        # serve() returned: the task group ended.

    anyio.run(host, backend="asyncio")
