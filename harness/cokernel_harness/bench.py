"""Compare Jupyter kernels on the same workloads, in one run.

``python -m cokernel_harness.bench --kernel cokernel --kernel python3 --kernel async``

Each named kernelspec is started through jupyter_client and driven over ZMQ (the bench speaks
only the protocol, so any kernel can be measured); the name ``inprocess`` (or
``inprocess:trio``) is a cokernel kernel in the bench's own process, reached through the
callback interface with no sockets. The workloads are those of
:mod:`cokernel_harness.bench_workloads`: start-up, execute round trip, pipelined throughput,
stdout throughput, kernel_info and comm latency while a cell blocks or awaits, how soon a
widget's comm_msg sent on a subshell (as JupyterLab sends it) wakes the cell awaiting it,
subshell creation and latency, interrupt latency and memory. Each workload runs on every kernel in turn before the next one starts, so a noisy
moment on the machine is shared rather than landing on one kernel.

The report gives, per metric and kernel, the median, the 95th percentile (for a rate, the slow
tail: the 5th percentile) and the ratio of the median to the first kernel's. It is printed as a
table and, on request, written as JSON (``--json``) and Markdown (``--markdown``). A kernel that
cannot do something gets ``blocked``, ``timeout`` or ``failed`` in its row, never a crashed run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

import psutil

from cokernel_harness.bench_goals import format_goals
from cokernel_harness.bench_model import (
    STARTUP,
    STARTUP_TIMEOUT,
    Failed,
    Metric,
    Result,
    Results,
    Settings,
    Workload,
    ms,
)
from cokernel_harness.bench_perf import ALL_METRICS as METRICS
from cokernel_harness.bench_perf import ALL_WORKLOADS as WORKLOADS
from cokernel_harness.bench_perf import FLOOR_WORKLOADS, STARTUP_EXEC, launch_to_first_execute
from cokernel_harness.bench_report import format_markdown, format_number, format_text
from cokernel_harness.bench_wire import FLOOR, FLOOR_THREADS, FLOORS, Unsupported, Wire, open_wire
from cokernel_harness.messages import KernelDied, WaitTimeout

__all__ = ["KernelRun", "Summary", "main", "percentile", "run_bench", "summarize"]

#: Workloads that always run: memory is read before and after whatever else was chosen.
_ALWAYS = frozenset({"rss_start", "rss_end"})
_PACKAGES = (
    "cokernel",
    "ipykernel",
    "async-kernel",
    "jupyter_client",
    "pyzmq",
    "ipython",
    "anyio",
    "uvloop",
    "trio",
    "comm",
    "psutil",
)


@dataclass
class KernelRun:
    """Everything measured on one kernelspec."""

    name: str
    results: Results = field(default_factory=lambda: {m.key: Result() for m in METRICS})
    kernel_info: dict[str, Any] = field(default_factory=dict)
    interrupt_mode: str = ""
    restarts: int = 0


@dataclass(frozen=True)
class Summary:
    """The figures reported for one metric on one kernel (``None`` where nothing was measured)."""

    median: float | None
    p95: float | None
    ratio: float | None


# -- running ----------------------------------------------------------------------------------
def run_bench(
    kernels: Sequence[str],
    settings: Settings,
    only: frozenset[str] | None = None,
    progress: TextIO | None = None,
) -> list[KernelRun]:
    """Start every kernel, run the workloads (those in ``only``, or all) on each in turn and
    return what was measured. Blocks for the whole run; every wait in it is bounded. Progress
    lines go to ``progress`` when given. Kernels are shut down before this returns."""
    runs = [KernelRun(name) for name in kernels]
    wires: dict[str, Wire] = {}

    def say(text: str) -> None:
        if progress is not None:
            print(text, file=progress, flush=True)

    try:
        # Each start-up sample is a fresh process; the last one stays for the workloads.
        for sample in range(settings.repeat):
            for run in runs:
                last = sample == settings.repeat - 1
                # The kept kernel runs no cell before the workloads (RSS after start-up is
                # measured on it): launch -> first execute is taken on the others, and on the
                # one start-up when --repeat is 1.
                wire = _start(run, say, first_execute=not last or settings.repeat == 1)
                if wire is not None and not last:
                    wire.close(now=True)
                elif wire is not None:
                    wires[run.name] = wire
        for workload in WORKLOADS:
            if only is not None and workload.name not in only | _ALWAYS:
                for run in runs:
                    _mark(run.results, workload, "skipped", "not selected")
                continue
            for run in runs:
                wire = wires.get(run.name)
                if run.name in FLOORS and workload.name not in FLOOR_WORKLOADS:
                    _mark(run.results, workload, "unsupported", "the floor kernel runs no code")
                    continue
                if wire is None:
                    _mark(run.results, workload, "failed", "no running kernel")
                    continue
                if not _run_workload(wire, workload, settings, run.results):
                    del wires[run.name]
                    wire.close(now=True)
                say(f"  {run.name:<12} {workload.name:<16} {_brief(workload, run.results)}")
    finally:
        for run in runs:
            wire = wires.pop(run.name, None)
            if wire is not None:
                run.restarts = wire.restarts
                _close_quietly(wire)
    return runs


def _start(run: KernelRun, say: Any, *, first_execute: bool = True) -> Wire | None:
    wire = open_wire(run.name)
    result = run.results[STARTUP.key]
    try:
        seconds = wire.start(STARTUP_TIMEOUT)
    except Exception as exc:  # any kernel may fail in any way; the run must go on
        for failed in (result, run.results[STARTUP_EXEC.key]):
            failed.status = "timeout" if isinstance(exc, WaitTimeout) else "failed"
            failed.notes.append(_headline(exc))
        say(f"  {run.name:<12} start-up failed: {_headline(exc)}")
        _close_quietly(wire, now=True)
        return None
    result.samples.append(ms(seconds))
    try:
        if first_execute:
            launch_to_first_execute(wire, run.results)
    except Exception as exc:
        first = run.results[STARTUP_EXEC.key]
        first.status = "timeout" if isinstance(exc, WaitTimeout) else "failed"
        first.notes.append(_headline(exc))
    run.kernel_info = wire.kernel_info
    run.interrupt_mode = wire.interrupt_mode
    say(f"  {run.name:<12} started in {ms(seconds):.0f} ms")
    return wire


def _run_workload(wire: Wire, workload: Workload, settings: Settings, results: Results) -> bool:
    """Run one workload; on a timeout or failure mark its results and restart the kernel.
    Return whether the kernel is usable afterwards."""
    out = {m.key: results[m.key] for m in workload.metrics}
    try:
        workload.run(wire, settings, out)
    except Unsupported as exc:
        _mark(results, workload, "unsupported", str(exc))
        wire.quiet()
        return True
    except WaitTimeout as exc:
        _mark(results, workload, "timeout", str(exc))
    except (KernelDied, Failed) as exc:
        _mark(results, workload, "failed", str(exc))
    except Exception as exc:  # a kernel's odd reply must not end the comparison
        _mark(results, workload, "failed", f"{type(exc).__name__}: {exc}")
    else:
        wire.quiet()
        return True
    try:
        wire.restart(STARTUP_TIMEOUT)
    except Exception as exc:
        for r in out.values():
            r.notes.append(f"restart failed: {exc}")
        return False
    return True


def _headline(exc: BaseException) -> str:
    """The exception's type and the first line of its message (a table cell holds one line)."""
    headline = str(exc).partition("\n")[0]
    return f"{type(exc).__name__}: {headline}"


