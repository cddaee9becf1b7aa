"""The simulated debugger against a recording of JupyterLab 4.6's debugger.

``tests/fixtures/jupyterlab-4.6/debugger.jsonl`` holds every message a cokernel kernel received
from a real JupyterLab while its debugger was switched on, a breakpoint set from the gutter, the
cell run, held and continued (``tests/e2e/record_jupyterlab.py --flow debugger``). The harness's
:class:`~cokernel_harness.debugger.DebugClient` must send what the page sent, in the order the
page sent it, for the steps it plays: starting the debugger and setting breakpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cokernel_harness.debugger import DebugClient
from cokernel_harness.frontend import Frontend
from cokernel_harness.recording import describe_sent, load

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

RECORDING = Path(__file__).resolve().parents[1] / "fixtures" / "jupyterlab-4.6" / "debugger.jsonl"
CODE = "marker_value = 41\nmarker_value += 1\nprint('done', marker_value)"


def commands(entries: list[dict[str, Any]]) -> list[str]:
    """The DAP commands of the debug requests, in the order they were sent."""
    return [str(e.get("command")) for e in entries if e.get("msg_type") == "debug_request"]


def span(sequence: list[str], first: str, last: str) -> list[str]:
    """``sequence`` from the first ``first`` up to and including the next ``last``."""
    begin = sequence.index(first)
    return sequence[begin : sequence.index(last, begin) + 1]


def deduplicated(sequence: list[str]) -> list[str]:
    """Runs of one command as one (the page repeats debugInfo and setExceptionBreakpoints)."""
    return [c for i, c in enumerate(sequence) if i == 0 or sequence[i - 1] != c]


async def test_start_and_breakpoints_are_sent_as_jupyterlab_sent_them() -> None:
    recorded = commands(load(RECORDING))
    async with Frontend.launch("cokernel") as fe:
        debugger = DebugClient(fe)
        start = len(fe.sent)
        await debugger.start()
        await debugger.set_breakpoints(CODE, [2])
        played = commands(
            [describe_sent(channel, msg) for channel, msg, _ in list(fe.sent.values())[start:]]
        )
    # Starting: debugInfo reaches the kernel between the page's initialize and its attach
    # (the harness sends its debugInfo before initialize is answered, as the page did: see the
    # fixture's README).
    starting = ["initialize", "debugInfo", "attach"]
    assert deduplicated(span(recorded, "initialize", "attach")) == starting
    assert deduplicated(span(played, "initialize", "attach")) == starting
    # Setting breakpoints from the gutter: dumpCell, debugInfo, setBreakpoints.
    assert span(recorded, "dumpCell", "setBreakpoints") == span(
        played, "dumpCell", "setBreakpoints"
    )
    # The page asked debugInfo before its initialize, as the harness does.
    assert recorded.index("debugInfo") < recorded.index("initialize")
    assert played.index("debugInfo") < played.index("initialize")
