"""What a property test sent to a kernel, and the rules the kernel's answers must obey.

A :class:`Conversation` is the ledger of one hypothesis example: every message the state
machine sent, numbered (#1, #2, ...), with the lane it went to (the main shell, a subshell, the
control channel). :meth:`Conversation.missing` names what has not arrived yet (the machine waits
until it names nothing); :meth:`Conversation.problems` then checks the whole exchange:

- the protocol validator finds nothing;
- every request has exactly one reply, on its own channel; comm messages have none;
- on each lane, the execute replies of queued cells arrive in the order the cells were sent
  (a ``# cokernel: task`` cell runs beside its lane's queue, so it is in no order);
- ``aborted`` only for a cell on the lane of a failed cell sent with stop_on_error, and sent
  before that failure's reply reached the frontend; where sending is delivering (in-process),
  also the converse: a cell queued behind a failure that was delivered before the failure
  happened is aborted;
- KeyboardInterrupt only for a cell that an interrupt_request (or the deletion of its
  subshell) sent while it was outstanding could have hit;
- every other outcome is one the cell can produce (a quick cell does not fail, an error cell
  does not succeed), requests to a subshell that does not exist get SubshellNotFound;
- every comm_msg to the echo target comes back, with its data, as the comm_msg's output.

Times are the harness's ``time.perf_counter()`` stamps of sending and arrival, compared only with
each other (which happened first), never against a duration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cokernel_harness.messages import Received
from cokernel_harness.validator import Violation, validate

MAIN = "main"
CONTROL = "control"
UNKNOWN_SUBSHELL = "no-such-subshell"

#: Error names that mean "never ran" rather than "ran and failed": they abort nothing.
NOT_RUN = frozenset({"SubshellNotFound", "RequestCancelled"})


class BrokenRule(AssertionError):
    """The kernel broke a rule of the conversation. Each kind of rule has its own subclass,
    so that hypothesis tells different bugs apart (and shrinks each on its own)."""


class Unanswered(BrokenRule):
    """A reply, a status: idle or an echo never came."""


class ProtocolViolation(BrokenRule):
    """The protocol validator found a violation."""


class WrongReplies(BrokenRule):
    """A request got no reply, several, or one on the wrong channel; or a non-request got one."""


class WrongOutcome(BrokenRule):
    """A reply says something the request cannot lead to."""


class OutOfOrder(BrokenRule):
    """Execute replies on one lane arrived in another order than their requests were sent."""


class WrongAbort(BrokenRule):
    """A cell was aborted that no failure could have aborted."""


class MissingAbort(BrokenRule):
    """A cell queued behind a failure (stop_on_error) ran instead of being aborted."""


class StrayInterrupt(BrokenRule):
    """A cell ended with KeyboardInterrupt though no interrupt could have hit it."""


class WrongEcho(BrokenRule):
    """The echo comm target did not send a comm_msg's data back."""


#: The kinds, most specific first: an example's exception is of the first kind it broke, so
#: that one bug gives the same exception however its consequences happened to arrive.
KINDS: tuple[type[BrokenRule], ...] = (
    Unanswered,
    WrongReplies,
    WrongOutcome,
    OutOfOrder,
    WrongAbort,
    MissingAbort,
    StrayInterrupt,
    WrongEcho,
    ProtocolViolation,
)


@dataclass(frozen=True)
class Problem:
    """One broken rule: its kind and what happened, naming steps by number."""

    kind: type[BrokenRule]
    text: str

    def __str__(self) -> str:
        return f"{self.kind.__name__}: {self.text}"


@dataclass(frozen=True)
class Cell:
    """One cell of the vocabulary: its code, what it may do, what it shows when it succeeds."""

    code: str
    error: str | None = None  # the ename it fails with
    stop_on_error: bool = True
    stdout: str = ""
    shows: str | None = None  # msg_type of the output carrying text/plain "42" or "shown"

    @property
    def queued(self) -> bool:
        """Whether it waits its turn in its lane (a task-mode cell starts at once)."""
        return not self.code.startswith("# cokernel: task")


