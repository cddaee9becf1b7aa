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
"""

from __future__ import annotations

import argparse
import json
import sys
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


def serve(info: dict[str, Any]) -> None:
    """Answer requests on the sockets of ``info`` until a shutdown_request."""
    session = Session(
        key=str(info.get("key", "")).encode(),
        signature_scheme=str(info.get("signature_scheme", "hmac-sha256")),
    )
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    shell = _bind(context, zmq.ROUTER, info, "shell_port")
    control = _bind(context, zmq.ROUTER, info, "control_port")
    iopub = _bind(context, zmq.PUB, info, "iopub_port")
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
            content: dict[str, Any] = {"status": "ok"}
            if msg_type == "kernel_info_request":
                content = dict(_KERNEL_INFO)
            elif msg_type == "execute_request":
                count += 1
                content = {"status": "ok", "execution_count": count, "user_expressions": {}}
            elif msg_type == "shutdown_request":
                content = {"status": "ok", "restart": False}
                running = False
            reply_type = msg_type.removesuffix("_request") + "_reply"
            session.send(socket, reply_type, content, parent=parent, ident=identities)
            session.send(iopub, "status", {"execution_state": "idle"}, parent=parent)
    context.destroy(linger=0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cokernel_harness.bench_floor")
    parser.add_argument("-f", dest="connection_file", required=True)
    args = parser.parse_args(argv)
    with open(args.connection_file) as f:
        info = json.load(f)
    serve(info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
