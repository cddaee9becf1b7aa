"""Stored history, written to sqlite off the cell path."""

from __future__ import annotations

import logging
import sqlite3
import threading
from types import SimpleNamespace
from typing import Any

from cokernel.engine._caller import threads_available


class HistoryBatcher:
    """Writes stored history to sqlite at most once per ``delay`` seconds, off the cell path.

    IPython's default writes (and commits, with an fsync) after every cell, and the next cell's
    history store waits on that write's lock: about 0.8 ms of each execute round trip here.
    Batching loses at most ``delay`` seconds of history if the machine itself dies (a clean
    shutdown writes everything; ``history_request`` writes out before reading).

    IPython's own write-out holds the cache's lock through the commit, so the cell that stored
    its input meanwhile waited for the fsync: 10 to 20 ms, once a second, in a stream of round
    trips. A write-out here takes what is pending under the lock and commits it without the
    lock (through IPython's own statements); every write-out of the history manager, IPython's
    calls included, goes this way, one at a time.
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
            history_manager.writeout_cache = self._write_out
            self._thread = threading.Thread(target=self._run, name="cokernel-history", daemon=True)
            self._thread.start()

    def touch(self) -> None:
        """A cell was stored: make sure a write-out happens within ``delay`` seconds."""
        if not self._due.is_set():  # set() takes the event's lock: once per write-out will do
            self._due.set()

    def stop(self) -> None:
        """Write out what is pending and end the writer thread (before the database closes)."""
        self._stopping.set()
        self._due.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        self._write()

    def _write(self) -> None:
        try:
            self._write_out()
        except Exception:  # a locked or read-only database must not end the kernel
            logging.getLogger("cokernel.history").exception("history write-out failed")

    def _write_out(self, conn: sqlite3.Connection | None = None) -> None:
        """The history manager's ``writeout_cache``, without holding its caches' locks."""
        history = self._history
        kind = type(history)
        with self._lock:
            with history.db_input_cache_lock:
                inputs, history.db_input_cache = history.db_input_cache, []
            with history.db_output_cache_lock:
                outputs, history.db_output_cache = history.db_output_cache, []
            if not (inputs or outputs):
                return
            batch = SimpleNamespace(
                session_number=history.session_number,
                db_input_cache=inputs,
                db_output_cache=outputs,
            )
            conn = history.db if conn is None else conn
            try:
                kind._writeout_input_cache(batch, conn)
            except sqlite3.IntegrityError:
                # IPython's own recovery (it moves to a new session and says so), with the
                # entries put back first.
                with history.db_input_cache_lock, history.db_output_cache_lock:
                    history.db_input_cache[:0] = inputs
                    history.db_output_cache[:0] = outputs
                kind.writeout_cache(history, conn)
                return
            try:
                kind._writeout_output_cache(batch, conn)
            except sqlite3.IntegrityError:  # as IPython: those outputs are not stored
                logging.getLogger("cokernel.history").warning(
                    "output history: session/line not unique, %d outputs not stored",
                    len(outputs),
                )

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._due.wait()
            self._stopping.wait(self.delay)
            self._due.clear()
            if self._stopping.is_set():
                return  # stop() writes the rest itself
            self._write()
