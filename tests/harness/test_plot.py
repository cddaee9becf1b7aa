"""Bench charts: ``bench --plot DIR`` and ``python -m cokernel_harness.plot`` draw one chart per
group of rows, from a real (tiny, in-process) bench run and from a report recorded earlier."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cokernel_harness import bench, plot
from cokernel_harness.bench_model import Settings

RECORDED = Path(__file__).parent / "data" / "bench-small.json"


@pytest.mark.timeout(120)
def test_bench_plot_draws_a_chart_per_row_group_of_a_real_run(tmp_path: Path) -> None:
    charts, json_file = tmp_path / "charts", tmp_path / "bench.json"
    argv = [
        "--kernel=inprocess",
        "--kernel=inprocess:trio",
        "--repeat=1",
        "--round-trips=3",
        "--only=round_trip",
        f"--json={json_file}",
        f"--plot={charts}",
        "--plot-format=png",
    ]

    assert bench.main(argv) == 0

    report = json.loads(json_file.read_text())
    groups = plot.chart_groups(report)
    files = sorted(charts.iterdir())
    assert [f.name for f in files] == [
        f"{i:02d}-{plot._slug(g)}.png" for i, (g, _) in enumerate(groups, start=1)
    ]
    for f in files:
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f


def test_a_recorded_report_is_plotted_with_ratios_whiskers_and_statuses(tmp_path: Path) -> None:
    report = json.loads(RECORDED.read_text())
    kernels = [k["name"] for k in report["kernels"]]

    assert plot.main([str(RECORDED), str(tmp_path)]) == 0

    groups = plot.chart_groups(report)
    files = sorted(tmp_path.glob("*.svg"))
    assert [f.name for f in files] == [
        f"{i:02d}-{plot._slug(g)}.svg" for i, (g, _) in enumerate(groups, start=1)
    ]
    by_group = dict(zip((g for g, _ in groups), files, strict=True))
    # Every chart names the baseline and every kernel (text stays text in the SVG).
    for f in files:
        svg = f.read_text()
        assert svg.lstrip().startswith("<?xml")
        assert "<svg" in svg
        assert f"ratio to {kernels[0]}" in svg
        for kernel in kernels:
            assert kernel in svg, (f.name, kernel)
    # A metric a kernel could not measure is labelled with its status instead of a bar.
    blocked = [
        (kernel, key)
        for kernel in kernels
        for key, entry in report["results"][kernel].items()
        if entry["median"] is None and entry["status"] not in ("ok", "skipped")
    ]
    assert blocked, "the recorded report should hold a kernel that could not measure a metric"
    for kernel, key in blocked:
        group = next(g for g, metrics in groups if key in {m["key"] for m in metrics})
        status = report["results"][kernel][key]["status"]
        assert status in by_group[group].read_text(), (kernel, key, status)


def test_plot_refuses_an_unknown_format_and_an_empty_report(tmp_path: Path) -> None:
    report = bench.build_report([], Settings(), {})
    with pytest.raises(ValueError, match="no kernels"):
        plot.write_charts(report, tmp_path)
    with pytest.raises(ValueError, match="svg, png"):
        plot.write_charts(json.loads(RECORDED.read_text()), tmp_path, "gif")
