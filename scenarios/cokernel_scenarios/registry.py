"""Every scenario of the library, by name, and selection by ``-k`` patterns."""

from __future__ import annotations

import fnmatch

from cokernel_scenarios.background_output import BackgroundOutput
from cokernel_scenarios.comm_close import CommClose
from cokernel_scenarios.comm_flood import CommFlood
from cokernel_scenarios.completion_while_blocked import CompletionWhileBlocked
from cokernel_scenarios.control_while_blocked import ControlWhileBlocked
from cokernel_scenarios.debugger_breakpoint import DebuggerBreakpoint
from cokernel_scenarios.debugger_comm_while_paused import DebuggerCommWhilePaused
from cokernel_scenarios.display_updates import DisplayUpdates
from cokernel_scenarios.input_while_comms import InputWhileComms
from cokernel_scenarios.interrupt_await import InterruptAwait
from cokernel_scenarios.interrupt_busy import InterruptBusy
from cokernel_scenarios.interrupt_sleep import InterruptSleep
from cokernel_scenarios.many_clients import ManyClients
from cokernel_scenarios.restart_while_busy import RestartWhileBusy
from cokernel_scenarios.scenario import Scenario
from cokernel_scenarios.shutdown_while_busy import ShutdownWhileBusy
from cokernel_scenarios.stop_on_error import StopOnError
from cokernel_scenarios.subshells import (
    SubshellChurn,
    SubshellComm,
    SubshellDeleteBusy,
    SubshellMany,
    SubshellParallel,
)
from cokernel_scenarios.widget_await import WidgetAwait
from cokernel_scenarios.widget_while_blocked import WidgetWhileBlocked

# In the order a report lists them: protocol liveness first, lifecycle last.
SCENARIOS: tuple[type[Scenario], ...] = (
    ControlWhileBlocked,
    CompletionWhileBlocked,
    WidgetAwait,
    WidgetWhileBlocked,
    CommFlood,
    CommClose,
    InputWhileComms,
    InterruptBusy,
    InterruptSleep,
    InterruptAwait,
    StopOnError,
    BackgroundOutput,
    DisplayUpdates,
    ManyClients,
    SubshellParallel,
    SubshellComm,
    SubshellDeleteBusy,
    SubshellMany,
    SubshellChurn,
    DebuggerBreakpoint,
    DebuggerCommWhilePaused,
    ShutdownWhileBusy,
    RestartWhileBusy,
)


class UnknownScenario(LookupError):
    """No scenario matches a name or pattern; the message lists the known names."""


def all_scenarios() -> list[Scenario]:
    """One instance of every scenario, in report order."""
    return [cls() for cls in SCENARIOS]


def get(name: str) -> Scenario:
    """The scenario called ``name``."""
    for scenario in all_scenarios():
        if scenario.name == name:
            return scenario
    raise UnknownScenario(f"no scenario {name!r}; known: {', '.join(names())}")


def names() -> list[str]:
    return [cls.name for cls in SCENARIOS]


def select(patterns: list[str] | None = None) -> list[Scenario]:
    """Scenarios whose name matches any pattern (a substring or a glob; commas separate).

    No pattern selects all. A pattern matching nothing raises :class:`UnknownScenario`, so a
    typo does not quietly run an empty suite.
    """
    wanted = [p.strip() for group in patterns or [] for p in group.split(",") if p.strip()]
    if not wanted:
        return all_scenarios()
    chosen = []
    for scenario in all_scenarios():
        if any(p in scenario.name or fnmatch.fnmatchcase(scenario.name, p) for p in wanted):
            chosen.append(scenario)
    unmatched = [p for p in wanted if not any(p in n or fnmatch.fnmatchcase(n, p) for n in names())]
    if unmatched:
        raise UnknownScenario(f"no scenario matches {unmatched}; known: {', '.join(names())}")
    return chosen
