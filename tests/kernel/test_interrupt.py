"""Interrupts, stop-on-error aborts and execution timeouts, on real kernel processes.

Interrupts come both ways a frontend sends them: an ``interrupt_request`` on control
(``KernelManager.interrupt_kernel()``; the kernelspec's interrupt_mode is "message") and SIGINT
to the kernel's process. Each stopped cell must end with a KeyboardInterrupt error reply, and the
same kernel must then run the next cell.
"""

from __future__ import annotations

import os
import re
import signal
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from cokernel_harness.client import BlockingClient
from cokernel_harness.messages import Execution
from helpers import kernel_pid, start_kernel, stop_kernel, write_kernelspec

pytestmark = pytest.mark.timeout(60)

KernelPair = tuple[KernelManager, BlockingKernelClient]
KERNEL_TIMEOUT = 1.0  # seconds: the --timeout of the timeout kernel


def interrupt_by_message(km: KernelManager) -> None:
    assert km.kernel_spec is not None
    assert km.kernel_spec.interrupt_mode == "message"
    km.interrupt_kernel()  # an interrupt_request on the control channel


def interrupt_by_signal(km: KernelManager) -> None:
    os.kill(kernel_pid(km), signal.SIGINT)


INTERRUPTERS: dict[str, Callable[[KernelManager], None]] = {
    "message": interrupt_by_message,
    "signal": interrupt_by_signal,
}

# "native-sleep" is the backend's own sleep: asyncio.sleep on asyncio, trio.sleep on trio.
NATIVE_SLEEP = {
    "asyncio": "import asyncio\nawait asyncio.sleep(100)",
    "trio": "import trio\nawait trio.sleep(100)",
}
BLOCKING_CELLS: dict[str, str | dict[str, str]] = {
    "busy-loop": "while True:\n    pass",
    "time-sleep": "import time\ntime.sleep(100)",
    "native-sleep": NATIVE_SLEEP,
    "anyio-sleep": "import anyio\nawait anyio.sleep(100)",
}


@dataclass
class BackendKernel:
    """A kernel process running on ``backend``, and a Wire on its client."""

    backend: str
    km: KernelManager
    kc: BlockingKernelClient

    def cell(self, name: str) -> str:
        code = BLOCKING_CELLS[name]
        return code if isinstance(code, str) else code[self.backend]


@pytest.fixture(scope="module", params=["asyncio", "trio"])
def backend_kernel(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, isolated_env: Path
) -> Iterator[BackendKernel]:
    """A kernel per event-loop backend (whichever backend this test run's kernels default to)."""
    backend = str(request.param)
    directory = tmp_path_factory.mktemp("kernels")
    manager = write_kernelspec(directory, f"cokernel-{backend}", [f"--backend={backend}"])
    km, kc = start_kernel(f"cokernel-{backend}", kernel_spec_manager=manager)
    try:
        yield BackendKernel(backend, km, kc)
    finally:
        stop_kernel(km, kc)


def start_cell(wire: BlockingClient, code: str, **options: object) -> str:
    """Execute ``code`` after a marker line; return once the marker was printed (cell running)."""
    marker = f"cell-started-{uuid.uuid4().hex}"
    msg_id = wire.execute(f"print({marker!r}, flush=True)\n{code}", **options)  # type: ignore[arg-type]
    wire.wait_for(
        lambda r: (
            r.parent_id == msg_id and r.msg_type == "stream" and marker in r.msg["content"]["text"]
        ),
        what="the cell's start marker",
    )
    return msg_id


def assert_stopped_with(result: Execution, ename: str) -> None:
    assert result.status == "error", result.reply
    assert result.reply["ename"] == ename
    errors = result.of_type("error")
    assert [e.content["ename"] for e in errors] == [ename]


def assert_kernel_runs_cells(wire: BlockingClient) -> None:
    result = wire.run("1+1")
    assert result.status == "ok", result.reply
    assert result.of_type("execute_result")[0].content["data"]["text/plain"] == "2"


