"""A transport to a kernel behind a Jupyter Server or a kernel gateway: REST plus one websocket.

This is how JupyterLab reaches a kernel it did not launch itself. The kernels REST API
(``/api/kernels``) starts a kernel by name, interrupts, restarts and shuts it down; every
message of every channel then travels over one websocket, ``/api/kernels/<id>/channels``.
A token (``Authorization: token T``) authenticates both.

Two wire formats exist on that websocket, and the server picks one during the handshake:

- ``v1.kernel.websocket.jupyter.org`` (asked for first): binary frames. A little-endian
  uint64 count ``n`` of offsets, then ``n`` uint64 offsets from the frame's start; bytes
  ``offsets[0]:offsets[1]`` name the channel, and each following span is one message part
  (header, parent header, metadata, content as JSON, then the binary buffers).
- the legacy format (a server that selects no subprotocol, such as Jupyter Server relaying to
  a gateway): one JSON text frame per message with a ``channel`` key; a message with binary
  buffers is a binary frame of a big-endian uint32 part count, one uint32 offset per part, the
  JSON message, then the buffers.

Nothing is signed on this side: the server holds the kernel's key and signs for us. The
websocket lives on two threads (a reader and a writer), as :class:`ZMQTransport`'s sockets
live on one, so the transport works from asyncio and trio alike.

Interrupts go through REST (``POST /api/kernels/<id>/interrupt``), as JupyterLab sends them;
the server (or the gateway behind it) then interrupts the kernel the way its kernelspec asks.
"""

from __future__ import annotations

import contextlib
import json
import queue
import struct
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import aiologic
import anyio
import anyio.to_thread
from jupyter_client.jsonutil import extract_dates, json_default
from jupyter_client.session import Session

from cokernel_harness.messages import Arrival
from cokernel_harness.transport import CHANNELS, Transport

V1_PROTOCOL = "v1.kernel.websocket.jupyter.org"
# How long drain() waits for the kernel to confirm it received what was sent (see drain).
DELIVERY_PATIENCE = 10.0

__all__ = [
    "V1_PROTOCOL",
    "ServerError",
    "WebSocketTransport",
    "decode_legacy",
    "decode_v1",
    "encode_legacy",
    "encode_v1",
]


class ServerError(RuntimeError):
    """The server answered a REST call with an error (the message has its status and body)."""


# -- wire formats -----------------------------------------------------------------------------
def encode_v1(channel: str, parts: list[bytes]) -> bytes:
    """One binary frame of the v1 protocol: channel ``channel``, message parts ``parts``."""
    name = channel.encode()
    count = len(parts) + 2  # where the channel starts, where it ends, where each part ends
    offsets = [8 * (1 + count)]
    offsets.append(offsets[0] + len(name))
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    head = struct.pack(f"<{count + 1}Q", count, *offsets)
    return b"".join([head, name, *parts])


def decode_v1(frame: bytes) -> tuple[str, list[bytes]]:
    """The channel and the message parts of a v1 binary frame; ValueError if malformed."""
    if len(frame) < 8:
        raise ValueError(f"a v1 frame of {len(frame)} bytes has no offset count")
    (count,) = struct.unpack_from("<Q", frame)
    if count < 2 or len(frame) < 8 * (1 + count):
        raise ValueError(f"a v1 frame of {len(frame)} bytes cannot hold {count} offsets")
    offsets = struct.unpack_from(f"<{count}Q", frame, 8)
    if list(offsets) != sorted(offsets) or offsets[-1] > len(frame):
        raise ValueError(f"v1 offsets {offsets} do not fit a frame of {len(frame)} bytes")
    channel = frame[offsets[0] : offsets[1]].decode()
    parts = [frame[offsets[i] : offsets[i + 1]] for i in range(1, count - 1)]
    return channel, parts