CELLS: Mapping[str, Cell] = {
    "quick": Cell("6 * 7", shows="execute_result"),
    "print": Cell("print('printed')", stdout="printed\n"),
    "error": Cell("raise ValueError('a planned failure')", error="ValueError"),
    "error_keep_going": Cell(
        "raise ValueError('a planned failure')", error="ValueError", stop_on_error=False
    ),
    # Fails before it runs: the kernel cannot read its first-line directive.
    "bad_directive": Cell("# cokernel: frobnicate\n6 * 7", error="DirectiveError"),
    "async_sleep": Cell("import anyio\nawait anyio.sleep(0.05)"),
    "time_sleep": Cell("import time\ntime.sleep(0.05)"),
    "display": Cell(
        "from IPython.display import display\ndisplay({'text/plain': 'shown'}, raw=True)",
        shows="display_data",
    ),
    "task": Cell(
        "# cokernel: task\nimport anyio\nawait anyio.sleep(0.05)\nprint('task done')",
        stdout="task done\n",
    ),
}


@dataclass
class Step:
    """One message the state machine sent."""

    number: int
    msg_id: str
    channel: str
    msg_type: str
    lane: str  # MAIN, CONTROL or a subshell's name
    subshell_id: str | None
    sent_at: float
    delivered_by: float  # the send call had returned (in-process: the kernel had it)
    cell_name: str | None = None
    target_missing: bool = False  # routed to a subshell that does not exist
    comm_id: str | None = None
    data: dict[str, Any] | None = None  # a comm_msg's data, which the echo sends back
    deletes: str | None = None  # the subshell_id a delete_subshell_request deletes
    subject: str | None = None  # what a control request is about ("subshells_0 [1a2b3c4d]")

    @property
    def cell(self) -> Cell | None:
        return CELLS[self.cell_name] if self.cell_name is not None else None

    @property
    def is_request(self) -> bool:
        return self.msg_type.endswith("_request")

    def __str__(self) -> str:
        what = self.msg_type.removesuffix("_request")
        if self.cell_name is not None:
            what += f" {self.cell_name}"
        if self.subject is not None:
            what += f" {self.subject}"
        where = f"on {self.lane}" if self.channel == "shell" else "on control"
        if self.subshell_id is not None and self.subshell_id != self.lane:
            where += f" [{self.subshell_id[:8]}]"
        if self.target_missing:
            where += " (no such subshell)"
        return f"#{self.number} {what} {where}"


@dataclass
class Answers:
    """What arrived for one step."""

    replies: list[Received] = field(default_factory=list)
    idle: Received | None = None
    error_output: Received | None = None
    echoes: list[Received] = field(default_factory=list)
    outputs: list[Received] = field(default_factory=list)  # iopub, other than status

    @property
    def stdout(self) -> str:
        return "".join(
            str(m.content.get("text"))
            for m in self.outputs
            if m.msg_type == "stream" and m.content.get("name") == "stdout"
        )

    def shown(self, msg_type: str) -> list[Any]:
        return [
            m.content.get("data", {}).get("text/plain")
            for m in self.outputs
            if m.msg_type == msg_type
        ]

    @property
    def reply(self) -> dict[str, Any] | None:
        return self.replies[0].content if self.replies else None

    def reply_time(self) -> float:
        return self.replies[0].time if self.replies else float("inf")


