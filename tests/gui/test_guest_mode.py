"""Guest mode without a toolkit: asyncio and trio run as guests of a minimal host loop.

The host here is a plain queue served on the test's thread, so these tests need no display.
They pin down what the GUI hosts rely on: the guest's timers, I/O and wake-ups from other
threads all work in steps posted to the host, the host's thread is free while the guest waits,
and the guest's result or error comes out of ``run``.
"""

from __future__ import annotations

import queue
import socket
import threading
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from cokernel.engine._caller import loop_callback_scheduler
from cokernel.gui import GuiUnavailable, check_gui
from cokernel.gui._guests import guest_for
from cokernel.gui._host import GuestHost

pytestmark = pytest.mark.timeout(30)

BACKENDS = ["asyncio", "trio"]


class QueueHost(GuestHost):
    """A host loop that runs posted callbacks from a queue, and nothing else."""

    name = "queue"

    def __init__(self) -> None:
        super().__init__()
        self._wakeups: queue.SimpleQueue[bool] = queue.SimpleQueue()
        self.passes = 0  # how many times the loop ran callbacks

    def _wake(self) -> None:
        self._wakeups.put(True)

    def _open(self) -> None:
        pass

    def _run_loop(self) -> None:
        while self._wakeups.get():
            self.passes += 1
            self._run_posted()

    def _quit_loop(self) -> None:
        self._wakeups.put(False)

    def _close(self) -> None:
        pass


def run_guest(backend: str, main: Callable[[QueueHost], Any]) -> Any:
    host = QueueHost()

    async def guest() -> Any:
        return await main(host)

    return host.run(guest, guest_for(backend))


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_guest_result_is_returned(backend: str) -> None:
    async def main(host: QueueHost) -> str:
        await anyio.sleep(0.01)
        return "done"

    assert run_guest(backend, main) == "done"


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_guest_error_is_raised(backend: str) -> None:
    async def main(host: QueueHost) -> None:
        await anyio.lowlevel.checkpoint()
        raise ValueError("from the guest")

    with pytest.raises(ValueError, match="from the guest"):
        run_guest(backend, main)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_host_runs_its_own_callbacks_while_the_guest_waits(backend: str) -> None:
    # The guest can only finish after a host-side callback (posted from another thread) ran:
    # its wait must not hold the host's thread.
    async def main(host: QueueHost) -> str:
        ran_on: list[threading.Thread] = []
        released = anyio.Event()
        call_in_loop = loop_callback_scheduler()  # the kernel's thread-safe way in

        def host_callback() -> None:
            ran_on.append(threading.current_thread())
            call_in_loop(released.set)

        threading.Thread(target=host.call_soon_threadsafe, args=(host_callback,)).start()
        with anyio.fail_after(10):
            await released.wait()
        assert ran_on == [threading.current_thread()], "host callbacks run on the host's thread"
        return "released"

    assert run_guest(backend, main) == "released"


@pytest.mark.parametrize("backend", BACKENDS)
def test_worker_threads_and_socket_io_wake_the_guest(backend: str) -> None:
    async def main(host: QueueHost) -> tuple[int, bytes]:
        value = await anyio.to_thread.run_sync(lambda: 6 * 7)
        left, right = socket.socketpair()
        with left, right:
            left.setblocking(False)
            right.setblocking(False)
            async with anyio.create_task_group() as tg:
                received: list[bytes] = []

                async def read() -> None:
                    await anyio.wait_readable(right)
                    received.append(right.recv(100))

                tg.start_soon(read)
                await anyio.sleep(0.01)
                left.send(b"ping")
        return value, received[0]

    assert run_guest(backend, main) == (42, b"ping")


@pytest.mark.parametrize("backend", BACKENDS)
def test_many_short_timers_run_in_order(backend: str) -> None:
    async def main(host: QueueHost) -> list[int]:
        order: list[int] = []

        async def sleeper(n: int) -> None:
            await anyio.sleep(n / 1000)
            order.append(n)

        async with anyio.create_task_group() as tg:
            for n in (30, 10, 20, 0):
                tg.start_soon(sleeper, n)
        return order

    assert run_guest(backend, main) == [0, 10, 20, 30]


def test_gui_requests_for_the_hosts_toolkit_or_none_pass() -> None:
    for gui, host in [("tk", "tk"), ("qt", "qt"), ("qt6", "qt"), (None, None), ("inline", "tk")]:
        check_gui(gui, host)


@pytest.mark.parametrize(
    ("gui", "host", "says"),
    [
        ("qt", "tk", "cokernel install --name cokernel-qt --host qt"),
        ("tk", "qt", "cokernel install --name cokernel-tk --host tk"),
        ("tk", None, "runs without a GUI host"),
        ("wx", "tk", "tk and qt event loops only"),
    ],
)
def test_gui_requests_for_another_toolkit_say_what_to_do(
    gui: str, host: str | None, says: str
) -> None:
    with pytest.raises(GuiUnavailable, match=says):
        check_gui(gui, host)