# -- interrupts ---------------------------------------------------------------------------------
@pytest.mark.parametrize("how", INTERRUPTERS)
@pytest.mark.parametrize("cell", BLOCKING_CELLS)
def test_interrupt_stops_a_running_cell(backend_kernel: BackendKernel, how: str, cell: str) -> None:
    wire = BlockingClient(backend_kernel.kc)
    msg_id = start_cell(wire, backend_kernel.cell(cell))
    INTERRUPTERS[how](backend_kernel.km)
    assert_stopped_with(wire.collect(msg_id), "KeyboardInterrupt")
    assert_kernel_runs_cells(wire)


@pytest.mark.parametrize("how", INTERRUPTERS)
def test_interrupt_stops_a_cell_waiting_for_input(backend_kernel: BackendKernel, how: str) -> None:
    wire = BlockingClient(backend_kernel.kc)
    msg_id = wire.execute("input('waiting: ')", allow_stdin=True)
    request = wire.input_request(msg_id)
    assert request.msg["content"]["prompt"] == "waiting: "
    INTERRUPTERS[how](backend_kernel.km)
    assert_stopped_with(wire.collect(msg_id), "KeyboardInterrupt")
    assert_kernel_runs_cells(wire)


PDB_CELLS = {
    "pdb.set_trace": "import pdb\nx = 1\npdb.set_trace()\nprint('after', x)",
    "breakpoint-in-a-loop": "for x in range(3):\n    breakpoint()\nprint('after', x)",
}


@pytest.mark.parametrize("how", INTERRUPTERS)
@pytest.mark.parametrize("cell", PDB_CELLS)
def test_interrupt_at_a_pdb_prompt_ends_the_cell_and_queued_cells_run(
    backend_kernel: BackendKernel, how: str, cell: str
) -> None:
    wire = BlockingClient(backend_kernel.kc)
    msg_id = wire.execute(PDB_CELLS[cell], allow_stdin=True)
    queued = wire.execute("print('queued ran')")
    prompt = wire.input_request(msg_id)  # the cell waits at the debugger's prompt
    INTERRUPTERS[how](backend_kernel.km)

    result = wire.collect(msg_id)
    assert_stopped_with(result, "KeyboardInterrupt")
    assert not re.search(r"^after \d", result.stdout, re.MULTILINE), "the cell ran on"
    # Ended by an interrupt like any cell: what was queued behind it is answered (aborted, as
    # stop_on_error asks), and the kernel runs the next cells.
    assert wire.collect(queued).status == "aborted"
    prompts = wire.find(lambda r: r.channel == "stdin" and r.parent_id == msg_id)
    assert prompts == [prompt], "the debugger asked again after the interrupt"
    assert_kernel_runs_cells(wire)


# A stand-in for a SIGINT the kernel's handler never sees: one that lands after the main
# thread's last check for signals and before it blocks (in time.sleep, in a lock wait), which a
# loaded machine hits now and then. The cell's own handler swallows the first SIGINT and puts
# the kernel's back; a message interrupt must still end the cell.
_LOSE_ONE_SIGINT = """\
import signal
_kernel_sigint = signal.getsignal(signal.SIGINT)


def _lose_one_sigint(signum, frame):
    signal.signal(signal.SIGINT, _kernel_sigint)


signal.signal(signal.SIGINT, _lose_one_sigint)
"""

LOST_SIGNAL_CELLS = {
    "time-sleep": "import time\ntime.sleep(100)",
    "input": "input('waiting: ')",
    "pdb-prompt": PDB_CELLS["pdb.set_trace"],
}


@pytest.mark.parametrize("cell", LOST_SIGNAL_CELLS)
def test_a_message_interrupt_whose_signal_is_lost_still_stops_the_cell(
    backend_kernel: BackendKernel, cell: str
) -> None:
    wire = BlockingClient(backend_kernel.kc)
    assert wire.run(_LOSE_ONE_SIGINT).status == "ok"  # in place before the cell can be stopped
    code = LOST_SIGNAL_CELLS[cell]
    if cell == "time-sleep":
        msg_id = start_cell(wire, code)
    else:
        msg_id = wire.execute(code, allow_stdin=True)
        wire.input_request(msg_id)
    interrupt_by_message(backend_kernel.km)
    assert_stopped_with(wire.collect(msg_id), "KeyboardInterrupt")
    # The kernel's handler is back in place (the first SIGINT put it back).
    check = wire.run("import signal\nsignal.getsignal(signal.SIGINT) is _kernel_sigint")
    assert check.of_type("execute_result")[0].content["data"]["text/plain"] == "True"
    assert_kernel_runs_cells(wire)