def encode_legacy(channel: str, msg: dict[str, Any]) -> str | bytes:
    """A legacy frame: JSON text, or the binary layout when the message carries buffers."""
    body = {k: v for k, v in msg.items() if k != "buffers"} | {"channel": channel}
    text = json.dumps(body, default=json_default)
    buffers = [bytes(b) for b in msg.get("buffers") or ()]
    if not buffers:
        return text
    pieces = [text.encode(), *buffers]
    offsets = [4 * (len(pieces) + 1)]
    for piece in pieces[:-1]:
        offsets.append(offsets[-1] + len(piece))
    return struct.pack(f"!{len(pieces) + 1}I", len(pieces), *offsets) + b"".join(pieces)


def decode_legacy(frame: str | bytes) -> tuple[str, dict[str, Any]]:
    """The channel and the message of a legacy frame; ValueError if malformed."""
    buffers: list[bytes] = []
    if isinstance(frame, bytes):
        if len(frame) < 4:
            raise ValueError(f"a binary frame of {len(frame)} bytes has no part count")
        (count,) = struct.unpack_from("!I", frame)
        if count < 1 or len(frame) < 4 * (count + 1):
            raise ValueError(f"a binary frame of {len(frame)} bytes cannot hold {count} offsets")
        offsets = [*struct.unpack_from(f"!{count}I", frame, 4), len(frame)]
        pieces = [frame[offsets[i] : offsets[i + 1]] for i in range(count)]
        text: str | bytes = pieces[0]
        buffers = pieces[1:]
    else:
        text = frame
    msg = json.loads(text)
    if not isinstance(msg, dict):
        raise ValueError("a legacy frame must hold a JSON object")
    channel = msg.pop("channel", None)
    if not isinstance(channel, str):
        raise ValueError("a legacy frame names no channel")
    msg["buffers"] = buffers
    return channel, msg


def _message(header: Any, parent: Any, metadata: Any, content: Any, buffers: list[bytes]) -> Any:
    return {
        "header": extract_dates(header),
        "parent_header": extract_dates(parent),
        "metadata": metadata,
        "content": content,
        "buffers": buffers,
        "msg_id": header.get("msg_id") if isinstance(header, dict) else None,
        "msg_type": header.get("msg_type") if isinstance(header, dict) else None,
    }


def _undecodable(error: Exception) -> dict[str, Any]:
    return {
        "header": {"msg_type": "harness_undecodable", "msg_id": ""},
        "parent_header": {},
        "metadata": {},
        "content": {"error": str(error)},
        "buffers": [],
    }


