"""The conformance matrix page: ``conformance --html`` and ``python -m cokernel_harness.matrix``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cokernel_harness import cli, matrix


def _links_and_anchors(page: str) -> tuple[list[str], set[str]]:
    return re.findall(r"href='#([^']+)'", page), set(re.findall(r"id='([^']+)'", page))


@pytest.mark.timeout(180)
def test_conformance_html_is_one_page_whose_cells_link_to_their_diagnoses(tmp_path: Path) -> None:
    page_file = tmp_path / "matrix.html"
    argv = ["conformance", "--kernel", "cokernel", "--kernel", "no-such-kernelspec"]
    argv += ["-k", "control_while_blocked,stop_on_error", "--quiet", "--html", str(page_file)]

    assert cli.main(argv) == 1  # the kernel that does not exist fails the run

    page = page_file.read_text()
    # Self-contained: inline style, nothing loaded from elsewhere.
    assert "<style>" in page
    assert not re.search(r"<link|<script|src=|url\(", page)
    rows = re.findall(r"<tr><th class='scenario'>([^<]+)</th>(.*?)</tr>", page, re.S)
    assert [name for name, _ in rows] == ["control_while_blocked", "stop_on_error"]
    for _, cells in rows:
        classes = re.findall(r"<td class='([^']+)'", cells)
        assert classes == ["pass", "nostart"], cells
    links, anchors = _links_and_anchors(page)
    assert len(links) == 4
    assert set(links) <= anchors
    # The kernel that never started is one "could not start" column, with the reason.
    assert page.count("could not start") >= 3
    assert "the kernel did not start" in page


def test_reports_from_files_take_profile_label_versions_and_could_not_start(
    tmp_path: Path,
) -> None:
    def report(kernel: str, profile: str, outcome: str, diagnosis: str = "") -> dict[str, object]:
        result = {"scenario": "echo", "outcome": outcome, "seconds": 0.5, "diagnosis": diagnosis}
        return {"kernel": kernel, "profile": profile, "results": [result | {"violations": []}]}

    both = [report("k", "jupyterlab", "pass"), report("k", "no-subshells", "fail", "got <b>")]
    (tmp_path / "k.json").write_text(json.dumps(both))
    dead = {"kernel": "x", "label": "X 1.0", "versions": "x 1.0", "error": "no module named x"}
    (tmp_path / "x.json").write_text(json.dumps(dead))
    out = tmp_path / "m.html"

    assert matrix.main([str(out), str(tmp_path / "k.json"), str(tmp_path / "x.json")]) == 0

    page = out.read_text()
    assert "profile: jupyterlab" in page
    assert "profile: no-subshells" in page
    cells = re.findall(r"<td class='([^']+)'><a href='#([^']+)'>([^<]+)</a>", page)
    assert [(c, text) for c, _, text in cells] == [
        ("pass", "pass"),
        ("fail", "fail"),
        ("nostart", "could not start"),
    ]
    links, anchors = _links_and_anchors(page)
    assert set(links) <= anchors
    assert len(set(links)) == 3
    assert "X 1.0" in page
    assert "no module named x" in page
    assert "got &lt;b&gt;" in page  # diagnoses are escaped
