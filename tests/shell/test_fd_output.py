"""Output written to file descriptors 1 and 2 reaches the cell that is running.

``os.system``, subprocesses that inherit the kernel's stdout, C code writing to fd 1/2 and
``multiprocessing`` children (fork and spawn) all bypass ``sys.stdout``; the kernel captures the
descriptors (cokernel.shell._fdcapture) when it owns its process, which is the case for these kernels.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from jupyter_client.kernelspec import KernelSpecManager

from cokernel_harness.client import BlockingClient
from cokernel_harness.frontend import Frontend
from cokernel_harness.messages import Execution
from helpers import KERNEL_NAME, KernelPair, start_kernel, stop_kernel


def text_of(execution: Execution, name: str) -> str:
    return "".join(
        m.content["text"] for m in execution.of_type("stream") if m.content["name"] == name
    )


def stream_texts(wire: BlockingClient) -> str:
    """Every stream text the client received, from any cell or none."""
    return "".join(item.msg["content"]["text"] for item in wire.log if item.msg_type == "stream")


def all_streams(execution: Execution) -> str:
    return "".join(m.content["text"] for m in execution.of_type("stream"))


def test_os_system_output_reaches_the_cell_in_order_with_prints(wire: BlockingClient) -> None:
    execution = wire.run(
        "import os\n"
        "print('before', flush=True)\n"
        "os.system('echo from-os-system')\n"
        "os.system('echo to-fd-2 >&2')\n"
        "print('after')"
    )

    assert execution.status == "ok", execution.reply
    assert all_streams(execution) == "before\nfrom-os-system\nto-fd-2\nafter\n"
    assert "to-fd-2" in text_of(execution, "stderr")


def test_fd_output_of_a_cell_never_lands_in_the_next_cell(wire: BlockingClient) -> None:
    first = wire.run("import subprocess\nsubprocess.run(['echo', 'mine'])")
    second = wire.run("print('next')")

    assert text_of(first, "stdout") == "mine\n"
    assert text_of(second, "stdout") == "next\n"


def test_c_level_writes_reach_the_cell(wire: BlockingClient) -> None:
    execution = wire.run(
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None)\n"
        "libc.printf(b'from-printf\\n')\n"
        "libc.fflush(None)\n"
        "os.write(2, b'raw-fd-2\\n')"
    )

    assert text_of(execution, "stdout") == "from-printf\n"
    assert text_of(execution, "stderr") == "raw-fd-2\n"


def test_stdout_and_stderr_have_filenos_and_faulthandler_works(wire: BlockingClient) -> None:
    execution = wire.run(
        "import faulthandler, subprocess, sys\n"
        "print(sys.stdout.fileno(), sys.stderr.fileno())\n"
        "faulthandler.enable()\n"
        "faulthandler.dump_traceback(all_threads=False)\n"
        "subprocess.run(['echo', 'through-fileno'], stdout=sys.stdout)\n"
        "faulthandler.disable()"
    )

    assert execution.status == "ok", execution.reply
    assert text_of(execution, "stdout") == "1 2\nthrough-fileno\n"
    assert "Stack (most recent call first)" in text_of(execution, "stderr")


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_multiprocessing_childs_print_and_traceback_reach_the_cell(
    wire: BlockingClient, method: str
) -> None:
    execution = wire.run(
        "import multiprocessing, operator\n"
        f"ctx = multiprocessing.get_context({method!r})\n"
        "p = ctx.Process(target=print, args=('hello from the child',))\n"
        "p.start(); p.join()\n"
        "q = ctx.Process(target=operator.truediv, args=(1, 0))\n"
        "q.start(); q.join()\n"
        "print('exit codes', p.exitcode, q.exitcode)",
        timeout=60,
    )

    assert execution.status == "ok", execution.reply
    assert text_of(execution, "stdout") == "hello from the child\nexit codes 0 1\n"
    stderr = text_of(execution, "stderr")
    assert "Traceback (most recent call last)" in stderr
    assert "ZeroDivisionError" in stderr


def test_a_bang_command_and_a_background_process_go_to_their_cells(wire: BlockingClient) -> None:
    # A process that outlives its cell writes into the latest cell running (or the last one).
    start = wire.run(
        "import subprocess, sys\n"
        "gate = subprocess.Popen(['sh', '-c', 'read line; echo late-$line'], "
        "stdin=subprocess.PIPE, text=True)"
    )
    assert start.status == "ok", start.reply
    release = wire.run("gate.stdin.write('output\\n'); gate.stdin.close(); gate.wait()")

    assert text_of(release, "stdout") == "late-output\n"


def test_the_kernels_own_log_stays_out_of_cells(launch_kernel: Callable[..., KernelPair]) -> None:
    # At DEBUG the kernel logs on every request; its log goes to a copy of the original fd 2.
    wire = BlockingClient(launch_kernel("--log-level=DEBUG")[1])
    wire.run("import logging; logging.getLogger('cokernel').warning('log-line-from-a-cell')")
    execution = wire.run("import os; os.write(2, b'user-fd-2\\n')")

    assert text_of(execution, "stderr") == "user-fd-2\n"
    everything = "".join(
        item.msg["content"]["text"] for item in wire.log if item.msg_type == "stream"
    )
    assert "[cokernel" not in everything, everything


def test_a_megabyte_from_a_subprocess_arrives_whole_and_in_order(wire: BlockingClient) -> None:
    # Far more than a pipe holds: the reader forwards while the child writes.
    execution = wire.run("import subprocess\nsubprocess.run(['seq', '1', '200000'])", timeout=60)

    assert text_of(execution, "stdout") == "".join(f"{i}\n" for i in range(1, 200_001))


@pytest.mark.timeout(60)
def test_fd_output_of_a_subshell_cell_goes_to_that_cell() -> None:
    async def body(fe: Frontend) -> None:
        await fe.run("main_cell = 1")  # the main shell's latest cell: where stray output goes
        reply = await fe.request("control", "create_subshell_request", {})
        run = await fe.run(
            "import os\nos.system('echo from-the-subshell')", subshell_id=reply["subshell_id"]
        )
        assert run.stdout == "from-the-subshell\n"

    async def main() -> None:
        async with Frontend.launch("cokernel") as fe:
            await body(fe)

    anyio.run(main)


def test_a_kernel_started_without_a_stdout_still_forwards_fd_output(
    tmp_path: Path, isolated_env: Path
) -> None:
    # A launcher may start the kernel with fd 1 closed: the first file or socket the kernel
    # opened would take its number (the kernel's log, say) and be captured with it.
    spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME).to_dict()
    python_argv = [sys.executable, *spec["argv"][1:]]
    spec["argv"] = ["sh", "-c", 'exec "$0" "$@" >&-', *python_argv]
    (tmp_path / "kernels" / "no-stdout").mkdir(parents=True)
    (tmp_path / "kernels" / "no-stdout" / "kernel.json").write_text(json.dumps(spec))
    km, kc = start_kernel(
        "no-stdout", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
    )
    try:
        wire = BlockingClient(kc)
        execution = wire.run(
            "import logging, os\n"
            "logging.getLogger('cokernel').warning('a log line')\n"
            "os.system('echo still-here')"
        )
        assert execution.stdout == "still-here\n"
        assert stream_texts(wire) == "still-here\n", "the kernel's log went into a cell"
        assert wire.run("1 + 1").status == "ok"
    finally:
        stop_kernel(km, kc)
