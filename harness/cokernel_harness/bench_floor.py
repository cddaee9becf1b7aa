"""The bench's floor: a kernel process that does nothing but sign and answer.

``python -m cokernel_harness.bench_floor -f CONNECTION_FILE``

It binds the shell, control and iopub sockets of the connection file and answers every
request the way the protocol frames it, through jupyter_client's own
:class:`~jupyter_client.session.Session` (the same class the bench signs and verifies with):
``busy`` on iopub, the reply, ``idle`` on iopub. It runs no code. A round trip to it is what
the wire, the signing and two processes cost on this machine; the bench reports every other
kernel's round trip as a multiple of it ("x floor").

Kernel info and execute requests get a plausible reply; any other request gets an ``ok`` reply
of its ``*_reply`` type with no content, and ``shutdown_request`` ends the process after
answering. One thread, one poller, nothing else.

``--threads`` runs the same answers the way a kernel that stays responsive while a cell runs
must be built (cokernel, ipykernel 7, async-kernel): an io thread owns the sockets, receives
and verifies each request and hands it to a second thread, which builds and signs the three
messages and hands their frames back to the io thread to send, waking it through a pipe. The
two threads share the GIL. A round trip to it is what those two hops add to the floor, with
nothing run on either side (the bench names it ``floor-threads``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import sys
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

import zmq
from jupyter_client.session import Session

_KERNEL_INFO = {
    "status": "ok",
    "protocol_version": "5.3",
    "implementation": "bench-floor",
    "implementation_version": "1",
    "language_info": {"name": "python", "version": "", "file_extension": ".py"},
    "banner": "the bench's do-nothing floor kernel",
    "help_links": [],
}


def _bind(
    context: zmq.Context[zmq.Socket[bytes]], kind: int, info: dict[str, Any], port: str
) -> zmq.Socket[bytes]:
    socket: zmq.Socket[bytes] = context.socket(kind)
    socket.linger = 0
    socket.bind(f"{info['transport']}://{info['ip']}:{info[port]}")
    return socket


_Sockets = tuple["zmq.Socket[bytes]", "zmq.Socket[bytes]", "zmq.Socket[bytes]"]


def _open(info: dict[str, Any]) -> tuple[Session, zmq.Context[zmq.Socket[bytes]], _Sockets]:
    """The session of ``info`` and its shell, control and iopub sockets, bound."""
    session = Session(
        key=str(info.get("key", "")).encode(),
        signature_scheme=str(info.get("signature_scheme", "hmac-sha256")),
    )
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    shell = _bind(context, zmq.ROUTER, info, "shell_port")
    control = _bind(context, zmq.ROUTER, info, "control_port")
    iopub = _bind(context, zmq.PUB, info, "iopub_port")
    return session, context, (shell, control, iopub)


def _answer(msg_type: str, count: int) -> tuple[str, dict[str, Any]]:
    """The reply type and content for a request of ``msg_type`` (``count``: execution count)."""
    content: dict[str, Any] = {"status": "ok"}
    if msg_type == "kernel_info_request":
        content = dict(_KERNEL_INFO)
    elif msg_type == "execute_request":
        content = {"status": "ok", "execution_count": count, "user_expressions": {}}
    elif msg_type == "shutdown_request":
        content = {"status": "ok", "restart": False}
    return msg_type.removesuffix("_request") + "_reply", content


def serve(info: dict[str, Any]) -> None:
    """Answer requests on the sockets of ``info`` until a shutdown_request."""
    session, context, (shell, control, iopub) = _open(info)
    poller = zmq.Poller()
    poller.register(shell, zmq.POLLIN)
    poller.register(control, zmq.POLLIN)
    count = 0
    running = True
    while running:
        for socket, _ in poller.poll():
            identities, frames = session.feed_identities(socket.recv_multipart())
            request = session.deserialize(frames)
            msg_type = str(request["header"]["msg_type"])
            parent = request["header"]
            session.send(iopub, "status", {"execution_state": "busy"}, parent=parent)
            count += msg_type == "execute_request"
            reply_type, content = _answer(msg_type, count)
            running = msg_type != "shutdown_request"
            session.send(socket, reply_type, content, parent=parent, ident=identities)
            session.send(iopub, "status", {"execution_state": "idle"}, parent=parent)
    context.destroy(linger=0)


_Request = tuple["zmq.Socket[bytes]", list[bytes], dict[str, Any]]
_Frames = tuple["zmq.Socket[bytes] | None", list[bytes]]  # (None, []): the last, then stop


def serve_threaded(info: dict[str, Any]) -> None:
    """:func:`serve` with an io thread (this one) and a thread that answers (see the module)."""
    session, context, (shell, control, iopub) = _open(info)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    requests: queue.SimpleQueue[_Request] = queue.SimpleQueue()
    outbox: deque[_Frames] = deque()

    def answer() -> None:
        count = 0
        while True:
            socket, identities, request = requests.get()
            msg_type = str(request["header"]["msg_type"])
            parent = request["header"]
            count += msg_type == "execute_request"
            reply_type, content = _answer(msg_type, count)
            for target, kind, body, ident in (
                (iopub, "status", {"execution_state": "busy"}, None),
                (socket, reply_type, content, identities),
                (iopub, "status", {"execution_state": "idle"}, None),
            ):
                msg = session.msg(kind, body, parent=parent)
                outbox.append((target, session.serialize(msg, ident)))
            last = msg_type == "shutdown_request"
            if last:
                outbox.append((None, []))
            with contextlib.suppress(BlockingIOError):  # full: the io thread is awake anyway
                os.write(wake_w, b"x")
            if last:
                return

    threading.Thread(target=answer, name="floor-answer", daemon=True).start()
    poller = zmq.Poller()
    for socket in (shell, control):
        poller.register(socket, zmq.POLLIN)
    poller.register(wake_r, zmq.POLLIN)
    running = True
    while running:
        for socket, _ in poller.poll():
            if socket == wake_r:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 4096)
                continue
            identities, frames = session.feed_identities(socket.recv_multipart())
            requests.put((socket, identities, session.deserialize(frames)))
        while outbox and running:
            target, frames = outbox.popleft()
            if target is None:
                running = False
            else:
                target.send_multipart(frames)
    context.destroy(linger=0)
    for fd in (wake_r, wake_w):
        os.close(fd)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cokernel_harness.bench_floor")
    parser.add_argument("-f", dest="connection_file", required=True)
    parser.add_argument(
        "--threads", action="store_true", help="an io thread and an answering thread"
    )
    args = parser.parse_args(argv)
    with open(args.connection_file) as f:
        info = json.load(f)
    (serve_threaded if args.threads else serve)(info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
