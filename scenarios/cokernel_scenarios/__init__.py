"""cokernel_scenarios: interaction patterns real frontends produce, played against a kernel.

One module per pattern; :mod:`cokernel_scenarios.registry` lists them. A scenario speaks only
the protocol (through :class:`cokernel_harness.frontend.Frontend`), so it runs against any
kernel; :func:`probe_features` says which scenarios a kernel can support at all.
"""

from cokernel_scenarios.features import probe_features as probe_features
from cokernel_scenarios.gate import Gate as Gate
from cokernel_scenarios.registry import SCENARIOS as SCENARIOS
from cokernel_scenarios.registry import UnknownScenario as UnknownScenario
from cokernel_scenarios.registry import all_scenarios as all_scenarios
from cokernel_scenarios.registry import get as get
from cokernel_scenarios.registry import select as select
from cokernel_scenarios.scenario import Scenario as Scenario
from cokernel_scenarios.scenario import ScenarioFailure as ScenarioFailure
from cokernel_scenarios.scenario import ScenarioUnsupported as ScenarioUnsupported

__all__ = [
    "SCENARIOS",
    "Gate",
    "Scenario",
    "ScenarioFailure",
    "ScenarioUnsupported",
    "UnknownScenario",
    "all_scenarios",
    "get",
    "probe_features",
    "select",
]
