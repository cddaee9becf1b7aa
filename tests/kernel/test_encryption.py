"""CurveZMQ transport encryption (JEP 145) with jupyter_client's ``transport_encryption``.

jupyter_client 8.9+ generates a Curve keypair when a KernelManager's ``transport_encryption`` is
"auto" or "required" and the kernelspec declares ``supported_encryption: ["curve"]``; it writes
``curve_publickey``/``curve_secretkey`` into the connection file, and its clients connect as
Curve clients that know the kernel's public key. Here the real cokernel kernelspec is started
that way, and clients without the key (plain, or trusting another server key) try to listen in.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import zmq
import zmq.utils.monitor
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager
from jupyter_client.session import Session

from cokernel.interfaces.zmq import curve_keys
from cokernel_harness.bench_wire import CURVE_SUFFIX, open_wire
from cokernel_harness.client import BlockingClient
from cokernel_harness.frontend import Frontend
from cokernel_harness.transport import ZMQTransport
from helpers import KERNEL_NAME, STARTUP_TIMEOUT

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CurveZMQ"),
]

HANDSHAKE_TIMEOUT = 30.0

KernelPair = tuple[KernelManager, BlockingKernelClient]


@pytest.fixture(scope="module")
def encrypted_kernel(isolated_env: Path) -> Iterator[KernelPair]:
    km = KernelManager(kernel_name=KERNEL_NAME, transport_encryption="required")
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=STARTUP_TIMEOUT)
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)


def test_the_kernelspec_declares_curve(encrypted_kernel: KernelPair) -> None:
    km, _ = encrypted_kernel
    assert km.kernel_spec is not None
    assert km.kernel_spec.metadata["supported_encryption"] == ["curve"]


def test_a_kernel_manager_requiring_encryption_runs_cells(encrypted_kernel: KernelPair) -> None:
    km, kc = encrypted_kernel
    info = json.loads(Path(km.connection_file).read_text())
    assert len(info["curve_publickey"]) == 40
    assert len(info["curve_secretkey"]) == 40
    wire = BlockingClient(kc)
    run = wire.run("import sys\nprint('secret', 6 * 7)\n6 * 7")
    assert run.status == "ok", run.reply
    assert run.stdout == "secret 42\n"
    assert run.of_type("execute_result")[0].content["data"]["text/plain"] == "42"
    control = wire.reply_message(wire.send("control", "kernel_info_request"))
    assert control.msg["content"]["status"] == "ok"
    assert kc.is_alive()  # the heartbeat answers the encrypted client too


def _handshake_events(sock: zmq.Socket[bytes]) -> zmq.Socket[bytes]:
    return sock.get_monitor_socket(
        zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
        | zmq.EVENT_HANDSHAKE_FAILED_AUTH
        | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
        | zmq.EVENT_HANDSHAKE_SUCCEEDED
    )


def _first_handshake_event(monitor: zmq.Socket[bytes]) -> int:
    assert monitor.poll(int(HANDSHAKE_TIMEOUT * 1000)), "no handshake event"
    event: dict[str, Any] = zmq.utils.monitor.recv_monitor_message(monitor)
    return int(event["event"])


@pytest.mark.parametrize("client", ["plain", "wrong-server-key"])
def test_a_client_without_the_kernels_key_gets_no_replies_and_no_outputs(
    encrypted_kernel: KernelPair, client: str
) -> None:
    km, kc = encrypted_kernel
    info = km.get_connection_info()
    session = Session(key=info["key"], signature_scheme=info["signature_scheme"])
    context = zmq.Context()
    sockets: list[zmq.Socket[bytes]] = []
    try:
        shell, iopub = context.socket(zmq.DEALER), context.socket(zmq.SUB)
        sockets += [shell, iopub]
        for sock in (shell, iopub):
            sock.linger = 0
            if client == "wrong-server-key":
                public, secret = zmq.curve_keypair()
                sock.curve_publickey, sock.curve_secretkey = public, secret
                sock.curve_serverkey = zmq.curve_keypair()[0]  # trusts some other server
        iopub.setsockopt(zmq.SUBSCRIBE, b"")
        monitors = [_handshake_events(shell), _handshake_events(iopub)]
        sockets += monitors
        shell.connect(f"tcp://{info['ip']}:{info['shell_port']}")
        iopub.connect(f"tcp://{info['ip']}:{info['iopub_port']}")
        # Even with the right HMAC key, the request cannot reach the kernel.
        session.send(shell, "execute_request", {"code": "print('leaked')", "silent": False})
        for monitor in monitors:
            assert _first_handshake_event(monitor) != zmq.EVENT_HANDSHAKE_SUCCEEDED
        # The encrypted client meanwhile gets its reply and outputs.
        run = BlockingClient(kc).run("print('for the keyholder only')")
        assert run.stdout == "for the keyholder only\n"
        assert shell.poll(0) == 0
        assert iopub.poll(0) == 0
    finally:
        for sock in sockets:
            sock.close(linger=0)
        context.term()


def test_keys_must_come_as_a_pair_of_z85_strings() -> None:
    public, secret = (k.decode() for k in zmq.curve_keypair())
    assert curve_keys({}) is None
    assert curve_keys({"curve_publickey": public, "curve_secretkey": secret}) == (
        public.encode(),
        secret.encode(),
    )
    with pytest.raises(ValueError, match="curve_secretkey"):
        curve_keys({"curve_publickey": public})
    with pytest.raises(ValueError, match="curve_publickey"):
        curve_keys({"curve_publickey": "x" * 12, "curve_secretkey": secret})


def test_the_harness_speaks_curve_to_an_encrypted_kernel(isolated_env: Path) -> None:
    async def main() -> None:
        async with Frontend.launch(KERNEL_NAME, encryption="required") as fe:
            transport = fe.transport
            assert isinstance(transport, ZMQTransport)
            assert transport.manager is not None
            assert transport.manager.curve_publickey is not None
            run = await fe.run("print('over curve')")
            assert run.stdout == "over curve\n"

    anyio.run(main)


def test_the_bench_wire_speaks_curve_to_an_encrypted_kernel(isolated_env: Path) -> None:
    wire = open_wire(KERNEL_NAME + CURVE_SUFFIX)
    try:
        wire.start(STARTUP_TIMEOUT)
        assert wire.manager.curve_publickey is not None
        assert wire.kernel_info["status"] == "ok"
    finally:
        wire.close()
