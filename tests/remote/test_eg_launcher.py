"""cokernel-eg-launcher against a listener that plays Enterprise Gateway's side.

The test does what EG's response manager and remote process proxy do: it makes an RSA key
pair, hands the launcher its public key and a response address, receives the payload and
decodes it as EG does (base64 JSON; the AES key decrypted with PKCS#1 v1.5 through
pycryptodomex, the library EG uses; AES-ECB with PKCS#7 padding). It then reaches the kernel
with the decoded connection information, and sends requests over the communication port the
way EG does (one JSON object per connection): a liveness poll, an interrupt (SIGINT) the
kernel must act on, and a shutdown the launcher must end the kernel for.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

pytest.importorskip("Cryptodome", reason="the launcher test needs pip install -e '.[gateway]'")
pytest.importorskip("cryptography", reason="the launcher needs pip install -e '.[eg]'")

from Cryptodome.Cipher import AES, PKCS1_v1_5
from Cryptodome.PublicKey import RSA
from Cryptodome.Util.Padding import unpad

from cokernel_harness.frontend import Frontend
from cokernel_harness.transport import ZMQTransport
from cokernel_scenarios.gate import Gate, start_blocking_cell

pytestmark = pytest.mark.anyio

KERNEL_BACKEND = os.environ.get("COKERNEL_TEST_BACKEND", "asyncio")
PORT_RANGE = (42000, 43999)
WAIT = 60.0


class PlaysGateway:
    """EG's side of the protocol: the key pair, the response socket, the listener requests."""

    def __init__(self) -> None:
        self.private_key = RSA.generate(1024)
        pem = self.private_key.publickey().export_key("PEM").decode()
        # EG passes the PEM body only: no header, no footer, no newlines.
        self.public_key = "".join(line for line in pem.splitlines() if "-----" not in line)
        self.response = socket.create_server(("127.0.0.1", 0))
        self.response.settimeout(WAIT)

    @property
    def response_address(self) -> str:
        return f"127.0.0.1:{self.response.getsockname()[1]}"

    def receive_connection_info(self) -> dict[str, Any]:
        conn, _ = self.response.accept()
        with conn:
            conn.settimeout(WAIT)
            data = b""
            while chunk := conn.recv(1024):
                data += chunk
        payload = json.loads(base64.b64decode(data))
        assert payload["version"] == 1
        aes_key = PKCS1_v1_5.new(self.private_key).decrypt(
            base64.b64decode(payload["key"]), b"\x42"
        )
        cipher = AES.new(aes_key, AES.MODE_ECB)
        plain = unpad(cipher.decrypt(base64.b64decode(payload["conn_info"])), 16)
        info: dict[str, Any] = json.loads(plain)
        return info

    @staticmethod
    def send_request(port: int, request: bytes | dict[str, Any]) -> None:
        """One request on the communication port, as EG's process proxy sends it."""
        body = request if isinstance(request, bytes) else json.dumps(request).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
            sock.sendall(body)
            sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.response.close()


@contextlib.contextmanager
def launched(
    tmp_path: Path, *, from_environment: bool = False
) -> Iterator[tuple[PlaysGateway, subprocess.Popen[bytes], str]]:
    """The launcher as a kernelspec's argv starts it, or as a container's command (options
    in the environment EG's Kubernetes launcher sets)."""
    eg = PlaysGateway()
    kernel_id = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    options = {
        "kernel-id": kernel_id,
        "response-address": eg.response_address,
        "public-key": eg.public_key,
        "port-range": f"{PORT_RANGE[0]}..{PORT_RANGE[1]}",
        "spark-context-initialization-mode": "none",
    }
    argv = [sys.executable, "-m", "cokernel.launcher", "--ip", "127.0.0.1"]
    argv.append(f"--backend={KERNEL_BACKEND}")
    env = dict(os.environ)
    if from_environment:
        env |= {
            "KERNEL_ID": options["kernel-id"],
            "RESPONSE_ADDRESS": options["response-address"],
            "PUBLIC_KEY": options["public-key"],
            "PORT_RANGE": options["port-range"],
            "KERNEL_SPARK_CONTEXT_INIT_MODE": "none",
        }
    else:
        for name, value in options.items():
            argv += [f"--RemoteProcessProxy.{name}", value]
    with open(tmp_path / "launcher.log", "wb") as log:
        launcher = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        yield eg, launcher, kernel_id
    finally:
        if launcher.poll() is None:
            # SIGTERM: the launcher passes it to the kernel, and ends when the kernel has.
            launcher.terminate()
            try:
                launcher.wait(WAIT)
            except subprocess.TimeoutExpired:
                launcher.kill()
                launcher.wait(WAIT)
        eg.close()