class Conversation:
    """The ledger of one example, and the checks of what the kernel answered.

    ``delivery_is_synchronous``: a send call returns only once the kernel has received the
    message (the in-process transport). Then a cell delivered before another cell failed is
    known to be queued behind the failure, and must be aborted; over ZMQ nobody knows when a
    message reached the kernel, so that check is left out.
    """

    def __init__(self, *, delivery_is_synchronous: bool) -> None:
        self.delivery_is_synchronous = delivery_is_synchronous
        self.steps: list[Step] = []
        self._by_id: dict[str, Step] = {}

    def add(self, step: Step) -> Step:
        self.steps.append(step)
        self._by_id[step.msg_id] = step
        return step

    @property
    def next_number(self) -> int:
        return len(self.steps) + 1

    def label(self, msg_id: str | None) -> str:
        step = self._by_id.get(msg_id or "")
        return f"#{step.number}" if step else str(msg_id)

    # -- what arrived -----------------------------------------------------------------------
    def answers(self, log: Sequence[Received]) -> dict[str, Answers]:
        found = {step.msg_id: Answers() for step in self.steps}
        for message in log:
            answers = found.get(message.parent_id or "")
            if answers is None:
                continue
            if message.channel in ("shell", "control"):
                answers.replies.append(message)
            elif message.channel != "iopub":
                continue
            elif message.msg_type == "status":
                if message.content.get("execution_state") == "idle" and answers.idle is None:
                    answers.idle = message
            else:
                answers.outputs.append(message)
                if message.msg_type == "error" and answers.error_output is None:
                    answers.error_output = message
                elif message.msg_type == "comm_msg":
                    answers.echoes.append(message)
        return found

    def _deleted_after(self, step: Step) -> Step | None:
        """The deletion of ``step``'s subshell sent after ``step``, if there was one."""
        for other in self.steps:
            if (
                other.deletes is not None
                and other.deletes == step.subshell_id
                and other.sent_at > step.sent_at
            ):
                return other
        return None

    def may_be_dropped(self, step: Step) -> bool:
        """A comm message to a subshell deleted after it was sent may never be served: it
        is no request, so there is nothing to answer, and a dead lane has no busy/idle."""
        return not step.is_request and self._deleted_after(step) is not None

    def _expects_echo(self, step: Step, answers: Mapping[str, Answers]) -> bool:
        if step.msg_type != "comm_msg" or step.target_missing or self.may_be_dropped(step):
            return False
        if step.lane == MAIN:
            return True  # the comm lane of the main shell serves comm_open before it
        # Another lane may serve this comm_msg before the main shell served the comm_open,
        # unless the frontend saw the open served (its idle) before sending.
        opened = next(s for s in self.steps if s.comm_id == step.comm_id)
        idle = answers[opened.msg_id].idle
        return idle is not None and idle.time < step.sent_at

    def missing(self, log: Sequence[Received]) -> list[Problem]:
        """What has not arrived yet: replies, idles and echoes."""
        answers = self.answers(log)
        wanted: list[Problem] = []
        for step in self.steps:
            got = answers[step.msg_id]
            if step.is_request and not any(r.channel == step.channel for r in got.replies):
                wanted.append(Problem(Unanswered, f"{step}: no reply"))
            if got.idle is None and not self.may_be_dropped(step):
                wanted.append(Problem(Unanswered, f"{step}: no status: idle"))
            if self._expects_echo(step, answers) and not got.echoes:
                wanted.append(Problem(Unanswered, f"{step}: no echo of the comm_msg"))
        return wanted

    # -- the checks -------------------------------------------------------------------------
    def problems(
        self, sent: Mapping[str, tuple[str, dict[str, Any], float]], log: Sequence[Received]
    ) -> list[Problem]:
        """Every rule the kernel broke in this example (empty if none)."""
        answers = self.answers(log)
        dropped = [s.msg_id for s in self.steps if self.may_be_dropped(s)]
        found = [self._relabel(v) for v in validate(sent, log, cut_off=dropped)]
        for step in self.steps:
            found += self._check_replies(step, answers[step.msg_id])
            found += self._check_echo(step, answers)
            if step.msg_type == "execute_request":
                found += self._check_execute(step, answers)
            elif step.is_request:
                found += self._check_other_request(step, answers[step.msg_id])
        found += self._check_lane_order(answers)
        if self.delivery_is_synchronous:
            found += self._check_queued_behind_failures_are_aborted(answers)
        return found

    def _relabel(self, violation: Violation) -> Problem:
        """The violation, with the requests it names given as step numbers."""
        v = violation
        message = v.message
        # Longest first: msg_ids from one session differ only in a counter suffix ("_6" is a
        # prefix of "_68").
        for step in sorted(self.steps, key=lambda s: -len(s.msg_id)):
            message = message.replace(step.msg_id, f"#{step.number}")
        if v.msg_id in self._by_id:  # a rule about a request as a whole
            about = f"request {self.label(v.msg_id)}"
        else:
            position = f"received[{v.index}] " if v.index is not None else ""
            about = f"{position}{v.channel}:{v.msg_type} for {self.label(v.parent_id)}"
        return Problem(ProtocolViolation, f"[{v.rule}] {about}: {message}")

    def _check_replies(self, step: Step, got: Answers) -> list[Problem]:
        channels = [r.channel for r in got.replies]
        if not step.is_request:
            if channels:
                text = f"{step}: a {step.msg_type} is never answered, got replies on {channels}"
                return [Problem(WrongReplies, text)]
            return []
        if channels != [step.channel]:
            return [
                Problem(
                    WrongReplies,
                    f"{step}: expected one reply on {step.channel}, got replies on {channels}",
                )
            ]
        return []

    def _check_echo(self, step: Step, answers: Mapping[str, Answers]) -> list[Problem]:
        if not self._expects_echo(step, answers):
            return []
        echoed = [m.content.get("data") for m in answers[step.msg_id].echoes]
        if echoed != [step.data]:
            return [
                Problem(
                    WrongEcho,
                    f"{step}: the echo target should send back {step.data}, sent {echoed}",
                )
            ]
        return []

    def _check_other_request(self, step: Step, got: Answers) -> list[Problem]:
        reply = got.reply
        if reply is None:
            return []
        ename = reply.get("ename")
        if step.target_missing:
            if reply.get("status") != "error" or ename != "SubshellNotFound":
                return [
                    Problem(
                        WrongOutcome,
                        f"{step}: expected a SubshellNotFound error, got {_outcome(reply)}",
                    )
                ]
            return []
        if reply.get("status") != "error":
            return []
        if ename in NOT_RUN and self._deleted_after(step) is not None:
            return []
        return [Problem(WrongOutcome, f"{step}: failed with {_outcome(reply)}")]

    def _check_execute(self, step: Step, answers: Mapping[str, Answers]) -> list[Problem]:
        reply = answers[step.msg_id].reply
        cell = step.cell
        if reply is None or cell is None:
            return []
        status, ename = reply.get("status"), reply.get("ename")
        if step.target_missing:
            if status != "error" or ename != "SubshellNotFound":
                return [
                    Problem(
                        WrongOutcome,
                        f"{step}: expected a SubshellNotFound error, got {_outcome(reply)}",
                    )
                ]
            return []
        if status == "aborted":
            return self._check_abort_cause(step, answers)
        if status == "ok":
            return self._check_output(step, cell, answers[step.msg_id])
        if status != "error":
            return [Problem(WrongOutcome, f"{step}: reply status {status!r}")]
        if ename == "KeyboardInterrupt":
            return self._check_interrupt_cause(step, answers)
        if ename in NOT_RUN:
            # Deleting a subshell answers what was still queued on it with an error.
            if self._deleted_after(step) is None:
                why = "its subshell was not deleted"
                return [Problem(WrongOutcome, f"{step}: {_outcome(reply)}, but {why}")]
            return []
        if ename == cell.error:
            return []
        return [Problem(WrongOutcome, f"{step}: failed with {_outcome(reply)}")]

    @staticmethod
    def _check_output(step: Step, cell: Cell, got: Answers) -> list[Problem]:
        """A cell that succeeded showed what it should, under its own request."""
        if cell.error is not None:
            return [Problem(WrongOutcome, f"{step}: an error cell succeeded")]
        if got.stdout != cell.stdout:
            return [Problem(WrongOutcome, f"{step}: stdout {got.stdout!r}, not {cell.stdout!r}")]
        if cell.shows is not None:
            want = "42" if cell.shows == "execute_result" else "shown"
            if got.shown(cell.shows) != [want]:
                found = {t: got.shown(t) for t in ("execute_result", "display_data")}
                return [Problem(WrongOutcome, f"{step}: expected {cell.shows} {want}, got {found}")]
        return []

    def _failures_on_lane(self, step: Step, answers: Mapping[str, Answers]) -> list[Step]:
        """Cells on ``step``'s lane that failed and stopped their lane (stop_on_error)."""
        failed: list[Step] = []
        for other in self.steps:
            cell = other.cell
            reply = answers[other.msg_id].reply
            if (
                other is not step
                and cell is not None
                and cell.stop_on_error
                and not other.target_missing
                and other.subshell_id == step.subshell_id
                and reply is not None
                and reply.get("status") == "error"
                and reply.get("ename") not in NOT_RUN
            ):
                failed.append(other)
        return failed

    def _check_abort_cause(self, step: Step, answers: Mapping[str, Answers]) -> list[Problem]:
        # The frontend had not seen the failure when it sent this cell: the kernel may have
        # queued it before the failure. Once a failure's reply has arrived, the frontend is
        # entitled to think its next cell runs.
        causes = [
            f
            for f in self._failures_on_lane(step, answers)
            if step.sent_at < answers[f.msg_id].reply_time()
        ]
        if causes:
            return []
        failed = [str(f) for f in self._failures_on_lane(step, answers)]
        why = f"the failures on its lane ({', '.join(failed)}) had answered before it was sent"
        return [
            Problem(
                WrongAbort,
                f"{step}: aborted, but {why if failed else 'no cell on its lane failed'}",
            )
        ]

    def _check_interrupt_cause(self, step: Step, answers: Mapping[str, Answers]) -> list[Problem]:
        until = answers[step.msg_id].reply_time()
        for other in self.steps:
            hits = other.msg_type == "interrupt_request" or (
                other.deletes is not None and other.deletes == step.subshell_id
            )
            # In-process an interrupt is handled as it is delivered: one sent before this cell
            # finds it not yet running. Over ZMQ the control channel may overtake the shell.
            after = other.sent_at > step.sent_at or not self.delivery_is_synchronous
            if hits and after and other.sent_at < until:
                return []
        return [
            Problem(
                StrayInterrupt,
                f"{step}: KeyboardInterrupt, but no interrupt_request was sent while it ran",
            )
        ]

    def _check_lane_order(self, answers: Mapping[str, Answers]) -> list[Problem]:
        lanes: dict[str | None, list[Step]] = {}
        for step in self.steps:
            cell = step.cell
            if cell is not None and cell.queued and not step.target_missing:
                lanes.setdefault(step.subshell_id, []).append(step)
        found: list[Problem] = []
        for steps in lanes.values():
            answered = [s for s in steps if answers[s.msg_id].replies]
            arrival = sorted(answered, key=lambda s: answers[s.msg_id].reply_time())
            if arrival != answered:
                sent = ", ".join(f"#{s.number}" for s in answered)
                got = ", ".join(f"#{s.number}" for s in arrival)
                found.append(
                    Problem(
                        OutOfOrder,
                        f"execute replies on {answered[0].lane} out of order: "
                        f"sent {sent}, answered {got}",
                    )
                )
        return found

    def _check_queued_behind_failures_are_aborted(
        self, answers: Mapping[str, Answers]
    ) -> list[Problem]:
        found: list[Problem] = []
        for step in self.steps:
            cell = step.cell
            reply = answers[step.msg_id].reply
            if cell is None or not cell.queued or step.target_missing or reply is None:
                continue
            if self._deleted_after(step) is not None:
                continue
            for failure in self._failures_on_lane(step, answers):
                failure_cell = failure.cell
                shown = answers[failure.msg_id].error_output
                # Queued behind the failure (same FIFO, sent later) and in the kernel's hands
                # before the failure's traceback was even published.
                behind = failure_cell is not None and failure_cell.queued
                if (
                    behind
                    and failure.number < step.number
                    and shown is not None
                    and step.delivered_by < shown.time
                    and reply.get("status") != "aborted"
                ):
                    found.append(
                        Problem(
                            MissingAbort,
                            f"{step}: queued behind the failure of {failure} but not aborted "
                            f"({_outcome(reply)})",
                        )
                    )
                    break
        return found

    # -- reporting --------------------------------------------------------------------------
    def transcript(self, log: Sequence[Received]) -> str:
        """Each step and how it was answered, one line each."""
        answers = self.answers(log)
        lines = []
        for step in self.steps:
            got = answers[step.msg_id]
            outcome = ", ".join(_outcome(r.content) for r in got.replies) or "no reply"
            if not step.is_request:
                outcome = f"{len(got.echoes)} echo(es)"
            idle = "" if got.idle is not None else " [no idle]"
            lines.append(f"  {step}  ->  {outcome}{idle}")
        return "\n".join(lines)


def _outcome(content: Mapping[str, Any]) -> str:
    status = str(content.get("status"))
    if content.get("ename"):
        return f"{status} {content.get('ename')}: {content.get('evalue')}"
    return status
