"""Stored history, written to sqlite off the cell path."""

from __future__ import annotations

import logging
import threading
from typing import Any

from cokernel.engine._caller import threads_available


class HistoryBatcher:
    """Writes stored history to sqlite at most once per ``delay`` seconds, off the cell path.

    IPython's default writes (and commits, with an fsync) after every cell, and the next cell's
    history store waits on that write's lock: about 0.8 ms of each execute round trip here.
    Batching loses at most ``delay`` seconds of history if the machine itself dies (a clean
    shutdown writes everything; ``history_request`` writes out before reading).
    """

    def __init__(self, history_manager: Any, delay: float = 1.0) -> None:
        self._history = history_manager
        self.delay = delay
        self._due = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # one write-out at a time; none after stop()
        self._thread: threading.Thread | None = None
        enabled = history_manager is not None and getattr(history_manager, "enabled", False)
        if enabled and threads_available():  # else IPython's own per-cell write-out stays
            history_manager.db_cache_size = 1 << 30  # never write from inside the cell path
            self._thread = threading.Thread(target=self._run, name="cokernel-history", daemon=True)
            self._thread.start()

    def touch(self) -> None:
        """A cell was stored: make sure a write-out happens within ``delay`` seconds."""
        self._due.set()

    def stop(self) -> None:
        """Write out what is pending and end the writer thread (before the database closes)."""
        self._stopping.set()
        self._due.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        self._write()

    def _write(self) -> None:
        with self._lock:
            try:
                self._history.writeout_cache()
            except Exception:  # a locked or read-only database must not end the kernel
                logging.getLogger("cokernel.history").exception("history write-out failed")

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._due.wait()
            self._stopping.wait(self.delay)
            self._due.clear()
            if self._stopping.is_set():
                return  # stop() writes the rest itself
            self._write()
