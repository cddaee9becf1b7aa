"""A :class:`~cokernel_harness.frontend.Frontend` that synchronous code drives through a portal.

Hypothesis runs a state machine's rules as plain function calls, one example after another, and
an anyio event loop cannot be entered and left per example cheaply (nor a kernel started per
example). So the Frontend lives on an event loop of its own, on a background thread started by
``anyio.from_thread.start_blocking_portal``, and every call into it goes through the portal: the
Frontend's state (its ``log`` and ``sent``) is only ever touched on that loop's thread.

One kernel serves many examples. :meth:`PortalFrontend.restart` replaces it with a fresh one
(and a fresh Frontend) when an example left it in doubt.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import anyio
from anyio.from_thread import BlockingPortal, start_blocking_portal

from cokernel_harness.frontend import Frontend
from cokernel_harness.messages import Received, WaitTimeout

T = TypeVar("T")
Connect = Callable[[], contextlib.AbstractAsyncContextManager[Frontend]]
#: Looks at the log and lists what has not arrived yet; an empty list means "all there".
Missing = Callable[[Sequence[Received]], list[T]]

ECHO_TARGET = "echo"

# Registered through the public `comm` package, as a library in the notebook would do it.
REGISTER_ECHO = f"""\
import comm as _comm

def _cokernel_property_echo(opened, open_msg):
    opened.on_msg(lambda msg: opened.send(msg["content"]["data"]))

_comm.get_comm_manager().register_target({ECHO_TARGET!r}, _cokernel_property_echo)
"""


class PortalFrontend:
    """One kernel and one Frontend on it, on a loop thread; every method blocks its caller.

    Use as a context manager: entering starts the loop thread and the kernel (and registers the
    comm target ``echo``, which sends every message's data back); leaving stops both.
    """

    def __init__(self, connect: Connect, *, backend: str = "asyncio") -> None:
        self._connect = connect
        self._backend = backend
        self._portal_cm: contextlib.AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None
        self._frontend_cm: contextlib.AbstractContextManager[Frontend] | None = None
        self._frontend: Frontend | None = None
        self.tainted = False  # set when an example may have left the kernel in a bad state
        self.kernels_started = 0

    # -- lifecycle --------------------------------------------------------------------------
    def __enter__(self) -> PortalFrontend:
        self._portal_cm = start_blocking_portal(self._backend)
        self._portal = self._portal_cm.__enter__()
        try:
            self._start_kernel()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._stop_kernel()
        finally:
            if self._portal_cm is not None:
                portal_cm, self._portal_cm, self._portal = self._portal_cm, None, None
                portal_cm.__exit__(None, None, None)

    def _start_kernel(self) -> None:
        self._frontend_cm = self.portal.wrap_async_context_manager(self._connect())
        self._frontend = self._frontend_cm.__enter__()
        self.kernels_started += 1
        self.tainted = False
        registered = self.portal.call(self._run, REGISTER_ECHO)
        if registered["status"] != "ok":
            raise RuntimeError(f"registering the echo comm target failed: {registered}")

    def _stop_kernel(self) -> None:
        if self._frontend_cm is not None:
            frontend_cm, self._frontend_cm, self._frontend = self._frontend_cm, None, None
            frontend_cm.__exit__(None, None, None)

    def restart(self) -> None:
        """Stop this kernel and start a fresh one, with a fresh Frontend (and an empty log)."""
        self._stop_kernel()
        self._start_kernel()

    @property
    def portal(self) -> BlockingPortal:
        if self._portal is None:
            raise RuntimeError("use PortalFrontend as a context manager first")
        return self._portal

    @property
    def frontend(self) -> Frontend:
        if self._frontend is None:
            raise RuntimeError("the kernel is not running")
        return self._frontend

    async def _run(self, code: str) -> dict[str, Any]:
        execution = await self.frontend.run(code, timeout=60)
        return execution.reply

    # -- sending (never waits for an answer) ------------------------------------------------
    def send(
        self,
        channel: str,
        msg_type: str,
        content: dict[str, Any] | None = None,
        *,
        subshell_id: str | None = None,
    ) -> tuple[str, float]:
        """Send a message; returns its msg_id and when the send call had returned.

        For an in-process kernel, a message has been handed to the kernel (and stamped as
        received by it) by then: the transport delivers synchronously.
        """

        def send() -> tuple[str, float]:
            msg_id = self.frontend.send(channel, msg_type, content, subshell_id=subshell_id)
            return msg_id, time.perf_counter()

        return self.portal.call(send)

    def sent_at(self, msg_id: str) -> float:
        """When the Frontend sent ``msg_id`` (its ``time.perf_counter()``)."""
        return self.portal.call(lambda: self.frontend.sent[msg_id][2])

    # -- waiting ----------------------------------------------------------------------------
    def reply(self, msg_id: str, *, timeout: float) -> dict[str, Any]:
        """The content of the reply to ``msg_id``; raises WaitTimeout after ``timeout`` s."""

        async def reply() -> dict[str, Any]:
            return await self.frontend.reply(msg_id, timeout=timeout)

        return self.portal.call(reply)

    def wait_until_complete(self, missing: Missing[T], *, timeout: float) -> list[T]:
        """Wait until ``missing(log)`` lists nothing; returns what it still lists at ``timeout``."""

        async def wait() -> list[T]:
            frontend = self.frontend
            with anyio.move_on_after(timeout):
                while wanted := missing(frontend.log):
                    # Any new message may be the awaited one: look again after each arrival.
                    with contextlib.suppress(WaitTimeout):
                        await frontend.wait_for(
                            lambda m: True, start=len(frontend.log), timeout=timeout
                        )
                return wanted
            return missing(frontend.log)

        return self.portal.call(wait)

    # -- reading ----------------------------------------------------------------------------
    def log_length(self) -> int:
        return self.portal.call(lambda: len(self.frontend.log))

    def received(self, start: int) -> list[Received]:
        """A copy of everything received from index ``start`` of the log on."""
        return self.portal.call(lambda: list(self.frontend.log[start:]))

    def sent(self, msg_ids: Sequence[str]) -> dict[str, tuple[str, dict[str, Any], float]]:
        """The Frontend's record (channel, message, time) of each of ``msg_ids``."""
        return self.portal.call(lambda: {i: self.frontend.sent[i] for i in msg_ids})

    def is_alive(self) -> bool:
        return self._frontend is not None and self.portal.call(self.frontend.transport.is_alive)
