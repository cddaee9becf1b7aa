"""IPython configuration and the kernel magics, on real kernel processes.

Each kernel here gets its own IPython profile (``--profile=NAME``) in the session's temporary
IPYTHONDIR, or an IPYTHONDIR of its own through its kernelspec's env, so the startup files and
config files written for it touch no other test's kernel.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager

from cokernel_harness.client import BlockingClient
from cokernel_harness.messages import Execution
from helpers import KERNEL_NAME, KernelPair, start_kernel, stop_kernel

pytestmark = pytest.mark.timeout(90)


def make_profile(ipython_dir: Path, name: str, files: dict[str, str]) -> Path:
    profile = ipython_dir / f"profile_{name}"
    for relative, text in files.items():
        path = profile / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return profile


def value(wire: BlockingClient, expression: str) -> str:
    execution = wire.run(expression)
    assert execution.status == "ok", execution.reply
    results = execution.of_type("execute_result")
    assert results, execution.outputs
    return str(results[0].content["data"]["text/plain"])


def stderr(execution: Execution) -> str:
    return "".join(
        m.content["text"] for m in execution.of_type("stream") if m.content["name"] == "stderr"
    )


@pytest.fixture
def kernel_with_env(tmp_path: Path, isolated_env: Path) -> Iterator[Callable[..., KernelPair]]:
    """Start cokernel from a kernelspec with extra ``env`` (and argv); stopped after the test."""
    started: list[KernelPair] = []

    def launch(env: dict[str, str], *argv: str) -> KernelPair:
        spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME).to_dict()
        spec["argv"] = [sys.executable, *spec["argv"][1:], *argv]
        spec["env"] = {**spec.get("env", {}), **env}
        name = f"cokernel-env-{len(started)}"
        (tmp_path / "kernels" / name).mkdir(parents=True)
        (tmp_path / "kernels" / name / "kernel.json").write_text(json.dumps(spec))
        pair = start_kernel(
            name, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
        )
        started.append(pair)
        return pair

    yield launch
    for km, kc in started:
        stop_kernel(km, kc)


def test_startup_files_config_files_exec_lines_and_extensions_apply(
    launch_kernel: Callable[..., KernelPair], isolated_env: Path, tmp_path: Path
) -> None:
    exec_file = tmp_path / "exec_me.py"
    exec_file.write_text("from_exec_file = 'ran'\n")
    make_profile(
        isolated_env / "ipython",
        "cfgtest",
        {
            "startup/00-first.py": "startup_order = ['py']\n",
            "startup/10-second.ipy": "startup_order.append('ipy')\nipy_cwd = %pwd\n",
            "ipython_config.py": """
                c.InteractiveShellApp.exec_lines = ['from_base = 1']
                c.InteractiveShell.separate_in = 'base'
                c.InteractiveShell.separate_out = 'base'
            """,
            "ipython_kernel_config.py": f"""
                c.IPKernelApp.exec_lines = ['from_kernel = startup_order + ["exec_lines"]']
                c.InteractiveShellApp.exec_files = [{str(exec_file)!r}]
                c.InteractiveShellApp.extensions = ['autoreload']
                c.InteractiveShell.separate_in = 'kernel'
            """,
        },
    )
    wire = BlockingClient(launch_kernel("--profile=cfgtest")[1])

    assert value(wire, "from_kernel") == "['py', 'ipy', 'exec_lines']"
    assert value(wire, "from_exec_file") == "'ran'"
    assert value(wire, "isinstance(ipy_cwd, str)") == "True"
    # The kernel config wins over the base config; what only the base sets still applies.
    assert value(wire, "get_ipython().separate_in, get_ipython().separate_out") == (
        "('kernel', 'base')"
    )
    assert value(wire, "'autoreload' in get_ipython().magics_manager.magics['line']") == "True"
    assert value(wire, "get_ipython().profile") == "'cfgtest'"
    # Startup names are hidden from %who, as in IPython.
    assert "startup_order" not in wire.run("%who").stdout


def test_the_default_profile_of_ipythondir_applies_and_store_works(
    kernel_with_env: Callable[..., KernelPair], tmp_path: Path
) -> None:
    ipython_dir = tmp_path / "own-ipython"
    make_profile(ipython_dir, "default", {"startup/50-hello.py": "from_default_profile = 42\n"})
    wire = BlockingClient(kernel_with_env({"IPYTHONDIR": str(ipython_dir)})[1])

    assert value(wire, "from_default_profile") == "42"
    stored = wire.run("kept = [1, 2]\n%store kept")
    assert stored.status == "ok", stored.reply
    assert stored.stdout == "Stored 'kept' (list)\n"
    assert value(wire, "del kept\n%store -r kept\nkept") == "[1, 2]"


def test_a_broken_config_file_is_skipped_and_the_kernel_runs(
    launch_kernel: Callable[..., KernelPair], isolated_env: Path
) -> None:
    make_profile(
        isolated_env / "ipython",
        "broken",
        {
            "ipython_kernel_config.py": "raise RuntimeError('broken config')\n",
            "startup/00-bad.py": "1 / 0\n",
            "startup/10-good.py": "after_the_bad_one = True\n",
        },
    )
    wire = BlockingClient(launch_kernel("--profile=broken")[1])

    assert value(wire, "1 + 1") == "2"


def test_kernel_magics_connect_info_and_autosave(wire: BlockingClient) -> None:
    info = wire.run("%connect_info")
    assert info.status == "ok", info.reply
    assert '"shell_port"' in info.stdout
    assert "jupyter <app> --existing" in info.stdout

    autosave = wire.run("%autosave 30")
    displays = autosave.of_type("display_data")
    assert [list(d.content["data"]) for d in displays] == [["application/javascript"]]
    assert "set_autosave_interval(30000)" in displays[0].content["data"]["application/javascript"]
    assert autosave.stdout == "Autosaving every 30 seconds\n"
    assert wire.run("%autosave 0").stdout == "Autosave disabled\n"
    bad = wire.run("%autosave soon")
    assert bad.status == "error"
    assert bad.reply["ename"] == "UsageError"


def test_pager_magics_less_more_man_and_clear(wire: BlockingClient, tmp_path: Path) -> None:
    text_file = tmp_path / "notes.txt"
    text_file.write_text("some notes\n")
    py_file = tmp_path / "module.py"
    py_file.write_text("answer = 42\n")

    for magic in ("less", "more"):
        execution = wire.run(f"%{magic} {text_file}")
        assert execution.status == "ok", execution.reply
        [payload] = execution.reply["payload"]
        assert payload["source"] == "page"
        assert payload["data"]["text/plain"] == "some notes\n"
    highlighted = wire.run(f"%less {py_file}").reply["payload"][0]["data"]["text/plain"]
    assert "answer" in highlighted
    assert "\x1b[" in highlighted
    missing = wire.run("%less")
    assert (missing.reply["ename"], missing.reply["evalue"]) == (
        "UsageError",
        "Missing filename.",
    )

    # As on ipykernel: a colour terminal for commands, no pager; %clear prints its sequence.
    assert (
        value(wire, "import os; os.environ['TERM'], os.environ['PAGER']")
        == "('xterm-color', 'cat')"
    )
    assert "\x1b[2J" in wire.run("%clear").stdout
    man = wire.run("%man ls")
    assert man.status == "ok", man.reply
    assert man.reply["payload"][0]["source"] == "page"


@pytest.mark.skipif(
    __import__("importlib.util").util.find_spec("qtconsole") is not None,
    reason="qtconsole is installed: %qtconsole would open a window",
)
def test_qtconsole_without_qtconsole_says_how_to_get_it(wire: BlockingClient) -> None:
    execution = wire.run("%qtconsole")
    assert execution.status == "error"
    assert "pip install qtconsole" in execution.reply["evalue"]


def test_an_unknown_profile_name_is_made(
    launch_kernel: Callable[..., KernelPair], isolated_env: Path
) -> None:
    wire = BlockingClient(launch_kernel("--profile=fresh")[1])
    assert value(wire, "get_ipython().profile") == "'fresh'"
    assert os.path.isdir(isolated_env / "ipython" / "profile_fresh")
