"""An interrupt that finds the cell inside the kernel's own code waits until the cell is back.

A cell calls into the kernel to send its output (``print``, ``display``, a comm message). An
interrupt raised in there would cut the kernel's work in half: over ZMQ, a message queued whose
wake-up write never happened stalls the io thread, and the cell's reply with it, until some other
message arrives; in process, the host's own callback gets the exception. Such code is marked
``uninterruptible``, and an interrupt that lands there is delivered once the cell's code runs
again (cokernel.shell._uninterruptible).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from jupyter_client.session import Session

from cokernel.interfaces import callback
from cokernel.options import KernelOptions
from cokernel_harness.client import BlockingClient
from helpers import TRIO

GATE_TIMEOUT = 20.0
BACKENDS = ["asyncio", "trio"]


class HoldingHost:
    """A host whose callback holds the display marked ``hold`` until released, and notes any
    exception raised inside it (the in-process kernel calls it on the cell's thread)."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.raised: list[BaseException] = []
        self.holding = threading.Event()
        self.release = threading.Event()
        self._cond = threading.Condition()

    def __call__(self, channel: str, msg: Any) -> None:
        held = msg["header"]["msg_type"] == "display_data" and msg["content"]["data"] == {
            "text/plain": "hold"
        }
        try:
            if held:
                self.holding.set()
                assert self.release.wait(GATE_TIMEOUT), "never released"
            with self._cond:
                self.messages.append(dict(msg))
                self._cond.notify_all()
        except BaseException as e:
            self.raised.append(e)
            raise

    def reply_to(self, msg_id: str) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            for msg in self.messages:
                if msg["parent_header"].get("msg_id") == msg_id and msg["header"][
                    "msg_type"
                ].endswith("_reply"):
                    return msg
            return None

        with self._cond:
            assert self._cond.wait_for(lambda: find() is not None, GATE_TIMEOUT), msg_id
            found = find()
        assert found is not None
        return found


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", BACKENDS)
def test_an_interrupt_waits_for_the_hosts_callback_then_stops_the_cell(backend: str) -> None:
    host = HoldingHost()
    handle = callback.start(host, options=KernelOptions(backend=backend))  # type: ignore[arg-type]
    session = Session(key=b"")
    try:
        cell = session.msg(
            "execute_request",
            {
                "code": "from IPython.display import display\n"
                "display({'text/plain': 'hold'}, raw=True)\n"
                "while True:\n    pass",
                "silent": False,
            },
        )
        handle.receive("shell", cell)
        assert host.holding.wait(GATE_TIMEOUT)  # the cell's thread is in the host's callback
        interrupt = session.msg("interrupt_request", {})
        handle.receive("control", interrupt)
        assert host.reply_to(interrupt["header"]["msg_id"])["content"]["status"] == "ok"
        host.release.set()
        reply = host.reply_to(cell["header"]["msg_id"])
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        assert host.raised == []
        # The display went out whole, and the traceback does not run through the host.
        shown = [m for m in host.messages if m["header"]["msg_type"] == "display_data"]
        assert [m["content"]["data"] for m in shown] == [{"text/plain": "hold"}]
        [error] = [m for m in host.messages if m["header"]["msg_type"] == "error"]
        assert not any(__file__ in line for line in error["content"]["traceback"])
    finally:
        host.release.set()
        handle.stop()


# Installed in the kernel: arm(k) sends SIGINT to the main thread at the k-th call event seen in
# the zmq interface's send (a call it makes, or one its callees make), and only once.
_ARM = """\
import signal, sys, threading
from comm import create_comm
from cokernel.interfaces.zmq import ZMQInterface

_SEND = ZMQInterface.send.__code__
_comm = create_comm(target_name="nobody")

def _in_send(frame):
    return frame.f_code is _SEND or (frame.f_back is not None and frame.f_back.f_code is _SEND)

_fired = []

def arm(k):
    seen = 0
    _fired.clear()
    def hook(frame, event, arg):
        nonlocal seen
        if _in_send(frame):
            seen += 1
            if seen == k:
                sys.setprofile(None)
                _fired.append(k)
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
    sys.setprofile(hook)

"""


@pytest.mark.timeout(240)
def test_a_signal_at_any_call_inside_the_kernels_send_stops_the_cell_and_its_reply_comes(
    wire: BlockingClient,
) -> None:
    # Before the fix, a SIGINT that arrived between send's wake-up flag and its write left the
    # reply of the interrupted cell in the outbox for good (until another message came in).
    # The calls a send makes vary (the wake-up write happens only while the io thread sleeps),
    # so k goes up until a send makes fewer than k calls; then the cell ends by itself.
    assert wire.run(_ARM).status == "ok"
    k = 0
    while True:
        k += 1
        assert k < 500, "the sweep never reached the end of a send"
        msg_id = wire.execute(
            f"arm({k})\n_comm.send({{'k': {k}}})\nsys.setprofile(None)\n"
            "if _fired:\n    while True:\n        pass"
        )
        result = wire.collect(msg_id, timeout=GATE_TIMEOUT)
        sent = [m for m in result.of_type("comm_msg") if m.content["data"] == {"k": k}]
        assert len(sent) == 1, (k, "the comm message was cut off")
        if result.status == "ok":  # no k-th call in this send: the sweep is over
            break
        assert result.reply["ename"] == "KeyboardInterrupt", (k, result.reply)
    assert k > 3, k


# Run by a trio cell: the kernel's SIGINT handler body is called with trio's own frame, the frame
# of a cancel scope's __exit__ (KeyboardInterrupt-protected by trio), as if the signal had landed
# there. Landing there by chance needs a loaded machine; calling it is exact.
_TRIO_EXIT_SIGNAL = """\
import sys, trio
from cokernel.shell._interrupts import on_sigint
_exit = trio.CancelScope.__exit__.__code__
landed = []

def hook(frame, event, arg):
    if event == "call" and frame.f_code is _exit:
        sys.setprofile(None)
        landed.append(frame.f_code.co_qualname)
        on_sigint(get_ipython(), frame)  # the handler, in trio's protected frame

sys.setprofile(hook)
with trio.CancelScope():
    await trio.sleep(0)
sys.setprofile(None)
while True:  # the deferred interrupt must stop the cell here
    pass
"""


@pytest.mark.skipif(not TRIO, reason="trio's KeyboardInterrupt protection needs the trio backend")
def test_a_signal_in_trios_protected_code_is_deferred_to_the_cells_code(
    wire: BlockingClient,
) -> None:
    # Before the fix the handler raised KeyboardInterrupt inside CancelScope.__exit__, which
    # left the scope on the task's stack: the cell ended in trio's "Cancel scope stack
    # corrupted" RuntimeError instead of a KeyboardInterrupt (CI, once, by a real signal).
    result = wire.collect(wire.execute(_TRIO_EXIT_SIGNAL), timeout=GATE_TIMEOUT)
    assert result.status == "error"
    assert result.reply["ename"] == "KeyboardInterrupt", result.reply
    # It stopped in the cell's own loop, after the scope had closed.
    assert wire.run("landed").of_type("execute_result")[0].content["data"]["text/plain"] == (
        "['CancelScope.__exit__']"
    )
    # and the kernel runs trio cells as before
    assert wire.run("import trio\nawait trio.sleep(0)\n6 * 7").status == "ok"