# -- the transport ----------------------------------------------------------------------------
class WebSocketTransport(Transport):
    """A kernel started (and stopped) through a Jupyter Server's or a gateway's REST API.

    ``server`` is the base URL (``http://host:port/prefix``); ``kernel_name`` starts a new
    kernel of that kernelspec, ``kernel_id`` attaches to a running one (which close() then
    leaves running). ``protocol`` None asks for v1 and accepts what the server selects; ""
    forces the legacy JSON format.
    """

    interrupt_mode = "server"

    def __init__(
        self,
        server: str,
        kernel_name: str | None = None,
        *,
        kernel_id: str | None = None,
        token: str | None = None,
        protocol: str | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        if (kernel_name is None) == (kernel_id is None):
            raise ValueError("give exactly one of kernel_name or kernel_id")
        self.server = server.rstrip("/")
        self.kernel_name = kernel_name
        self.kernel_id = kernel_id
        self.token = token
        self.protocol = protocol
        self.startup_timeout = startup_timeout
        self.owns_kernel = kernel_id is None
        self.session: Session = (
            Session()
        )  # builds messages only: the server signs them for the kernel
        self.subprotocol: str | None = None
        self._inbox: aiologic.SimpleQueue[Arrival] = aiologic.SimpleQueue()
        # (channel, msg), or (None, event) to mark how far the outbox was sent (drain), or None
        self._outbox: queue.SimpleQueue[tuple[str | None, Any] | None] = queue.SimpleQueue()
        self._ws: Any = None
        self._stack = contextlib.ExitStack()
        self._threads: list[threading.Thread] = []
        self._closed_by_us = False
        self._lost: str | None = None
        # msg_id of a request the transport sent for itself -> set when its reply arrives
        self._private: dict[str, aiologic.Event] = {}

    # -- REST -----------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"} if self.token else {}

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = self._headers() | ({"Content-Type": "application/json"} if data else {})
        request = urllib.request.Request(
            self.server + path, data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=self.startup_timeout) as response:
                text = response.read()
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")[:500]
            raise ServerError(f"{method} {path}: HTTP {e.code} {e.reason}: {detail}") from e
        except urllib.error.URLError as e:
            raise ServerError(f"{method} {path}: cannot reach {self.server}: {e.reason}") from e
        return json.loads(text) if text.strip() else None

    async def rest(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One REST call to the server (``path`` below its base URL); the decoded JSON answer."""
        return await anyio.to_thread.run_sync(lambda: self._call(method, path, body))

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        if self.kernel_id is None:
            model = await self.rest("POST", "/api/kernels", {"name": self.kernel_name})
            self.kernel_id = str(model["id"])
        try:
            await anyio.to_thread.run_sync(self._connect)
        except BaseException:
            # Nobody will call close() for a transport that did not start: stop our kernel.
            with anyio.CancelScope(shield=True):
                await self.close()
            raise

    def _ws_url(self) -> str:
        parts = urllib.parse.urlsplit(self.server)
        scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
        query = urllib.parse.urlencode({"session_id": self.session.session})
        path = f"{parts.path}/api/kernels/{self.kernel_id}/channels"
        return urllib.parse.urlunsplit((scheme, parts.netloc, path, query, ""))

    def _connect(self) -> None:
        try:
            from websockets.sync.client import connect
            from websockets.typing import Subprotocol
        except ImportError as e:
            raise ImportError(
                f"the websocket transport needs 'websockets' (pip install 'cokernel[gateway]'): {e}"
            ) from e

        wanted = [] if self.protocol == "" else [Subprotocol(self.protocol or V1_PROTOCOL)]
        # Entered as a context manager (websockets 17 deprecates a bare connect()); the
        # stack closes the connection in _disconnect.
        self._stack = contextlib.ExitStack()
        self._ws = self._stack.enter_context(
            connect(
                self._ws_url(),
                subprotocols=wanted or None,
                additional_headers=self._headers(),
                open_timeout=self.startup_timeout,
                max_size=None,
                compression=None,
                ping_interval=None,
            )
        )
        self.subprotocol = self._ws.subprotocol
        self._lost = None
        self._closed_by_us = False
        self._outbox = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._read, name="harness-ws-read", daemon=True),
            threading.Thread(target=self._write, name="harness-ws-write", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _decode(self, frame: str | bytes) -> tuple[str, dict[str, Any]]:
        if self.subprotocol == V1_PROTOCOL:
            if not isinstance(frame, bytes):
                raise ValueError("a text frame on a v1 websocket")
            channel, parts = decode_v1(frame)
            if len(parts) < 4:
                raise ValueError(f"a v1 message of {len(parts)} parts (at least 4 expected)")
            header, parent, metadata, content = (json.loads(p) for p in parts[:4])
            return channel, _message(header, parent, metadata, content, parts[4:])
        channel, msg = decode_legacy(frame)
        return channel, _message(
            msg.get("header") or {},
            msg.get("parent_header") or {},
            msg.get("metadata") or {},
            msg.get("content") or {},
            msg["buffers"],
        )

    def _read(self) -> None:
        ws = self._ws
        try:
            for frame in ws:
                arrived = time.perf_counter()
                try:
                    channel, msg = self._decode(frame)
                    if channel not in CHANNELS:
                        raise ValueError(f"unknown channel {channel!r}")
                except Exception as e:  # the server sent garbage: record it, go on
                    channel, msg = "iopub", _undecodable(e)
                parent = (msg.get("parent_header") or {}).get("msg_id")
                if parent in self._private:
                    if str(msg["header"].get("msg_type", "")).endswith("_reply"):
                        self._private[parent].set()
                    continue
                self._inbox.put((channel, msg, arrived))
        except Exception as e:  # the connection broke
            self._lost = f"{type(e).__name__}: {e}"
        else:
            self._lost = "the server closed the websocket"
        if not self._closed_by_us:
            # Say so in the log, so a wait that runs out shows why nothing more came.
            lost = _undecodable(RuntimeError(self._lost))
            lost["header"]["msg_type"] = "harness_connection_lost"
            self._inbox.put(("iopub", lost, time.perf_counter()))

    def _encode(self, channel: str, msg: dict[str, Any]) -> str | bytes:
        if self.subprotocol == V1_PROTOCOL:
            parts = [
                self.session.pack(msg["header"]),
                self.session.pack(msg.get("parent_header") or {}),
                self.session.pack(msg.get("metadata") or {}),
                self.session.pack(msg.get("content") or {}),
                *(bytes(b) for b in msg.get("buffers") or ()),
            ]
            return encode_v1(channel, parts)
        return encode_legacy(channel, msg)

    def _write(self) -> None:
        ws = self._ws
        while True:
            item = self._outbox.get()
            if item is None:
                return
            target, payload = item
            if target is None:
                payload.set()
                continue
            try:
                ws.send(self._encode(target, payload))
            except Exception as e:  # the connection is gone; later sends fail the same way
                self._lost = self._lost or f"{type(e).__name__}: {e}"

    def send(self, channel: str, msg: dict[str, Any]) -> None:
        if channel not in CHANNELS:
            raise ValueError(f"no channel {channel!r}; channels are {', '.join(CHANNELS)}")
        self._outbox.put((channel, msg))

    async def drain(self) -> None:
        """Return once the kernel has received every message sent so far (as far as it shows).

        Leaving this process is not enough behind a relay: a server and a gateway sit between
        us and the kernel, and scenarios open a gate expecting their queued requests to be in
        the kernel already. So after the writer has sent everything, a private
        ``kernel_info_request`` follows on shell: the relays keep one channel's order, so its
        reply means every earlier shell message reached the kernel. A kernel that answers
        nothing on shell while a cell blocks (a sequential one) gets :data:`DELIVERY_PATIENCE`
        seconds, then drain returns unconfirmed. The private request and everything the kernel
        sends for it never reach :meth:`receive`.
        """
        if not self._threads:
            return
        sent = aiologic.Event()
        self._outbox.put((None, sent))
        await sent
        probe = self.session.msg("kernel_info_request", {})
        answered = aiologic.Event()
        self._private[str(probe["header"]["msg_id"])] = answered
        self._outbox.put(("shell", probe))
        with anyio.move_on_after(DELIVERY_PATIENCE):
            await answered

    async def receive(self) -> Arrival:
        return await self._inbox.async_get()

    def _disconnect(self) -> None:
        self._closed_by_us = True
        self._outbox.put(None)
        if self._ws is not None:
            with contextlib.suppress(Exception):
                self._stack.close()
        for thread in self._threads:
            thread.join(10)
        self._threads = []
        self._ws = None

    # -- what only the server can do --------------------------------------------------------
    async def interrupt(self) -> None:
        """``POST /api/kernels/<id>/interrupt``: the server interrupts as the kernelspec asks."""
        await self.rest("POST", f"/api/kernels/{self.kernel_id}/interrupt")

    async def signal_interrupt(self) -> None:
        raise RuntimeError("no signals through a server: interrupt() asks it over REST")

    async def restart(self) -> None:
        """``POST /api/kernels/<id>/restart``, then a new websocket to the restarted kernel."""
        await anyio.to_thread.run_sync(self._disconnect)
        await self.rest("POST", f"/api/kernels/{self.kernel_id}/restart")
        await anyio.to_thread.run_sync(self._connect)

    async def kernel_model(self) -> dict[str, Any]:
        """The server's model of the kernel (id, name, execution_state, connections...)."""
        model: dict[str, Any] = await self.rest("GET", f"/api/kernels/{self.kernel_id}")
        return model

    def is_alive(self) -> bool:
        return self._ws is not None and self._lost is None

    def lost(self) -> str | None:
        """Why the websocket ended, if it did without close() ending it."""
        return None if self._closed_by_us else self._lost

    async def close(self) -> None:
        await anyio.to_thread.run_sync(self._disconnect)
        if self.owns_kernel and self.kernel_id is not None:
            with contextlib.suppress(ServerError):
                await self.rest("DELETE", f"/api/kernels/{self.kernel_id}")
