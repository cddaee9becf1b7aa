"""An echo comm target, for scenarios that check comm messages are served at some moment.

:func:`echo_setup` is cell code registering a target whose comms answer each
``{"i": n}`` with ``{"echo": n}``; :func:`echo_of` matches the echo of message ``n``.
"""

from __future__ import annotations

from cokernel_harness.frontend import Predicate
from cokernel_harness.messages import Received


def echo_setup(target: str) -> str:
    """Cell code that registers the echo target ``target`` in the kernel's comm manager."""
    return f"""\
import comm as _comm

def _harness_echo_open(channel, open_msg):
    channel.on_msg(lambda msg: channel.send({{"echo": msg["content"]["data"]["i"]}}))

_comm.get_comm_manager().register_target({target!r}, _harness_echo_open)
"""


def echo_of(comm_id: str, index: int) -> Predicate:
    """Match the echo of comm message ``{"i": index}`` on comm ``comm_id``."""

    def match(m: Received) -> bool:
        data = m.content.get("data") or {}
        return bool(
            m.msg_type == "comm_msg"
            and m.content.get("comm_id") == comm_id
            and data.get("echo") == index
        )

    return match
