"""The goals of issue #14, checked against one bench report.

Each goal compares the median of a cokernel kernel (a kernel named ``cokernel*`` or
``inprocess*``) with a reference taken from the same run: the best peer (every other kernel
except the floor kernels), ipykernel (``python3``), the floor kernel, or a fixed bound. The
table says the value, the reference, the ratio and whether the goal is met; a reference that is
missing (the peer was not run, or could not do it) leaves the row ``n/a``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from cokernel_harness.bench_wire import FLOOR, FLOORS

__all__ = ["GOALS", "Goal", "format_goals", "goal_rows"]

Reference = Literal["best_peer", "ipykernel", "floor", "absolute"]


@dataclass(frozen=True)
class Goal:
    """``metric``'s median, against ``reference``, must be within ``bound`` (a ratio, or for
    ``absolute`` a value in the metric's unit): at most, or at least if the metric's higher
    values are better."""

    metric: str
    reference: Reference
    bound: float
    text: str


GOALS: tuple[Goal, ...] = (
    Goal("startup", "best_peer", 0.8, "<= 0.8x best peer"),
    Goal("rss_start", "best_peer", 1.0, "<= best peer"),
    Goal("roundtrip_pass", "floor", 1.5, "<= 1.5x floor"),
    Goal("pipelined_x1", "best_peer", 2.0, ">= 2x best peer"),
    Goal("complete_first", "best_peer", 1.0, "<= best peer"),
    Goal("complete_new", "best_peer", 1.0, "<= best peer"),
    Goal("complete_repeat", "best_peer", 1.0, "<= best peer"),
    Goal("interrupt_first", "absolute", 30.0, "< 30 ms"),
    Goal("interrupt_busy", "absolute", 30.0, "< 30 ms"),
    Goal("interrupt_asyncio", "absolute", 30.0, "< 30 ms"),
    Goal("interrupt_await", "absolute", 30.0, "< 30 ms"),
    Goal("scale_comms", "best_peer", 1.0, "<= best peer"),
    Goal("scale_comms_peak", "ipykernel", 1.0, "<= ipykernel"),
    Goal("scale_subshells", "best_peer", 1.0, "<= best peer"),
    Goal("scale_subshells_peak", "ipykernel", 1.0, "<= ipykernel"),
    Goal("scale_payload", "best_peer", 1.0, "<= best peer"),
    Goal("scale_payload_peak", "ipykernel", 1.0, "<= ipykernel"),
    Goal("scale_prints", "best_peer", 1.0, "<= best peer"),
    Goal("scale_prints_peak", "ipykernel", 1.0, "<= ipykernel"),
)

_IPYKERNEL = "python3"


def _ours(name: str) -> bool:
    return name.startswith(("cokernel", "inprocess"))


def _median(report: dict[str, Any], kernel: str, metric: str) -> float | None:
    entry = report["results"].get(kernel, {}).get(metric)
    if entry is None or entry["status"] != "ok" or entry["median"] is None:
        return None
    return float(entry["median"])


def _reference(report: dict[str, Any], goal: Goal, higher: bool) -> tuple[str, float | None]:
    """The reference's name and value for ``goal``."""
    if goal.reference == "absolute":
        return "", goal.bound
    if goal.reference == "floor":
        return FLOOR, _median(report, FLOOR, "roundtrip_pass")
    if goal.reference == "ipykernel":
        return _IPYKERNEL, _median(report, _IPYKERNEL, goal.metric)
    peers = [
        (name, value)
        for name in (k["name"] for k in report["kernels"])
        if not _ours(name) and name not in FLOORS
        for value in [_median(report, name, goal.metric)]
        if value is not None
    ]
    if not peers:
        return "", None
    return max(peers, key=lambda p: p[1]) if higher else min(peers, key=lambda p: p[1])


def goal_rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row per goal and cokernel kernel: metric, kernel, value, reference, ratio, goal,
    verdict (``met``, ``MISSED`` or ``n/a``)."""
    metrics = {m["key"]: m for m in report["metrics"]}
    ours = [k["name"] for k in report["kernels"] if _ours(k["name"])]
    rows: list[tuple[str, ...]] = []
    for goal in GOALS:
        metric = metrics.get(goal.metric)
        if metric is None:
            continue
        higher = bool(metric["higher_is_better"])
        ref_name, ref = _reference(report, goal, higher)
        for kernel in ours:
            value = _median(report, kernel, goal.metric)
            unit = metric["unit"]
            shown = "-" if value is None else f"{_number(value)} {unit}"
            ref_shown = "-" if ref is None else f"{_number(ref)} {unit}"
            if ref_name:
                ref_shown = f"{ref_name}: {ref_shown}"
            if value is None or ref is None:
                rows.append((goal.metric, kernel, shown, ref_shown, "", goal.text, "n/a"))
                continue
            if goal.reference == "absolute":
                ratio_text, met = "", value < goal.bound
            else:
                ratio = value / ref if ref else float("inf")
                ratio_text = f"{ratio:.2f}x"
                met = ratio >= goal.bound if higher else ratio <= goal.bound
            verdict = "met" if met else "MISSED"
            rows.append((goal.metric, kernel, shown, ref_shown, ratio_text, goal.text, verdict))
    return rows


def format_goals(report: dict[str, Any]) -> str:
    """The goal rows as a Markdown table (also readable in a terminal)."""
    rows = goal_rows(report)
    if not rows:
        return ""
    head = ("metric", "kernel", "median", "reference", "ratio", "goal", "verdict")
    lines = [
        "Goals (issue #14): each cokernel kernel against the reference in this run.",
        "",
        "| " + " | ".join(head) + " |",
        "| --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"
