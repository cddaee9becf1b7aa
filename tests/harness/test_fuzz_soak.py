"""``cokernel-harness fuzz`` and ``soak`` on a small N, against real cokernel processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cokernel_harness.cli import main
from cokernel_harness.fuzz import KINDS, fuzz
from cokernel_harness.soak import Account, soak

KERNEL = "cokernel"


@pytest.mark.timeout(300)
def test_fuzz_tries_every_kind_of_attack_and_the_kernel_keeps_answering() -> None:
    report = fuzz(KERNEL, 300, batch=50, seed=1, max_oversize=1 << 16)
    assert report.failure is None, report.text()
    assert report.cases == 300
    assert set(report.by_kind) == set(KINDS), report.by_kind
    assert set(report.by_channel) == {"shell", "control"}
    assert report.liveness_checks == report.liveness_passed == 2 * (300 // 50 + 1)
    assert report.alive_at_end
    assert report.ok


@pytest.mark.timeout(300)
def test_soak_accounts_for_every_reply_and_echo() -> None:
    report = soak(KERNEL, executes=40, comms=400, churn=3, timeout=120)
    assert report.failure is None, report.text()
    assert report.executes == Account(40, 40, 0, 0, 0, 0)
    assert report.comms == Account(400, 400, 0, 0, 0, 0)
    assert report.churn == Account(3, 3, 0, 0, 0, 0)
    assert report.slow_matches_fast, report.text()
    assert report.idle is not None
    assert report.final is not None
    assert report.peak_rss_mib >= report.idle.rss_mib
    assert report.ok


def test_an_account_names_lost_duplicated_and_reordered_messages() -> None:
    assert Account.of(5, [0, 1, 2, 3, 4]).ok
    account = Account.of(6, [0, 2, 1, 2, 4])
    assert (account.lost, account.duplicated, account.out_of_order) == (2, 1, 1)
    assert not account.ok
    assert not Account.of(2, [0, 1], errors=1).ok


@pytest.mark.timeout(300)
def test_the_command_line_writes_json_reports(tmp_path: Path) -> None:
    fuzz_json, soak_json = tmp_path / "fuzz.json", tmp_path / "soak.json"
    fuzz_args = ["--kernel", KERNEL, "--cases", "40", "--batch", "20", "--seed", "2", "-q"]
    assert main(["fuzz", *fuzz_args, "--json", str(fuzz_json)]) == 0
    [fuzzed] = json.loads(fuzz_json.read_text())
    assert (fuzzed["cases"], fuzzed["ok"]) == (40, True)
    soak_args = ["--kernel", KERNEL, "--executes", "10", "--comms", "50", "--churn", "1", "-q"]
    assert main(["soak", *soak_args, "--json", str(soak_json)]) == 0
    [soaked] = json.loads(soak_json.read_text())
    assert soaked["comms"]["received"] == 50
    assert soaked["ok"] is True
