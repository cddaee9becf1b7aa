"""The ``cokernel`` command and the kernelspecs it writes, run in-process and as a subprocess.

Every test works against a temporary prefix and Jupyter data directory, never the real ones.
``cokernel start`` is not tested here: it needs the running kernel.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager

from cokernel import kernelspec
from cokernel.cli import main
from cokernel.options import KernelOptions, parse_kernel_args

REPO = Path(__file__).resolve().parents[2]
KERNEL_SOURCES = REPO / "kernel"
SHIPPED_SPEC = REPO / "share" / "jupyter" / "kernels" / "cokernel" / "kernel.json"
SUBPROCESS_TIMEOUT = 60.0

pytestmark = pytest.mark.timeout(120)


@dataclass
class Result:
    """What one run of the ``cokernel`` command did."""

    code: int
    out: str
    err: str


Cli = Callable[..., Result]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point Jupyter's search path and data dir into ``tmp_path``, for this process and children."""
    prefix = tmp_path / "prefix"
    data = tmp_path / "user-data"
    monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(data))
    monkeypatch.setenv("PYTHONPATH", str(KERNEL_SOURCES))
    return dict(os.environ)


@pytest.fixture
def prefix(tmp_path: Path) -> Path:
    """The install prefix that ``JUPYTER_PATH`` points into."""
    return tmp_path / "prefix"


