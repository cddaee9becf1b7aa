"""The conformance runner and the ``cokernel-harness`` command line, against real kernels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest

from cokernel_harness import cli
from cokernel_harness.frontend import Frontend
from cokernel_harness.runner import Outcome, Report, ScenarioResult, run_conformance
from cokernel_scenarios import (
    Scenario,
    ScenarioFailure,
    UnknownScenario,
    all_scenarios,
    select,
)
from cokernel_scenarios.scenario import PYTHON


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# -- selecting scenarios -------------------------------------------------------------------------
def test_every_scenario_has_a_unique_name_and_a_description() -> None:
    scenarios = all_scenarios()
    names = [s.name for s in scenarios]
    assert len(names) == len(set(names))
    assert all(s.description and "python" in s.requires for s in scenarios)


def test_select_matches_substrings_globs_and_comma_lists() -> None:
    assert [s.name for s in select(["interrupt"])] == [
        "interrupt_busy",
        "interrupt_sleep",
        "interrupt_await",
    ]
    assert [s.name for s in select(["interrupt_b*"])] == ["interrupt_busy"]
    assert [s.name for s in select(["comm_flood,stop_on_error"])] == [
        "comm_flood",
        "stop_on_error",
    ]
    assert len(select(None)) == len(all_scenarios())


def test_select_rejects_a_pattern_that_matches_nothing() -> None:
    with pytest.raises(UnknownScenario, match="no_such_thing"):
        select(["no_such_thing"])


def test_cli_exits_with_a_usage_error_for_an_unknown_scenario(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["scenarios", "-k", "no_such_thing"]) == cli.EXIT_USAGE
    assert "known:" in capsys.readouterr().err


def test_cli_lists_scenarios_with_their_needs(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["scenarios", "--list"]) == 0
    out = capsys.readouterr().out
    assert "widget_await" in out
    assert "needs: anyio, comms, ipywidgets, python" in out


def test_bench_arguments_go_to_the_bench_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    import cokernel_harness.bench

    seen: list[list[str]] = []

    def fake_main(argv: list[str]) -> int:
        seen.append(argv)
        return 3

    monkeypatch.setattr(cokernel_harness.bench, "main", fake_main)
    assert cli.main(["bench", "--kernel", "a", "--kernel", "b"]) == 3
    assert seen == [["--kernel", "a", "--kernel", "b"]]


# -- the report ----------------------------------------------------------------------------------
def test_report_table_lists_each_scenario_with_its_outcome_and_first_diagnosis_line() -> None:
    report = Report(
        "k",
        [
            ScenarioResult("one", Outcome.passed, 0.5, "", []),
            ScenarioResult("two", Outcome.failed, 1.25, "expected x\ngot y", ["[rule] bad"]),
            ScenarioResult("three", Outcome.unsupported, 0.0, "the kernel lacks: debugger", None),
        ],
    )
    lines = report.table().splitlines()
    assert lines[2].split(" | ") == [
        "scenario",
        "result     ",
        "time  ",
        "protocol    ",
        "diagnosis",
    ]
    assert "two      | fail" in report.table()
    assert "1 violations | expected x" in report.table()
    assert "3 scenarios: 1 pass, 1 fail, 1 unsupported" in report.table()
    assert not report.ok
    assert "got y" in report.details()
    assert "[rule] bad" in report.details()
    assert report.to_json()["counts"] == {"pass": 1, "fail": 1, "unsupported": 1, "error": 0}


# -- outcomes against a real kernel ---------------------------------------------------------------
class _Needs(Scenario):
    name = "needs_teleportation"
    description = "needs what no kernel offers"
    requires: ClassVar[frozenset[str]] = PYTHON | {"teleportation"}

    async def run(self, fe: Frontend) -> None:
        raise AssertionError("an unsupported scenario must not run")


class _Fails(Scenario):
    name = "always_fails"
    description = "expects what never happens"

    async def run(self, fe: Frontend) -> None:
        raise ScenarioFailure("the moon", "cheese", fe.log[-2:])


class _Breaks(Scenario):
    name = "harness_breaks"
    description = "the scenario itself raises"

    async def run(self, fe: Frontend) -> None:
        raise RuntimeError("scenario bug")


class _Passes(Scenario):
    name = "runs_a_cell"
    description = "a cell runs"

    async def run(self, fe: Frontend) -> None:
        assert (await fe.run("1 + 1")).result == {"text/plain": "2"}


@pytest.mark.anyio
@pytest.mark.timeout(120)
async def test_outcomes_pass_fail_error_and_unsupported_on_one_shared_kernel() -> None:
    scenarios = [_Passes(), _Needs(), _Fails(), _Breaks(), _Passes()]
    report = await run_conformance("cokernel", scenarios, share_kernel=True)
    outcomes = [(r.scenario, r.outcome) for r in report.results]
    assert outcomes == [
        ("runs_a_cell", Outcome.passed),
        ("needs_teleportation", Outcome.unsupported),
        ("always_fails", Outcome.failed),
        ("harness_breaks", Outcome.error),
        ("runs_a_cell", Outcome.passed),
    ]
    by_name = {r.scenario: r for r in report.results}
    assert by_name["needs_teleportation"].diagnosis == "the kernel lacks: teleportation"
    assert by_name["always_fails"].diagnosis.startswith("expected the moon\ngot cheese")
    assert "last messages:" in by_name["always_fails"].diagnosis
    assert "RuntimeError: scenario bug" in by_name["harness_breaks"].diagnosis
    assert by_name["runs_a_cell"].violations == []
    assert {"subshells", "process"} <= set(report.features)


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_a_kernel_that_does_not_start_is_an_error_not_a_crash() -> None:
    report = await run_conformance("no-such-kernelspec", [_Passes()])
    (result,) = report.results
    assert result.outcome is Outcome.error
    assert "the kernel did not start" in result.diagnosis


# -- the command line against real kernels -------------------------------------------------------
def _json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@pytest.mark.timeout(180)
def test_conformance_cli_against_cokernel_prints_a_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "report.json"
    argv = ["conformance", "--kernel", "cokernel", "-k", "control_while_blocked,stop_on_error"]
    status = cli.main([*argv, "--json", str(out_file)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "scenario              | result | time" in out
    assert "control_while_blocked | pass" in out
    assert "stop_on_error         | pass" in out
    data = _json(out_file)
    assert (data["kernel"], data["ok"]) == ("cokernel", True)
    assert [(r["scenario"], r["outcome"], r["violations"]) for r in data["results"]] == [
        ("control_while_blocked", "pass", []),
        ("stop_on_error", "pass", []),
    ]


@pytest.mark.timeout(240)
def test_conformance_against_ipykernel_completes_and_reports_each_scenario(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "report.json"
    argv = ["conformance", "--kernel", "python3", "-k", "control_while_blocked,interrupt_await"]
    status = cli.main([*argv, "--json", str(out_file), "--quiet"])
    data = _json(out_file)
    outcomes = {r["scenario"]: r["outcome"] for r in data["results"]}
    assert set(outcomes) == {"control_while_blocked", "interrupt_await"}
    # Whatever ipykernel does, the harness reaches a verdict on it: never an error.
    assert set(outcomes.values()) <= {"pass", "fail"}, data
    assert status == (0 if data["ok"] else 1)
    assert "kernel: python3" in capsys.readouterr().out


# -- frontend profiles ---------------------------------------------------------------------------
@pytest.mark.timeout(180)
def test_conformance_plays_comm_scenarios_under_each_frontend_asked_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "report.json"
    argv = ["conformance", "--kernel", "cokernel", "-k", "input_while_comms,control_while"]
    argv += ["--frontend", "jupyterlab", "--frontend", "no-subshells", "--quiet"]
    status = cli.main([*argv, "--json", str(out_file)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "frontends: jupyterlab, no-subshells" in out
    assert "input_while_comms [jupyterlab]   | pass" in out
    assert "input_while_comms [no-subshells] | pass" in out
    data = _json(out_file)
    assert data["frontends"] == ["jupyterlab", "no-subshells"]
    # A scenario without comms runs once, under no particular profile.
    assert [(r["scenario"], r["frontend"]) for r in data["results"]] == [
        ("control_while_blocked", ""),
        ("input_while_comms", "jupyterlab"),
        ("input_while_comms", "no-subshells"),
    ]


def test_an_unknown_frontend_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["conformance", "--frontend", "jupyterlab-3"])
    assert exit_info.value.code == cli.EXIT_USAGE
    assert "jupyterlab-per-comm" in capsys.readouterr().err
