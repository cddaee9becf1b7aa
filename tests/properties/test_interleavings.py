"""Random interleavings of requests against a running kernel, checked as a whole.

A hypothesis state machine (:class:`Interleavings`) sends requests *without waiting* for their
answers: cells of a small vocabulary (:data:`~conversation.CELLS`), kernel_info on shell and
control, completion, inspection, is_complete, comm_open/comm_msg to an echo target, interrupts,
subshells created and deleted, requests routed to live subshells and to ones that do not exist.
Requests pile up in the kernel's lanes in whatever order hypothesis chose, and the kernel serves
them concurrently. At teardown the machine waits (bounded) until everything is answered, then
checks the whole exchange (:meth:`~conversation.Conversation.problems`): the protocol
validator, one reply per request on its channel, per-lane reply order, stop_on_error aborts,
interrupts. A failure shrinks to a short script of rule calls, each noted as ``#n`` so that the
problems (which name steps by number) read against it.

How it runs
-----------
Hypothesis calls the rules synchronously; the kernel and an async Frontend live on a background
event loop (:class:`~portal_frontend.PortalFrontend`, through an anyio blocking portal). One
kernel serves every example of a test: each example starts with a kernel_info round trip as its
synchronisation point and leaves no subshell behind. An example that failed, or could not
settle, marks the kernel tainted and the next example gets a fresh kernel, so that shrinking
replays each candidate against a kernel in a known state. Only the rules that need an answer to
go on (creating and deleting a subshell: the machine must know the id, and whether it is gone)
wait; everything else is fire-and-forget.

Runs: the in-process transport on asyncio and trio (many examples, fast), and a smaller run
over ZMQ against the installed ``cokernel`` kernelspec. With ``CI=true`` the ``-ci`` settings
profiles run fewer examples. Nothing is written to the repository: the example database is off
and hypothesis's home directory is a temporary one.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import note, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.reporting import with_reporter
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    precondition,
    rule,
    run_state_machine_as_test,
)

from cokernel.testing import InProcessTransport
from cokernel_harness.frontend import Frontend
from cokernel_harness.messages import execute_content
from properties.conversation import (
    CELLS,
    CONTROL,
    KINDS,
    MAIN,
    UNKNOWN_SUBSHELL,
    Conversation,
    Problem,
    Step,
)
from properties.portal_frontend import ECHO_TARGET, PortalFrontend

#: How long the teardown waits for every answer. Each cell takes at most ~50 ms and an example
#: sends at most 25 steps: far past this, the kernel has lost something.
SETTLE_TIMEOUT = 30.0
#: How long a rule that needs an answer (create or delete a subshell) waits for it.
REPLY_TIMEOUT = 30.0
MAX_LIVE_SUBSHELLS = 3

_BASE = settings(
    deadline=None,  # a step's time is the kernel's business, not hypothesis's
    database=None,  # nothing written to the repository
    stateful_step_count=25,
)
settings.register_profile("interleavings-inprocess", _BASE, max_examples=100)
settings.register_profile("interleavings-inprocess-ci", _BASE, max_examples=15)
settings.register_profile("interleavings-zmq", _BASE, max_examples=25)
settings.register_profile("interleavings-zmq-ci", _BASE, max_examples=5)


def profile(transport: str) -> settings:
    """The settings profile of ``transport`` ("inprocess" or "zmq"), its CI variant on CI."""
    on_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    return settings.get_profile(f"interleavings-{transport}{'-ci' if on_ci else ''}")


@dataclass(frozen=True)
class Subshell:
    """A subshell the machine created; ``name`` is how the script and the notes call it."""

    name: str
    subshell_id: str


LANE_REQUESTS: dict[str, tuple[str, dict[str, Any]]] = {
    "kernel_info": ("kernel_info_request", {}),
    "complete": ("complete_request", {"code": "pri", "cursor_pos": 3}),
    "inspect": ("inspect_request", {"code": "print", "cursor_pos": 5, "detail_level": 0}),
    "is_complete": ("is_complete_request", {"code": "for i in range(3):"}),
}


class Interleavings(RuleBasedStateMachine):
    """Sends a random sequence of requests to one kernel; checks every answer at teardown."""

    subshells = Bundle("subshells")
    deleted = Bundle("deleted")
    comms = Bundle("comms")

    lanes = st.one_of(st.just(MAIN), subshells)
    missing_subshells = st.one_of(st.just(UNKNOWN_SUBSHELL), deleted)

    def __init__(self, kernel: PortalFrontend, *, delivery_is_synchronous: bool) -> None:
        super().__init__()
        self.kernel = kernel
        if kernel.tainted or not kernel.is_alive():
            kernel.restart()
        self.log_start = kernel.log_length()
        self.conversation = Conversation(delivery_is_synchronous=delivery_is_synchronous)
        self.live: list[Subshell] = []
        self.created = 0
        self.comm_count = 0
        # The synchronisation point: everything before this example has been answered.
        probe = self._send("shell", "kernel_info_request", lane=MAIN)
        self.kernel.reply(probe.msg_id, timeout=REPLY_TIMEOUT)

    # -- sending ----------------------------------------------------------------------------
    def _send(
        self,
        channel: str,
        msg_type: str,
        content: dict[str, Any] | None = None,
        *,
        lane: str,
        subshell_id: str | None = None,
        **details: Any,
    ) -> Step:
        msg_id, delivered_by = self.kernel.send(channel, msg_type, content, subshell_id=subshell_id)
        step = Step(
            number=self.conversation.next_number,
            msg_id=msg_id,
            channel=channel,
            msg_type=msg_type,
            lane=lane,
            subshell_id=subshell_id,
            sent_at=self.kernel.sent_at(msg_id),
            delivered_by=delivered_by,
            **details,
        )
        self.conversation.add(step)
        note(f"{step}  (msg_id {msg_id})")
        return step

    @staticmethod
    def _lane(lane: Subshell | str) -> tuple[str, str | None]:
        """The name and subshell_id of a live lane: MAIN or a subshell."""
        if isinstance(lane, Subshell):
            return lane.name, lane.subshell_id
        return MAIN, None

    @staticmethod
    def _missing(subshell: Subshell | str) -> tuple[str, str]:
        """The name and subshell_id of a deleted subshell, or of one never created."""
        if isinstance(subshell, Subshell):
            return subshell.name, subshell.subshell_id
        return subshell, subshell

    # -- rules: the shell -------------------------------------------------------------------
    @rule(cell=st.sampled_from(sorted(CELLS)), lane=lanes)
    def execute(self, cell: str, lane: Subshell | str) -> None:
        name, subshell_id = self._lane(lane)
        content = execute_content(CELLS[cell].code, stop_on_error=CELLS[cell].stop_on_error)
        self._send(
            "shell", "execute_request", content, lane=name, subshell_id=subshell_id, cell_name=cell
        )

    @rule(cells=st.lists(st.sampled_from(sorted(CELLS)), min_size=2, max_size=4), lane=lanes)
    def execute_burst(self, cells: list[str], lane: Subshell | str) -> None:
        """Several cells at once on one lane, as "Run All" sends them."""
        for cell in cells:
            self.execute(cell, lane)

    @rule(request=st.sampled_from(sorted(LANE_REQUESTS)), lane=lanes)
    def ask(self, request: str, lane: Subshell | str) -> None:
        """kernel_info, complete, inspect or is_complete on the shell channel."""
        name, subshell_id = self._lane(lane)
        msg_type, content = LANE_REQUESTS[request]
        self._send("shell", msg_type, dict(content), lane=name, subshell_id=subshell_id)

    @rule()
    def kernel_info_on_control(self) -> None:
        self._send("control", "kernel_info_request", lane=CONTROL)

    @rule()
    def interrupt(self) -> None:
        self._send("control", "interrupt_request", lane=CONTROL)

    # -- rules: comms -----------------------------------------------------------------------
    @rule(target=comms)
    def open_echo_comm(self) -> str:
        comm_id = uuid.uuid4().hex
        content = {"comm_id": comm_id, "target_name": ECHO_TARGET, "data": {}}
        self._send("shell", "comm_open", content, lane=MAIN, comm_id=comm_id)
        return comm_id

    @rule(comm=comms, lane=lanes)
    def comm_msg(self, comm: str, lane: Subshell | str) -> None:
        name, subshell_id = self._lane(lane)
        self.comm_count += 1
        data = {"n": self.comm_count}
        content = {"comm_id": comm, "data": data}
        self._send(
            "shell",
            "comm_msg",
            content,
            lane=name,
            subshell_id=subshell_id,
            comm_id=comm,
            data=data,
        )

    # -- rules: subshells -------------------------------------------------------------------
    @precondition(lambda self: len(self.live) < MAX_LIVE_SUBSHELLS)
    @rule(target=subshells)
    def create_subshell(self) -> Subshell:
        step = self._send("control", "create_subshell_request", {}, lane=CONTROL)
        reply = self.kernel.reply(step.msg_id, timeout=REPLY_TIMEOUT)
        assert reply.get("status") == "ok", f"{step}: create_subshell failed: {reply}"
        subshell = Subshell(f"subshells_{self.created}", str(reply["subshell_id"]))
        self.created += 1
        self.live.append(subshell)
        step.subject = f"-> {subshell.name} [{subshell.subshell_id[:8]}]"
        note(f"    {subshell.name} is subshell {subshell.subshell_id}")
        return subshell

    @rule(target=deleted, subshell=consumes(subshells))
    def delete_subshell(self, subshell: Subshell) -> Subshell:
        self._delete(subshell)
        return subshell

    def _delete(self, subshell: Subshell) -> None:
        self.live.remove(subshell)
        content = {"subshell_id": subshell.subshell_id}
        step = self._send(
            "control",
            "delete_subshell_request",
            content,
            lane=CONTROL,
            deletes=subshell.subshell_id,
            subject=f"{subshell.name} [{subshell.subshell_id[:8]}]",
        )
        reply = self.kernel.reply(step.msg_id, timeout=REPLY_TIMEOUT)
        assert reply.get("status") == "ok", f"{step}: deleting {subshell.name} failed: {reply}"

    @rule(request=st.sampled_from(["execute", *sorted(LANE_REQUESTS)]), subshell=missing_subshells)
    def ask_missing_subshell(self, request: str, subshell: Subshell | str) -> None:
        """A request to a subshell that was deleted or never existed: an error reply."""
        name, subshell_id = self._missing(subshell)
        if request == "execute":
            msg_type, content = "execute_request", execute_content("6 * 7", stop_on_error=True)
            details: dict[str, Any] = {"cell_name": "quick"}
        else:
            msg_type, content = LANE_REQUESTS[request]
            details = {}
        self._send(
            "shell",
            msg_type,
            dict(content),
            lane=name,
            subshell_id=subshell_id,
            target_missing=True,
            **details,
        )

    @rule(comm=comms, subshell=missing_subshells)
    def comm_msg_to_missing_subshell(self, comm: str, subshell: Subshell | str) -> None:
        """A comm_msg to a subshell that does not exist: dropped, and never answered."""
        name, subshell_id = self._missing(subshell)
        content = {"comm_id": comm, "data": {"n": 0}}
        self._send(
            "shell",
            "comm_msg",
            content,
            lane=name,
            subshell_id=subshell_id,
            comm_id=comm,
            target_missing=True,
        )

    # -- the whole exchange -----------------------------------------------------------------
    def teardown(self) -> None:
        try:
            problems = self._settle_and_check()
        except BaseException:
            self.kernel.tainted = True
            raise
        if problems:
            # The next example gets a fresh kernel: shrinking must not inherit this one's state.
            self.kernel.tainted = True
            log = self.kernel.received(self.log_start)
            first = min(problems, key=lambda p: KINDS.index(p.kind))
            raise first.kind(
                "the kernel broke these rules:\n  "
                + "\n  ".join(map(str, problems))
                + "\nwhat was sent and answered:\n"
                + self.conversation.transcript(log)
            )

    def _settle_and_check(self) -> list[Problem]:
        missing = self.kernel.wait_until_complete(self.conversation.missing, timeout=SETTLE_TIMEOUT)
        if missing:
            # Cleaning up would only wait again: the next example gets a fresh kernel.
            return [still_missing(p) for p in missing]
        # Leave no subshell behind for the next example; the deletions are checked as well.
        for subshell in list(self.live):
            self._delete(subshell)
        missing = self.kernel.wait_until_complete(self.conversation.missing, timeout=SETTLE_TIMEOUT)
        log = self.kernel.received(self.log_start)
        sent = self.kernel.sent([s.msg_id for s in self.conversation.steps])
        return [still_missing(p) for p in missing] + self.conversation.problems(sent, log)


def still_missing(problem: Problem) -> Problem:
    return Problem(problem.kind, f"{problem.text} within {SETTLE_TIMEOUT:g} s")


def run_interleavings(kernel: PortalFrontend, chosen: settings, *, synchronous: bool) -> None:
    """Run the state machine against ``kernel``; a failure carries hypothesis's script."""
    # Hypothesis prints the failing script with print(), and the kernel has replaced
    # sys.stdout for this whole process when it runs in-process: collect the lines instead.
    report: list[str] = []

    def machine() -> Interleavings:
        return Interleavings(kernel, delivery_is_synchronous=synchronous)

    with with_reporter(lambda line: report.append(str(line))):
        try:
            # A factory is documented as fine ("anything which returns an instance").
            run_state_machine_as_test(machine, settings=chosen)  # type: ignore[arg-type]
        except BaseException as e:
            if report:
                e.add_note("\n".join(report))
            raise


@pytest.fixture(autouse=True)
def hypothesis_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Hypothesis writes caches under its home directory even without an example database:
    keep them in this run's temporary directory, out of the repository."""
    set_hypothesis_home_dir(tmp_path_factory.mktemp("hypothesis"))
    yield
    set_hypothesis_home_dir(None)


# The kernels start inside the tests, not in fixtures: an in-process kernel takes over
# sys.stdout, and pytest puts its own capture back between a fixture's setup and the test.
@pytest.mark.timeout(600)
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_any_interleaving_of_requests_is_answered_by_the_rules_in_process(backend: str) -> None:
    def connect() -> contextlib.AbstractAsyncContextManager[Frontend]:
        return Frontend.connect(InProcessTransport(backend=backend))

    with PortalFrontend(connect, backend=backend) as kernel:
        run_interleavings(kernel, profile("inprocess"), synchronous=True)


@pytest.mark.timeout(600)
def test_any_interleaving_of_requests_is_answered_by_the_rules_over_zmq() -> None:
    def connect() -> contextlib.AbstractAsyncContextManager[Frontend]:
        return Frontend.launch("cokernel")

    with PortalFrontend(connect) as kernel:
        run_interleavings(kernel, profile("zmq"), synchronous=False)
