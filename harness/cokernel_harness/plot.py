"""Charts of a bench report: one per group of rows, ratios against the first kernel.

``cokernel-harness bench ... --plot DIR`` calls :func:`write_charts` on the report it just
made; ``python -m cokernel_harness.plot REPORT.json DIR`` draws the charts of a report written
earlier with ``--json``.

A group is a workload's metrics (start-up is a group of its own). For every metric of the group
and every kernel, a bar is the kernel's median divided by the first kernel's median, on a log
scale with a line at 1; its whisker reaches the kernel's slow tail (the p95, or the 5th
percentile for a rate) divided by the same baseline. A kernel with no figure for a metric gets
its status (``blocked``, ``timeout``...) written where its bar would be.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure  # drawn without pyplot: no GUI backend, no global figure
from matplotlib.patches import Patch

from cokernel_harness.bench_model import STARTUP
from cokernel_harness.bench_workloads import WORKLOADS

__all__ = ["chart_groups", "main", "write_charts"]

FORMATS = ("svg", "png")
_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3")


def chart_groups(report: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """The report's metrics, grouped by the workload that measures them, in report order.

    A metric that no known workload names (a report from another version of the bench) is a
    group of its own, named after its key."""
    owner = {STARTUP.key: "startup"}
    for workload in WORKLOADS:
        for metric in workload.metrics:
            owner[metric.key] = workload.name
    groups: dict[str, list[dict[str, Any]]] = {}
    for metric in report["metrics"]:
        groups.setdefault(owner.get(metric["key"], metric["key"]), []).append(metric)
    return list(groups.items())


def _label(metric: dict[str, Any], width: int = 28) -> str:
    words, lines, line = f"{metric['title']} [{metric['unit']}]".split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join([*lines, line])


def _draw(report: dict[str, Any], group: str, metrics: list[dict[str, Any]], path: Path) -> None:
    kernels = [k["name"] for k in report["kernels"]]
    base = kernels[0]
    results = report["results"]
    fig = Figure(figsize=(max(4.5, 1.1 + 1.6 * len(metrics) * max(1, len(kernels)) / 3), 3.8))
    ax = fig.subplots()
    width = 0.8 / max(1, len(kernels))
    drawn: list[float] = []
    for k, kernel in enumerate(kernels):
        for m, metric in enumerate(metrics):
            x = m + (k - (len(kernels) - 1) / 2) * width
            entry = results.get(kernel, {}).get(metric["key"], {})
            baseline = results.get(base, {}).get(metric["key"], {}).get("median")
            median, tail = entry.get("median"), entry.get("p95")
            if not baseline or median is None:
                status = entry.get("status") or "missing"
                if median is not None:
                    status = "no baseline"
                # data x, axes y: the status stands in the middle of the plot, whatever the scale
                ax.text(
                    x, 0.5, status, rotation=90, ha="center", va="center", fontsize=8,
                    transform=ax.get_xaxis_transform(),
                )  # fmt: skip
                continue
            ratio = median / baseline
            drawn.append(ratio)
            ax.bar(x, ratio, width, color=_COLOURS[k % len(_COLOURS)])
            if tail is not None:
                tail_ratio = tail / baseline
                drawn.append(tail_ratio)
                low, high = max(0.0, ratio - tail_ratio), max(0.0, tail_ratio - ratio)
                ax.errorbar(x, ratio, yerr=[[low], [high]], fmt="none", ecolor="black", capsize=3)
            ax.text(x, ratio, f"{ratio:.2g}", ha="center", va="bottom", fontsize=7)
    ax.set_yscale("log")
    if drawn:
        low, high = min([*drawn, 1.0]), max([*drawn, 1.0])
        # bars grow from below the lowest figure, so a ratio of 1 is a visible bar too
        ax.set_ylim(10 ** (math.floor(math.log10(low)) - 0.3), 10 ** (math.log10(high) + 0.4))
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xticks(range(len(metrics)), [_label(metric) for metric in metrics], fontsize=8)
    higher = [m["higher_is_better"] for m in metrics]
    better = "higher" if all(higher) else "lower" if not any(higher) else "see each row"
    ax.set_ylabel(f"median / {base}'s median\n({better} is better)", fontsize=8)
    ax.set_title(f"{group}: ratio to {base}, whiskers to the p95 (slow tail)", fontsize=9)
    # every kernel in the legend, also one with no bar in this chart
    handles = [Patch(color=_COLOURS[k % len(_COLOURS)]) for k in range(len(kernels))]
    ax.legend(handles, kernels, fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "group"


def write_charts(report: dict[str, Any], out_dir: Path, fmt: str = "svg") -> list[Path]:
    """Draw one chart per group of rows of ``report`` (a bench report as ``--json`` writes it)
    into ``out_dir`` (created if needed), as ``NN-GROUP.svg`` or ``.png``; returns the paths."""
    if fmt not in FORMATS:
        raise ValueError(f"chart format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if not report.get("kernels"):
        raise ValueError("the report has no kernels to plot")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    # Text stays text in an SVG: smaller files, and the names in them can be searched.
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "cokernel"}):
        for index, (group, metrics) in enumerate(chart_groups(report), start=1):
            path = out_dir / f"{index:02d}-{_slug(group)}.{fmt}"
            _draw(report, group, metrics, path)
            paths.append(path)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cokernel_harness.plot REPORT.json DIR [svg|png]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) not in (2, 3):
        print("usage: python -m cokernel_harness.plot REPORT.json DIR [svg|png]", file=sys.stderr)
        return 2
    report = json.loads(Path(args[0]).read_text())
    try:
        paths = write_charts(report, Path(args[1]), *(args[2:] or ["svg"]))
    except ValueError as e:
        print(f"cokernel_harness.plot: {e}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
