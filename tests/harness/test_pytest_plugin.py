"""The harness's pytest plugin, as another project's suite meets it: installed, by entry point.

Each test runs pytest in a subprocess on a small suite in a temporary directory (no conftest,
no configuration), so what is checked is the installed ``pytest11`` entry point itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SUITE = """
import pytest

@pytest.mark.anyio
async def test_cell_runs(frontend, harness_kernel):
    run = await frontend.run("6 * 7")
    assert run.result == {"text/plain": "42"}
    info = await frontend.kernel_info()
    assert info["language_info"]["name"] == "python"

def test_without_the_fixtures():
    assert True
"""


def pytest_in(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
    )


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    (tmp_path / "test_other_kernel.py").write_text(SUITE)
    return tmp_path


@pytest.mark.timeout(60)
def test_each_harness_kernel_option_gives_each_test_its_own_id(suite: Path) -> None:
    done = pytest_in(
        suite, "--collect-only", "--harness-kernel", "cokernel", "--harness-kernel", "python3"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # anyio's own plugin runs async tests on each of its backends.
    for kernel in ("cokernel", "python3"):
        for backend in ("asyncio", "trio"):
            assert f"test_other_kernel.py::test_cell_runs[{backend}-{kernel}]" in done.stdout
    # A test that uses neither fixture is not multiplied.
    assert "test_other_kernel.py::test_without_the_fixtures\n" in done.stdout


@pytest.mark.timeout(60)
def test_the_ini_option_names_the_kernels_and_the_command_line_wins(suite: Path) -> None:
    (suite / "pytest.ini").write_text("[pytest]\nharness_kernel = cokernel python3\n")
    done = pytest_in(suite, "--collect-only")
    assert done.returncode == 0, done.stdout + done.stderr
    for kernel in ("cokernel", "python3"):
        assert f"test_cell_runs[asyncio-{kernel}]" in done.stdout
    done = pytest_in(suite, "--collect-only", "--harness-kernel", "inprocess:trio")
    assert "test_cell_runs[asyncio-inprocess:trio]" in done.stdout, done.stdout + done.stderr
    assert "python3" not in done.stdout


@pytest.mark.timeout(60)
def test_without_a_kernel_named_the_plugin_is_inert(suite: Path) -> None:
    done = pytest_in(suite, "--collect-only")
    # Nothing is parametrised with a kernel...
    assert "test_other_kernel.py::test_cell_runs[asyncio]" in done.stdout, done.stdout
    assert "cokernel" not in done.stdout
    # ...and a test that asks for the fixture anyway says how to name one; the others pass.
    done = pytest_in(suite, "-p", "anyio", "-k", "asyncio or without")
    assert "1 passed, 1 deselected, 1 error" in done.stdout, done.stdout + done.stderr
    assert "pass --harness-kernel NAME, or set `harness_kernel = NAME`" in done.stdout


@pytest.mark.timeout(120)
def test_the_frontend_fixture_runs_an_in_process_kernel_by_name(suite: Path) -> None:
    done = pytest_in(suite, "--harness-kernel", "inprocess", "--harness-kernel", "inprocess:trio")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 passed" in done.stdout  # 2 kernels x 2 anyio backends, and the plain test


@pytest.mark.timeout(180)
def test_the_frontend_fixture_launches_and_stops_a_real_kernel(suite: Path) -> None:
    done = pytest_in(suite, "--harness-kernel", "cokernel", "-W", "error")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout  # on asyncio and trio, and the plain test


@pytest.mark.timeout(60)
def test_the_option_is_listed_in_pytest_help(tmp_path: Path) -> None:
    done = pytest_in(tmp_path, "--help")
    assert "--harness-kernel=NAME" in done.stdout
