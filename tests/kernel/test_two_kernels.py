"""Two in-process kernels at once in one process, one on asyncio and one on trio: each has its
own shell, comms, debugger session and SIGINT guards, and neither sees the other's.

Nothing a kernel changes may live at module level (issue #15): the comm publisher, the
debugger's rich results and the SIGINT guards all belong to a kernel instance.

The check runs in a fresh interpreter (this file run as a script): debugpy listens once per
process, and in-process kernels of earlier tests in the pytest process may have used it.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from jupyter_client.session import Session

import cokernel
from cokernel import KernelOptions


class Client:
    """One in-process kernel and everything it sent, with a way to wait for a message."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.session = Session(key=b"")
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self._cond = threading.Condition()
        self.handle = cokernel.start(self._receive, options=KernelOptions(backend=backend))  # type: ignore[arg-type]
        self._seq = 0

    def _receive(self, channel: str, msg: Any) -> None:
        with self._cond:
            self.messages.append((channel, msg))
            self._cond.notify_all()

    def send(self, channel: str, msg_type: str, content: dict[str, Any]) -> str:
        msg = self.session.msg(msg_type, content)
        msg["header"]["date"] = str(msg["header"]["date"])
        self.handle.receive(channel, msg)
        return str(msg["header"]["msg_id"])

    def wait_for(self, found: Any, what: str, timeout: float = 30.0) -> dict[str, Any]:
        def look() -> dict[str, Any] | None:
            for channel, msg in self.messages:
                if found(channel, msg):
                    return msg
            return None

        with self._cond:
            if not self._cond.wait_for(lambda: look() is not None, timeout):
                sent = [m["header"]["msg_type"] for _, m in self.messages]
                raise AssertionError(f"{self.backend} kernel: no {what}; it sent {sent}")
            result = look()
            assert result is not None
            return result

    def request(self, channel: str, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
        msg_id = self.send(channel, msg_type, content)
        reply = self.wait_for(
            lambda ch, m: ch == channel and m["parent_header"].get("msg_id") == msg_id,
            f"reply to {msg_type}",
        )
        self.wait_for(  # the request is over: idle follows the reply
            lambda ch, m: (
                ch == "iopub"
                and m["header"]["msg_type"] == "status"
                and m["content"]["execution_state"] == "idle"
                and m["parent_header"].get("msg_id") == msg_id
            ),
            f"idle after {msg_type}",
        )
        return reply["content"]  # type: ignore[no-any-return]

    def execute(self, code: str) -> dict[str, Any]:
        reply = self.request("shell", "execute_request", {"code": code, "silent": False})
        assert reply["status"] == "ok", reply
        return reply

    def debug(self, command: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        self._seq += 1
        dap = {"type": "request", "seq": self._seq, "command": command}
        dap["arguments"] = arguments or {}
        return self.request("control", "debug_request", dap)

    def iopub(self, msg_type: str) -> list[dict[str, Any]]:
        with self._cond:
            return [
                m
                for ch, m in self.messages
                if ch == "iopub" and m["header"]["msg_type"] == msg_type
            ]


@contextmanager
def two_kernels() -> Iterator[tuple[Client, Client]]:
    first = Client("asyncio")
    try:
        second = Client("trio")
    except BaseException:
        first.handle.stop()
        raise
    try:
        yield first, second
    finally:
        for client in (second, first):
            client.handle.stop()


MAKE_COMM = """
from comm import create_comm
probe = create_comm(target_name="probe_{name}", data={{"kernel": "{name}"}})
echoes = []
probe.on_msg(lambda msg: (echoes.append(msg["content"]["data"]), probe.send({{"echo": msg["content"]["data"]}})))
secret_{name} = "{name}"
"""


@pytest.mark.timeout(150)
@pytest.mark.skipif(importlib.util.find_spec("debugpy") is None, reason="needs debugpy")
def test_two_kernels_in_one_process_share_nothing() -> None:
    done = subprocess.run(
        [sys.executable, __file__], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("two kernels: nothing shared")


def check_two_kernels() -> None:
    with two_kernels() as (a, b):
        check_isolation(a, b)
    print("two kernels: nothing shared")


def check_isolation(a: Client, b: Client) -> None:
    assert a.handle.kernel.shell is not b.handle.kernel.shell

    # Comms: each kernel's comm opens on its own iopub only.
    a.execute(MAKE_COMM.format(name="a"))
    b.execute(MAKE_COMM.format(name="b"))
    opened_a = {m["content"]["target_name"] for m in a.iopub("comm_open")}
    opened_b = {m["content"]["target_name"] for m in b.iopub("comm_open")}
    assert opened_a == {"probe_a"}
    assert opened_b == {"probe_b"}
    comm_a = a.iopub("comm_open")[0]["content"]["comm_id"]
    comm_b = b.iopub("comm_open")[0]["content"]["comm_id"]
    assert set(a.request("shell", "comm_info_request", {})["comms"]) == {comm_a}
    assert set(b.request("shell", "comm_info_request", {})["comms"]) == {comm_b}

    # A frontend's comm_msg reaches its own kernel's comm, whose answer goes back there only.
    a.send("shell", "comm_msg", {"comm_id": comm_a, "data": {"to": "a"}})
    b.send("shell", "comm_msg", {"comm_id": comm_b, "data": {"to": "b"}})
    for client, comm_id, to in ((a, comm_a, "a"), (b, comm_b, "b")):
        echo = client.wait_for(
            lambda ch, m: ch == "iopub" and m["header"]["msg_type"] == "comm_msg",
            "comm echo",
        )
        assert echo["content"] == {"comm_id": comm_id, "data": {"echo": {"to": to}}}
    assert len(a.iopub("comm_msg")) == 1
    assert len(b.iopub("comm_msg")) == 1

    # Debugger: a session on the asyncio kernel only.
    assert a.debug("initialize", {"adapterID": "python"})["success"]
    assert a.debug("attach")["success"]
    assert a.debug("debugInfo")["body"]["isStarted"] is True
    assert b.debug("debugInfo")["body"]["isStarted"] is False
    # ... its SIGINT guard is on its own shell; the other shell has none.
    shell_a, shell_b = a.handle.kernel.shell, b.handle.kernel.shell
    assert shell_a is not None
    assert shell_b is not None
    assert len(shell_a.sigint_guards) == 1
    assert shell_b.sigint_guards == []
    # ... and each debugger inspects its own kernel's namespace, with its own shell.
    seen_a = a.debug("inspectVariables")["body"]["variables"]
    seen_b = b.debug("inspectVariables")["body"]["variables"]
    assert "secret_a" in {v["name"] for v in seen_a} - {v["name"] for v in seen_b}
    assert "secret_b" in {v["name"] for v in seen_b} - {v["name"] for v in seen_a}
    rich = b.debug("richInspectVariables", {"variableName": "secret_b"})
    assert rich["success"]
    assert rich["body"]["data"]["text/plain"] == "'b'"
    missing = a.debug("richInspectVariables", {"variableName": "secret_b"})
    assert not missing["success"]

    assert a.debug("disconnect")["success"]
    assert a.debug("debugInfo")["body"]["isStarted"] is False


if __name__ == "__main__":
    check_two_kernels()
