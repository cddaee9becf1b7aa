"""Start a kernel process over ZMQ: what ``cokernel start -f FILE`` runs.

Only what the first reply needs is imported before the sockets are bound: the interface, the
protocol and the :class:`~cokernel.kernel._prelude.Prelude`, which answers kernel_info while the rest of
the kernel (IPython, the shell, the event loop) is imported and built on this thread.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, TextIO, cast

from cokernel.interfaces.zmq import ZMQInterface, load_connection_file
from cokernel.kernel._prelude import Prelude
from cokernel.options import DEFAULT_SWITCH_INTERVAL_MS, KernelOptions

if TYPE_CHECKING:
    from cokernel.kernel._kernel import Kernel

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


def _reopen_closed_std_fds() -> None:
    """Put /dev/null on fds 0, 1 and 2 if the launcher closed them.

    Otherwise the next file or socket opened would take the number, and anything writing to
    "stdout" (a subprocess, the fd capture) would write into it.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def _configure_log(level: str, stream: TextIO | None) -> None:
    """The kernel's own loggers (``cokernel.*``, and traitlets') write to the terminal it was
    started from.

    The root logger is left as a fresh interpreter has it, as ipykernel does: a cell's
    ``logging.warning(...)`` then configures it on first use with the stream that is
    ``sys.stderr`` at that moment, the cell's, so the message shows in the notebook.
    """
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("[cokernel %(levelname)s] %(message)s"))
    # traitlets' logger carries IPython's configuration warnings.
    for name in ("cokernel", "traitlets"):
        own = logging.getLogger(name)
        own.addHandler(handler)
        own.setLevel(level)
        own.propagate = False


def run_kernel(connection_file: str, options: KernelOptions) -> int:
    """Run a kernel on this (main) thread until it is shut down; returns the exit code."""
    _reopen_closed_std_fds()
    # This process is the kernel's own: capture fds 1 and 2, apply the IPython profile.
    if options.capture_fds is None:
        options.capture_fds = True
    if options.profile is None:
        options.profile = "default"
    if options.switch_interval is None:
        options.switch_interval = DEFAULT_SWITCH_INTERVAL_MS
    if options.switch_interval > 0:
        # A thread waiting for the GIL gets it from a running cell within this interval: the
        # io and control threads answer an interrupt of a busy loop in 16-19 ms instead of
        # 25-34 (Python's 5 ms interval, each of them waiting once); see docs/design.md.
        sys.setswitchinterval(options.switch_interval / 1000)
    # The kernel's log goes to the terminal it was started from, never into a cell: a stream on
    # a copy of fd 2 made before fd 2 is captured (cokernel.shell._fdcapture).
    log_stream = open(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115
    _configure_log(options.log_level, log_stream)
    info = load_connection_file(connection_file)
    interface = ZMQInterface(info)
    try:
        prelude = Prelude(options, interface.session, interface.send)
        # The interface only uses started, publish and receive, which the prelude has.
        interface.start(cast("Kernel", prelude))
        _remove_file_on_early_sigterm(interface)

        # Imported after the prelude serves: cokernel.shell._profile imports IPython.
        from cokernel.gui._figures import set_default_backend as set_default_matplotlib_backend
        from cokernel.kernel._handlers import HANDLERS
        from cokernel.kernel._kernel import Kernel, run_until_shutdown
        from cokernel.shell import _profile as profile

        profile.set_environment()  # TERM, PAGER=cat & co., as ipykernel's shell sets them
        set_default_matplotlib_backend()  # inline figures, unless MPLBACKEND says otherwise
        kernel = Kernel(
            options,
            interface.session,
            interface.send,
            handlers=HANDLERS,
            connection_info=info,
            outbox=interface.outbox,
        )
        kernel.connection_file = os.path.abspath(connection_file)  # for %connect_info, %qtconsole
        prelude.hand_over(kernel)
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


def _remove_file_on_early_sigterm(interface: ZMQInterface) -> None:
    """While the kernel is still being built (the prelude already answers), SIGTERM removes
    the connection file the kernel wrote, then ends the process as SIGTERM's default action
    would. :func:`_shutdown_on_sigterm` takes over once the kernel exists."""

    def on_early_sigterm(signum: int, frame: object) -> None:
        interface.remove_written_file()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_early_sigterm)


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
