"""The bench's report as text: one row per metric and kernel, as a terminal table or Markdown.

:func:`cokernel_harness.bench.build_report` makes the JSON-ready report; this module renders it.
"""

from __future__ import annotations

from typing import Any

from cokernel_harness.bench_goals import format_goals

__all__ = ["format_markdown", "format_number", "format_text", "report_rows"]

_HEADERS = ("metric", "kernel", "median", "p95", "ratio", "n", "notes")


def report_rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row per metric and kernel, figures formatted; the metric named on its first row."""
    kernels = [k["name"] for k in report["kernels"]]
    first = kernels[0] if kernels else ""
    rows: list[tuple[str, ...]] = []
    for metric in report["metrics"]:
        for index, kernel in enumerate(kernels):
            entry = report["results"][kernel][metric["key"]]
            title = f"{metric['title']} [{metric['unit']}]" if index == 0 else ""
            median = entry["median"]
            notes = list(entry["notes"])
            if entry["status"] != "ok" and median is not None:
                notes.insert(0, entry["status"])
            ratio = "" if kernel == first else _ratio(entry["ratio"])
            rows.append(
                (
                    title,
                    kernel,
                    entry["status"] if median is None else format_number(median),
                    "" if entry["p95"] is None else format_number(entry["p95"]),
                    ratio,
                    str(entry["n"]),
                    "; ".join(notes),
                )
            )
    return rows


def format_text(report: dict[str, Any]) -> str:
    """The report as a fixed-width table for a terminal."""
    rows = [_HEADERS, *report_rows(report)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADERS) - 1)]
    lines = []
    for row in rows:
        cells = [
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=False))
        ]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
        if row is rows[0]:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines) + "\n\n" + _footnote(report) + "\n"


def format_markdown(report: dict[str, Any], command: str) -> str:
    """The report as a Markdown document: how it was made, on what, and the table."""
    machine = report["machine"]
    packages = ", ".join(f"{k} {v}" for k, v in machine["packages"].items() if v)
    kernels = "; ".join(
        f"`{k['name']}` = {k['implementation']} {k['implementation_version']}"
        f" ({k['interrupt_mode']} interrupts)"
        for k in report["kernels"]
    )
    settings = ", ".join(f"{k}={v}" for k, v in report["settings"].items())
    out = [
        "# Kernel benchmark (raw output)",
        "",
        f"Generated {report['generated']} by `{command}`.",
        "",
        f"- machine: {machine['nproc']} CPUs ({machine['cpu_model']}),"
        f" {machine['memory_gb']} GB, {machine['platform']}",
        f"- load average (1, 5, 15 min) before: {machine.get('loadavg_before')},"
        f" after: {machine['loadavg_after']}",
        f"- {machine['python']}; {packages}",
        f"- kernels: {kernels}",
        f"- settings: {settings}",
        "",
        "| " + " | ".join(_HEADERS) + " |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in report_rows(report):
        out.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return "\n".join([*out, "", _footnote(report), "", format_goals(report), ""])


def _footnote(report: dict[str, Any]) -> str:
    first = report["kernels"][0]["name"] if report["kernels"] else "?"
    return (
        f"ratio: median / the median of `{first}` (for msg/s, higher is better; else lower)."
        " p95: the slow tail (for msg/s, the 5th percentile)."
    )


def format_number(value: float) -> str:
    """A figure with as many digits as it deserves: 1,234; 12.3; 1.23; 0.0123."""
    if value >= 100 or value == int(value):
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"
