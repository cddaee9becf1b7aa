"""The ZMQ interface: a connection file, five sockets, and two threads.

- The *io thread* owns shell, control, stdin (ROUTER) and iopub (XPUB). It polls them together
  with a wake-up pipe, verifies and decodes what arrives and hands it to the kernel, and sends
  everything the kernel queued. ZMQ sockets are not thread-safe, so no other thread touches
  them: other threads serialise their message and append the frames to an outbox.
- The *heartbeat thread* echoes pings inside ``zmq.proxy``, which holds no GIL, so the heartbeat
  survives a cell that blocks the interpreter.

iopub is an XPUB socket: each new subscription is answered with ``iopub_welcome`` (protocol 5.4+),
which tells a client its subscription is live so it cannot miss the first outputs; the
subscriptions are applied by hand so that the welcome is the first thing a subscriber gets
(:mod:`cokernel.interfaces._iopub`).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import zmq
import zmq.utils.z85

from cokernel.engine import _heldcalls as heldcalls
from cokernel.interfaces import _iopub
from cokernel.interfaces._frames import recv_frames, send_frames
from cokernel.protocol._backlog import STALL_SECONDS
from cokernel.protocol._droplog import drop_log
from cokernel.protocol._messages import Channel, Message, ProtocolError, Session
from cokernel.protocol._outbox import Outbox
from cokernel.shell._uninterruptible import uninterruptible

if TYPE_CHECKING:
    from cokernel.kernel._kernel import Kernel
    from cokernel.protocol._backlog import ShellBacklog

log = logging.getLogger("cokernel.zmq")

PORT_NAMES = {
    Channel.shell: "shell_port",
    Channel.control: "control_port",
    Channel.stdin: "stdin_port",
    Channel.iopub: "iopub_port",
    Channel.hb: "hb_port",
}


def load_connection_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a connection file; a missing file is created with free ports and a new key."""
    file = Path(path)
    if file.exists():
        info: dict[str, Any] = json.loads(file.read_text())
        return info
    info = {
        "transport": "tcp",
        "ip": "127.0.0.1",
        "key": secrets.token_hex(32),
        "signature_scheme": "hmac-sha256",
        "kernel_name": "cokernel",
        **dict.fromkeys(PORT_NAMES.values(), 0),
    }
    info["_write_back"] = str(file)
    return info


def write_private_file(path: str | os.PathLike[str], text: str) -> None:
    """Create ``path`` readable and writable by its owner only (0600) and write ``text``.

    The mode is set when the file is created (whatever the umask), so no other user can open it
    even for an instant; an existing file is an error (``O_EXCL``) rather than overwritten.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def curve_keys(info: dict[str, Any]) -> tuple[bytes, bytes] | None:
    """The CurveZMQ server keypair (public, secret) a connection file carries, or None.

    JEP 145, as jupyter_client 8.9+ writes it: ``curve_publickey`` and ``curve_secretkey``, each
    40 Z85 characters. The kernel is the Curve server on all five sockets; a client authenticates
    the kernel by its public key. A file with only one of the two, or with keys that are not
    Z85, is refused: serving it in plain text would silently break the frontend's requirement.
    """
    public, secret = info.get("curve_publickey"), info.get("curve_secretkey")
    if public is None and secret is None:
        return None
    keys = []
    for name, value in (("curve_publickey", public), ("curve_secretkey", secret)):
        if not isinstance(value, str) or len(value) != 40:
            raise ValueError(f"connection file: {name} must be a 40-character Z85 string")
        try:
            zmq.utils.z85.decode(value)
        except (ValueError, KeyError):
            raise ValueError(f"connection file: {name} is not Z85") from None
        keys.append(value.encode("ascii"))
    if not zmq.has("curve"):
        raise RuntimeError(
            "the connection file asks for CurveZMQ encryption, but this libzmq has no Curve "
            "support (zmq.has('curve') is False)"
        )
    return keys[0], keys[1]


#: After this many messages moved (received and sent), the io thread waits for a pause in the
#: traffic of TRIM_IDLE_MS and then asks the C allocator to give freed heap memory back to the
#: operating system. CPython and libzmq free a burst's buffers, but glibc keeps the pages
#: (the issue measured 46 -> 715 MiB after 100,000 comm messages, never given back).
TRIM_AFTER = 20_000
TRIM_IDLE_MS = 250


def _load_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None on other C libraries."""
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return cast(Callable[[int], int], trim)


