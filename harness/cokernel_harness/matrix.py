"""The conformance matrix: scenario x kernel (x frontend profile) as one self-contained page.

``cokernel-harness conformance --kernel A --kernel B --html matrix.html`` writes the page of
the run it just made; ``python -m cokernel_harness.matrix OUT.html REPORT.json...`` writes one
from reports saved earlier with ``--json`` (a file may hold one report or a list of them).

A report is a :meth:`cokernel_harness.runner.Report.to_json` dict. Optional keys widen it:

- ``profile``: the frontend profile the run played (a column per kernel and profile);
- ``label``: what the column header says instead of the kernelspec name (e.g. "ipykernel 6");
- ``versions``: a line saying what was installed (e.g. "ipykernel 6.29.5, Python 3.11.7");
- ``error``: the kernel could not be run at all; the page says so and why, and the report
  needs no ``results``. A report whose every scenario is an error because the kernel did not
  start is shown the same way.

Every cell links to its diagnosis further down the page (an anchor in the same page). The page
has its CSS inline and loads nothing else.
"""

from __future__ import annotations

import html
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["load_reports", "main", "render_html"]

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: center; }
th.scenario { text-align: left; font-weight: normal; font-family: monospace; }
thead th { background: #f4f4f4; vertical-align: bottom; }
td a { color: inherit; text-decoration: none; display: block; }
.pass { background: #d8f0d8; } .fail { background: #f6caca; } .error { background: #f3b0b0; }
.unsupported { background: #eeeeee; color: #666; } .violations { background: #fde8b0; }
.missing { background: #fafafa; color: #aaa; } .nostart { background: #fafafa; color: #a33; }
.small { font-size: 0.8em; color: #555; font-weight: normal; }
pre { background: #f7f7f7; padding: 0.5em; overflow-x: auto; font-size: 0.85em; }
section.diag { border-top: 1px solid #ddd; margin-top: 0.8em; }
section.diag:target { background: #fff8dc; }
"""


def load_reports(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """Read reports from JSON files, each holding one report or a list of them."""
    reports: list[dict[str, Any]] = []
    for path in paths:
        data = json.loads(Path(path).read_text())
        reports.extend(data if isinstance(data, list) else [data])
    return reports


def _anchor(*parts: str) -> str:
    return "d-" + "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", p) for p in parts)


def _could_not_start(report: dict[str, Any]) -> str:
    """Why the kernel could not be run at all ("" when it could): the report's ``error``, or
    the diagnosis every scenario got when the kernel never started."""
    if report.get("error"):
        return str(report["error"])
    results = report.get("results") or []
    if results and all(
        r.get("outcome") == "error" and "did not start" in (r.get("diagnosis") or "")
        for r in results
    ):
        return str(results[0]["diagnosis"])
    return ""


def _column_title(report: dict[str, Any]) -> str:
    return str(report.get("label") or report.get("kernel") or "?")


def _cell(result: dict[str, Any] | None) -> tuple[str, str]:
    """The css class and the text of one cell."""
    if result is None:
        return "missing", "not run"
    outcome = str(result.get("outcome", "?"))
    violations = result.get("violations") or []
    if violations and outcome == "pass":
        return "violations", f"pass, {len(violations)} protocol violation(s)"
    if violations:
        return outcome, f"{outcome}, {len(violations)} violation(s)"
    return outcome, outcome


def render_html(
    reports: Sequence[dict[str, Any]], *, title: str = "Conformance matrix", intro: str = ""
) -> str:
    """The page: a table of scenario x column, a column per report (kernel, or kernel and
    profile), then each cell's diagnosis. ``intro`` is HTML put under the title as is."""
    columns = list(reports)
    scenarios: list[str] = []
    for report in columns:
        for result in report.get("results", []):
            if result["scenario"] not in scenarios:
                scenarios.append(result["scenario"])
    by_column = [{r["scenario"]: r for r in report.get("results", [])} for report in columns]
    profiles = any(report.get("profile") for report in columns)
    esc = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        intro,
        "<table><thead><tr><th>scenario</th>",
    ]
    for report in columns:
        out.append(f"<th>{_column_head(report, profiles)}</th>")
    out.append("</tr></thead><tbody>")
    for scenario in scenarios:
        out.append(f"<tr><th class='scenario'>{esc(scenario)}</th>")
        for c, report in enumerate(columns):
            if _could_not_start(report):
                anchor = _anchor(str(c), "error")
                out.append(f"<td class='nostart'><a href='#{anchor}'>could not start</a></td>")
                continue
            css, text = _cell(by_column[c].get(scenario))
            anchor = _anchor(str(c), scenario)
            out.append(f"<td class='{css}'><a href='#{anchor}'>{esc(text)}</a></td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    out.extend(_diagnoses(columns, scenarios, by_column))
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _column_head(report: dict[str, Any], profiles: bool) -> str:
    """A column's heading: kernel, profile (when any column has one), versions, counts."""
    esc = html.escape
    counts = report.get("counts") or {}
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    head = f"{esc(_column_title(report))}"
    if profiles:
        head += f"<br><span class='small'>profile: {esc(report.get('profile') or '-')}</span>"
    if report.get("versions"):
        head += f"<br><span class='small'>{esc(report['versions'])}</span>"
    if _could_not_start(report):
        head += "<br><span class='small'>could not start</span>"
    elif summary:
        head += f"<br><span class='small'>{esc(summary)}</span>"
    return head


def _diagnoses(
    columns: Sequence[dict[str, Any]],
    scenarios: list[str],
    by_column: list[dict[str, dict[str, Any]]],
) -> list[str]:
    """The page's second half: per column, what it ran on, then each cell's diagnosis."""
    esc = html.escape
    out = []
    out.append("<h2>Diagnoses</h2>")
    for c, report in enumerate(columns):
        name = _column_title(report)
        if report.get("profile"):
            name += f" (profile {report['profile']})"
        out.append(f"<h3>{esc(name)}</h3>")
        if report.get("versions"):
            out.append(f"<p class='small'>{esc(report['versions'])}</p>")
        if report.get("features"):
            out.append(f"<p class='small'>features: {esc(', '.join(report['features']))}</p>")
        for note in report.get("notes") or []:
            out.append(f"<p class='small'>note: {esc(note)}</p>")
        reason = _could_not_start(report)
        if reason:
            out.append(f"<section class='diag' id='{_anchor(str(c), 'error')}'>")
            out.append(f"<p><b>could not start</b></p><pre>{esc(reason)}</pre></section>")
            continue
        for scenario in scenarios:
            result = by_column[c].get(scenario)
            css, text = _cell(result)
            out.append(f"<section class='diag' id='{_anchor(str(c), scenario)}'>")
            out.append(f"<p><code>{esc(scenario)}</code>: <span class='{css}'>{esc(text)}</span>")
            if result is not None:
                out.append(f" <span class='small'>({float(result.get('seconds', 0)):.2f} s)</span>")
            out.append("</p>")
            if result is not None and result.get("diagnosis"):
                out.append(f"<pre>{esc(result['diagnosis'])}</pre>")
            for violation in (result or {}).get("violations") or []:
                out.append(f"<pre>protocol: {esc(violation)}</pre>")
            out.append("</section>")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cokernel_harness.matrix OUT.html REPORT.json... [--title T] [--intro HTML]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    options: dict[str, str] = {}
    for flag in ("--title", "--intro"):
        if flag in args:
            at = args.index(flag)
            options[flag[2:]] = args[at + 1]
            del args[at : at + 2]
    if len(args) < 2:
        print(
            "usage: python -m cokernel_harness.matrix OUT.html REPORT.json... "
            "[--title T] [--intro HTML]",
            file=sys.stderr,
        )
        return 2
    reports = load_reports([Path(p) for p in args[1:]])
    Path(args[0]).write_text(render_html(reports, **options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
