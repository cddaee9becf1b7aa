"""The rules the validator enforces, by stable id, and the record of one broken rule.

Rule ids are part of the harness's interface: tests, scenarios and the conformance table refer
to them, so an id never changes meaning. Every :class:`Violation` carries one of :data:`RULES`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

RULES: Mapping[str, str] = {
    # one message in isolation (cokernel_harness.schemas)
    "wire.undecodable": "the frames could not be decoded (bad signature, not JSON, too few parts)",
    "envelope.field": "header, parent_header, metadata and content are dicts",
    "header.field": "header has msg_id, msg_type, session, username, date and version, as str",
    "header.date": "header.date is an ISO 8601 timestamp",
    "header.version": "header.version is 5.x",
    "msgtype.unknown": "the msg_type is one a kernel sends under protocol 5.5",
    "msgtype.channel": "the msg_type arrives on a channel it belongs on (stream on iopub, ...)",
    "content.missing": "a required content field is present",
    "content.type": "a content field has the type the specification gives it",
    "content.value": "a content field holds one of its allowed values",
    "parent.missing": "parent_header is set (only iopub_welcome and status: starting lack one)",
    "parent.mismatch": "parent_header.msg_type is that of the request with that msg_id",
    # replies
    "reply.type": "a *_request is answered by the matching *_reply",
    "reply.channel": "a reply travels on the channel its request was sent on",
    "reply.duplicate": "a request gets exactly one reply",
    "reply.missing": "every request is answered (unless cut off by shutdown or restart)",
    "reply.unrequested": "a reply or input_request answers a request this frontend sent",
    # status on iopub
    "status.busy-before-output": "status: busy precedes every other iopub message of a request",
    "status.output-after-idle": "status: idle follows every output of a request",
    "status.repeated": "busy and idle each appear once per request",
    "status.busy-missing": "every request gets a status: busy",
    "status.idle-missing": "every request gets a status: idle (shutdown_request excepted)",
    # execution counts
    "execute.input-missing": (
        "a non-silent execute that ran publishes execute_input (one refused before it ran, "
        "answered by an error reply with no error output, takes no input and no count)"
    ),
    "execute.silent-output": "a silent execute publishes no execute_input nor execute_result",
    "execute.count-mismatch": "execute_input/execute_result carry the execute_reply's count",
    "execute.count-skipped": "counts rise by one per stored, non-silent execute that ran",
    "execute.count-repeated": "no two stored executes get the same count",
    # stdin
    "stdin.unrequested": "input_request comes only for an execute_request",
    "stdin.not-allowed": "input_request comes only when the request allowed stdin",
    # opt-in: by the kernel's own timestamps (Validator(check_kernel_clock=True))
    "order.reply-before-busy": "the kernel stamped the reply after the request's busy",
    "order.reply-after-idle": "the kernel stamped the reply before the request's idle",
}


@dataclass(frozen=True)
class Violation:
    """One broken protocol rule.

    ``rule`` is a key of :data:`RULES`; ``message`` says what was expected and what arrived.
    ``msg_type``, ``msg_id``, ``parent_id`` and ``channel`` name the offending message; for a
    rule about a request as a whole (``reply.missing``, ``status.idle-missing``) they name the
    request. ``index`` is the message's position in the received sequence, if it is one.
    """

    rule: str
    message: str
    msg_type: str | None
    msg_id: str | None
    parent_id: str | None
    channel: str | None
    index: int | None = None

    def __str__(self) -> str:
        at = f"#{self.index} " if self.index is not None else ""
        parent = f" parent={self.parent_id}" if self.parent_id else ""
        return (
            f"[{self.rule}] {at}{self.channel}:{self.msg_type} id={self.msg_id}{parent}: "
            f"{self.message}"
        )