_SPIN_IN_A_FINALIZER = """\
class _SpinsWhenCollected:
    def __del__(self):
        while True:
            pass


def _collect_and_spin():  # one statement: the next one's look at the stop does not count
    spinner = _SpinsWhenCollected()
    del spinner  # the finalizer runs here, on the main thread, while the cell steps
    while True:
        pass


_collect_and_spin()
"""


@pytest.mark.parametrize("how", INTERRUPTERS)
def test_an_interrupt_that_lands_in_a_finalizer_still_stops_the_cell(
    backend_kernel: BackendKernel, how: str
) -> None:
    # The kernel's SIGINT handler raises in whatever the main thread runs, and CPython ignores
    # an exception raised in a finalizer: the kernel signals again (see
    # cokernel.shell.rescue_swallowed_interrupt), or the cell would spin on.
    wire = BlockingClient(backend_kernel.kc)
    msg_id = start_cell(wire, _SPIN_IN_A_FINALIZER)
    INTERRUPTERS[how](backend_kernel.km)
    assert_stopped_with(wire.collect(msg_id), "KeyboardInterrupt")
    assert_kernel_runs_cells(wire)


# What CPython leaves behind when a SIGINT's C handler ran in the GIL hand-over right before the
# main thread blocked: the signal's number written to the wakeup fd, and the Python handler not
# run (it would run once the blocking call returned: after 100 s here).
_SIGINT_HANDLER_NOT_RUN = """\
import os, signal, time
_wakeup = signal.set_wakeup_fd(-1)
signal.set_wakeup_fd(_wakeup)
os.write(_wakeup, bytes([signal.SIGINT]))
time.sleep(100)
"""


def test_a_sigint_whose_handler_did_not_run_still_stops_the_cell(
    backend_kernel: BackendKernel,
) -> None:
    # The kernel watches the wakeup fd (cokernel.shell._interrupts._SigintWatch): a SIGINT its
    # handler has not seen is treated as a message interrupt, which signals again.
    wire = BlockingClient(backend_kernel.kc)
    msg_id = start_cell(wire, _SIGINT_HANDLER_NOT_RUN)
    assert_stopped_with(wire.collect(msg_id), "KeyboardInterrupt")
    assert_kernel_runs_cells(wire)


def test_a_forked_child_does_not_write_its_signals_to_the_kernels_watch(
    wire: BlockingClient,
) -> None:
    # A child shares the watch's pipe; its SIGINTs (Ctrl-C reaches a whole process group) would
    # count as lost ones of the kernel's and stop a cell that caught its interrupt.
    code = (
        "import os, signal\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os._exit(0 if signal.set_wakeup_fd(-1) == -1 else 1)\n"
        "os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])"
    )
    assert wire.run(code).result == {"text/plain": "0"}


def test_pdb_in_a_cell_steps_and_continues(wire: BlockingClient) -> None:
    msg_id = wire.execute(PDB_CELLS["pdb.set_trace"], allow_stdin=True)
    first = wire.input_request(msg_id)
    wire.input_reply("p x + 41", parent=first.msg)
    second = wire.wait_for(
        lambda r: r.channel == "stdin" and r.parent_id == msg_id, after=first, what="a prompt"
    )
    wire.input_reply("c", parent=second.msg)

    result = wire.collect(msg_id)
    assert result.status == "ok", result.reply
    assert "42\n" in result.stdout
    assert result.stdout.endswith("after 1\n")
    # pdb's "continue" left the kernel's SIGINT handling alone: interrupts still end cells.
    sleeper = start_cell(wire, "import time\ntime.sleep(100)")
    wire.send("control", "interrupt_request")
    assert_stopped_with(wire.collect(sleeper), "KeyboardInterrupt")


def test_interrupt_request_is_answered_on_control(wire: BlockingClient) -> None:
    msg_id = start_cell(wire, "import time\ntime.sleep(100)")
    reply = wire.reply_message(wire.send("control", "interrupt_request"))
    assert reply.channel == "control"
    assert reply.msg["content"]["status"] == "ok"
    assert_stopped_with(wire.collect(msg_id), "KeyboardInterrupt")


