"""Multipart messages sent and received without pyzmq's per-frame Python layer.

The io thread sends every message of the kernel, seven frames or more each, four messages per
execute. pyzmq's ``Socket.send_multipart`` checks each frame's type, then calls the Python
``Socket.send`` per frame, which combines ``zmq.SNDMORE`` (an ``enum.IntFlag``) with the flags in
Python: 22-29 us for a seven-frame message, against 4 us for the same frames handed to the
backend socket's ``send`` with plain integer flags (measured in process, TCP, pyzmq 27.3). The
receive side gains less (21 -> 16 us: the frames' system calls dominate) but takes the same path.

The frames, the order and the copy rules are pyzmq's own: small frames are copied, and a message
whose last frame (a buffer) is 64 KiB or more goes without copying (the backend copies frames
below the socket's ``copy_threshold`` anyway).
"""

from __future__ import annotations

from typing import Any

import zmq
import zmq.backend

__all__ = ["COPY_BELOW", "recv_frames", "send_frames"]

#: A message whose last frame is this large or larger is sent without copying its buffers.
COPY_BELOW = 65536

_MORE = int(zmq.SNDMORE)
_NOBLOCK = int(zmq.NOBLOCK)
_send: Any = zmq.backend.Socket.send
_recv: Any = zmq.backend.Socket.recv


def send_frames(sock: zmq.Socket[Any], frames: list[bytes]) -> None:
    """Send ``frames`` as one multipart message on ``sock`` (raises what ``send`` raises)."""
    copy = len(frames[-1]) < COPY_BELOW
    last = len(frames) - 1
    for index, frame in enumerate(frames):
        _send(sock, frame, _MORE if index < last else 0, copy)


def recv_frames(sock: zmq.Socket[Any]) -> list[bytes]:
    """The next multipart message on ``sock``; raises ``zmq.Again`` if there is none.

    ZMQ delivers a multipart message whole, so once its first frame is in, the rest are."""
    frames: list[bytes] = []
    while True:
        frame = _recv(sock, _NOBLOCK, False)
        frames.append(frame.bytes)
        if not frame.more:
            return frames
