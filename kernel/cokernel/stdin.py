"""``input()`` and ``getpass`` over the stdin channel.

A cell that calls ``input()`` sends ``input_request`` to the frontend that sent the cell (its
ROUTER identities) and blocks its own thread until the matching ``input_reply`` arrives. The wait
is interruptible: an interrupt raises KeyboardInterrupt in the waiting cell, as in a terminal.
"""

from __future__ import annotations

import builtins
import getpass
import threading
from collections.abc import Callable
from typing import Any

from IPython.core.error import StdinNotImplementedError

from cokernel.protocol import Message
from cokernel.request import Request, current_request

SendInputRequest = Callable[[Request, str, bool], str]  # returns the input_request msg_id


class _Waiter:
    __slots__ = ("event", "value")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.value: str | None = None


class StdinBridge:
    """Pairs ``input_request`` with ``input_reply`` by message id."""

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
        waiter = _Waiter()
        msg_id = self._send_request(request, str(prompt), password)
        with self._lock:
            self._waiting[msg_id] = waiter
        try:
            waiter.event.wait()
        finally:
            with self._lock:
                self._waiting.pop(msg_id, None)
        value = waiter.value or ""
        if value == "\x04":  # a frontend's EOF (Ctrl-D)
            raise EOFError("EOF from the frontend")
        return value

    def receive_reply(self, msg: Message) -> bool:
        """Hand an ``input_reply`` to the waiting ``input()``; False when nobody waits for it."""
        parent_id = msg["parent_header"].get("msg_id")
        with self._lock:
            waiter = self._waiting.get(str(parent_id))
        if waiter is None:
            return False
        value: Any = msg["content"].get("value", "")
        waiter.value = value if isinstance(value, str) else str(value)
        waiter.event.set()
        return True

    def input(self, prompt: Any = "") -> str:
        return self.ask(str(prompt), password=False)

    def getpass(self, prompt: str = "Password: ", stream: Any = None) -> str:
        return self.ask(prompt, password=True)

    def install(self) -> None:
        """Route ``builtins.input`` and ``getpass.getpass`` through this bridge."""
        builtins.input = self.input
        getpass.getpass = self.getpass
