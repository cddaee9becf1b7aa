"""cokernel.protocol._outbox: the bound on what the io thread has yet to send.

Real threads and real signals. The consumer is a thread the test holds back with a gate, so
"the outbox is full and stays full" is a state the test makes, never a race it hopes to win.
The end-to-end checks (a real kernel over ZMQ, both backends) are in test_backpressure.py.
"""

from __future__ import annotations

import ctypes
import signal
import threading
import time
import types
from collections.abc import Callable, Iterator

import pytest

from cokernel.protocol import Channel
from cokernel.protocol._outbox import UNIT, Outbox

pytestmark = pytest.mark.timeout(60)

WAIT = 20.0  # bound on every wait; each step happens at once when the outbox is right
BOUND = 10


def _until(condition: Callable[[], bool], what: str) -> None:
    """Until ``condition()`` holds (it reads state another thread changes), at most WAIT."""
    deadline = time.monotonic() + WAIT
    tick = threading.Event()
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        tick.wait(0.002)


class _Consumer:
    """The io thread's part: takes everything out whenever the gate is open."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.gate = threading.Event()
        self.taken: list[bytes] = []
        self.stop = False
        self.thread = threading.Thread(target=self._run, name="test-consumer", daemon=True)
        outbox.consumer = self.thread
        self.thread.start()

    def _run(self) -> None:
        tick = threading.Event()
        while not self.stop:
            self.gate.wait()
            while self.outbox:
                self.taken.append(self.outbox.take()[1][0])
            self.outbox.drained()
            tick.wait(0.001)  # the gate stays open: look again (an io thread polls)

    def close(self) -> None:
        self.stop = True
        self.gate.set()
        self.thread.join(WAIT)


@pytest.fixture
def outbox() -> Iterator[tuple[Outbox, _Consumer]]:
    box = Outbox(max_weight=BOUND)
    consumer = _Consumer(box)
    try:
        yield box, consumer
    finally:
        box.close()
        consumer.close()


def _produce(box: Outbox, count: int, start: int = 0) -> None:
    """What a producer of user output does: wait for room first, then send."""
    for n in range(start, start + count):
        if box.full:
            box.wait_for_room()
        box.put(Channel.iopub, [str(n).encode()])


def test_a_producer_waits_at_the_bound_until_the_consumer_has_drained_it(
    outbox: tuple[Outbox, _Consumer],
) -> None:
    box, consumer = outbox
    producer = threading.Thread(target=_produce, args=(box, 100), daemon=True)
    producer.start()
    _until(lambda: box.waits == 1, "the producer waits")
    assert producer.is_alive()
    assert box.weight == BOUND  # held at the bound, not one more
    consumer.gate.set()
    producer.join(WAIT)
    assert not producer.is_alive()
    _until(lambda: len(consumer.taken) == 100, "everything is taken")
    assert consumer.taken == [str(n).encode() for n in range(100)]  # in order


def test_a_large_message_weighs_one_more_per_unit(outbox: tuple[Outbox, _Consumer]) -> None:
    box, consumer = outbox
    box.put(Channel.iopub, [b"x" * (UNIT * 3 + 1)])
    assert box.weight == 4
    box.put(Channel.shell, [b"small"])
    assert box.weight == 5
    consumer.gate.set()
    _until(lambda: box.weight == 0, "the consumer takes both")


def test_the_consumer_and_a_producer_without_a_consumer_never_wait() -> None:
    box = Outbox(max_weight=BOUND)
    _produce(box, 3 * BOUND)  # no consumer at all
    assert box.waits == 0
    done = threading.Event()

    def consume_and_produce() -> None:
        _produce(box, 3 * BOUND)  # the consumer itself: it is the one that makes room
        done.set()

    box.consumer = threading.Thread(target=consume_and_produce, daemon=True)
    box.consumer.start()
    assert done.wait(WAIT)
    assert box.waits == 0
    box.consumer = threading.Thread(target=lambda: None)
    box.consumer.start()
    box.consumer.join()
    _produce(box, 3 * BOUND)  # its consumer has ended
    assert box.waits == 0


def test_close_releases_a_waiting_producer(outbox: tuple[Outbox, _Consumer]) -> None:
    box, _consumer = outbox
    producer = threading.Thread(target=_produce, args=(box, 3 * BOUND), daemon=True)
    producer.start()
    _until(lambda: box.waits == 1, "the producer waits")
    box.close()
    producer.join(WAIT)
    assert not producer.is_alive()
    assert box.weight == 3 * BOUND  # it sent on, unbounded, as before the bound


def test_a_signal_handler_never_waits(outbox: tuple[Outbox, _Consumer]) -> None:
    box, _consumer = outbox
    _produce(box, BOUND)  # full, and the consumer is held back
    assert box.full
    ran: list[int] = []

    def handler(signum: int, frame: types.FrameType | None) -> None:
        box.wait_for_room()  # e.g. a handler that prints: it may have interrupted a lock holder
        ran.append(box.waits)

    saved = signal.signal(signal.SIGUSR1, handler)
    try:
        signal.raise_signal(signal.SIGUSR1)
    finally:
        signal.signal(signal.SIGUSR1, saved)
    assert ran == [0]


def test_a_sigint_ends_a_wait_on_the_main_thread_and_a_handler_run_in_it_does_not_wait(
    outbox: tuple[Outbox, _Consumer],
) -> None:
    box, _consumer = outbox
    _produce(box, BOUND)
    nested: list[int] = []

    def handler(signum: int, frame: types.FrameType | None) -> None:
        # Runs on the waiting thread, inside the wait: waiting here would queue this message
        # behind the one that waits (and a handler must never wait).
        box.wait_for_room()
        nested.append(box.waits)
        raise KeyboardInterrupt

    main = threading.main_thread()
    assert threading.current_thread() is main

    def interrupt_once_waiting() -> None:
        _until(lambda: box.waits == 1, "the main thread waits")
        signal.pthread_kill(main.ident or 0, signal.SIGINT)

    saved = signal.signal(signal.SIGINT, handler)
    try:
        threading.Thread(target=interrupt_once_waiting, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            box.wait_for_room()
    finally:
        signal.signal(signal.SIGINT, saved)
    assert nested == [1]
    assert box.waits == 1


def test_an_interrupt_posted_to_a_waiting_thread_lands_when_the_waiters_are_woken(
    outbox: tuple[Outbox, _Consumer],
) -> None:
    """What stopping a cell on another thread does: post KeyboardInterrupt, call its wake."""
    box, _consumer = outbox
    _produce(box, BOUND)
    raised: list[BaseException] = []

    def producer() -> None:
        try:
            box.wait_for_room()
        except KeyboardInterrupt as e:
            raised.append(e)

    thread = threading.Thread(target=producer, daemon=True)
    thread.start()
    _until(lambda: box.waits == 1, "the producer waits")
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread.ident or 0), ctypes.py_object(KeyboardInterrupt)
    )
    box.wake_waiters()
    thread.join(WAIT)
    assert not thread.is_alive()
    assert len(raised) == 1


def test_a_producer_stops_waiting_for_a_consumer_held_in_the_receive_path(
    outbox: tuple[Outbox, _Consumer],
) -> None:
    """The consumer blocked inside the kernel's receive path may wait for a lock the producer
    holds (a finalizer that prints, run in kernel code): the producer must not wait for it."""
    box, _consumer = outbox
    _produce(box, BOUND)
    held = threading.Lock()
    held.acquire()  # "a kernel lock the producer's thread holds"
    in_receive = threading.Event()
    box.consumer_entries = 0

    def receive() -> None:
        in_receive.set()
        with held:  # the receive path needs it
            pass

    stuck = threading.Thread(target=box.consumer_runs, args=(receive,), daemon=True)
    box.consumer = stuck
    stuck.start()
    assert in_receive.wait(WAIT)
    box.wait_for_room()  # returns: the consumer did not move for a whole slice
    assert box.waits == 1
    assert box.consumer_busy
    held.release()
    stuck.join(WAIT)
    assert not box.consumer_busy
