"""Check what a kernel sent against the Jupyter messaging protocol (5.5).

Feed it what a :class:`~cokernel_harness.frontend.Frontend` sent and received::

    violations = validate(fe.sent, fe.log)
    assert not violations, "\\n".join(map(str, violations))

or incrementally, while a scenario runs (each call returns the violations it just found)::

    validator = Validator()
    validator.sent("shell", msg)
    validator.received(message)
    violations = validator.finish()

Each message is checked alone (envelope, header, content fields per msg_type, a known msg_type
on a channel it belongs on: see :mod:`cokernel_harness.schemas`) and against the request it
answers: one reply, of the matching type, on the request's channel; on iopub, busy before and
idle after every output of the request; execution counts consistent and consecutive; stdin only
when allowed. :data:`~cokernel_harness.validator_rules.RULES` lists every rule by id.

Order *across* sockets (a shell reply against an iopub idle) is not checked by arrival: ZMQ
orders messages per socket only, so a frontend may legitimately see a reply after an idle the
kernel sent later. ``check_kernel_clock=True`` checks it by the kernel's own timestamps instead.

The SUB socket of a frontend drops what the kernel published before its subscription took
effect, so iopub rules are applied only to requests sent after the first iopub message
arrived (when ``sent`` carries no times, every request counts as sent after it). The same holds
after a restart: once a kernel has sent ``shutdown_reply``, requests count as live again only
after an iopub message from another kernel session (the new process) has arrived.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from cokernel_harness.messages import Received
from cokernel_harness.schemas import (
    KERNEL_MESSAGES,
    REQUEST_TYPES,
    check_content,
    check_envelope,
    reply_type,
)
from cokernel_harness.validator_conversation import (
    ConversationChecks,
    Request,
    as_dict,
    content_of,
)
from cokernel_harness.validator_rules import RULES, Violation

__all__ = ["LATE_OUTPUT_TYPES", "RULES", "Validator", "Violation", "validate"]

#: Messages a background task or thread may publish under a cell's parent after that cell's
#: idle: a thread started by a cell keeps printing, a widget it updates keeps syncing.
LATE_OUTPUT_TYPES = frozenset(
    {
        "stream",
        "display_data",
        "update_display_data",
        "clear_output",
        "comm_open",
        "comm_msg",
        "comm_close",
    }
)

#: Events that come whenever their source has something to say, not as output of a request:
#: debugpy reports a breakpoint hit, a thread exit, ... under the last debug_request's parent.
ASYNC_EVENTS = frozenset({"debug_event"})

#: Messages a frontend sends on shell that the kernel handles (with busy/idle) but never answers.
UNANSWERED_TYPES = frozenset({"comm_open", "comm_msg", "comm_close"})

#: iopub messages that may come without a parent: the subscription greeting, kernel start-up.
PARENTLESS = frozenset({("iopub_welcome", None), ("status", "starting")})


class Validator(ConversationChecks):
    """Checks a conversation with one kernel, message by message.

    Call :meth:`sent` for every message the frontend sends and :meth:`received` for every
    message it receives, in the order they happened; then :meth:`finish`.

    ``allow_late_output``: when true (the default) the :data:`LATE_OUTPUT_TYPES` may still
    arrive for a request after its idle, since kernels route output of threads and tasks a cell
    started to that cell's parent. Set it false to insist that idle is final.

    ``check_kernel_clock``: also check, by the ``header.date`` the kernel stamped on each
    message, that it sent every reply after that request's busy and before its idle. Arrival
    order cannot show this (the reply and the status travel on different sockets); the kernel's
    own timestamps can. Off by default: the specification implies this order but does not
    state it, and a kernel whose clock steps (NTP) would fail it spuriously.
    """

    def __init__(self, *, allow_late_output: bool = True, check_kernel_clock: bool = False) -> None:
        self.allow_late_output = allow_late_output
        self.check_kernel_clock = check_kernel_clock
        self.violations: list[Violation] = []
        self._requests: dict[str, Request] = {}
        self._iopub_live = False
        # The session of a kernel that has answered a shutdown_request: its process ends, and
        # iopub is live again only once a message from its successor arrives.
        self._ended_session: str | None = None
        self._received: list[Received] = []  # kept so that ids in _indices stay unique
        self._indices: dict[int, int] = {}  # id(message) -> position in the received order
        self._finished: list[Violation] | None = None

    # -- feeding ----------------------------------------------------------------------------
    def sent(self, channel: str, msg: Mapping[str, Any]) -> None:
        """Record a message the frontend sent on ``channel``."""
        header = as_dict(msg.get("header"))
        msg_id, msg_type = header.get("msg_id"), header.get("msg_type")
        if not isinstance(msg_id, str) or not isinstance(msg_type, str):
            return
        tracked = msg_type in REQUEST_TYPES or msg_type in UNANSWERED_TYPES
        if channel in ("shell", "control") and tracked:
            content = dict(as_dict(msg.get("content")))
            self._requests[msg_id] = Request(msg_id, channel, msg_type, content, self._iopub_live)

    def received(self, message: Received) -> list[Violation]:
        """Check one received message; returns the violations it revealed (also kept in
        :attr:`violations`)."""
        self._indices[id(message)] = len(self._received)
        self._received.append(message)
        before = len(self.violations)
        self._check(message)
        return self.violations[before:]

    def finish(self, *, cut_off: Collection[str] = ()) -> list[Violation]:
        """Apply the rules that need the whole conversation; returns every violation found.

        ``cut_off``: msg_ids of requests that legitimately got no answer (sent just before a
        shutdown or a restart); they are exempt from ``reply.missing`` and ``status.*-missing``.
        Call it once, after the last message; later calls return the same list.
        """
        if self._finished is not None:
            return self._finished
        self._check_conversation(cut_off)
        self._finished = list(self.violations)
        return self._finished

    # -- one message ------------------------------------------------------------------------

    def _check(self, message: Received) -> None:
        msg = message.msg
        header = as_dict(msg.get("header"))
        msg_type = header.get("msg_type")
        if msg_type == "harness_undecodable":
            detail = as_dict(msg.get("content")).get("error")
            self._add("wire.undecodable", f"could not decode the frames: {detail}", message)
            return
        for problem in check_envelope(msg):
            self._add(problem.rule, problem.detail, message)
        if not isinstance(msg_type, str):
            return
        session = header.get("session")
        if msg_type == "shutdown_reply":
            self._ended_session = str(session)
            self._iopub_live = False
        elif message.channel == "iopub" and str(session) != self._ended_session:
            self._iopub_live = True
        channels = KERNEL_MESSAGES.get(msg_type)
        if channels is None:
            self._add(
                "msgtype.unknown",
                f"{msg_type!r} is not a message type a kernel sends (protocol 5.5)",
                message,
            )
            return
        if message.channel not in channels:
            expected = " or ".join(sorted(channels))
            self._add(
                "msgtype.channel",
                f"{msg_type} belongs on {expected}, arrived on {message.channel}",
                message,
            )
        content = msg.get("content")
        if isinstance(content, dict):
            for problem in check_content(msg_type, content):
                self._add(problem.rule, problem.detail, message)
        request = self._check_parent(message, msg_type)
        # A message on a channel it does not belong on says nothing about its request's order
        # (a stream on shell is not a second reply): one violation is the whole story.
        if request is None or message.channel not in channels:
            return
        if message.channel == "iopub":
            self._check_iopub(message, msg_type, request)
        elif message.channel == "stdin":
            self._check_stdin(message, request)
        elif message.channel in ("shell", "control"):
            self._check_reply(message, msg_type, request)

    def _check_parent(self, message: Received, msg_type: str) -> Request | None:
        """The request ``message`` answers, if this frontend sent it."""
        parent = message.msg.get("parent_header")
        if not isinstance(parent, dict):
            return None
        if not parent:
            state = as_dict(message.msg.get("content")).get("execution_state")
            if (msg_type, state if msg_type == "status" else None) not in PARENTLESS:
                self._add(
                    "parent.missing",
                    "parent_header is empty; only iopub_welcome and status: starting may lack one",
                    message,
                )
            return None
        parent_id = parent.get("msg_id")
        request = self._requests.get(parent_id) if isinstance(parent_id, str) else None
        if request is None:
            # iopub is a broadcast: other clients' requests show up there legitimately.
            if message.channel != "iopub":
                self._add(
                    "reply.unrequested",
                    f"answers {parent_id!r}, which this frontend never sent",
                    message,
                )
            return None
        if parent.get("msg_type") != request.msg_type:
            self._add(
                "parent.mismatch",
                f"parent_header.msg_type is {parent.get('msg_type')!r} but request "
                f"{request.msg_id} is a {request.msg_type}",
                message,
            )
        return request

    def _check_reply(self, message: Received, msg_type: str, request: Request) -> None:
        expected = reply_type(request.msg_type)
        if msg_type != expected:
            self._add(
                "reply.type",
                f"a {request.msg_type} is answered by {expected}, got {msg_type}",
                message,
            )
        if message.channel != request.channel:
            self._add(
                "reply.channel",
                f"the request went on {request.channel}, its reply came on {message.channel}",
                message,
            )
        request.replies.append(message)
        if len(request.replies) > 1:
            self._add(
                "reply.duplicate",
                f"reply number {len(request.replies)} to {request.msg_type} {request.msg_id}",
                message,
            )

    def _check_iopub(self, message: Received, msg_type: str, request: Request) -> None:
        state = content_of(message).get("execution_state") if msg_type == "status" else None
        if state == "busy":
            if request.busy is not None:
                self._add("status.repeated", "a second status: busy for one request", message)
            request.busy = request.busy or message
            return
        if request.busy is None and request.live and not request.busy_reported:
            request.busy_reported = True
            what = "status: idle" if state == "idle" else msg_type
            self._add(
                "status.busy-before-output",
                f"{what} arrived before status: busy for its request",
                message,
            )
        if state == "idle":
            if request.idle is not None:
                self._add("status.repeated", "a second status: idle for one request", message)
            request.idle = request.idle or message
            return
        late_ok = msg_type in ASYNC_EVENTS or (
            self.allow_late_output and msg_type in LATE_OUTPUT_TYPES
        )
        if request.idle is not None and not late_ok:
            self._add(
                "status.output-after-idle",
                f"{msg_type} arrived after status: idle for its request",
                message,
            )
        if request.msg_type != "execute_request":
            return
        if msg_type == "error":
            request.errors.append(message)
            return
        if msg_type == "execute_input":
            request.execute_inputs.append(message)
        elif msg_type == "execute_result":
            request.execute_results.append(message)
        else:
            return
        if request.silent:
            self._add(
                "execute.silent-output",
                f"a silent execute_request must not publish {msg_type}",
                message,
            )

    def _check_stdin(self, message: Received, request: Request) -> None:
        if request.msg_type != "execute_request":
            self._add(
                "stdin.unrequested",
                f"input_request whose parent is a {request.msg_type}, not an execute_request",
                message,
            )
        elif not request.content.get("allow_stdin", True):
            self._add(
                "stdin.not-allowed",
                "input_request for an execute_request sent with allow_stdin=False",
                message,
            )


SentLog = Mapping[str, tuple[str, dict[str, Any], float]] | Sequence[tuple[str, dict[str, Any]]]


def validate(
    sent: SentLog,
    received: Sequence[Received],
    *,
    allow_late_output: bool = True,
    check_kernel_clock: bool = False,
    cut_off: Collection[str] = (),
) -> list[Violation]:
    """Every protocol violation in one conversation.

    ``sent`` is :attr:`Frontend.sent <cokernel_harness.frontend.Frontend.sent>` (msg_id ->
    (channel, msg, time)) or a plain list of (channel, msg); ``received`` is
    :attr:`Frontend.log`. With times, sent and received messages are replayed in the order they
    happened; without, every sent message counts as sent before anything was received.
    """
    validator = Validator(
        allow_late_output=allow_late_output, check_kernel_clock=check_kernel_clock
    )
    for kind, item in _replay(sent, received):
        if kind == "sent":
            channel, msg = item
            validator.sent(channel, msg)
        else:
            validator.received(item)
    return validator.finish(cut_off=cut_off)


def _replay(sent: SentLog, received: Sequence[Received]) -> Iterable[tuple[str, Any]]:
    if not isinstance(sent, Mapping):
        yield from (("sent", pair) for pair in sent)
        yield from (("received", m) for m in received)
        return
    # Received messages keep their arrival order; each sent message goes in before the first
    # message that arrived after it was sent.
    pending = sorted(sent.values(), key=lambda entry: entry[2])
    i = 0
    for message in received:
        while i < len(pending) and pending[i][2] <= message.time:
            yield "sent", pending[i][:2]
            i += 1
        yield "received", message
    yield from (("sent", entry[:2]) for entry in pending[i:])
