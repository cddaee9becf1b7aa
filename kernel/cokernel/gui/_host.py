"""What every GUI host does: own the main thread's loop, run one guest, stop when it ends.

A host is a GUI toolkit's event loop (Tk's, Qt's) that runs on the main thread and lends it to a
*guest*: the kernel's async loop (asyncio or trio), which gets to run in short steps posted to
the host through :meth:`GuestHost.call_soon_threadsafe`. Between steps the toolkit serves its
windows and timers; the guest's blocking wait for I/O happens on a thread of its own.

Subclasses say how to wake, start, run, stop and close their toolkit's loop; this module keeps
the queue of posted callbacks and says how a guest run begins and ends around the loop.
"""

from __future__ import annotations

import abc
import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger("cokernel.gui")

AsyncMain = Callable[[], Awaitable[Any]]
# Starts a guest run of an async main on a host: (async_main, host, done). The runner picks one
# for its backend (cokernel.gui._guests.guest_for) and hands it to GuestHost.run.
StartGuest = Callable[[AsyncMain, "GuestHost", "Callable[[Outcome[Any]], None]"], None]

# How long the end of a guest run (after its main function returned) may hold the toolkit's
# loop; past this, the toolkit serves its events again while the guest finishes.
_WIND_DOWN_LIMIT = 10.0


class HostUnavailable(RuntimeError):
    """The GUI toolkit of a host cannot run here (not installed, or no display to draw on)."""


class Outcome(Generic[T]):
    """How a guest run ended: the value its main function returned, or what it raised."""

    __slots__ = ("error", "value")

    def __init__(self, value: T | None = None, error: BaseException | None = None) -> None:
        self.value = value
        self.error = error

    def unwrap(self) -> T | None:
        """Return the value, or raise the error (with its original traceback)."""
        if self.error is not None:
            raise self.error
        return self.value


