"""Start cokernel where Enterprise Gateway's remote process proxies put it (a pod, a container).

Enterprise Gateway (EG) does not launch a remote kernel itself: it runs a *launcher* in the
kernel's pod or container and waits for the launcher to call back. This module is that
launcher for cokernel (``cokernel-eg-launcher``, or ``python -m cokernel.launcher``)::

    cokernel-eg-launcher --kernel-id ID --response-address IP:PORT --public-key KEY \\
        [--port-range LOW..HIGH] [--ip 0.0.0.0] [kernel options such as --backend=trio]

What it does, in EG's launcher protocol (version 1):

1. Picks five free ports (within ``--port-range`` if given) and a fresh HMAC key, and writes a
   connection file for the kernel.
2. Opens the *communication port*: a TCP listener (also within the range) on which EG sends
   one JSON request per connection, ended by the connection's end: ``{"signum": N}`` (signal
   the kernel; 0 only asks whether it still runs) or ``{"shutdown": 1}`` (stop).
3. Starts the kernel (``python -m cokernel start -f FILE``) as a child process.
4. Sends the connection information (the connection file's fields plus ``pid``, ``pgid``,
   ``comm_port`` and ``kernel_id``) to the response address: the JSON is encrypted with a fresh
   16-byte AES key (ECB, PKCS#7 padding) and base64-encoded; the AES key is encrypted with EG's
   RSA public key (``--public-key``: base64 DER, PKCS#1 v1.5) and base64-encoded; both go in a
   JSON object ``{"version": 1, "key": ..., "conn_info": ...}``, which is sent base64-encoded
   over one TCP connection that the launcher then closes.
5. Serves the communication port until EG asks for a shutdown or the kernel ends. Once the
   kernel has ended the port closes, so EG's liveness poll (``{"signum": 0}``) is refused.

The older ``--RemoteProcessProxy.kernel-id``-style spellings of the options are accepted too,
and so are the environment variables EG's container launchers set in a kernel's pod or
container (``KERNEL_ID``, ``RESPONSE_ADDRESS``, ``PUBLIC_KEY``, ``PORT_RANGE``,
``KERNEL_SPARK_CONTEXT_INIT_MODE``): an image's command can then be ``cokernel-eg-launcher``.
``--spark-context-initialization-mode`` and ``--cluster-type`` are accepted for kernelspecs
written for EG's own launchers; cokernel starts no Spark or Dask context, so only ``none``
(or ``spark`` with mode ``none``) is valid. Any other argument goes to the kernel.

Encryption needs the ``cryptography`` package (``pip install 'cokernel[eg]'``).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import logging
import os
import random
import secrets
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

LAUNCHER_VERSION = 1
MIN_PORT_RANGE = 1000  # as EG asks of a port range (EG_MIN_PORT_RANGE_SIZE)
PORT_RETRIES = 20
REQUEST_LIMIT = 64 * 1024  # a listener request larger than this is not EG's
REQUEST_TIMEOUT = 10.0  # seconds a peer gets to send its request once connected
STOP_GRACE = 10.0  # seconds the kernel gets to end after SIGTERM before SIGKILL

log = logging.getLogger("cokernel.launcher")


class LauncherError(Exception):
    """The launcher cannot go on (bad arguments, no free port in range, EG unreachable)."""


# -- arguments --------------------------------------------------------------------------------
@dataclass
class LaunchOptions:
    kernel_id: str
    public_key: str
    response_address: str | None
    port_range: tuple[int, int]
    ip: str
    kernel_args: list[str]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cokernel-eg-launcher",
        description="Start cokernel under Enterprise Gateway's launcher protocol.",
        allow_abbrev=False,  # a kernel option must never pass for an abbreviated one of ours
    )
    for name, meta, text in (
        ("kernel-id", "ID", "the kernel's id as Enterprise Gateway knows it"),
        ("response-address", "IP:PORT", "where to send the connection information"),
        ("public-key", "KEY", "EG's RSA public key (base64 DER) to encrypt it with"),
        ("port-range", "LOW..HIGH", "the ports the kernel and the listener may use"),
        ("spark-context-initialization-mode", "MODE", "only 'none' (no Spark context)"),
        ("cluster-type", "TYPE", "only 'none' (no Spark or Dask cluster)"),
    ):
        parser.add_argument(
            f"--{name}",
            f"--RemoteProcessProxy.{name}",
            dest=name.replace("-", "_"),
            metavar=meta,
            help=text,
        )
    parser.add_argument(
        "--ip", default="0.0.0.0", help="the address the kernel binds (default: every interface)"
    )
    return parser


def parse_port_range(text: str | None) -> tuple[int, int]:
    """``LOW..HIGH`` as a pair; (0, 0) (any free port) when absent or ``0..0``."""
    if not text:
        return 0, 0
    low_text, sep, high_text = text.partition("..")
    try:
        if not sep:
            raise ValueError("no '..'")
        low, high = int(low_text), int(high_text)
    except ValueError as e:
        raise LauncherError(f"port range {text!r} is not LOW..HIGH ({e})") from None
    if (low, high) == (0, 0):
        return 0, 0
    if not 0 < low < high <= 65535:
        raise LauncherError(f"port range {text!r}: need 0 < LOW < HIGH <= 65535")
    if high - low < MIN_PORT_RANGE:
        raise LauncherError(f"port range {text!r} spans fewer than {MIN_PORT_RANGE} ports")
    return low, high


# Where an option is absent, the environment EG's Kubernetes and Docker launchers give the
# kernel's container supplies it (the first variable set wins).
ENVIRONMENT = {
    "kernel_id": ("KERNEL_ID",),
    "response_address": ("RESPONSE_ADDRESS", "EG_RESPONSE_ADDRESS"),
    "public_key": ("PUBLIC_KEY", "EG_PUBLIC_KEY"),
    "port_range": ("PORT_RANGE", "EG_PORT_RANGE"),
    "spark_context_initialization_mode": ("KERNEL_SPARK_CONTEXT_INIT_MODE",),
}


def parse_args(argv: Sequence[str], environ: dict[str, str] | None = None) -> LaunchOptions:
    """The launcher's options; everything it does not know is kept for the kernel."""
    args, rest = _parser().parse_known_args(list(argv))
    env = os.environ if environ is None else environ
    for dest, names in ENVIRONMENT.items():
        if getattr(args, dest) is None:
            setattr(args, dest, next((env[n] for n in names if env.get(n)), None))
    if not args.kernel_id:
        raise LauncherError("--kernel-id is required")
    if not args.public_key:
        raise LauncherError("--public-key is required")
    mode = (args.spark_context_initialization_mode or "none").lower()
    cluster = (args.cluster_type or "none").lower()
    if mode != "none" or cluster not in ("none", "spark"):
        raise LauncherError(
            "cokernel starts no Spark or Dask context: use "
            "--spark-context-initialization-mode none (and --cluster-type none)"
        )
    if args.response_address is not None:
        host, sep, port = args.response_address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise LauncherError(f"response address {args.response_address!r} is not IP:PORT")
    return LaunchOptions(
        kernel_id=args.kernel_id,
        public_key=args.public_key,
        response_address=args.response_address,
        port_range=parse_port_range(args.port_range),
        ip=args.ip,
        kernel_args=rest,
    )


