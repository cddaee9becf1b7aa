"""A gate that holds a cell in a blocking ``time.sleep`` loop until the harness opens it.

"While a cell blocks" is then a fact, not a bet on durations: the harness sends what it wants
the kernel to handle during the block, waits for what should happen, and only then opens the
gate. The gate is a file in a fresh temporary directory (kernels launched by the harness share
its file system); the cell polls for it with ``time.sleep``, so the interpreter's thread is
blocked exactly as in ``time.sleep(30)`` but the block ends when the harness says so. A bound
(``limit``) ends the block anyway, so a gate nobody opens never wedges a kernel for good.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from types import TracebackType
from typing import Any

from cokernel_harness.frontend import Frontend
from cokernel_harness.messages import Received, WaitTimeout
from cokernel_scenarios.scenario import (
    PATIENCE,
    ScenarioFailure,
    last,
    wait_for_output,
)

STARTED = "harness: cell started"


class Gate:
    """Use as a context manager: the gate opens (and its directory goes) when the block ends."""

    def __init__(self, *, limit: float = 120.0) -> None:
        self.limit = limit
        self.directory = tempfile.mkdtemp(prefix="cokernel-gate-")
        self.path = os.path.join(self.directory, "open")

    def blocking_code(self, *, then: str = "") -> str:
        """Cell code that prints :data:`STARTED`, blocks until the gate opens, then runs ``then``."""
        return (
            "import os as _gate_os, time as _gate_time\n"
            f"print({STARTED!r}, flush=True)\n"
            f"_gate_until = _gate_time.monotonic() + {self.limit!r}\n"
            f"while not _gate_os.path.exists({self.path!r}) and _gate_time.monotonic() < _gate_until:\n"
            "    _gate_time.sleep(0.005)\n"
            f"{then}"
        )

    def open(self) -> None:
        """Let the blocked cell go on (idempotent)."""
        if os.path.isdir(self.directory):
            with open(self.path, "w"):
                pass

    async def open_after_sending(self, fe: Frontend) -> None:
        """Open once everything ``fe`` sent so far has left this process.

        Messages sent before the gate opens then reach the kernel while the cell still blocks
        (on a local connection), which is what scenarios about queued requests rely on.
        """
        await fe.transport.drain()
        self.open()

    def __enter__(self) -> Gate:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Open before removing: a cell still polling must see the gate open, not vanish. A cell
        # that polls after the removal waits out its limit, which only a wedged kernel does.
        self.open()
        shutil.rmtree(self.directory, ignore_errors=True)


async def start_blocking_cell(
    fe: Frontend, gate: Gate, *, then: str = "", timeout: float = 30.0, **options: Any
) -> str:
    """Execute a cell blocked on ``gate``; return its msg_id once its code is running."""
    msg_id = fe.execute(gate.blocking_code(then=then), **options)
    await wait_for_output(fe, msg_id, STARTED, timeout=timeout, what="the blocking cell to start")
    return msg_id


async def answered_while_blocked(fe: Frontend, send: Callable[[], str], what: str) -> Received:
    """Send a request (``send`` returns its msg_id) while a cell blocks; return its reply.

    The cell stays blocked until the reply arrives (for up to :data:`PATIENCE` seconds), so a
    returned reply was answered during the block; otherwise :class:`ScenarioFailure` says
    whether the reply came after the cell's or never.
    """
    with Gate() as gate:
        cell = await start_blocking_cell(fe, gate)
        request = send()
        try:
            reply = await fe.reply_message(request, timeout=PATIENCE)
        except WaitTimeout:
            gate.open()
            await fe.collect(cell)
            try:
                await fe.reply_message(request, timeout=PATIENCE)
            except WaitTimeout:
                got = "no reply at all"
            else:
                got = "the reply only after the blocking cell's execute_reply"
            raise ScenarioFailure(f"{what} answered while a cell blocks", got, last(fe)) from None
        gate.open()
        await fe.collect(cell)
    return reply