def test_interrupt_before_the_cell_code_steps_is_not_lost(wire: BlockingClient) -> None:
    # A long cell takes a while to compile after execute_input; an interrupt sent then finds
    # the cell registered but not stepping. It must stop the cell when its code starts.
    msg_id = wire.execute("x = 1\n" * 60_000 + "import time\ntime.sleep(100)\n")
    wire.wait_for(
        lambda r: r.parent_id == msg_id and r.msg_type == "execute_input", what="execute_input"
    )
    wire.reply_message(wire.send("control", "interrupt_request"))
    result = wire.collect(msg_id)
    assert_stopped_with(result, "KeyboardInterrupt")
    # Honoured before a line of the cell ran: no kernel frame to show in its place.
    assert not any("cokernel" in line for line in result.reply["traceback"]), result.reply
    assert_kernel_runs_cells(wire)


def test_interrupt_with_no_cell_running_does_no_harm(wire: BlockingClient) -> None:
    reply = wire.reply_message(wire.send("control", "interrupt_request"))
    assert reply.msg["content"]["status"] == "ok"
    assert_kernel_runs_cells(wire)


# -- stop on error ------------------------------------------------------------------------------
def sync_shell(wire: BlockingClient) -> None:
    """Return once the kernel has received everything sent on shell so far.

    kernel_info is answered as soon as it arrives, and a socket delivers in order.
    """
    wire.reply_message(wire.send("shell", "kernel_info_request"))


def test_cells_queued_behind_an_interrupted_cell_are_aborted(
    kernel: KernelPair, wire: BlockingClient
) -> None:
    km, _ = kernel
    running = start_cell(wire, "import time\ntime.sleep(100)")
    queued = [wire.execute(f"queued_{n} = True") for n in range(2)]
    sync_shell(wire)
    interrupt_by_message(km)

    assert_stopped_with(wire.collect(running), "KeyboardInterrupt")
    for msg_id in queued:
        aborted = wire.collect(msg_id)
        assert aborted.status == "aborted"
        states = [m.content for m in wire.iopub(msg_id) if m.msg_type == "status"]
        assert [state["execution_state"] for state in states] == ["busy", "idle"]
    after = wire.run("[name for name in ('queued_0', 'queued_1') if name in dir()]")
    assert after.status == "ok"
    assert after.of_type("execute_result")[0].content["data"]["text/plain"] == "[]"


def test_cells_queued_behind_a_failing_cell_are_aborted_and_later_ones_run(
    wire: BlockingClient,
) -> None:
    failing = wire.execute("input()\n1 / 0", allow_stdin=True)
    request = wire.input_request(failing)  # the cell is running: the next ones queue behind it
    queued = [wire.execute(code) for code in ("'first'", "'second'")]
    sync_shell(wire)
    wire.input_reply("", parent=request.msg)

    assert_stopped_with(wire.collect(failing), "ZeroDivisionError")
    assert [wire.collect(msg_id).status for msg_id in queued] == ["aborted", "aborted"]
    # Sent after the error: not aborted.
    assert_kernel_runs_cells(wire)


def test_a_cell_sent_as_soon_as_the_error_reply_arrives_is_not_aborted(
    wire: BlockingClient,
) -> None:
    # The kernel once took its abort time after sending the error reply; a frontend quick
    # enough to send its next cell in between saw that cell aborted. Many rounds, so that a
    # loaded machine gets its chances to hit the window.
    for n in range(30):
        failing = wire.execute("1 / 0")
        assert wire.reply(failing)["status"] == "error"
        follow_up = wire.reply_message(wire.execute(f"{n}"))
        assert follow_up.msg["content"]["status"] == "ok", f"round {n}: {follow_up}"


def test_stop_on_error_false_does_not_abort(wire: BlockingClient) -> None:
    failing = wire.execute("input()\n1 / 0", allow_stdin=True, stop_on_error=False)
    request = wire.input_request(failing)
    queued = wire.execute("'runs anyway'")
    sync_shell(wire)
    wire.input_reply("", parent=request.msg)

    assert_stopped_with(wire.collect(failing), "ZeroDivisionError")
    result = wire.collect(queued)
    assert result.status == "ok", result.reply
    assert result.of_type("execute_result")[0].content["data"]["text/plain"] == "'runs anyway'"


