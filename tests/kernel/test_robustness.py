"""A real cokernel process over real ZMQ: bad input, protocol rules, liveness and lifecycle.

Orders, not durations: "answers while a cell blocks" is asserted as "the reply arrived before
the cell's execute_reply", and "the message was dropped" as "the reply to a later message on
the same socket came first" (a socket delivers in order, and these handlers answer at once).
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest
import zmq
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.connect import write_connection_file
from jupyter_client.manager import KernelManager
from jupyter_client.session import Session

from cokernel.protocol._messages import reply_type
from cokernel_harness.client import BlockingClient
from helpers import (
    DEFAULT_TIMEOUT,
    STARTUP_TIMEOUT,
    kernel_pid,
    start_kernel,
    stop_kernel,
    wait_for_exit,
)

pytestmark = pytest.mark.timeout(90)

KernelPair = tuple[KernelManager, BlockingKernelClient]


# -- raw sockets -----------------------------------------------------------------------------------
@contextmanager
def raw_socket(
    km: KernelManager, channel: str, kind: int = zmq.DEALER
) -> Iterator[zmq.Socket[bytes]]:
    """A socket of our own connected to one of the kernel's ports; closed afterwards."""
    info = km.get_connection_info()
    context = zmq.Context()
    sock = context.socket(kind)
    sock.linger = 0
    try:
        sock.connect(f"{info['transport']}://{info['ip']}:{info[f'{channel}_port']}")
        yield sock
    finally:
        sock.close()
        context.term()


def signed_session(km: KernelManager, key: bytes | None = None) -> Session:
    info = km.get_connection_info()
    return Session(
        key=info["key"] if key is None else key, signature_scheme=info["signature_scheme"]
    )


def next_reply(
    sock: zmq.Socket[bytes], session: Session, timeout: float = DEFAULT_TIMEOUT
) -> dict[str, Any]:
    assert sock.poll(int(timeout * 1000)), f"no reply within {timeout:g} s"
    _, parts = session.feed_identities(sock.recv_multipart())
    msg: dict[str, Any] = session.deserialize(parts)
    return msg


def assert_first_reply_answers(sock: zmq.Socket[bytes], session: Session, channel: str) -> None:
    """Send a valid kernel_info_request; the next reply on ``sock`` must be its reply.

    Run after sending something the kernel must drop: had it been served, its reply (or an
    error reply) would have come first.
    """
    probe = session.send(sock, "kernel_info_request")
    reply = next_reply(sock, session)
    assert reply["parent_header"]["msg_id"] == probe["header"]["msg_id"], (
        f"the kernel answered a message it should have dropped: {reply['msg_type']} to "
        f"{reply['parent_header'].get('msg_type')}"
    )
    assert reply["msg_type"] == "kernel_info_reply"
    assert reply["content"]["status"] == "ok", f"on {channel}"


# -- dropped messages ----------------------------------------------------------------------------
@pytest.mark.parametrize("channel", ["shell", "control"])
def test_badly_signed_message_is_dropped(kernel: KernelPair, channel: str) -> None:
    km, _ = kernel
    with raw_socket(km, channel) as sock:
        signed_session(km, key=b"not the kernel's key").send(
            sock, "execute_request", {"code": "raise SystemExit('must never run')"}
        )
        assert_first_reply_answers(sock, signed_session(km), channel)


@pytest.mark.parametrize("channel", ["shell", "control"])
def test_unsigned_message_is_dropped(kernel: KernelPair, channel: str) -> None:
    km, _ = kernel
    with raw_socket(km, channel) as sock:
        Session(key=b"").send(sock, "kernel_info_request")
        assert_first_reply_answers(sock, signed_session(km), channel)


def test_replayed_message_is_dropped(kernel: KernelPair) -> None:
    km, _ = kernel
    session = signed_session(km)
    with raw_socket(km, "shell") as sock:
        frames = session.serialize(session.msg("kernel_info_request"))
        sock.send_multipart(frames)
        first = next_reply(sock, session)
        assert first["msg_type"] == "kernel_info_reply"
        sock.send_multipart(frames)  # an eavesdropper sending the same frames again
        assert_first_reply_answers(sock, session, "shell")