@pytest.fixture(params=["in-process", "subprocess"])
def cli(
    request: pytest.FixtureRequest,
    env: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> Cli:
    """Run ``cokernel ARGS…`` either through ``main()`` or as ``python -m cokernel``."""

    def in_process(*args: str) -> Result:
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def in_subprocess(*args: str) -> Result:
        proc = subprocess.run(
            [sys.executable, "-m", "cokernel", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_TIMEOUT,
            check=False,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return in_process if request.param == "in-process" else in_subprocess


def spec_dir(prefix: Path, name: str) -> Path:
    return prefix / "share" / "jupyter" / "kernels" / name


def load_spec(directory: Path) -> dict[str, object]:
    data = json.loads((directory / "kernel.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_default_spec_equals_the_shipped_kernel_json() -> None:
    assert json.loads(SHIPPED_SPEC.read_text(encoding="utf-8")) == kernelspec.make_spec()


def test_default_spec_starts_cokernel_with_the_connection_file() -> None:
    spec = kernelspec.make_spec()
    assert spec == {
        "argv": ["python", "-m", "cokernel", "start", "-f", "{connection_file}"],
        "display_name": "Python 3 (cokernel)",
        "language": "python",
        "interrupt_mode": "message",
        "kernel_protocol_version": "5.5",
        "metadata": {
            "concurrent": True,
            "backend": "asyncio",
            "host": None,
            "debugger": True,
            "supported_encryption": ["curve"],
        },
        "env": {},
    }


def test_spec_with_other_name_and_options_names_them_in_argv_and_display_name() -> None:
    options = KernelOptions(backend="trio", host="tk")
    spec = kernelspec.make_spec("co-trio", options=options)
    assert spec["argv"][6:] == ["--backend=trio", "--host=tk", "--kernel-name=co-trio"]
    assert spec["display_name"] == "Python 3 (cokernel: trio, tk)"
    assert spec["metadata"] == {
        "concurrent": True,
        "backend": "trio",
        "host": "tk",
        "debugger": True,
        "supported_encryption": ["curve"],
    }


def test_spec_with_other_name_and_default_options_shows_the_name() -> None:
    assert kernelspec.make_spec("mine")["display_name"] == "Python 3 (cokernel: mine)"


def test_spec_argv_options_parse_back_to_the_same_options() -> None:
    options = KernelOptions(
        backend="trio", use_uvloop=False, host="qt", timeout=2.5, log_level="DEBUG"
    )
    argv = kernelspec.make_spec("roundtrip", options=options)["argv"]
    parsed = parse_kernel_args(argv[6:])
    assert parsed == KernelOptions(
        backend="trio",
        use_uvloop=False,
        host="qt",
        timeout=2.5,
        log_level="DEBUG",
        kernel_name="roundtrip",
    )


def test_capture_fds_and_profile_options_round_trip_through_a_spec() -> None:
    for options in (
        KernelOptions(capture_fds=False, profile="work"),
        KernelOptions(capture_fds=True),
    ):
        argv = kernelspec.make_spec("fds", options=options)["argv"]
        parsed = parse_kernel_args(argv[6:])
        assert (parsed.capture_fds, parsed.profile) == (options.capture_fds, options.profile)
    # Unset, they stay unset: "as the kernel's place decides" (cokernel start: on, default).
    assert parse_kernel_args([]).capture_fds is None
    assert parse_kernel_args(["--profile", "p"]).profile == "p"


def test_switch_interval_round_trips_through_a_spec() -> None:
    for options in (KernelOptions(switch_interval=2.5), KernelOptions(switch_interval=0.0)):
        argv = kernelspec.make_spec("gil", options=options)["argv"]
        parsed = parse_kernel_args(argv[6:])
        assert parsed.switch_interval == options.switch_interval


def test_explicit_display_name_is_used_verbatim() -> None:
    assert kernelspec.make_spec(display_name="Mine")["display_name"] == "Mine"


def test_install_writes_a_spec_that_jupyter_finds_on_jupyter_path(cli: Cli, prefix: Path) -> None:
    result = cli("install", "--prefix", str(prefix))
    assert result.code == 0, result.err
    directory = spec_dir(prefix, "cokernel")
    assert str(directory) in result.out
    assert load_spec(directory) == kernelspec.make_spec()
    spec = KernelSpecManager().get_kernel_spec("cokernel")
    assert Path(spec.resource_dir) == directory
    assert spec.argv[:4] == ["python", "-m", "cokernel", "start"]
    assert spec.language == "python"
    assert spec.interrupt_mode == "message"
    assert spec.metadata["concurrent"] is True


def test_install_with_backend_trio_puts_the_backend_in_argv(cli: Cli, prefix: Path) -> None:
    result = cli("install", "--name", "co-trio", "--backend", "trio", "--prefix", str(prefix))
    assert result.code == 0, result.err
    spec = load_spec(spec_dir(prefix, "co-trio"))
    assert spec["argv"] == [
        "python",
        "-m",
        "cokernel",
        "start",
        "-f",
        "{connection_file}",
        "--backend=trio",
        "--kernel-name=co-trio",
    ]
    assert spec["display_name"] == "Python 3 (cokernel: trio)"
    assert spec["metadata"] == {
        "concurrent": True,
        "backend": "trio",
        "host": None,
        "debugger": True,
        "supported_encryption": ["curve"],
    }


def test_install_passes_trailing_kernel_options_into_argv(cli: Cli, prefix: Path) -> None:
    result = cli(
        "install",
        "--prefix",
        str(prefix),
        "--name=slow",
        "--timeout",
        "5",
        "--log-level=info",
        "--host=qt",
    )
    assert result.code == 0, result.err
    argv = load_spec(spec_dir(prefix, "slow"))["argv"]
    assert isinstance(argv, list)
    assert parse_kernel_args(argv[6:]) == KernelOptions(
        host="qt", timeout=5.0, log_level="INFO", kernel_name="slow"
    )


def test_install_with_display_name_writes_it(cli: Cli, prefix: Path) -> None:
    result = cli("install", "--prefix", str(prefix), "--display-name", "My Kernel")
    assert result.code == 0, result.err
    assert load_spec(spec_dir(prefix, "cokernel"))["display_name"] == "My Kernel"


def test_install_again_replaces_the_spec(cli: Cli, prefix: Path) -> None:
    assert cli("install", "--prefix", str(prefix), "--backend=trio").code == 0
    assert cli("install", "--prefix", str(prefix)).code == 0
    assert load_spec(spec_dir(prefix, "cokernel")) == kernelspec.make_spec()


def test_install_lower_cases_the_name_as_jupyter_does(cli: Cli, prefix: Path) -> None:
    result = cli("install", "--prefix", str(prefix), "--name", "MyKernel")
    assert result.code == 0, result.err
    assert spec_dir(prefix, "mykernel").is_dir()
    assert "mykernel" in KernelSpecManager().find_kernel_specs()


def test_install_with_user_writes_into_the_jupyter_data_dir(
    cli: Cli, tmp_path: Path, prefix: Path
) -> None:
    result = cli("install", "--user", "--name", "userspec")
    assert result.code == 0, result.err
    directory = tmp_path / "user-data" / "kernels" / "userspec"
    assert load_spec(directory)["argv"] == kernelspec.make_spec("userspec")["argv"]
    assert not spec_dir(prefix, "userspec").exists()


def test_install_with_unknown_option_fails_with_clear_message(cli: Cli, prefix: Path) -> None:
    result = cli("install", "--prefix", str(prefix), "--colour=blue")
    assert result.code == 2
    assert "cokernel: error: unknown kernel option --colour" in result.err
    assert not spec_dir(prefix, "cokernel").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "curio"], "--backend must be one of asyncio, trio, not 'curio'"),
        (["--host=gtk"], "--host must be one of tk, qt or none, not 'gtk'"),
        (["--timeout=soon"], "--timeout expects seconds, not 'soon'"),
        (["--timeout=-1"], "--timeout must not be negative"),
        (["--log-level=LOUD"], "--log-level must be one of"),
        (["--use-uvloop=maybe"], "--use-uvloop expects true or false"),
        (["--timeout"], "--timeout needs a value"),
        (["--profile=a/b"], "--profile needs an IPython profile name"),
        (["--capture-fds=sometimes"], "--capture-fds expects true or false"),
        (["--switch-interval=fast"], "--switch-interval expects milliseconds (0: Python's own)"),
        (["--switch-interval=-1"], "--switch-interval must be from 0 to 1000 ms"),
        (["--switch-interval=5000"], "--switch-interval must be from 0 to 1000 ms"),
        (["stray"], "unexpected argument 'stray'"),
    ],
)
def test_install_with_bad_value_fails_with_clear_message(
    cli: Cli, prefix: Path, args: list[str], message: str
) -> None:
    result = cli("install", "--prefix", str(prefix), *args)
    assert result.code == 2
    assert result.err.startswith("cokernel: error: ")
    assert message in result.err
    assert not (prefix / "share").exists()


@pytest.mark.parametrize("name", ["../escape", "with space", "slash/name", "..", ""])
def test_install_with_invalid_name_fails_with_clear_message(
    cli: Cli, prefix: Path, name: str
) -> None:
    result = cli("install", "--prefix", str(prefix), "--name", name)
    assert result.code == 2
    assert "cokernel: error: invalid kernel name" in result.err
    assert not (prefix / "share").exists()


def test_install_with_both_prefix_and_user_fails(cli: Cli, prefix: Path) -> None:
    result = cli("install", "--prefix", str(prefix), "--user")
    assert result.code == 2
    assert "not allowed with argument --prefix" in result.err


def test_list_shows_an_installed_spec_marked_as_cokernel(cli: Cli, prefix: Path) -> None:
    assert cli("install", "--prefix", str(prefix), "--name", "listed").code == 0
    result = cli("list")
    assert result.code == 0, result.err
    line = next(line for line in result.out.splitlines() if " listed " in line)
    assert line.startswith("*")
    assert line.endswith(str(spec_dir(prefix, "listed")))


def test_list_json_tells_cokernel_specs_from_others(cli: Cli, prefix: Path) -> None:
    assert cli("install", "--prefix", str(prefix), "--name", "listed").code == 0
    foreign = spec_dir(prefix, "foreign")
    foreign.mkdir(parents=True)
    (foreign / "kernel.json").write_text(
        json.dumps({"argv": ["other-kernel", "{connection_file}"], "display_name": "Other"}),
        encoding="utf-8",
    )
    result = cli("list", "--json")
    assert result.code == 0, result.err
    listing = json.loads(result.out)
    assert listing["listed"] == {"resource_dir": str(spec_dir(prefix, "listed")), "cokernel": True}
    assert listing["foreign"] == {"resource_dir": str(foreign), "cokernel": False}


def test_remove_deletes_an_installed_spec(cli: Cli, prefix: Path) -> None:
    assert cli("install", "--prefix", str(prefix), "--name", "gone").code == 0
    result = cli("remove", "gone", "--prefix", str(prefix))
    assert result.code == 0, result.err
    assert not spec_dir(prefix, "gone").exists()
    assert "gone" not in KernelSpecManager().find_kernel_specs()
    assert " gone " not in cli("list").out


def test_remove_with_user_deletes_from_the_jupyter_data_dir(cli: Cli, tmp_path: Path) -> None:
    assert cli("install", "--user", "--name", "mine").code == 0
    assert cli("remove", "--user", "mine").code == 0
    assert not (tmp_path / "user-data" / "kernels" / "mine").exists()


def test_remove_of_a_missing_spec_fails_with_clear_message(cli: Cli, prefix: Path) -> None:
    result = cli("remove", "nothing-here", "--prefix", str(prefix))
    assert result.code == 1
    assert "cokernel: error: no kernelspec named 'nothing-here'" in result.err


def test_remove_refuses_a_spec_that_does_not_start_cokernel(cli: Cli, prefix: Path) -> None:
    foreign = spec_dir(prefix, "foreign")
    foreign.mkdir(parents=True)
    (foreign / "kernel.json").write_text(json.dumps({"argv": ["other"]}), encoding="utf-8")
    result = cli("remove", "foreign", "--prefix", str(prefix))
    assert result.code == 2
    assert "does not start cokernel" in result.err
    assert (foreign / "kernel.json").is_file()


def test_remove_without_a_name_fails(cli: Cli) -> None:
    result = cli("remove")
    assert result.code == 2
    assert "the following arguments are required: NAME" in result.err


def test_command_is_required(cli: Cli) -> None:
    result = cli()
    assert result.code == 2
    assert "cokernel: error:" in result.err


def test_version_prints_the_version(cli: Cli) -> None:
    result = cli("--version")
    assert result.code == 0
    assert result.out.startswith("cokernel ")
    assert result.out.split()[1][0].isdigit()


def test_remove_function_reports_a_missing_spec(tmp_path: Path) -> None:
    with pytest.raises(kernelspec.KernelSpecNotFound, match="no kernelspec named 'absent'"):
        kernelspec.remove("absent", prefix=str(tmp_path))


def test_install_function_returns_the_spec_directory(tmp_path: Path) -> None:
    directory = kernelspec.install("fn", prefix=str(tmp_path))
    assert Path(directory) == spec_dir(tmp_path, "fn")
    assert load_spec(Path(directory))["argv"] == kernelspec.make_spec("fn")["argv"]


def test_list_specs_maps_names_to_resource_dirs(env: dict[str, str], prefix: Path) -> None:
    kernelspec.install("found", prefix=str(prefix))
    specs = kernelspec.list_specs()
    assert specs["found"] == str(spec_dir(prefix, "found"))
    assert kernelspec.is_cokernel_spec(specs["found"])
