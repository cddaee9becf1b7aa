"""The round-trip timeline (cokernel_harness.bench_trace): a real traced kernel reaches every
step, in order; notes are attributed to the request of their thread."""

from __future__ import annotations

import os
import statistics

import pytest

from cokernel_harness import bench_trace
from cokernel_harness.bench_trace import STEPS, timeline

IO, MAIN = 1, 2


def test_notes_without_a_request_belong_to_the_last_request_of_their_thread() -> None:
    notes = [
        ("poll", IO, 90, None),
        ("received", IO, 100, "a"),
        ("verified", IO, 110, None),
        ("handed", IO, 120, None),
        ("poll", IO, 125, None),
        ("received", IO, 130, "b"),  # b arrives while a runs
        ("verified", IO, 135, None),
        ("begun", MAIN, 140, "a"),
        ("ran", MAIN, 160, None),  # a's: the main thread's last request is a
        ("handed", IO, 170, None),  # b's
        ("begun", MAIN, 200, "b"),
        ("ran", MAIN, 230, None),
        ("sent:status:busy", IO, 240, "a"),
        ("received", IO, 300, "c"),  # not one of ours: left out
        ("verified", IO, 310, None),
    ]

    offsets = timeline(notes, ["a", "b"])

    assert sorted(offsets["poll"]) == [-10.0 / 1000, -5.0 / 1000]
    assert sorted(offsets["verified"]) == [5.0 / 1000, 10.0 / 1000]
    assert sorted(offsets["handed"]) == [20.0 / 1000, 40.0 / 1000]
    assert sorted(offsets["ran"]) == [60.0 / 1000, 100.0 / 1000]
    assert offsets["sent:status:busy"] == [140.0 / 1000]
    assert offsets["replied"] == []
    assert set(offsets) == {name for name, _ in STEPS}


#: Steps one request passes in this order (the sends are checked separately: the io thread may
#: send busy while the main thread is still at work).
CHAIN = (
    "poll",
    "received",
    "verified",
    "handed",
    "begun",
    "busy",
    "transforming",
    "transformed",
    "ran",
    "replied",
    "idle",
)


@pytest.mark.timeout(120)
def test_a_traced_kernel_reaches_every_step_in_order() -> None:
    backend = os.environ.get("COKERNEL_TEST_BACKEND", "asyncio")

    offsets, totals = bench_trace.trace(round_trips=25, backend=backend)

    measured = 25 - 2  # the first tenth is left out
    assert len(totals) == measured
    for name, _ in STEPS:
        assert len(offsets[name]) == measured, (name, offsets[name])
    medians = {name: statistics.median(values) for name, values in offsets.items()}
    chain = [medians[name] for name in CHAIN]
    assert chain == sorted(chain), dict(zip(CHAIN, chain, strict=True))
    assert medians["sent:status:busy"] >= medians["busy"]
    assert medians["sent:execute_input"] >= medians["transforming"]
    assert medians["sent:execute_reply"] >= medians["replied"]
    assert medians["sent:status:busy"] <= medians["sent:execute_input"]
    assert medians["sent:execute_input"] <= medians["sent:status:idle"]
    text = bench_trace.format_timeline(offsets, totals)
    assert all(title in text for _, title in STEPS)


def test_the_traced_entry_point_needs_a_file_for_its_notes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cokernel import tracing

    monkeypatch.delenv(tracing.TRACE_FILE, raising=False)

    assert tracing.main(["start", "-f", "unused.json"]) == 2
    assert tracing.TRACE_FILE in capsys.readouterr().err