def malformed_messages(session: Session) -> dict[str, list[bytes]]:
    """Frames the kernel must drop.

    The JSON faults are correctly signed, and unique (a nonce in the metadata part), so that
    they reach the decoder instead of being caught by the signature check or the replay guard.
    """

    def signed_parts(header: bytes, content: bytes) -> list[bytes]:
        parts = [header, b"{}", session.pack({"nonce": uuid.uuid4().hex}), content]
        return [b"<IDS|MSG>", session.sign(parts), *parts]

    good_header = session.pack(session.msg_header("kernel_info_request"))
    return {
        "one-garbage-frame": [b"\x00\xffgarbage"],
        "empty-frame": [b""],
        "no-delimiter": [b"sig", good_header, b"{}", b"{}", b"{}"],
        "too-few-frames": [b"<IDS|MSG>", b"sig", good_header],
        "non-json-header": signed_parts(b"{this is not json", b"{}"),
        "non-utf8-content": signed_parts(good_header, b"\xff\xfe{}"),
        "list-content": signed_parts(good_header, b"[1, 2]"),
        "string-header": signed_parts(b'"kernel_info_request"', b"{}"),
        "header-without-msg-type": signed_parts(b'{"msg_id": "x"}', b"{}"),
    }


@pytest.mark.parametrize("channel", ["shell", "control"])
def test_malformed_messages_are_dropped(kernel: KernelPair, channel: str) -> None:
    km, _ = kernel
    session = signed_session(km)
    with raw_socket(km, channel) as sock:
        for frames in malformed_messages(session).values():
            sock.send_multipart(frames)
        assert_first_reply_answers(sock, session, channel)


def test_malformed_messages_on_stdin_are_dropped(kernel: KernelPair) -> None:
    km, kc = kernel
    wire = BlockingClient(kc)
    cell = wire.execute("input('? ')", allow_stdin=True)
    request = wire.input_request(cell)
    stdin = kc.stdin_channel.socket
    assert stdin is not None
    for frames in malformed_messages(signed_session(km)).values():
        stdin.send_multipart(frames)
    # The reply travels behind the garbage on the same socket: the kernel got past all of it.
    wire.input_reply("still listening", parent=request.msg)
    result = wire.collect(cell)
    assert result.status == "ok", result.reply
    assert result.of_type("execute_result")[0].content["data"]["text/plain"] == "'still listening'"


@pytest.mark.parametrize("channel", ["shell", "control"])
def test_unknown_request_type_gets_an_error_reply_between_busy_and_idle(
    wire: BlockingClient, channel: str
) -> None:
    msg_id = wire.send(channel, "foo_request", {"anything": 1})
    reply = wire.reply_message(msg_id)
    iopub = wire.iopub(msg_id)

    assert reply.channel == channel
    assert reply.msg_type == "foo_reply"
    assert reply.msg["content"]["status"] == "error"
    assert reply.msg["content"]["ename"] == "UnknownMessageType"
    assert "foo_request" in reply.msg["content"]["evalue"]
    assert [m.content["execution_state"] for m in iopub] == ["busy", "idle"]


# -- iopub --------------------------------------------------------------------------------------
@pytest.mark.parametrize("topic", [b"", b"kernel."])
def test_iopub_subscription_is_welcomed(kernel: KernelPair, topic: bytes) -> None:
    km, _ = kernel
    session = signed_session(km)
    with raw_socket(km, "iopub", zmq.SUB) as sock:
        sock.setsockopt(zmq.SUBSCRIBE, topic)
        # Other clients' outputs may arrive as well; the welcome is what this waits for.
        while True:
            msg = next_reply(sock, session)
            if msg["msg_type"] == "iopub_welcome":
                break
    assert msg["content"]["subscription"] == topic.decode()
    assert msg["parent_header"] == {}


