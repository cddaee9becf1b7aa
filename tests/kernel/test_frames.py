"""cokernel.interfaces._frames: multipart messages through the backend socket, over real ZMQ."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import zmq

from cokernel.interfaces._frames import COPY_BELOW, recv_frames, send_frames

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def pair() -> Iterator[tuple[zmq.Socket[bytes], zmq.Socket[bytes]]]:
    """A connected DEALER -> ROUTER pair over TCP, as a client's shell and the kernel's."""
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.IDENTITY, b"client-1")
    dealer.connect(f"tcp://127.0.0.1:{port}")
    try:
        yield dealer, router
    finally:
        dealer.close(linger=0)
        router.close(linger=0)
        ctx.term()


def wait_readable(sock: zmq.Socket[bytes]) -> None:
    assert sock.poll(10_000, zmq.POLLIN), "nothing arrived"


def test_a_message_arrives_whole_and_in_order(
    pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]],
) -> None:
    dealer, router = pair
    frames = [b"<IDS|MSG>", b"sig", b'{"msg_id":"1"}', b"{}", b"{}", b'{"code":"x=1"}', b""]
    send_frames(dealer, frames)
    wait_readable(router)
    assert recv_frames(router) == [b"client-1", *frames]
    # and back, routed by the identity frame as the kernel replies
    send_frames(router, [b"client-1", *frames[:-1]])
    wait_readable(dealer)
    assert recv_frames(dealer) == frames[:-1]


def test_large_buffers_arrive_intact(pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]]) -> None:
    dealer, router = pair
    big = bytes(range(256)) * (COPY_BELOW // 256 * 3)  # past the zero-copy bound
    small_then_big = [b"<IDS|MSG>", b"sig", b"{}", b"{}", b"{}", b"{}", b"x" * 100, big]
    send_frames(dealer, small_then_big)
    wait_readable(router)
    assert recv_frames(router) == [b"client-1", *small_then_big]


def test_messages_back_to_back_stay_apart(
    pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]],
) -> None:
    dealer, router = pair
    for n in range(50):
        send_frames(dealer, [b"m", str(n).encode(), b"end"])
    got = []
    for _ in range(50):
        wait_readable(router)
        got.append(recv_frames(router))
    assert got == [[b"client-1", b"m", str(n).encode(), b"end"] for n in range(50)]


def test_receiving_when_nothing_waits_raises_again(
    pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]],
) -> None:
    _, router = pair
    with pytest.raises(zmq.Again):
        recv_frames(router)


def test_sending_on_a_closed_socket_raises(
    pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]],
) -> None:
    dealer, _ = pair
    dealer.close(linger=0)
    with pytest.raises(zmq.ZMQError):
        send_frames(dealer, [b"a", b"b"])
