"""What every client in the harness shares: the received-message record, what one execution
produced, and the failures of a bounded wait.

The :class:`~cokernel_harness.frontend.Frontend` (async: scenarios, the demo, async tests) and
the :class:`~cokernel_harness.client.BlockingClient` (synchronous: plain tests, and the bench,
whose kernels are BlockingClients) both log :class:`Received` messages, both return an
:class:`Execution` for a cell and both raise :class:`WaitTimeout` when a wait runs out, so a
test, a scenario or a workload reads and fails the same way whichever client it drives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def execute_content(
    code: str,
    *,
    silent: bool = False,
    store_history: bool = True,
    allow_stdin: bool = False,
    stop_on_error: bool = True,
    user_expressions: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The content of an execute_request, every field of the protocol's set; by default as a
    notebook sends it (history on, no stdin, queued cells aborted on an error)."""
    return {
        "code": code,
        "silent": silent,
        "store_history": store_history,
        "user_expressions": user_expressions or {},
        "allow_stdin": allow_stdin,
        "stop_on_error": stop_on_error,
    }


#: One message as a transport hands it over: (channel, message dict, ``perf_counter`` on arrival).
#: Plain data, so a transport need not import the harness to produce it.
Arrival = tuple[str, dict[str, Any], float]


@dataclass
class Received:
    """One message as a client received it: its channel, the message dict, and its arrival
    time (:func:`time.perf_counter`, taken as it left its socket or its in-process queue)."""

    channel: str
    msg: dict[str, Any]
    time: float

    @property
    def msg_type(self) -> str:
        return str(self.msg["header"]["msg_type"])

    @property
    def parent_id(self) -> str | None:
        parent = self.msg.get("parent_header") or {}
        value = parent.get("msg_id")
        return str(value) if value is not None else None

    @property
    def content(self) -> dict[str, Any]:
        content: dict[str, Any] = self.msg["content"]
        return content


@dataclass
class Execution:
    """What one execute_request produced: its reply and the iopub messages of its parent."""

    msg_id: str
    reply: dict[str, Any]
    outputs: list[Received] = field(default_factory=list)

    @property
    def status(self) -> str:
        """The reply's status: "ok", "error" or "aborted"."""
        return str(self.reply.get("status"))

    @property
    def stdout(self) -> str:
        return "".join(
            m.content["text"]
            for m in self.outputs
            if m.msg_type == "stream" and m.content["name"] == "stdout"
        )

    @property
    def stderr(self) -> str:
        return "".join(
            m.content["text"]
            for m in self.outputs
            if m.msg_type == "stream" and m.content["name"] == "stderr"
        )

    def of_type(self, msg_type: str) -> list[Received]:
        return [m for m in self.outputs if m.msg_type == msg_type]

    @property
    def result(self) -> dict[str, Any] | None:
        found = self.of_type("execute_result")
        return found[-1].content["data"] if found else None


class WaitTimeout(AssertionError):
    """An expected message did not arrive in time. The message says what, and what did arrive.

    An AssertionError, so that a test or a scenario that waits in vain fails rather than errs.
    """


class KernelDied(Exception):
    """The kernel process exited while a client was waiting for it."""


def describe(message: Received) -> str:
    """One line about ``message``, for the diagnosis of a failed wait."""
    content = message.content
    brief = (
        content.get("execution_state")
        or content.get("name")
        or content.get("status")
        or content.get("ename")
        or ""
    )
    return f"{message.channel}:{message.msg_type}({brief}) parent={message.parent_id}"
