"""Run the scenario library (and the protocol validator) against any kernel; report a table.

::

    report = await run_conformance("python3", select(["interrupt"]))
    print(report.table())

Scenarios that talk over comms are played once per frontend profile (``frontends``, default:
every profile of :mod:`cokernel_harness.profiles`; JupyterLab sends comms on subshells, older
frontends do not), the others once, under the first profile. Each play gets a fresh kernel by
default (``share_kernel=True`` runs them all on one,
starting a new kernel after a scenario that ends or breaks it). Features are probed once per
kernel; a scenario needing one the kernel lacks is *unsupported*. A scenario's outcome is:

===========  ==================================================================
pass         the kernel did what the scenario expects
fail         it did not (the diagnosis says what came instead), or the scenario
             ran out of its time limit
unsupported  the kernel lacks a feature the scenario needs
error        the harness could not play the scenario (the kernel did not start,
             the harness itself raised): a problem to report, not a verdict
===========  ==================================================================

With validation on, every scenario's traffic also goes through
:func:`cokernel_harness.validator.validate`; violations are listed per scenario and make the
run fail even where the scenario passed.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import anyio

from cokernel_harness.frontend import Frontend
from cokernel_harness.messages import Received, WaitTimeout, describe
from cokernel_harness.profiles import PROFILES, FrontendProfile, get_profile
from cokernel_scenarios import Scenario, ScenarioUnsupported, probe_features

Connect = Callable[[], AbstractAsyncContextManager[Frontend]]

# Longest wait, after a scenario, for the idles of requests it stopped listening to.
SETTLE_TIME = 5.0

__all__ = ["Outcome", "Report", "ScenarioResult", "run_conformance"]


class Outcome(StrEnum):
    passed = "pass"
    failed = "fail"
    unsupported = "unsupported"
    error = "error"


@dataclass
class ScenarioResult:
    """What one scenario did; ``violations`` is None when the traffic was not validated."""

    scenario: str
    outcome: Outcome
    seconds: float
    diagnosis: str = ""
    violations: list[str] | None = None
    # The frontend profile it was played under; "" for a scenario no profile changes.
    frontend: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome in (Outcome.passed, Outcome.unsupported) and not self.violations

    @property
    def label(self) -> str:
        """The scenario's name, with the profile it was played under if that matters."""
        return f"{self.scenario} [{self.frontend}]" if self.frontend else self.scenario


