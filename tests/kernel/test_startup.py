"""Start-up. The prelude: a starting kernel answers kernel_info before IPython is even imported, and keeps
every other request, in order, for the kernel (cokernel.kernel._prelude).

The kernel process gets a ``sitecustomize`` that holds the first import of IPython until the
test opens a gate (a FIFO the hook reads from, so nothing polls). While it is held, nothing of the
shell exists: a kernel_info_reply that arrives then came from the prelude.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from cokernel_harness.client import BlockingClient
from helpers import KERNEL_NAME, STARTUP_TIMEOUT, TRIO, start_kernel, stop_kernel

_HOOK = """\
import sys

class _HoldIPython:
    def find_spec(self, name, path=None, target=None):
        if name == "IPython":
            sys.meta_path.remove(self)
            with open({gate!r}) as gate:  # blocks until the test opens the other end
                gate.read()
        return None

sys.meta_path.insert(0, _HoldIPython())
"""


class Gate:
    """The FIFO the kernel's import hook waits on."""

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path)
        self.opened = False

    def open(self) -> None:
        if not self.opened:
            self.opened = True
            # Opening for writing blocks until the reader is there: do it on a thread, so a
            # kernel that never reaches the hook cannot hang the test.
            threading.Thread(target=self._release, daemon=True).start()

    def _release(self) -> None:
        with open(self.path, "w") as f:
            f.write("go")


@pytest.fixture
def held_kernel(
    tmp_path: Path, isolated_env: Path
) -> Iterator[tuple[KernelManager, BlockingKernelClient, Gate]]:
    gate = Gate(tmp_path / "gate")
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_HOOK.format(gate=str(gate.path)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    km = KernelManager(kernel_name=KERNEL_NAME)
    km.start_kernel(env=env)
    kc = km.client()
    kc.start_channels()
    try:
        yield km, kc, gate
    finally:
        gate.open()
        kc.stop_channels()
        km.shutdown_kernel(now=True)


@pytest.mark.timeout(120)
def test_kernel_info_is_answered_while_the_kernel_is_still_importing_and_requests_wait(
    held_kernel: tuple[KernelManager, BlockingKernelClient, Gate],
) -> None:
    _, kc, gate = held_kernel
    wire = BlockingClient(kc)

    first = wire.send("shell", "kernel_info_request")
    early = wire.reply(first, timeout=STARTUP_TIMEOUT)  # IPython is held here
    assert early["implementation"] == "cokernel"
    # The kernel greets each iopub subscriber: after that, no output of the cells is missed.
    wire.wait_for(lambda r: r.msg_type == "iopub_welcome", timeout=STARTUP_TIMEOUT)

    # Sent while the kernel cannot run anything yet: kept, then run in order.
    assign = wire.execute("x = 41")
    on_control = wire.send("control", "kernel_info_request")
    read = wire.execute("x + 1")
    again = wire.send("shell", "kernel_info_request")
    gate.open()

    assert wire.reply(assign, timeout=STARTUP_TIMEOUT)["status"] == "ok"
    result = wire.collect(read).of_type("execute_result")
    assert result[0].content["data"]["text/plain"] == "42"
    # The prelude's reply is the one the kernel itself gives.
    assert wire.reply(again) == early
    assert wire.reply(on_control) == early
    executed = [r.parent_id for r in wire.log if r.msg_type == "execute_reply"]
    assert executed == [assign, read]


_WARMED = """\
import sys, threading
for t in threading.enumerate():
    if t.name == "cokernel-warmup":
        t.join(60)
import parso.grammar
from pygments.lexers import PythonLexer
print("jedi" in sys.modules, bool(parso.grammar._loaded_grammars), "stack_data" in sys.modules)
print("_tokens" in PythonLexer.__dict__)  # the warm-up's traceback compiled the lexer's tables
import inspect  # and inspect knows the file of every module jedi brought in
print(all(inspect._filesbymodname.get(name) == module.__file__
          for name, module in list(sys.modules.items())
          if name.startswith(("jedi", "parso")) and getattr(module, "__file__", None)))
"""


@pytest.mark.timeout(120)
def test_jedi_and_tracebacks_are_warmed_up_after_start_without_a_completion(
    fresh_kernel: tuple[KernelManager, BlockingKernelClient],
) -> None:
    # cokernel.shell._warmup: once a first cell has run, jedi is imported and parso's grammar built
    # before any complete_request, and a first traceback is rendered. pygments' self-replacing
    # packages are imported before any cell (settle_lazy_packages).
    wire = BlockingClient(fresh_kernel[1])
    first = (
        "import sys\nprint('jedi' in sys.modules, 'stack_data' in sys.modules, "
        "'pygments.lexers' in sys.modules, 'pygments.formatters' in sys.modules)"
    )
    assert wire.run(first).stdout == "False False True True\n"
    assert wire.run(_WARMED).stdout == "True True True\nTrue\nTrue\n"


@pytest.mark.timeout(240)
def test_a_completion_during_the_warm_up_finds_the_name(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The warm-up starts its jedi run when the first cell has been served (here at once: its
    # wait for a quiet moment is set to 1 ms); a complete_request right behind that cell used to
    # run jedi beside it, and jedi (not thread-safe) raised, so IPython's completer answered no
    # matches (about one kernel in two). Completions and the warm-up now take turns
    # (cokernel.shell._warmup.JEDI_LOCK). Each kernel gets one such race.
    monkeypatch.setenv("COKERNEL_WARMUP_QUIET_MS", "1")
    for _ in range(4):
        km, kc = start_kernel()
        try:
            wire = BlockingClient(kc)
            assert wire.run("harness_warm_target = 1").status == "ok"
            code = "harness_warm_tar"
            reply = wire.request(
                "shell", "complete_request", {"code": code, "cursor_pos": len(code)}
            )
            assert reply["status"] == "ok"
            assert "harness_warm_target" in reply["matches"], reply
        finally:
            stop_kernel(km, kc)


# What a started kernel must not have imported: each costs memory and start-up time, and none is
# needed before it is used (measured in docs/benchmarks.md, "RSS after start").
_HEAVY_AT_START = ["aiologic", "wrapt", "importlib.metadata", "jedi", "debugpy", "psutil"]


def test_a_started_kernel_has_not_imported_what_it_does_not_need_yet(
    fresh_kernel: tuple[KernelManager, BlockingKernelClient],
) -> None:
    wire = BlockingClient(fresh_kernel[1])
    heavy = _HEAVY_AT_START + ([] if TRIO else ["trio"])  # an asyncio kernel needs no trio
    done = wire.run(f"import sys\nprint([m for m in {heavy!r} if m in sys.modules])")
    assert done.stdout == "[]\n", done.stdout


_NESTED_TRIO = """\
import trio

async def main():
    await trio.sleep(0)
    return "ran"

print(trio.run(main), getattr(trio.run, "cokernel_nested", False))
"""


def test_trio_run_in_a_cell_is_patched_when_trio_is_first_imported(
    fresh_kernel: tuple[KernelManager, BlockingKernelClient],
) -> None:
    # trio is imported by the cell, not at start (asyncio kernels), and its run() is the one
    # that works inside a running loop (on a worker thread) from the moment the import returns.
    wire = BlockingClient(fresh_kernel[1])
    done = wire.run(_NESTED_TRIO)
    assert done.status == "ok", done.reply
    assert done.stdout == "ran True\n"
