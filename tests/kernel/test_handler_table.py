"""The handler table: every message type the protocol defines for a kernel is served."""

from __future__ import annotations

from cokernel.kernel._handlers import HANDLERS
from cokernel.protocol import Channel, MsgType


def test_every_message_type_has_a_handler_or_goes_to_stdin() -> None:
    assert set(HANDLERS) | {MsgType.input_reply} == set(MsgType)


def test_control_only_requests_are_not_served_on_shell() -> None:
    for msg_type, handler in HANDLERS.items():
        assert HANDLERS.route(Channel.control, msg_type) is handler
        on_shell = HANDLERS.route(Channel.shell, msg_type)
        assert (on_shell is None) == handler.control_only, msg_type
    assert HANDLERS.route(Channel.shell, "debug_request") is None
    assert HANDLERS.route(Channel.shell, "no_such_request") is None
