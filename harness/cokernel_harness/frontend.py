"""A simulated Jupyter frontend: sends every request type and records everything it receives.

Use it from asyncio or trio (anyio inside)::

    async with Frontend.launch("cokernel") as fe:
        run = await fe.run("1 + 1")
        assert run.reply["status"] == "ok"

Every received message is kept in :attr:`Frontend.log` with its channel and arrival time, so
tests and scenarios can check order as well as outcome. A :mod:`profile
<cokernel_harness.profiles>` says which real frontend the client plays where they differ:
``Frontend.launch("cokernel", profile="jupyterlab")`` sends comm messages on subshells as
JupyterLab does (when the kernel supports them). Waits are always bounded; a wait that
runs out raises :class:`WaitTimeout` naming what never came and the last messages that did.
"""

from __future__ import annotations

import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import anyio.abc

from cokernel_harness.messages import Execution, Received, WaitTimeout, describe, execute_content
from cokernel_harness.profiles import (
    DEFAULT_PROFILE,
    CommRouter,
    FrontendProfile,
    get_profile,
)
from cokernel_harness.transport import Transport, open_transport

InputAnswer = Callable[[str, bool], "str | Awaitable[str]"]
Predicate = Callable[[Received], bool]


class Frontend:
    """One simulated client attached to one kernel through a :class:`Transport`."""

    def __init__(
        self,
        transport: Transport,
        *,
        answer_input: InputAnswer | None = None,
        profile: str | FrontendProfile = DEFAULT_PROFILE,
    ) -> None:
        self.transport = transport
        self.log: list[Received] = []
        self.answer_input = answer_input
        self._changed = anyio.Event()
        self._tg: anyio.abc.TaskGroup | None = None
        self.sent: dict[
            str, tuple[str, dict[str, Any], float]
        ] = {}  # msg_id -> (channel, msg, time)
        self.comms = CommRouter(get_profile(profile), self.send)

    @property
    def profile(self) -> FrontendProfile:
        """The frontend this client plays (set it to a profile or a profile's name).

        Comms opened from then on follow the new profile; those already open keep their route.
        """
        return self.comms.profile

    @profile.setter
    def profile(self, profile: str | FrontendProfile) -> None:
        self.comms.profile = get_profile(profile)

    # -- lifecycle --------------------------------------------------------------------------
    @classmethod
    @contextlib.asynccontextmanager
    async def launch(
        cls,
        kernel_name: str,
        *,
        answer_input: InputAnswer | None = None,
        profile: str | FrontendProfile = DEFAULT_PROFILE,
        **transport_options: Any,
    ) -> AsyncIterator[Frontend]:
        """Start ``kernel_name``, wait until it answers, yield a Frontend.

        The name is a kernelspec, launched over ZMQ (``transport_options`` go to
        :class:`~cokernel_harness.transport.ZMQTransport`), or a registered in-process transport
        such as cokernel's ``inprocess`` / ``inprocess:trio`` (see
        :func:`~cokernel_harness.transport.open_transport`)."""
        transport = open_transport(kernel_name, **transport_options)
        async with cls.connect(transport, answer_input=answer_input, profile=profile) as fe:
            yield fe

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls,
        transport: Transport,
        *,
        answer_input: InputAnswer | None = None,
        profile: str | FrontendProfile = DEFAULT_PROFILE,
    ) -> AsyncIterator[Frontend]:
        """Start ``transport`` and serve it until the block ends; the kernel is then stopped."""
        fe = cls(transport, answer_input=answer_input, profile=profile)
        await transport.start()
        try:
            async with anyio.create_task_group() as tg:
                fe._tg = tg
                tg.start_soon(fe._pump)
                await fe.wait_ready()
                try:
                    yield fe
                finally:
                    tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await transport.close()

    async def _pump(self) -> None:
        while True:
            message = Received(*await self.transport.receive())
            self._route(message)
            self.log.append(message)
            changed, self._changed = self._changed, anyio.Event()
            changed.set()
            if (
                message.channel == "stdin"
                and message.msg_type == "input_request"
                and self.answer_input
            ):
                assert self._tg is not None
                self._tg.start_soon(self._answer, message)

    def _route(self, message: Received) -> None:
        """Keep the comm router up to date, as the page's kernel connection would."""
        msg_type, content = message.msg_type, message.content
        if message.channel == "iopub":
            comm_id = content.get("comm_id")
            if msg_type == "comm_open" and isinstance(comm_id, str):
                self.comms.opened(comm_id, str(content.get("target_name", "")))
            elif msg_type == "comm_close" and isinstance(comm_id, str):
                self.comms.closed(comm_id)
        elif msg_type == "kernel_info_reply":
            features = content.get("supported_features")
            self.comms.supports_subshells = isinstance(features, list) and (
                "kernel subshells" in features
            )
        elif msg_type == "create_subshell_reply":
            self.comms.replied(msg_type, message.parent_id, content)

    async def _answer(self, request: Received) -> None:
        assert self.answer_input is not None
        value = self.answer_input(
            request.content.get("prompt", ""), bool(request.content.get("password"))
        )
        if inspect.isawaitable(value):
            value = await value
        self.input_reply(str(value), parent=request.msg)

    async def wait_ready(self, timeout: float = 60.0) -> dict[str, Any]:
        """Return kernel_info once the kernel answers on shell *and* iopub reaches us.

        A SUB socket's subscription takes effect some time after it connects; outputs sent
        before then are lost to this client. Kernels with protocol 5.4+ say when it took effect
        (``iopub_welcome``); for others, the status messages around a kernel_info request do.
        """
        deadline = time.monotonic() + timeout
        while True:
            # Only iopub messages from now on count: after a restart the log holds the old
            # kernel's, which say nothing about the new subscription.
            start = len(self.log)
            msg_id = self.send("shell", "kernel_info_request")
            left = max(deadline - time.monotonic(), 0.1)
            try:
                info = await self.reply(msg_id, timeout=min(2.0, left))
                await self.wait_for(
                    lambda m: m.channel == "iopub",
                    timeout=min(1.0, left),
                    what="any iopub message",
                    start=start,
                )
                return info
            except WaitTimeout:
                if time.monotonic() > deadline:
                    raise

    # -- sending ----------------------------------------------------------------------------
    def send(
        self,
        channel: str,
        msg_type: str,
        content: dict[str, Any] | None = None,
        *,
        subshell_id: object = None,
        metadata: dict[str, Any] | None = None,
        parent: dict[str, Any] | None = None,
        buffers: list[bytes] | None = None,
    ) -> str:
        """Send a message (with binary ``buffers`` if given); returns its msg_id.

        ``subshell_id`` goes into the header as given, even when it is not a string (to test how
        a kernel treats malformed headers)."""
        header = None
        if subshell_id is not None or self.profile.null_subshell_header:
            header = self.transport.session.msg_header(msg_type)
            header["subshell_id"] = subshell_id
        if msg_type == "shutdown_request":
            self.comms.reset()
        msg = self.transport.session.msg(
            msg_type, content or {}, parent=parent, header=header, metadata=metadata
        )
        if buffers:
            msg["buffers"] = list(buffers)
        msg_id = str(msg["header"]["msg_id"])
        self.sent[msg_id] = (channel, msg, time.perf_counter())
        self.transport.send(channel, msg)
        return msg_id

    def execute(
        self,
        code: str,
        *,
        silent: bool = False,
        store_history: bool = True,
        allow_stdin: bool | None = None,
        stop_on_error: bool = True,
        user_expressions: dict[str, str] | None = None,
        channel: str = "shell",
        subshell_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        content = execute_content(
            code,
            silent=silent,
            store_history=store_history,
            allow_stdin=self.answer_input is not None if allow_stdin is None else allow_stdin,
            stop_on_error=stop_on_error,
            user_expressions=user_expressions,
        )
        return self.send(
            channel, "execute_request", content, subshell_id=subshell_id, metadata=metadata
        )

    def input_reply(self, value: str, *, parent: dict[str, Any] | None = None) -> str:
        return self.send("stdin", "input_reply", {"value": value}, parent=parent)

    def comm_open(
        self,
        target_name: str,
        data: dict[str, Any] | None = None,
        *,
        comm_id: str | None = None,
        subshell_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Open a comm to ``target_name`` in the kernel; its id.

        The comm_open goes on ``subshell_id`` if given, else on the main shell (JupyterLab too
        sends it before its subshell exists). A profile that routes comms over subshells then
        asks for the comm's subshell (see :meth:`comm_ready`).
        """
        import uuid

        comm_id = comm_id or uuid.uuid4().hex
        self.send(
            "shell",
            "comm_open",
            {"comm_id": comm_id, "target_name": target_name, "data": data or {}},
            subshell_id=subshell_id,
            metadata=metadata,
        )
        self.comms.opened(comm_id, target_name)
        return comm_id

    async def comm_ready(self, comm_id: str, *, timeout: float = 30.0) -> str | None:
        """Wait until the profile's subshell for ``comm_id`` exists; its id (None: main shell).

        Returns at once when the comm gets no subshell. A page whose user acts on a widget
        some time after it appears has its subshell by then; call this to play that.
        """
        try:
            return await self.comms.ready(comm_id, timeout=timeout)
        except TimeoutError:
            raise WaitTimeout(
                f"waited {timeout:g} s for the create_subshell_reply of comm {comm_id}"
            ) from None

    def comm_msg(
        self,
        comm_id: str,
        data: dict[str, Any],
        *,
        subshell_id: str | None = None,
        buffers: list[bytes] | None = None,
    ) -> str:
        """Send a comm_msg on ``subshell_id`` if given, else where the profile routes the comm."""
        return self.send(
            "shell",
            "comm_msg",
            {"comm_id": comm_id, "data": data},
            subshell_id=subshell_id or self.comms.subshell_of(comm_id),
            buffers=buffers,
        )

    def comm_close(
        self,
        comm_id: str,
        data: dict[str, Any] | None = None,
        *,
        subshell_id: str | None = None,
    ) -> str:
        """Close a comm (on its route, as :meth:`comm_msg`); the profile releases its subshell."""
        msg_id = self.send(
            "shell",
            "comm_close",
            {"comm_id": comm_id, "data": data or {}},
            subshell_id=subshell_id or self.comms.subshell_of(comm_id),
        )
        self.comms.closed(comm_id)
        return msg_id

    async def interrupt(self) -> None:
        """Interrupt as the kernelspec asks: interrupt_request on control, or SIGINT.

        A transport through a server (``interrupt_mode`` "server") asks the server over REST.
        """
        if self.transport.interrupt_mode == "message":
            msg_id = self.send("control", "interrupt_request")
            await self.reply(msg_id, timeout=10)
        else:
            await self.transport.interrupt()

    # -- request helpers that wait ----------------------------------------------------------
    async def request(
        self,
        channel: str,
        msg_type: str,
        content: dict[str, Any] | None = None,
        *,
        timeout: float = 30.0,
        subshell_id: str | None = None,
    ) -> dict[str, Any]:
        msg_id = self.send(channel, msg_type, content, subshell_id=subshell_id)
        return await self.reply(msg_id, timeout=timeout)

    async def kernel_info(self, *, channel: str = "shell", timeout: float = 30.0) -> dict[str, Any]:
        return await self.request(channel, "kernel_info_request", timeout=timeout)

    async def complete(
        self, code: str, cursor_pos: int | None = None, *, timeout: float = 30.0
    ) -> dict[str, Any]:
        return await self.request(
            "shell",
            "complete_request",
            {"code": code, "cursor_pos": len(code) if cursor_pos is None else cursor_pos},
            timeout=timeout,
        )

    async def inspect(
        self,
        code: str,
        cursor_pos: int | None = None,
        detail_level: int = 0,
        *,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        content = {
            "code": code,
            "cursor_pos": len(code) if cursor_pos is None else cursor_pos,
            "detail_level": detail_level,
        }
        return await self.request("shell", "inspect_request", content, timeout=timeout)

    async def run(self, code: str, *, timeout: float = 60.0, **options: Any) -> Execution:
        """Execute ``code`` and wait for its reply and its idle status."""
        msg_id = self.execute(code, **options)
        return await self.collect(msg_id, timeout=timeout)

    async def collect(self, msg_id: str, *, timeout: float = 60.0) -> Execution:
        """Wait for the reply and the idle status of request ``msg_id``; gather its outputs."""
        reply = await self.reply(msg_id, timeout=timeout)
        await self.wait_for(
            lambda m: (
                m.parent_id == msg_id
                and m.msg_type == "status"
                and m.content.get("execution_state") == "idle"
            ),
            timeout=timeout,
            what=f"idle after {msg_id}",
        )
        outputs = [
            m
            for m in self.log
            if m.channel == "iopub" and m.parent_id == msg_id and m.msg_type != "status"
        ]
        return Execution(msg_id, reply, outputs)

    async def reply(self, msg_id: str, *, timeout: float = 30.0) -> dict[str, Any]:
        """The content of the reply to ``msg_id`` (on the channel it was sent on)."""
        return (await self.reply_message(msg_id, timeout=timeout)).content

    async def reply_message(self, msg_id: str, *, timeout: float = 30.0) -> Received:
        """The reply to ``msg_id`` as received (its place in :attr:`log` shows its order)."""
        channel = self.sent[msg_id][0] if msg_id in self.sent else None
        return await self.wait_for(
            lambda m: (
                m.parent_id == msg_id and m.channel == channel and m.msg_type.endswith("_reply")
            ),
            timeout=timeout,
            what=f"reply to {msg_id}",
        )

    async def wait_for(
        self,
        predicate: Predicate,
        *,
        timeout: float = 30.0,
        what: str = "a message",
        start: int = 0,
    ) -> Received:
        """The first logged message (from index ``start``) matching ``predicate``."""
        index = start
        with anyio.move_on_after(timeout):
            while True:
                while index < len(self.log):
                    message = self.log[index]
                    index += 1
                    if predicate(message):
                        return message
                await self._changed.wait()
        last = "\n  ".join(describe(m) for m in self.log[-8:]) or "(nothing)"
        raise WaitTimeout(f"waited {timeout:g} s for {what}; the last messages were:\n  {last}")

    def messages_for(self, msg_id: str) -> list[Received]:
        return [m for m in self.log if m.parent_id == msg_id]
