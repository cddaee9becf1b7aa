"""The validator's state per request, and its rules over the whole conversation.

:class:`~cokernel_harness.validator.Validator` checks each message as it arrives; what can only
be judged once the conversation is over (every request answered, execution counts consistent
and consecutive, the kernel's own clock) lives here, in :class:`ConversationChecks`, which it
extends. :class:`Request` is what the validator knows of one request it saw sent.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from cokernel_harness.messages import Received
from cokernel_harness.schemas import REQUEST_TYPES, reply_type
from cokernel_harness.validator_rules import RULES, Violation


@dataclass
class Request:
    """What was sent, and what has been seen of its answer so far."""

    msg_id: str
    channel: str
    msg_type: str
    content: dict[str, Any]
    live: bool  # sent after iopub was known to deliver
    replies: list[Received] = field(default_factory=list)
    busy: Received | None = None
    idle: Received | None = None
    busy_reported: bool = False
    execute_inputs: list[Received] = field(default_factory=list)
    execute_results: list[Received] = field(default_factory=list)
    errors: list[Received] = field(default_factory=list)

    @property
    def silent(self) -> bool:
        return bool(self.content.get("silent", False))

    @property
    def stored(self) -> bool:
        return not self.silent and bool(self.content.get("store_history", True))


def str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def content_of(message: Received) -> dict[str, Any]:
    return as_dict(message.msg.get("content"))


def kernel_time(message: Received) -> datetime | None:
    """When the kernel stamped ``message`` (header.date), as an aware datetime."""
    value = as_dict(message.msg.get("header")).get("date")
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class ConversationChecks:
    """The validator's record of violations, and the rules that need the whole conversation."""

    check_kernel_clock: bool
    violations: list[Violation]
    _requests: dict[str, Request]
    _indices: dict[int, int]  # id(message) -> position in the received order

    def _add(self, rule: str, text: str, message: Received) -> None:
        assert rule in RULES, rule
        header = as_dict(message.msg.get("header"))
        self.violations.append(
            Violation(
                rule,
                text,
                str_or_none(header.get("msg_type")),
                str_or_none(header.get("msg_id")),
                str_or_none(as_dict(message.msg.get("parent_header")).get("msg_id")),
                message.channel,
                self._indices.get(id(message)),
            )
        )

    def _add_request(self, rule: str, text: str, request: Request) -> None:
        assert rule in RULES, rule
        self.violations.append(
            Violation(rule, text, request.msg_type, request.msg_id, None, request.channel)
        )

    def _check_conversation(self, cut_off: Collection[str]) -> None:
        """Apply every whole-conversation rule (``cut_off``: see ``Validator.finish``)."""
        for request in self._requests.values():
            if request.msg_id not in cut_off:
                self._check_answered(request)
            if request.msg_type == "execute_request":
                self._check_execute(request)
            if self.check_kernel_clock:
                self._check_clock(request)
        self._check_count_sequence(cut_off)

    # -- the whole conversation -------------------------------------------------------------
    def _check_answered(self, request: Request) -> None:
        if request.msg_type in REQUEST_TYPES and not request.replies:
            self._add_request(
                "reply.missing",
                f"no {reply_type(request.msg_type)} arrived on {request.channel}",
                request,
            )
        if not request.live:
            return
        if request.busy is None and not request.busy_reported:
            self._add_request("status.busy-missing", "no status: busy on iopub", request)
        # A kernel that shuts down may exit before its idle leaves the socket.
        if request.idle is None and request.msg_type != "shutdown_request":
            self._add_request("status.idle-missing", "no status: idle on iopub", request)

    @staticmethod
    def _refused(request: Request) -> bool:
        """An execute answered with an error before any of it ran (a kernel refusing it: its
        subshell was deleted, the kernel was stopping): no execute_input, no error output,
        and no execution count of its own."""
        if not request.replies or not request.live:
            return False
        reply = content_of(request.replies[0])
        return (
            reply.get("status") == "error"
            and not request.execute_inputs
            and not request.errors
            and request.idle is not None
        )

    def _check_execute(self, request: Request) -> None:
        reply = content_of(request.replies[0]) if request.replies else {}
        ran = reply.get("status") in ("ok", "error") and not self._refused(request)
        if not ran:
            return
        if request.live and not request.silent and not request.execute_inputs:
            self._add_request(
                "execute.input-missing",
                "no execute_input on iopub for a non-silent execute",
                request,
            )
        count = reply.get("execution_count")
        if not request.stored or not isinstance(count, int):
            return
        for output in (*request.execute_inputs, *request.execute_results):
            published = content_of(output).get("execution_count")
            if published != count:
                self._add(
                    "execute.count-mismatch",
                    f"{output.msg_type}.execution_count is {published!r}, "
                    f"the execute_reply says {count}",
                    output,
                )

    def _check_clock(self, request: Request) -> None:
        if not request.replies:
            return
        reply = request.replies[0]
        sent_at = kernel_time(reply)
        busy_at = kernel_time(request.busy) if request.busy else None
        idle_at = kernel_time(request.idle) if request.idle else None
        if sent_at is None:
            return
        if busy_at is not None and sent_at < busy_at:
            self._add(
                "order.reply-before-busy",
                f"the kernel stamped the reply {sent_at:%H:%M:%S.%f}, "
                f"before its status: busy ({busy_at:%H:%M:%S.%f})",
                reply,
            )
        if idle_at is not None and sent_at > idle_at:
            self._add(
                "order.reply-after-idle",
                f"the kernel stamped the reply {sent_at:%H:%M:%S.%f}, "
                f"after its status: idle ({idle_at:%H:%M:%S.%f})",
                reply,
            )

    def _check_count_sequence(self, cut_off: Collection[str]) -> None:
        # Counts are per kernel process: a restarted kernel has a new session and starts over.
        runs: dict[str, list[tuple[int, Request]]] = {}
        unstored: dict[tuple[str, int], Request] = {}
        for request in self._requests.values():
            if request.msg_type != "execute_request":
                continue
            if self._refused(request):
                continue
            found = self._count_of(request, cut_off)
            if found is None:
                continue
            if request.stored:
                runs.setdefault(found[0], []).append((found[1], request))
            else:
                unstored[found] = request
        for session, run in runs.items():
            run.sort(key=lambda pair: pair[0])
            for (previous, first), (count, second) in pairwise(run):
                if count == previous:
                    self._add_request(
                        "execute.count-repeated",
                        f"execution_count {count} was also given to {first.msg_id}",
                        second,
                    )
                elif count != previous + 1:
                    # Name the usual culprit: a request that should not have taken a count.
                    takers = [
                        f"{unstored[session, n].msg_id} (silent or store_history=False) got {n}"
                        for n in range(previous + 1, count)
                        if (session, n) in unstored
                    ]
                    why = f"; {', '.join(takers)}" if takers else ""
                    self._add_request(
                        "execute.count-skipped",
                        f"execution_count {count} follows {previous} ({first.msg_id}); "
                        f"expected {previous + 1}{why}",
                        second,
                    )

    @staticmethod
    def _count_of(request: Request, cut_off: Collection[str]) -> tuple[str, int] | None:
        """(kernel session, execution_count) of an execute that ran, if known."""
        if request.replies:
            reply = request.replies[0]
            count = content_of(reply).get("execution_count")
            if content_of(reply).get("status") in ("ok", "error") and isinstance(count, int):
                return str(as_dict(reply.msg.get("header")).get("session")), count
            return None
        # A cut-off request that started still consumed its count.
        if request.msg_id in cut_off and request.execute_inputs:
            first = request.execute_inputs[0]
            count = content_of(first).get("execution_count")
            if isinstance(count, int):
                return str(as_dict(first.msg.get("header")).get("session")), count
        return None
