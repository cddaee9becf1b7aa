"""The handler table: every message type the protocol defines for a kernel is served, and
every request gets exactly one reply whatever its handler does."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import pytest

from cokernel import Kernel, KernelOptions
from cokernel.engine._dispatch import RunMode
from cokernel.kernel._handlers import HANDLERS
from cokernel.kernel._host import Handler, HandlerTable, KernelHost
from cokernel.protocol import Channel, Message, MsgType, Session
from cokernel.protocol._request import Request


def test_every_message_type_has_a_handler_or_goes_to_stdin() -> None:
    assert set(HANDLERS) | {MsgType.input_reply} == set(MsgType)


def test_control_only_requests_are_not_served_on_shell() -> None:
    for msg_type, handler in HANDLERS.items():
        assert HANDLERS.route(Channel.control, msg_type) is handler
        on_shell = HANDLERS.route(Channel.shell, msg_type)
        assert (on_shell is None) == handler.control_only, msg_type
    assert HANDLERS.route(Channel.shell, "debug_request") is None
    assert HANDLERS.route(Channel.shell, "no_such_request") is None


class _Boom(RuntimeError):
    pass


def _raises(kernel: KernelHost, request: Request) -> dict[str, Any]:
    raise _Boom("the handler failed")


def _answers_nothing(kernel: KernelHost, request: Request) -> None:
    return None


@pytest.mark.timeout(60)
def test_one_wrapper_gives_every_request_exactly_one_reply() -> None:
    """A handler that raises, or returns no content, still makes exactly one (error) reply,
    between busy and idle; a handler's content is the reply."""
    table = HandlerTable(
        {
            **HANDLERS,
            "connect_request": Handler(_raises, RunMode.direct, "connect_request"),
            "is_complete_request": Handler(_answers_nothing, RunMode.thread, "is_complete"),
        }
    )
    sent: list[tuple[Channel, Message]] = []
    done = threading.Condition()

    def send(channel: Channel, msg: Message, identities: list[bytes] | None) -> None:
        with done:
            sent.append((channel, msg))
            done.notify_all()

    session = Session(b"")
    kernel = Kernel(KernelOptions(), session, send, handlers=table)
    thread = threading.Thread(target=anyio.run, args=(_serve, kernel), daemon=True)
    thread.start()
    assert kernel.started.wait(30)
    try:
        ids = {}
        for msg_type in ("connect_request", "is_complete_request", "kernel_info_request"):
            msg = session.msg(msg_type, {"code": "1"})
            ids[msg_type] = msg["header"]["msg_id"]
            kernel.receive(Channel.shell, [], msg)

        def of(msg_id: str) -> list[tuple[str, Any]]:
            return [
                (m["header"]["msg_type"], m["content"])
                for _, m in sent
                if m["parent_header"].get("msg_id") == msg_id
            ]

        def idle(msg_id: str) -> bool:
            return ("status", {"execution_state": "idle"}) in of(msg_id)

        with done:
            assert done.wait_for(lambda: all(idle(i) for i in ids.values()), 30)
        for msg_type, msg_id in ids.items():
            messages = of(msg_id)
            replies = [c for t, c in messages if t.endswith("_reply")]
            assert len(replies) == 1, messages
            assert messages[0] == ("status", {"execution_state": "busy"})
            assert messages[-1] == ("status", {"execution_state": "idle"})
            if msg_type == "kernel_info_request":
                assert replies[0]["status"] == "ok"
            else:
                assert replies[0]["status"] == "error"
        assert of(ids["connect_request"])[1][1]["ename"] == "_Boom"
        assert of(ids["is_complete_request"])[1][1]["ename"] == "TypeError"
    finally:
        kernel.request_shutdown(restart=False)
        thread.join(10)


async def _serve(kernel: Kernel) -> None:
    await kernel.run(handle_sigint=False)
