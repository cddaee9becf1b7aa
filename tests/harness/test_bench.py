"""The bench runner: every workload yields numbers on cokernel, and failures are rows, not crashes.

Speed is never asserted here (the machine is shared and noisy); only that each metric was
measured, summarized and reported. Sample counts are tiny so the run takes seconds.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from cokernel_harness import bench
from cokernel_harness.bench_model import Metric, Result
from cokernel_harness.bench_perf import ALL_METRICS as METRICS
from cokernel_harness.bench_perf import ALL_WORKLOADS, FLOOR_WORKLOADS, _all_of
from cokernel_harness.bench_wire import open_wire, reply_to

TINY = [
    "--repeat=1",
    "--round-trips=3",
    "--pipelined=10",
    "--stdout-lines=500",
    "--block-seconds=0.3",
    "--comm-messages=3",
    "--interrupts=1",
    "--assignments=10",
    "--scale=0.001",
]


@pytest.mark.timeout(180)
def test_every_workload_has_a_numeric_median_on_cokernel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    json_file, markdown_file = tmp_path / "bench.json", tmp_path / "bench.md"
    argv = ["--kernel=cokernel", *TINY, f"--json={json_file}", f"--markdown={markdown_file}"]

    assert bench.main(argv) == 0

    report = json.loads(json_file.read_text())
    # The bench runs its floor kernels too, on what needs no code run.
    assert [k["name"] for k in report["kernels"]] == ["cokernel", "floor", "floor-threads"]
    results = report["results"]["cokernel"]
    assert set(results) == {m.key for m in METRICS}
    trio = os.environ.get("COKERNEL_TEST_BACKEND") == "trio"
    for key, entry in results.items():
        if trio and key == "interrupt_asyncio":  # asyncio.sleep cannot run on trio
            assert entry["status"] == "unsupported", (key, entry)
            continue
        assert entry["status"] == "ok", (key, entry)
        assert isinstance(entry["median"], float), (key, entry)
        assert math.isfinite(entry["median"]), (key, entry)
        assert entry["n"] >= 1, (key, entry)
    floor_keys = {m.key for w in ALL_WORKLOADS if w.name in FLOOR_WORKLOADS for m in w.metrics}
    for floor in ("floor", "floor-threads"):
        for key, entry in report["results"][floor].items():
            if key in floor_keys or key in ("startup", "startup_exec"):
                assert entry["status"] == "ok", (floor, key, entry)
            else:
                assert entry["status"] == "unsupported", (floor, key, entry)
    table = capsys.readouterr().out
    markdown = markdown_file.read_text()
    for metric in METRICS:
        assert metric.title in table
        assert metric.title in markdown
    # The goals table: the round trip against the floor, the rest against peers (none here).
    assert "| roundtrip_pass | cokernel |" in markdown
    assert "floor:" in markdown


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", ["inprocess", "inprocess:trio"])
def test_an_in_process_kernel_is_measured_through_the_callback_interface(
    tmp_path: Path, name: str
) -> None:
    json_file = tmp_path / "bench.json"
    only = ["--only=round_trip", "--only=pipelined", "--only=awaiting", "--only=subshells"]
    only.append("--only=widget_wake")
    argv = [f"--kernel={name}", *TINY, *only, "--no-floor", f"--json={json_file}"]

    assert bench.main(argv) == 0

    results = json.loads(json_file.read_text())["results"][name]
    measured = {
        "startup",
        "roundtrip_pass",
        "roundtrip_expr",
        "pipelined",
        "awaiting_control",
        "awaiting_shell",
        "subshell_create",
        "subshell_exec",
        "widget_wake",
    }
    assert measured <= set(results)
    for key in measured:
        assert results[key]["status"] == "ok", (key, results[key])
        assert math.isfinite(results[key]["median"]), (key, results[key])
    # No process of its own: memory is not the kernel's to report, and says so.
    assert results["rss_start"]["status"] == "unsupported"
    assert results["rss_start"]["median"] is None


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["floor", "floor-threads"])
def test_a_floor_answers_busy_reply_idle_and_stops_on_shutdown(name: str) -> None:
    wire = open_wire(name)
    wire.start(timeout=30)
    try:
        sent = [wire.execute("x=1") for _ in range(20)]  # pipelined, as the bench sends them
        ids = {s.msg_id for s in sent}
        wire.wait_for(_all_of(ids, "status"), 30, "every idle")  # two sockets: wait for both
        wire.wait_for(_all_of(ids, "execute_reply"), 30, "every reply")
        for number, request in enumerate(sent, start=1):  # (no order across two sockets)
            mine = [a for a in wire.log if a.parent_id == request.msg_id]
            states = [a.content["execution_state"] for a in mine if a.channel == "iopub"]
            assert states == ["busy", "idle"], (number, states)
            replies = [a for a in mine if a.channel == "shell"]
            assert [a.msg_type for a in replies] == ["execute_reply"], (number, replies)
            assert replies[0].content["execution_count"] == number
        bye = wire.send("shell", "shutdown_request", {"restart": False})
        wire.wait_for(reply_to(bye), 30, "the shutdown_reply")
        assert wire.manager.provisioner is not None
        assert wire.manager.provisioner.process is not None
        assert wire.manager.provisioner.process.wait(timeout=30) == 0
    finally:
        wire.close(now=True)


@pytest.mark.timeout(60)
def test_a_kernelspec_that_cannot_start_is_reported_as_failed(tmp_path: Path) -> None:
    json_file = tmp_path / "bench.json"

    code = bench.main(["--kernel=cokernel-no-such-kernelspec", *TINY, f"--json={json_file}"])

    assert code == 1
    results = json.loads(json_file.read_text())["results"]["cokernel-no-such-kernelspec"]
    assert {entry["status"] for entry in results.values()} == {"failed"}
    assert all(entry["median"] is None for entry in results.values())


def test_percentile_is_the_nearest_rank() -> None:
    samples = [float(x) for x in range(1, 21)]  # 1 .. 20

    assert bench.percentile(samples, 0.95) == 19.0
    assert bench.percentile(samples, 0.05) == 1.0
    assert bench.percentile([7.0], 0.95) == 7.0


def test_summary_gives_the_slow_tail_and_the_ratio_to_the_first_kernel() -> None:
    latency = Metric("latency", "latency", "ms")
    rate = Metric("rate", "rate", "msg/s", higher_is_better=True)
    base = Result(samples=[10.0, 10.0, 10.0])

    slow = bench.summarize(latency, Result(samples=[20.0, 20.0, 90.0]), base)
    assert (slow.median, slow.p95, slow.ratio) == (20.0, 90.0, 2.0)
    fast = bench.summarize(rate, Result(samples=[5.0, 30.0, 30.0]), base)
    assert (fast.median, fast.p95, fast.ratio) == (30.0, 5.0, 3.0)
    nothing = bench.summarize(latency, Result(status="timeout"), base)
    assert (nothing.median, nothing.p95, nothing.ratio) == (None, None, None)
