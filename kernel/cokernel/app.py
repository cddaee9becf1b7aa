"""Start a kernel process over ZMQ: what ``cokernel start -f FILE`` runs."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time

import psutil

from cokernel.gui.figures import set_default_backend as set_default_matplotlib_backend
from cokernel.interfaces.zmq import ZMQInterface, load_connection_file
from cokernel.kernel import Kernel, run_until_shutdown
from cokernel.options import KernelOptions

log = logging.getLogger("cokernel")


def _watch_parent(kernel: Kernel, interval: float = 1.0) -> None:
    """Shut the kernel down when the process that launched it dies (JPY_PARENT_PID)."""
    raw = os.environ.get("JPY_PARENT_PID")
    if not raw or not raw.isdigit() or int(raw) <= 1:
        return
    parent = int(raw)

    def watch() -> None:
        while not kernel.shutdown_requested.wait(interval):
            if not psutil.pid_exists(parent) or os.getppid() == 1:
                log.warning("parent process %s is gone: shutting down", parent)
                kernel.request_shutdown(restart=False)
                _exit_soon(5.0)
                return

    threading.Thread(target=watch, name="cokernel-parent-watch", daemon=True).start()


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
    set_default_matplotlib_backend()  # inline figures, unless MPLBACKEND says otherwise
    info = load_connection_file(connection_file)
    interface = ZMQInterface(info)
    try:
        kernel = Kernel(options, interface.session, interface.send, connection_info=info)
        interface.start(kernel)
        _watch_parent(kernel)
        _shutdown_on_sigterm(kernel, interface)
        try:
            run_until_shutdown(kernel)
        finally:
            _exit_soon(10.0)  # a cell thread ignoring interrupts must not keep the process alive
            interface.close()
    finally:
        interface.remove_written_file()
    return 0


def _shutdown_on_sigterm(kernel: Kernel, interface: ZMQInterface) -> None:
    """On SIGTERM, remove the connection file the kernel wrote and shut down cleanly.

    The file goes first, in the handler itself, so it is gone even if the shutdown that follows
    has to be cut short (``_exit_soon``).
    """

    def on_sigterm(signum: int, frame: object) -> None:
        interface.remove_written_file()
        log.info("SIGTERM: shutting down")
        _exit_soon(5.0)
        threading.Thread(
            target=kernel.request_shutdown, args=(False,), name="cokernel-sigterm", daemon=True
        ).start()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_sigterm)
