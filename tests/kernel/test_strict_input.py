"""Strict input: a malformed ``subshell_id`` is refused, and drop warnings are rate-limited."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest
import zmq
from jupyter_client.manager import KernelManager
from jupyter_client.session import Session

from cokernel.protocol._droplog import BURST, DropLog
from cokernel_harness.client import BlockingClient
from helpers import KERNEL_NAME, STARTUP_TIMEOUT

pytestmark = pytest.mark.timeout(90)

BAD_IDS: list[Any] = [["a-subshell"], 7, {"id": "x"}, 1.5, True]


def send_with_subshell_id(
    wire: BlockingClient, msg_type: str, content: dict[str, Any], subshell_id: Any
) -> str:
    session: Session = wire.kc.session
    header = session.msg_header(msg_type)
    header["subshell_id"] = subshell_id
    msg = session.msg(msg_type, content, header=header)
    wire.kc.shell_channel.send(msg)
    return str(msg["header"]["msg_id"])


@pytest.mark.parametrize("subshell_id", BAD_IDS, ids=lambda v: type(v).__name__)
def test_a_request_with_a_malformed_subshell_id_gets_an_error_reply_and_never_runs(
    wire: BlockingClient, subshell_id: Any
) -> None:
    msg_id = send_with_subshell_id(
        wire, "execute_request", {"code": "ran_on_main = True"}, subshell_id
    )
    reply = wire.reply_message(msg_id)
    assert reply.msg["content"]["status"] == "error"
    assert reply.msg["content"]["ename"] == "InvalidSubshellId"
    assert type(subshell_id).__name__ in reply.msg["content"]["evalue"]
    assert "execution_count" in reply.msg["content"]
    assert [m.content["execution_state"] for m in wire.iopub(msg_id)] == ["busy", "idle"]
    # The header is not echoed back as it came: a reply names no subshell it could not have.
    assert "subshell_id" not in reply.msg["header"]
    check = wire.collect(wire.execute("'ran_on_main' in globals()"))
    assert check.of_type("execute_result")[0].content["data"]["text/plain"] == "False"


def test_a_comm_msg_with_a_malformed_subshell_id_is_dropped(wire: BlockingClient) -> None:
    setup = wire.collect(
        wire.execute(
            "seen = []\n"
            "def _target(comm, msg):\n"
            "    @comm.on_msg\n"
            "    def _(m):\n"
            "        seen.append(m['content']['data']['n'])\n"
            "        comm.send({'echo': m['content']['data']['n']})\n"
            "import comm\ncomm.get_comm_manager().register_target('strict', _target)\n"
        )
    )
    assert setup.status == "ok", setup.reply
    comm_id = "strict-comm"
    wire.send("shell", "comm_open", {"comm_id": comm_id, "target_name": "strict", "data": {}})
    send_with_subshell_id(wire, "comm_msg", {"comm_id": comm_id, "data": {"n": 1}}, [1])
    good = wire.send("shell", "comm_msg", {"comm_id": comm_id, "data": {"n": 2}})
    echo = wire.wait_for(
        lambda r: r.msg_type == "comm_msg" and r.parent_id == good, what="the echo of n=2"
    )
    assert echo.msg["content"]["data"] == {"echo": 2}
    check = wire.collect(wire.execute("seen"))
    assert check.of_type("execute_result")[0].content["data"]["text/plain"] == "[2]"


def test_drop_warnings_are_rate_limited(tmp_path: Path) -> None:
    stderr_path = tmp_path / "kernel.stderr"
    with stderr_path.open("w") as stderr:
        km = KernelManager(kernel_name=KERNEL_NAME)
        km.start_kernel(stderr=stderr)
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=STARTUP_TIMEOUT)
        info = km.get_connection_info()
        forger = Session(key=b"not the kernel's key")
        good = Session(key=info["key"], signature_scheme=info["signature_scheme"])
        context = zmq.Context()
        sock = context.socket(zmq.DEALER)
        sock.linger = 0
        try:
            sock.connect(f"tcp://{info['ip']}:{info['shell_port']}")
            for _ in range(300):
                forger.send(sock, "execute_request", {"code": "raise SystemExit"})
                good.send(sock, "no_such_message")  # not a request: dropped unanswered
            probe = good.send(sock, "kernel_info_request")
            assert sock.poll(int(STARTUP_TIMEOUT * 1000))
            _, parts = good.feed_identities(sock.recv_multipart())
            reply = good.deserialize(parts)
            assert reply["parent_header"]["msg_id"] == probe["header"]["msg_id"]
        finally:
            sock.close()
            context.term()
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
    lines = stderr_path.read_text().splitlines()
    full = [ln for ln in lines if "dropped a message" in ln or "no handler for" in ln]
    assert 1 <= len(full) <= BURST, "\n".join(full)


def test_drop_log_summarises_what_it_did_not_show() -> None:
    logger = logging.getLogger("cokernel.test-droplog")
    records: list[str] = []
    summary = threading.Event()

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())
            if "not logged one by one" in record.getMessage():
                summary.set()

    handler = Collect()
    logger.addHandler(handler)
    try:
        drops = DropLog(logger, burst=3, interval=0.2)
        for i in range(50):
            drops.warning("drop %d", i)
        assert records == ["drop 0", "drop 1", "drop 2"]
        assert summary.wait(30)
        assert (
            records[3] == "47 more dropped message(s) in the last 0.2 s were not logged one by one"
        )
        drops.warning("drop %d", 50)  # a new interval shows drops in full again
        assert records[-1] == "drop 50"
    finally:
        logger.removeHandler(handler)


def test_comm_messages_with_a_non_string_comm_id_are_ignored_without_a_handler_error(
    tmp_path: Path,
) -> None:
    stderr_path = tmp_path / "kernel.stderr"
    with stderr_path.open("w") as stderr:
        km = KernelManager(kernel_name=KERNEL_NAME)
        km.start_kernel(stderr=stderr)
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=STARTUP_TIMEOUT)
        wire = BlockingClient(kc)
        for comm_id in (["a"], {"b": 1}, 3):
            wire.send("shell", "comm_msg", {"comm_id": comm_id, "data": {}})
            wire.send("shell", "comm_close", {"comm_id": comm_id, "data": {}})
        # comm_close is served on arrival; comm_msgs in order on their lane: the last one's
        # idle comes after every message above was served.
        last = wire.send("shell", "comm_msg", {"comm_id": {"c": 2}, "data": {}})
        wire.status(last, "idle")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
    assert "handler failed" not in stderr_path.read_text()
