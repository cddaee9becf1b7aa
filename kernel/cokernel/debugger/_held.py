"""Interrupts while debugpy holds threads at breakpoints (mixed into
:class:`~cokernel.debugger._debugger.Debugger`).

KeyboardInterrupt raised into a thread that sits in debugpy's wait loop would unwind debugpy
instead of the cell: held threads are resumed first (with breakpoints muted), then interrupted.
SIGINT landing in debugpy's own code on the main thread is delivered again later.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

from cokernel.debugger._dap import held_by_debugger, hide_from_debugpy, in_debugpy_code
from cokernel.debugger._host import DebugHost

if TYPE_CHECKING:
    from cokernel.engine._caller import Pending
    from cokernel.shell._shell import CokernelShell

log = logging.getLogger("cokernel.debugger")


class HeldThreads:
    # Supplied by Debugger.
    kernel: DebugHost
    attached: bool
    stopped_threads: set[int]
    breakpoints: dict[str, list[dict[str, Any]]]
    exception_breakpoints: dict[str, Any]
    _redeliveries: int

    if TYPE_CHECKING:  # supplied by Debugger; declared here for the type checker only

        def _send(self, command: str, arguments: dict[str, Any]) -> Pending[dict[str, Any]]: ...

    def interrupt(self, shell: CokernelShell) -> bool:
        """Interrupt cells while debugpy holds some: resume them, then interrupt.

        Returns False (doing nothing) when no thread is held. KeyboardInterrupt raised into a
        thread that sits in debugpy's wait loop would unwind debugpy instead of the cell.
        """
        if not self.attached or not self.stopped_threads:
            return False
        worker = threading.Thread(
            target=self._release_then_interrupt, args=(shell,), name="cokernel-debugger-interrupt"
        )
        hide_from_debugpy(worker)
        worker.daemon = True
        worker.start()
        return True

    def _release_then_interrupt(self, shell: CokernelShell) -> None:
        cells = list(shell.running_cells)
        for cell in cells:  # later statements of the cell do not start (CellRun.run_sync)
            if cell.stop_reason is None:
                cell.stop_reason = "interrupt"
        # Breakpoints are muted until the cells have ended: one in a loop would hold the
        # thread again before the interrupt lands (it must not land in debugpy's wait loop),
        # and the KeyboardInterrupt itself would stop at an exception breakpoint.
        muted = self._mute_breakpoints()
        try:
            deadline = time.monotonic() + 10
            while True:
                held = next(iter(self.stopped_threads), None)
                if held is not None and self.attached:
                    answer = self._tell("continue", {"threadId": held})
                    if answer is not None and answer.get("success"):
                        # Held no longer, as after a frontend's continue (Debugger.forward):
                        # debugpy's "continued" event may come after the cell's reply, and a
                        # debugInfo asked then must not list the thread as stopped.
                        body = answer.get("body") or {}
                        self._resumed(held, bool(body.get("allThreadsContinued")))
                while time.monotonic() < deadline and any(
                    held_by_debugger(t) for t in threading.enumerate()
                ):
                    time.sleep(0.002)
                shell.interrupt_cells()
                finished = all(cell.done.wait(0.1) for cell in cells)
                if finished or time.monotonic() > deadline:
                    return
        finally:
            for command, arguments in muted:
                self._tell(command, arguments)

    def _tell(self, command: str, arguments: dict[str, Any]) -> dict[str, Any] | None:
        """Send a request of the kernel's own to debugpy and wait (a little) for its answer;
        returns the answer, or None when none came."""
        try:
            answer = self._send(command, arguments).result(5)
        except Exception:
            log.warning("debugpy did not answer %s", command, exc_info=True)
            return None
        if not answer.get("success"):
            log.warning("debugpy refused %s: %s", command, answer.get("message"))
        return answer

    def _resumed(self, thread_id: Any, everything: bool) -> None:
        if everything:
            self.stopped_threads.clear()
        else:
            self.stopped_threads.discard(thread_id)

    def _mute_breakpoints(self) -> list[tuple[str, dict[str, Any]]]:
        """Clear every breakpoint in debugpy (not in :attr:`breakpoints`); returns the
        requests that restore them."""
        restore: list[tuple[str, dict[str, Any]]] = []
        for path, lines in list(self.breakpoints.items()):
            self._tell("setBreakpoints", {"source": {"path": path}, "breakpoints": []})
            restore.append(("setBreakpoints", {"source": {"path": path}, "breakpoints": lines}))
        if self.exception_breakpoints:
            self._tell("setExceptionBreakpoints", {"filters": []})
            restore.append(("setExceptionBreakpoints", dict(self.exception_breakpoints)))
        return restore

    def _sigint_guard(self, frame: FrameType | None) -> bool:
        """Keep SIGINT out of debugpy's code on the main thread; deliver it again later."""
        if not in_debugpy_code(frame):
            self._redeliveries = 0
            return False
        self._redeliveries += 1
        if self._redeliveries <= 500:  # about 5 s of tries
            timer = threading.Timer(0.01, self._redeliver)
            timer.daemon = True
            timer.start()
        return True

    def _redeliver(self) -> None:
        shell = self.kernel.shell
        main = threading.main_thread()
        if shell is None or main.ident is None:
            return
        if any(
            c.thread is main and c.stop_reason is not None and not c.done.is_set()
            for c in list(shell.running_cells)
        ):
            signal.pthread_kill(main.ident, signal.SIGINT)