def _mark(results: Results, workload: Workload, status: str, note: str) -> None:
    for metric in workload.metrics:
        result = results[metric.key]
        if result.status == "ok":
            result.status = status
        result.notes.append(note.partition("\n")[0])  # a wait's diagnosis follows its first line


def _close_quietly(wire: Wire, *, now: bool = False) -> None:
    try:
        wire.close(now=now)
    except Exception as exc:
        print(f"warning: could not shut down {wire.kernel_name!r}: {exc}", file=sys.stderr)


def _brief(workload: Workload, results: Results) -> str:
    parts = []
    for metric in workload.metrics:
        result = results[metric.key]
        value = statistics.median(result.samples) if result.samples else None
        shown = result.status if value is None else f"{format_number(value)} {metric.unit}"
        parts.append(shown if result.status == "ok" else f"{shown} ({result.status})")
    return ", ".join(parts)


# -- statistics -------------------------------------------------------------------------------
def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile: the smallest sample with at least ``fraction`` of the
    samples at or below it. Honest for the small sample counts of a bench."""
    if not values:
        raise ValueError("percentile of no samples")
    ordered = sorted(values)
    rank = max(math.ceil(fraction * len(ordered)), 1)
    return ordered[rank - 1]


def summarize(metric: Metric, result: Result, baseline: Result | None) -> Summary:
    """Median, p95 (the slow tail: 5th percentile for a rate) and the ratio of the median to
    ``baseline``'s median."""
    if not result.samples:
        return Summary(None, None, None)
    median = statistics.median(result.samples)
    tail = percentile(result.samples, 0.05 if metric.higher_is_better else 0.95)
    ratio = None
    if baseline is not None and baseline.samples:
        base = statistics.median(baseline.samples)
        ratio = median / base if base else None
    return Summary(median, tail, ratio)


