"""Start a kernel process over ZMQ: what ``cokernel start -f FILE`` runs.

Only what the first reply needs is imported before the sockets are bound: the interface, the
protocol and the :class:`~cokernel.prelude.Prelude`, which answers kernel_info while the rest of
the kernel (IPython, the shell, the event loop) is imported and built on this thread.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, cast

from cokernel.interfaces.zmq import ZMQInterface, load_connection_file
from cokernel.options import KernelOptions
from cokernel.prelude import Prelude

if TYPE_CHECKING:
    from cokernel.kernel import Kernel

log = logging.getLogger("cokernel")


def _watch_parent(kernel: Kernel, interval: float = 1.0) -> None:
    """Shut the kernel down when the process that launched it dies (JPY_PARENT_PID)."""
    raw = os.environ.get("JPY_PARENT_PID")
    if not raw or not raw.isdigit() or int(raw) <= 1:
        return
    parent = int(raw)

    def watch() -> None:
        while not kernel.shutdown_requested.wait(interval):
            if not _pid_exists(parent) or os.getppid() == 1:
                log.warning("parent process %s is gone: shutting down", parent)
                kernel.request_shutdown(restart=False)
                _exit_soon(5.0)
                return

    threading.Thread(target=watch, name="cokernel-parent-watch", daemon=True).start()


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # no signal sent: only whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def _exit_soon(grace: float) -> None:
    """Exit hard if a clean shutdown has not finished within ``grace`` seconds."""

    def hard_exit() -> None:
        time.sleep(grace)
        os._exit(0)

    threading.Thread(target=hard_exit, name="cokernel-exit", daemon=True).start()


def run_kernel(connection_file: str, options: KernelOptions) -> int:
    """Run a kernel on this (main) thread until it is shut down; returns the exit code."""
    logging.basicConfig(
        level=options.log_level,
        stream=sys.__stderr__,
        format="[cokernel %(levelname)s] %(message)s",
    )
    info = load_connection_file(connection_file)
    interface = ZMQInterface(info)
    prelude = Prelude(options, interface.session, interface.send)
    # The interface only uses started, publish and receive, which the prelude has.
    interface.start(cast("Kernel", prelude))

    from cokernel.gui.figures import set_default_backend as set_default_matplotlib_backend
    from cokernel.kernel import Kernel, run_until_shutdown

    set_default_matplotlib_backend()  # inline figures, unless MPLBACKEND says otherwise
    kernel = Kernel(options, interface.session, interface.send, connection_info=info)
    prelude.hand_over(kernel)
    _watch_parent(kernel)
    try:
        run_until_shutdown(kernel)
    finally:
        _exit_soon(10.0)  # a cell thread that ignores interrupts must not keep the process alive
        interface.close()
    return 0