# -- ports ------------------------------------------------------------------------------------
def bind_port(port_range: tuple[int, int], ip: str = "0.0.0.0") -> socket.socket:
    """A TCP socket bound to a free port within ``port_range`` ((0, 0): any free port)."""
    low, high = port_range
    for _ in range(PORT_RETRIES):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((ip, random.randint(low, high) if high else 0))
        except OSError:
            sock.close()
            continue
        return sock
    raise LauncherError(f"no free port in {low}..{high} after {PORT_RETRIES} tries")


def select_ports(count: int, port_range: tuple[int, int], ip: str = "0.0.0.0") -> list[int]:
    """``count`` distinct free ports (held together while choosing, then released)."""
    sockets = [bind_port(port_range, ip) for _ in range(count)]
    try:
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


# -- the connection information ----------------------------------------------------------------
def encrypt_connection_info(info: dict[str, Any], public_key: str) -> bytes:
    """The version-1 payload EG's response manager decodes (see the module's docstring)."""
    try:
        from cryptography.hazmat.primitives import padding as symmetric_padding
        from cryptography.hazmat.primitives.asymmetric import padding, rsa
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
        from cryptography.hazmat.primitives.serialization import load_der_public_key
    except ImportError as e:
        raise LauncherError(
            f"encrypting the connection information needs 'cryptography' "
            f"(pip install 'cokernel[eg]'): {e}"
        ) from None
    try:
        key = load_der_public_key(base64.b64decode(public_key.encode(), validate=True))
    except ValueError as e:
        raise LauncherError(f"--public-key is not a base64 DER public key: {e}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise LauncherError("--public-key is not an RSA key")
    aes_key = secrets.token_bytes(16)
    padder = symmetric_padding.PKCS7(128).padder()
    plain = padder.update(json.dumps(info).encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(aes_key), modes.ECB()).encryptor()
    sealed = encryptor.update(plain) + encryptor.finalize()
    payload = {
        "version": LAUNCHER_VERSION,
        "key": base64.b64encode(key.encrypt(aes_key, padding.PKCS1v15())).decode(),
        "conn_info": base64.b64encode(sealed).decode(),
    }
    return base64.b64encode(json.dumps(payload).encode())


def send_connection_info(address: str, payload: bytes, *, timeout: float = 30.0) -> None:
    """One TCP connection to EG's response address: the payload, then the end of it."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as sock:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
    except OSError as e:
        raise LauncherError(f"cannot send the connection information to {address}: {e}") from e


# -- the communication port -------------------------------------------------------------------
def read_request(conn: socket.socket) -> dict[str, Any]:
    """One listener request: JSON bytes until the peer ends its side (ValueError if not)."""
    conn.settimeout(REQUEST_TIMEOUT)
    data = b""
    while True:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > REQUEST_LIMIT:
            raise ValueError(f"a request longer than {REQUEST_LIMIT} bytes")
    request = json.loads(data.decode())
    if not isinstance(request, dict):
        raise ValueError(f"a request must be a JSON object, not {type(request).__name__}")
    return request


class Listener:
    """Serves EG's requests on the communication port for one kernel process."""

    def __init__(self, sock: socket.socket, kernel: subprocess.Popen[bytes]) -> None:
        self.sock = sock
        self.kernel = kernel
        self.shutdown_requested = False
        self._ended_r, self._ended_w = os.pipe()

    def _watch_kernel(self) -> None:
        self.kernel.wait()
        with contextlib.suppress(OSError):
            os.write(self._ended_w, b"x")

    def serve(self) -> None:
        """Handle requests until ``{"shutdown": ...}`` or the kernel's end."""
        threading.Thread(target=self._watch_kernel, name="kernel-watch", daemon=True).start()
        self.sock.listen(8)
        with selectors.DefaultSelector() as selector:
            selector.register(self.sock, selectors.EVENT_READ)
            selector.register(self._ended_r, selectors.EVENT_READ)
            while not self.shutdown_requested:
                ready = {key.fileobj for key, _ in selector.select()}
                if self._ended_r in ready:
                    log.info("the kernel ended (exit code %s)", self.kernel.returncode)
                    break
                conn, peer = self.sock.accept()
                with conn:
                    try:
                        request = read_request(conn)
                    except (OSError, ValueError) as e:
                        log.warning("ignored a bad request from %s: %s", peer, e)
                        continue
                self.handle(request)
        self.sock.close()
        for fd in (self._ended_r, self._ended_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def handle(self, request: dict[str, Any]) -> None:
        if "signum" in request:
            try:
                signum = int(request["signum"])
            except (TypeError, ValueError):
                log.warning("ignored a request with a bad signum: %r", request)
            else:
                self.signal(signum)
        if request.get("shutdown"):
            log.info("shutdown requested")
            self.shutdown_requested = True
        if not {"signum", "shutdown"} & request.keys():
            log.warning("ignored an unknown request: %r", request)

    def signal(self, signum: int) -> None:
        if self.kernel.poll() is not None:
            return
        if signum != 0:  # 0 is EG's liveness poll: being here, still running, answers it
            log.info("signal %d to the kernel", signum)
            with contextlib.suppress(ProcessLookupError, ValueError):
                self.kernel.send_signal(signum)


def stop_kernel(kernel: subprocess.Popen[bytes], grace: float = STOP_GRACE) -> int:
    """End the kernel process: SIGTERM, then SIGKILL if it outlives ``grace``; its exit code."""
    if kernel.poll() is None:
        kernel.terminate()
        try:
            kernel.wait(grace)
        except subprocess.TimeoutExpired:
            log.warning("the kernel ignored SIGTERM for %g s: killing it", grace)
            kernel.kill()
    return kernel.wait()


# -- main -------------------------------------------------------------------------------------
def launch(options: LaunchOptions) -> int:
    """Run the whole protocol for one kernel; returns the launcher's exit status."""
    ports = select_ports(5, options.port_range, options.ip)
    info: dict[str, Any] = {
        "shell_port": ports[0],
        "iopub_port": ports[1],
        "stdin_port": ports[2],
        "hb_port": ports[3],
        "control_port": ports[4],
        "ip": options.ip,
        "key": secrets.token_hex(32),
        "transport": "tcp",
        "signature_scheme": "hmac-sha256",
    }
    handle, connection_file = tempfile.mkstemp(
        prefix=f"kernel-{options.kernel_id}-", suffix=".json"
    )
    with os.fdopen(handle, "w") as f:
        json.dump(info, f)
    comm = bind_port(options.port_range, options.ip)
    # EG may signal the whole process group: the launcher survives an interrupt meant for
    # the kernel (a handler, not SIG_IGN, which the kernel would inherit), and passes a
    # SIGTERM (a pod being deleted) on to it.
    signal.signal(signal.SIGINT, lambda *_: None)
    command = [sys.executable, "-m", "cokernel", "start", "-f", connection_file]
    kernel = subprocess.Popen([*command, *options.kernel_args])
    signal.signal(signal.SIGTERM, lambda *_: kernel.terminate())
    try:
        if options.response_address:
            reply = info | {
                "pid": kernel.pid,
                "pgid": os.getpgid(kernel.pid),
                "comm_port": int(comm.getsockname()[1]),
                "kernel_id": options.kernel_id,
            }
            send_connection_info(
                options.response_address, encrypt_connection_info(reply, options.public_key)
            )
        Listener(comm, kernel).serve()
        return 0
    finally:
        if kernel.poll() is None:
            stop_kernel(kernel)
        comm.close()
        with contextlib.suppress(OSError):
            os.remove(connection_file)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("COKERNEL_LAUNCHER_LOG_LEVEL", "INFO").upper(),
        format="[%(levelname)1.1s %(asctime)s %(name)s] %(message)s",
    )
    try:
        return launch(parse_args(sys.argv[1:] if argv is None else argv))
    except LauncherError as e:
        print(f"cokernel-eg-launcher: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
