"""The kernel without threads, as in Pyodide/JupyterLite: everything on the host's one loop.

``COKERNEL_NO_THREADS=1`` selects the mode (Pyodide selects it by itself), and every
``Thread.start`` raises "can't start new thread" as it does there, so a thread the kernel still
started fails the test. examples/pyodide/run.mjs runs the same path inside Pyodide itself.
"""

from __future__ import annotations

import threading
from typing import Any

import anyio
import pytest
from jupyter_client.session import Session

import cokernel.protocol._request
from cokernel.interfaces import callback

Msg = dict[str, Any]


@pytest.fixture
def no_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setenv("COKERNEL_NO_THREADS", "1")
    monkeypatch.setattr(threading.Thread, "start", refuse)
    monkeypatch.setattr(
        cokernel.protocol._request, "_original_start", refuse
    )  # behind the kernel's patch


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("no_threads")
def test_a_kernel_without_threads_answers_everything_on_the_hosts_loop() -> None:
    session = Session(key=b"")
    sent: list[tuple[str, Msg]] = []
    host_thread = threading.current_thread().name

    async def host() -> None:
        handles: list[callback.KernelHandle] = []

        async def ask(channel: str, msg_type: str, content: Msg) -> tuple[Msg, list[Msg]]:
            """Send a request; return its reply content and its iopub messages up to idle."""
            msg = session.msg(msg_type, content)
            msg["header"]["date"] = str(msg["header"]["date"])
            msg_id = msg["header"]["msg_id"]
            handles[0].receive(channel, msg)
            with anyio.fail_after(10):
                while True:
                    mine = [(c, m) for c, m in sent if m["parent_header"].get("msg_id") == msg_id]
                    replies = [m for c, m in mine if c == channel]
                    iopub = [m for c, m in mine if c == "iopub"]
                    if replies and any(
                        m["content"].get("execution_state") == "idle" for m in iopub
                    ):
                        return replies[0]["content"], iopub
                    await anyio.sleep(0.01)

        def execute(code: str) -> Any:
            return ask("shell", "execute_request", {"code": code, "allow_stdin": True})

        def outputs(iopub: list[Msg], msg_type: str) -> list[Msg]:
            return [m["content"] for m in iopub if m["header"]["msg_type"] == msg_type]

        async with anyio.create_task_group() as tg:
            tg.start_soon(
                lambda: callback.serve(lambda c, m: sent.append((c, m)), ready=handles.append)
            )
            while not handles:
                await anyio.sleep(0.01)

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

            # Control shares the loop: it interrupts an awaiting cell.
            with anyio.fail_after(10):
                async with anyio.create_task_group() as cells:
                    results: list[Msg] = []

                    async def sleeper() -> None:
                        results.append(
                            (await execute("import asyncio\nawait asyncio.sleep(100)"))[0]
                        )

                    cells.start_soon(sleeper)
                    await anyio.sleep(0.2)
                    interrupted, _ = await ask("control", "interrupt_request", {})
            assert interrupted["status"] == "ok"
            assert results[0]["ename"] == "KeyboardInterrupt"

            reply, _ = await execute(
                "# cokernel: timeout=0.2\nimport asyncio\nawait asyncio.sleep(100)"
            )
            assert reply["ename"] == "ExecutionTimeout"

            reply, _ = await execute("input('name? ')")
            assert reply["ename"] == "StdinNotImplementedError"

            # Output after the cell's reply is sent by the loop's flush task, to that cell.
            reply, iopub = await execute(
                "import asyncio\nasync def later():\n    await asyncio.sleep(0.1)\n    print('later')\n"
                "_task = asyncio.ensure_future(later())"
            )
            cell_id = iopub[0]["parent_header"]["msg_id"]
            with anyio.fail_after(5):
                while not any(
                    m["header"]["msg_type"] == "stream"
                    and m["parent_header"].get("msg_id") == cell_id
                    for _, m in sent
                ):
                    await anyio.sleep(0.01)

            reply, _ = await ask("control", "shutdown_request", {"restart": False})
            assert reply["status"] == "ok"
        # serve() returned: the task group ended.

    anyio.run(host, backend="asyncio")
