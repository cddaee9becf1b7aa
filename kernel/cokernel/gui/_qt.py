"""The Qt host: ``QApplication.exec()`` runs on the main thread, the kernel's loop is its guest.

Another thread posts a callback by appending it to a deque and emitting a signal of a QObject
that lives on the main thread, connected with ``Qt.QueuedConnection``: Qt delivers the call
through the main thread's event queue. A pipe watched by a QSocketNotifier is the process's
``signal.set_wakeup_fd``, so a SIGINT reaches the kernel's handler while Qt idles in C.

The binding is PySide6 unless ``--qt-binding`` names another (PyQt6); ``QT_API`` is set to the
same binding, so matplotlib's Qt backend uses it too.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from types import ModuleType
from typing import Any

from cokernel.gui._host import GuestHost, HostUnavailable, drain_pipe, make_wake_pipe
from cokernel.options import QT_BINDINGS


def qt_binding_name(name: str) -> str:
    """The canonical spelling of Qt binding ``name`` (case-insensitive); ValueError if unknown."""
    for binding in QT_BINDINGS:
        if binding.lower() == name.strip().lower():
            return binding
    raise ValueError(f"unknown Qt binding {name!r}: use one of {', '.join(QT_BINDINGS)}")


def _display_missing() -> bool:
    """Whether Qt would find no screen to draw on (it aborts the process in that case)."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return False
    return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class QtHost(GuestHost):
    """Hosts the kernel's loop in a Qt application's event loop; see the module's description."""

    name = "qt"

    def __init__(self, binding: str = "PySide6") -> None:
        super().__init__()
        self.binding = qt_binding_name(binding)
        self._read_fd, self._write_fd = make_wake_pipe()
        self._app: Any = None
        self._invoker: Any = None
        self._notifier: Any = None

    def _wake(self) -> None:
        self._invoker.posted.emit()

    def _signal_wakeup_fd(self) -> int | None:
        return self._write_fd

    def _import(self) -> tuple[ModuleType, ModuleType]:
        try:
            core = importlib.import_module(f"{self.binding}.QtCore")
            widgets = importlib.import_module(f"{self.binding}.QtWidgets")
        except ImportError as exc:
            hint = (
                "pip install 'cokernel[qt]'" if self.binding == "PySide6" else "pip install PyQt6"
            )
            raise HostUnavailable(
                f"the qt host needs {self.binding}, which cannot be imported ({exc}); {hint}"
            ) from exc
        return core, widgets

    def _open(self) -> None:
        core, widgets = self._import()
        if _display_missing():
            raise HostUnavailable(
                "the qt host found no display: set DISPLAY or WAYLAND_DISPLAY, or "
                "QT_QPA_PLATFORM=offscreen to run without a screen"
            )
        os.environ.setdefault("QT_API", self.binding.lower())
        app = widgets.QApplication.instance() or widgets.QApplication(["cokernel"])
        # Closing a user's last window must not end the loop the kernel runs in.
        app.setQuitOnLastWindowClosed(False)
        signal_class = getattr(core, "Signal", None) or core.pyqtSignal
        invoker_class = type("CokernelInvoker", (core.QObject,), {"posted": signal_class()})
        invoker = invoker_class()
        invoker.posted.connect(self._run_posted, core.Qt.ConnectionType.QueuedConnection)
        notifier = core.QSocketNotifier(self._read_fd, core.QSocketNotifier.Type.Read)
        notifier.activated.connect(self._on_signal_wakeup)
        self._app, self._invoker, self._notifier = app, invoker, notifier

    def _on_signal_wakeup(self, *args: object) -> None:
        # Running any Python code here is the point: the interpreter runs pending signal
        # handlers (the kernel's SIGINT handler) before it.
        drain_pipe(self._read_fd)

    def _run_loop(self) -> None:
        self._app.exec()

    def _quit_loop(self) -> None:
        self._app.quit()

    def _close(self) -> None:
        notifier, self._notifier = self._notifier, None
        if notifier is not None:
            notifier.setEnabled(False)
        invoker, self._invoker = self._invoker, None
        if invoker is not None:
            with contextlib.suppress(RuntimeError, TypeError):
                invoker.posted.disconnect()
        for fd in (self._read_fd, self._write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