def test_a_welcome_is_the_first_message_even_while_the_kernel_publishes(tmp_path: Path) -> None:
    """libzmq applies a subscription whenever the socket runs its commands, a send included:
    with automatic subscriptions, a status or an output sent just after a subscription arrived
    reached the new subscriber before its welcome (jupyter_kernel_test's welcome test, CI,
    once). A cell that publishes without pause keeps the io thread sending, which makes that
    window wide; every subscriber that joins meanwhile must still see its welcome first.

    A kernel of its own: the flood fills its client's iopub queue, which nobody reads."""
    km, kc = start_kernel()
    try:
        session = signed_session(km)
        gate = tmp_path / "stop"
        code = (
            "import pathlib\n"
            "from IPython.display import clear_output\n"
            f"gate = pathlib.Path({str(gate)!r})\n"
            "while not gate.exists():\n"
            "    clear_output(wait=True)\n"
        )
        msg_id = kc.execute(code)
        try:
            for _ in range(20):
                with raw_socket(km, "iopub", zmq.SUB) as sock:
                    sock.setsockopt(zmq.SUBSCRIBE, b"")
                    first = next_reply(sock, session)
                    assert first["msg_type"] == "iopub_welcome", first["msg_type"]
                    # The cell's outputs follow the welcome, so the window was open. (The first
                    # subscriber may join before the cell starts: its busy comes first then.)
                    while (msg := next_reply(sock, session))["msg_type"] != "clear_output":
                        assert msg["msg_type"] in {"status", "execute_input"}, msg["msg_type"]
        finally:
            gate.touch()
        reply = kc.get_shell_msg(timeout=DEFAULT_TIMEOUT)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["status"] == "ok"
    finally:
        stop_kernel(km, kc)


# -- one reply per request -----------------------------------------------------------------------
REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("shell", "kernel_info_request", {}),
    ("shell", "connect_request", {}),
    ("shell", "comm_info_request", {}),
    ("shell", "complete_request", {"code": "import o", "cursor_pos": 8}),
    ("shell", "inspect_request", {"code": "print", "cursor_pos": 5, "detail_level": 0}),
    ("shell", "is_complete_request", {"code": "for x in y:"}),
    (
        "shell",
        "history_request",
        {"hist_access_type": "tail", "n": 3, "output": False, "raw": True},
    ),
    ("shell", "execute_request", {"code": "6 * 7", "silent": False, "allow_stdin": False}),
    ("shell", "execute_request", {"code": "1 / 0", "silent": False, "stop_on_error": False}),
    ("shell", "usage_request", {}),  # control-only: an error reply, still exactly one
    ("shell", "foo_request", {}),
    ("control", "kernel_info_request", {}),
    ("control", "usage_request", {}),
    (
        "control",
        "debug_request",
        {"seq": 1, "type": "request", "command": "initialize", "arguments": {}},
    ),
    ("control", "complete_request", {"code": "pri", "cursor_pos": 3}),
    ("control", "execute_request", {"code": "'on control'", "silent": False}),
    ("control", "interrupt_request", {}),
    ("control", "bar_request", {}),
]


def test_every_request_gets_exactly_one_reply_on_its_channel_between_busy_and_idle(
    wire: BlockingClient,
) -> None:
    # All sent at once: the rules must hold however the kernel interleaves them.
    sent = [
        (wire.send(channel, msg_type, content), channel, msg_type)
        for channel, msg_type, content in REQUESTS
    ]
    for msg_id, _, _ in sent:
        wire.status(msg_id, "idle")
    # One more round trip per channel: a duplicate reply to anything above, sent before the
    # idle we saw, would be queued on its socket before these replies.
    for channel in ("shell", "control"):
        wire.reply_message(wire.send(channel, "kernel_info_request"))

    for msg_id, channel, msg_type in sent:
        related = [r for r in wire.log if r.parent_id == msg_id]
        replies = [r for r in related if r.channel in ("shell", "control")]
        assert len(replies) == 1, f"{msg_type} on {channel}: {replies}"
        assert replies[0].channel == channel
        assert replies[0].msg_type == reply_type(msg_type)
        iopub = [r for r in related if r.channel == "iopub"]
        states = [r.msg["content"]["execution_state"] for r in iopub if r.msg_type == "status"]
        assert states == ["busy", "idle"], f"{msg_type} on {channel}"
        assert iopub[0].msg_type == "status", f"{msg_type}: busy must come first"
        assert iopub[-1].msg_type == "status", f"{msg_type}: idle must come last"


