"""The callback interface: a kernel in this process, messages through plain callables."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from typing import Any

import anyio
import pytest
from jupyter_client.session import Session

from cokernel.interfaces import callback
from cokernel.options import KernelOptions
from cokernel.testing import InProcessTransport
from cokernel_harness.frontend import Frontend

BACKENDS = ["asyncio", "trio"]


class Outbox:
    """Collects what the kernel sends and lets a test wait for one message."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, Any]] = []
        self._cond = threading.Condition()

    def __call__(self, channel: str, msg: Any) -> None:
        with self._cond:
            self.messages.append((channel, msg))
            self._cond.notify_all()

    def reply_to(self, msg_id: str, timeout: float = 20.0) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            for channel, msg in self.messages:
                if channel in ("shell", "control") and msg["parent_header"].get("msg_id") == msg_id:
                    return dict(msg)
            return None

        with self._cond:
            if not self._cond.wait_for(lambda: find() is not None, timeout):
                raise AssertionError(
                    f"no reply to {msg_id}; got {[m[1]['header']['msg_type'] for m in self.messages]}"
                )
            found = find()
            assert found is not None
            return found


def request(
    session: Session, msg_type: str, content: dict[str, Any] | None = None
) -> dict[str, Any]:
    msg = session.msg(msg_type, content or {})
    msg["header"]["date"] = str(msg["header"]["date"])
    return msg


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", BACKENDS)
def test_kernel_can_start_stop_and_start_again_in_one_process(backend: str) -> None:
    session = Session(key=b"")
    for _ in range(2):
        outbox = Outbox()
        handle = callback.start(outbox, options=KernelOptions(backend=backend))  # type: ignore[arg-type]
        try:
            msg = request(session, "execute_request", {"code": "6 * 7", "silent": False})
            handle.receive("shell", msg)
            reply = outbox.reply_to(msg["header"]["msg_id"])
            assert reply["content"]["status"] == "ok"
            results = [m for c, m in outbox.messages if m["header"]["msg_type"] == "execute_result"]
            assert results[0]["content"]["data"]["text/plain"] == "42"
        finally:
            handle.stop()
        assert not handle.running


@pytest.mark.timeout(60)
def test_wire_frames_are_signed_and_a_forged_message_is_dropped() -> None:
    key = b"secret-key"
    outbox = Outbox()
    handle = callback.start(outbox, key=key, wire=True)
    client = Session(key=key)
    try:
        forged = Session(key=b"wrong").serialize(Session(key=b"wrong").msg("kernel_info_request"))
        handle.receive("shell", forged)
        good = client.msg("kernel_info_request")
        handle.receive("shell", client.serialize(good))
        with outbox._cond:
            assert outbox._cond.wait_for(
                lambda: any(c == "shell" for c, _ in outbox.messages), 20
            ), "no reply to the signed request"
        replies = [
            client.deserialize(client.feed_identities(f)[1])
            for c, f in outbox.messages
            if c == "shell"
        ]
        assert [r["parent_header"]["msg_id"] for r in replies] == [good["header"]["msg_id"]]
    finally:
        handle.stop()


@pytest.mark.timeout(60)
def test_a_malformed_message_is_dropped_and_the_kernel_keeps_answering() -> None:
    outbox = Outbox()
    handle = callback.start(outbox)
    try:
        handle.receive("shell", {"header": "not a dict"})
        handle.receive("iopub", {"header": {}})
        handle.receive("nonsense", {"header": {}})
        msg = request(Session(key=b""), "kernel_info_request")
        handle.receive("shell", msg)
        assert outbox.reply_to(msg["header"]["msg_id"])["content"]["status"] == "ok"
    finally:
        handle.stop()


@pytest.mark.timeout(60)
def test_the_callback_path_does_not_import_zmq(tmp_path: Any) -> None:
    script = textwrap.dedent(
        """
        import sys
        from cokernel.interfaces import callback
        sent = []
        handle = callback.start(lambda channel, msg: sent.append(msg))
        handle.stop()
        assert "zmq" not in sys.modules, sorted(m for m in sys.modules if "zmq" in m)
        print("no zmq")
        """
    )
    env = {"IPYTHONDIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=50, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "no zmq" in done.stdout


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", BACKENDS)
def test_serve_runs_cells_on_the_hosts_own_loop_and_thread(backend: str) -> None:
    session = Session(key=b"")
    outbox = Outbox()
    host_thread = threading.current_thread().name

    async def host() -> None:
        ready = anyio.Event()
        handles: list[callback.KernelHandle] = []

        def on_ready(handle: callback.KernelHandle) -> None:
            handles.append(handle)
            ready.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: callback.serve(outbox, ready=on_ready))
            await ready.wait()
            msg = request(
                session,
                "execute_request",
                {"code": "import threading; threading.current_thread().name"},
            )
            handles[0].receive("shell", msg)
            reply = await anyio.to_thread.run_sync(outbox.reply_to, msg["header"]["msg_id"])
            assert reply["content"]["status"] == "ok"
            handles[0].stop(timeout=0)

    anyio.run(host, backend=backend)
    results = [m for _, m in outbox.messages if m["header"]["msg_type"] == "execute_result"]
    assert results[0]["content"]["data"]["text/plain"] == repr(host_thread)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", BACKENDS)
def test_inprocess_frontend_interrupts_an_awaiting_cell(backend: str) -> None:
    async def main() -> None:
        async with Frontend.connect(InProcessTransport(backend=backend)) as fe:
            cell = fe.execute("import anyio\nawait anyio.sleep(100)")
            await fe.wait_for(
                lambda m: m.parent_id == cell and m.msg_type == "execute_input",
                what="execute_input",
            )
            await fe.interrupt()
            run = await fe.collect(cell, timeout=20)
            assert run.reply["ename"] == "KeyboardInterrupt"
            after = await fe.run("1 + 1")
            assert after.result == {"text/plain": "2"}

    anyio.run(main, backend=backend)