# -- reporting --------------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    """What the figures depend on: CPUs, load, Python and the versions of the packages."""
    cpu_model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    packages: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model or platform.processor(),
        "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "packages": packages,
    }


def build_report(
    runs: Sequence[KernelRun], settings: Settings, machine: dict[str, Any]
) -> dict[str, Any]:
    """The JSON-ready report: machine, settings, kernels, metrics and per-kernel results."""
    baseline = runs[0].results if runs else {}
    results: dict[str, dict[str, Any]] = {}
    for run in runs:
        results[run.name] = {}
        for metric in METRICS:
            result = run.results[metric.key]
            summary = summarize(metric, result, baseline.get(metric.key))
            results[run.name][metric.key] = {
                **asdict(summary),
                "n": len(result.samples),
                "status": result.status,
                "notes": result.notes,
                "samples": [round(x, 4) for x in result.samples],
            }
    return {
        "generated": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "settings": asdict(settings),
        "kernels": [
            {
                "name": run.name,
                "implementation": run.kernel_info.get("implementation"),
                "implementation_version": run.kernel_info.get("implementation_version"),
                "interrupt_mode": run.interrupt_mode,
                "restarts": run.restarts,
            }
            for run in runs
        ],
        "metrics": [asdict(m) for m in METRICS],
        "results": results,
    }


# -- command line -----------------------------------------------------------------------------
def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    defaults = Settings()
    choices = [w.name for w in WORKLOADS if w.name not in _ALWAYS]
    parser = argparse.ArgumentParser(
        prog="python -m cokernel_harness.bench",
        description="Compare Jupyter kernels on the same workloads; ratios are to the first.",
    )
    add = parser.add_argument
    add("--kernel", action="append", required=True, help="kernelspec name (repeat; first = base)")
    add("--repeat", type=_positive_int, default=defaults.repeat, help="start-ups and rounds")
    add("--round-trips", type=_positive_int, default=defaults.round_trips, help="samples")
    add("--pipelined", type=_positive_int, default=defaults.pipelined, help="requests per batch")
    add("--stdout-lines", type=_positive_int, default=defaults.stdout_lines, help="lines printed")
    add("--block-seconds", type=_positive_float, default=defaults.block_seconds, help="cell sleep")
    add("--comm-messages", type=_positive_int, default=defaults.comm_messages, help="per round")
    add("--interrupts", type=_positive_int, default=defaults.interrupts, help="per cell kind")
    add("--assignments", type=_positive_int, default=defaults.assignments, help="x=1 pipelined")
    add("--scale", type=_positive_float, default=defaults.scale, help="size of scale rows (1=full)")
    add("--no-floor", action="store_true", help="do not run the floor kernels")
    add("--only", action="append", choices=choices, help="run only these workloads (repeat)")
    add("--json", type=Path, metavar="FILE", help="also write the report as JSON")
    add("--markdown", type=Path, metavar="FILE", help="also write the report as Markdown")
    add("--plot", type=Path, metavar="DIR", help="also draw charts (cokernel_harness.plot)")
    add("--plot-format", choices=("svg", "png"), default="svg", help="the charts' format")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison; print the table; write the files asked for. Returns 0, or 1 when no
    kernel could be started at all."""
    args = _parser().parse_args(argv)
    settings = Settings(
        repeat=args.repeat,
        round_trips=args.round_trips,
        pipelined=args.pipelined,
        stdout_lines=args.stdout_lines,
        block_seconds=args.block_seconds,
        comm_messages=args.comm_messages,
        interrupts=args.interrupts,
        assignments=args.assignments,
        scale=args.scale,
    )
    kernels = list(args.kernel)
    if not args.no_floor:
        kernels.extend(floor for floor in (FLOOR, FLOOR_THREADS) if floor not in kernels)
    only = frozenset(args.only) if args.only else None
    load_before = [round(x, 2) for x in os.getloadavg()]
    print(f"benchmarking {', '.join(kernels)} ({settings})", file=sys.stderr, flush=True)
    runs = run_bench(kernels, settings, only, progress=sys.stderr)
    report = build_report(runs, settings, {**machine_info(), "loadavg_before": load_before})
    print(format_text(report))
    print(format_goals(report))
    command = " ".join(["python -m cokernel_harness.bench", *(argv or sys.argv[1:])])
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown is not None:
        args.markdown.write_text(format_markdown(report, command))
    if args.plot is not None:
        from cokernel_harness.plot import write_charts

        for path in write_charts(report, args.plot, args.plot_format):
            print(f"chart: {path}", file=sys.stderr)
    started = any(run.results[STARTUP.key].samples for run in runs if run.name not in FLOORS)
    return 0 if started else 1


if __name__ == "__main__":
    sys.exit(main())