# -- liveness while a cell runs ------------------------------------------------------------------
def start_blocking_cell(wire: BlockingClient, code: str) -> str:
    """Execute ``code`` after a marker line, and return once the marker was printed."""
    marker = f"cell-started-{uuid.uuid4().hex}"
    msg_id = wire.execute(f"print({marker!r}, flush=True)\n{code}")
    wire.wait_for(
        lambda r: (
            r.parent_id == msg_id and r.msg_type == "stream" and marker in r.msg["content"]["text"]
        ),
        what="the cell's start marker",
    )
    return msg_id


# A cell blocks the main thread until the test opens its gate (creates a file): whatever the
# test receives before it opens the gate was answered while the cell blocked, however slowly.
BLOCKERS = {
    "sleeping": "import time\nwhile not os.path.exists(GATE):\n    time.sleep(0.01)",
    # Pure bytecode between the checks: the kernel's other threads need the GIL from it.
    "spinning": "while not os.path.exists(GATE):\n    for _ in range(200_000):\n        pass",
}
#: A cell that waits without blocking its thread: it awaits, and checks the gate in between.
AWAITING = "import anyio\nwhile not os.path.exists(GATE):\n    await anyio.sleep(0.01)"


@contextmanager
def blocked_cell(wire: BlockingClient, tmp_path: Path, blocker: str) -> Iterator[str]:
    """Run a cell that blocks until the ``with`` block ends; yields its msg_id."""
    gate = tmp_path / f"gate-{uuid.uuid4().hex}"
    code = AWAITING if blocker == "awaiting" else BLOCKERS[blocker]
    cell = start_blocking_cell(wire, f"import os\nGATE = {str(gate)!r}\n{code}")
    try:
        yield cell
        assert not wire.find(lambda r: r.parent_id == cell and r.channel == "shell")
    finally:
        gate.touch()
    result = wire.collect(cell)
    assert result.status == "ok", result.reply


@pytest.mark.parametrize("blocker", BLOCKERS)
def test_kernel_info_is_answered_on_control_and_shell_while_a_cell_blocks(
    wire: BlockingClient, tmp_path: Path, blocker: str
) -> None:
    with blocked_cell(wire, tmp_path, blocker):
        on_control = wire.reply_message(wire.send("control", "kernel_info_request"))
        on_shell = wire.reply_message(wire.send("shell", "kernel_info_request"))
    assert on_control.channel == "control"
    assert on_shell.channel == "shell"
    assert on_control.msg["content"]["status"] == on_shell.msg["content"]["status"] == "ok"


@pytest.mark.parametrize("blocker", BLOCKERS)
def test_completion_and_inspection_are_answered_while_a_cell_blocks(
    wire: BlockingClient, tmp_path: Path, blocker: str
) -> None:
    wire.run("answer_to_everything = 42")
    with blocked_cell(wire, tmp_path, blocker):
        complete = wire.reply_message(
            wire.send("shell", "complete_request", {"code": "answer_to_ev", "cursor_pos": 12})
        )
        inspect = wire.reply_message(
            wire.send(
                "shell",
                "inspect_request",
                {"code": "answer_to_everything", "cursor_pos": 20, "detail_level": 0},
            )
        )
    assert "answer_to_everything" in complete.msg["content"]["matches"]
    assert inspect.msg["content"]["found"] is True
    assert "42" in inspect.msg["content"]["data"]["text/plain"]


