"""What a scenario is, how it fails, and the waits every scenario shares.

A :class:`Scenario` plays one interaction pattern against a kernel through a
:class:`~cokernel_harness.frontend.Frontend`. It says which kernel features it needs
(:attr:`Scenario.requires`, matched against :func:`~cokernel_scenarios.features.probe_features`),
and fails by raising :class:`ScenarioFailure`: what it expected, what it got instead and the last
messages that did arrive. A kernel lacking a needed feature is *unsupported*, not failed.

Scenarios assert order and outcome, never durations. Where "while the cell is still running"
matters, the cell blocks on a :class:`~cokernel_scenarios.gate.Gate` that only the harness opens,
so the order of events is fixed by construction rather than by sleeping long enough.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from typing import ClassVar

from cokernel_harness.frontend import Frontend
from cokernel_harness.messages import Execution, Received, describe

# How long a kernel gets to answer something it should answer at once (a reply while a cell
# blocks, a comm echo while input() waits). Generous: exceeding it means "did not happen while
# it mattered", which a slow machine should not cause.
PATIENCE = 10.0

PYTHON: frozenset[str] = frozenset({"python"})


class ScenarioFailure(AssertionError):
    """The kernel did not do what the scenario expects; the message says what it did instead."""

    def __init__(self, expected: str, got: str, last_messages: Iterable[Received] = ()) -> None:
        self.expected = expected
        self.got = got
        self.last_messages = list(last_messages)
        lines = [f"expected {expected}", f"got {got}"]
        if self.last_messages:
            lines.append("last messages:")
            lines.extend(f"  {describe(m)}" for m in self.last_messages)
        super().__init__("\n".join(lines))


class ScenarioUnsupported(Exception):
    """The kernel lacks what the scenario needs; it is reported as unsupported, not failed."""


class Scenario(abc.ABC):
    """One interaction pattern. Subclasses set the class attributes and implement :meth:`run`."""

    name: ClassVar[str]
    description: ClassVar[str]
    requires: ClassVar[frozenset[str]] = PYTHON
    # True when the scenario leaves its kernel stopped or replaced: a runner that shares one
    # kernel between scenarios starts a new one after it.
    ends_kernel: ClassVar[bool] = False
    # An upper bound on the whole scenario, for runners; generous, never an assertion.
    time_limit: ClassVar[float] = 90.0

    @property
    def uses_comms(self) -> bool:
        """True when it talks over comms, where frontend profiles differ: runners play it under
        each profile (see :mod:`cokernel_harness.profiles`); the others once."""
        return "comms" in self.requires

    @abc.abstractmethod
    async def run(self, fe: Frontend) -> None:
        """Play the pattern; return if the kernel behaved, raise :class:`ScenarioFailure` if not."""

    def __repr__(self) -> str:
        return f"<Scenario {self.name}>"


def last(fe: Frontend, count: int = 10) -> list[Received]:
    """The last ``count`` messages ``fe`` received, for a failure's diagnosis."""
    return fe.log[-count:]


def expect(condition: bool, expected: str, got: str, fe: Frontend) -> None:
    """Raise :class:`ScenarioFailure` (with ``fe``'s last messages) unless ``condition``."""
    if not condition:
        raise ScenarioFailure(expected, got, last(fe))


def expect_ok(execution: Execution, what: str, fe: Frontend) -> None:
    """Fail unless ``execution`` replied ``ok``; the failure shows the kernel's error."""
    reply = execution.reply
    if reply.get("status") != "ok":
        error = f"{reply.get('ename')}: {reply.get('evalue')}" if "ename" in reply else ""
        raise ScenarioFailure(
            f"{what} to succeed",
            f"status {reply.get('status')!r} {error}".strip()
            + (f"\nstderr: {execution.stderr.strip()}" if execution.stderr.strip() else ""),
            last(fe),
        )


async def wait_for_output(
    fe: Frontend, msg_id: str, text: str, *, timeout: float = 30.0, what: str | None = None
) -> Received:
    """The first stdout stream of request ``msg_id`` containing ``text``."""
    return await fe.wait_for(
        lambda m: (
            m.parent_id == msg_id
            and m.msg_type == "stream"
            and m.content.get("name") == "stdout"
            and text in m.content.get("text", "")
        ),
        timeout=timeout,
        what=what or f"stdout {text!r} from {msg_id}",
    )
