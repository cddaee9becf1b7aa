"""The README's main job: the guided tour passes every step on cokernel."""

from __future__ import annotations

from pathlib import Path

import pytest

from cokernel_harness import demo


@pytest.mark.timeout(180)
def test_the_tour_passes_every_step_on_cokernel(
    isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert demo.main(["--kernel", "cokernel"]) == 0
    out = capsys.readouterr().out
    assert "[FAIL]" not in out
    assert out.count("[PASS]") == 7
    assert "the kernel stayed live throughout" in out