# -- execution timeouts -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def timeout_kernel(
    tmp_path_factory: pytest.TempPathFactory, isolated_env: Path
) -> Iterator[KernelPair]:
    """A kernel started with ``--timeout`` (from a kernelspec in a temporary directory)."""
    directory = tmp_path_factory.mktemp("kernels")
    manager = write_kernelspec(directory, "cokernel-timeout", [f"--timeout={KERNEL_TIMEOUT:g}"])
    km, kc = start_kernel("cokernel-timeout", kernel_spec_manager=manager)
    try:
        yield km, kc
    finally:
        stop_kernel(km, kc)


@pytest.mark.parametrize(
    "code",
    [
        "import time\ntime.sleep(100)",
        "import anyio\nawait anyio.sleep(100)",
        "while True:\n    pass",
    ],
    ids=["time-sleep", "anyio-sleep", "busy-loop"],
)
def test_kernel_timeout_ends_a_long_cell(timeout_kernel: KernelPair, code: str) -> None:
    wire = BlockingClient(timeout_kernel[1])
    result = wire.run(code)
    assert_stopped_with(result, "ExecutionTimeout")
    assert f"{KERNEL_TIMEOUT:g} s" in result.reply["evalue"]
    assert_kernel_runs_cells(wire)


def test_a_cell_can_lift_the_kernel_timeout(timeout_kernel: KernelPair) -> None:
    wire = BlockingClient(timeout_kernel[1])
    result = wire.run(
        f"# cokernel: timeout=0\nimport time\ntime.sleep({KERNEL_TIMEOUT * 2.5:g})\n'done'"
    )
    assert result.status == "ok", result.reply


@pytest.mark.parametrize(
    ("code", "metadata"),
    [
        ("# cokernel: timeout=0.5\nimport time\ntime.sleep(100)", None),
        ("#cokernel:timeout=0.5\nimport anyio\nawait anyio.sleep(100)", None),
        ("import time\ntime.sleep(100)", {"cokernel": {"timeout": 0.5}}),
        ("import anyio\nawait anyio.sleep(100)", {"cokernel": {"timeout": 0.5}}),
    ],
    ids=["directive-sync", "directive-async", "metadata-sync", "metadata-async"],
)
def test_per_cell_timeout(
    wire: BlockingClient, code: str, metadata: dict[str, object] | None
) -> None:
    result = wire.run(code, metadata=metadata)
    assert_stopped_with(result, "ExecutionTimeout")
    assert "0.5 s" in result.reply["evalue"]
    assert_kernel_runs_cells(wire)


@pytest.mark.parametrize("cell", ["time-sleep", "native-sleep", "anyio-sleep"])
def test_per_cell_timeout_on_each_backend(backend_kernel: BackendKernel, cell: str) -> None:
    wire = BlockingClient(backend_kernel.kc)
    result = wire.run(f"# cokernel: timeout=0.5\n{backend_kernel.cell(cell)}")
    assert_stopped_with(result, "ExecutionTimeout")
    assert_kernel_runs_cells(wire)


def test_a_cell_that_ends_within_its_timeout_is_unaffected(wire: BlockingClient) -> None:
    result = wire.run("# cokernel: timeout=60\n6 * 7")
    assert result.status == "ok", result.reply
    assert result.of_type("execute_result")[0].content["data"]["text/plain"] == "42"


@pytest.mark.parametrize(
    ("code", "metadata", "message"),
    [
        ("# cokernel: timeout=soon\n1", None, "timeout must be seconds"),
        ("# cokernel: frobnicate\n1", None, "unknown cokernel directive"),
        ("# cokernel: run_mode=direct\n1", None, "run mode must be queue, task or thread"),
        ("1", {"cokernel": {"timeout": "soon"}}, "timeout must be seconds"),
    ],
    ids=["bad-timeout", "unknown-word", "bad-run-mode", "bad-metadata"],
)
def test_bad_directive_is_a_clear_cell_error(
    wire: BlockingClient, code: str, metadata: dict[str, object] | None, message: str
) -> None:
    result = wire.run(code, metadata=metadata, stop_on_error=False)
    assert_stopped_with(result, "DirectiveError")
    assert message in result.reply["evalue"]
    assert message in result.of_type("error")[0].content["evalue"]
    assert_kernel_runs_cells(wire)