malloc_trim = _load_malloc_trim()


#: Bounds on what the kernel holds for its clients (docs/reliability.md, "Bounded memory"):
#:
#: - IOPUB_HWM: iopub messages queued per subscriber. ZMQ PUB semantics: a subscriber that falls
#:   this far behind loses what is published until it reads again (a reading client gets
#:   everything, in order); the kernel holds at most this much for it. Chosen by measurement.
#: - SHELL_RCVHWM: shell messages ZMQ takes off the network while the kernel does not read shell
#:   (its backlog is full, see cokernel.protocol._backlog); beyond it the sender waits.
#: - The outbox (cokernel.protocol._outbox): when the io thread falls behind a cell's output
#:   loop, producers of user output wait, at a safe point, until it drains.
IOPUB_HWM = 10_000
SHELL_RCVHWM = 100

#: How long a stdin message waits for its client to connect, and how often it is retried.
UNROUTABLE_PATIENCE = 10.0
UNROUTABLE_RETRY_MS = 20


class ZMQInterface:
    """Binds the sockets of one connection file and moves messages between them and a kernel."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info
        self.session = Session(
            str(info.get("key", "")).encode(),
            scheme=str(info.get("signature_scheme", "hmac-sha256")),
        )
        self.context = zmq.Context()
        self.sockets: dict[Channel, zmq.Socket[bytes]] = {}
        self.outbox = Outbox()  # what threads queued for the io thread to send
        # stdin messages not sent yet, in order: (give-up time, frames). See _send_stdin.
        self._stdin_queue: deque[tuple[float, list[bytes]]] = deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._wake_pending = False
        self._moved = 0  # messages received and sent since the last malloc_trim
        self._closing = threading.Event()
        self._io_thread: threading.Thread | None = None
        self._hb_thread: threading.Thread | None = None
        self.kernel: Kernel | None = None
        #: The connection file this interface wrote itself (None when the frontend gave it).
        self.written_file: Path | None = None
        #: Whether the sockets are CurveZMQ servers (the connection file carried keys).
        self.encrypted = False
        self._bind()

    # -- sockets ----------------------------------------------------------------------------
    def _url(self, port: int) -> str:
        transport, ip = self.info.get("transport", "tcp"), self.info.get("ip", "127.0.0.1")
        if transport == "ipc":
            return f"ipc://{ip}-{port}"
        return f"tcp://{ip}:{port}"

    def _bind(self) -> None:
        kinds = {
            Channel.shell: zmq.ROUTER,
            Channel.control: zmq.ROUTER,
            Channel.stdin: zmq.ROUTER,
            Channel.iopub: zmq.XPUB,
            Channel.hb: zmq.ROUTER,
        }
        curve = curve_keys(self.info)
        transport = self.info.get("transport", "tcp")
        if curve is None and transport == "tcp":
            log.warning(
                "serving plain TCP on %s: the connection file has no CurveZMQ keys "
                "(curve_publickey/curve_secretkey), so code, outputs and secrets cross the "
                "network unencrypted (messages are still signed). Ask the frontend for "
                "transport encryption (jupyter_client: KernelManager.transport_encryption).",
                self.info.get("ip", "127.0.0.1"),
            )
        self.encrypted = curve is not None
        for channel, kind in kinds.items():
            sock = self.context.socket(kind)
            if curve is not None:  # before bind: every connection must complete the handshake
                sock.curve_server = True
                sock.curve_publickey, sock.curve_secretkey = curve
            sock.setsockopt(zmq.LINGER, 1000)
            # Replies are never dropped (SNDHWM 0 on the ROUTERs); iopub follows PUB semantics
            # with a per-subscriber bound; shell's receive queue is bounded, so a paused shell
            # (its backlog full) makes the sender wait.
            sock.setsockopt(zmq.SNDHWM, IOPUB_HWM if kind == zmq.XPUB else 0)
            sock.setsockopt(zmq.RCVHWM, SHELL_RCVHWM if channel is Channel.shell else 0)
            if kind == zmq.ROUTER:
                sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
            if channel is Channel.stdin:
                # A client connects its sockets one by one, each retrying (100 ms apart) until
                # the kernel has bound; its stdin may join after its shell has sent a cell.
                # ROUTER drops what it cannot route; mandatory makes that an error, so an
                # input_request waits for its client instead of vanishing (the cell would
                # wait for ever).
                sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
            if kind == zmq.XPUB:
                _iopub.configure(sock)  # subscriptions applied by hand: the welcome comes first
            port = int(self.info.get(PORT_NAMES[channel], 0) or 0)
            if port:
                sock.bind(self._url(port))
            else:
                base = f"tcp://{self.info.get('ip', '127.0.0.1')}"
                self.info[PORT_NAMES[channel]] = sock.bind_to_random_port(base)
            self.sockets[channel] = sock
        write_back = self.info.pop("_write_back", None)
        if write_back:
            write_private_file(write_back, json.dumps(self.info, indent=2))
            self.written_file = Path(write_back)

    # -- outgoing (any thread) --------------------------------------------------------------
    @uninterruptible  # a cell's interrupt between the flag and the write stalls the io thread
    def send(self, channel: Channel, msg: Message, identities: list[bytes] | None) -> None:
        """Queue a message for sending; thread-safe, never blocks."""
        frames = self.session.serialize(msg, identities)
        self.outbox.put(channel, frames)
        if not self._wake_pending:
            with contextlib.suppress(OSError):  # full (BlockingIOError): the io thread will wake
                self._wake_pending = True  # and no call until the write: no check in between
                heldcalls.write(self._wake_w, b"x")  # keeps the GIL: see engine._heldcalls

    def wake(self) -> None:
        """Make the io thread look at its outbox and sockets again (any thread)."""
        with contextlib.suppress(BlockingIOError, OSError):
            heldcalls.write(self._wake_w, b"x")

    # -- threads ----------------------------------------------------------------------------
    def start(self, kernel: Kernel) -> None:
        """Start serving ``kernel``: heartbeat now, messages once the kernel is ready."""
        self.kernel = kernel
        kernel.backlog.wake = self.wake  # a paused shell drained enough: read it again
        self._hb_thread = threading.Thread(
            target=self._heartbeat, name="cokernel-heartbeat", daemon=True
        )
        self._hb_thread.start()
        self._io_thread = threading.Thread(target=self._io_main, name="cokernel-io", daemon=True)
        self.outbox.consumer = self._io_thread
        self._io_thread.start()

    def _heartbeat(self) -> None:
        sock = self.sockets[Channel.hb]
        with contextlib.suppress(zmq.ContextTerminated, zmq.ZMQError):
            zmq.proxy(sock, sock)

    def _io_main(self) -> None:
        kernel = self.kernel
        assert kernel is not None
        kernel.started.wait()
        kernel.publish("status", {"execution_state": "starting"}, None)
        poller = zmq.Poller()
        order = (Channel.control, Channel.shell, Channel.stdin)
        for channel in order:
            poller.register(self.sockets[channel], zmq.POLLIN)
        shell, backlog = self.sockets[Channel.shell], kernel.backlog
        shell_polled = True
        stall_at: float | None = None  # while paused: when to look for a stall next
        iopub = self.sockets[Channel.iopub]
        poller.register(iopub, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        try:
            while not self._closing.is_set():
                # perf: senders write to the wake-up pipe only while this thread sleeps in poll
                # (a write hands this thread the GIL: 1,000 comm_opens cost 3 ms each that way).
                # Awake, it sends what is queued before it sleeps again: the flag goes down
                # first, then the outbox is checked, so a message queued in between is either
                # seen here or wakes the poll.
                self._wake_pending = False
                if self.outbox:
                    self._wake_pending = True
                    self._flush_outbox()
                    continue
                # Backpressure: shell is polled only while its backlog has room.
                admits = backlog.admits()
                if admits != shell_polled:
                    poller.register(shell, zmq.POLLIN if admits else 0)
                    shell_polled = admits
                timeout: int | None = None
                if self._stdin_queue:
                    timeout = UNROUTABLE_RETRY_MS
                elif self._moved >= TRIM_AFTER and malloc_trim is not None:
                    timeout = TRIM_IDLE_MS
                if admits:
                    stall_at = None
                else:
                    stall_at, stall_ms = self._next_stall_look(backlog, stall_at)
                    if stall_ms is None:
                        continue  # a stall was found and broken: poll shell again
                    timeout = stall_ms if timeout is None else min(timeout, stall_ms)
                ready = dict(poller.poll(timeout))
                self._wake_pending = True
                self._serve_ready(ready, order, kernel)
        except zmq.ContextTerminated:
            pass
        except Exception:
            log.exception("io thread failed")
        finally:
            self._flush_outbox()
            self.outbox.close()  # nobody drains it any more: producers must not wait

    @staticmethod
    def _next_stall_look(backlog: ShellBacklog, stall_at: float | None) -> tuple[float, int | None]:
        """While shell is paused: look for a stall every STALL_SECONDS (see
        cokernel.protocol._backlog), however often other traffic wakes the io thread meanwhile.

        Returns when to look next, and the poll timeout until then (None: a stall was found and
        broken, so shell is polled again at once).
        """
        now = time.monotonic()
        if stall_at is None:
            stall_at = now + STALL_SECONDS
        elif now >= stall_at:
            stall_at = now + STALL_SECONDS
            if backlog.check_stall():
                log.info("shell backlog stalled at its bound: admitting a few more")
                return stall_at, None
        return stall_at, max(1, int((stall_at - now) * 1000))

    def _serve_ready(
        self, ready: dict[Any, int], order: tuple[Channel, ...], kernel: Kernel
    ) -> None:
        """One pass over what poll found ready, then send what is queued."""
        if not ready and self._moved >= TRIM_AFTER and malloc_trim is not None:
            self._moved = 0  # a pause after a burst: give the freed memory back
            malloc_trim(0)
        iopub = self.sockets[Channel.iopub]
        if iopub in ready:
            _iopub.serve_subscriptions(iopub, self.session)
        for channel in order:  # control first: it must never wait behind shell
            sock = self.sockets[channel]
            if sock in ready:
                self._receive_all(channel, sock, kernel)
        if self._wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_r, 4096)
        self._flush_outbox()

    def _receive_all(self, channel: Channel, sock: zmq.Socket[bytes], kernel: Kernel) -> None:
        shell = channel is Channel.shell
        for _ in range(64):  # bounded, so a flood on one socket cannot starve the others
            if shell and not kernel.backlog.admits():
                return  # backpressure: the rest waits in ZMQ's queue and the sender
            try:
                frames = recv_frames(sock)
            except zmq.Again:
                return
            self._moved += 1
            try:
                identities, msg = self.session.deserialize(frames)
            except ProtocolError as e:
                drop_log.warning("dropped a message on %s: %s", channel, e)
                continue
            size = sum(map(len, frames)) if shell else 0
            self.outbox.consumer_runs(kernel.receive, channel, identities, msg, size)

    def _flush_outbox(self) -> None:
        outbox = self.outbox
        while outbox:
            channel, frames = outbox.take()
            self._moved += 1
            if channel is Channel.stdin:
                self._stdin_queue.append((time.monotonic() + UNROUTABLE_PATIENCE, frames))
                continue
            try:
                send_frames(self.sockets[channel], frames)
            except zmq.ZMQError as e:
                log.warning("could not send on %s: %s", channel, e)
        outbox.drained()  # wakes the producers waiting for room
        self._send_stdin()

    def _send_stdin(self) -> None:
        """Send queued stdin messages in order; one whose client has not connected its stdin
        socket yet (unroutable) waits, with those behind it, and is retried every
        UNROUTABLE_RETRY_MS until UNROUTABLE_PATIENCE has passed."""
        sock = self.sockets[Channel.stdin]
        while self._stdin_queue:
            give_up, frames = self._stdin_queue[0]
            try:
                sock.send_multipart(frames)
            except zmq.ZMQError as e:
                if e.errno != zmq.EHOSTUNREACH:
                    log.warning("could not send on stdin: %s", e)
                elif time.monotonic() < give_up:
                    return  # its client has not connected yet: try again shortly
                else:
                    log.warning(
                        "dropped a stdin message: its client did not connect its stdin socket "
                        "within %g s",
                        UNROUTABLE_PATIENCE,
                    )
            self._stdin_queue.popleft()

    def remove_written_file(self) -> None:
        """Remove the connection file this interface wrote itself, if any (idempotent)."""
        file, self.written_file = self.written_file, None
        if file is not None:
            with contextlib.suppress(FileNotFoundError):
                file.unlink()

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued, then close every socket and the context."""
        self._closing.set()
        self.outbox.close()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        if self._io_thread is not None:
            self._io_thread.join(timeout)
        self.context.destroy(linger=1000)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
