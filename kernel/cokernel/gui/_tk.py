"""The Tk host: Tk's mainloop runs on the main thread, the kernel's loop is its guest.

A hidden root window keeps ``mainloop()`` running (it returns once no Tk main window is left)
and watches the host's wake-up pipe: another thread queues a callback and writes a byte; Tcl's
notifier sees the pipe readable and calls :meth:`TkHost._on_readable`, which runs the queued
callbacks. Nothing polls. The same pipe is the process's ``signal.set_wakeup_fd``, so a SIGINT
reaches the kernel's handler even while Tk idles in C.

The hidden root is not tkinter's default root: ``tk.Tk()``, ``tk.Label(text=...)`` and
matplotlib's TkAgg windows in cells behave as in a plain Python process.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from cokernel.gui._host import (
    GuestHost,
    HostUnavailable,
    drain_pipe,
    make_wake_pipe,
    write_wake_byte,
)


class TkHost(GuestHost):
    """Hosts the kernel's loop in Tk's mainloop; see the module's description."""

    name = "tk"

    def __init__(self) -> None:
        super().__init__()
        self._read_fd, self._write_fd = make_wake_pipe()
        self._root: Any = None  # tkinter.Tk, imported lazily

    def _wake(self) -> None:
        write_wake_byte(self._write_fd)

    def _signal_wakeup_fd(self) -> int | None:
        return self._write_fd

    def _open(self) -> None:
        try:
            import tkinter
        except ImportError as exc:
            raise HostUnavailable(
                "the tk host needs tkinter, which this Python lacks (on Debian and Ubuntu: "
                "apt-get install python3-tk)"
            ) from exc
        previous_default = getattr(tkinter, "_default_root", None)
        try:
            root = tkinter.Tk(className="cokernel")
        except tkinter.TclError as exc:
            raise HostUnavailable(
                f"the tk host cannot open a display ({exc}); set DISPLAY to a running X server "
                "(under CI: Xvfb), or use a kernel without --host"
            ) from exc
        root.withdraw()
        # Keep user code's idea of "the first Tk()" to itself (see the module's description).
        if getattr(tkinter, "_default_root", None) is root:
            tkinter._default_root = previous_default  # type: ignore[attr-defined]
        root.createfilehandler(self._read_fd, tkinter.READABLE, self._on_readable)
        self._root = root

    def _on_readable(self, fd: int, mask: int) -> None:
        # An exception escaping a Tcl file handler ends mainloop() with it: _run_posted lets
        # only KeyboardInterrupt and SystemExit through, which is meant (see GuestHost.run).
        drain_pipe(self._read_fd)
        self._run_posted()

    def _run_loop(self) -> None:
        self._root.mainloop()

    def _quit_loop(self) -> None:
        self._root.quit()

    def _close(self) -> None:
        root, self._root = self._root, None
        if root is not None:
            with contextlib.suppress(Exception):
                root.deletefilehandler(self._read_fd)
            with contextlib.suppress(Exception):
                root.destroy()
        for fd in (self._read_fd, self._write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