def comm_open(wire: BlockingClient, target: str) -> str:
    comm_id = uuid.uuid4().hex
    wire.send("shell", "comm_open", {"comm_id": comm_id, "target_name": target, "data": {}})
    return comm_id


def test_comm_msg_is_handled_while_a_cell_awaits_its_value(wire: BlockingClient) -> None:
    setup = wire.run(
        "import anyio, comm\n"
        "value_arrived = anyio.Event()\n"
        "received = []\n"
        "def on_open(c, open_msg):\n"
        "    @c.on_msg\n"
        "    def _(msg):\n"
        "        received.append(msg['content']['data']['value'])\n"
        "        c.send({'echo': msg['content']['data']['value']})\n"
        "        value_arrived.set()\n"
        "comm.get_comm_manager().register_target('test.await', on_open)\n"
    )
    assert setup.status == "ok", setup.reply
    comm_id = comm_open(wire, "test.await")
    # The cell can only finish if the comm_msg below is handled while it awaits.
    cell = wire.execute("with anyio.fail_after(30):\n    await value_arrived.wait()\nreceived")
    wire.wait_for(
        lambda r: r.parent_id == cell and r.msg_type == "execute_input", what="the cell to start"
    )
    sent = wire.send("shell", "comm_msg", {"comm_id": comm_id, "data": {"value": 7}})

    echo = wire.wait_for(
        lambda r: r.parent_id == sent and r.msg_type == "comm_msg", what="the comm's echo"
    )
    result = wire.collect(cell)
    assert echo.msg["content"]["data"] == {"echo": 7}
    assert result.status == "ok", result.reply
    assert result.of_type("execute_result")[0].content["data"]["text/plain"] == "[7]"


def test_comm_msg_is_handled_while_a_cell_sleeps_asynchronously(
    wire: BlockingClient, tmp_path: Path
) -> None:
    setup = wire.run(
        "import comm\n"
        "def on_open(c, open_msg):\n"
        "    c.on_msg(lambda msg: c.send({'echo': msg['content']['data']}))\n"
        "comm.get_comm_manager().register_target('test.echo', on_open)\n"
    )
    assert setup.status == "ok", setup.reply
    comm_id = comm_open(wire, "test.echo")
    # The cell awaits (in anyio.sleep) until the test opens its gate, after the echo came.
    with blocked_cell(wire, tmp_path, "awaiting"):
        sent = wire.send("shell", "comm_msg", {"comm_id": comm_id, "data": {"n": 1}})
        echo = wire.wait_for(
            lambda r: r.parent_id == sent and r.msg_type == "comm_msg", what="the comm's echo"
        )
    assert echo.msg["content"]["data"] == {"echo": {"n": 1}}


# -- lifecycle ----------------------------------------------------------------------------------
def test_shutdown_request_ends_the_process(fresh_kernel: KernelPair) -> None:
    km, kc = fresh_kernel
    wire = BlockingClient(kc)
    msg_id = wire.send("control", "shutdown_request", {"restart": False})
    reply = wire.reply_message(msg_id)
    assert reply.channel == "control"
    assert reply.msg["content"] == {"status": "ok", "restart": False}
    assert wait_for_exit(km) == 0


def test_restart_kernel_starts_a_new_process_with_a_fresh_namespace(
    fresh_kernel: KernelPair,
) -> None:
    km, kc = fresh_kernel
    assert BlockingClient(kc).run("survivor = 1").status == "ok"
    old_process = km.provisioner.process
    old_pid = kernel_pid(km)

    km.restart_kernel(now=False)
    kc.wait_for_ready(timeout=STARTUP_TIMEOUT)

    assert old_process.returncode == 0, "the old kernel did not exit by itself on shutdown_request"
    assert kernel_pid(km) != old_pid
    result = BlockingClient(kc).run("survivor")
    assert result.status == "error"
    assert result.reply["ename"] == "NameError"


LAUNCHER = """
import os, subprocess, sys
os.environ["JPY_PARENT_PID"] = str(os.getpid())
kernel = subprocess.Popen([sys.executable, "-m", "cokernel", "start", "-f", sys.argv[1]])
print(kernel.pid, flush=True)
sys.stdin.read()  # live until killed
"""


def gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def test_kernel_exits_when_its_parent_process_dies(tmp_path: Path) -> None:
    connection_file = str(tmp_path / "kernel.json")
    write_connection_file(connection_file)
    # The kernel shares the launcher's stdout pipe: once both are gone, the pipe reads EOF.
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, connection_file],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert launcher.stdout is not None
    assert launcher.stdin is not None
    pid = 0
    kc = BlockingKernelClient(connection_file=connection_file)
    try:
        line = launcher.stdout.readline()
        pid = int(line)
        kc.load_connection_file()
        kc.start_channels()
        # Serving, so its parent watch runs. (Not kc.wait_for_ready(): without a kernel manager it
        # judges liveness by heartbeat, and calls a kernel still importing under load "dead".)
        wire = BlockingClient(kc)
        wire.reply_message(wire.send("shell", "kernel_info_request"), timeout=STARTUP_TIMEOUT)

        launcher.kill()
        launcher.wait(DEFAULT_TIMEOUT)
        fd = launcher.stdout.fileno()
        while True:
            readable, _, _ = select.select([fd], [], [], DEFAULT_TIMEOUT)
            assert readable, f"kernel {pid} still runs {DEFAULT_TIMEOUT:g} s after its parent died"
            if not os.read(fd, 4096):
                break
        assert gone(pid)
    finally:
        kc.stop_channels()
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait(DEFAULT_TIMEOUT)
        if pid and not gone(pid):
            os.kill(pid, signal.SIGKILL)
        launcher.stdin.close()
        launcher.stdout.close()


# -- a client whose stdin socket connects late ------------------------------------------------------
def test_an_input_request_waits_for_a_stdin_socket_that_connects_late(kernel: KernelPair) -> None:
    # A client connects its sockets one by one (each retrying until the kernel has bound), so
    # its stdin may join after its shell has sent a cell that calls input(). The kernel's stdin
    # ROUTER would drop an input_request it cannot route yet, and the cell would wait for ever.
    km, _ = kernel
    info = km.get_connection_info()
    session = signed_session(km)
    identity = uuid.uuid4().hex.encode()
    context = zmq.Context()
    sockets: list[zmq.Socket[bytes]] = []

    def connect(kind: int, channel: str) -> zmq.Socket[bytes]:
        sock = context.socket(kind)
        sock.linger = 0
        if kind == zmq.DEALER:
            sock.setsockopt(zmq.IDENTITY, identity)
        else:
            sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.connect(f"{info['transport']}://{info['ip']}:{info[f'{channel}_port']}")
        sockets.append(sock)
        return sock

    def next_on(sock: zmq.Socket[bytes], msg_type: str) -> dict[str, Any]:
        while True:
            assert sock.poll(int(DEFAULT_TIMEOUT * 1000)), f"no {msg_type} arrived"
            _, parts = session.feed_identities(sock.recv_multipart())
            msg: dict[str, Any] = session.deserialize(parts)
            if msg["msg_type"] == msg_type:
                return msg

    try:
        iopub = connect(zmq.SUB, "iopub")
        next_on(iopub, "iopub_welcome")
        shell = connect(zmq.DEALER, "shell")
        code = "print('asking', flush=True)\nanswer = input('late? ')\nanswer"
        cell = session.send(shell, "execute_request", {"code": code, "allow_stdin": True})
        # The cell prints just before it asks: the input_request is on its way, unroutable.
        stream = next_on(iopub, "stream")
        assert stream["parent_header"]["msg_id"] == cell["header"]["msg_id"]
        stdin = connect(zmq.DEALER, "stdin")
        request = next_on(stdin, "input_request")
        assert request["content"]["prompt"] == "late? "
        session.send(stdin, "input_reply", {"value": "yes"}, parent=request)
        reply = next_on(shell, "execute_reply")
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        for sock in sockets:
            sock.close()
        context.term()