def _connection_file(info: dict[str, Any], path: Path) -> str:
    fields = ("shell_port", "iopub_port", "stdin_port", "hb_port", "control_port")
    data = {name: info[name] for name in fields}
    data |= {
        "ip": info["ip"],
        "key": info["key"],
        "transport": info["transport"],
        "signature_scheme": info["signature_scheme"],
    }
    path.write_text(json.dumps(data))
    return str(path)


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=WAIT).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.mark.timeout(180)
async def test_connection_info_interrupt_and_shutdown(tmp_path: Path) -> None:
    with launched(tmp_path) as (eg, launcher, kernel_id):
        info = eg.receive_connection_info()
        assert info["kernel_id"] == kernel_id
        assert info["signature_scheme"] == "hmac-sha256"
        assert info["key"]
        ports = [info[f"{name}_port"] for name in ("shell", "iopub", "stdin", "hb", "control")]
        ports.append(info["comm_port"])
        assert len(set(ports)) == 6
        assert all(PORT_RANGE[0] <= port <= PORT_RANGE[1] for port in ports), ports
        kernel = psutil.Process(info["pid"])
        assert kernel.ppid() == launcher.pid
        assert info["pgid"] == os.getpgid(info["pid"])

        transport = ZMQTransport(connection_file=_connection_file(info, tmp_path / "k.json"))
        async with Frontend.connect(transport) as fe:
            # EG's liveness poll, then garbage: neither may disturb the kernel or the listener.
            eg.send_request(info["comm_port"], {"signum": 0})
            eg.send_request(info["comm_port"], b"this is not JSON")
            eg.send_request(info["comm_port"], {"something": "else"})
            with Gate() as gate:
                cell = await start_blocking_cell(fe, gate)
                eg.send_request(info["comm_port"], {"signum": 2})  # SIGINT, as EG interrupts
                interrupted = await fe.collect(cell, timeout=WAIT)
            assert interrupted.reply["status"] == "error"
            assert interrupted.reply["ename"] == "KeyboardInterrupt"
            after = await fe.run("print('still here')", timeout=WAIT)
            assert after.stdout == "still here\n"

        eg.send_request(info["comm_port"], {"shutdown": 1})
        assert launcher.wait(WAIT) == 0, (tmp_path / "launcher.log").read_text()
        assert not kernel.is_running() or kernel.status() == psutil.STATUS_ZOMBIE
        assert _refused(info["comm_port"])


@pytest.mark.timeout(180)
async def test_the_listener_closes_when_the_kernel_ends(tmp_path: Path) -> None:
    """A kernel shut down over the protocol ends the launcher; EG's next poll is refused.

    This launcher takes its options from the environment, as in a Kubernetes pod.
    """
    with launched(tmp_path, from_environment=True) as (eg, launcher, kernel_id):
        info = eg.receive_connection_info()
        assert info["kernel_id"] == kernel_id
        assert PORT_RANGE[0] <= info["comm_port"] <= PORT_RANGE[1]
        transport = ZMQTransport(connection_file=_connection_file(info, tmp_path / "k.json"))
        async with Frontend.connect(transport) as fe:
            reply = await fe.request("control", "shutdown_request", {"restart": False})
            assert reply["status"] == "ok"
        assert launcher.wait(WAIT) == 0, (tmp_path / "launcher.log").read_text()
        assert _refused(info["comm_port"])


@pytest.mark.timeout(180)
def test_sigterm_to_the_launcher_stops_the_kernel(tmp_path: Path) -> None:
    """What a pod's deletion does: SIGTERM to the launcher ends the kernel, then the launcher."""
    with launched(tmp_path) as (eg, launcher, _):
        info = eg.receive_connection_info()
        kernel = psutil.Process(info["pid"])
        launcher.terminate()
        assert launcher.wait(WAIT) == 0, (tmp_path / "launcher.log").read_text()
        assert not kernel.is_running() or kernel.status() == psutil.STATUS_ZOMBIE


def test_bad_arguments_get_a_clear_error() -> None:
    launcher = [sys.executable, "-m", "cokernel.launcher"]
    run = subprocess.run(
        [*launcher, "--kernel-id", "k", "--public-key", "x", "--port-range", "100..200"],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert run.returncode == 2
    assert "port range '100..200' spans fewer than 1000 ports" in run.stderr
    run = subprocess.run(
        [*launcher, "--kernel-id", "k"],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert run.returncode == 2
    assert "--public-key is required" in run.stderr