class GuestHost(abc.ABC):
    """A GUI event loop that runs on the main thread and hosts one guest run at a time.

    :meth:`run` is the whole life cycle: open the toolkit, start the guest, run the toolkit's
    loop until the guest finishes, close the toolkit. It blocks the calling (main) thread.
    """

    #: The name users know the host by (``--host=NAME``, ``%gui NAME``).
    name: str = ""

    def __init__(self) -> None:
        self._outcome: Outcome[Any] | None = None
        self._closed = False
        self._saved_wakeup_fd: int | None = None
        self._calls: deque[Callable[[], object]] = deque()
        self._posted = threading.Event()
        # Held while posting and while closing: a late poster must never wake a closed loop
        # (for a pipe: write to a closed descriptor, or to a file that reused its number).
        self._post_lock = threading.Lock()
        self._winding_down = False

    # -- posting callbacks -------------------------------------------------------------------
    def call_soon_threadsafe(self, fn: Callable[[], object]) -> None:
        """Run ``fn()`` on the host's thread on a coming pass of its loop; callable from any
        thread. Callbacks run in the order they were posted. Raises RuntimeError once the host
        is closed."""
        with self._post_lock:
            if self._closed:
                raise RuntimeError(f"the {self.name} host has closed")
            self._calls.append(fn)
            self._posted.set()
            self._wake()

    def _run_posted(self) -> None:
        """Run the callbacks posted so far; subclasses call this when :meth:`_wake` fired.

        Only those queued on entry run: a callback that posts another must not keep the
        toolkit from its own events.
        """
        self._posted.clear()
        for _ in range(len(self._calls)):
            fn = self._calls.popleft()
            try:
                fn()
            except Exception:
                log.exception("callback on the %s host failed", self.name)
            except BaseException:
                # KeyboardInterrupt or SystemExit goes on to the toolkit's loop; what is still
                # queued must not wait for an unrelated wake-up.
                if self._calls:
                    self._wake()
                raise
        if self._winding_down and self._outcome is None:
            self._wind_down()

    def _wind_down(self) -> None:
        """Run the guest's last steps without serving the toolkit's events in between.

        Once the guest's main function has returned, the kernel has cleared the user's
        namespace: a window's timer firing now would only fail with NameError. So the guest's
        remaining steps (trio's closing ticks) run here, back to back, until it has finished.
        """
        deadline = time.monotonic() + _WIND_DOWN_LIMIT
        while self._outcome is None:
            left = deadline - time.monotonic()
            if left <= 0:
                log.warning("the guest run is slow to finish; serving %s events again", self.name)
                self._winding_down = False
                return
            if self._posted.wait(left):
                self._winding_down = False  # no recursion: this loop runs what comes
                try:
                    self._run_posted()
                finally:
                    self._winding_down = True

    def main_returned(self) -> None:
        """The guest's main function has returned (called on the host's thread by the guest)."""
        self._winding_down = True

    # -- what a toolkit provides -------------------------------------------------------------
    @abc.abstractmethod
    def _wake(self) -> None:
        """Make the toolkit's loop call :meth:`_run_posted` soon; called from any thread, with
        the host's post lock held, never after :meth:`_close`."""

    @abc.abstractmethod
    def _open(self) -> None:
        """Create the toolkit's loop objects (a hidden root window, the application)."""

    @abc.abstractmethod
    def _run_loop(self) -> None:
        """Run the toolkit's loop until :meth:`_quit_loop` (or user code) ends it."""

    @abc.abstractmethod
    def _quit_loop(self) -> None:
        """Make a running :meth:`_run_loop` return soon (called on the host's thread)."""

    @abc.abstractmethod
    def _close(self) -> None:
        """Release what :meth:`_open` created (perhaps only in part: it may have failed);
        called once, after the loop has ended, with the post lock held and ``_closed`` set."""

    # -- signals -----------------------------------------------------------------------------
    def _signal_wakeup_fd(self) -> int | None:
        """A non-blocking fd whose readability wakes the host's loop, for ``signal.set_wakeup_fd``.

        A signal handler written in Python runs only when the interpreter runs Python code; a
        toolkit idling in C (Tcl_DoOneEvent, QEventLoop) runs none until its next event. Writing
        the signal number to a descriptor the loop watches *is* such an event.
        """
        return None

    @property
    def uses_signal_wakeup_fd(self) -> bool:
        """Whether :meth:`run` installed this host's descriptor with ``signal.set_wakeup_fd``."""
        return self._saved_wakeup_fd is not None

    def _install_wakeup_fd(self) -> None:
        fd = self._signal_wakeup_fd()
        if fd is None or threading.current_thread() is not threading.main_thread():
            return
        try:
            self._saved_wakeup_fd = signal.set_wakeup_fd(fd, warn_on_full_buffer=False)
        except ValueError:  # an interpreter whose main thread does not take signals
            self._saved_wakeup_fd = None

    def _restore_wakeup_fd(self) -> None:
        if self._saved_wakeup_fd is not None:
            signal.set_wakeup_fd(self._saved_wakeup_fd)
            self._saved_wakeup_fd = None

    # -- the life cycle ----------------------------------------------------------------------
    def run(self, async_main: AsyncMain, start_guest: StartGuest) -> Any:
        """Run ``async_main()`` as a guest started by ``start_guest``; return its result.

        Blocks the calling thread, which must be the main thread for most toolkits, while the
        toolkit's loop runs; returns (or raises what ``async_main`` raised) once the guest has
        finished and the loop has been stopped and closed. Raises :class:`HostUnavailable` when
        the toolkit cannot start.
        """
        try:
            self._open()
            self._install_wakeup_fd()
            start_guest(async_main, self, self._guest_done)
            while self._outcome is None:
                try:
                    self._run_loop()
                except KeyboardInterrupt:
                    # SIGINT while no cell was running: nothing to interrupt, keep serving.
                    log.info("interrupt outside of any cell ignored by the %s host", self.name)
                    continue
                if self._outcome is None:
                    # User code ended the loop (Tk's quit(), QApplication.quit()): the guest is
                    # still running, so the loop must go on.
                    log.debug("the %s loop was ended by user code; running it again", self.name)
        finally:
            self._restore_wakeup_fd()
            with self._post_lock:
                self._closed = True
                self._close()
        assert self._outcome is not None
        return self._outcome.unwrap()

    def _guest_done(self, outcome: Outcome[Any]) -> None:
        """The guest run has finished (called on the host's thread): end the loop."""
        self._outcome = outcome
        self._winding_down = False
        self._quit_loop()


def make_wake_pipe() -> tuple[int, int]:
    """A non-blocking, close-on-exec pipe (read end, write end) used to wake a host's loop."""
    read_fd, write_fd = os.pipe()
    for fd in (read_fd, write_fd):
        os.set_blocking(fd, False)
        os.set_inheritable(fd, False)
    return read_fd, write_fd


def drain_pipe(fd: int) -> None:
    """Read everything waiting in non-blocking ``fd``."""
    while True:
        try:
            if not os.read(fd, 4096):
                return
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return


def write_wake_byte(fd: int) -> None:
    """Write one byte to non-blocking ``fd``; a full pipe means a wake-up is pending anyway."""
    try:
        os.write(fd, b"\0")
    except (BlockingIOError, InterruptedError):
        pass
