"""One kernel process and raw ZMQ sockets to it, for the fuzzer and the soak test.

Both tools must say exactly what went on the wire (forged frames included) and must never hang,
so they use pyzmq sockets directly: every receive polls with a deadline, every send has a send
timeout. A :class:`~jupyter_client.manager.KernelManager` launches any kernelspec, so the tools
measure cokernel, ipykernel or any other kernel the same way. Nothing here imports ``cokernel``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import psutil
import zmq
from jupyter_client.manager import KernelManager
from jupyter_client.session import Session

#: How long one send may wait for the kernel to take a message before it counts as refused.
SEND_TIMEOUT_MS = 10_000


class KernelGone(RuntimeError):
    """The kernel process exited, or stopped taking messages."""


@dataclass
class ProcessStats:
    """Resident memory, open file descriptors and threads of the kernel process."""

    rss_mib: float
    fds: int
    threads: int

    def to_json(self) -> dict[str, Any]:
        return {"rss_mib": round(self.rss_mib, 1), "fds": self.fds, "threads": self.threads}


class RawKernel:
    """A launched kernelspec plus DEALER sockets on shell and control (and SUBs on iopub)."""

    def __init__(self, kernel_name: str, *, startup_timeout: float = 60.0) -> None:
        self.kernel_name = kernel_name
        self.manager = KernelManager(kernel_name=kernel_name)
        self.manager.start_kernel()
        self.session: Session = self.manager.session
        self.context: zmq.Context[Any] = zmq.Context()
        self.sockets: dict[str, zmq.Socket[bytes]] = {}
        for channel in ("shell", "control"):
            self.sockets[channel] = self.dealer(channel)
        self.kernel_info: dict[str, Any] = {}
        try:
            self.kernel_info = self.request("shell", "kernel_info_request", timeout=startup_timeout)
        except BaseException:
            self.close()
            raise

    # -- sockets ----------------------------------------------------------------------------
    def _url(self, channel: str) -> str:
        info = self.manager.get_connection_info()
        return f"{info['transport']}://{info['ip']}:{info[f'{channel}_port']}"

    def dealer(self, channel: str) -> zmq.Socket[bytes]:
        """A new DEALER socket connected to ``channel`` (shell, control or stdin)."""
        sock: zmq.Socket[bytes] = self.context.socket(zmq.DEALER)
        sock.linger = 0
        sock.sndtimeo = SEND_TIMEOUT_MS
        sock.identity = self.session.bsession + channel.encode() + str(id(sock)).encode()
        sock.connect(self._url(channel))
        return sock

    def subscriber(self, rcvhwm: int = 0) -> zmq.Socket[bytes]:
        """A new SUB socket on iopub, subscribed to everything."""
        sock: zmq.Socket[bytes] = self.context.socket(zmq.SUB)
        sock.linger = 0
        sock.rcvhwm = rcvhwm
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.connect(self._url("iopub"))
        return sock

    def send_frames(self, sock: zmq.Socket[bytes], frames: list[bytes]) -> None:
        try:
            sock.send_multipart(frames)
        except zmq.Again:
            raise KernelGone(f"the kernel took no message for {SEND_TIMEOUT_MS} ms") from None

    def send(
        self, channel: str, msg_type: str, content: dict[str, Any] | None = None, **header: Any
    ) -> str:
        """Send a correctly signed message; returns its msg_id."""
        msg = self.session.msg(msg_type, content or {})
        msg["header"].update(header)
        self.send_frames(self.sockets[channel], self.session.serialize(msg))
        return str(msg["header"]["msg_id"])

    def receive(self, sock: zmq.Socket[bytes], deadline: float) -> dict[str, Any] | None:
        """The next message on ``sock`` before ``deadline`` (None if time ran out)."""
        left = deadline - time.monotonic()
        if left <= 0 or not sock.poll(int(left * 1000) + 1):
            return None
        _, parts = self.session.feed_identities(sock.recv_multipart())
        msg: dict[str, Any] = self.session.deserialize(parts)
        return msg

    def reply_to(self, channel: str, msg_id: str, timeout: float) -> dict[str, Any]:
        """Receive on ``channel`` until the reply to ``msg_id``; others are discarded."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self.receive(self.sockets[channel], deadline)
            if msg is None:
                if not self.alive():
                    raise KernelGone("the kernel process exited")
                raise TimeoutError(f"no reply to {msg_id} on {channel} within {timeout:g} s")
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg

    def request(
        self,
        channel: str,
        msg_type: str,
        content: dict[str, Any] | None = None,
        timeout: float = 30,
    ) -> dict[str, Any]:
        content_out: dict[str, Any] = self.reply_to(
            channel, self.send(channel, msg_type, content), timeout
        )["content"]
        return content_out

    # -- the process ------------------------------------------------------------------------
    def alive(self) -> bool:
        return bool(self.manager.is_alive())

    @property
    def pid(self) -> int:
        process = getattr(self.manager.provisioner, "process", None)
        if process is None:
            raise KernelGone("no local kernel process")
        return int(process.pid)

    def stats(self) -> ProcessStats:
        process = psutil.Process(self.pid)
        with process.oneshot():
            return ProcessStats(
                rss_mib=process.memory_info().rss / 2**20,
                fds=process.num_fds(),
                threads=process.num_threads(),
            )

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close(linger=0)
        self.sockets = {}
        try:
            if self.manager.has_kernel:
                self.manager.shutdown_kernel(now=not self.alive())
        finally:
            self.context.destroy(linger=0)
