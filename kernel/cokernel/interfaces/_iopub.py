"""iopub's XPUB socket: subscriptions are applied by hand, so a welcome is always first.

Protocol 5.4 answers each subscription with ``iopub_welcome``, which tells the client that its
subscription is live. A client (jupyter_kernel_test, a frontend that waits for it) takes the
welcome as the first message it will see, so nothing may reach a new subscriber before it.

With libzmq's automatic subscriptions that cannot be promised. libzmq applies a subscription
while it processes its socket commands, and a ``send`` processes them too: a subscription that
arrived just before the io thread sent a ``status`` made that status the subscriber's first
message, and the welcome came second (CI, once, at kernel start). ``XPUB_MANUAL`` leaves the
subscription to the application: the new subscriber gets nothing until the io thread reads the
subscription, subscribes that pipe and sends the welcome, in that order and on the same thread.
"""

from __future__ import annotations

import zmq

from cokernel.protocol._messages import Session


def configure(sock: zmq.Socket[bytes]) -> None:
    """Report every subscription, and apply none until :func:`serve_subscriptions` has."""
    sock.setsockopt(zmq.XPUB_VERBOSE, 1)
    sock.setsockopt(zmq.XPUB_MANUAL, 1)


def serve_subscriptions(sock: zmq.Socket[bytes], session: Session) -> None:
    """Apply the (un)subscriptions queued on ``sock``, welcoming each new subscriber.

    In manual mode ``setsockopt(SUBSCRIBE)`` applies to the pipe whose subscription was read
    last, so each one is applied right after it is read. A pipe that closes is dropped from the
    subscriptions by libzmq itself; its ``\\x00`` message then unsubscribes nothing.
    """
    while True:
        try:
            event = sock.recv(zmq.NOBLOCK)
        except zmq.Again:
            return
        kind, topic = event[:1], event[1:]
        if kind == b"\x01":
            sock.setsockopt(zmq.SUBSCRIBE, topic)
            welcome = session.msg("iopub_welcome", {"subscription": topic.decode(errors="replace")})
            sock.send_multipart(session.serialize(welcome, [topic]))
        elif kind == b"\x00":
            sock.setsockopt(zmq.UNSUBSCRIBE, topic)
