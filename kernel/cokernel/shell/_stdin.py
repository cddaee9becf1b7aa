"""``input()`` and ``getpass`` over the stdin channel.

A cell that calls ``input()`` sends ``input_request`` to the frontend that sent the cell (its
ROUTER identities) and blocks its own thread until the matching ``input_reply`` arrives. The wait
is interruptible: an interrupt raises KeyboardInterrupt in the waiting cell, as in a terminal.
While it waits on a shell's loop thread, the thread is *parked* (:meth:`Lender.parked
<cokernel.engine._lending.Lender.parked>`): the comm messages of its loop are run by it, so a widget that
answers the prompt still works.
"""

from __future__ import annotations

import builtins
import contextlib
import getpass
import threading
from collections.abc import Callable, Iterator
from typing import Any

from IPython.core.error import StdinNotImplementedError

from cokernel.engine._caller import Caller, threads_available
from cokernel.protocol._messages import Message
from cokernel.protocol._request import Request, current_request

# send(request, prompt, password, register): builds the input_request, calls register(msg_id)
# before it goes out (so no reply can arrive unpaired), then sends it.
SendInputRequest = Callable[[Request, str, bool, Callable[[str], None]], None]


class _Waiter:
    __slots__ = ("answered", "identities", "value", "wake")

    def __init__(self, identities: list[bytes]) -> None:
        self.identities = identities
        self.answered = False
        self.value: str | None = None
        self.wake: Callable[[], None] = lambda: None


@contextlib.contextmanager
def _plain_wait(waiter: _Waiter) -> Iterator[Callable[[Callable[[], bool]], None]]:
    """A wait for a thread that runs no loop (a worker, a thread-mode cell): nothing to lend."""
    cond = threading.Condition()

    def wake() -> None:
        with cond:
            cond.notify_all()

    def wait(until: Callable[[], bool]) -> None:
        with cond:
            while not until():
                cond.wait()

    waiter.wake = wake
    yield wait


class StdinBridge:
    """Pairs ``input_request`` with ``input_reply``.

    A reply names its request in its parent header (JupyterLab); jupyter_client's
    ``KernelClient.input()`` (jupyter console, nbclient) sends none, so such a reply goes to the
    oldest request sent to the same client identity, else to the oldest one waiting.
    """

    def __init__(self, send_request: SendInputRequest) -> None:
        self._send_request = send_request
        self._waiting: dict[str, _Waiter] = {}
        self._lock = threading.Lock()

    def ask(self, prompt: str = "", password: bool = False) -> str:
        """Ask the current request's frontend for a line; blocks this thread until it answers."""
        request = current_request.get()
        if request is None or not request.allow_stdin:
            raise StdinNotImplementedError(
                "input() is not available here: the frontend did not allow stdin for this "
                "request (allow_stdin is false), or the code is not running for a cell."
            )
        if not threads_available():  # the wait would block the one thread, which reads replies
            raise StdinNotImplementedError(
                "input() is not available in this kernel: it runs without threads (Pyodide), "
                "and waiting for the frontend's reply would block the only thread."
            )
        __tracebackhide__ = True  # hidden from tracebacks
        waiter = _Waiter(request.identities)
        sent: list[str] = []

        def register(msg_id: str) -> None:
            sent.append(msg_id)
            with self._lock:
                self._waiting[msg_id] = waiter

        cell = _current_cell()
        caller = Caller.current()
        if caller is not None:
            waiter.wake = caller.lender.wake
            parking = caller.lender.parked()
        else:
            parking = _plain_wait(waiter)
        if cell is not None:  # an interrupt on another thread must wake the wait to land
            cell.wake = waiter.wake
        try:
            # Parked before the request leaves: a comm message that follows it must already
            # find the thread parked, or it would wait for the loop the prompt blocks.
            with parking as wait:
                self._send_request(request, str(prompt), password, register)
                # An interrupt also ends the wait: one that landed in a comm handler run here
                # was that handler's, and must not be lost for the cell.
                wait(lambda: waiter.answered or (cell is not None and cell.stop_reason is not None))
            if not waiter.answered and cell is not None and cell.stop_reason is not None:
                cell.signal_due = False  # ended by the stop itself: no signal is owed
                raise cell.exception()
        finally:
            if cell is not None:
                cell.wake = None
            with self._lock:
                for msg_id in sent:
                    self._waiting.pop(msg_id, None)
        value = waiter.value or ""
        if value == "\x04":  # a frontend's EOF (Ctrl-D)
            raise EOFError("EOF from the frontend")
        return value

    def receive_reply(self, msg: Message, identities: list[bytes] | None = None) -> bool:
        """Hand an ``input_reply`` to the waiting ``input()``; False when nobody waits for it."""
        parent_id = msg["parent_header"].get("msg_id")
        with self._lock:
            waiter = self._waiting.pop(str(parent_id), None) if parent_id else None
            if waiter is None and not parent_id and self._waiting:
                same_client = [k for k, w in self._waiting.items() if w.identities == identities]
                waiter = self._waiting.pop(
                    same_client[0] if same_client else next(iter(self._waiting))
                )
        if waiter is None:
            return False
        value: Any = msg["content"].get("value", "")
        waiter.value = value if isinstance(value, str) else str(value)
        waiter.answered = True
        waiter.wake()
        return True

    def input(self, prompt: Any = "") -> str:
        __tracebackhide__ = True  # hidden from tracebacks
        return self.ask(str(prompt), password=False)

    def getpass(self, prompt: str = "Password: ", stream: Any = None) -> str:
        __tracebackhide__ = True  # hidden from tracebacks
        return self.ask(prompt, password=True)

    def install(self) -> None:
        """Route ``builtins.input`` and ``getpass.getpass`` through this bridge."""
        builtins.input = self.input
        getpass.getpass = self.getpass


def _current_cell() -> Any:
    from cokernel.shell._cells import current_cell  # the shell imports IPython: only when asked

    return current_cell.get()