@dataclass
class Report:
    """The results of one run against one kernel."""

    kernel: str
    results: list[ScenarioResult] = field(default_factory=list)
    features: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    frontends: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing failed, errored or broke the protocol."""
        return all(result.ok for result in self.results)

    def counts(self) -> dict[str, int]:
        return {o.value: sum(r.outcome is o for r in self.results) for o in Outcome}

    def to_json(self) -> dict[str, Any]:
        return {
            "kernel": self.kernel,
            "ok": self.ok,
            "counts": self.counts(),
            "features": self.features,
            "frontends": self.frontends,
            "notes": self.notes,
            "results": [asdict(r) | {"outcome": r.outcome.value} for r in self.results],
        }

    def table(self, *, width: int = 100) -> str:
        """A plain-text table: scenario | result | time | protocol | diagnosis (first line)."""
        validated = any(r.violations is not None for r in self.results)
        head = ["scenario", "result", "time"] + (["protocol"] if validated else []) + ["diagnosis"]
        rows = []
        for r in self.results:
            row = [r.label, r.outcome.value, f"{r.seconds:.2f} s"]
            if validated:
                row.append(
                    "-"
                    if r.violations is None
                    else f"{len(r.violations)} violations"
                    if r.violations
                    else "ok"
                )
            row.append(_first_line(r.diagnosis or (r.violations or [""])[0]))
            rows.append(row)
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=False)]
        lines = [f"kernel: {self.kernel}", f"features: {', '.join(self.features) or '-'}"]
        if self.frontends:
            lines.append(f"frontends: {', '.join(self.frontends)} (comm scenarios under each)")

        def render(cells: list[str]) -> str:
            text = " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False))
            return text.rstrip()[:width] if width else text.rstrip()

        lines += [render(head), render(["-" * w for w in widths])]
        lines += [render(row) for row in rows]
        counts = ", ".join(f"{n} {name}" for name, n in self.counts().items() if n)
        lines.append(f"{len(self.results)} scenarios: {counts}")
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)

    def details(self) -> str:
        """The full diagnosis and violations of every result that was not a clean pass."""
        parts = []
        for r in self.results:
            if r.outcome is Outcome.passed and not r.violations:
                continue
            text = r.diagnosis
            if r.violations:
                text += "\nprotocol violations:\n  " + "\n  ".join(r.violations[:20])
                if len(r.violations) > 20:
                    text += f"\n  ... {len(r.violations) - 20} more"
            parts.append(f"--- {r.label}: {r.outcome.value}\n{text.strip()}")
        return "\n".join(parts)


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0]


Validate = Callable[..., Sequence[object]]


def load_validator() -> Validate | None:
    """The protocol validator, or None when this harness has none (then runs skip validation)."""
    try:
        from cokernel_harness.validator import validate
    except ImportError:
        return None
    return validate


async def run_conformance(
    kernel: str,
    scenarios: Sequence[Scenario],
    *,
    share_kernel: bool = False,
    validate: bool = True,
    connect: Connect | None = None,
    on_result: Callable[[ScenarioResult], None] | None = None,
    frontends: Sequence[str | FrontendProfile] | None = None,
) -> Report:
    """Play ``scenarios`` against kernelspec ``kernel``; never raises for a kernel's faults.

    ``connect`` starts a Frontend (default: launch ``kernel`` over ZMQ); ``on_result`` is
    called as each scenario ends, for progress output. ``frontends`` are the profiles (or
    their names) comm scenarios are played under, each in turn (default: all of them).
    """
    profiles = [get_profile(p) for p in (frontends or list(PROFILES))]
    if not profiles:
        raise ValueError("no frontend profile to play the scenarios under")
    start = connect or (lambda: Frontend.launch(kernel))
    report = Report(kernel, frontends=[p.name for p in profiles])
    validator = load_validator() if validate else None
    if validate and validator is None:
        report.notes.append("cokernel_harness.validator is not available: traffic not validated")
    session = _Session(start, report, validator)
    try:
        for scenario in scenarios:
            for profile in profiles if scenario.uses_comms else profiles[:1]:
                result = await session.play(scenario, profile, share_kernel=share_kernel)
                if scenario.uses_comms:
                    result.frontend = profile.name
                report.results.append(result)
                if on_result is not None:
                    on_result(result)
    finally:
        with anyio.CancelScope(shield=True):
            await session.close()
    return report


class _Session:
    """Kernels for a run: one per scenario, or one shared until a scenario ends or breaks it."""

    def __init__(self, start: Connect, report: Report, validator: Validate | None) -> None:
        self.start = start
        self.report = report
        self.validator = validator
        self.features: frozenset[str] | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._fe: Frontend | None = None

    async def _frontend(self) -> Frontend:
        if self._fe is None:
            stack = contextlib.AsyncExitStack()
            try:
                self._fe = await stack.enter_async_context(self.start())
            except BaseException:
                await stack.aclose()
                raise
            self._stack = stack
            if self.features is None:
                self.features = await probe_features(self._fe)
                self.report.features = sorted(self.features)
        return self._fe

    async def close(self) -> None:
        stack, self._stack, self._fe = self._stack, None, None
        if stack is not None:
            try:
                await stack.aclose()
            except Exception as e:  # a kernel that will not stop must not hide the report
                self.report.notes.append(f"stopping a kernel failed: {type(e).__name__}: {e}")

    async def play(
        self, scenario: Scenario, profile: FrontendProfile, *, share_kernel: bool
    ) -> ScenarioResult:
        began = time.perf_counter()
        if self.features is not None and not scenario.requires <= self.features:
            return self._unsupported(scenario, began)
        try:
            fe = await self._frontend()
        except Exception as e:
            await self.close()
            return ScenarioResult(
                scenario.name,
                Outcome.error,
                time.perf_counter() - began,
                f"the kernel did not start (or answer the feature probe): {type(e).__name__}: {e}",
            )
        assert self.features is not None
        fe.profile = profile
        if not scenario.requires <= self.features:
            result = self._unsupported(scenario, began)
        else:
            result = await self._run(fe, scenario)
        if not share_kernel or scenario.ends_kernel or result.outcome is not Outcome.passed:
            await self.close()
        return result

    def _unsupported(self, scenario: Scenario, began: float) -> ScenarioResult:
        missing = sorted(scenario.requires - (self.features or frozenset()))
        return ScenarioResult(
            scenario.name,
            Outcome.unsupported,
            time.perf_counter() - began,
            f"the kernel lacks: {', '.join(missing)}",
        )

    async def _run(self, fe: Frontend, scenario: Scenario) -> ScenarioResult:
        first_received = len(fe.log)
        first_sent = len(fe.sent)
        began = time.perf_counter()
        outcome, diagnosis = Outcome.passed, ""
        try:
            with anyio.fail_after(scenario.time_limit):
                await scenario.run(fe)
        except ScenarioUnsupported as e:
            outcome, diagnosis = Outcome.unsupported, str(e)
        except TimeoutError:
            last = "\n  ".join(describe(m) for m in fe.log[-8:]) or "(nothing)"
            outcome = Outcome.failed
            diagnosis = (
                f"did not finish within its limit of {scenario.time_limit:g} s; "
                f"the last messages were:\n  {last}"
            )
        except AssertionError as e:  # ScenarioFailure, WaitTimeout
            outcome, diagnosis = Outcome.failed, str(e)
        except Exception as e:
            outcome = Outcome.error
            diagnosis = f"{type(e).__name__}: {e}\n" + "".join(
                traceback.format_exception(e, limit=-4)
            )
        seconds = time.perf_counter() - began
        if self.validator is not None and not scenario.ends_kernel:
            await _settle(fe, list(fe.sent)[first_sent:])
        violations = self._validate(fe, scenario, first_sent, first_received)
        return ScenarioResult(scenario.name, outcome, seconds, diagnosis, violations)

    def _validate(
        self, fe: Frontend, scenario: Scenario, first_sent: int, first_received: int
    ) -> list[str] | None:
        if self.validator is None:
            return None
        sent = dict(list(fe.sent.items())[first_sent:])
        received = fe.log[first_received:]
        cut_off: set[str] = set()
        if scenario.ends_kernel:
            # Requests in flight when the kernel was told to stop get no answer, by design.
            answered = {m.parent_id for m in received if m.msg_type.endswith("_reply")}
            cut_off = {msg_id for msg_id in sent if msg_id not in answered}
        try:
            found = self.validator(sent, received, cut_off=cut_off)
        except Exception as e:
            return [f"the validator raised {type(e).__name__}: {e}"]
        return [str(v) for v in found]


async def _settle(fe: Frontend, msg_ids: list[str], timeout: float = SETTLE_TIME) -> None:
    """Wait (briefly, bounded) for the idle of every request in ``msg_ids`` that has begun.

    A scenario may stop listening right after the reply it wanted; the idle still on its way
    is not a protocol violation, and the validator should not see the conversation cut short.
    """
    # A request counts as begun once its busy *or* its reply arrived: the reply comes on
    # another socket than the status messages and may well overtake its own busy.
    states: dict[str, set[str]] = {}
    for m in fe.log:
        if m.parent_id is None:
            continue
        if m.msg_type == "status":
            states.setdefault(m.parent_id, set()).add(str(m.content.get("execution_state")))
        elif m.msg_type.endswith("_reply"):
            states.setdefault(m.parent_id, set()).add("replied")
    waiting = {i for i in msg_ids if states.get(i) and "idle" not in states[i]}
    if not waiting:
        return

    def idle(m: Received) -> bool:
        if m.msg_type == "status" and m.content.get("execution_state") == "idle":
            waiting.discard(m.parent_id or "")
        return not waiting

    with contextlib.suppress(WaitTimeout):
        await fe.wait_for(idle, timeout=timeout, what="the idle of every request")
